"""DenoiseNet: the 9 raw SIM frames -> their noise-free counterparts (DPS, Ye et al. 2024).

A :class:`~dps_stages.nets.resunet.ResUNet` with the ``frames`` raw frames (3 angles x 3
phases) as channels in and out and a global residual, ``y = x + f(x)``: the network predicts
the negative of the noise. Denoising all frames together lets it use their correlation (the
same sample under shifted illumination) while leaving the illumination pattern, which the
SIM reconstruction needs, in place.
"""

from __future__ import annotations

from dps_stages.nets.resunet import ResUNet

__all__ = ["DenoiseNet"]


class DenoiseNet(ResUNet):
    """``ResUNet(frames, frames, width, depth, blocks, residual=True)``, 1x."""

    #: the output is in the input's units: inference maps it back through the normalisation
    denormalise = True

    def __init__(self, frames: int = 9, width: int = 32, depth: int = 3, blocks: int = 1) -> None:
        super().__init__(frames, frames, width=width, depth=depth, blocks=blocks, residual=True)
        self.arch = {"frames": frames, "width": width, "depth": depth, "blocks": blocks}
