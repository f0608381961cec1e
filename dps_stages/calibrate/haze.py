"""Out-of-focus background (haze): level and spatial scale.

The out-of-focus (smooth) background of the widefield image ``W = mean(frames) - b``: the
10th percentile of each ``tile x tile`` block of ``W`` (Gaussian-smoothed by the PSF),
smoothed over neighbouring tiles, is the haze map ``B``; ``level = median(B) / mean(W)`` and
``scale`` the half-width (um) at which the autocorrelation of ``B - mean(B)`` falls to 1/2.
The three angles' widefield images (mean of their three phases) are independent
acquisitions of the same field: the estimate is their mean and the uncertainty their
standard error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..optics import Optics
from ._util import as_stack

__all__ = ["HazeCalibration", "calibrate_haze"]


@dataclass
class HazeCalibration:
    """Out-of-focus background: ``level`` (fraction of the mean widefield signal), ``scale``
    (um, half-width at half-maximum of its autocorrelation); ``map`` for the figure only."""

    level: float
    level_sigma: float
    scale: float
    scale_sigma: float
    map: np.ndarray | None = field(default=None, repr=False)


def _haze_one(wf: np.ndarray, optics: Optics, tile: int) -> tuple[float, float, np.ndarray]:
    sigma_psf = 0.21 * optics.wavelength / optics.na / optics.pixel_size  # Gaussian sigma, px
    sm = ndi.gaussian_filter(wf, sigma_psf)
    ny, nx = (wf.shape[0] // tile) * tile, (wf.shape[1] // tile) * tile
    blocks = sm[:ny, :nx].reshape(ny // tile, tile, nx // tile, tile)
    low = np.percentile(blocks, 10, axis=(1, 3))
    bmap = ndi.gaussian_filter(low, 1.0, mode="nearest")
    level = float(np.median(bmap) / max(float(wf.mean()), 1e-12))
    d = bmap - bmap.mean()
    ac = np.fft.ifft2(np.abs(np.fft.fft2(d, s=(2 * d.shape[0], 2 * d.shape[1]))) ** 2).real
    ac = np.fft.fftshift(ac / max(ac[0, 0], 1e-300))
    cy, cx = ac.shape[0] // 2, ac.shape[1] // 2
    yy, xx = np.indices(ac.shape)
    rr = np.hypot(yy - cy, xx - cx)
    half = rr[ac < 0.5]
    scale_tiles = float(half.min()) if half.size else float(min(d.shape))
    return level, scale_tiles * tile * optics.pixel_size / 1000.0, bmap


def calibrate_haze(
    frames: Any, optics: Optics, *, offset: float | None = None, tile: int = 32
) -> HazeCalibration:
    """Out-of-focus background level and spatial scale (module docstring), from the three
    angles' widefield images (estimate: their mean; uncertainty: their standard error)."""
    arr = as_stack(frames)
    b = float(np.percentile(arr, 0.5)) if offset is None else float(offset)
    res = [_haze_one(arr[i, 3 * a : 3 * a + 3].mean(axis=0) - b, optics, tile)
           for i in range(arr.shape[0]) for a in range(3)]  # fmt: skip
    lv = np.array([r[0] for r in res])
    sc = np.array([r[1] for r in res])
    se = 1.0 / np.sqrt(len(res) - 1) if len(res) > 1 else float("nan")
    return HazeCalibration(
        level=float(lv.mean()),
        level_sigma=float(lv.std(ddof=1) * se) if len(res) > 1 else float("nan"),
        scale=float(sc.mean()),
        scale_sigma=float(sc.std(ddof=1) * se) if len(res) > 1 else float("nan"),
        map=np.mean([r[2] for r in res], axis=0),
    )
