"""Out-of-focus background (haze): level and spatial scale, from the SIM band separation.

Physical argument (optical sectioning by structured illumination: Neil, Juskaitis & Wilson,
Opt. Lett. 22, 1905, 1997; the same fact HiFi-SIM, Wen et al., Light Sci. Appl. 10, 70,
2021, uses to suppress the background): the illumination pattern is in focus only in the
focal plane. Light from out of focus sees the pattern through a defocused OTF that vanishes
at the pattern frequency ``k``, so it is *unmodulated*: it adds to the zero band and not at
all to the side bands. With the in-focus object ``X``, the haze ``H`` and the bands of one
angle separated as in :mod:`dps_stages.calibrate.otf`,

``C_0(g) = O(g) X(g) + H(g)``,  ``C_+1(g + k) = m e^{i delta} O(g + k) X(g)``,

so the side band sees the in-focus object at the same frequency ``g`` with no haze, and

``H(g) = C_0(g) - O(g) e^{-i delta} C_+1(g + k) / (m O(g + k))``

with ``O(q) = O_ideal(q) a^q`` and the modulation ``m`` of the calibrated OTF
(:func:`dps_stages.calibrate.calibrate_otf`, fitted where ``q_0 > 0.1``, i.e. where a smooth
haze has no power; the camera pixel's ``sinc`` divided out of both bands as there), and
``delta`` the phase of the overlap ``conj(C_0) C_+1`` at ``0.1 < q_0, q_1 < 0.95``.

Level: at ``g = 0`` (the window-weighted means) ``level = H(0) / C_0(0) = mean(B) / mean(W +
B)``, the fraction of the widefield signal that is not modulated: ``h / (1 + h)`` for a haze
``h = mean(B) / mean(W)``. It rests on ``O(k)``, which is small near the cutoff, so its noise
is that of the side band divided by ``m O(k)``.

Map and scale: ``X(g)`` is taken from both side bands, weighted by their signal-to-noise
``O(g +- k)^2`` (the ``-1`` band covers the ``g`` where ``|g + k|`` leaves the passband).
``H(g)`` low-passed by ``L(g) = exp(-|g|^2 / (2 s_f^2))`` (cut at ``3 s_f``, ``s_f =
min(0.05 f_c, sqrt((0.97 f_c)^2 - |k|^2) / 3)``), inverted and divided by the equally
low-passed window (normalised convolution) is the haze map ``B`` at the resolution ``s_L =
1 / (2 pi s_f)`` pixels (about 1 um for 525 nm, NA 1.4), far finer than a tile. ``scale``
comes from the radially averaged, overlap-normalised autocorrelation of ``B - mean(B)`` over
the window's interior: its half-maximum radius ``r_1/2`` is matched to the model of a
Gaussian-correlated haze seen through the low-pass, ``G = exp(-r^2 / (4 s_tot^2))``, ``s_tot^2
= s^2 + s_L^2``, less the mean of ``G`` over all pairs of the field (what subtracting the
field's mean takes off), and ``scale = 2 sqrt(ln 2) s``, the half-width at half-maximum of the
haze's own autocorrelation (the ``haze_scale`` of :mod:`dps_stages.simulate.microscope`).
Residual noise in the map, correlated over ``s_L``, pulls the scale down where the haze is
weak; a haze that is not Gaussian-correlated (an out-of-focus copy of the object) has no
single scale and reads between ``s_L`` and its blur.

Each angle of each acquisition gives one estimate (angles with ``m < 0.05`` or ``m`` not 3
sigma above 0 are left out); the level is their mean weighted by ``m^2`` (the side band's
signal-to-noise), its uncertainty the weighted standard error, and the map the weighted mean
of the angles' maps. Level and scale are ``nan`` when the attenuation is not determined
(``nan`` or ``sigma_a > a``, as in :func:`dps_stages.calibrate.calibrated_sim_settings`).
Assumes a uniform modulation over the field and a haze
smoother than ``1 / (0.1 f_c)`` (it must not leak into the modulation fit), and a known
camera offset: a uniform haze and an offset error are the same in the frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..optics import Optics
from ..sim import SIMParameters, estimate_parameters, otf_values
from ._util import as_stack, band_spectra, edge_window, pixel_sinc, q_grid

__all__ = ["HazeCalibration", "calibrate_haze"]

_FWHM_LN2 = 4.0 * np.log(2.0)  # HWHM^2 of exp(-r^2 / (4 s^2)) is 4 ln 2 s^2
_MIN_MODULATION = 0.05  # angles whose fitted modulation is lower carry no usable side band


@dataclass
class HazeCalibration:
    """Out-of-focus background: ``level`` (unmodulated fraction of the mean widefield signal,
    ``mean(B) / mean(W + B)``), ``scale`` (um, half-width at half-maximum of its
    autocorrelation), ``resolution`` (um, half-width of the map's low-pass); ``*_sigma``
    1-sigma; ``map`` (ADU, for the figure only)."""

    level: float
    level_sigma: float
    scale: float
    scale_sigma: float
    resolution: float = float("nan")
    map: np.ndarray | None = field(default=None, repr=False)


def _lowpass_sigma(params: list[SIMParameters], cutoff: float) -> float:
    """``s_f`` (cycles per pixel) of the map's low-pass (module docstring)."""
    kmax = max(float(np.hypot(*k)) for p in params for k in np.asarray(p.k).reshape(3, 2))
    return min(0.05 * cutoff, np.sqrt(max((0.97 * cutoff) ** 2 - kmax**2, 0.0)) / 3.0)


def _haze_angle(
    xa: np.ndarray,
    phases: np.ndarray,
    k: np.ndarray,
    m: float,
    a: float,
    cutoff: float,
    s_f: float,
    pupil: tuple[Callable[[np.ndarray], np.ndarray], complex] | None = None,
) -> tuple[float, np.ndarray]:
    """Level and (low-passed, window-weighted) haze spectrum of one angle's three frames.

    ``pupil``: the fitted OTF ``O(g + k)`` (:func:`dps_stages.calibrate.pupil.pupil_otf`) and
    this angle's amplitude ``A = m e^{i delta}`` from the same fit, used instead of ``O_ideal
    a^q``, ``m`` and the overlap's ``delta``; the in-focus object is then ``X = (conj(A O(g +
    k)) C_+1 + A conj(O(g - k)) C_-1) / (|A|^2 (|O(g + k)|^2 + |O(g - k)|^2))``."""
    ny, nx = xa.shape[-2:]
    win = np.outer(edge_window(ny), edge_window(nx))
    fy, fx, q0 = q_grid((ny, nx), cutoff)
    ky, kx = k
    c0, c1, cm1 = band_spectra(xa, phases, k, win, minus=True)
    c0 = c0 / pixel_sinc(fy, fx)
    c1 = c1 / pixel_sinc(fy, fx, k)
    cm1 = cm1 / pixel_sinc(fy, fx, (-ky, -kx))
    g2 = fy * fy + fx * fx
    lp = np.exp(-g2 / (2.0 * s_f * s_f)) * (g2 < (3.0 * s_f) ** 2)
    if pupil is None:
        q1 = np.hypot(fy + ky, fx + kx) / cutoff
        mid = (q0 > 0.1) & (q1 > 0.1) & (q0 < 0.95) & (q1 < 0.95)
        amp = m * np.exp(1j * float(np.angle(np.sum(np.conj(c0[mid]) * c1[mid]))))
        o0 = otf_values(fy, fx, cutoff, decay=a, pixel=False).astype(np.float64)
        op = otf_values(fy + ky, fx + kx, cutoff, decay=a, pixel=False).astype(np.float64)
        om = otf_values(fy - ky, fx - kx, cutoff, decay=a, pixel=False).astype(np.float64)
    else:
        otf_at, amp = pupil
        o0, op, om = otf_at(np.zeros(2)), otf_at(np.asarray(k)), otf_at(-np.asarray(k))
    den = np.abs(op) ** 2 + np.abs(om) ** 2
    use = (lp > 0) & (den > 0)
    # X(g) from both side bands, weighted by their signal-to-noise (|O(g +- k)|^2)
    xs = np.conj(amp * op[use]) * c1[use] + amp * np.conj(om[use]) * cm1[use]
    infocus = np.zeros_like(c0)
    infocus[use] = o0[use] * xs / (abs(amp) ** 2 * den[use])
    level = 1.0 - float(infocus[0, 0].real) / max(float(c0[0, 0].real), 1e-300)
    return level, (c0 - infocus) * lp


def _scale_px(d: np.ndarray, mask: np.ndarray, s_l: float) -> float:
    """Haze scale (HWHM, pixels) from the autocorrelation of ``d`` over ``mask`` (module
    docstring): the radius ``r_1/2`` where the radially averaged, overlap-normalised
    autocorrelation first falls to 1/2, then ``s_tot`` of the model ``(G - <G>) / (1 - <G>)``,
    ``G = exp(-r^2 / (4 s_tot^2))``, ``<G>`` its mean over all pairs of the field (what
    subtracting the field's mean takes off), that falls to 1/2 at ``r_1/2`` (bisection);
    ``scale = 2 sqrt(ln 2) sqrt(s_tot^2 - s_L^2)``."""
    shape = (2 * d.shape[0], 2 * d.shape[1])
    fm = np.fft.fft2(mask, s=shape)
    num = np.fft.ifft2(np.abs(np.fft.fft2(d * mask, s=shape)) ** 2).real
    den = np.fft.ifft2(np.abs(fm) ** 2).real
    ac = np.where(den > 0.25 * den[0, 0], num / np.maximum(den, 1e-300), np.nan)
    ac = ac / ac[0, 0]
    fy = np.fft.fftfreq(shape[0], 1.0 / shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1], 1.0 / shape[1])[None, :]
    r = np.hypot(fy, fx)
    ok = np.isfinite(ac)
    idx = np.round(r[ok] * 2).astype(int)  # bins of 0.5 pixel
    cnt = np.bincount(idx)
    prof = np.bincount(idx, ac[ok]) / np.maximum(cnt, 1)
    rad = np.arange(prof.size) / 2.0
    prof, rad = prof[cnt > 0], rad[cnt > 0]
    below = np.nonzero(prof <= 0.5)[0]
    if below.size == 0:
        return float("nan")
    j = int(below[0])
    if j == 0:
        return 0.0
    f0, f1 = prof[j - 1], prof[j]
    r_half = float(rad[j - 1] + (f0 - 0.5) / max(f0 - f1, 1e-12) * (rad[j] - rad[j - 1]))
    w = np.maximum(den, 0.0) / max(float(np.maximum(den, 0.0).sum()), 1e-300)

    def half(s_tot: float) -> float:
        gbar = float((w * np.exp(-(r * r) / (4.0 * s_tot * s_tot))).sum())
        g = np.exp(-(r_half**2) / (4.0 * s_tot * s_tot))
        return (g - gbar) / max(1.0 - gbar, 1e-12) - 0.5

    lo, hi = 0.05 * r_half + 1e-3, 20.0 * r_half + 1.0
    if half(lo) > 0 or half(hi) < 0:
        s_tot = r_half / np.sqrt(_FWHM_LN2)
    else:
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if half(mid) < 0 else (lo, mid)
        s_tot = 0.5 * (lo + hi)
    return float(np.sqrt(_FWHM_LN2 * max(s_tot * s_tot - s_l * s_l, 0.0)))


def calibrate_haze(
    frames: Any,
    optics: Optics,
    params: list[SIMParameters] | None = None,
    otf: Any = None,
    *,
    offset: float | None = None,
    pupil: Any = None,
) -> HazeCalibration:
    """Out-of-focus background level and spatial scale from the SIM band separation.

    See the module docstring (``H(g) = C_0(g) - O(g) e^{-i delta} C_+1(g + k) / (m O(g +
    k))``; Neil, Juskaitis & Wilson 1997). ``frames`` ``(9, y, x)`` or ``(n, 9, y, x)`` in
    ADU; ``params`` the pattern per acquisition and ``otf`` the
    :class:`~dps_stages.calibrate.OTFCalibration` (both estimated when None); ``offset`` the
    camera offset (ADU; the 0.5th percentile when None); ``pupil`` a determined
    :class:`~dps_stages.calibrate.pupil.PupilCalibration`, whose OTF and amplitudes then
    replace ``O_ideal a^q`` (through which an aberrated pupil reads as haze).
    """
    from .otf import calibrate_otf

    arr = as_stack(frames)
    cutoff = float(optics.cutoff_per_pixel)
    b = float(np.percentile(arr, 0.5)) if offset is None else float(offset)
    if params is None:
        params = [estimate_parameters(acq, optics) for acq in arr]
    if otf is None:
        otf = calibrate_otf(arr, optics, params, offset=b)
    a, a_sig = float(otf.attenuation), float(otf.attenuation_sigma)
    s_f = _lowpass_sigma(params, cutoff)
    nan = float("nan")
    if not (np.isfinite(a) and 0 < a and np.isfinite(a_sig) and a_sig <= a and s_f > 0):
        return HazeCalibration(nan, nan, nan, nan)
    levels, spectra, weights = [], [], []
    for i, acq in enumerate(arr):
        x = acq - b
        means = x.mean(axis=(1, 2))
        if np.all(means > 0):
            x = x * (means.mean() / means)[:, None, None]
        for ang in range(3):
            m = float(otf.modulation[3 * i + ang])
            m_sig = float(otf.modulation_sigma[3 * i + ang])
            if not (np.isfinite(m) and _MIN_MODULATION <= m <= 1.5 and m_sig < m / 3.0):
                continue
            fit = None
            if pupil is not None and pupil.determined:
                amp = pupil.modulation[3 * i + ang] * np.exp(1j * pupil.phase_offset[3 * i + ang])
                if np.isfinite(amp):
                    fit = (pupil.otf, complex(amp))
            lv, hz = _haze_angle(
                x[3 * ang : 3 * ang + 3],
                params[i].phases[ang],
                params[i].k[ang],
                m,
                a,
                cutoff,
                s_f,
                fit,
            )
            levels.append(lv)
            spectra.append(hz)
            weights.append(m * m)
    if not levels:
        return HazeCalibration(nan, nan, nan, nan)
    ny, nx = arr.shape[-2:]
    win = np.outer(edge_window(ny), edge_window(nx))
    fy, fx, _ = q_grid((ny, nx), cutoff)
    lp = np.exp(-(fy * fy + fx * fx) / (2.0 * s_f * s_f))
    norm = np.fft.ifft2(np.fft.fft2(win) * lp).real
    interior = win > 0.5
    s_l = 1.0 / (2.0 * np.pi * s_f)  # pixels
    px_um = optics.pixel_size / 1000.0

    def scale_of(bmap: np.ndarray) -> float:
        d = bmap - bmap[interior].mean()
        return _scale_px(d, interior.astype(float), s_l) * px_um

    wt = np.array(weights) / np.sum(weights)
    maps = [np.fft.ifft2(h).real / np.maximum(norm, 1e-12) for h in spectra]
    scales = np.array([scale_of(mp) for mp in maps])
    bmap = np.tensordot(wt, np.array(maps), axes=1)
    lv = np.array(levels)
    n = len(levels)
    mean = float((wt * lv).sum())
    # standard error of the weighted mean (effective number of estimates 1 / sum(wt^2))
    var = float((wt * (lv - mean) ** 2).sum() / max(1.0 - (wt * wt).sum(), 1e-12))
    return HazeCalibration(
        level=mean,
        level_sigma=float(np.sqrt(var * (wt * wt).sum())) if n > 1 else nan,
        scale=scale_of(bmap),
        scale_sigma=float(np.nanstd(scales, ddof=1) / np.sqrt(n)) if n > 1 else nan,
        resolution=float(np.sqrt(_FWHM_LN2) * s_l * px_um),
        map=bmap,
    )
