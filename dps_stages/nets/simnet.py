"""SIMNet: 9 (denoised) raw SIM frames -> the 2x super-resolved SIM image (DPS, Ye et al. 2024).

A :class:`~dps_stages.nets.resunet.ResUNet` with the ``frames`` raw frames as channels, one
output channel and ``upscale=2``: the network replaces the Wiener reconstruction (separation
of the frequency bands, shifting and recombination), learning it end to end on the 2x grid
of the SIM image. No global residual: the output lives on another grid than the input.
"""

from __future__ import annotations

from typing import Any

from dps_stages import pairs
from dps_stages.nets.resunet import ResUNet, backbone_presets
from dps_stages.nets.spec import TrainContext

__all__ = ["PRESETS", "SIMNet", "train_loss", "train_pairs"]

#: CPU scale: 154 k parameters, halo 24; paper scale: 17.34 M, halo 96
PRESETS = backbone_presets(frames=9)


class SIMNet(ResUNet):
    """``ResUNet(frames, 1, width, depth, blocks, upscale=2)``: (N, 9, H, W) -> (N, 1, 2H, 2W)."""

    def __init__(self, frames: int = 9, width: int = 32, depth: int = 3, blocks: int = 1) -> None:
        super().__init__(frames, 1, width=width, depth=depth, blocks=blocks, upscale=2)
        self.arch = self.init_arguments()


def train_pairs(ctx: TrainContext, path: Any, validation: bool) -> Any:
    """Denoised frames -> the 2x ground truth (:func:`dps_stages.pairs.sim_pairs`)."""
    return pairs.sim_pairs(
        path, ctx.args.denoise_model, restore=ctx.restore, target=ctx.args.target
    )


def train_loss(ctx: TrainContext) -> Any:
    from dps_stages.losses import SIMLoss

    return SIMLoss(ssim=ctx.weights["ssim"], l1=ctx.weights["l1"])
