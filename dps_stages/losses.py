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

Each loss module keeps the unweighted terms of its last call in ``last`` (a dict of floats,
plus ``"total"``) for the loss history; ``last["ssim"]`` is always the term ``1 - SSIM``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _msssim_ssim
from torch import Tensor, nn

from dps_stages.nets.vgg import LAYER_INDEX, load_vgg16
from dps_stages.physics import Binning, Blur

__all__ = [
    "NINE_LAYERS",
    "ArtifactLoss",
    "DBPNLoss",
    "DenoiseLoss",
    "PerceptualLoss",
    "SIMLoss",
    "fft_l1",
    "hessian_penalty",
    "l1",
    "l1_sparsity",
    "reblur_to_input",
    "ssim_index",
    "ssim_loss",
]

#: The nine VGG16 layers of :class:`PerceptualLoss`: every ReLU of blocks 1-3 and the first
#: two of block 4, i.e. four scales (1, 1/2, 1/4, 1/8 of the input). SIM artifacts (stripes
#: and honeycomb at the illumination period, a few pixels; ringing) are fine- to mid-scale
#: structure. Block 5 (1/16) is left out: on 64-128 px training patches its maps are 4-8 px,
#: mostly zero-padding border, and its features are ImageNet-semantic; stopping at relu4_2
#: also skips 4 of the 13 convolutions.
NINE_LAYERS: tuple[str, ...] = (
    "relu1_1",
    "relu1_2",
    "relu2_1",
    "relu2_2",
    "relu3_1",
    "relu3_2",
    "relu3_3",
    "relu4_1",
    "relu4_2",
)

# torchvision's ImageNet statistics (RGB), for inputs in [0, 1]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

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


# --------------------------------------------------------------------------- loss modules


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


class PerceptualLoss(nn.Module):
    """VGG16 feature reconstruction loss (Johnson, Alahi & Fei-Fei, ECCV 2016).

    ``L(x, y) = sum_j ||phi_j(x) - phi_j(y)||_2^2 / (C_j H_j W_j)``, ``phi_j`` the activation
    (``C_j x H_j x W_j``) of layer ``j`` of ``layers`` (default :data:`NINE_LAYERS`), averaged
    over the batch. A grey image (``C = 1``) is repeated to the three input channels; ``C = 3``
    is taken as RGB; other ``C`` are scored channel by channel, each as a grey image.

    ``weights``: a torchvision VGG16 state dict (ImageNet); inputs, assumed in ``[0, 1]``, are
    then standardised with the ImageNet mean and std as in training. None: the fixed random
    VGG16 features of :func:`dps_stages.nets.vgg.load_vgg16` from ``seed``, fed the raw
    input (a random network has no input statistics to match). The network is frozen
    (``requires_grad=False``) and stays in eval mode; ``source`` names its weights
    (``"imagenet:<file>:sha256=<16 hex>"`` or ``"random:seed=<seed>"``).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        seed: int = 0,
        layers: Sequence[str] = NINE_LAYERS,
    ):
        super().__init__()
        unknown = [n for n in layers if n not in LAYER_INDEX]
        if unknown or not layers:
            raise ValueError(f"layers must be VGG16 ReLU layers {list(LAYER_INDEX)}; got {layers}")
        self.layers = tuple(layers)
        self.vgg, self.source = load_vgg16(weights, seed)
        self.imagenet = weights is not None
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.last: dict[str, float] = {}

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # a fixed feature extractor, whatever the training state around it
        return self

    def _prepare(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected (N, C, H, W); got {tuple(x.shape)}")
        if x.shape[1] != 3:
            x = x.reshape(-1, 1, *x.shape[-2:]).expand(-1, 3, -1, -1)
        if self.imagenet:
            x = (x - self.mean) / self.std
        return x

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _check_pair(x, y)
        fx = self.vgg(self._prepare(x), self.layers)
        # the target's graph is only needed when it carries a gradient itself
        with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
            fy = self.vgg(self._prepare(y), self.layers)
        total = sum((F.mse_loss(fx[n], fy[n]) for n in self.layers), x.new_zeros(()))
        self.last = _floats(perceptual=total, total=total)
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


def _floats(**terms: Tensor) -> dict[str, float]:
    """Detached Python floats of the loss terms, for logging."""
    return {k: float(v.detach()) for k, v in terms.items()}


# --------------------------------------------------------------------------- OIDN (Jin et al. 2024)


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


__all__ += [
    "OIDNLoss",
    "charbonnier_fft",
    "psf_energy_loss",
    "psf_prior_loss",
    "psf_symmetry_loss",
]
