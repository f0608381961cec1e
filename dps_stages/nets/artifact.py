"""ArtifactNet: a Wiener SIM reconstruction with artifacts -> a clean one (DPS, Ye et al. 2024).

A :class:`~dps_stages.nets.resunet.ResUNet` from one channel to one channel, on the SIM grid,
with a global residual, ``y = x + f(x)``: the reconstruction artifacts (honeycomb patterns
from residual out-of-band noise, side lobes of the Wiener filter) are a correction of the
input, not a new image.
"""

from __future__ import annotations

from dps_stages.nets.resunet import ResUNet

__all__ = ["ArtifactNet"]


class ArtifactNet(ResUNet):
    """``ResUNet(1, 1, width, depth, blocks, residual=True)``, 1x."""

    def __init__(self, width: int = 32, depth: int = 3, blocks: int = 1) -> None:
        super().__init__(1, 1, width=width, depth=depth, blocks=blocks, residual=True)
        self.arch = {"width": width, "depth": depth, "blocks": blocks}
