"""Shared helpers of the calibration: input checks, frequency grids, tiles, weighted lines."""

from __future__ import annotations

from typing import Any, NamedTuple

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


def band_spectra(
    xa: np.ndarray, phases: np.ndarray, k: np.ndarray, win: np.ndarray, *, minus: bool = False
) -> tuple[np.ndarray, ...]:
    """One angle's bands from its three frames ``xa`` (periodic parts, offset-free): the
    windowed spectra of the zero band ``C_0(g)`` and of the side band moved to its place,
    ``C_+1(g + k)`` at index ``g`` (and with ``minus`` ``C_-1(g - k)``), the frames unmixed
    with the phases (``M[p] = (1, e^{i phi_p}/2, e^{-i phi_p}/2)``, :func:`_mixing_inverse`).
    The camera pixel's transfer is left in (:func:`pixel_sinc`)."""
    from ..sim.otf import _mixing_inverse

    ny, nx = xa.shape[-2:]
    inv = _mixing_inverse(np.asarray(phases, dtype=float))
    ky, kx = float(k[0]), float(k[1])
    ramp = np.exp(-2j * np.pi * (ky * np.arange(ny)[:, None] + kx * np.arange(nx)[None, :]))
    out = [
        np.fft.fft2(np.tensordot(inv[0].real, xa, axes=1) * win),
        np.fft.fft2(np.tensordot(inv[1], xa, axes=1) * ramp * win),
    ]
    if minus:
        out.append(np.fft.fft2(np.tensordot(inv[2], xa, axes=1) * np.conj(ramp) * win))
    return tuple(out)


def pixel_sinc(fy: np.ndarray, fx: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
    """The camera pixel's box transfer ``sinc(f_y + k_y) sinc(f_x + k_x)`` (``np.sinc``)."""
    ky, kx = (0.0, 0.0) if k is None else (float(k[0]), float(k[1]))
    return np.sinc(fy + ky) * np.sinc(fx + kx)


class Overlap(NamedTuple):
    """One angle's bands on the grid, the camera pixel's sinc divided out: ``c0`` ``C_0(g)``,
    ``c1`` ``C_+1(g + k)``, their white noise powers per coefficient ``n0``, ``n1`` (measured
    beyond ``NOISE_Q f_c`` before the division, then divided by the sinc^2), ``cross`` the
    noise cross term of the two bands (shot noise follows the patterned signal, so their
    noises correlate through the variance map's component at ``k``; measured where both
    hold noise only), ``q0``, ``q1`` the radii ``|g| / f_c``, ``|g + k| / f_c``."""

    k: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    n0: np.ndarray
    n1: np.ndarray
    cross: np.ndarray
    q0: np.ndarray
    q1: np.ndarray


def overlap_bands(x: np.ndarray, params: Any, cutoff: float) -> list[Overlap]:
    """The three angles' :class:`Overlap` of one acquisition's (offset-free) frames ``x``
    ``(9, y, x)``, from their periodic parts (Moisan 2011) under :func:`edge_window`."""
    from ..sim import periodic_smooth_decomposition

    ny, nx = x.shape[-2:]
    xp, _ = periodic_smooth_decomposition(x.astype(np.float32))
    xp = xp.astype(np.float64)
    win = np.outer(edge_window(ny), edge_window(nx))
    fy, fx, q0 = q_grid((ny, nx), cutoff)
    box = (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)
    s0 = pixel_sinc(fy, fx)
    out = []
    for a in range(3):
        k = np.asarray(params.k[a], dtype=float)
        c0, c1 = band_spectra(xp[3 * a : 3 * a + 3], params.phases[a], k, win)
        q1 = np.hypot(fy + k[0], fx + k[1]) / cutoff
        n0 = float(np.mean(np.abs(c0[(q0 > NOISE_Q) & box]) ** 2))
        n1 = float(np.mean(np.abs(c1[(q1 > NOISE_Q) & box]) ** 2))
        both = (q0 > NOISE_Q) & (q1 > NOISE_Q) & box
        zeta = complex(np.mean(np.conj(c0[both]) * c1[both]))
        s1 = pixel_sinc(fy, fx, k)
        out.append(Overlap(k, c0 / s0, c1 / s1, n0 / s0**2, n1 / s1**2, zeta / (s0 * s1), q0, q1))
    return out
