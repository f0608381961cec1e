"""What a network of the chain is, in one object: :class:`NetworkSpec`.

A spec holds everything the rest of the project needs to know about one network: its name and
id, its architecture class and presets (``small`` for a CPU, ``paper`` for a GPU), how its
training data are built, its loss with its own terms and their default weights, its training
defaults and extra settings, what it reads (a denoise model, a SIM model, Wiener settings,
VGG16 weights, a PSF) and whether it tiles. The command ``dps train <net>``, the Snakemake
training rules, the schema's ``networks.<net>`` block and every list of names are made from
the specs of :mod:`dps_stages.nets.registry` (in the spirit of CSBDeep's ``Config`` plus model
object: a model is rebuilt from a name and a plain-typed configuration).

A spec is plain data: its names, config keys, loss terms and inputs are read without torch (the
Snakefile parses them for every ``snakemake`` call, ``dps --help`` builds its parsers from
them). What needs torch, the architecture class, its presets, the pair builder and the loss,
lives in the network's home (``dps_stages/nets/<net>.py``), which the spec names and imports
on first use (:attr:`NetworkSpec.module`). This module imports no other part of ``dps_stages``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

__all__ = [
    "INPUTS",
    "L1_TERM",
    "SSIM_TERM",
    "LossTerm",
    "TARGET",
    "NetworkSpec",
    "Setting",
    "TrainContext",
    "TrainDefaults",
]

#: What a network's training may read besides its data (the ``inputs`` of a spec):
#: ``denoise_model`` (the trained denoiser, ``--denoise-model``), ``sim_model`` (the SIM
#: network of ``networks.sim_method``, ``--sim-model``), ``sim_options`` (Wiener SIM and
#: background settings, ``--sim-method``, ``--wiener``, ...), ``vgg16_weights``
#: (``--vgg16-weights``), ``psf`` (``--psf``, the PSF of a self-supervised data term).
INPUTS = ("denoise_model", "sim_model", "sim_options", "vgg16_weights", "psf")
#: Where a network's training examples come from (the ``data`` of a spec): ``simulated`` (a
#: split of ``dps simulate`` with ground truth), ``simulated_or_images`` (that, or a user's own
#: images: self-supervised), ``generated`` (drawn on the fly, no ``--data``).
DATA_KINDS = ("simulated", "simulated_or_images", "generated")


@dataclass(frozen=True)
class LossTerm:
    """One weight of a network's loss: config key ``networks.<net>.loss.<key>``, command-line
    flag ``flag`` (``dps train <net> --w-ssim``), default and bounds."""

    key: str
    default: float
    flag: str
    help: str
    maximum: float | None = None


@dataclass(frozen=True)
class Setting:
    """A network's own config key outside its loss (``networks.<net>.<key>``) and its flag."""

    key: str
    default: float | str
    flag: str
    help: str
    exclusive_minimum: float | None = None
    #: a choice among names instead of a number
    choices: tuple[str, ...] | None = None


#: The loss terms that several networks weigh alike: ``1 - SSIM`` and ``L1`` against the target.
SSIM_TERM = LossTerm("ssim", 1.0, "--w-ssim", "weight of 1 - SSIM")
L1_TERM = LossTerm("l1", 1.0, "--w-l1", "weight of L1")

#: the SIM-grid truth a SIM-stage network learns: the SIM-passband image (the object through
#: the srPSF, what SIM resolves; DPS's "SIM ground truth") or the binned object itself
TARGET = Setting(
    "target",
    "sim_passband",
    "--target",
    "truth it learns: sim_passband (the object through the srPSF) or object",
    choices=("sim_passband", "object"),
)


@dataclass(frozen=True)
class TrainDefaults:
    """The training budget's defaults (``networks.<net>.steps`` ... and ``dps train`` flags)."""

    steps: int = 300
    batch: int = 8
    patch: int = 64
    lr: float = 1e-3


@dataclass
class TrainContext:
    """What a spec's ``pairs`` and ``loss`` functions get from ``dps train``.

    ``args``: the parsed options; ``optics``: :class:`dps_stages.optics.Optics` of the data
    (pixel from ``--pixel-size`` or the simulated split; ``None`` for generated data);
    ``simulated``: whether ``--data`` is a simulated split; ``weights``: the loss weights by
    key; ``psf_for(pixel, regrid)``: the PSF that ``--psf`` selects, on a grid of ``pixel``
    nm (as ``dps deconvolve`` makes it); ``arch``: the architecture being trained;
    ``sim_kw``: the Wiener SIM settings (keywords of :func:`dps_stages.sim.reconstruct`);
    ``record``: entries added to the model's ``record.json``; ``restore``: the runner of
    trained models that pair builders take (:data:`dps_stages.pairs.Restore`); ``sim_networks``:
    the SIM networks by method name (:data:`dps_stages.nets.registry.SIM_NETWORKS`). The last
    two are handed in so that a network's home needs neither the registry nor inference.
    """

    args: argparse.Namespace
    optics: Any
    simulated: bool
    weights: dict[str, float]
    psf_for: Callable[[float, bool], Any]
    arch: dict[str, Any] = field(default_factory=dict)
    sim_kw: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    restore: Callable[..., Any] | None = None
    sim_networks: Mapping[str, str] = field(default_factory=dict)


#: ``pairs(ctx, path, validation)``: the training (``validation=False``) or validation data
#: of ``path`` (``None`` for generated data): :class:`dps_stages.pairs.Pairs` or a source
#: with the same interface.
PairsFn = Callable[[TrainContext, Any, bool], Any]
#: ``loss(ctx)``: the loss module (:mod:`dps_stages.losses`), weighted by ``ctx.weights``.
LossFn = Callable[[TrainContext], Any]


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the chain (see the module docstring).

    ``name``: its name on the command line, in the config and in model folders; ``id``: a
    small integer, unique, that seeds its training (never reuse one); ``home``: the module of
    its architecture and training (imported on first use, :attr:`module`), which defines the
    class ``model`` (a :class:`torch.nn.Module` built as ``cls(**arch)``), ``PRESETS`` (the
    ``small`` and ``paper`` architectures), ``train_pairs`` (:data:`PairsFn`), ``train_loss``
    (:data:`LossFn`) and optionally ``adapt_arch(args, arch)`` (the architecture completed
    from the options); ``summary``: input -> output, one line; ``loss_terms``: its own weights
    only; ``data``: one of :data:`DATA_KINDS`; ``inputs``: a subset of :data:`INPUTS`;
    ``settings``: its own extra config keys; ``defaults``: the training budget;
    ``sim_method``: the value of ``networks.sim_method`` that selects this network as the SIM
    reconstruction (``None``: not a SIM method); ``depth_key``: the architecture key that
    ``--depth`` sets; ``variants``: model folders trained from this spec and the ``dps train``
    options that make each (default: one model named after the network); ``cli_flags(parser)``:
    command-line options of its own that are not config keys (argparse only, no torch).
    """

    name: str
    id: int
    home: str
    model: str
    summary: str
    loss_terms: tuple[LossTerm, ...]
    data: str = "simulated"
    inputs: frozenset[str] = frozenset()
    settings: tuple[Setting, ...] = ()
    defaults: TrainDefaults = TrainDefaults()
    sim_method: str | None = None
    depth_key: str = "depth"
    variants: Mapping[str, tuple[str, ...]] | None = None
    cli_flags: Callable[[argparse.ArgumentParser], None] | None = None

    def __post_init__(self) -> None:
        if self.data not in DATA_KINDS:
            raise ValueError(f"{self.name}: data must be one of {DATA_KINDS}; got {self.data!r}")
        unknown = set(self.inputs) - set(INPUTS)
        if unknown:
            raise ValueError(f"{self.name}: unknown inputs {sorted(unknown)}; known {INPUTS}")
        object.__setattr__(self, "inputs", frozenset(self.inputs))
        object.__setattr__(self, "variants", _frozen(self.variants or {self.name: ()}))

    @property
    def module(self) -> ModuleType:
        """Its home, imported on first use (it imports torch)."""
        return importlib.import_module(self.home)

    @property
    def cls(self) -> type:
        """The architecture class (``model`` of its home)."""
        return getattr(self.module, self.model)

    @property
    def small(self) -> Mapping[str, Any]:
        """The CPU-scale architecture preset (read-only)."""
        return _frozen(self.module.PRESETS["small"])

    @property
    def paper(self) -> Mapping[str, Any]:
        """The paper-scale architecture preset (read-only)."""
        return _frozen(self.module.PRESETS["paper"])

    @property
    def pairs(self) -> PairsFn:
        """Its pair builder (``train_pairs`` of its home)."""
        return self.module.train_pairs

    @property
    def loss(self) -> LossFn:
        """Its loss builder (``train_loss`` of its home)."""
        return self.module.train_loss

    @property
    def adapt_arch(self) -> Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]] | None:
        """The architecture completed from the options (``adapt_arch`` of its home, if any)."""
        return getattr(self.module, "adapt_arch", None)

    @property
    def tiles(self) -> bool:
        """Whether tiled inference is exact (a stack of local operations, ``cls.local``)."""
        return bool(getattr(self.cls, "local", True))

    @property
    def self_supervised(self) -> bool:
        """Whether it can train without ground truth (on a user's own images)."""
        return self.data == "simulated_or_images"

    @property
    def denormalise(self) -> bool:
        """Whether its output is mapped back to the input's units at inference."""
        return bool(getattr(self.cls, "denormalise", False))

    def arch(self, scale: str = "small") -> dict[str, Any]:
        """A fresh copy of the ``small`` or ``paper`` preset."""
        if scale not in ("small", "paper"):
            raise ValueError(f"scale must be 'small' or 'paper'; got {scale!r}")
        return dict(self.small if scale == "small" else self.paper)

    def loss_defaults(self) -> dict[str, float]:
        """Its loss weights by config key, at their defaults."""
        return {t.key: t.default for t in self.loss_terms}
