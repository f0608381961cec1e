"""Res-U-Net: the encoder-decoder that DPS uses for denoising and SIM reconstruction.

A U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015) whose stages are EDSR residual blocks without normalisation
(Lim et al., CVPRW 2017), as in the Res-U-Net of DPS (Ye et al., "Universal and
High-Fidelity Resolution Extending for Fluorescence Microscopy Using a Single-Training
Physics-Informed Sparse Neural Network", Intelligent Computing 3, 0082, 2024). With
``c_l = min(width 2^l, 8 width)``:

- head: 3x3 convolution ``in_channels -> c_0``;
- encoder level ``l = 0..depth-1``: ``blocks`` residual blocks at ``c_l`` (their output is
  the skip ``s_l``), then a 2x2 convolution with stride 2 and ReLU, ``c_l -> c_{l+1}``;
- bottleneck: ``blocks`` residual blocks at ``c_depth``;
- decoder level ``l = depth-1..0``: 2x2 transposed convolution with stride 2 and ReLU,
  ``c_{l+1} -> c_l``, concatenation with ``s_l``, 1x1 merge convolution ``2 c_l -> c_l``,
  ``blocks`` residual blocks;
- ``upscale=2``: sub-pixel up-sampling at full width, a 3x3 convolution ``c_0 -> 4 c_0``,
  pixel shuffle by 2 and ReLU (Shi et al., "Real-Time Single Image and Video Super-Resolution
  Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016);
- tail: 3x3 convolution ``c_0 -> out_channels``;
- ``residual=True``: the input is added to the output (global residual learning, Kim, Lee &
  Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016),
  so the network learns the correction.

Parameters (a convolution ``cin -> cout`` with kernel ``k`` has ``cin cout k^2 + cout``):
``9 in c_0 + c_0`` (head), ``blocks (18 c^2 + 2 c)`` per level and the bottleneck in both
directions, ``4 c_l c_{l+1} + c_{l+1}`` (down), ``4 c_{l+1} c_l + c_l`` (up),
``2 c_l^2 + c_l`` (merge), ``36 c_0^2 + 4 c_0`` (up-sampling), ``9 c_0 out + out`` (tail).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dps_stages.nets.blocks import (
    Down,
    LocalNet,
    Reach,
    Up,
    Window,
    conv1x1,
    conv3x3,
    res_stack,
    trace_reach,
)

__all__ = ["BACKBONE_PAPER", "BACKBONE_SMALL", "ResUNet", "backbone_presets", "level_channels"]

#: The Res-U-Net backbone of the DPS networks at CPU scale (``NetworkSpec.small``) and at
#: the paper's scale (``NetworkSpec.paper``): base width, levels, residual blocks per level.
BACKBONE_SMALL = {"width": 16, "depth": 2, "blocks": 1}
BACKBONE_PAPER = {"width": 64, "depth": 3, "blocks": 2}


def backbone_presets(
    *, last: Mapping[str, Any] | None = None, **first: Any
) -> dict[str, dict[str, Any]]:
    """The ``small`` and ``paper`` presets of a network on this backbone: its own constructor
    arguments ``first``, then :data:`BACKBONE_SMALL` or :data:`BACKBONE_PAPER`, then its own
    arguments ``last`` (the order is the order of the ``arch`` a model records)."""
    tail = dict(last or {})
    return {
        "small": {**first, **BACKBONE_SMALL, **tail},
        "paper": {**first, **BACKBONE_PAPER, **tail},
    }


def level_channels(width: int, depth: int) -> list[int]:
    """Channels per level, ``min(width 2^l, 8 width)`` for ``l = 0..depth``."""
    return [min(width * 2**level, 8 * width) for level in range(depth + 1)]


class ResUNet(LocalNet):
    """Res-U-Net ``in_channels -> out_channels`` at 1x or 2x (see the module docstring)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        depth: int = 3,
        blocks: int = 1,
        upscale: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, width) < 1 or depth < 0 or blocks < 0:
            raise ValueError("channels and width must be >= 1, depth and blocks >= 0")
        if upscale not in (1, 2):
            raise ValueError(f"upscale must be 1 or 2; got {upscale}")
        if residual and (in_channels != out_channels or upscale != 1):
            raise ValueError("residual=True needs in_channels == out_channels and upscale 1")
        self.arch = self.init_arguments()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.scale, self.multiple = upscale, 2**depth
        self.residual = residual
        ch = level_channels(width, depth)
        self.head = conv3x3(in_channels, ch[0])
        self.encoders = nn.ModuleList(res_stack(ch[i], blocks) for i in range(depth))
        self.downs = nn.ModuleList(Down(ch[i], ch[i + 1]) for i in range(depth))
        self.bottleneck = res_stack(ch[depth], blocks)
        # decoder modules are indexed by the level they produce (0: full resolution)
        self.ups = nn.ModuleList(Up(ch[i + 1], ch[i]) for i in range(depth))
        self.merges = nn.ModuleList(conv1x1(2 * ch[i], ch[i]) for i in range(depth))
        self.decoders = nn.ModuleList(res_stack(ch[i], blocks) for i in range(depth))
        self.upsample = (
            nn.Sequential(conv3x3(ch[0], 4 * ch[0]), nn.PixelShuffle(2), nn.ReLU(inplace=True))
            if upscale == 2
            else nn.Identity()
        )
        self.tail = conv3x3(ch[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h = self.head(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for i in reversed(range(len(skips))):
            h = self.merges[i](torch.cat([self.ups[i](h), skips[i]], dim=1))
            h = self.decoders[i](h)
        out = self.tail(self.upsample(h))
        return out + x if self.residual else out

    def reach(self, r: Window | None = None) -> Window:
        """The output's input window, traced through the same graph as :meth:`forward`."""
        r0 = Reach() if r is None else r
        r = trace_reach(self.head, r0)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            r = trace_reach(enc, r)
            skips.append(r)
            r = trace_reach(down, r)
        r = trace_reach(self.bottleneck, r)
        for i in reversed(range(len(skips))):
            r = trace_reach(self.merges[i], trace_reach(self.ups[i], r) | skips[i])
            r = trace_reach(self.decoders[i], r)
        r = trace_reach(self.tail, trace_reach(self.upsample, r))
        return r | r0 if self.residual else r
