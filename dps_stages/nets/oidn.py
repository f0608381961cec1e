"""OIDN: object-to-image plane degradation network for SIM reconstruction.

Jin et al., "Physical prior-guided deep learning for SIM reconstruction: modeling
object-to-image degradation", Optics Express 32(21), 2024. From the 9 raw SIM frames
``(N, 9, H, W)`` to the SIM image on the 2x grid ``(N, 1, 2H, 2W)``.

What the paper says, and what is guessed here
---------------------------------------------
Only the paper's abstract could be read: OIDN "embeds the object-to-image plane degradation
process into the reconstruction network", "with a set of learnable point spread function
(PSF) parameters constrained by physical prior", and so "converts the conventional
image-to-image data pattern mapping into the object-to-image plane degradation mapping".
Everything below the level of that sentence (block layout, widths, the exact form of the
constraints and losses) is a careful reader's choice, documented as such:

- the network body estimates the *object* ``o = N(raw)`` on the 2x grid (object plane);
- the learnable PSF ``h`` degrades it to the *image plane*: ``y_hat = h * o``, and
  ``y_hat`` is what is compared with the target and what :meth:`OIDN.forward` returns,
  i.e. the image the workflow writes as the SIM reconstruction. The object estimate is
  :meth:`OIDN.object`. Returning ``y_hat`` (not ``o``) keeps the trained quantity and the
  written one the same; ``o`` is a deconvolution of it that no loss term looks at directly.
- the physical prior on ``h`` (non-negative, unit sum = energy consistency, rotationally
  symmetric) is enforced *by construction* (:class:`RadialPSF`); the paper's constraint
  losses, here :func:`dps_stages.losses.psf_energy_loss` (CE) and
  :func:`dps_stages.losses.psf_symmetry_loss` (RS), are then zero up to rounding and are
  kept as a check (:class:`dps_stages.losses.OIDNLoss` adds them).

What the PSF models depends on the target. In the paper the targets are SIM images
(BioSR), so ``h`` converges towards the SIM PSF (:func:`dps_stages.optics.sr_psf`, to which
:meth:`OIDN.set_psf_from` can initialise it). In this project's simulated training pairs the
target is the object itself, binned to the 2x grid (``truth_2x``): the only
object-to-target degradation is then the binning, and the learned ``h`` is expected to
narrow towards a delta. The default initialisation is therefore a narrow Gaussian
(``psf_sigma = 1`` pixel of the 2x grid), between the two.

Architecture (the brief's reading of the paper's figure; widths and counts guessed)
------------------------------------------------------------------------------------
- head: 3x3 convolution ``frames -> width``;
- body: ``groups`` residual groups (ADDG) and a 3x3 convolution, with a skip from the head
  (RCAN-style trunk, Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel
  Attention Networks", ECCV 2018);
- ADDG: ``blocks`` dual-domain blocks (ADDB) and a 3x3 convolution, with a long skip
  ``g(x) = x + conv(ADDB_B(...ADDB_1(x)))``;
- ADDB (adaptive dual-domain dynamic block), for a map ``x`` of ``C`` channels:

  * spatial branch ``s = gconv3x3(relu(conv3x3(x)))``, the second convolution grouped in
    ``group_conv`` channel groups;
  * frequency branch ``f = irfft2(relu(W [Re X; Im X]))`` with ``X = rfft2(x)`` (unitary,
    ``norm="ortho"``) and ``W`` a 1x1 convolution ``2C -> 2C`` mixing the real and imaginary
    parts of all channels at each frequency; the output ``2C`` channels are read back as
    real and imaginary parts (the Fourier unit of Chi, Jiang & Mu, "Fast Fourier
    Convolution", NeurIPS 2020, without batch normalisation). It sees the whole image;
  * dynamic weights (selective-kernel fusion, Li et al., "Selective Kernel Networks", CVPR
    2019, with average and max pooling as in CBAM, Woo et al., ECCV 2018): ``u = s + f``,
    ``d = [GAP(u); GMP(u)]`` (``2C``), ``a = softmax_branch(fc2(relu(fc1(d))))`` with
    ``fc1: 2C -> max(C/4, 4)``, ``fc2: -> 2C`` read as ``(2 branches, C)``, softmax over the
    two branches per channel;
  * output ``x + a_s s + a_f f`` (short skip).
- tail: sub-pixel up-sampling (Shi et al., CVPR 2016): 3x3 convolution ``width -> 4 width``,
  pixel shuffle by 2, ReLU, 3x3 convolution ``width -> 1``: the object estimate ``o``;
- degradation: ``y_hat = h * o``, the ``psf_size x psf_size`` kernel of :class:`RadialPSF`,
  the object continued by mirror reflection over ``psf_size // 2`` pixels (edge replication
  when the image is not larger than that).

Parameters (a convolution ``cin -> cout``, kernel ``k``, ``g`` groups has
``cin cout k^2 / g + cout``), with ``c = width``, ``m = max(c // 4, 4)``:
ADDB ``(9 c^2 + c) + (9 c^2 / g + c) + (4 c^2 + 2 c) + (2 c m + m) + (2 c m + 2 c)``;
ADDG ``blocks ADDB + 9 c^2 + c``; total ``(9 frames c + c) + groups ADDG + (9 c^2 + c) +
(36 c^2 + 4 c) + (9 c + 1) + n_radial``. :data:`DEFAULT_ARCH`: 34 748 parameters;
:data:`PAPER_ARCH`: 1 409 548.

Not a local network: the FFT branch and the global pooling make every output pixel depend
on the whole input, so tiled inference is not exact (``local = False``); run it on whole
images. Any input size works (``multiple = 1``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dps_stages import pairs
from dps_stages.nets.spec import TrainContext
from dps_stages.physics import Blur

__all__ = [
    "ADDB",
    "ADDG",
    "DEFAULT_ARCH",
    "OIDN",
    "PAPER_ARCH",
    "PRESETS",
    "FrequencyBranch",
    "RadialPSF",
]

#: CPU scale: trains in minutes on 2 cores (34 748 parameters; forward + backward of a batch
#: of 4 x 9 x 64 x 64 in 0.12-0.2 s on one shared CPU core; the paper scale about 3 s).
DEFAULT_ARCH: dict[str, Any] = {
    "frames": 9,
    "width": 16,
    "groups": 2,
    "blocks": 2,
    "group_conv": 4,
    "psf_size": 15,
    "n_radial": 11,
    "psf_sigma": 1.0,
}
#: The paper's scale: 4 groups of 4 blocks; width 64 (not stated in what could be read).
#: 1 409 548 parameters.
PAPER_ARCH: dict[str, Any] = {
    "frames": 9,
    "width": 64,
    "groups": 4,
    "blocks": 4,
    "group_conv": 4,
    "psf_size": 15,
    "n_radial": 11,
    "psf_sigma": 1.0,
}
PRESETS = {"small": DEFAULT_ARCH, "paper": PAPER_ARCH}


def _inverse_softplus(p: Tensor) -> Tensor:
    """``theta`` with ``softplus(theta) = p`` for ``p > 0``: ``p + log(1 - exp(-p))``."""
    return p + torch.log(-torch.expm1(-p))


# --------------------------------------------------------------------------- learnable PSF


class RadialPSF(nn.Module):
    """A learnable PSF that is non-negative, of unit sum and rotationally symmetric.

    Radial profile: ``n_radial`` free parameters ``theta_j`` at the radii
    ``r_j = j R / (n_radial - 1)``, ``R = (size // 2) sqrt(2)`` (the corner of the kernel),
    values ``p_j = softplus(theta_j) > 0``. Kernel: pixel ``(dy, dx)`` from the centre
    ``size // 2`` has the radius ``r = sqrt(dy^2 + dx^2)`` and the value ``k(r)``, the
    linear interpolation of the profile between its two nearest knots; then
    ``h = k / sum k``. Hence by construction:

    - ``h >= 0`` (a convex combination of positive values), in fact ``h > 0``;
    - ``sum h = 1`` (energy consistency), up to rounding;
    - ``h`` depends on the pixel only through ``dy^2 + dx^2`` (an integer): exactly
      invariant under the 8 symmetries of the square (rot90, transpose, flips), and equal on
      all pixels of one ring ``dy^2 + dx^2 = const`` (e.g. ``(0, 5)`` and ``(3, 4)``). It is
      the sampling of a radially symmetric function, piecewise linear in ``r``.

    The profile's overall scale is free (the normalisation removes it); initialisations put
    its peak at 1, where softplus is responsive.
    """

    idx: Tensor
    frac: Tensor

    def __init__(self, size: int = 15, n_radial: int = 11, sigma: float = 1.0) -> None:
        super().__init__()
        if size < 1 or size % 2 != 1:
            raise ValueError(f"psf_size must be odd and positive; got {size}")
        if n_radial < 2:
            raise ValueError(f"n_radial must be >= 2; got {n_radial}")
        if not sigma > 0:
            raise ValueError(f"psf_sigma must be > 0; got {sigma}")
        self.size, self.n_radial = int(size), int(n_radial)
        half = size // 2
        d = torch.arange(size, dtype=torch.float64) - half
        r = torch.sqrt(d[:, None] ** 2 + d[None, :] ** 2)  # exact squares: symmetric bit for bit
        step = max(half * math.sqrt(2.0), 1.0) / (n_radial - 1)
        pos = r / step
        idx = torch.clamp(pos.floor().long(), max=n_radial - 2)
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("frac", (pos - idx).to(torch.float32), persistent=False)
        self.knots = (torch.arange(n_radial, dtype=torch.float64) * step).tolist()
        self.theta = nn.Parameter(torch.zeros(n_radial))
        self.set_gaussian(sigma)

    def profile(self) -> Tensor:
        """The radial profile ``softplus(theta)`` at the knots (before normalisation)."""
        return F.softplus(self.theta)

    def forward(self) -> Tensor:
        """The kernel ``(size, size)``, non-negative, unit sum, rotationally symmetric."""
        p = self.profile()
        k = p[self.idx] * (1 - self.frac) + p[self.idx + 1] * self.frac
        return k / k.sum()

    def design(self) -> np.ndarray:
        """The linear map ``A`` (``size^2 x n_radial``) from the profile to the kernel."""
        a = np.zeros((self.size * self.size, self.n_radial))
        rows = np.arange(self.size * self.size)
        idx = self.idx.cpu().numpy().ravel()
        frac = self.frac.cpu().numpy().astype(np.float64).ravel()
        a[rows, idx] += 1 - frac
        a[rows, idx + 1] += frac
        return a

    @torch.no_grad()
    def set_profile(self, p: np.ndarray | Tensor) -> None:
        """Set ``softplus(theta) = p / max(p)``, values floored at ``1e-8`` of the peak."""
        p = torch.as_tensor(np.asarray(p, dtype=np.float64))
        if p.shape != (self.n_radial,) or not torch.isfinite(p).all() or p.max() <= 0:
            raise ValueError(f"profile must be {self.n_radial} finite values with a positive max")
        p = (p / p.max()).clamp(min=1e-8)
        self.theta.copy_(_inverse_softplus(p).to(self.theta))

    def set_gaussian(self, sigma: float) -> None:
        """Gaussian profile ``exp(-r^2 / (2 sigma^2))`` (``sigma`` in pixels)."""
        r = np.asarray(self.knots)
        self.set_profile(np.exp(-(r**2) / (2.0 * sigma**2)))

    def set_from(self, psf: np.ndarray) -> None:
        """Fit the profile to a PSF (centre at ``size // 2`` on both axes, any sum).

        The PSF is cropped or zero-padded about its centre to ``size x size`` and
        normalised to unit sum, and the profile is its non-negative least-squares fit
        ``min_{p >= 0} ||A p - psf||_2`` (``A`` from :meth:`design`), i.e. the best
        rotationally symmetric, piecewise-linear approximation on the kernel's pixels.
        """
        from scipy.optimize import nnls

        h = np.asarray(psf, dtype=np.float64)
        if h.ndim != 2 or not np.isfinite(h).all():
            raise ValueError(f"psf must be a finite 2D array; got shape {h.shape}")
        out = np.zeros((self.size, self.size))
        half = self.size // 2
        cy, cx = h.shape[0] // 2, h.shape[1] // 2
        ry = min(half, cy), min(half, h.shape[0] - 1 - cy)
        rx = min(half, cx), min(half, h.shape[1] - 1 - cx)
        out[half - ry[0] : half + ry[1] + 1, half - rx[0] : half + rx[1] + 1] = h[
            cy - ry[0] : cy + ry[1] + 1, cx - rx[0] : cx + rx[1] + 1
        ]
        if out.sum() <= 0:
            raise ValueError("psf must have a positive sum inside the kernel window")
        out /= out.sum()
        p, _ = nnls(self.design(), out.ravel())
        if p.max() <= 0:
            raise ValueError("the profile fit is zero; is the PSF centred?")
        self.set_profile(p)


# --------------------------------------------------------------------------- blocks


def _conv(cin: int, cout: int, k: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups)


class FrequencyBranch(nn.Module):
    """``irfft2(relu(W [Re X; Im X]))``, ``X = rfft2(x)`` (unitary), ``W`` a 1x1 conv."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = _conv(2 * ch, 2 * ch, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        spec = torch.fft.rfft2(x, norm="ortho")
        z = self.act(self.conv(torch.cat([spec.real, spec.imag], dim=1)))
        re, im = z.chunk(2, dim=1)
        return torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="ortho")


class ADDB(nn.Module):
    """Adaptive dual-domain dynamic block: spatial and frequency branches, dynamic weights.

    ``x + a_s s + a_f f`` with ``s = gconv3x3(relu(conv3x3(x)))``, ``f`` the
    :class:`FrequencyBranch` and ``(a_s, a_f)`` per channel from
    ``softmax(fc2(relu(fc1([GAP(s + f); GMP(s + f)]))))`` over the two branches.
    """

    def __init__(self, ch: int, group_conv: int = 4, reduction: int = 4) -> None:
        super().__init__()
        self.ch = ch
        self.conv1 = _conv(ch, ch, 3)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = _conv(ch, ch, 3, groups=group_conv)
        self.freq = FrequencyBranch(ch)
        hidden = max(ch // reduction, 4)
        self.fc1 = _conv(2 * ch, hidden, 1)
        self.fc2 = _conv(hidden, 2 * ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.conv2(self.act(self.conv1(x)))
        f = self.freq(x)
        u = s + f
        d = torch.cat([u.mean(dim=(-2, -1), keepdim=True), u.amax(dim=(-2, -1), keepdim=True)], 1)
        a = self.fc2(F.relu(self.fc1(d))).view(x.shape[0], 2, self.ch, 1, 1).softmax(dim=1)
        return x + a[:, 0] * s + a[:, 1] * f


class ADDG(nn.Module):
    """Residual group: ``x + conv3x3(ADDB_B(... ADDB_1(x)))`` (long skip)."""

    def __init__(self, ch: int, blocks: int, group_conv: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ADDB(ch, group_conv) for _ in range(blocks)))
        self.conv = _conv(ch, ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


# --------------------------------------------------------------------------- network


class OIDN(nn.Module):
    """OIDN ``(N, frames, H, W) -> (N, 1, 2H, 2W)`` (see the module docstring).

    ``forward`` returns the image-plane SIM image ``h * o``; :meth:`object` the object
    estimate ``o``; :meth:`psf` the learnable PSF ``h``.
    """

    scale = 2
    multiple = 1
    out_channels = 1
    local = False

    def __init__(
        self,
        frames: int = 9,
        width: int = 32,
        groups: int = 4,
        blocks: int = 4,
        group_conv: int = 4,
        psf_size: int = 15,
        n_radial: int = 11,
        psf_sigma: float = 1.0,
    ) -> None:
        super().__init__()
        if min(frames, width, groups, blocks, group_conv) < 1:
            raise ValueError("frames, width, groups, blocks and group_conv must be >= 1")
        if width % group_conv:
            raise ValueError(f"width {width} is not a multiple of group_conv {group_conv}")
        self.in_channels = frames
        self.arch = {
            "frames": int(frames),
            "width": int(width),
            "groups": int(groups),
            "blocks": int(blocks),
            "group_conv": int(group_conv),
            "psf_size": int(psf_size),
            "n_radial": int(n_radial),
            "psf_sigma": float(psf_sigma),
        }
        self.head = _conv(frames, width, 3)
        self.body = nn.Sequential(*(ADDG(width, blocks, group_conv) for _ in range(groups)))
        self.body_conv = _conv(width, width, 3)
        self.up = nn.Sequential(
            _conv(width, 4 * width, 3), nn.PixelShuffle(2), nn.ReLU(inplace=True)
        )
        self.tail = _conv(width, 1, 3)
        self.psf_module = RadialPSF(psf_size, n_radial, psf_sigma)

    # ------------------------------------------------------------------ PSF

    def psf(self) -> Tensor:
        """The learnable PSF ``(psf_size, psf_size)`` on the 2x grid (differentiable)."""
        return self.psf_module()

    def set_psf_from(self, init_psf: np.ndarray) -> None:
        """Initialise the PSF from a theoretical one (e.g. :func:`~dps_stages.optics.sr_psf`
        on the 2x grid): the rotationally symmetric least-squares fit of
        :meth:`RadialPSF.set_from`."""
        self.psf_module.set_from(init_psf)

    def degrade(self, obj: Tensor) -> Tensor:
        """Object plane to image plane: ``h * o`` per channel, same size (mirror-padded,
        :class:`~dps_stages.physics.Blur` with ``boundary="reflect"``)."""
        return Blur(self.psf().to(obj.dtype), boundary="reflect")(obj)

    # ------------------------------------------------------------------ forward

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"OIDN takes (N, {self.in_channels}, H, W); got {tuple(x.shape)}")

    def object(self, x: Tensor) -> Tensor:
        """The object-plane estimate ``o`` ``(N, 1, 2H, 2W)`` (before the PSF)."""
        self.check_input(x)
        feat = self.head(x)
        feat = feat + self.body_conv(self.body(feat))
        return self.tail(self.up(feat))

    def forward(self, x: Tensor) -> Tensor:
        """The image-plane SIM image ``h * o`` ``(N, 1, 2H, 2W)``: the reconstruction."""
        return self.degrade(self.object(x))

    def receptive_halo(self) -> int:
        raise NotImplementedError(
            "OIDN has global operations (FFT, global pooling): tiled inference is not exact; "
            "run it on whole images (tile=None)"
        )


def train_pairs(ctx: TrainContext, path: Any, validation: bool) -> Any:
    """The SIM network's pairs: denoised frames -> 2x ground truth."""
    return pairs.sim_pairs(
        path, ctx.args.denoise_model, restore=ctx.restore, target=ctx.args.target
    )


def train_loss(ctx: TrainContext) -> Any:
    """:class:`dps_stages.losses.OIDNLoss`; the learned PSF starts from the theoretical srPSF
    on the 2x grid."""
    from dps_stages.losses import OIDNLoss
    from dps_stages.optics import sr_psf

    a, pixel = ctx.args, ctx.optics.pixel_size / 2
    init = sr_psf(15, a.wavelength, a.na, pixel, a.modulation_factor)
    ctx.record["psf_init"] = {
        "psf": "sr",
        "pixel_size": pixel,
        "wavelength": a.wavelength,
        "na": a.na,
        "modulation_factor": a.modulation_factor,
    }
    w = ctx.weights
    return OIDNLoss(
        w=w["w"], psf_weight=w["psf"], charbonnier_weight=w["charbonnier"], init_psf=init
    )
