"""Reading and writing images: TIFF, folders of TIFFs, Zarr, OME-Zarr.

Intermediates are chunked Zarr (v3) arrays compressed with Blosc-zstd, one chunk per image
tile, written through Dask so that a stack larger than memory streams chunk by chunk. Final
images are written as OME-Zarr (NGFF 0.4/0.5 as ome-zarr writes it, with the pixel size in the
coordinate transformations) and as ImageJ hyperstack TIFF (with the pixel size in the
resolution tags), readable by Fiji and napari.

Every write is atomic: data go to a hidden sibling path that is renamed onto the target only
once complete, so an interrupted job never leaves a store that looks finished. Inputs are only
ever opened read-only.

TIFF reading and writing live in :mod:`dps_stages.io_tiff`, what every format shares (the
input error, atomic writes, tile chunks) in :mod:`dps_stages.io_core`; this module re-exports
their public names, so ``from dps_stages.io import write_tiff`` and ``io.DpsInputError`` work
as before.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from dps_stages.io_core import DpsInputError as DpsInputError
from dps_stages.io_core import _is_dask, _NamedChunks, atomic_path, default_chunks
from dps_stages.io_core import remove_stale_temporaries as remove_stale_temporaries
from dps_stages.io_tiff import OME_UNITS_NM as OME_UNITS_NM
from dps_stages.io_tiff import _open_tiff, _read_tiff
from dps_stages.io_tiff import write_tiff as write_tiff

if TYPE_CHECKING:
    import dask.array as da

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_ARRAY = "image"  # name of the array inside a stage's Zarr group
RAW_FRAMES = 9  # 2D-SIM: 3 angles x 3 phases


# --------------------------------------------------------------------------------------------
# attributes as JSON


def _jsonable(value: Any) -> Any:
    """Attributes must be JSON: convert numpy scalars and arrays, paths and tuples."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Zarr intermediates


def _compressor() -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")


def write_group(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray | da.Array],
    attrs: Mapping[str, Any] | None = None,
    *,
    tile: int = 1024,
) -> Path:
    """Write named arrays (numpy or dask) into a new Zarr group at ``path``, atomically.

    Dask arrays are stored chunk by chunk (never materialised whole); each array is chunked
    one image tile per chunk and compressed with Blosc-zstd.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        group.attrs.update(_jsonable(dict(attrs or {})))
        for name, arr in arrays.items():
            dtype = np.float32 if np.issubdtype(arr.dtype, np.floating) else arr.dtype
            chunks = default_chunks(tuple(arr.shape), tile)
            target = group.create_array(
                name, shape=arr.shape, chunks=chunks, dtype=dtype, compressors=_compressor()
            )
            if _is_dask(arr):
                import dask.array as da

                da.store(arr.astype(dtype).rechunk(chunks), target, lock=False)
            else:
                target[...] = np.asarray(arr, dtype=dtype)
    return path


def write_stage(
    path: str | os.PathLike,
    image: np.ndarray | da.Array,
    attrs: Mapping[str, Any] | None = None,
    *,
    tile: int = 1024,
) -> Path:
    """Write one stage's output: a Zarr group holding the array ``image`` and its attributes."""
    return write_group(path, {IMAGE_ARRAY: image}, attrs, tile=tile)


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).exists() for f in ("zarr.json", ".zgroup", ".zarray", ".zattrs")
    )


def open_group(path: str | os.PathLike) -> zarr.Group:
    """Open an existing Zarr group read-only."""
    path = Path(path)
    if not is_zarr(path):
        raise DpsInputError(f"{path}: not a Zarr store (expected a folder with zarr.json)")
    return zarr.open_group(str(path), mode="r")


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(open_group(path).attrs)


def open_stage(path: str | os.PathLike) -> tuple[da.Array, dict[str, Any]]:
    """Lazily open a stage's output (or any Zarr / OME-Zarr image) as a dask array + attrs."""
    path = Path(path)
    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return _lazy(node, path), dict(node.attrs)
    attrs = dict(node.attrs)
    names = list(node.array_keys())
    ome = ome_attrs(attrs)
    if IMAGE_ARRAY in names:
        name = IMAGE_ARRAY
    elif "bioformats2raw.layout" in ome:  # a collection of fields of view: (n, ...)
        fields = [open_stage(path / series)[0] for series in ome_series(node)]
        if not fields:
            raise DpsInputError(f"{path}: OME-Zarr collection holds no images")
        import dask.array as da

        first = ome_attrs(dict(node[ome_series(node)[0]].attrs))["multiscales"][0]
        return da.stack(fields), _ome_stage_attrs(attrs, first)
    elif "multiscales" in ome:  # OME-Zarr image: full resolution is the first dataset
        ms = ome["multiscales"]
        name = ms[0]["datasets"][0]["path"]
        attrs = _ome_stage_attrs(attrs, ms[0])
    elif len(names) == 1:
        name = names[0]
    else:
        raise DpsInputError(
            f"{path}: Zarr group holds arrays {sorted(names)}; expected one named "
            f"'{IMAGE_ARRAY}', a single array, or OME-Zarr multiscales"
        )
    return _lazy(node[name], path), attrs


def ome_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The NGFF attributes of a group: under ``ome`` (NGFF 0.5) or at the top (0.4)."""
    return dict(attrs.get("ome") or attrs)


def ome_series(group: zarr.Group) -> list[str]:
    """The image paths of an OME-Zarr collection (bioformats2raw layout), in order: the
    ``series`` of its ``OME`` group, else the groups ``0``, ``1``, ... that exist."""
    try:
        series = ome_attrs(dict(group["OME"].attrs)).get("series")
    except KeyError:
        series = None
    if series:
        return [str(s) for s in series]
    names, i = [], 0
    while str(i) in group:
        names.append(str(i))
        i += 1
    return names


def _lazy(array: zarr.Array, path: Path) -> da.Array:
    """A dask array over ``array``, one dask chunk per Zarr chunk, errors naming ``path``."""
    import dask.array as da

    chunks = array.chunks if array.ndim else ()
    return da.from_array(_NamedChunks(array, path), chunks=chunks, asarray=True, fancy=False)


def _ome_stage_attrs(attrs: Mapping[str, Any], multiscale: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's attributes from an OME-Zarr: those this project wrote (``dps``) with the pixel
    size of the NGFF scale (which a viewer shows) where it says one."""
    out = dict(attrs.get("dps") or {})
    px = _ome_pixel_size(multiscale)
    if px is not None or "pixel_size" not in out:
        out["pixel_size"] = px
    return out


#: nanometres per NGFF space unit
NGFF_UNITS_NM = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1}


def _ome_pixel_size(multiscale: Mapping[str, Any]) -> float | None:
    """Pixel size in nm (x axis) of the full-resolution level of an NGFF multiscale: its
    ``scale`` times the axis unit; None when it has no scale or no known unit."""
    try:
        names = [a.get("name") for a in multiscale["axes"]]
        transforms = multiscale["datasets"][0]["coordinateTransformations"]
        scale = next(t["scale"] for t in transforms if t.get("type") == "scale")
        unit = multiscale["axes"][names.index("x")].get("unit")
        return float(scale[names.index("x")]) * NGFF_UNITS_NM[unit]
    except (KeyError, IndexError, ValueError, StopIteration, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# reading user input


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def read_image(
    path: str | os.PathLike, *, lazy: bool = False, tile: int = 1024
) -> tuple[np.ndarray | da.Array, dict[str, Any]]:
    """Read an image (see :func:`_read_image`) and refuse a dtype that is not a real number.

    ``lazy``: a TIFF (or folder of TIFFs) is opened as a dask array read tile by tile
    (``tile`` pixels along y and x) instead of being loaded whole; Zarr is always lazy.
    """
    arr, meta = _read_image(path, lazy=lazy, tile=tile)
    check_dtype(arr, path)
    return arr, meta


def _read_image(
    path: str | os.PathLike, *, lazy: bool = False, tile: int = 1024
) -> tuple[np.ndarray | da.Array, dict[str, Any]]:
    """Read an image or stack from a TIFF, a folder of per-frame TIFFs, Zarr or OME-Zarr.

    Returns the array (numpy for TIFF unless ``lazy``, lazy dask for Zarr) and a dict with at
    least ``path`` and ``pixel_size`` (nm, or None when the file does not say).

    A folder of TIFFs is read in natural order (``x_2`` before ``x_10``) and stacked on a new
    first axis; all frames must share one shape.
    """
    path = Path(path)
    if not path.exists():
        raise DpsInputError(f"{path}: no such file or folder")
    meta: dict[str, Any] = {"path": str(path), "pixel_size": None}
    if is_zarr(path):
        try:
            arr, attrs = open_stage(path)
        except DpsInputError:
            raise
        except Exception as exc:  # corrupt store
            raise DpsInputError(f"{path}: unreadable Zarr store ({exc})") from exc
        meta.update(attrs)
        meta["path"] = str(path)
        return arr, meta
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES), key=_natural_key
        )
        if not files:
            raise DpsInputError(f"{path}: folder holds no .tif/.tiff files and is not Zarr")
        read = (lambda f: _open_tiff(f, tile)) if lazy else _read_tiff
        frames = [read(f)[0] for f in files]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            detail = ", ".join(f"{p.name}: {a.shape}" for p, a in zip(files, frames, strict=True))
            raise DpsInputError(f"{path}: frames differ in shape ({detail})")
        meta["pixel_size"] = read(files[0])[1]
        meta["files"] = [f.name for f in files]
        if lazy:
            import dask.array as da

            return da.stack(frames), meta
        return np.stack(frames), meta
    if path.suffix.lower() in TIFF_SUFFIXES:
        arr, px = _open_tiff(path, tile) if lazy else _read_tiff(path)
        meta["pixel_size"] = px
        return arr, meta
    raise DpsInputError(
        f"{path}: unsupported input; expected a .tif/.tiff file, a folder of TIFFs, or Zarr"
    )


def check_dtype(arr: np.ndarray | da.Array, path: str | os.PathLike) -> None:
    """Accept integer and floating-point pixels; refuse complex, bool and anything else, which
    a float conversion would silently change (the imaginary part dropped, masks as 0/1)."""
    dtype = np.dtype(arr.dtype)
    if dtype.kind == "c":
        raise DpsInputError(
            f"{path}: complex pixels ({dtype}); expected real intensities (take the magnitude "
            "or the real part yourself)"
        )
    if dtype.kind == "b":
        raise DpsInputError(f"{path}: boolean pixels (a mask?); expected intensities")
    if dtype.kind not in "iuf":
        raise DpsInputError(f"{path}: pixels of type {dtype}; expected integer or float values")


def _finite_block(block: np.ndarray, path: str) -> np.ndarray:
    check_finite(block, path)
    return block


def check_image(
    arr: np.ndarray | da.Array,
    path: str | os.PathLike,
    *,
    min_size: int = 8,
    finite: bool = True,
) -> np.ndarray | da.Array:
    """The checks every command makes on an input image before using it.

    Refuses a dtype that is not a real number (:func:`check_dtype`), fewer than 2 axes, an
    image under ``min_size`` pixels along y or x, and (``finite``) NaN or infinite pixels.
    A numpy array is checked now; a dask array (a Zarr store) is checked tile by tile as it
    streams, so the error comes while the output is still a temporary that is then removed.
    Returns ``arr`` (for dask, the checking view of it).
    """
    check_dtype(arr, path)
    shape = tuple(arr.shape)
    if len(shape) < 2:
        raise DpsInputError(f"{path}: expected an image (y, x); got shape {shape}")
    if min(shape[-2:]) < min_size:
        raise DpsInputError(
            f"{path}: images of {shape[-2]} x {shape[-1]} pixels are too small for this "
            f"command; it needs at least {min_size} x {min_size}"
        )
    if 0 in shape:
        raise DpsInputError(f"{path}: the image holds no pixels (shape {shape})")
    if finite:
        if _is_dask(arr):
            return arr.map_blocks(_finite_block, str(path), dtype=arr.dtype)
        check_finite(np.asarray(arr), path)
    return arr


def check_distinct(
    inputs: Mapping[str, str | os.PathLike], outputs: Mapping[str, str | os.PathLike]
) -> None:
    """Refuse an output that resolves to an input, lies inside one (a Zarr store or a folder of
    TIFFs), or holds one, and two outputs on the same path: writing it would replace or
    change the user's data. ``inputs`` and ``outputs`` map a label (the argument) to a path.
    """
    resolved_in = {label: Path(p).resolve() for label, p in inputs.items()}
    seen: dict[Path, str] = {}
    for out_label, out in outputs.items():
        target = Path(out).resolve()
        for in_label, source in resolved_in.items():
            if target == source:
                raise DpsInputError(
                    f"{out}: the output ({out_label}) is the input ({in_label}); an output "
                    "must not replace its source (your data): choose another output path"
                )
            if source in target.parents or target in source.parents:
                raise DpsInputError(
                    f"{out}: the output ({out_label}) and the input {source} ({in_label}) "
                    "are inside one another; choose an output outside the input"
                )
        if target in seen:
            raise DpsInputError(f"{out}: given as both {seen[target]} and {out_label}")
        seen[target] = out_label


def check_finite(arr: np.ndarray, path: str | os.PathLike) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DpsInputError(f"{path}: {bad} pixels are NaN or infinite; expected finite values")


def as_raw_sim(arr: np.ndarray | da.Array, path: str | os.PathLike) -> np.ndarray | da.Array:
    """Bring raw 2D-SIM frames to (n, 9, y, x), or raise naming the file and shape.

    Accepted: (9, y, x); (n, 9, y, x); (9n, y, x) as n acquisitions of 9 frames in a row,
    angle-major (frame i: angle i // 3, phase i % 3).
    """
    shape = tuple(arr.shape)
    if arr.ndim == 4 and shape[1] == RAW_FRAMES:
        return arr
    if arr.ndim == 3 and shape[0] % RAW_FRAMES == 0 and shape[0] > 0:
        return arr.reshape((shape[0] // RAW_FRAMES, RAW_FRAMES) + shape[1:])
    frames = shape[0] if arr.ndim == 3 else (shape[1] if arr.ndim == 4 else None)
    got = f"{frames} frames" if frames is not None else f"{arr.ndim} dimensions"
    raise DpsInputError(
        f"{path}: raw 2D-SIM needs 9 frames (3 angles x 3 phases, angle-major) per image, "
        f"as (9, y, x), (n, 9, y, x) or (9n, y, x); got shape {shape} ({got})"
    )


def as_image_stack(arr: np.ndarray | da.Array, path: str | os.PathLike) -> np.ndarray | da.Array:
    """Bring a widefield or SIM image to (n, y, x), or raise naming the file and shape."""
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr
    raise DpsInputError(
        f"{path}: expected a 2D image (y, x) or a stack (n, y, x); got shape {tuple(arr.shape)}"
    )


# --------------------------------------------------------------------------------------------
# final outputs


#: the NGFF version ome-zarr 0.18 writes on Zarr v3 (for the collection attributes here)
NGFF_VERSION = "0.5"


def _write_ngff_image(
    group: zarr.Group, image: np.ndarray | da.Array, um: float, time_interval: float | None = None
) -> None:
    """One NGFF multiscale image (axes ``[t] [c] y x``) into ``group``."""
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    lead: list[Any] = [{"name": "t", "type": "time", "unit": "second"}] if time_interval else []
    axes: list[Any] = (lead + ["c"])[: image.ndim - 2] if image.ndim > 2 else []
    axes += ["y", "x"]
    names = [a["name"] if isinstance(a, dict) else a for a in axes]
    lead_scale = {"t": float(time_interval or 1.0), "c": 1.0}
    # a pyramid for viewers (napari) only where the image is large enough to need one; block
    # means (not ome-zarr's default anti-aliased resize, which works chunk by chunk and so
    # depends on the chunking) give the same levels for a tiled write as for a whole one
    factors = tuple(f for f in (2, 4, 8, 16) if min(image.shape[-2:]) // f >= 256)
    write_image(
        image,
        group=group,
        axes=axes,
        scale={**{a: lead_scale[a] for a in names[:-2]}, "y": um, "x": um},
        axes_units={"y": "micrometer", "x": "micrometer"},
        scale_factors=factors,
        method=Methods.LOCAL_MEAN,
    )


def write_ome_zarr(
    path: str | os.PathLike,
    image: np.ndarray | da.Array,
    pixel_size: float | None,
    attrs: Mapping[str, Any] | None = None,
    *,
    time_interval: float | None = None,
) -> Path:
    """Write OME-Zarr (NGFF 0.5) with a physical scale in micrometres on y and x.

    A single image ``(y, x)`` is one NGFF image. A stack ``(n, y, x)`` or ``(n, c, y, x)``
    holds ``n`` independent images (fields of view), not a time series: it is written as a
    collection in the bioformats2raw layout (the root says ``bioformats2raw.layout: 3``, the
    images are the groups ``0`` .. ``n-1``, each an NGFF image ``[c] y x``, and the group
    ``OME`` lists them as ``series``), so that a viewer opens them as separate images. Only a
    real time series, given with ``time_interval`` (seconds), is one image with a ``t`` axis
    of type time. The project's attributes go to the root's ``dps`` attribute. A dask array
    is written tile by tile, its pyramid levels included.
    """
    import dask.array as da
    from ome_zarr.io import parse_url

    # NGFF chunks are the dask chunks: one tile each; a dask array streams, never held whole
    if _is_dask(image):
        image = image.astype(np.float32).rechunk(default_chunks(image.shape))
    else:
        image = np.asarray(image, dtype=np.float32)
        image = da.from_array(image, chunks=default_chunks(image.shape))
    if image.ndim not in (2, 3, 4):
        raise ValueError(f"cannot write a {image.ndim}-D array as OME-Zarr")
    um = (pixel_size or 1000.0) / 1e3
    path = Path(path)
    with atomic_path(path) as tmp:
        store = parse_url(str(tmp), mode="w").store
        root = zarr.group(store=store)
        if image.ndim == 2 or time_interval:
            _write_ngff_image(root, image, um, time_interval)
        else:
            series = [str(i) for i in range(image.shape[0])]
            for name, field in zip(series, image, strict=True):
                _write_ngff_image(root.create_group(name), field, um)
            root.create_group("OME").attrs["ome"] = {"version": NGFF_VERSION, "series": series}
            root.attrs["ome"] = {"version": NGFF_VERSION, "bioformats2raw.layout": 3}
        if attrs:
            root.attrs["dps"] = _jsonable(dict(attrs))
    return path


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(dict(data)), indent=2) + "\n")
    return path
