"""ArtifactNet: a Wiener SIM reconstruction with artifacts -> a clean one (DPS, Ye et al. 2024).

A :class:`~dps_stages.nets.resunet.ResUNet` from one channel to one channel, on the SIM grid,
with a global residual, ``y = x + f(x)``: the reconstruction artifacts (honeycomb patterns
from residual out-of-band noise, side lobes of the Wiener filter) are a correction of the
input, not a new image.
"""

from __future__ import annotations

from typing import Any

from dps_stages import pairs
from dps_stages.nets.resunet import ResUNet, backbone_presets
from dps_stages.nets.spec import TrainContext

__all__ = ["PRESETS", "ArtifactNet", "train_loss", "train_pairs"]

#: CPU scale: 144 k parameters, halo 24; paper scale: 17.19 M, halo 96
PRESETS = backbone_presets()


class ArtifactNet(ResUNet):
    """``ResUNet(1, 1, width, depth, blocks, residual=True)``, 1x."""

    def __init__(self, width: int = 32, depth: int = 3, blocks: int = 1) -> None:
        super().__init__(1, 1, width=width, depth=depth, blocks=blocks, residual=True)
        self.arch = self.init_arguments()


def train_pairs(ctx: TrainContext, path: Any, validation: bool) -> Any:
    """The chain's SIM reconstruction -> the 2x truth of ``--target``
    (:func:`dps_stages.pairs.artifact_pairs`)."""
    a = ctx.args
    return pairs.artifact_pairs(
        path,
        optics=ctx.optics,
        method=a.sim_method,
        denoise_model=a.denoise_model,
        sim_model=a.sim_model,
        background_radius=a.background_radius,
        sim_kw=ctx.sim_kw,
        restore=ctx.restore,
        sim_networks=ctx.sim_networks,
        target=a.target,
    )


def train_loss(ctx: TrainContext) -> Any:
    from dps_stages.losses import ArtifactLoss, PerceptualLoss

    perceptual = PerceptualLoss(ctx.args.vgg16_weights, seed=ctx.args.seed)
    w = ctx.weights
    return ArtifactLoss(perceptual, w_perceptual=w["perceptual"], w_ssim=w["ssim"])
