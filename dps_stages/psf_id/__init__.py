"""PSF identification (Nguyen, Sarron, Escande & Weiss, "Training identification network for
blind deconvolution in microscopy"): a network reads the PSF ``h`` off one blurred, noisy
patch ``y``.

:mod:`.data`: the PSF model ``h = |F(P exp(-i 2 pi sum_k theta_k Z_k))|^2`` and the simulated
training examples ``y = camera(h * x)``; :mod:`.identify`: the loss
``||h_hat - h||_1 + lambda ||h_hat * x - y||_1``, identification of real images, metrics.
"""

from . import data as _data
from .data import *  # noqa: F403  (the names of data.__all__)
from .identify import PSFIdentificationLoss, evaluate, identify, psnr, psnr_psf, reblur

__all__ = [
    *_data.__all__,
    "PSFIdentificationLoss",
    "evaluate",
    "identify",
    "psnr",
    "psnr_psf",
    "reblur",
]
