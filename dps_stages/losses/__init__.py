"""Training losses and regularisers of the DPS networks (torch, differentiable).

All tensors are float32 ``(N, C, H, W)``; every scalar term is a mean, so its size does not
depend on the batch or the patch size. Data are assumed normalised to ``[0, 1]``
(``data_range = 1`` for SSIM) unless a ``data_range`` is given.

Terms
-----
* SSIM (:func:`ssim_index`, :func:`ssim_loss`): Wang, Bovik, Sheikh & Simoncelli, "Image
  quality assessment: from error visibility to structural similarity", IEEE Trans. Image
  Process. 13, 600-612 (2004),
  ``SSIM(x, y) = mean_windows [(2 mu_x mu_y + C1)(2 sigma_xy + C2)]
  / [(mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)]``, ``C1 = (0.01 L)^2``,
  ``C2 = (0.03 L)^2``, ``L`` the data range, local statistics under an 11 x 11 Gaussian window
  of sigma 1.5 (valid region only, as in the paper and scikit-image).
* L1 (:func:`l1`): ``mean |x - y|``.
* Fourier L1 (:func:`fft_l1`): ``mean_k |F(x)(k) - F(y)(k)|`` with ``F`` the unitary 2D DFT.
* Hessian penalty (:func:`hessian_penalty`): sparse deconvolution (Zhao et al., Nature
  Biotechnology 40, 606-617, 2022) and DPS (Ye et al., Intelligent Computing 2024, doi
  10.34133/icomputing.0082), ``R = |x_xx| + |x_yy| + s |x_tt| + 2 |x_xy| + 2 sqrt(s) |x_xt|
  + 2 sqrt(s) |x_yt|``, each ``|.|`` a mean over its valid finite differences.
* Sparsity (:func:`l1_sparsity`): ``mean |x|``.
* Re-blur (:func:`reblur_to_input`): ``S_s(h * x)``, the forward model from the 2x grid of a
  super-resolved image back to the grid of its input.
* VGG16 feature reconstruction (:class:`PerceptualLoss`): Johnson, Alahi & Fei-Fei,
  "Perceptual losses for real-time style transfer and super-resolution", ECCV 2016.

Losses of the DPS networks (Ye et al. 2024)
-------------------------------------------
* Denoiser (:class:`DenoiseLoss`): ``a (1 - SSIM) + b L1 + e L1_FFT``.
* SIM reconstruction (:class:`SIMLoss`): ``(1 - SSIM) + L1``.
* Artifact removal (:class:`ArtifactLoss`): ``w_p L_VGG + w_s (1 - SSIM)``.
* Res-U-DBPN, self-supervised (:class:`DBPNLoss`):
  ``(1 - SSIM(S_2(x * srPSF), y)) + beta_H R_Hessian(x) + beta_L1 ||x||_1``.

Other losses
------------
* OIDN (:class:`OIDNLoss`, Jin et al. 2024): ``w L1 + (1 - w) (1 - SSIM) + psf_weight (CE + RS)
  + charbonnier_weight L_C``.

Layout: :mod:`.terms` (the terms and regularisers), :mod:`.perceptual` (VGG16 features),
:mod:`.dps` (the DPS networks' losses), :mod:`.oidn` (OIDN's loss and PSF priors).

Each loss module keeps the unweighted terms of its last call in ``last`` (a dict of floats,
plus ``"total"``) for the loss history; ``last["ssim"]`` is always the term ``1 - SSIM``.
"""

from .dps import ArtifactLoss, DBPNLoss, DenoiseLoss, SIMLoss
from .oidn import OIDNLoss, charbonnier_fft, psf_energy_loss, psf_prior_loss, psf_symmetry_loss
from .perceptual import NINE_LAYERS, PerceptualLoss
from .terms import fft_l1, hessian_penalty, l1, l1_sparsity, reblur_to_input, ssim_index, ssim_loss

__all__ = [
    "NINE_LAYERS",
    "ArtifactLoss",
    "DBPNLoss",
    "DenoiseLoss",
    "OIDNLoss",
    "PerceptualLoss",
    "SIMLoss",
    "charbonnier_fft",
    "fft_l1",
    "hessian_penalty",
    "l1",
    "l1_sparsity",
    "psf_energy_loss",
    "psf_prior_loss",
    "psf_symmetry_loss",
    "reblur_to_input",
    "ssim_index",
    "ssim_loss",
]
