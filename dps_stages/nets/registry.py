"""The registry of the networks: one :class:`~dps_stages.nets.spec.NetworkSpec` per network.

Adding a network: write its home ``dps_stages/nets/<net>.py`` (the module, its presets, its
pair builder and loss, its ``SPEC``) and add one line below. ``dps train <net>``, the
Snakemake rule ``train_<net>``, the schema block ``networks.<net>`` and every list of names
(:data:`NAMES`, :data:`NET_IDS`, :data:`SIM_NETWORKS`, ``dps_stages.nets.NETWORKS``) follow.
"""

from __future__ import annotations

from typing import Any

from dps_stages.nets import artifact, denoise, oidn, psfnet, resudbpn, simnet
from dps_stages.nets.spec import NetworkSpec

__all__ = [
    "MODELS",
    "NAMES",
    "NET_IDS",
    "REGISTRY",
    "SIM_NETWORKS",
    "get",
    "network_schema",
]

#: every network, in chain order: name -> spec
REGISTRY: dict[str, NetworkSpec] = {
    s.name: s
    for s in (
        denoise.SPEC,
        simnet.SPEC,
        artifact.SPEC,
        resudbpn.SPEC,
        oidn.SPEC,
        psfnet.SPEC,
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
