"""Training the DPS networks: data pairs, a seeded patch sampler, checkpoints, loss history.

Each network learns from pairs built out of a simulated split (``dps simulate``), normalised
exactly as :mod:`dps_stages.inference` normalises at run time (input percentiles 0.1/99.9):

* ``denoise``: the 9 noisy raw frames of every image and signal level -> their expected value
  ``E[y] = g gamma x + b`` (the noise-free frames in the camera's units), normalised with the
  noisy input's percentiles, so that the output maps back to ADU.
* ``sim``: the denoised frames (the ``denoise`` model's output when given, else the
  noise-free frames) -> the 2x ground truth scaled to a 99.9 percentile of 1.
* ``artifact``: the SIM reconstruction the chain feeds it (Wiener on the background-removed
  denoised frames, or the ``sim`` network's output) -> the same 2x ground truth.
* ``resudbpn``: no ground truth. Simulated SIM-like images, the 2x ground truth blurred with
  the srPSF and photon noise at each signal level; or a user's own SIM images.

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dps_stages import io
from dps_stages.inference import (
    MODEL_FILE,
    RECORD_FILE,
    normalise,
    percentile_range,
    restore_stack,
    save_model,
)
from dps_stages.io import DpsInputError
from dps_stages.nets.registry import NET_IDS, SIM_NETWORKS

__all__ = [
    "NET_IDS",
    "SIM_NETWORKS",
    "PatchSampler",
    "Pairs",
    "TrainSettings",
    "artifact_pairs",
    "dbpn_pairs_images",
    "dbpn_pairs_simulated",
    "denoise_pairs",
    "load_checkpoint",
    "sim_pairs",
    "train",
]

log = logging.getLogger("dps.train")

TARGET_PERCENTILE = 99.9


@dataclass
class Pairs:
    """Training examples: inputs (C, y, x) and targets (C', s y, s x), or no targets."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray] | None
    scale: int
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    def sampler(self, patch: int, multiple: int, rng: np.random.Generator) -> PatchSampler:
        return PatchSampler(self, patch, multiple, rng)

    def validation(self, multiple: int, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _validation_batch(self, multiple, size)

    def digest(self) -> str:
        h = hashlib.sha256()
        for arrs in (self.inputs, self.targets or []):
            for a in arrs:
                h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]


def normalise_input(x: np.ndarray) -> np.ndarray:
    return normalise(x, *percentile_range(x))


def normalise_target(truth: np.ndarray) -> np.ndarray:
    """Ground truth scaled so that its 99.9 percentile is 1 (its zero stays zero)."""
    top = float(np.percentile(truth, TARGET_PERCENTILE))
    return (np.asarray(truth, np.float32) / (top if top > 0 else 1.0)).astype(np.float32)


def _noise(attrs: dict[str, Any]) -> tuple[float, float]:
    """(gain, offset) of a simulated split's camera."""
    p = attrs.get("noise") or attrs.get("dps", {}).get("parameters", {})
    return float(p.get("gain", 1.0)), float(p.get("offset", 0.0))


def _simulated(store: str | Path) -> tuple[Any, dict[str, Any]]:
    group = io.open_group(store)
    for key in ("raw", "raw_clean", "truth_2x"):
        if key not in group:
            raise DpsInputError(f"{store}: not a simulated split (no array {key!r})")
    return group, dict(group.attrs)


def denoise_pairs(store: str | Path) -> Pairs:
    group, attrs = _simulated(store)
    gain, offset = _noise(attrs)
    raw, clean = group["raw"][...], group["raw_clean"][...]
    inputs, targets = [], []
    for n in range(raw.shape[0]):
        for li, photons in enumerate(attrs["levels"]):
            noisy = raw[n, li]
            expected = gain * photons * clean[n] + offset
            lo, hi = percentile_range(noisy)
            inputs.append(normalise(noisy, lo, hi))
            targets.append(normalise(expected, lo, hi))
    return Pairs(inputs, targets, 1, {"store": str(store), "levels": attrs["levels"]})


def _denoised_frames(store: str | Path, denoise_model: str | Path | None) -> list[np.ndarray]:
    """Per image and level: 9 frames as the SIM stage sees them (ADU, offset included)."""
    from dps_stages.inference import load_model

    group, attrs = _simulated(store)
    raw = group["raw"][...]
    n, nl = raw.shape[:2]
    if denoise_model is None:
        gain, offset = _noise(attrs)
        clean = group["raw_clean"][...]
        return [gain * photons * clean[i] + offset for i in range(n) for photons in attrs["levels"]]
    model, _ = load_model(denoise_model, expect="denoise")
    flat = raw.reshape(n * nl, *raw.shape[2:])
    return [
        np.asarray(out)
        for out in restore_stack(model, flat, tile=None, denormalise=True, progress=False)
    ]


def _truth_targets(store: str | Path) -> list[np.ndarray]:
    group, attrs = _simulated(store)
    truth = group["truth_2x"][...]
    return [
        normalise_target(truth[i])[None] for i in range(truth.shape[0]) for _ in attrs["levels"]
    ]


def sim_pairs(store: str | Path, denoise_model: str | Path | None = None) -> Pairs:
    frames = _denoised_frames(store, denoise_model)
    return Pairs(
        [normalise_input(f) for f in frames],
        _truth_targets(store),
        2,
        {"store": str(store), "denoise_model": str(denoise_model) if denoise_model else None},
    )


def sim_reconstructions(
    frames: Sequence[np.ndarray],
    method: str,
    *,
    optics,
    background_radius: float,
    sim_model: str | Path | None = None,
    sim_kw: dict[str, Any] | None = None,
) -> list[np.ndarray]:
    """The SIM stage of the chain on denoised frames: Wiener after rolling-ball, or the net."""
    if method == "wiener":
        from dps_stages.background import subtract_background
        from dps_stages.sim import reconstruct

        out = []
        for f in frames:
            bg = np.stack([subtract_background(x, background_radius) for x in f])
            out.append(reconstruct(bg, optics, **dict(sim_kw or {}))[0])
        return out
    if method in SIM_NETWORKS:
        from dps_stages.inference import load_model

        if sim_model is None:
            raise DpsInputError(f"the artifact network on {method!r} SIM needs --sim-model")
        model, _ = load_model(sim_model, expect=SIM_NETWORKS[method])
        return [
            np.asarray(o) for o in restore_stack(model, np.stack(frames), tile=None, progress=False)
        ]
    raise DpsInputError(f"unknown SIM method {method!r}; expected wiener, dps or oidn")


def artifact_pairs(
    store: str | Path,
    *,
    optics,
    method: str = "wiener",
    denoise_model: str | Path | None = None,
    sim_model: str | Path | None = None,
    background_radius: float = 50.0,
    sim_kw: dict[str, Any] | None = None,
) -> Pairs:
    frames = _denoised_frames(store, denoise_model)
    recon = sim_reconstructions(
        frames,
        method,
        optics=optics,
        background_radius=background_radius,
        sim_model=sim_model,
        sim_kw=sim_kw,
    )
    return Pairs(
        [normalise_input(r)[None] for r in recon],
        _truth_targets(store),
        1,
        {
            "store": str(store),
            "sim_method": method,
            "denoise_model": str(denoise_model) if denoise_model else None,
            "sim_model": str(sim_model) if sim_model else None,
        },
    )


def dbpn_pairs_simulated(
    store: str | Path, psf: np.ndarray, seed: int, *, grid: str = "2x"
) -> Pairs:
    """Images for self-supervised Res-U-DBPN training without a user's data: the truth of
    ``grid`` (``2x``: SIM-like with the srPSF; ``1x``: widefield-like with the Airy PSF)
    blurred with ``psf``, with photon noise at each of the split's signal levels."""
    from dps_stages.physics import Blur

    group, attrs = _simulated(store)
    truth = group[f"truth_{grid}"][...]
    rng = np.random.default_rng([seed, NET_IDS["resudbpn"]])
    # zero continuation (``fftconvolve(mode="same")``); a zero row / column in front of an even
    # axis puts the centre where ``mode="same"`` has it (index ``k // 2 - 1`` of an even axis)
    psf = np.asarray(psf)
    blur = Blur(np.pad(psf, [(1 - k % 2, 0) for k in psf.shape]), boundary="zero")
    inputs = []
    for i in range(truth.shape[0]):
        blurred = np.clip(blur(truth[i]), 0, None)
        blurred /= max(float(blurred.max()), 1e-12)
        for photons in attrs["levels"]:
            noisy = rng.poisson(blurred * photons).astype(np.float32)
            inputs.append(normalise_input(noisy)[None])
    return Pairs(inputs, None, 2, {"store": str(store), "kind": f"truth_{grid} * PSF + noise"})


def dbpn_pairs_images(path: str | Path) -> Pairs:
    """A user's own SIM images (any size), for self-supervised Res-U-DBPN training."""
    arr, _ = io.read_image(path)
    images = np.asarray(io.as_image_stack(arr, path), dtype=np.float32)
    io.check_finite(images, path)
    return Pairs([normalise_input(im)[None] for im in images], None, 2, {"images": str(path)})


# --------------------------------------------------------------------------------------------
# sampler and loop


class PatchSampler:
    """Random patches (with random dihedral flips) from :class:`Pairs`, seeded."""

    def __init__(self, pairs: Pairs, patch: int, multiple: int, rng: np.random.Generator):
        self.pairs, self.rng = pairs, rng
        smallest = min(min(x.shape[-2:]) for x in pairs.inputs)
        self.patch = max(multiple, min(patch, smallest) // multiple * multiple)
        if self.patch > smallest:
            raise DpsInputError(
                f"training images of {smallest} px are smaller than the network's "
                f"multiple {multiple}"
            )

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        xs, ys = [], []
        p, s = self.patch, self.pairs.scale
        for _ in range(size):
            i = int(self.rng.integers(len(self.pairs)))
            x = self.pairs.inputs[i]
            y0 = int(self.rng.integers(x.shape[-2] - p + 1))
            x0 = int(self.rng.integers(x.shape[-1] - p + 1))
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            xs.append(_dihedral(x[..., y0 : y0 + p, x0 : x0 + p], k, flip))
            if self.pairs.targets is not None:
                t = self.pairs.targets[i][..., s * y0 : s * (y0 + p), s * x0 : s * (x0 + p)]
                ys.append(_dihedral(t, k, flip))
        x = torch.from_numpy(np.stack(xs))
        return x, (torch.from_numpy(np.stack(ys)) if ys else None)


def _dihedral(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if flip else a)


def _validation_batch(pairs: Pairs, multiple: int, size: int, limit: int = 8):
    """Fixed centre crops of up to ``limit`` validation examples."""
    idx = np.linspace(0, len(pairs) - 1, min(limit, len(pairs))).round().astype(int)
    smallest = min(min(pairs.inputs[i].shape[-2:]) for i in idx)
    p = max(multiple, min(size, smallest) // multiple * multiple)
    s = pairs.scale
    xs, ys = [], []
    for i in idx:
        x = pairs.inputs[i]
        y0, x0 = (x.shape[-2] - p) // 2, (x.shape[-1] - p) // 2
        xs.append(x[..., y0 : y0 + p, x0 : x0 + p])
        if pairs.targets is not None:
            ys.append(pairs.targets[i][..., s * y0 : s * (y0 + p), s * x0 : s * (x0 + p)])
    return torch.from_numpy(np.stack(xs)), (torch.from_numpy(np.stack(ys)) if ys else None)


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
