"""Reading and writing images: TIFF, folders of TIFFs, Zarr, OME-Zarr.

Intermediates are chunked Zarr (v3) arrays compressed with Blosc-zstd, one chunk per image
tile, written through Dask so that a stack larger than memory streams chunk by chunk. Final
images are written as OME-Zarr (NGFF 0.4/0.5 as ome-zarr writes it, with the pixel size in the
coordinate transformations) and as ImageJ hyperstack TIFF (with the pixel size in the
resolution tags), readable by Fiji and napari.

Every write is atomic: data go to a hidden sibling path that is renamed onto the target only
once complete, so an interrupted job never leaves a store that looks finished. Inputs are only
ever opened read-only.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from zarr.codecs import BloscCodec

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_ARRAY = "image"  # name of the array inside a stage's Zarr group
RAW_FRAMES = 9  # 2D-SIM: 3 angles x 3 phases


class DpsInputError(ValueError):
    """Bad input: the message names the file, the value and what was expected."""


# --------------------------------------------------------------------------------------------
# atomic writes


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``.

    On any exception the temporary file or folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.<name>.tmp-*`` siblings of ``path`` left by earlier killed writes.

    One output is written by one job at a time (the workflow's rule, or one ``dps`` command),
    so a temporary of the same output found before a new write belongs to a dead writer.
    Returns the paths removed.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


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


def default_chunks(shape: tuple[int, ...], tile: int = 1024) -> tuple[int, ...]:
    """One chunk = one image tile: 1 along the leading axes, ``tile`` along y and x."""
    lead = (1,) * (len(shape) - 2)
    return lead + (min(tile, shape[-2]), min(tile, shape[-1]))


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
            if isinstance(arr, da.Array):
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


class _NamedChunks:
    """A read-only view of a Zarr array whose chunk-read failures (a corrupt or missing chunk,
    found only when the data stream through) raise :class:`DpsInputError` naming the store."""

    def __init__(self, array: zarr.Array, path: Path) -> None:
        self.array, self.path = array, path
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return self.array[key]
        except Exception as exc:  # blosc, zstd, JSON, OSError: the store is damaged
            raise DpsInputError(
                f"{self.path}: corrupt or unreadable Zarr chunk ({type(exc).__name__}: {exc})"
            ) from exc


def _lazy(array: zarr.Array, path: Path) -> da.Array:
    """A dask array over ``array``, one dask chunk per Zarr chunk, errors naming ``path``."""
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


#: nanometres per OME-XML length unit (the UnitsLength symbols of the OME schema)
OME_UNITS_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "mm": 1e6, "Å": 0.1, "pm": 1e-3, "m": 1e9}


def _ome_tiff_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """Pixel size in nm from an OME-TIFF's first ``Pixels`` element: ``PhysicalSizeX`` in
    ``PhysicalSizeXUnit`` (µm when the unit is not given, as the OME schema defaults)."""
    if not tif.is_ome or not tif.ome_metadata:
        return None
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeX") is None:
        return None
    factor = OME_UNITS_NM.get(pixels.get("PhysicalSizeXUnit", "µm"))
    size = float(pixels.get("PhysicalSizeX"))
    return None if factor is None or size <= 0 else size * factor


def _tiff_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """Pixel size in nm: an OME-TIFF's ``PhysicalSizeX``, else the ImageJ/TIFF resolution
    tags, if present."""
    ome = _ome_tiff_pixel_size(tif)
    if ome is not None:
        return ome
    page = tif.pages.first
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if num == 0 or (num == 1 and den == 1):
        return None
    per_unit = num / den  # pixels per unit
    unit = (tif.imagej_metadata or {}).get("unit", "")
    to_nm = {"um": 1e3, "micron": 1e3, "µm": 1e3, "\\u00B5m": 1e3, "nm": 1.0}.get(unit)
    if to_nm is None:
        res_unit = page.tags.get("ResolutionUnit")
        to_nm = {3: 1e7, 2: 2.54e7}.get(int(res_unit.value) if res_unit else 0)
    return None if to_nm is None else float(to_nm / per_unit)


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
        return (da.stack(frames) if lazy else np.stack(frames)), meta
    if path.suffix.lower() in TIFF_SUFFIXES:
        arr, px = _open_tiff(path, tile) if lazy else _read_tiff(path)
        meta["pixel_size"] = px
        return arr, meta
    raise DpsInputError(
        f"{path}: unsupported input; expected a .tif/.tiff file, a folder of TIFFs, or Zarr"
    )


def _read_tiff(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.asarray(), _tiff_pixel_size(tif)
    except Exception as exc:  # tifffile raises many kinds for a damaged file
        raise DpsInputError(f"{path}: unreadable TIFF ({type(exc).__name__}: {exc})") from exc


class _ContiguousTiff:
    """Read-only array view of the uncompressed, contiguous image data of a TIFF series: a
    slice reads only the rows (and, within them, the columns) it needs with ``os.pread``, so
    neither the whole file nor a memory map of it is ever held (a mapping's pages would count
    in the process's memory)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset = path, int(offset)
        self.file_dtype = np.dtype(dtype)
        self.shape, self.dtype, self.ndim = tuple(shape), dtype.newbyteorder("="), len(shape)
        self.size = os.path.getsize(path)
        end = self.offset + int(np.prod(self.shape)) * self.file_dtype.itemsize
        if end > self.size:
            raise DpsInputError(
                f"{path}: unreadable TIFF (truncated: the image data end at byte {end}, the "
                f"file has {self.size})"
            )

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if not all(isinstance(k, slice) for k in key):
            raise IndexError(f"only slices are supported; got {key}")
        ranges = [range(*k.indices(n)) for k, n in zip(key, self.shape, strict=True)]
        if any(r.step != 1 and len(r) for r in ranges):  # read the span, take every step-th
            span = tuple(slice(min(r[0], r[-1]), max(r[0], r[-1]) + 1) if len(r) else slice(0, 0)
                         for r in ranges)  # fmt: skip
            steps = tuple(slice(None, None, r.step if r.step > 0 else -r.step) for r in ranges)
            out = self[span][steps]
            flip = tuple(slice(None, None, -1 if r.step < 0 else 1) for r in ranges)
            return out[flip]
        ny, nx = self.shape[-2:]
        rows, cols = ranges[-2], ranges[-1]
        item = self.file_dtype.itemsize
        out = np.empty(tuple(len(r) for r in ranges), dtype=self.dtype)
        lead = [r for r in ranges[:-2]]
        strides = [int(np.prod(self.shape[i + 1 : -2], dtype=np.int64)) for i in range(len(lead))]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for index in np.ndindex(*(len(r) for r in lead)):
                plane = sum(lead[i][j] * strides[i] for i, j in enumerate(index))
                base = self.offset + plane * ny * nx * item
                dest = out[index]
                if len(cols) == nx and len(rows):  # whole rows: one read
                    start = base + rows.start * nx * item
                    dest[...] = self._read(fd, start, len(rows) * nx).reshape(len(rows), nx)
                    continue
                for i, r in enumerate(rows):
                    dest[i] = self._read(fd, base + (r * nx + cols.start) * item, len(cols))
        finally:
            os.close(fd)
        return out

    def _read(self, fd: int, start: int, count: int) -> np.ndarray:
        nbytes = count * self.file_dtype.itemsize
        buf = os.pread(fd, nbytes, start)
        if len(buf) != nbytes:
            raise DpsInputError(f"{self.path}: unreadable TIFF (truncated at byte {start})")
        return np.frombuffer(buf, dtype=self.file_dtype)


def _open_tiff(path: Path, tile: int = 1024) -> tuple[da.Array, float | None]:
    """A TIFF's first series as a dask array read tile by tile, and its pixel size (nm).

    Uncompressed contiguous data (what ImageJ and tifffile write) are read by byte ranges
    (:class:`_ContiguousTiff`); anything else (compressed, tiled, strips scattered in the
    file) through tifffile's Zarr store, one dask chunk per TIFF strip or tile at least.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            px = _tiff_pixel_size(tif)
            shape, offset = tuple(series.shape), series.dataoffset
            dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        if offset is not None and len(shape) >= 2:
            source: Any = _ContiguousTiff(path, offset, shape, dtype)
            chunks: Any = default_chunks(shape, tile)
        else:
            node = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
            if not isinstance(node, zarr.Array):  # a pyramid: the full resolution
                node = node[sorted(node.array_keys())[0]]
            source, chunks = _NamedChunks(node, path), node.chunks
            if len(shape) >= 2:  # at least a tile, whole strips or tiles of the file
                chunks = default_chunks(shape, tile)
                chunks = tuple(-(-c // z) * z for c, z in zip(chunks, node.chunks, strict=True))
    except DpsInputError:
        raise
    except Exception as exc:  # tifffile raises many kinds for a damaged file
        raise DpsInputError(f"{path}: unreadable TIFF ({type(exc).__name__}: {exc})") from exc
    if len(shape) < 2:
        return da.from_array(np.asarray(source[...]), chunks=-1), px
    return da.from_array(source, chunks=chunks, asarray=True, fancy=False), px


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
        if isinstance(arr, da.Array):
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


class _TiffRegion:
    """Write-only array view of a TIFF's contiguous image data: ``__setitem__`` writes each
    row of a block at its place with ``os.pwrite`` (the target of ``dask.array.store``)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...]) -> None:
        self.path, self.offset, self.shape = path, int(offset), tuple(shape)
        self.dtype = np.dtype("<f4")

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        ranges = [range(*k.indices(n)) for k, n in zip(key, self.shape, strict=True)]
        value = np.ascontiguousarray(np.broadcast_to(value, tuple(len(r) for r in ranges)),
                                     dtype=self.dtype)  # fmt: skip
        ny, nx = self.shape[-2:]
        lead = ranges[:-2]
        strides = [int(np.prod(self.shape[i + 1 : -2], dtype=np.int64)) for i in range(len(lead))]
        rows, cols = ranges[-2], ranges[-1]
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for index in np.ndindex(*(len(r) for r in lead)):
                plane = sum(lead[i][j] * strides[i] for i, j in enumerate(index))
                base = self.offset + plane * ny * nx * 4
                block = value[index]
                if len(cols) == nx:
                    os.pwrite(fd, block.tobytes(), base + rows.start * nx * 4)
                    continue
                for i, r in enumerate(rows):
                    os.pwrite(fd, block[i].tobytes(), base + (r * nx + cols.start) * 4)
        finally:
            os.close(fd)


def write_tiff(
    path: str | os.PathLike,
    image: np.ndarray | da.Array,
    pixel_size: float | None,
    *,
    time_interval: float | None = None,
) -> Path:
    """Write an ImageJ hyperstack TIFF (float32) with the pixel size in micrometres.

    The leading axis of a stack ``(n, y, x)`` or ``(n, c, y, x)`` holds independent images
    (fields of view): it is written as ImageJ *slices* (``Z``), each labelled ``field <i>``,
    so that Fiji steps through them and never plays them as a movie. Only a real time series,
    given with ``time_interval`` (seconds between frames), is written as *frames* (``T``).

    A dask array is written tile by tile: tifffile writes the header of an (empty) file of the
    full shape, then each computed tile's rows go to their place (:class:`_TiffRegion`), so the
    image is never held whole.
    """
    if not isinstance(image, da.Array):
        image = np.asarray(image, dtype=np.float32)
    lead = "T" if time_interval else "Z"
    axes = {2: "YX", 3: f"{lead}YX", 4: f"{lead}CYX"}.get(image.ndim)
    if axes is None:
        raise ValueError(f"cannot write a {image.ndim}-D array as ImageJ TIFF")
    metadata: dict[str, Any] = {"axes": axes}
    if image.ndim > 2 and not time_interval:
        per_field = image.shape[1] if image.ndim == 4 else 1
        metadata["Labels"] = [f"field {i}" for i in range(image.shape[0]) for _ in range(per_field)]
    if time_interval:
        metadata["finterval"] = float(time_interval)
    kwargs: dict[str, Any] = {"imagej": True, "metadata": metadata}
    if pixel_size:
        um = pixel_size / 1e3
        kwargs["resolution"] = (1.0 / um, 1.0 / um)
        metadata["unit"] = "um"
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(image, da.Array):
            shape = tuple(int(n) for n in image.shape)
            offset, _ = tifffile.imwrite(
                tmp, shape=shape, dtype="<f4", byteorder="<", returnoffset=True, **kwargs
            )
            da.store(image.astype(np.float32), _TiffRegion(tmp, offset, shape), lock=False)
        else:
            tifffile.imwrite(tmp, image, **kwargs)
    return path


#: the NGFF version ome-zarr 0.18 writes on Zarr v3 (for the collection attributes here)
NGFF_VERSION = "0.5"


def _write_ngff_image(
    group: zarr.Group, image: np.ndarray, um: float, time_interval: float | None = None
) -> None:
    """One NGFF multiscale image (axes ``[t] [c] y x``) into ``group``."""
    from ome_zarr.writer import write_image

    lead: list[Any] = [{"name": "t", "type": "time", "unit": "second"}] if time_interval else []
    axes: list[Any] = (lead + ["c"])[: image.ndim - 2] if image.ndim > 2 else []
    axes += ["y", "x"]
    names = [a["name"] if isinstance(a, dict) else a for a in axes]
    lead_scale = {"t": float(time_interval or 1.0), "c": 1.0}
    # a pyramid for viewers (napari) only where the image is large enough to need one
    factors = tuple(f for f in (2, 4, 8, 16) if min(image.shape[-2:]) // f >= 256)
    write_image(
        image,
        group=group,
        axes=axes,
        scale={**{a: lead_scale[a] for a in names[:-2]}, "y": um, "x": um},
        axes_units={"y": "micrometer", "x": "micrometer"},
        scale_factors=factors,
    )


def write_ome_zarr(
    path: str | os.PathLike,
    image: np.ndarray,
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
    of type time. The project's attributes go to the root's ``dps`` attribute.
    """
    from ome_zarr.io import parse_url

    image = np.asarray(image, dtype=np.float32)
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
