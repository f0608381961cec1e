"""Training the DPS networks: the loop, checkpoints, loss history, the model folder.

The pairs each network learns from are built in :mod:`dps_stages.pairs` (re-exported here,
with :func:`sim_pairs` and :func:`dbpn_pairs_simulated` bound to the networks of
:mod:`dps_stages.nets.registry`).

The loop (Adam, cosine-decayed learning rate) draws random patches with random dihedral
flips from a generator seeded by the config's seed, saves a checkpoint (weights, optimiser,
step, loss history, generator states; tensors and plain types only, read back with
``torch.load(weights_only=True)``) every ``checkpoint_every`` steps, and resumes from it
when the same training (same data, architecture and settings) is started again. The model
folder holds ``model.pt``, ``record.json`` (configuration, data, loss features, time,
device), ``loss.tsv`` and ``loss.png``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dps_stages import io
from dps_stages.inference import MODEL_FILE, RECORD_FILE, restore_with, save_model
from dps_stages.io import DpsInputError
from dps_stages.nets.registry import NET_IDS, SIM_NETWORKS
from dps_stages.pairs import (
    TARGET_PERCENTILE,
    Pairs,
    PatchSampler,
    dbpn_pairs_images,
    denoise_pairs,
    normalise_input,
    normalise_target,
)
from dps_stages.pairs import dbpn_pairs_simulated as _dbpn_pairs_simulated
from dps_stages.pairs import sim_pairs as _sim_pairs

__all__ = [
    "NET_IDS",
    "SIM_NETWORKS",
    "TARGET_PERCENTILE",
    "PatchSampler",
    "Pairs",
    "TrainSettings",
    "dbpn_pairs_images",
    "dbpn_pairs_simulated",
    "denoise_pairs",
    "load_checkpoint",
    "normalise_input",
    "normalise_target",
    "sim_pairs",
    "train",
]

log = logging.getLogger("dps.train")


def sim_pairs(store: str | Path, denoise_model: str | Path | None = None) -> Pairs:
    """:func:`dps_stages.pairs.sim_pairs`, the denoise model run by
    :func:`~dps_stages.inference.restore_with`."""
    return _sim_pairs(store, denoise_model, restore=restore_with)


def dbpn_pairs_simulated(
    store: str | Path, psf: np.ndarray, seed: int, *, grid: str = "2x"
) -> Pairs:
    """:func:`dps_stages.pairs.dbpn_pairs_simulated` with Res-U-DBPN's noise stream."""
    return _dbpn_pairs_simulated(store, psf, seed, grid=grid, stream=NET_IDS["resudbpn"])


@dataclass
class TrainSettings:
    steps: int = 300
    batch: int = 8
    patch: int = 64
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 50
    validate_every: int = 25
    device: str = "auto"


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, read with ``torch.load(weights_only=True)``: tensors and plain
    types only, so a crafted file cannot run code; anything else is a :class:`DpsInputError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that wants more than tensors and plain types, or junk
        raise DpsInputError(f"{path}: not a dps training checkpoint, refused ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("signature"), str):
        raise DpsInputError(f"{path}: not a dps training checkpoint (no signature)")
    return state


def _to(batch: Any, device: torch.device) -> Any:
    """Tensors, or tuples of them, on ``device``."""
    if batch is None:
        return None
    if isinstance(batch, tuple | list):
        return type(batch)(_to(b, device) for b in batch)
    return batch.to(device)


def train(
    net: str,
    arch: dict[str, Any],
    pairs: Pairs,
    val_pairs: Pairs | None,
    loss_fn: torch.nn.Module,
    output: str | Path,
    settings: TrainSettings,
    *,
    checkpoint: str | Path | None = None,
    record: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``net`` and write its model folder ``output`` atomically.

    ``loss_fn`` is a module from :mod:`dps_stages.losses`, called as ``loss_fn(pred,
    target)`` or, without targets, ``loss_fn(pred, input)``; one with a ``bind`` method is
    given the model first (a loss of the model's own parameters, such as a learned PSF).
    ``pairs`` is :class:`Pairs` or any source with the same ``sampler``, ``validation``,
    ``digest``, ``description`` and ``len`` (data drawn on the fly); targets may be tuples.
    A ``checkpoint`` file, when given, is written during training and resumed from when it
    belongs to the same training; it is removed once the model folder is written.
    """
    from tqdm.auto import tqdm

    from dps_stages import nets
    from dps_stages.inference import select_device

    t0 = time.perf_counter()
    device = select_device(settings.device)
    torch.manual_seed(settings.seed * 1000 + NET_IDS[net])
    model = nets.build(net, arch).to(device)
    loss_fn = loss_fn.to(device)
    if hasattr(loss_fn, "bind"):
        loss_fn.bind(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / settings.steps))
    )
    rng = np.random.default_rng([settings.seed, NET_IDS[net]])
    sampler = pairs.sampler(settings.patch, model.multiple, rng)
    val = val_pairs.validation(model.multiple, 2 * sampler.patch) if val_pairs else None
    data_digest = pairs.digest()  # hashes every training array: once
    signature = hashlib.sha256(
        json.dumps(
            {
                "net": net,
                "arch": arch,
                "settings": asdict(settings) | {"device": None},
                "data": data_digest,
                "val": val_pairs.digest() if val_pairs else None,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]

    history: list[dict[str, float]] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state.get("signature") == signature:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            rng.bit_generator.state = json.loads(state["rng"])
            torch.set_rng_state(state["torch_rng"])
            history, start = json.loads(state["history"]), int(state["step"])
            log.info("resuming %s from step %d (%s)", net, start, ckpt)
        else:
            log.info("checkpoint %s belongs to another training; starting afresh", ckpt)

    def loss_of(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        pred = model(x)
        return loss_fn(pred, y if y is not None else x)

    bar = tqdm(total=settings.steps, initial=start, desc=f"train {net}", disable=not progress)
    for step in range(start, settings.steps):
        model.train()
        x, y = sampler.batch(settings.batch)
        x, y = _to(x, device), _to(y, device)
        loss = loss_of(x, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        row = {"step": step + 1, "loss": float(loss.detach())}
        row.update({f"train_{k}": float(v) for k, v in getattr(loss_fn, "last", {}).items()})
        if val is not None and (
            (step + 1) % settings.validate_every == 0 or step == 0 or step + 1 == settings.steps
        ):
            model.eval()
            with torch.no_grad():
                row["val_loss"] = float(loss_of(_to(val[0], device), _to(val[1], device)))
        history.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if ckpt is not None and ((step + 1) % settings.checkpoint_every == 0):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save_atomic(
                {
                    "signature": signature,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(),
                    # plain types only: the file loads with weights_only=True
                    "rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state(),
                    "history": json.dumps(history),
                    "step": step + 1,
                },
                ckpt,
            )
    bar.close()

    seconds = time.perf_counter() - t0
    info = {
        "net": net,
        "arch": arch,
        "parameters": nets.count_parameters(model),
        "settings": asdict(settings),
        "device": str(device),
        "data": pairs.description | {"examples": len(pairs), "digest": data_digest},
        "validation": (val_pairs.description | {"examples": len(val_pairs)}) if val_pairs else None,
        "loss": type(loss_fn).__name__,
        "loss_features": getattr(loss_fn, "source", None),
        "seconds": round(seconds, 1),
        "steps_resumed_from": start,
        "final_loss": history[-1]["loss"] if history else None,
        "torch": str(torch.__version__),
    } | dict(record or {})
    info = json.loads(json.dumps(info, default=str))  # plain types: safe to load back
    write_model_folder(output, net, model, info, history, getattr(loss_fn, "init_psf", None))
    if ckpt is not None and ckpt.is_file():
        ckpt.unlink()
    return info


def write_model_folder(
    output: str | Path,
    net: str,
    model: torch.nn.Module,
    info: dict[str, Any],
    history: list[dict[str, float]],
    init_psf: Any = None,
) -> Path:
    """``model.pt``, ``record.json``, ``loss.tsv`` and ``loss.png``, written atomically; for a
    network with a learned PSF (OIDN) also ``psf.tif`` and ``psf.png`` (against its start)."""
    import pandas as pd

    with io.atomic_path(output) as tmp:
        tmp.mkdir(parents=True)
        model = model.to("cpu")
        save_model(tmp / MODEL_FILE, net, model, info)
        io.write_json(tmp / RECORD_FILE, info)
        table = pd.DataFrame(history)
        table.to_csv(tmp / "loss.tsv", sep="\t", index=False, float_format="%.6g")
        plot_loss(table, tmp / "loss.png", title=f"{net}: {info.get('loss')}")
        if callable(getattr(model, "psf", None)):
            from dps_stages.io import write_tiff

            with torch.no_grad():
                learned = model.psf().detach().cpu().numpy().astype(np.float32)
            write_tiff(tmp / "psf.tif", learned, None)
            plot_psf(learned, init_psf, tmp / "psf.png")
    return Path(output)


def plot_psf(learned: np.ndarray, start: Any, path: str | Path) -> None:
    """The learned PSF, and its profile through the centre against the one it started from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), dpi=120)
    axes[0].imshow(learned, cmap="magma")
    axes[0].set_title("learned PSF", fontsize=9)
    axes[0].axis("off")
    c = learned.shape[0] // 2
    r = np.arange(learned.shape[1]) - c
    axes[1].plot(r, learned[c], "o-", ms=3, label="learned")
    if start is not None:
        s = np.asarray(start, dtype=np.float64)
        k = min(s.shape[0], learned.shape[0]) // 2
        sc = s.shape[0] // 2
        prof = s[sc, sc - k : sc + k + 1] / s[sc - k : sc + k + 1, sc - k : sc + k + 1].sum()
        axes[1].plot(np.arange(-k, k + 1), prof, "s--", ms=3, label="start (theory)")
    axes[1].set_xlabel("pixel")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_loss(table, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if len(table):
        ax.plot(table["step"], table["loss"], lw=0.8, alpha=0.6, label="training batch")
        window = max(1, len(table) // 20)
        ax.plot(
            table["step"],
            table["loss"].rolling(window, min_periods=1).mean(),
            lw=1.5,
            label=f"training (mean of {window})",
        )
        if "val_loss" in table:
            v = table.dropna(subset=["val_loss"])
            ax.plot(v["step"], v["val_loss"], "o-", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
