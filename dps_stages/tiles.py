"""Tile-by-tile processing of image stacks with halos, through Dask's ``map_overlap``.

An image larger than memory is split into tiles along y and x; each tile is processed with a
halo of neighbouring pixels so that an operator whose output depends on a bounded
neighbourhood gives the same result as on the whole image, then the halo is cut away.
At the outer border no padding is invented (``boundary='none'``): the function sees exactly
the edge it would see on the whole image.
"""

from __future__ import annotations

from collections.abc import Callable

import dask.array as da
import numpy as np


def apply_tiled(
    stack: da.Array | np.ndarray,
    func: Callable[[np.ndarray], np.ndarray],
    *,
    halo: int,
    tile: int = 1024,
    align: int = 1,
) -> da.Array:
    """Apply ``func`` (an operator on (..., y, x) arrays) tile by tile with a halo.

    Parameters
    ----------
    stack : array (..., y, x)
        Leading axes are processed one element per chunk.
    func : callable
        Maps a (..., ty, tx) block to a block of the same shape.
    halo : int
        Pixels of context on each side of a tile; the operator's reach.
    tile : int
        Tile edge in pixels (rounded down to a multiple of ``align``).
    align : int
        Tile origins and halos are multiples of this, for operators that work on a
        sub-sampled grid (a shrink factor) and must see the same grid on every tile.
    """
    arr = stack if isinstance(stack, da.Array) else da.from_array(stack)
    ny, nx = arr.shape[-2:]
    tile = max(align, (tile // align) * align)
    halo = -(-halo // align) * align
    chunks = (1,) * (arr.ndim - 2) + (min(tile, ny), min(tile, nx))
    arr = arr.rechunk(chunks)
    # a halo may not exceed the smallest tile; when the image fits in one tile, no halo
    if ny <= tile and nx <= tile:
        return arr.map_blocks(func, dtype=np.float32)
    depth = {arr.ndim - 2: min(halo, ny), arr.ndim - 1: min(halo, nx)}
    return arr.map_overlap(func, depth=depth, boundary="none", dtype=np.float32, allow_rechunk=True)
