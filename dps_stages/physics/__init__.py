"""Imaging physics as composable linear operators (after deepinv's ``physics`` package).

* :class:`Blur`: convolution with a PSF (or an OTF), several boundary rules, numpy and torch.
* :class:`Binning`: camera binning, the mean over ``f x f`` blocks.
* :class:`SIMIllumination`, :class:`SIMForward`: the nine 2D-SIM patterns and the full SIM
  forward model ``y_i = S_f[h * (p_i x)]`` (Gustafsson 2000).

Each has ``A`` (forward, also ``op(x)``) and ``A_adjoint``; ``A * B`` composes.
"""

from .base import Binning, Composed, LinearOperator, is_torch
from .blur import BOUNDARIES, Blur, place_psf
from .illumination import PatternGeometry, SIMForward, SIMIllumination, camera_coordinates

__all__ = [
    "BOUNDARIES",
    "Binning",
    "Blur",
    "Composed",
    "LinearOperator",
    "PatternGeometry",
    "SIMForward",
    "SIMIllumination",
    "camera_coordinates",
    "is_torch",
    "place_psf",
]
