"""The loss terms and regularisers (torch, differentiable): SSIM, L1, Fourier L1, the Hessian
penalty, sparsity and the re-blur to the input grid; see :mod:`dps_stages.losses`."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ssim as _msssim_ssim
from torch import Tensor

from dps_stages.physics import Binning, Blur

__all__ = [
    "fft_l1",
    "hessian_penalty",
    "l1",
    "l1_sparsity",
    "reblur_to_input",
    "ssim_index",
    "ssim_loss",
]

_SSIM_WIN = 11
_SSIM_SIGMA = 1.5


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(
            f"expected two tensors (N, C, H, W) of one shape; got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )


# --------------------------------------------------------------------------- pixel losses


def ssim_index(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM of two batches (Wang et al. 2004), differentiable.

    ``SSIM = mean [(2 mu_x mu_y + C1)(2 sigma_xy + C2)] / [(mu_x^2 + mu_y^2 + C1)
    (sigma_x^2 + sigma_y^2 + C2)]`` with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L =
    data_range``; ``mu``, ``sigma`` are local means, variances and covariance under a Gaussian
    window (sigma 1.5, 11 x 11, population statistics), evaluated where the window fits inside
    the image, averaged over pixels, channels and the batch (``pytorch_msssim.ssim``,
    ``size_average=True``). On images smaller than 11 pixels the window shrinks to the
    largest odd size that fits (sigma unchanged), so 16 px patches and 3 px ones work. This
    equals ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` for images of 11 pixels or more.
    """
    _check_pair(x, y)
    side = min(x.shape[-2:])
    if side < 3:
        raise ValueError(f"SSIM needs images of at least 3 x 3 pixels; got {tuple(x.shape)}")
    win = min(_SSIM_WIN, side if side % 2 else side - 1)
    return _msssim_ssim(
        x, y, data_range=data_range, size_average=True, win_size=win, win_sigma=_SSIM_SIGMA
    )


def ssim_loss(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """``1 - SSIM(x, y)`` (:func:`ssim_index`): 0 for identical images, at most 2."""
    return 1.0 - ssim_index(x, y, data_range)


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error ``mean |x - y|``."""
    return (x - y).abs().mean()


def fft_l1(x: Tensor, y: Tensor) -> Tensor:
    """L1 distance of the spectra: ``mean_k |F(x)(k) - F(y)(k)|`` (DPS denoiser loss).

    ``F`` is the unitary 2D DFT of the last two axes (``norm="ortho"``,
    ``F(x)(k) = (HW)^(-1/2) sum_r x(r) exp(-2 pi i k.r)``) and ``|.|`` the complex modulus;
    the mean runs over all ``H W`` frequencies (and channels and batch). By linearity it is
    computed as ``|F(x - y)|``. Example: ``y = x + c`` differs only at DC, by ``c sqrt(HW)``,
    so the loss is ``|c| / sqrt(HW)``.
    """
    _check_pair(x, y)
    return torch.fft.fft2(x - y, norm="ortho").abs().mean()


# --------------------------------------------------------------------------- regularisers


def hessian_penalty(x: Tensor, t_weight: float = 0.0) -> Tensor:
    """Hessian regulariser of sparse deconvolution and DPS, by valid finite differences.

    Space (``t_weight = 0``, any ``(N, C, H, W)``, channels independent):

    ``R = mean|x_xx| + mean|x_yy| + 2 mean|x_xy|``

    with ``x_xx[i, j] = x[i, j+1] - 2 x[i, j] + x[i, j-1]`` (likewise ``x_yy`` along rows) and
    ``x_xy[i, j] = x[i+1, j+1] - x[i+1, j] - x[i, j+1] + x[i, j]`` (the forward difference in x
    of the forward difference in y). Only differences that lie inside the image are used (no
    padding), so any affine ``a x + b y + c`` costs exactly 0 and ``x^2`` costs 2.

    Time-lapse (``t_weight > 0``): ``x`` is ``(N, T, H, W)`` with the time points on axis 1
    (at least 3), and the penalty adds

    ``t_weight^2 mean|x_tt| + 2 t_weight (mean|x_xt| + mean|x_yt|)``

    (``x_tt`` the second difference along axis 1, ``x_xt``, ``x_yt`` the forward difference in
    x or y of the forward difference in t). This is Zhao et al.'s (Nature Biotechnology 2022;
    also Ye et al. 2024)
    ``R = |x_xx| + |x_yy| + s |x_tt| + 2 |x_xy| + 2 sqrt(s) |x_xt| + 2 sqrt(s) |x_yt|``
    with continuity ``s = t_weight^2``: ``t_weight`` scales the derivative along t
    (``d_t -> t_weight d_t``), so the pure t term gets its square and each mixed term one
    factor of it. Hence ``t_weight = sqrt(continuity)`` reproduces the weights of
    :func:`dps_stages.deconvolution.hessian_weights`. Means instead of the paper's sums keep
    ``beta`` independent of the patch size.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W); got {tuple(x.shape)}")
    if t_weight < 0:
        raise ValueError(f"t_weight must be >= 0; got {t_weight}")
    if min(x.shape[-2:]) < 3:
        raise ValueError(f"the Hessian needs at least 3 x 3 pixels; got {tuple(x.shape)}")
    dxx = x[..., :, 2:] - 2 * x[..., :, 1:-1] + x[..., :, :-2]
    dyy = x[..., 2:, :] - 2 * x[..., 1:-1, :] + x[..., :-2, :]
    dy = x[..., 1:, :] - x[..., :-1, :]
    dxy = dy[..., :, 1:] - dy[..., :, :-1]
    r = dxx.abs().mean() + dyy.abs().mean() + 2 * dxy.abs().mean()
    if t_weight > 0:
        if x.shape[1] < 3:
            raise ValueError(
                f"t_weight > 0 needs at least 3 time points on axis 1; got {tuple(x.shape)}"
            )
        dtt = x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]
        dt = x[:, 1:] - x[:, :-1]
        dxt = dt[..., :, 1:] - dt[..., :, :-1]
        dyt = dt[..., 1:, :] - dt[..., :-1, :]
        r = r + t_weight**2 * dtt.abs().mean()
        r = r + 2 * t_weight * (dxt.abs().mean() + dyt.abs().mean())
    return r


def l1_sparsity(x: Tensor) -> Tensor:
    """Sparsity prior ``mean |x|`` (the L1 norm of sparse deconvolution and DPS, per pixel)."""
    return x.abs().mean()


def _psf_kernel(psf: np.ndarray | Tensor) -> Tensor:
    """The PSF as a float32 ``(1, 1, ky, kx)`` tensor of unit sum; odd sizes required."""
    h = torch.as_tensor(np.asarray(psf) if not isinstance(psf, Tensor) else psf)
    h = h.detach().to(torch.float32)
    if h.ndim == 4 and h.shape[:2] == (1, 1):
        h = h[0, 0]
    if h.ndim != 2:
        raise ValueError(f"psf must be 2D (ky, kx) or (1, 1, ky, kx); got {tuple(h.shape)}")
    if h.shape[0] % 2 == 0 or h.shape[1] % 2 == 0:
        raise ValueError(f"psf sizes must be odd (centre at size // 2); got {tuple(h.shape)}")
    total = h.sum()
    if not torch.isfinite(total) or total <= 0:
        raise ValueError("psf must be finite with a positive sum")
    return (h / total)[None, None]


def reblur_to_input(x: Tensor, psf: Tensor | np.ndarray, scale: int = 2) -> Tensor:
    """The forward model of DPS: ``S_s(h * x)``, a super-resolved image back on its input grid.

    Each channel of ``x`` (``(N, C, sH, sW)``) is convolved with the PSF ``h`` (``(ky, kx)``
    or ``(1, 1, ky, kx)``, odd sizes, normalised here to unit sum; a true convolution, the
    kernel is flipped), the image continued by mirror reflection over ``ky // 2``,
    ``kx // 2`` pixels (edge replication when the image is not larger than that), then
    binned by ``S_s``, the mean over ``s x s`` blocks: :class:`~dps_stages.physics.Blur`
    (``boundary="reflect"``) then :class:`~dps_stages.physics.Binning`. Output
    ``(N, C, H, W)``. A unit-sum PSF and block means keep the flux per unit area:
    ``s^2 sum S_s(h * x) = sum x`` away from the edges.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W); got {tuple(x.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1; got {scale}")
    n, c, hgt, wid = x.shape
    if hgt % scale or wid % scale:
        raise ValueError(f"image size {(hgt, wid)} is not a multiple of scale {scale}")
    h = _psf_kernel(psf).to(device=x.device, dtype=x.dtype)[0, 0]
    return Binning(scale)(Blur(h, boundary="reflect")(x))


def _floats(**terms: Tensor) -> dict[str, float]:
    """Detached Python floats of the loss terms, for logging."""
    return {k: float(v.detach()) for k, v in terms.items()}
