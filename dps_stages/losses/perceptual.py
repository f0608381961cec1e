"""VGG16 feature reconstruction loss (:class:`PerceptualLoss`, Johnson, Alahi & Fei-Fei,
ECCV 2016) on the features of :mod:`dps_stages.nets.vgg`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dps_stages.nets.vgg import LAYER_INDEX, load_vgg16

from .terms import _check_pair, _floats

__all__ = ["NINE_LAYERS", "PerceptualLoss"]

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
