"""Running a trained network on images of any size: normalisation, tiles with a halo, devices.

Every network in :mod:`dps_stages.nets` is a stack of local operations (no normalisation
layers, no global pooling), so its output at a pixel depends only on the input within its
receptive field. An image is therefore cut into tiles, each tile is run with a halo of
``model.receptive_halo()`` input pixels on each side, and the halo is cut from the output:
the result equals whole-image inference to float precision. Tile origins and halos are
multiples of ``model.multiple`` (2**depth) so that every tile sees the same down-sampling
grid as the whole image; blocks that end at the image border are zero-padded to a multiple
there, exactly as the whole image is.

Intensities are normalised per image before the network sees them,
``x_n = (x - p_lo) / (p_hi - p_lo)`` with the 0.1 and 99.9 percentiles of the whole image
(of the 9-frame stack for raw frames; for images over 4 Mpixel a regular sub-sample of about
4 M pixels), the normalisation the networks were trained with (:mod:`dps_stages.training`).
A denoising network's output is mapped back to the input's units; the others return
normalised intensities (their targets are ground truth scaled to a 99.9 percentile of 1).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import torch

from dps_stages.io import DpsInputError
from dps_stages.noise import NoiseModel
from dps_stages.normalise import NORM_PERCENTILES, normalise, percentile_range  # noqa: F401
from dps_stages.settings import PRECISIONS  # the choices of networks.precision

MODEL_FILE = "model.pt"
RECORD_FILE = "record.json"
#: held while a row of tiles goes through a network (see :func:`predict`)
_NETWORK_LOCK = threading.Lock()


def select_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when one is visible, else the CPU; or a torch device name."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DpsInputError(f"device {device!r} asked for, but no CUDA GPU is visible")
    return dev


# --------------------------------------------------------------------------------------------
# models on disk


def save_model(path: str | Path, net: str, model: torch.nn.Module, record: dict[str, Any]) -> Path:
    """The model file: network name, architecture, weights and the training record.

    The record's wall times (``seconds``, at any depth) stay out of the file (they are in
    ``record.json`` and the log): the same training gives a byte-identical model file, and an
    interrupted and resumed run the same file as an uninterrupted one."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    blob = {"net": net, "arch": dict(model.arch), "state_dict": state,
            "record": _without_wall_time(record)}  # fmt: skip
    torch.save(blob, path)
    return path


def _without_wall_time(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall_time(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_wall_time(v) for v in value]
    return value


def model_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_model(
    path: str | Path,
    *,
    expect: str | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A trained network from a model folder (or its ``model.pt``), in eval mode, computing
    in ``precision`` (:func:`set_precision`; ``fp32``: the exact float32 path).

    Returns the model and its record (training configuration, data, loss source, digest).
    The file is read with ``torch.load(weights_only=True)`` (tensors and plain types: a
    crafted pickle is refused without running code); any failure is a :class:`DpsInputError`.
    """
    from dps_stages import nets

    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise DpsInputError(f"{path}: no trained model here (expected {MODEL_FILE})")
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
        name, arch = blob["net"], blob["arch"]
    except Exception as exc:  # a truncated or foreign file
        raise DpsInputError(f"{file}: not a dps model file ({exc})") from exc
    if expect is not None and name != expect:
        raise DpsInputError(f"{file}: holds a {name!r} network; expected {expect!r}")
    try:
        model = nets.build(name, dict(arch))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:  # an unknown network, a bad architecture, mismatched weights
        raise DpsInputError(f"{file}: cannot build its {name!r} network ({exc})") from exc
    model.eval().to(device)
    set_precision(model, precision)
    record = dict(blob.get("record", {}))
    record["model_sha256"] = model_digest(file)
    record["model_file"] = str(file)
    return model, record


def restore_with(
    path: str | Path, stack: np.ndarray, *, expect: str, denormalise: bool = False
) -> list[np.ndarray]:
    """The model of ``path`` (a ``expect`` network) on every image of ``stack``, whole images
    (:func:`load_model`, then :func:`restore_stack` without tiles), computed: the model runner
    that :mod:`dps_stages.pairs` is handed to build training data from another network."""
    model, _ = load_model(path, expect=expect)
    outs = restore_stack(model, stack, tile=None, denormalise=denormalise, progress=False)
    return [np.asarray(o) for o in outs]


# --------------------------------------------------------------------------------------------
# whole-image and tiled inference


def _pad_to(x: np.ndarray, multiple: int) -> np.ndarray:
    """Zero-pad the last two axes at their end to a multiple (the image border's padding)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)])
    return x


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 convolutions natively (AVX512-BF16 or AMX), tried on a
    tiny convolution under autocast (a CPU without them emulates bf16, slower than fp32)."""
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    if not native:
        return False
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.nn.functional.conv2d(torch.ones(1, 2, 4, 4), torch.ones(2, 2, 3, 3))
        return y.dtype == torch.bfloat16 and bool(torch.isfinite(y).all())
    except RuntimeError:
        return False


def autocast_dtype(
    precision: str, device: torch.device, model: torch.nn.Module | None = None
) -> torch.dtype | None:
    """The autocast dtype of a precision on a device; ``None``: plain float32.

    ``auto`` is bf16 on a CPU with native bf16 and on a CUDA GPU that supports it (fp16
    otherwise: a GPU computes half precision natively), and float32 elsewhere and for
    networks with global operations (FFTs, pooling: ``model.local`` false), which autocast
    does not cover. ``fp32`` is the exact reference path.
    """
    if precision not in PRECISIONS:
        raise DpsInputError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision != "auto":
        return _DTYPES[precision]
    if model is not None and not getattr(model, "local", True):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def set_precision(model: torch.nn.Module, precision: str = "fp32") -> torch.nn.Module:
    """Set how :func:`run_batch` computes with ``model``: autocast to the dtype of
    :func:`autocast_dtype` with ``channels_last`` weights and activations (the layout the
    vectorised convolution kernels prefer), or the exact float32 path. In place; returns it."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device, model)
    model.autocast_dtype = dtype
    fmt = torch.contiguous_format if dtype is None else torch.channels_last
    return model.to(memory_format=fmt)


@torch.no_grad()
def run_batch(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """The network on a (B, C, y, x) batch of equal blocks, in the precision set by
    :func:`set_precision` (float32 by default), cropped back to scale; one device-to-host
    copy per batch."""
    h, w = batch.shape[-2:]
    device = next(model.parameters()).device
    dtype = getattr(model, "autocast_dtype", None)
    x = torch.from_numpy(np.ascontiguousarray(_pad_to(batch, model.multiple)))
    x = x.to(device=device, dtype=torch.float32, non_blocking=True)
    if dtype is None:
        y = model(x)
    else:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype):
            y = model(x)
    y = y.float().cpu().numpy()
    return y[..., : h * model.scale, : w * model.scale]


def run_block(model: torch.nn.Module, block: np.ndarray) -> np.ndarray:
    """The network on one (C, y, x) block, padded to its multiple, cropped back to scale."""
    return run_batch(model, block[None])[0]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libc.so.6")
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        return lib
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand the allocator's freed pages back to the system (glibc ``malloc_trim(0)``).

    A freed tile buffer larger than glibc's dynamic mmap threshold raises that threshold, so
    later buffers of the same size come from the heap, whose freed pages stay resident.
    Trimming once per row of tiles returns them (peak 3072² / 1024² 1.19 -> 1.02, no time
    cost measured; a fixed ``M_MMAP_THRESHOLD`` maps and zeroes every large tensor instead).
    No-op where the C library is not glibc.
    """
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


def _tiles(n: int, tile: int, halo: int) -> tuple[int, ...]:
    """Chunk sizes along an axis of length n: tiles of ``tile``, a short last one merged
    into its neighbour when it is smaller than the halo."""
    sizes = [tile] * (n // tile) + ([n % tile] if n % tile else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def _run_row(
    model: torch.nn.Module, block: np.ndarray, x0: int, widths: tuple[int, ...],
    halos: list[tuple[int, int]], batch: int,
) -> np.ndarray:  # fmt: skip
    """The tiles of one chunk (a row of ``widths`` tiles starting ``x0`` into ``block``, each
    read with its own (left, right) halo) in batches of equal shape, their halos cut off."""
    s = model.scale
    windows, offset = [], x0
    for w, (hl, hr) in zip(widths, halos, strict=True):
        windows.append(block[:, :, offset - hl : offset + w + hr])
        offset += w
    outs: list[np.ndarray | None] = [None] * len(windows)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for j, win in enumerate(windows):
        by_shape.setdefault(win.shape, []).append(j)
    for idx in by_shape.values():
        for k in range(0, len(idx), batch):
            group = idx[k : k + batch]
            res = run_batch(model, np.stack([windows[j] for j in group]))
            for j, r in zip(group, res, strict=True):
                hl, hr = halos[j]
                outs[j] = r[..., hl * s : r.shape[-1] - hr * s]
    return np.concatenate(outs, axis=-1)


def predict(
    model: torch.nn.Module,
    image: np.ndarray | da.Array,
    *,
    tile: int | None = 256,
    halo: int | None = None,
    batch: int = 1,
) -> da.Array:
    """The network on one normalised image (C, y, x), tile by tile with a halo.

    ``tile=None`` runs the whole image at once. The result is a lazy Dask array of shape
    ``(C_out, y * scale, x * scale)``. Each Dask chunk is a row of up to ``2 batch`` tiles,
    run as batches of up to ``batch`` tiles of equal shape (several tiles per forward
    pass); every tile reads its own halo, so the result does not depend on ``batch``.
    """
    arr = image if isinstance(image, da.Array) else da.from_array(np.asarray(image))
    arr = arr.astype(np.float32)
    c, ny, nx = arr.shape
    s, m = model.scale, model.multiple
    c_out = model.out_channels
    batch = max(1, int(batch))
    # a network with global operations (FFT, global pooling: OIDN) runs on whole images
    if tile is None or not getattr(model, "local", True) or (ny <= tile and nx <= tile):
        block = arr.rechunk((c, ny, nx))
        return block.map_blocks(
            lambda b: run_block(model, b),
            chunks=((c_out,), (ny * s,), (nx * s,)),
            dtype=np.float32,
        )
    halo = model.receptive_halo() if halo is None else -(-halo // m) * m
    # tiles start on multiples of m and are never smaller than the halo (so that a tile's
    # halo lies within its neighbours)
    tile = max(m, tile // m * m, halo)
    ty, tx = _tiles(ny, tile, halo), _tiles(nx, tile, halo)
    # A chunk holds 2 x batch tiles: the edge tiles (one-sided halo) have their own shapes,
    # so a chunk of only `batch` tiles pairs an edge tile with an interior one and runs both
    # alone; with 2 x batch every chunk of a row of 4 or more tiles holds a full batch of
    # interior tiles, and the peak (one full batch) is the same at every image size.
    per_chunk = 2 * batch
    groups = [tx[i : i + per_chunk] for i in range(0, len(tx), per_chunk)]
    cols = tuple(sum(g) for g in groups)
    hy, hx = min(halo, ny), min(halo, nx)
    starts_y = np.cumsum((0,) + tuple(ty))
    starts_x = np.cumsum((0,) + cols)
    nby, ntx = len(ty), len(tx)

    def row(iy: int, ix: int) -> np.ndarray:
        # Each chunk (a row of up to 2 x batch tiles) reads its own extended region from the
        # lazy source: dask's overlap would keep whole neighbouring input blocks alive until
        # every chunk using them has run (peak memory growing with the image).
        first = ix * per_chunk  # global index of the chunk's first tile
        widths = groups[ix]
        y0 = int(starts_y[iy]) - (hy if iy > 0 else 0)
        y1 = int(starts_y[iy + 1]) + (hy if iy < nby - 1 else 0)
        x0 = int(starts_x[ix]) - (hx if first > 0 else 0)
        x1 = int(starts_x[ix + 1]) + (hx if first + len(widths) < ntx else 0)
        block = np.asarray(arr[:, y0:y1, x0:x1].compute(scheduler="synchronous"))
        halos = [
            (hx if first + j > 0 else 0, hx if first + j < ntx - 1 else 0)
            for j in range(len(widths))
        ]
        # one row through the network at a time: a forward pass already uses every intra-op
        # thread, and two rows run by dask's threads at once doubled the peak now and then
        # (more rows, more chances: the peak grew with the image, 1.85x from 2048² to 8192²)
        with _NETWORK_LOCK:
            out = _run_row(model, block, halos[0][0], widths, halos, batch)
            top = (int(starts_y[iy]) - y0) * s
            out = np.ascontiguousarray(out[:, top : top + ty[iy] * s])
            del block
            release_freed_memory()
        return out

    from dask import delayed

    rows = [
        [
            da.from_delayed(delayed(row)(iy, ix), (c_out, ty[iy] * s, cols[ix] * s), np.float32)
            for ix in range(len(groups))
        ]
        for iy in range(nby)
    ]
    return da.block(rows)


def restore_stack(
    model: torch.nn.Module,
    stack: np.ndarray | da.Array,
    *,
    tile: int | None = 256,
    denormalise: bool = False,
    progress: bool = True,
    batch: int = 1,
) -> Iterator[np.ndarray | da.Array]:
    """The network on every image of a stack, each normalised on its own.

    ``stack`` is (n, C, y, x) for multi-channel networks (9 raw frames) or (n, y, x). Yields
    per image a lazy output (C_out, y s, x s), squeezed to (y s, x s) for one channel;
    ``denormalise`` maps it back to the input's units (a denoising network's output);
    ``batch`` tiles go through the network at once (:func:`predict`).
    """
    from tqdm.auto import tqdm

    multi = model.in_channels > 1
    expected = 4 if multi else 3
    if stack.ndim != expected:
        raise DpsInputError(
            f"the {model.__class__.__name__} needs a stack of shape "
            f"{'(n, 9, y, x)' if multi else '(n, y, x)'}; got {tuple(stack.shape)}"
        )
    for i in tqdm(range(stack.shape[0]), desc=model.__class__.__name__, disable=not progress):
        image = stack[i] if multi else stack[i][None]
        if image.shape[0] != model.in_channels:
            raise DpsInputError(
                f"image {i} has {image.shape[0]} channels; the network takes {model.in_channels}"
            )
        lo, hi = percentile_range(image)
        normed = (da.asarray(image).astype(np.float32) - lo) / (hi - lo)
        out = predict(model, normed, tile=tile, batch=batch)
        if denormalise:
            out = out * (hi - lo) + lo
        yield out if out.shape[0] > 1 else out[0]


def denoiser_error(
    model: torch.nn.Module,
    image: Any,
    noise: NoiseModel,
    rng: np.random.Generator,
    crop: int | None = None,
):
    """:func:`dps_stages.sure.sure_profile` of a denoising network on one raw acquisition
    ``(9, y, x)`` (ADU), normalised as :func:`restore_stack` does, measured on the central
    ``crop x crop`` pixels (``sure.CROP`` when None) under the calibrated camera ``noise``.
    Returns a :class:`dps_stages.sure.ErrorProfile`."""
    from dps_stages.sure import CROP, sure_profile

    crop = CROP if crop is None else int(crop)
    lo, hi = percentile_range(image)
    ny, nx = image.shape[-2:]
    cy, cx = min(crop, ny), min(crop, nx)
    y0, x0 = (ny - cy) // 2, (nx - cx) // 2
    y = np.asarray(image[..., y0 : y0 + cy, x0 : x0 + cx], dtype=np.float64)
    scale = float(hi - lo)

    def denoise(z: np.ndarray) -> np.ndarray:
        return run_block(model, ((z - lo) / scale).astype(np.float32)) * scale + lo

    return sure_profile(denoise, y, noise.variance(y, np.float64), rng)


def describe(model: torch.nn.Module, record: dict[str, Any]) -> dict[str, Any]:
    """What a stage output records about the network that made it."""
    return {
        "net": record.get("net"),
        "arch": dict(model.arch),
        "model_sha256": record.get("model_sha256"),
        "model_file": record.get("model_file"),
        "loss_features": record.get("loss_features"),
        "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
            getattr(model, "autocast_dtype", None), "fp32"
        ),
        "trained_on": json.loads(json.dumps(record.get("data", {}), default=str)),
    }
