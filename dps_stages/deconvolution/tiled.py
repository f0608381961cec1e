"""Deconvolution of a large image tile by tile with a halo (:func:`deconvolve_tiled`)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .rl import richardson_lucy
from .sparse import sparse_hessian

__all__ = ["HALO_PSF_SIZES", "SPARSE_HALO", "deconvolution_halo", "deconvolve_tiled"]

#: halo of a tile in PSF sizes (the PSF array's side, 4 Airy rings: see deconvolution_halo)
HALO_PSF_SIZES = 2.0
#: extra halo of sparse deconvolution's step 1 (camera pixels; see deconvolution_halo)
SPARSE_HALO = 16


def deconvolution_halo(psf: np.ndarray, method: Literal["rl", "sparse"] = "rl") -> int:
    """Halo (pixels each side) of a tile for :func:`deconvolve_tiled`.

    Rule: ``HALO_PSF_SIZES`` (2) times the PSF array's larger side (:func:`psf_for` sizes it
    to 4 Airy rings), plus ``SPARSE_HALO`` (16) pixels for sparse deconvolution, whose
    Hessian step couples neighbouring pixels as well. Each RL iteration widens the reach of
    a pixel by one PSF, but the multiplicative update damps a remote change quickly: with the
    default Airy PSF (27 pixels) and 30 iterations, tiles of 64 pixels differ from the whole
    image by 1.5e-4 of its maximum with a halo of 16 pixels and by 1e-6 (float rounding) from
    32 on; sparse step 1 alone (100 iterations) by 2e-5 at 8 pixels and 2e-7 at 16. The rule
    doubles the measured reach.
    """
    size = int(max(np.shape(psf)[-2:]))
    halo = int(np.ceil(HALO_PSF_SIZES * size))
    return halo + (SPARSE_HALO if method == "sparse" else 0)


def deconvolve_tiled(
    stack: Any,
    psf: np.ndarray,
    *,
    method: Literal["rl", "sparse"] = "rl",
    tile: int = 1024,
    halo: int | None = None,
    iterations: int | None = None,
    eps: float = 1e-6,
    **kw: Any,
) -> Any:
    """Richardson-Lucy (``"rl"``) or sparse deconvolution of each image of ``(..., y, x)``,
    tile by tile with a halo, as a lazy dask array (computed a tile at a time).

    Each tile of ``tile`` pixels is deconvolved with ``halo`` pixels of its neighbours
    (:func:`deconvolution_halo` when None) and cropped back (:func:`dps_stages.tiles.
    apply_tiled`); the image's own borders are treated as on the whole image. The two image
    scalars the methods use are taken from the whole image first (one streaming pass): RL's
    denominator floor ``eps max(y)`` and sparse deconvolution's normaliser ``m = max(y)``, so
    an image that fits one tile gives exactly :func:`richardson_lucy` /
    :func:`sparse_hessian` (keywords ``kw`` go to them).
    """
    import dask.array as da

    from ..tiles import apply_tiled

    if method not in ("rl", "sparse"):
        raise ValueError(f"method must be 'rl' or 'sparse'; got {method!r}")
    arr = da.asarray(stack).astype(np.float32)
    if arr.ndim < 2:
        raise ValueError(f"image must have at least 2 axes (..., y, x); got shape {arr.shape}")
    lead = arr.shape[:-2]
    flat = arr.reshape((-1,) + arr.shape[-2:])
    halo = deconvolution_halo(psf, method) if halo is None else int(halo)
    peaks = da.maximum(flat, 0).max(axis=(1, 2)).compute()
    outs = []
    for i, peak in enumerate(peaks):
        if method == "rl":
            its = 30 if iterations is None else iterations
            fn = _rl_tile(psf, its, eps * float(peak), kw)
        else:
            its = 100 if iterations is None else iterations
            fn = _sparse_tile(psf, its, float(peak), kw)
        outs.append(apply_tiled(flat[i], fn, halo=halo, tile=tile))
    return da.stack(outs).reshape(lead + arr.shape[-2:])


def _rl_tile(psf: np.ndarray, iterations: int, floor: float, kw: dict[str, Any]):
    def fn(block: np.ndarray) -> np.ndarray:
        return richardson_lucy(block, psf, iterations=iterations, floor=floor, **kw)

    return fn


def _sparse_tile(psf: np.ndarray, iterations: int, scale: float, kw: dict[str, Any]):
    def fn(block: np.ndarray) -> np.ndarray:
        return sparse_hessian(block, psf=psf, iterations=iterations, scale=scale, **kw)

    return fn
