"""Deconvolution: Richardson-Lucy and sparse (Hessian) deconvolution.

Two classical restorations of a fluorescence image, both pure functions of numpy arrays
(float32 in and out, axes ``(..., y, x)``), computed with ``scipy.fft`` on all cores:

* :mod:`.rl`: Richardson-Lucy, ``x_{k+1} = x_k . (h^T * (y / (h * x_k)))`` (Richardson, J.
  Opt. Soc. Am. 62, 55, 1972; Lucy, Astron. J. 79, 745, 1974), optionally accelerated
  (Biggs & Andrews, Applied Optics 36, 1766, 1997);
* :mod:`.sparse`: sparse deconvolution (Zhao et al., Nature Biotechnology 40, 606, 2022), a
  Hessian- and L1-regularised denoising solved by split Bregman, then Richardson-Lucy;
* :mod:`.tiled`: either of them on a large image, tile by tile with a halo.

The theory of each is in its module's docstring.
"""

from .rl import richardson_lucy
from .sparse import (
    hessian_weights,
    sparse_hessian,
    sparse_hessian_denoise,
)
from .tiled import HALO_PSF_SIZES, SPARSE_HALO, deconvolution_halo, deconvolve_tiled

__all__ = [
    "HALO_PSF_SIZES",
    "SPARSE_HALO",
    "deconvolution_halo",
    "deconvolve_tiled",
    "hessian_weights",
    "richardson_lucy",
    "sparse_hessian",
    "sparse_hessian_denoise",
]
