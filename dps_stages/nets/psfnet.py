"""PSFNet: the PSF-identification network (blurred, noisy patch -> its PSF).

The identification network of Nguyen, Sarron, Escande & Weiss, "Training identification
network for blind deconvolution in microscopy": it reads an observed patch ``y`` (one image
channel, plus optionally two constant channels with the known pupil cutoff ``fc`` and the
aberration bound ``theta_max``, see :mod:`dps_stages.psf_id`) and returns the PSF ``h_hat``
on a ``k x k`` grid centred at ``k // 2``. Only the overall structure (an encoder, a global
summary, a decoder to the PSF grid) comes from the paper's description; the layer counts,
widths and kernels below are ours.

Architecture, with ``c_l = min(width 2^l, 4 width)``:

- encoder level ``l = 0..depth-1``: 3x3 convolution ``c_{l-1} -> c_l`` (``c_{-1}`` =
  ``in_channels``) and ReLU, then a 4x4 convolution with stride 2 (padding 1) and ReLU, which
  halves the map: ``p -> p / 2^depth`` (4 x 4 for a 64 px patch and depth 4);
- summary: the channel-wise mean and maximum over all positions of every level's output
  (global pooling at each scale), ``2 sum_l c_l`` features. The PSF is shift-invariant, so
  its evidence may sit anywhere in the patch; pooling makes the estimate independent of
  where, and the network accepts any input size that is a multiple of ``2^depth`` (``patch``
  is the size it is trained and applied at, not a constraint of the layers). Pooling the
  fine levels too hands the dense part the small-scale statistics (edge sharpness, the
  highest frequencies present) that carry the pupil cutoff ``fc`` directly, rather than
  through the deepest features only;
- dense part: ``2 sum_l c_l -> 8 width`` and ReLU, then ``8 width -> 2 width s^2`` and ReLU,
  reshaped to ``(2 width, s, s)`` with ``s = ceil(k / 4)``;
- decoder: two 4x4 transposed convolutions with stride 2 (padding 1) and ReLU,
  ``2 width -> width -> width`` (``s -> 4 s``), then a 3x3 convolution ``width -> 1`` giving
  logits on ``4 s x 4 s``, centre-cropped to ``k x k`` (offset ``(4 s - k) // 2``);
- output: a softmax over the ``k^2`` logits of each example,
  ``h_hat[i] = exp(z_i) / sum_j exp(z_j)``, so that the PSF is positive and has unit sum (the
  energy conservation of a PSF normalised in its window) by construction, with no clipping
  that would stop gradients.

The network is global, not a stack of local operations: ``local = False``, and it has no
receptive-field trace (tiled inference does not apply; :func:`dps_stages.psf_id.identify`
runs it on whole patches). ``scale = 1`` is set for the registry's sake only and means
nothing here (the output is a PSF, not an image).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from torch import nn

from dps_stages.nets.blocks import LocalNet, Window
from dps_stages.nets.spec import TrainContext

__all__ = [
    "DEFAULT_ARCH",
    "PAPER_ARCH",
    "PRESETS",
    "PSFNet",
    "adapt_arch",
    "encoder_channels",
    "train_loss",
    "train_pairs",
]

#: CPU scale: 418 k parameters (418 k + 288 with ``in_channels=3``). Forward + backward of a
#: batch of 16 x 64 x 64 takes about 90 ms on one core; with the data drawn on the fly (about
#: 8 ms per example) 600 steps of batch 16 take 90 s on one thread, enough to beat the
#: mean-PSF predictor (see :mod:`dps_stages.psf_id`).
DEFAULT_ARCH: dict = {"in_channels": 1, "patch": 64, "psf_size": 21, "width": 16, "depth": 4}
#: GPU scale: 9.42 M parameters. The paper's exact sizes were not available to us; this is the
#: same network at four times the width and one level deeper, on 128 px patches and a 25 px
#: PSF.
PAPER_ARCH: dict = {"in_channels": 1, "patch": 128, "psf_size": 25, "width": 64, "depth": 5}
PRESETS = {"small": DEFAULT_ARCH, "paper": PAPER_ARCH}


def encoder_channels(width: int, depth: int) -> list[int]:
    """Channels of the encoder levels, ``min(width 2^l, 4 width)`` for ``l = 0..depth-1``."""
    return [min(width * 2**level, 4 * width) for level in range(depth)]


class PSFNet(LocalNet):
    """``(N, C, p, p) -> (N, 1, k, k)``: an observed patch to its PSF (non-negative, unit sum).

    ``C = in_channels`` (1, or 3 with the constant ``fc`` and ``theta_max`` channels), ``p`` a
    multiple of ``2**depth``, ``k = psf_size`` (odd). See the module docstring.
    """

    local = False

    def __init__(
        self,
        in_channels: int = 1,
        patch: int = 64,
        psf_size: int = 21,
        width: int = 32,
        depth: int = 4,
    ) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or depth < 1:
            raise ValueError("in_channels, width and depth must be >= 1")
        if psf_size < 3 or psf_size % 2 != 1:
            raise ValueError(f"psf_size must be odd and >= 3 (centre at k // 2); got {psf_size}")
        if patch < 2**depth or patch % 2**depth:
            raise ValueError(f"patch must be a positive multiple of 2**depth; got {patch}")
        self.arch = {
            "in_channels": int(in_channels),
            "patch": int(patch),
            "psf_size": int(psf_size),
            "width": int(width),
            "depth": int(depth),
        }
        self.in_channels, self.out_channels = int(in_channels), 1
        self.scale, self.multiple = 1, 2**depth
        self.psf_size = int(psf_size)
        ch = encoder_channels(width, depth)
        levels: list[nn.Module] = []
        cin = in_channels
        for c in ch:
            levels.append(
                nn.Sequential(
                    nn.Conv2d(cin, c, 3, padding=1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 4, stride=2, padding=1),
                    nn.ReLU(inplace=True),
                )
            )
            cin = c
        self.encoder = nn.ModuleList(levels)
        self.seed_size = math.ceil(psf_size / 4)
        self.seed_channels = 2 * width
        self.dense = nn.Sequential(
            nn.Linear(2 * sum(ch), 8 * width),
            nn.ReLU(inplace=True),
            nn.Linear(8 * width, self.seed_channels * self.seed_size**2),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(self.seed_channels, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 1, k, k)`` logits before the softmax."""
        self.check_input(x)
        pooled = []
        f = x
        for level in self.encoder:
            f = level(f)
            pooled += [f.mean(dim=(-2, -1)), f.amax(dim=(-2, -1))]
        summary = torch.cat(pooled, dim=1)
        seed = self.dense(summary).view(-1, self.seed_channels, self.seed_size, self.seed_size)
        z = self.decoder(seed)
        k, off = self.psf_size, (4 * self.seed_size - self.psf_size) // 2
        return z[..., off : off + k, off : off + k]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        n, k = z.shape[0], self.psf_size
        return torch.softmax(z.reshape(n, k * k), dim=1).view(n, 1, k, k)

    def reach(self, r: Window | None = None) -> Window:
        raise NotImplementedError(
            "PSFNet is global (pooling and dense layers): it has no receptive-field trace and "
            "does not run tiled"
        )

    def receptive_radius(self) -> float:
        raise NotImplementedError("PSFNet is global: every output depends on the whole patch")

    def receptive_halo(self) -> int:
        raise NotImplementedError("PSFNet is global: tiled inference does not apply")


def train_pairs(ctx: TrainContext, path: Any, validation: bool) -> Any:
    """Examples drawn on the fly (:class:`dps_stages.psf_id.PSFData`: random Zernike PSFs,
    simulated structures and natural images, the camera chain); validation from seed + 1."""
    from dps_stages.psf_id import PSFData

    a = ctx.args
    ctx.record |= {"give_params": a.give_params, "theta_max": a.theta_max}
    return PSFData(patch=a.patch, psf_size=ctx.arch["psf_size"], theta_max=a.theta_max,
                   give_params=a.give_params, seed=a.seed + int(validation))  # fmt: skip


def train_loss(ctx: TrainContext) -> Any:
    from dps_stages.psf_id import PSFIdentificationLoss

    return PSFIdentificationLoss(lam=ctx.weights["reblur"])


def adapt_arch(args: argparse.Namespace, arch: dict[str, Any]) -> dict[str, Any]:
    """Input channels (3 when told the optics) and the patch it reads."""
    return arch | {"in_channels": 3 if args.give_params else 1, "patch": args.patch}
