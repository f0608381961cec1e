"""The DPS networks (Ye et al., Intelligent Computing 2024), by name.

===========  ===================  =======================================  =====
name         class                input -> output                          scale
===========  ===================  =======================================  =====
``denoise``  :class:`DenoiseNet`  9 raw SIM frames -> 9 denoised frames    1
``sim``      :class:`SIMNet`      9 (denoised) frames -> SIM image         2
``artifact`` :class:`ArtifactNet` Wiener SIM image -> artifact-free image  1
``resudbpn`` :class:`ResUDBPN`    image -> resolution-extended image       2
===========  ===================  =======================================  =====

Every network is a stack of local operations (no normalisation, nothing global) and carries
``scale``, ``multiple``, ``in_channels``, ``out_channels``, ``arch`` (its constructor keyword
arguments: ``build(name, net.arch)`` rebuilds it) and ``receptive_halo()``, the halo that
makes tiled inference exact (:mod:`dps_stages.nets.blocks`).

Two sizes: :func:`paper_arch`, the paper's scale (GPU training), and :func:`default_arch`,
small enough to train in minutes on a CPU.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dps_stages.nets.artifact import ArtifactNet
from dps_stages.nets.blocks import LocalNet, Reach
from dps_stages.nets.denoise import DenoiseNet
from dps_stages.nets.oidn import DEFAULT_ARCH as _OIDN_DEFAULT
from dps_stages.nets.oidn import OIDN
from dps_stages.nets.oidn import PAPER_ARCH as _OIDN_PAPER
from dps_stages.nets.psfnet import DEFAULT_ARCH as _PSF_DEFAULT
from dps_stages.nets.psfnet import PAPER_ARCH as _PSF_PAPER
from dps_stages.nets.psfnet import PSFNet
from dps_stages.nets.resudbpn import ResUDBPN
from dps_stages.nets.resunet import ResUNet
from dps_stages.nets.simnet import SIMNet

__all__ = [
    "NETWORKS",
    "ArtifactNet",
    "DenoiseNet",
    "LocalNet",
    "OIDN",
    "PSFNet",
    "Reach",
    "ResUDBPN",
    "ResUNet",
    "SIMNet",
    "build",
    "count_parameters",
    "default_arch",
    "paper_arch",
]

NETWORKS: dict[str, type[LocalNet]] = {
    "denoise": DenoiseNet,
    "sim": SIMNet,
    "artifact": ArtifactNet,
    "resudbpn": ResUDBPN,
    "oidn": OIDN,
    "psfid": PSFNet,
}

# Paper scale: 64 channels at full resolution, doubling to 512 over 3 levels, 2 residual
# blocks per stage. Parameters: denoise 17.20 M, sim 17.34 M, artifact 17.19 M, resudbpn
# 34.97 M; tiling halos 96, 96, 96 and 176 input pixels.
_PAPER = {
    "denoise": {"frames": 9, "width": 64, "depth": 3, "blocks": 2},
    "sim": {"frames": 9, "width": 64, "depth": 3, "blocks": 2},
    "artifact": {"width": 64, "depth": 3, "blocks": 2},
    "resudbpn": {
        "in_channels": 1,
        "width": 64,
        "depth": 3,
        "blocks": 2,
        "residual": True,
        "positive": True,
    },
}
# CPU scale: trains in minutes on 2 cores. Parameters: denoise 146 k, sim 154 k, artifact
# 144 k, resudbpn 416 k; halos 24, 24, 24, 64. Forward + backward of a batch of 4 x 64 x 64
# on 2 cores: about 30, 55, 30 and 85 ms (depth 3: 35, 60, 35, 100 ms).
_DEFAULT = {
    "denoise": {"frames": 9, "width": 16, "depth": 2, "blocks": 1},
    "sim": {"frames": 9, "width": 16, "depth": 2, "blocks": 1},
    "artifact": {"width": 16, "depth": 2, "blocks": 1},
    "resudbpn": {
        "in_channels": 1,
        "width": 16,
        "depth": 2,
        "blocks": 1,
        "residual": True,
        "positive": True,
    },
}


_PAPER["oidn"] = _OIDN_PAPER
_DEFAULT["oidn"] = _OIDN_DEFAULT
_PAPER["psfid"] = _PSF_PAPER
_DEFAULT["psfid"] = _PSF_DEFAULT


def _lookup(table: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    if name not in table:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return dict(table[name])


def build(name: str, arch: dict[str, Any] | None = None) -> LocalNet:
    """The network ``name`` with the keyword arguments ``arch`` (``None``: the defaults)."""
    cls = NETWORKS.get(name)
    if cls is None:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return cls(**(arch or {}))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def paper_arch(name: str) -> dict[str, Any]:
    """The paper-scale architecture of network ``name`` (a fresh dict)."""
    return _lookup(_PAPER, name)


def default_arch(name: str) -> dict[str, Any]:
    """The small CPU-scale architecture of network ``name`` (a fresh dict)."""
    return _lookup(_DEFAULT, name)
