"""2D-SIM: the detection OTF model, frequency grids, windows and the frames' preprocessing.

``O(f) = (2/pi)(acos q - q sqrt(1 - q^2)) a^q sinc(f_y) sinc(f_x)``, ``q = |f| / f_c``
(Goodman, *Introduction to Fourier Optics*, 6.3.2; fairSIM's damping ``a``, Mueller et al.,
Nat. Commun. 7, 10980, 2016); periodic plus smooth decomposition (Moisan 2011). Theory:
``docs/sim.md``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as sfft

_WORKERS = -1
_TWO_PI = 2.0 * np.pi


# --------------------------------------------------------------------------------------------
# Helpers: input checks, OTF, grids, windows
# --------------------------------------------------------------------------------------------
def _check_frames(frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.shape[0] != 9:
        raise ValueError(
            f"raw 2D-SIM input must have shape (9, y, x) (3 angles x 3 phases, angle-major); "
            f"got shape {arr.shape}"
        )
    if arr.shape[1] < 16 or arr.shape[2] < 16:
        raise ValueError(
            f"raw 2D-SIM frames must be at least 16 x 16 pixels; got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"raw 2D-SIM frames must be real numbers; got dtype {arr.dtype}")
    return arr


def otf_values(
    fy: np.ndarray,
    fx: np.ndarray,
    cutoff: float,
    *,
    decay: float = 1.0,
    pixel: bool = True,
) -> np.ndarray:
    """Analytic detection OTF at arbitrary frequencies (cycles per camera pixel), float32.

    ``O(f) = (2/pi)(acos q - q sqrt(1 - q^2)) a^q`` for ``q = |f| / f_c <= 1``, 0 beyond
    (Goodman, Introduction to Fourier Optics, 6.3.2; the damping ``a^q`` = ``decay^q`` is
    fairSIM's approximate OTF, ``a = 1`` the ideal pupil), times ``sinc(f_y) sinc(f_x)``
    (``np.sinc``, the camera pixel's box integration) when ``pixel``. ``cutoff`` is
    ``f_c = 2 NA pixel_size / lambda`` (:attr:`Optics.cutoff_per_pixel`). On the FFT grid
    and with ``pixel=False, decay=1`` this equals :func:`dps_stages.optics.widefield_otf`.
    """
    fy = np.asarray(fy, dtype=np.float32)
    fx = np.asarray(fx, dtype=np.float32)
    if fy.ndim == 2 and fx.ndim == 2 and fy.shape[1] == 1 and fx.shape[0] == 1:
        # a grid given as a column and a row: the OTF is 0 beyond the cutoff, so evaluate it
        # on the rows and columns that reach into the disc only (the same values, a quarter
        # to a half of the work on the shifted grids of SIM)
        out = np.zeros((fy.shape[0], fx.shape[1]), dtype=np.float32)
        box = support_box(fy, fx, cutoff)
        if box is not None:
            rows, cols = box
            out[np.ix_(rows, cols)] = _otf_dense(fy[rows], fx[:, cols], cutoff, decay, pixel)
        return out
    return _otf_dense(fy, fx, cutoff, decay, pixel)


def support_box(
    fy: np.ndarray, fx: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows and columns of the grid given as a column ``fy`` and a row ``fx`` whose
    frequencies reach into the disc ``|f| <= cutoff``: everything an OTF of that cutoff is
    nonzero on. None when the disc misses the grid."""
    rows = np.flatnonzero(np.abs(fy[:, 0]) <= cutoff)
    cols = np.flatnonzero(np.abs(fx[0]) <= cutoff)
    if rows.size == 0 or cols.size == 0:
        return None
    return rows, cols


def _otf_dense(
    fy: np.ndarray, fx: np.ndarray, cutoff: float, decay: float, pixel: bool
) -> np.ndarray:
    """:func:`otf_values` evaluated at every point of the broadcast of ``fy`` and ``fx``."""
    q = np.sqrt(fy * fy + fx * fx) / np.float32(cutoff)
    qc = np.minimum(q, np.float32(1.0))
    otf = np.float32(2.0 / np.pi) * (np.arccos(qc) - qc * np.sqrt(np.float32(1.0) - qc * qc))
    if decay != 1.0:
        otf = otf * np.power(np.float32(decay), qc)
    if pixel:
        otf = otf * (np.sinc(fy) * np.sinc(fx)).astype(np.float32)
    return otf.astype(np.float32, copy=False)


def _attenuation(fy: np.ndarray, fx: np.ndarray, strength: float, fwhm: float) -> np.ndarray:
    """fairSIM OTF attenuation ``1 - s exp(-4 ln 2 |f|^2 / FWHM^2)`` (same units as f)."""
    r2 = fy * fy + fx * fx
    return (1.0 - strength * np.exp(np.float32(-4.0 * np.log(2.0) / fwhm**2) * r2)).astype(
        np.float32
    )


@lru_cache(maxsize=32)
def _freqs(n: int, d: float) -> np.ndarray:
    f = np.fft.fftfreq(n, d=d).astype(np.float32)
    f.setflags(write=False)
    return f


@lru_cache(maxsize=16)
def _tukey(n: int, width: int) -> np.ndarray:
    """Raised-cosine edge window: ``width`` samples rising from ~0 to 1 at each end."""
    w = np.ones(n, dtype=np.float32)
    width = int(min(max(width, 0), n // 2))
    if width > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
        w[:width] = ramp
        w[n - width :] = ramp[::-1]
    w.setflags(write=False)
    return w


@lru_cache(maxsize=16)
def _grid_otf(
    shape: tuple[int, int], d: float, cutoff: float, decay: float, pixel: bool
) -> np.ndarray:
    """OTF on an unshifted FFT grid with sample spacing ``d`` (camera pixels)."""
    fy = _freqs(shape[0], d)[:, None]
    fx = _freqs(shape[1], d)[None, :]
    o = otf_values(fy, fx, cutoff, decay=decay, pixel=pixel)
    o.setflags(write=False)
    return o


def _ramp(n: int, k: float, d: float = 1.0) -> np.ndarray:
    """``exp(-2 pi i k r)`` for ``r = d * arange(n)`` (camera pixels), complex64."""
    return np.exp(-2j * np.pi * k * d * np.arange(n)).astype(np.complex64)


def preprocess(
    frames: np.ndarray,
    *,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
) -> np.ndarray:
    """Camera offset and intensity correction of raw SIM frames, float32 ``(9, y, x)``.

    ``x_i <- (x_i - b) * mean_j(x_j - b) / mean(x_i - b)`` with ``b`` the
    ``background_percentile``-th percentile of all nine frames (a low percentile estimates the
    camera offset plus any uniform background; None: no subtraction) and the scaling only when
    ``normalise_intensity`` (it equalises laser fluctuation and bleaching between frames, which
    would otherwise leak the zero band into the side bands).
    """
    x = _check_frames(frames).astype(np.float32, copy=True)
    if background_percentile is not None:
        sub = x[:, ::2, ::2] if x[0].size > 65536 else x
        x -= np.float32(np.percentile(sub, background_percentile))
    if normalise_intensity:
        means = x.mean(axis=(1, 2), dtype=np.float64)
        target = means.mean()
        if np.all(means > 0) and target > 0:
            x *= (target / means).astype(np.float32)[:, None, None]
    return x


def periodic_smooth_decomposition(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periodic plus smooth decomposition ``u = p + s`` of the last two axes (Moisan 2011).

    Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39, 161 (2011):
    with the boundary image ``v`` (``v = 0`` inside; on the first/last row ``v = u[last] -
    u[first]`` resp. its negative, and likewise for the columns, the two adding at corners),
    the smooth component is ``s_hat(q, r) = v_hat(q, r) / (2 cos(2 pi q / M) + 2 cos(2 pi r /
    N) - 4)`` with ``s_hat(0, 0) = 0``, and ``p = u - s`` is periodic (no jump across the
    border, hence no cross in its spectrum). float32 results.
    """
    u = np.asarray(u, dtype=np.float32)
    m, n = u.shape[-2:]
    v = np.zeros_like(u)
    d_rows = u[..., -1, :] - u[..., 0, :]
    v[..., 0, :] += d_rows
    v[..., -1, :] -= d_rows
    d_cols = u[..., :, -1] - u[..., :, 0]
    v[..., :, 0] += d_cols
    v[..., :, -1] -= d_cols
    vh = sfft.rfft2(v, workers=_WORKERS)
    cy = np.cos(_TWO_PI * np.arange(m) / m)[:, None]
    cx = np.cos(_TWO_PI * np.arange(n // 2 + 1) / n)[None, :]
    den = (2.0 * cy + 2.0 * cx - 4.0).astype(np.float32)
    den[0, 0] = 1.0
    vh /= den
    vh[..., 0, 0] = 0.0
    s = sfft.irfft2(vh, s=(m, n), workers=_WORKERS).astype(np.float32)
    return u - s, s


def periodic_spectra(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D spectra (``fft2``, complex64) of the periodic and the smooth component of ``u``
    (:func:`periodic_smooth_decomposition`), with one 2-D transform per image.

    The boundary image ``v`` is non-zero on the four edges only, so its transform is
    separable: ``v_hat(q, r) = (1 - e^{2 pi i q / M}) R(r) + C(q) (1 - e^{2 pi i r / N})``
    with ``R``, ``C`` the 1-D transforms of the row jump ``u[M-1, :] - u[0, :]`` and the column
    jump ``u[:, N-1] - u[:, 0]``; then ``s_hat = v_hat / (2 cos(2 pi q / M) + 2 cos(2 pi r / N)
    - 4)`` (``s_hat(0, 0) = 0``) and ``p_hat = u_hat - s_hat`` (Moisan 2011, as in
    :func:`periodic_smooth_decomposition`, whose real-space route costs two more transforms).
    """
    u = np.asarray(u, dtype=np.float32)
    m, n = u.shape[-2:]
    rows = sfft.fft(u[..., -1, :] - u[..., 0, :], axis=-1)  # complex64
    cols = sfft.fft(u[..., :, -1] - u[..., :, 0], axis=-1)
    ey = (1.0 - np.exp(1j * _TWO_PI * np.arange(m) / m)).astype(np.complex64)
    ex = (1.0 - np.exp(1j * _TWO_PI * np.arange(n) / n)).astype(np.complex64)
    den = 2.0 * np.cos(_TWO_PI * np.arange(m) / m)[:, None]
    den = den + 2.0 * np.cos(_TWO_PI * np.arange(n) / n)[None, :] - 4.0
    den[0, 0] = np.inf  # s_hat(0, 0) = 0
    # elementwise work in place, in single precision: it costs more than the 2-D transform
    smooth = ey[:, None] * rows[..., None, :]
    smooth += cols[..., :, None] * ex[None, :]
    smooth *= (1.0 / den).astype(np.float32)
    full = sfft.fft2(u, workers=_WORKERS, axes=(-2, -1))
    full -= smooth
    return full, smooth


def _mixing_inverse(phases: np.ndarray) -> np.ndarray:
    """``M^{-1}`` for ``M[p] = (1, e^{i phi_p}/2, e^{-i phi_p}/2)``: rows give C_0, C_+1, C_-1."""
    e = np.exp(1j * np.asarray(phases, dtype=np.float64))
    mix = np.stack([np.ones(3), e / 2.0, np.conj(e) / 2.0], axis=1)
    return np.linalg.inv(mix)


def _wrapped_index(n: int) -> np.ndarray:
    """Index of ``-f`` for each FFT index of an ``n`` grid."""
    return (-np.arange(n)) % n
