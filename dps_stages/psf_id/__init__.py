"""PSF identification (Nguyen, Sarron, Escande & Weiss, "Training identification network for
blind deconvolution in microscopy"): a network reads the PSF ``h`` off one blurred, noisy
patch ``y``.

:mod:`.data`: the PSF model ``h = |F(P exp(-i 2 pi sum_k theta_k Z_k))|^2`` and the simulated
training examples ``y = camera(h * x)``; :mod:`.identify`: the loss
``||h_hat - h||_1 + lambda ||h_hat * x - y||_1``, identification of real images, metrics.
"""

from .data import (
    FC_SCALE,
    NATURAL_IMAGES,
    NOLL,
    THETA_SCALE,
    PSFData,
    PSFSampler,
    natural_image,
    normalise_observation,
    psf_pad,
    random_psf,
)
from .identify import PSFIdentificationLoss, evaluate, identify, psnr, psnr_psf, reblur

__all__ = [
    "FC_SCALE",
    "NATURAL_IMAGES",
    "NOLL",
    "THETA_SCALE",
    "PSFData",
    "PSFIdentificationLoss",
    "PSFSampler",
    "evaluate",
    "identify",
    "natural_image",
    "normalise_observation",
    "psf_pad",
    "psnr",
    "psnr_psf",
    "random_psf",
    "reblur",
]
