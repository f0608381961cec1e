"""Fourier ring correlation: resolution from two independent images of the same field.

Saxton & Baumeister, J. Microsc. 127, 127-138 (1982); for light microscopy Banterle et al.,
J. Struct. Biol. 183, 363-367 (2013) and Nieuwenhuizen et al., Nature Methods 10, 557-562
(2013), with the fixed 1/7 threshold. Caveats: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft

from dps_stages.metrics._common import WORKERS, apodise, as_2d


@dataclass(frozen=True, eq=False)
class FRCResult:
    """Result of :func:`frc`.

    ``frequencies`` (cycles/pixel, 0 to 0.5), ``curve`` (raw FRC per ring), ``smoothed`` (the
    moving average searched for the crossing), ``threshold``; ``resolution_px = 1 / q_c``,
    ``q_c`` the first crossing (interpolated), or 2 px (the sampling limit) with
    ``threshold_reached = False`` when there is none; ``resolution_nm`` (None without a pixel
    size).
    """

    frequencies: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    smoothed: np.ndarray = field(repr=False)
    threshold: float
    resolution_px: float
    resolution_nm: float | None
    threshold_reached: bool

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        """Plain-Python view; ``curves=True`` adds the curves as lists."""
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "resolution_px": self.resolution_px,
            "resolution_nm": self.resolution_nm,
            "threshold_reached": self.threshold_reached,
        }
        if curves:
            out["frequencies"] = self.frequencies.tolist()
            out["curve"] = self.curve.tolist()
            out["smoothed"] = self.smoothed.tolist()
        return out


def frc(
    image1: np.ndarray,
    image2: np.ndarray,
    pixel_size: float | None = None,
    threshold: float = 1.0 / 7.0,
    apodise_px: int = 20,
    smooth: int = 3,
) -> FRCResult:
    """Fourier ring correlation of two independent images of the same field.

    ``FRC(q) = sum_ring F1 F2* / sqrt(sum_ring |F1|^2 sum_ring |F2|^2)`` over rings
    ``1 / min(ny, nx)`` cycles/pixel wide up to Nyquist, after :func:`apodise`
    (``apodise_px``); smoothed over ``smooth`` rings; the resolution is ``1 / q_c`` at the
    first crossing of ``threshold`` (1/7: Nieuwenhuizen et al., Nat. Methods 10, 557-562,
    2013; Banterle et al., J. Struct. Biol. 183, 363-367, 2013). Caveats: docs/metrics.md.
    """
    a = as_2d(image1, "image1")
    b = as_2d(image2, "image2")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: image1 {a.shape} vs image2 {b.shape}")
    if min(a.shape) < 4:
        raise ValueError(f"images too small for FRC: {a.shape}")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1; got {smooth}")
    ny, nx = a.shape
    f1 = scipy.fft.rfft2(apodise(a, apodise_px), workers=WORKERS)
    f2 = scipy.fft.rfft2(apodise(b, apodise_px), workers=WORKERS)
    qy = np.fft.fftfreq(ny)
    qx = np.fft.rfftfreq(nx)
    n_min = min(ny, nx)
    q = np.sqrt(qy[:, None] ** 2 + qx[None, :] ** 2)
    ring = np.rint(q * n_min).astype(np.int64)
    n_rings = n_min // 2 + 1  # rings 0 .. n_min // 2, i.e. up to Nyquist
    np.minimum(ring, n_rings, out=ring)
    # Hermitian weights: columns with a mirror image outside the half spectrum count twice.
    w = np.full(qx.size, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    w2 = np.broadcast_to(w[None, :], ring.shape).ravel()
    ring_flat = ring.ravel()

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring_flat, weights=values.ravel() * w2, minlength=n_rings + 1)[:n_rings]

    cross = ring_sum((f1 * np.conj(f2)).real)
    p1 = ring_sum(np.abs(f1) ** 2)
    p2 = ring_sum(np.abs(f2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = cross / np.sqrt(p1 * p2)
    curve[~np.isfinite(curve)] = 0.0
    freqs = np.arange(n_rings) / n_min

    if smooth > 1:
        kernel = np.ones(smooth)
        num = np.convolve(curve, kernel, mode="same")
        den = np.convolve(np.ones_like(curve), kernel, mode="same")
        smoothed = num / den
    else:
        smoothed = curve.copy()

    below = np.flatnonzero(smoothed[1:] < threshold)
    if below.size:
        i = int(below[0]) + 1
        y0, y1 = smoothed[i - 1], smoothed[i]
        t = (y0 - threshold) / (y0 - y1) if y0 > y1 else 1.0
        q_c = freqs[i - 1] + min(max(t, 0.0), 1.0) * (freqs[i] - freqs[i - 1])
        reached = True
    else:
        q_c = freqs[-1]
        reached = False
    res_px = 1.0 / q_c if q_c > 0 else math.inf
    res_nm = None if pixel_size is None else res_px * float(pixel_size)
    for arr in (freqs, curve, smoothed):
        arr.setflags(write=False)
    return FRCResult(
        frequencies=freqs,
        curve=curve,
        smoothed=smoothed,
        threshold=float(threshold),
        resolution_px=float(res_px),
        resolution_nm=res_nm,
        threshold_reached=reached,
    )
