"""OIDN's training loss and its terms (Jin et al., Optics Express 32(21), 2024): the
frequency-domain Charbonnier penalty and the PSF priors (energy, rotational symmetry)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .terms import _check_pair, _floats, l1, ssim_loss

__all__ = [
    "OIDNLoss",
    "charbonnier_fft",
    "psf_energy_loss",
    "psf_prior_loss",
    "psf_symmetry_loss",
]


def charbonnier_fft(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier penalty on the real and imaginary parts of the spectral difference.

    ``L = mean_k [ sqrt(Re(D(k))^2 + eps^2) + sqrt(Im(D(k))^2 + eps^2) ]``,
    ``D = F(x) - F(y) = F(x - y)``

    with ``F`` the unitary 2D DFT of the last two axes (``torch.fft.fft2``, ``norm="ortho"``,
    as in :func:`fft_l1`) and the mean over all ``H W`` frequencies, channels and the batch.
    The Charbonnier function ``sqrt(t^2 + eps^2)`` (Charbonnier et al., "Two deterministic
    half-quadratic regularization algorithms for computed imaging", ICIP 1994; the
    frequency-domain loss of OIDN, Jin et al., Optics Express 32(21), 2024) is a smooth L1:
    identical images give exactly ``2 eps`` (its minimum), and for ``|t| >> eps`` each part
    grows like ``|t|``.
    """
    _check_pair(x, y)
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    d = torch.fft.fft2(x - y, norm="ortho")
    e2 = eps * eps
    return (torch.sqrt(d.real**2 + e2) + torch.sqrt(d.imag**2 + e2)).mean()


def _psf_2d(h: Tensor) -> Tensor:
    if h.ndim == 4 and h.shape[:2] == (1, 1):
        h = h[0, 0]
    if h.ndim != 2 or h.shape[0] % 2 == 0 or h.shape[1] % 2 == 0:
        raise ValueError(f"psf must be (ky, kx) with odd sizes; got {tuple(h.shape)}")
    return h


def psf_energy_loss(h: Tensor) -> Tensor:
    """Energy-consistency (CE) loss of a PSF: ``(sum h - 1)^2``.

    A PSF that conserves energy (flux) sums to one (OIDN's physical prior, Jin et al. 2024).
    ``h``: ``(ky, kx)`` or ``(1, 1, ky, kx)``, odd sizes. Zero, up to rounding, for the
    learned PSF of :class:`dps_stages.nets.oidn.OIDN`, which is normalised by construction.
    """
    return (_psf_2d(h).sum() - 1.0) ** 2


def psf_symmetry_loss(h: Tensor) -> Tensor:
    """Rotational-symmetry (RS) loss of a PSF: its relative variance within rings.

    ``RS = sum_p (h(p) - mean_{ring(p)} h)^2 / sum_p h(p)^2``, where the ring of pixel ``p``
    = ``(dy, dx)`` from the centre ``(ky // 2, kx // 2)`` is the set of pixels with the same
    ``dy^2 + dx^2`` (the same radius exactly: the 8 dihedral images of ``p``, and
    coincidences such as ``(0, 5)`` and ``(3, 4)``). ``RS`` is 0 for any radially symmetric
    function sampled at pixel centres, lies in ``[0, 1]``, and does not depend on the PSF's
    scale. Zero by construction for the learned PSF of :class:`dps_stages.nets.oidn.OIDN`
    (OIDN's physical prior, Jin et al. 2024).
    """
    h = _psf_2d(h)
    ky, kx = h.shape
    dy = torch.arange(ky, device=h.device) - ky // 2
    dx = torch.arange(kx, device=h.device) - kx // 2
    ring = (dy[:, None] ** 2 + dx[None, :] ** 2).ravel()
    flat = h.ravel()
    sums = torch.zeros(int(ring.max()) + 1, dtype=h.dtype, device=h.device)
    sums = sums.index_add(0, ring, flat)
    counts = torch.bincount(ring, minlength=sums.numel()).to(h.dtype)
    mean = sums[ring] / counts[ring]
    energy = (flat**2).sum()
    return ((flat - mean) ** 2).sum() / torch.clamp(energy, min=torch.finfo(h.dtype).tiny)


def psf_prior_loss(h: Tensor) -> Tensor:
    """OIDN's PSF loss: ``CE + RS`` (:func:`psf_energy_loss` + :func:`psf_symmetry_loss`)."""
    return psf_energy_loss(h) + psf_symmetry_loss(h)


class OIDNLoss(nn.Module):
    """OIDN training loss (Jin et al., Optics Express 32(21), 2024).

    ``L = w L1(y_hat, y) + (1 - w) (1 - SSIM(y_hat, y)) + psf_weight (CE(h) + RS(h))
    + charbonnier_weight L_C(y_hat, y)``

    with ``y_hat`` the network output (the image-plane SIM image ``h * o`` of
    :class:`dps_stages.nets.oidn.OIDN`, the object estimate ``o`` degraded by the learned PSF
    ``h``), ``y`` the target, :func:`l1`, :func:`ssim_index`, ``CE``
    :func:`psf_energy_loss`, ``RS`` :func:`psf_symmetry_loss` and ``L_C``
    :func:`charbonnier_fft`. The PSF is read from the model given to :meth:`bind`
    (``model.psf()``); without one the PSF term is 0. The data terms reach the PSF's
    parameters through ``y_hat``; ``CE`` and ``RS`` are zero up to rounding for OIDN's PSF,
    which is non-negative, unit-sum and rotationally symmetric by construction, and stay as
    a check (they matter for a PSF that is constrained only by these losses).

    Defaults: ``w = 0.8`` (the mix of L1 and SSIM: not verified against the paper, whose
    text could not be read, only its abstract), ``psf_weight = 1e-3``,
    ``charbonnier_weight = 0.01``, ``eps = 1e-3`` (the Charbonnier term's floor is
    ``2 eps``, a constant). ``init_psf``: a PSF (e.g. :func:`dps_stages.optics.sr_psf` on
    the 2x grid) to which :meth:`bind` initialises the model's PSF
    (``model.set_psf_from``) before training.

    ``last``: ``l1``, ``ssim`` (= 1 - SSIM), ``psf`` (= CE + RS), ``charbonnier``, ``total``.
    """

    def __init__(
        self,
        w: float = 0.8,
        psf_weight: float = 1e-3,
        charbonnier_weight: float = 0.01,
        eps: float = 1e-3,
        *,
        init_psf: np.ndarray | None = None,
        data_range: float = 1.0,
    ):
        super().__init__()
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"w must be in [0, 1]; got {w}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0; got {eps}")
        self.w, self.psf_weight = float(w), float(psf_weight)
        self.charbonnier_weight, self.eps = float(charbonnier_weight), float(eps)
        self.init_psf = None if init_psf is None else np.asarray(init_psf, dtype=np.float64)
        self.data_range = float(data_range)
        self.last: dict[str, float] = {}
        # kept out of the module tree: the loss must not own (or move, or save) the model
        object.__setattr__(self, "_model", None)

    @property
    def model(self) -> nn.Module | None:
        return self._model

    def bind(self, model: nn.Module) -> None:
        """Read the PSF from ``model.psf()``; initialise it from ``init_psf`` if given."""
        if not callable(getattr(model, "psf", None)):
            raise TypeError(f"{type(model).__name__} has no psf() method")
        if self.init_psf is not None:
            model.set_psf_from(self.init_psf)
        object.__setattr__(self, "_model", model)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        d = l1(pred, target)
        s = ssim_loss(pred, target, self.data_range)
        c = charbonnier_fft(pred, target, self.eps)
        p = psf_prior_loss(self._model.psf()) if self._model is not None else pred.new_zeros(())
        total = self.w * d + (1 - self.w) * s + self.psf_weight * p + self.charbonnier_weight * c
        self.last = _floats(l1=d, ssim=s, psf=p, charbonnier=c, total=total)
        return total
