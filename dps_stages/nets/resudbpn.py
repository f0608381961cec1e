"""Res-U-DBPN: the 2x resolution-extending network of DPS (Ye et al., Intelligent Computing 2024).

A U-Net whose resampling is done by the back-projection units of DBPN (Haris, Shakhnarovich &
Ukita, CVPR 2018; :mod:`dps_stages.nets.blocks`) instead of pooling and transposed
convolutions, with residual blocks (EDSR, no normalisation) at every level, followed by a 2x
up-sampling head. With ``c_l = min(width 2^l, 8 width)``:

- head: 3x3 convolution ``in_channels -> c_0``;
- encoder level ``l = 0..depth-1``: ``blocks`` residual blocks at ``c_l``, giving ``F_l``;
  the down-projection unit ``(L, E_l) = DownProjection(F_l)`` goes to the next level, and a
  1x1 convolution ``c_l -> c_{l+1}`` widens ``L`` (none where the channels are capped);
- bottleneck: ``blocks`` residual blocks at ``c_depth``;
- decoder level ``l = depth-1..0``: a 1x1 convolution ``c_{l+1} -> c_l`` (none where equal),
  the up-projection unit to level ``l``, giving ``U_l``; then a 1x1 merge convolution
  ``3 c_l -> c_l`` of the concatenation ``[U_l, F_l, E_l]`` and ``blocks`` residual blocks;
- 2x head: a 6x6 transposed convolution with stride 2 and padding 2 (DBPN's 2x geometry),
  ``c_0 -> c_0``, and PReLU; tail: 3x3 convolution ``c_0 -> 1``;
- ``residual=True``: plus the nearest-neighbour 2x up-sampling of the input's channel mean
  (the input itself for one channel), ``y = f(x) + up_nearest(mean_c x)``;
- ``positive=True``: the output goes through a ReLU, since an intensity image is
  non-negative (the self-supervised objective alone lets the sharpened output ring below
  zero around bright structures).

The skip carries the back-projection error. ``E_l = up(down1(F_l)) - F_l`` is the part of the
level's features that the round trip through the coarser level fails to reproduce (the detail
that the down-sampling loses), so the decoder receives, next to the features ``F_l``, exactly
the residual that its coarse path cannot deliver.

The residual path is nearest-neighbour up-sampling rather than bicubic: it is a local
operation (each output pixel copies one input pixel), so tiles reproduce the whole image
exactly, and it hands the network the input intensities at the right scale (the network
learns the deblurring and the sub-pixel detail). Everything else is convolutions with zero
padding and point-wise activations, so the network is equivariant to shifts by ``2**depth``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dps_stages import pairs
from dps_stages.nets.blocks import (
    DownProjection,
    LocalNet,
    Reach,
    UpProjection,
    Window,
    conv1x1,
    conv3x3,
    res_stack,
    trace_reach,
)
from dps_stages.nets.registry import get
from dps_stages.nets.resunet import backbone_presets, level_channels
from dps_stages.nets.spec import TrainContext

__all__ = ["PRESETS", "ResUDBPN", "train_loss", "train_pairs"]

#: CPU scale: 416 k parameters, halo 64; paper scale: 34.97 M, halo 176
PRESETS = backbone_presets(in_channels=1, last={"residual": True, "positive": True})


def _resize(cin: int, cout: int) -> nn.Module:
    return conv1x1(cin, cout) if cin != cout else nn.Identity()


class ResUDBPN(LocalNet):
    """Res-U-DBPN: (N, in_channels, H, W) -> (N, 1, 2H, 2W) (see the module docstring)."""

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 32,
        depth: int = 3,
        blocks: int = 1,
        residual: bool = True,
        positive: bool = True,
    ) -> None:
        super().__init__()
        if min(in_channels, width) < 1 or depth < 0 or blocks < 0:
            raise ValueError("in_channels and width must be >= 1, depth and blocks >= 0")
        self.arch = self.init_arguments()
        self.in_channels, self.out_channels = in_channels, 1
        self.scale, self.multiple = 2, 2**depth
        self.residual, self.positive = residual, positive
        ch = level_channels(width, depth)
        self.head = conv3x3(in_channels, ch[0])
        self.encoders = nn.ModuleList(res_stack(ch[i], blocks) for i in range(depth))
        self.downs = nn.ModuleList(DownProjection(ch[i]) for i in range(depth))
        self.widen = nn.ModuleList(_resize(ch[i], ch[i + 1]) for i in range(depth))
        self.bottleneck = res_stack(ch[depth], blocks)
        # decoder modules are indexed by the level they produce (0: full resolution)
        self.narrow = nn.ModuleList(_resize(ch[i + 1], ch[i]) for i in range(depth))
        self.ups = nn.ModuleList(UpProjection(ch[i]) for i in range(depth))
        self.merges = nn.ModuleList(conv1x1(3 * ch[i], ch[i]) for i in range(depth))
        self.decoders = nn.ModuleList(res_stack(ch[i], blocks) for i in range(depth))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(ch[0], ch[0], 6, stride=2, padding=2), nn.PReLU()
        )
        self.tail = conv3x3(ch[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h = self.head(x)
        skips = []
        for enc, down, widen in zip(self.encoders, self.downs, self.widen, strict=True):
            h = enc(h)
            low, err = down.project(h)
            skips.append((h, err))
            h = widen(low)
        h = self.bottleneck(h)
        for i in reversed(range(len(skips))):
            up = self.ups[i](self.narrow[i](h))
            h = self.merges[i](torch.cat([up, *skips[i]], dim=1))
            h = self.decoders[i](h)
        out = self.tail(self.upsample(h))
        if self.residual:
            out = out + F.interpolate(x.mean(dim=1, keepdim=True), scale_factor=2, mode="nearest")
        # fluorescence is non-negative: without this the sharpening overshoots into negative
        # rings (a pixel-wise operation: tiles stay exact)
        return F.relu(out) if self.positive else out

    def reach(self, r: Window | None = None) -> Window:
        """The output's input window, traced through the same graph as :meth:`forward`."""
        r0 = Reach() if r is None else r
        r = trace_reach(self.head, r0)
        skips = []
        for enc, down, widen in zip(self.encoders, self.downs, self.widen, strict=True):
            r = trace_reach(enc, r)
            skips.append(r | down.error_reach(r))
            r = trace_reach(widen, trace_reach(down, r))
        r = trace_reach(self.bottleneck, r)
        for i in reversed(range(len(skips))):
            up = trace_reach(self.ups[i], trace_reach(self.narrow[i], r))
            r = trace_reach(self.decoders[i], trace_reach(self.merges[i], up | skips[i]))
        r = trace_reach(self.tail, trace_reach(self.upsample, r))
        return r | r0.upsample(2) if self.residual else r


def _image_pixel(ctx: TrainContext) -> float:
    """Pixel (nm) of the training images: the 2x grid (srPSF) or the camera grid of a
    simulated split, or a user's SIM image (``--pixel-size`` or the file's)."""
    if ctx.simulated:
        return ctx.optics.pixel_size / 2 if ctx.args.psf == "sr" else ctx.optics.pixel_size
    from dps_stages.io import DpsInputError, read_image

    pixel = ctx.args.pixel_size or read_image(ctx.args.data)[1].get("pixel_size")
    if not pixel:
        raise DpsInputError(
            f"{ctx.args.data}: the file gives no pixel size; pass "
            "--pixel-size (the SIM image's pixel, nm)"
        )
    return float(pixel)


def loss_psf(ctx: TrainContext, pixel_size: float) -> tuple[np.ndarray, dict[str, Any]]:
    """The PSF of the data term on the OUTPUT grid (half the input's pixel): a PSF file is
    brought to that grid by its pixel size; cut to at most 31 px (the loss's reach, cheap in
    every step) and renormalised."""
    out_pixel = pixel_size / 2
    psf = ctx.psf_for(out_pixel, True)
    if psf.shape[-1] > 31:
        c, h = psf.shape[-1] // 2, 15
        psf = psf[c - h : c + h + 1, c - h : c + h + 1]
        psf = psf / psf.sum()
    a = ctx.args
    info = {
        "psf": str(a.psf),
        "input_pixel_size": pixel_size,
        "output_pixel_size": out_pixel,
        "wavelength": a.wavelength,
        "na": a.na,
        "modulation_factor": a.modulation_factor,
        "size": int(psf.shape[-1]),
    }
    return psf.astype(np.float32), info


def train_pairs(ctx: TrainContext, path: Any, validation: bool) -> Any:
    """Self-supervised: simulated SIM-like (``--psf sr``, 2x grid) or widefield-like images
    (camera grid) with photon noise, or a user's own images."""
    if not ctx.simulated:
        return pairs.dbpn_pairs_images(path)
    grid = "2x" if ctx.args.psf == "sr" else "1x"
    pixel = ctx.optics.pixel_size / 2 if grid == "2x" else ctx.optics.pixel_size
    # the PSF that makes the images: untruncated, on the truth's grid
    psf = ctx.psf_for(pixel, False)
    return pairs.dbpn_pairs_simulated(
        path, psf, ctx.args.seed, grid=grid, stream=get("resudbpn").id
    )


def train_loss(ctx: TrainContext) -> Any:
    from dps_stages.losses import DBPNLoss

    psf, info = loss_psf(ctx, _image_pixel(ctx))
    ctx.record["psf"] = info
    w = ctx.weights
    return DBPNLoss(psf, beta_hessian=w["hessian"], beta_l1=w["sparsity"], w_ssim=w["ssim"])
