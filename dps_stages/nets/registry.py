"""The registry of the networks: one :class:`~dps_stages.nets.spec.NetworkSpec` per network.

Adding a network: write its home ``dps_stages/nets/<net>.py`` (the module, its ``PRESETS``,
its ``train_pairs`` and ``train_loss``) and declare its spec below. ``dps train <net>``, the
Snakemake rule ``train_<net>``, the schema block ``networks.<net>`` and every list of names
(:data:`NAMES`, :data:`NET_IDS`, :data:`SIM_NETWORKS`, ``dps_stages.nets.NETWORKS``) follow.

This module and the specs are plain data and import no torch: the Snakefile reads them on
every parse, ``dps --help`` builds its parsers from them. A spec imports its home (and torch)
only when its architecture, presets, pairs or loss are asked for.
"""

from __future__ import annotations

import argparse
from typing import Any

from dps_stages.nets.spec import (
    L1_TERM,
    SSIM_TERM,
    TARGET,
    LossTerm,
    NetworkSpec,
    Setting,
    TrainDefaults,
)

__all__ = [
    "MODELS",
    "NAMES",
    "NET_IDS",
    "REGISTRY",
    "SIM_NETWORKS",
    "get",
    "network_schema",
]


def _psfid_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--give-params", action="store_true",
                   help="the network also reads fc and theta_max (known optics)")  # fmt: skip


#: every network, in chain order: name -> spec
REGISTRY: dict[str, NetworkSpec] = {
    s.name: s
    for s in (
        NetworkSpec(
            name="denoise",
            id=1,
            home="dps_stages.nets.denoise",
            model="DenoiseNet",
            summary="9 raw SIM frames -> 9 denoised frames (1x)",
            loss_terms=(
                LossTerm("ssim", 1.0, "--w-ssim", "a, weight of 1 - SSIM"),
                LossTerm("l1", 1.0, "--w-l1", "b, weight of L1"),
                LossTerm("fft", 0.1, "--w-fft", "e, weight of L1 of |FFT(x) - FFT(y)|"),
            ),
        ),
        NetworkSpec(
            name="sim",
            id=2,
            home="dps_stages.nets.simnet",
            model="SIMNet",
            summary="9 (denoised) frames -> SIM image (2x)",
            loss_terms=(SSIM_TERM, L1_TERM),
            inputs=frozenset({"denoise_model"}),
            sim_method="dps",
            settings=(TARGET,),
        ),
        NetworkSpec(
            name="artifact",
            id=3,
            home="dps_stages.nets.artifact",
            model="ArtifactNet",
            summary="SIM image with artifacts -> artifact-free image (1x)",
            loss_terms=(
                LossTerm("perceptual", 1.0, "--w-perceptual", "weight of the VGG16 feature loss"),
                SSIM_TERM,
            ),
            inputs=frozenset({"denoise_model", "sim_model", "sim_options", "vgg16_weights"}),
            settings=(TARGET,),
            # the perceptual loss converges slower than the others (the default run's budget)
            defaults=TrainDefaults(steps=450),
        ),
        NetworkSpec(
            name="resudbpn",
            id=4,
            home="dps_stages.nets.resudbpn",
            model="ResUDBPN",
            summary="image -> resolution-extended image (2x), self-supervised",
            loss_terms=(
                LossTerm("ssim", 1.0, "--w-ssim", "weight of 1 - SSIM of the re-blurred output"),
                LossTerm("hessian", 0.01, "--beta-hessian", "beta of the Hessian penalty"),
                LossTerm("sparsity", 0.01, "--beta-l1", "beta of the L1 norm"),
            ),
            data="simulated_or_images",
            inputs=frozenset({"psf"}),
            # SIM images (srPSF on the 2x grid) and widefield images (Airy PSF)
            variants={"resudbpn": ("--psf", "sr"), "resudbpn_widefield": ("--psf", "airy")},
        ),
        NetworkSpec(
            name="oidn",
            id=5,
            home="dps_stages.nets.oidn",
            model="OIDN",
            summary="9 (denoised) frames -> SIM image (2x), learned PSF (Jin et al. 2024)",
            loss_terms=(
                LossTerm("w", 0.8, "--w-oidn", "w of w L1 + (1 - w)(1 - SSIM)", maximum=1.0),
                LossTerm("psf", 1e-3, "--w-psf", "weight of the PSF prior (CE + RS)"),
                LossTerm(
                    "charbonnier", 0.01, "--w-charbonnier", "Charbonnier loss of the FFT difference"
                ),
            ),
            inputs=frozenset({"denoise_model"}),
            sim_method="oidn",
            settings=(TARGET,),
            depth_key="groups",  # OIDN's depth is its number of residual groups
        ),
        NetworkSpec(
            name="psfid",
            id=6,
            home="dps_stages.nets.psfnet",
            model="PSFNet",
            summary="blurred noisy image -> its PSF (Nguyen, Sarron, Escande, Weiss)",
            loss_terms=(LossTerm("reblur", 1.0, "--w-reblur", "lambda of ||h_hat * x - y||_1"),),
            data="generated",
            settings=(
                Setting(
                    "theta_max",
                    0.15,
                    "--theta-max",
                    "largest Zernike coefficient of the training PSFs, waves",
                    exclusive_minimum=0,
                ),
            ),
            cli_flags=_psfid_flags,
            # 600 x 16 generated examples (dps_stages.nets.psfnet)
            defaults=TrainDefaults(steps=600, batch=16),
        ),
    )
}

NAMES: tuple[str, ...] = tuple(REGISTRY)
#: seeds of each network's training (``torch.manual_seed(seed * 1000 + id)``)
NET_IDS: dict[str, int] = {s.name: s.id for s in REGISTRY.values()}
#: SIM-reconstruction networks by the name of the method (config ``networks.sim_method``)
SIM_NETWORKS: dict[str, str] = {s.sim_method: s.name for s in REGISTRY.values() if s.sim_method}
#: model folders trained from the specs (``results/models/<model>``) -> network
MODELS: dict[str, str] = {m: s.name for s in REGISTRY.values() for m in s.variants}

if len(set(NET_IDS.values())) != len(NET_IDS):
    raise RuntimeError(f"network ids must be unique: {NET_IDS}")


def get(name: str) -> NetworkSpec:
    """The spec of network ``name``; ``KeyError`` naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(REGISTRY)}") from None


def network_schema(spec: NetworkSpec) -> dict[str, Any]:
    """The JSON schema of ``networks.<net>`` (``$defs/net_<net>`` of config.schema.yaml):
    the shared keys and the network's own loss terms and settings only, with defaults."""
    d = spec.defaults
    loss = {}
    for t in spec.loss_terms:
        loss[t.key] = {"type": "number", "minimum": 0, "default": t.default,
                       "description": t.help}  # fmt: skip
        if t.maximum is not None:
            loss[t.key]["maximum"] = t.maximum
    props: dict[str, Any] = {
        "model": {"type": ["string", "null"], "default": None,
                  "description": "A trained model folder (dps train); set it and the DAG "
                  "skips training."},
        "width": {"type": ["integer", "null"], "minimum": 1, "default": None,
                  "description": "Channels at full resolution (null - from the scale preset)."},
        "depth": {
            "type": ["integer", "null"], "minimum": 1, "default": None,
            "description": "Encoder levels (OIDN: residual groups; null - from the preset)."},
        "blocks": {"type": ["integer", "null"], "minimum": 1, "default": None,
                   "description": "Residual blocks per level (null - from the scale preset)."},
        "steps": {"type": "integer", "minimum": 1, "default": d.steps,
                  "description": "Optimiser steps."},
        "batch": {"type": "integer", "minimum": 1, "default": d.batch},
        "patch": {"type": "integer", "minimum": 8, "default": d.patch,
                  "description": "Training patch edge in input pixels."},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": d.lr,
               "description": "Adam learning rate (cosine-decayed to a tenth)."},
        "loss": {"type": "object", "additionalProperties": False, "default": {},
                 "description": f"Loss weights of {spec.name}.", "properties": loss},
    }  # fmt: skip
    for s in spec.settings:
        kind = {"enum": list(s.choices)} if s.choices else {"type": "number"}
        props[s.key] = kind | {"default": s.default, "description": s.help}
        if s.exclusive_minimum is not None:
            props[s.key]["exclusiveMinimum"] = s.exclusive_minimum
    return {
        "type": "object",
        "additionalProperties": False,
        "description": f"{spec.name}: {spec.summary}.",
        "properties": props,
    }
