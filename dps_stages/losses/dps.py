"""The losses of the DPS networks (Ye et al. 2024): denoiser, SIM reconstruction, artifact
removal and the self-supervised Res-U-DBPN objective; see :mod:`dps_stages.losses`."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from .perceptual import PerceptualLoss
from .terms import (
    _floats,
    _psf_kernel,
    fft_l1,
    hessian_penalty,
    l1,
    l1_sparsity,
    reblur_to_input,
    ssim_loss,
)

__all__ = ["ArtifactLoss", "DBPNLoss", "DenoiseLoss", "SIMLoss"]


class DenoiseLoss(nn.Module):
    """DPS denoiser loss ``a (1 - SSIM) + b L1 + e L1_FFT`` (Ye et al. 2024).

    Terms: :func:`ssim_loss`, :func:`l1`, :func:`fft_l1`. Defaults ``a = b = 1``, ``e = 0.1``:
    the Fourier term is a mean modulus per frequency, of the same order as the pixel L1 for
    white residuals, and is kept a tenth so that it sharpens the spectrum without dominating.
    ``last``: ``ssim`` (= 1 - SSIM), ``l1``, ``fft``, ``total``.
    """

    def __init__(self, a: float = 1.0, b: float = 1.0, e: float = 0.1, *, data_range: float = 1.0):
        super().__init__()
        self.a, self.b, self.e, self.data_range = float(a), float(b), float(e), float(data_range)
        self.last: dict[str, float] = {}

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        s = ssim_loss(pred, target, self.data_range)
        d = l1(pred, target)
        f = fft_l1(pred, target)
        total = self.a * s + self.b * d + self.e * f
        self.last = _floats(ssim=s, l1=d, fft=f, total=total)
        return total


class SIMLoss(nn.Module):
    """DPS SIM-reconstruction loss ``w_ssim (1 - SSIM) + w_l1 L1`` (Ye et al. 2024).

    ``last``: ``ssim`` (= 1 - SSIM), ``l1``, ``total``.
    """

    def __init__(self, ssim: float = 1.0, l1: float = 1.0, *, data_range: float = 1.0):
        super().__init__()
        self.w_ssim, self.w_l1, self.data_range = float(ssim), float(l1), float(data_range)
        self.last: dict[str, float] = {}

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        s = ssim_loss(pred, target, self.data_range)
        d = l1(pred, target)
        total = self.w_ssim * s + self.w_l1 * d
        self.last = _floats(ssim=s, l1=d, total=total)
        return total


class ArtifactLoss(nn.Module):
    """DPS artifact-removal loss ``w_p L_VGG + w_s (1 - SSIM)`` (Ye et al. 2024).

    ``L_VGG`` is a :class:`PerceptualLoss`. ``last``: ``perceptual``, ``ssim`` (= 1 - SSIM),
    ``total``.
    """

    def __init__(
        self,
        perceptual: PerceptualLoss,
        w_perceptual: float = 1.0,
        w_ssim: float = 1.0,
        *,
        data_range: float = 1.0,
    ):
        super().__init__()
        self.perceptual = perceptual
        self.w_perceptual, self.w_ssim = float(w_perceptual), float(w_ssim)
        self.data_range = float(data_range)
        self.last: dict[str, float] = {}

    @property
    def source(self) -> str:
        """Which VGG16 features the perceptual term uses (:attr:`PerceptualLoss.source`)."""
        return self.perceptual.source

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p = self.perceptual(pred, target)
        s = ssim_loss(pred, target, self.data_range)
        total = self.w_perceptual * p + self.w_ssim * s
        self.last = _floats(perceptual=p, ssim=s, total=total)
        return total


class DBPNLoss(nn.Module):
    """Self-supervised Res-U-DBPN objective of DPS (Ye et al. 2024).

    ``L(x, y) = w_s (1 - SSIM(S_s(x * srPSF), y)) + beta_H R_Hessian(x) + beta_L1 mean|x|``

    with ``x`` the network output on the ``s``-times finer grid, ``y`` its input,
    ``S_s(x * srPSF)`` :func:`reblur_to_input`, ``R_Hessian`` :func:`hessian_penalty` (with
    ``t_weight``) and ``mean|x|`` :func:`l1_sparsity`; no ground truth is involved
    (``w_s = w_ssim``, 1 by default as in the paper). The
    paper writes one ``beta`` for both priors; here they can differ.

    Defaults ``beta_hessian = beta_l1 = 1e-2``, one ``beta`` for both as in the paper, set
    from a measurement on the simulator (the four structures of
    :data:`dps_stages.simulate.STRUCTURES`, 525 nm, NA 1.4, srPSF with ``m_f = 1.9`` on the 4x
    grid, input normalised to a maximum of 1, Gaussian noise of 0.5 % and 2 %). Upper bound:
    the objective must still rank the true object above the bilinearly upsampled input
    wherever the fidelity alone does; ``1 - SSIM`` separates them by 0.006-0.15 while
    ``R_Hessian`` is 0.05-0.39 larger for the truth, and the ranking first flips at
    ``beta_hessian ~ 0.05`` (microtubules, 2 % noise), 5x above the default. Lower bound: the
    priors are there to choose among outputs that re-blur alike (the null space of the blur,
    where noise and out-of-band artefacts go unseen by the fidelity), so they must not
    vanish: at 1e-2 their gradient is up to 2 % of the fidelity's at the truth. The L1 term
    needs care of its own: SSIM hardly penalises a global gain (its structure term is scale
    invariant), so a large ``beta_l1`` lets the network dim its output; at 1e-2 the
    equilibrium dimming is below 0.1 %. Tune per dataset from the loss history (``last``).

    ``psf`` (``(k, k)`` or ``(1, 1, k, k)``, odd ``k``) is normalised to unit sum and kept as
    the buffer ``psf`` ``(1, 1, k, k)``. ``last``: ``ssim`` (= 1 - SSIM), ``hessian``, ``l1``,
    ``total``.
    """

    psf: Tensor

    def __init__(
        self,
        psf: np.ndarray | Tensor,
        beta_hessian: float = 1e-2,
        beta_l1: float = 1e-2,
        scale: int = 2,
        t_weight: float = 0.0,
        *,
        w_ssim: float = 1.0,
        data_range: float = 1.0,
    ):
        super().__init__()
        self.register_buffer("psf", _psf_kernel(psf))
        self.beta_hessian, self.beta_l1 = float(beta_hessian), float(beta_l1)
        self.w_ssim = float(w_ssim)
        self.scale, self.t_weight, self.data_range = int(scale), float(t_weight), float(data_range)
        self.last: dict[str, float] = {}

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        reblurred = reblur_to_input(x, self.psf, self.scale)
        if reblurred.shape != y.shape:
            raise ValueError(
                f"output {tuple(x.shape)} re-blurred to {tuple(reblurred.shape)} does not match "
                f"the input {tuple(y.shape)} (scale {self.scale})"
            )
        s = ssim_loss(reblurred, y, self.data_range)
        h = hessian_penalty(x, self.t_weight)
        sp = l1_sparsity(x)
        total = self.w_ssim * s + self.beta_hessian * h + self.beta_l1 * sp
        self.last = _floats(ssim=s, hessian=h, l1=sp, total=total)
        return total
