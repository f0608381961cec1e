"""Shared helpers of the calibration: input checks, frequency grids, tiles, weighted lines."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIZE = 64  # smallest frame edge the estimators work on (32 px tiles, a radial spectrum)
NOISE_Q = 1.1  # noise measured beyond this fraction of the OTF cutoff
MIN_SNR = 10.0  # overlap bins used: zero-band power this many sigma above its noise


def raw_stack(frames: Any, dtype: Any = np.float64) -> np.ndarray:
    """Raw 2D-SIM frames as an ``(n, 9, y, x)`` array (``(9, y, x)`` is ``n = 1``)."""
    arr = np.asarray(frames, dtype=dtype)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 9:
        raise ValueError(f"raw 2D-SIM frames must be (9, y, x) or (n, 9, y, x); got {arr.shape}")
    return arr


def as_stack(frames: Any) -> np.ndarray:
    """:func:`raw_stack` in float64, at least ``MIN_SIZE`` pixels on a side."""
    arr = raw_stack(frames)
    if arr.shape[2] < MIN_SIZE or arr.shape[3] < MIN_SIZE:
        raise ValueError(
            f"calibration needs frames of at least {MIN_SIZE} x {MIN_SIZE} pixels; got {arr.shape}"
        )
    return arr


def q_grid(shape: tuple[int, int], cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return fy, fx, np.hypot(fy, fx) / cutoff


def edge_window(n: int, frac: float = 0.125) -> np.ndarray:
    w = np.ones(n)
    m = max(int(round(frac * n)), 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    w[:m], w[n - m :] = ramp, ramp[::-1]
    return w


def tile_means(img: np.ndarray, tile: int) -> np.ndarray:
    ny, nx = (img.shape[-2] // tile) * tile, (img.shape[-1] // tile) * tile
    x = img[..., :ny, :nx]
    x = x.reshape(*x.shape[:-2], ny // tile, tile, nx // tile, tile)
    return x.mean(axis=(-3, -1))


def wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares line ``y = s x + c``; returns ``(s, c)``."""
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    s = (w * (x - mx) * (y - my)).sum() / max((w * (x - mx) ** 2).sum(), 1e-300)
    return float(s), float(my - s * mx)
