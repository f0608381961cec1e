"""TIFF reading and writing (:mod:`dps_stages.io` re-exports the public part): the pixel size of
an OME-TIFF or ImageJ/TIFF resolution tags, a lazy reader of contiguous data by byte ranges
(``os.pread``) with tifffile's Zarr store as the fallback, and an ImageJ hyperstack writer
that streams a dask array tile by tile (``os.pwrite``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile
import zarr

from dps_stages.io_core import DpsInputError, _is_dask, _NamedChunks, atomic_path, default_chunks

if TYPE_CHECKING:
    import dask.array as da

# --------------------------------------------------------------------------------------------
# reading


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
    import dask.array as da

    if len(shape) < 2:
        return da.from_array(np.asarray(source[...]), chunks=-1), px
    return da.from_array(source, chunks=chunks, asarray=True, fancy=False), px


# --------------------------------------------------------------------------------------------
# writing


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


#: Bytes of pixel data above which a TIFF is written as OME-TIFF in the BigTIFF format: a
#: classic TIFF (which ImageJ's own hyperstacks are) addresses at most 4 GiB, and tifffile
#: keeps 32 MiB of that for the header and metadata.
CLASSIC_TIFF_LIMIT = 2**32 - 2**25


def _tiff_kwargs(
    shape: tuple[int, ...], pixel_size: float | None, time_interval: float | None
) -> dict[str, Any]:
    """tifffile's keywords: an ImageJ hyperstack, or an OME BigTIFF above the classic limit."""
    lead = "T" if time_interval else "Z"
    axes = {2: "YX", 3: f"{lead}YX", 4: f"{lead}CYX"}.get(len(shape))
    if axes is None:
        raise ValueError(f"cannot write a {len(shape)}-D array as ImageJ TIFF")
    um = pixel_size / 1e3 if pixel_size else None
    if int(np.prod(shape, dtype=np.int64)) * 4 > CLASSIC_TIFF_LIMIT:
        # OME-TIFF is what Fiji (Bio-Formats), napari and QuPath read at this size, with the
        # pixel size; ImageJ's own format has no BigTIFF variant
        ome: dict[str, Any] = {"axes": axes}
        if um:
            for ax in "XY":
                ome.update({f"PhysicalSize{ax}": um, f"PhysicalSize{ax}Unit": "µm"})
        if time_interval:
            ome["TimeIncrement"], ome["TimeIncrementUnit"] = float(time_interval), "s"
        return {"ome": True, "bigtiff": True, "metadata": ome}
    metadata: dict[str, Any] = {"axes": axes}
    if len(shape) > 2 and not time_interval:
        per_field = shape[1] if len(shape) == 4 else 1
        metadata["Labels"] = [f"field {i}" for i in range(shape[0]) for _ in range(per_field)]
    if time_interval:
        metadata["finterval"] = float(time_interval)
    kwargs: dict[str, Any] = {"imagej": True, "metadata": metadata}
    if um:
        kwargs["resolution"] = (1.0 / um, 1.0 / um)
        metadata["unit"] = "um"
    return kwargs


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
    Pixel data over 4 GiB (:data:`CLASSIC_TIFF_LIMIT`) cannot be a classic TIFF: it is
    written as an OME-TIFF in the BigTIFF format (same axes, ``PhysicalSizeX/Y`` in µm),
    which Fiji opens through Bio-Formats.

    A dask array is written tile by tile: tifffile writes the header of an (empty) file of the
    full shape, then each computed tile's rows go to their place (:class:`_TiffRegion`), so the
    image is never held whole.
    """
    if not _is_dask(image):
        image = np.asarray(image, dtype=np.float32)
    kwargs = _tiff_kwargs(tuple(int(n) for n in image.shape), pixel_size, time_interval)
    path = Path(path)
    with atomic_path(path) as tmp:
        if _is_dask(image):
            import dask.array as da

            shape = tuple(int(n) for n in image.shape)
            offset, _ = tifffile.imwrite(
                tmp, shape=shape, dtype="<f4", byteorder="<", returnoffset=True, **kwargs
            )
            da.store(image.astype(np.float32), _TiffRegion(tmp, offset, shape), lock=False)
        else:
            tifffile.imwrite(tmp, image, **kwargs)
    return path
