"""What the readers and writers of every format share (:mod:`dps_stages.io` re-exports it):
the input error, atomic writes, one chunk per image tile, and a Zarr view whose chunk-read
failures name the store.

Every write is atomic: data go to a hidden sibling path that is renamed onto the target only
once complete, so an interrupted job never leaves a store that looks finished.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import zarr


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


# --------------------------------------------------------------------------------------------
# chunks


def default_chunks(shape: tuple[int, ...], tile: int = 1024) -> tuple[int, ...]:
    """One chunk = one image tile: 1 along the leading axes, ``tile`` along y and x."""
    lead = (1,) * (len(shape) - 2)
    return lead + (min(tile, shape[-2]), min(tile, shape[-1]))


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


def _is_dask(arr: Any) -> bool:
    """Whether ``arr`` is a Dask array. Dask (with xarray and pandas, about 0.5 s) is imported
    where a function streams, not when the io modules load (``dps --help`` and the commands
    that never stream skip it): a Dask array exists only once ``dask.array`` is imported."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(arr, dask_array.Array)
