"""The networks of the chain, by name: DPS (Ye et al., Intelligent Computing 2024), OIDN and
PSF identification. Each has one home, ``dps_stages/nets/<net>.py`` (its module, presets,
training pairs and loss), and its :class:`~dps_stages.nets.spec.NetworkSpec` (plain data, no
torch) in :mod:`dps_stages.nets.registry`.

===========  ===================  =======================================  =====
name         class                input -> output                          scale
===========  ===================  =======================================  =====
``denoise``  :class:`DenoiseNet`  9 raw SIM frames -> 9 denoised frames    1
``sim``      :class:`SIMNet`      9 (denoised) frames -> SIM image         2
``artifact`` :class:`ArtifactNet` Wiener SIM image -> artifact-free image  1
``resudbpn`` :class:`ResUDBPN`    image -> resolution-extended image       2
``oidn``     :class:`OIDN`        9 (denoised) frames -> SIM image         2
``psfid``    :class:`PSFNet`      blurred noisy image -> its PSF           -
===========  ===================  =======================================  =====

Every DPS network is a stack of local operations (no normalisation, nothing global; OIDN and
PSFNet are global, ``local = False``) and carries
``scale``, ``multiple``, ``in_channels``, ``out_channels``, ``arch`` (its constructor keyword
arguments: ``build(name, net.arch)`` rebuilds it) and ``receptive_halo()``, the halo that
makes tiled inference exact (:mod:`dps_stages.nets.blocks`).

Two sizes, the presets of each spec: :func:`paper_arch`, the paper's scale (GPU training),
and :func:`default_arch`, small enough to train in minutes on a CPU.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dps_stages.nets.registry import REGISTRY, get

if TYPE_CHECKING:
    from torch import nn

    from dps_stages.nets.artifact import ArtifactNet
    from dps_stages.nets.blocks import LocalNet, Reach
    from dps_stages.nets.denoise import DenoiseNet
    from dps_stages.nets.oidn import OIDN
    from dps_stages.nets.psfnet import PSFNet
    from dps_stages.nets.resudbpn import ResUDBPN
    from dps_stages.nets.resunet import ResUNet
    from dps_stages.nets.simnet import SIMNet

__all__ = [
    "NETWORKS",
    "REGISTRY",
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
    "get",
    "paper_arch",
]

#: where each class lives; imported (with torch) on first use, so that the registry and the
#: specs stay torch-free (the Snakefile imports them)
_LAZY = {
    "ArtifactNet": "dps_stages.nets.artifact",
    "DenoiseNet": "dps_stages.nets.denoise",
    "LocalNet": "dps_stages.nets.blocks",
    "OIDN": "dps_stages.nets.oidn",
    "PSFNet": "dps_stages.nets.psfnet",
    "Reach": "dps_stages.nets.blocks",
    "ResUDBPN": "dps_stages.nets.resudbpn",
    "ResUNet": "dps_stages.nets.resunet",
    "SIMNet": "dps_stages.nets.simnet",
}


def __getattr__(name: str) -> Any:
    """The classes and :data:`NETWORKS` (network name -> module class, from the registry),
    imported on first use."""
    if name == "NETWORKS":
        return {n: spec.cls for n, spec in REGISTRY.items()}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(name: str, arch: dict[str, Any] | None = None) -> LocalNet:
    """The network ``name`` with the keyword arguments ``arch`` (``None``: the defaults)."""
    return get(name).cls(**(arch or {}))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def paper_arch(name: str) -> dict[str, Any]:
    """The paper-scale architecture of network ``name`` (a fresh dict)."""
    return get(name).arch("paper")


def default_arch(name: str) -> dict[str, Any]:
    """The small CPU-scale architecture of network ``name`` (a fresh dict)."""
    return get(name).arch("small")
