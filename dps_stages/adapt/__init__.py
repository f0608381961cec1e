"""Self-supervised adaptation of the networks on a user's own raw frames (no ground truth).

* :func:`adapt_denoiser`: the denoiser by Recorrupted-to-Recorrupted (Pang et al., CVPR
  2021) with the calibrated Poisson-Gaussian camera (:mod:`.denoise`).
* :func:`adapt_sim`: a SIM-reconstruction network (SIMNet or OIDN) by SIM physics
  consistency, ``sum_i || S_2[h * (p_i x_hat)] - y_i ||`` with the estimated patterns and the
  calibrated OTF (ZS-DeconvNet, Qiao et al., Nat. Commun. 2024, is the nearest example;
  :mod:`.sim`).

Both copy the given model, are deterministic for a seed on the CPU, show a tqdm bar and
return ``(model, history)``.
"""

from ._common import NoiseModel
from .denoise import DENOISE_STEPS, adapt_denoiser, denoise_frames, r2r_pair
from .sim import SIM_STEPS, SIMConsistency, adapt_sim, otf_attenuation_of

__all__ = [
    "DENOISE_STEPS",
    "SIM_STEPS",
    "NoiseModel",
    "SIMConsistency",
    "adapt_denoiser",
    "adapt_sim",
    "denoise_frames",
    "otf_attenuation_of",
    "r2r_pair",
]
