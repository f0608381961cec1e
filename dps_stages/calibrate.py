"""Calibration of a 2D-SIM microscope from its own raw frames: camera, pattern, OTF, haze.

Everything is estimated from the nine raw frames of one or more acquisitions, with no
calibration images and no reference reconstruction.

Camera (:func:`calibrate_camera`)
---------------------------------
Model (ADU): ``y = g (P(lambda) + e) + b`` with ``P`` Poisson photo-electrons, ``e ~ N(0,
s_e^2)`` read noise (electrons), ``g`` the gain (ADU per photo-electron) and ``b`` the offset,
so that per pixel ``mu = g lambda + b`` and

``var = g (mu - b) + sigma_r^2`` with ``sigma_r = g s_e`` (ADU), plus ``1/12`` for integer
ADU (quantisation); the third cumulant ``k3 = g^2 (mu - b)`` (Gaussian read noise has none).

The noise is measured where only noise lives: beyond the OTF cutoff ``f_c = 2 NA / lambda``
(Heintzmann, Relich, Nieuwenhuizen, Lidke & Rieger, arXiv:1611.05654, 2016). Each frame is
high-passed by the projection ``h`` onto ``|f| > 1.1 f_c``; over a tile, ``<hp^2> / sum h^2``
and ``<hp^3> / sum h^3`` estimate the mean pixel variance and third cumulant, and ``mu`` is
the tile mean. Tiles of all nine frames give the photon-transfer points ``(mu, var)``; a
weighted line ``var = g mu + v_0`` gives the gain ``g`` and the intercept ``v_0 = sigma_r^2
- g b``. From one acquisition ``b`` and ``sigma_r`` are *not* separately identifiable by the
variance alone (only ``v_0``); the extra information used is the third cumulant: with ``g``
known, ``b = <mu - k3 / g^2>`` (weighted to the dark tiles), then ``sigma_r^2 = v_0 + g b``.
Assumptions: the signal is band-limited by the OTF (true for any fluorescence image sampled
finer than ``1 / (2.2 f_c)``), a spatially uniform gain and offset (sCMOS pixel maps are not
resolved), no excess noise (EMCCD would give ``2 g``). Uncertainties: bootstrap over tiles.

Pattern
-------
:func:`dps_stages.sim.estimate_parameters` (wave vectors, phases, modulation).

OTF attenuation (:func:`calibrate_otf`)
---------------------------------------
Model of a real objective (fairSIM, Mueller et al., Nat. Commun. 7, 10980, 2016; HiFi-SIM,
Wen et al., Light Sci. Appl. 10, 70, 2021): ``O(q) = O_ideal(q) a^q``, ``q = |f| / f_c``,
the same as ``otf_decay = a`` of :func:`dps_stages.sim.reconstruct`. The radially averaged
power spectrum ``P(q) = A q^-beta O(q)^2 + N`` alone does not determine ``a``: the object's
spectral slope ``beta`` trades off against it (on the real TIRF GT frames ``beta`` free gives
``a = 0.11``, ``beta = 0`` gives ``a = 0.03``). The band overlap of SIM removes the object:
with ``C_0(g) = O(g) X(g)`` and the first side band shifted to its place,
``C_+1(g + k) = m e^{i delta} O(g + k) X(g)``, the ratio

``R(g) = Re[e^{-i delta} conj(C_0(g)) C_+1(g + k)] / (|C_0(g)|^2 - N_0) = m O(g + k) / O(g)
= m T_ideal(g) a^(q_1 - q_0)``

(``q_0 = |g| / f_c``, ``q_1 = |g + k| / f_c``) does not depend on the object. Sums over bins of
``(q_0, q_1)`` (width ``f_c / 20``, both in ``[0.1, 0.95]``) give ``R`` and its noise
``sigma_R^2 = sum(|C_0|^2 N_1 + |C_+1|^2 N_0) / 2 / D^2`` (``N_0``, ``N_1`` the bands' noise
powers beyond the cutoff, the noise cross term of the two bands subtracted); only bins whose
zero-band power stands 10 sigma above its noise are used (a looser threshold selects upward
noise fluctuations of ``C_0`` and biases ``a`` towards 1); ``ln m_a`` (one per angle) and ``ln
a`` are fitted by weighted least squares; the uncertainty is the fit's covariance scaled by the
reduced chi^2 when above 1. The modulation ``m_a`` comes out with the real OTF (the estimator
of sim.py assumes the ideal one and reads it low). With ``a`` fixed the radial spectrum then
gives ``beta`` and ``A`` (nuisance parameters, and the curve of the figure), the noise floor
``N`` beyond ``1.1 f_c``, and the support cutoff: the largest ``q`` where ``P`` stands ``3``
standard errors above ``N``.

Haze (:func:`calibrate_haze`)
-----------------------------
The out-of-focus (smooth) background of the widefield image ``W = mean(frames) - b``: the
10th percentile of each ``tile x tile`` block of ``W`` (Gaussian-smoothed by the PSF),
smoothed over neighbouring tiles, is the haze map ``B``; ``level = median(B) / mean(W)`` and
``scale`` the half-width (um) at which the autocorrelation of ``B - mean(B)`` falls to 1/2.
The three angles' widefield images (mean of their three phases) are independent
acquisitions of the same field: the estimate is their mean and the uncertainty their
standard error.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy import optimize

from .optics import Optics
from .sim import SIMParameters, estimate_parameters, otf_values, periodic_smooth_decomposition

__all__ = [
    "Calibration",
    "CameraCalibration",
    "HazeCalibration",
    "OTFCalibration",
    "calibrate",
    "calibrate_camera",
    "calibrate_haze",
    "calibrate_otf",
    "calibrated_sim_settings",
    "plot_calibration",
    "write_calibration",
]

_NOISE_Q = 1.1  # noise measured beyond this fraction of the OTF cutoff
_MIN_SNR = 10.0  # overlap bins used: zero-band power this many sigma above its noise


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class CameraCalibration:
    """Camera model ``var = g (mu - b) + sigma_r^2`` (ADU); ``*_sigma``: 1-sigma uncertainty.

    ``read_noise`` is ``s_e = sigma_r / g`` in photo-electrons; ``intercept`` is ``v_0 =
    sigma_r^2 - g b`` (the part of the model one acquisition determines by the variance alone).
    ``points`` (figure only, not written): ``(mu, var)`` of the tiles.
    """

    gain: float
    gain_sigma: float
    offset: float
    offset_sigma: float
    read_noise: float
    read_noise_sigma: float
    intercept: float
    n_tiles: int
    points: np.ndarray | None = field(default=None, repr=False)


@dataclass
class OTFCalibration:
    """OTF ``O_ideal(q) a^q`` (``attenuation = a``) and the spectrum's nuisance parameters.

    ``modulation``: per angle, fitted with the attenuated OTF. ``object_slope``: ``beta`` of
    ``A q^-beta``. ``noise_floor``: power per Fourier coefficient of the widefield (mean)
    image beyond ``1.1 f_c`` (ADU^2, ``|FFT|^2 / N``). ``support_cutoff``: fraction of
    ``f_c``. ``ratio`` and ``radial`` (figure only): the binned band ratios ``(dq, R /
    T_ideal / m_a, sigma)`` and ``(q, P)``.
    """

    attenuation: float
    attenuation_sigma: float
    modulation: list[float]
    modulation_sigma: list[float]
    object_slope: float
    object_slope_sigma: float
    amplitude: float
    noise_floor: float
    support_cutoff: float
    chi2_reduced: float
    ratio: np.ndarray | None = field(default=None, repr=False)
    radial: np.ndarray | None = field(default=None, repr=False)


@dataclass
class HazeCalibration:
    """Out-of-focus background: ``level`` (fraction of the mean widefield signal), ``scale``
    (um, half-width at half-maximum of its autocorrelation); ``map`` for the figure only."""

    level: float
    level_sigma: float
    scale: float
    scale_sigma: float
    map: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Calibration:
    """Everything :func:`calibrate` estimates from a dataset's raw frames."""

    optics: Optics
    camera: CameraCalibration
    pattern: list[SIMParameters]
    otf: OTFCalibration
    haze: HazeCalibration
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (figure-only arrays left out)."""

        def strip(obj: Any, drop: tuple[str, ...]) -> dict[str, Any]:
            d = asdict(obj)
            return {k: v for k, v in d.items() if k not in drop}

        return {
            "optics": self.optics.to_dict(),
            "camera": strip(self.camera, ("points",)),
            "pattern": [p.to_dict() for p in self.pattern],
            "otf": strip(self.otf, ("ratio", "radial")),
            "haze": strip(self.haze, ("map",)),
            "sim_settings": calibrated_sim_settings(self, self.optics),
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _as_stack(frames: Any) -> np.ndarray:
    arr = np.asarray(frames, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 9:
        raise ValueError(f"raw 2D-SIM frames must be (9, y, x) or (n, 9, y, x); got {arr.shape}")
    if arr.shape[2] < 64 or arr.shape[3] < 64:
        raise ValueError(f"calibration needs frames of at least 64 x 64 pixels; got {arr.shape}")
    return arr


def _q_grid(shape: tuple[int, int], cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return fy, fx, np.hypot(fy, fx) / cutoff


def _edge_window(n: int, frac: float = 0.125) -> np.ndarray:
    w = np.ones(n)
    m = max(int(round(frac * n)), 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    w[:m], w[n - m :] = ramp, ramp[::-1]
    return w


def _tile_means(img: np.ndarray, tile: int) -> np.ndarray:
    ny, nx = (img.shape[-2] // tile) * tile, (img.shape[-1] // tile) * tile
    x = img[..., :ny, :nx]
    x = x.reshape(*x.shape[:-2], ny // tile, tile, nx // tile, tile)
    return x.mean(axis=(-3, -1))


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares line ``y = s x + c``; returns ``(s, c)``."""
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    s = (w * (x - mx) * (y - my)).sum() / max((w * (x - mx) ** 2).sum(), 1e-300)
    return float(s), float(my - s * mx)


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------
def calibrate_camera(
    frames: Any,
    optics: Optics,
    *,
    tile: int = 32,
    n_boot: int = 100,
    seed: int = 0,
) -> CameraCalibration:
    """Gain, offset and read noise from raw frames by photon transfer beyond the OTF cutoff.

    See the module docstring (model ``var = g (mu - b) + sigma_r^2``, Heintzmann et al.,
    arXiv:1611.05654; offset from the third cumulant). ``frames``: ``(9, y, x)`` or ``(n, 9,
    y, x)`` in ADU. Raises ValueError when the region beyond ``1.1 f_c`` is too small (pixels
    coarser than about ``1 / (2.2 f_c)``).
    """
    arr = _as_stack(frames).reshape(-1, *np.shape(frames)[-2:])
    ny, nx = arr.shape[-2:]
    _, _, q = _q_grid((ny, nx), float(optics.cutoff_per_pixel))
    mask = q > _NOISE_Q
    frac = float(mask.mean())
    if frac < 0.05:
        raise ValueError(
            f"too little of the spectrum lies beyond the OTF cutoff (cutoff "
            f"{optics.cutoff_per_pixel:.3f} cycles/pixel) to measure the camera noise"
        )
    h = np.fft.ifft2(mask).real
    h2, h3 = float((h * h).sum()), float((h**3).sum())
    hp = np.fft.ifft2(np.fft.fft2(arr) * mask).real
    mu = _tile_means(arr, tile).ravel()
    var = (_tile_means(hp * hp, tile) / h2).ravel()
    k3 = (_tile_means(hp**3, tile) / h3).ravel()
    integer = bool(np.all(arr == np.round(arr)))
    # drop saturated or empty tiles
    top = float(arr.max())
    sat = (_tile_means((arr >= top).astype(float), tile).ravel() > 0) & (top > 0)
    keep = np.isfinite(var) & (var > 0) & ~(sat & (top in (255.0, 4095.0, 65535.0)))
    mu, var, k3 = mu[keep], var[keep], k3[keep]
    n_pix = tile * tile * frac

    def fit(idx: np.ndarray) -> tuple[float, float, float]:
        m, v, c = mu[idx], var[idx], k3[idx]
        g, v0 = _wls(m, v, np.ones_like(m))
        for _ in range(3):  # weights 1 / Var[v] = n / (2 v_model^2); reject 5-sigma outliers
            vm = np.maximum(g * m + v0, 1e-6 * max(float(v.mean()), 1e-12))
            r = (v - vm) * np.sqrt(n_pix / 2.0) / vm
            w = (np.abs(r) < 5.0) / vm**2
            g, v0 = _wls(m, v, w)
        vm = np.maximum(g * m + v0, 1e-12)
        # offset: k3 = g^2 (mu - b); Var[k3] ~ 6 v^3 / n, so weights 1 / v^3
        wb = (np.abs((v - vm) / vm) * np.sqrt(n_pix / 2.0) < 5.0) / vm**3
        b = float((wb * (m - c / max(g * g, 1e-12))).sum() / max(wb.sum(), 1e-300))
        return g, v0, b

    g, v0, b = fit(np.arange(mu.size))
    rng = np.random.default_rng(seed)
    boot = np.array([fit(rng.integers(0, mu.size, mu.size)) for _ in range(n_boot)])
    quant = 1.0 / 12.0 if integer else 0.0

    def read_e(gg: float, vv: float, bb: float) -> float:
        return float(np.sqrt(max(vv + gg * bb - quant, 0.0)) / max(gg, 1e-12))

    rn = read_e(g, v0, b)
    rn_boot = np.array([read_e(*row) for row in boot])
    return CameraCalibration(
        gain=g,
        gain_sigma=float(boot[:, 0].std()),
        offset=b,
        offset_sigma=float(boot[:, 2].std()),
        read_noise=rn,
        read_noise_sigma=float(rn_boot.std()),
        intercept=v0,
        n_tiles=int(mu.size),
        points=np.stack([mu, var]),
    )


# --------------------------------------------------------------------------------------------
# OTF
# --------------------------------------------------------------------------------------------
def _band_ratios(
    x: np.ndarray, params: SIMParameters, cutoff: float, nbins: int, qmin: float, qmax: float
) -> list[np.ndarray]:
    """Per angle: rows ``(q0, q1, R, sigma_R)`` of the binned band ratio (module docstring)."""
    ny, nx = x.shape[-2:]
    xp, _ = periodic_smooth_decomposition(x.astype(np.float32))
    xp = xp.astype(np.float64)
    win = np.outer(_edge_window(ny), _edge_window(nx))
    fy, fx, q0 = _q_grid((ny, nx), cutoff)
    yy, xx = np.arange(ny)[:, None], np.arange(nx)[None, :]
    box = (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)
    out = []
    for a in range(3):
        e = np.exp(1j * params.phases[a])
        inv = np.linalg.inv(np.stack([np.ones(3), e / 2.0, np.conj(e) / 2.0], axis=1))
        xa = xp[3 * a : 3 * a + 3]
        c0 = np.fft.fft2(np.tensordot(inv[0].real, xa, axes=1) * win)
        ky, kx = params.k[a]
        ramp = np.exp(-2j * np.pi * (ky * yy + kx * xx))  # C_+1(g + k) at index g
        c1 = np.fft.fft2(np.tensordot(inv[1], xa, axes=1) * ramp * win)
        q1 = np.hypot(fy + ky, fx + kx) / cutoff
        n0 = float(np.mean(np.abs(c0[(q0 > _NOISE_Q) & box]) ** 2))
        n1 = float(np.mean(np.abs(c1[(q1 > _NOISE_Q) & box]) ** 2))
        # shot noise follows the patterned signal, so the noises of C_0(g) and C_+1(g + k)
        # are correlated (through the variance map's component at k): a white cross term
        # zeta, measured where both bands hold noise only, is subtracted from the overlap
        both = (q0 > _NOISE_Q) & (q1 > _NOISE_Q) & box
        zeta = complex(np.mean(np.conj(c0[both]) * c1[both]))
        # the camera pixel's transfer sinc(fy) sinc(fx) is divided out of both bands (it is
        # part of the model OTF of sim.py, not of the attenuation a); noise powers follow
        s0 = np.sinc(fy) * np.sinc(fx)
        s1 = np.sinc(fy + ky) * np.sinc(fx + kx)
        c0, c1 = c0 / s0, c1 / s1
        sel = (q0 > qmin) & (q1 > qmin) & (q0 < qmax) & (q1 < qmax)
        n0s = n0 / s0[sel] ** 2
        n1s = n1 / s1[sel] ** 2
        b0 = np.minimum((q0[sel] * nbins).astype(int), nbins - 1)
        b1 = np.minimum((q1[sel] * nbins).astype(int), nbins - 1)
        idx = b0 * nbins + b1
        z = np.conj(c0[sel]) * c1[sel] - zeta / (s0[sel] * s1[sel])
        p0, p1 = np.abs(c0[sel]) ** 2, np.abs(c1[sel]) ** 2
        nb2 = nbins * nbins
        cnt = np.bincount(idx, minlength=nb2).astype(float)
        zs = np.bincount(idx, z.real, nb2) + 1j * np.bincount(idx, z.imag, nb2)
        bias = np.bincount(idx, n0s, nb2)
        den = np.bincount(idx, p0, nb2) - bias
        vz = (np.bincount(idx, p0 * n1s, nb2) + np.bincount(idx, p1 * n0s, nb2)) / 2.0
        mq0 = np.bincount(idx, q0[sel], nb2) / np.maximum(cnt, 1)
        mq1 = np.bincount(idx, q1[sel], nb2) / np.maximum(cnt, 1)
        ok = (cnt >= 8) & (den > _MIN_SNR * bias / np.sqrt(np.maximum(cnt, 1)))
        if not ok.any():
            out.append(np.zeros((0, 4)))
            continue
        snr = np.abs(zs[ok]) / np.sqrt(vz[ok])
        delta = np.angle(np.sum(zs[ok] * np.minimum(snr, 1e3)))
        r = (zs[ok] * np.exp(-1j * delta)).real / den[ok]
        out.append(np.stack([mq0[ok], mq1[ok], r, np.sqrt(vz[ok]) / den[ok]], axis=1))
    return out


def calibrate_otf(
    frames: Any,
    optics: Optics,
    params: list[SIMParameters] | None = None,
    *,
    nbins: int = 20,
    qrange: tuple[float, float] = (0.1, 0.95),
    offset: float | None = None,
) -> OTFCalibration:
    """Fit the OTF attenuation ``a`` of ``O_ideal(q) a^q`` to the SIM band overlap.

    See the module docstring. ``frames`` ``(9, y, x)`` or ``(n, 9, y, x)``; ``params`` the
    pattern of each acquisition (estimated when None); ``offset`` the camera offset (ADU;
    the 0.5th percentile when None). Returns :class:`OTFCalibration`; ``attenuation`` is
    ``nan`` when no bin of the overlap stands out of the noise.
    """
    arr = _as_stack(frames)
    cutoff = float(optics.cutoff_per_pixel)
    if params is None:
        params = [estimate_parameters(a, optics) for a in arr]
    b = float(np.percentile(arr, 0.5)) if offset is None else float(offset)
    rows = []  # (acq*3 + angle, q0, q1, R, sigma)
    for i, acq in enumerate(arr):
        x = acq - b
        means = x.mean(axis=(1, 2))
        if np.all(means > 0):
            x = x * (means.mean() / means)[:, None, None]
        for a, r in enumerate(_band_ratios(x, params[i], cutoff, nbins, *qrange)):
            if len(r):
                rows.append(np.column_stack([np.full(len(r), 3 * i + a), r]))
    data = np.concatenate(rows) if rows else np.zeros((0, 5))
    groups = np.unique(data[:, 0]).astype(int) if len(data) else np.zeros(0, int)
    n_m = 3 * arr.shape[0]
    nan_m = [float("nan")] * n_m
    if len(data) < len(groups) + 3:
        a_fit, a_sig, m, m_sig, chi2 = float("nan"), float("nan"), nan_m, nan_m, float("nan")
        ratio = np.zeros((0, 3))
    else:
        g = data[:, 0].astype(int)
        q0, q1, r, s = data[:, 1], data[:, 2], data[:, 3], data[:, 4]
        t = otf_values(q1 * cutoff, 0 * q1, cutoff, pixel=False).astype(float) / np.maximum(
            otf_values(q0 * cutoff, 0 * q0, cutoff, pixel=False).astype(float), 1e-12
        )
        dq = q1 - q0
        col = {gg: j for j, gg in enumerate(groups)}
        gi = np.array([col[v] for v in g])

        def resid(p: np.ndarray) -> np.ndarray:
            return (np.exp(p[gi]) * t * np.exp(p[-1] * dq) - r) / s

        p0 = np.concatenate([np.full(len(groups), np.log(0.3)), [np.log(0.3)]])
        sol = optimize.least_squares(resid, p0, method="lm")
        dof = max(len(r) - sol.x.size, 1)
        chi2 = float(np.sum(sol.fun**2) / dof)
        try:
            cov = np.linalg.inv(sol.jac.T @ sol.jac) * max(chi2, 1.0)
        except np.linalg.LinAlgError:
            cov = np.full((sol.x.size, sol.x.size), np.nan)
        a_fit = float(np.exp(sol.x[-1]))
        a_sig = float(a_fit * np.sqrt(cov[-1, -1]))
        m, m_sig = list(nan_m), list(nan_m)
        for gg, j in col.items():
            m[gg] = float(np.exp(sol.x[j]))
            m_sig[gg] = float(m[gg] * np.sqrt(cov[j, j]))
        mg = np.exp(sol.x[gi])
        ratio = np.stack([dq, r / (t * mg), s / (t * mg)], axis=1)
    # radial spectrum of the widefield image: noise floor, object slope, support
    wf = np.mean([periodic_smooth_decomposition(a.mean(axis=0)[None] - b)[0][0] for a in arr], 0)
    ny, nx = wf.shape
    pw = np.abs(np.fft.fft2(wf)) ** 2 / (ny * nx)
    fy, fx, q = _q_grid((ny, nx), cutoff)
    noise = float(np.mean(pw[(q > _NOISE_Q) & (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)]))
    nb = 50
    edges = np.linspace(0.0, min(1.5, 0.5 / cutoff), nb + 1)
    idx = np.digitize(q.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < nb)
    cnt = np.bincount(idx[ok], minlength=nb).astype(float)
    prad = np.bincount(idx[ok], pw.ravel()[ok], nb) / np.maximum(cnt, 1)
    qc = 0.5 * (edges[1:] + edges[:-1])
    above = (prad - noise) > 3.0 * noise / np.sqrt(np.maximum(cnt, 1))
    inside = (qc < 1.0) & (cnt > 0)
    support = float(qc[above & inside].max()) if np.any(above & inside) else float("nan")
    beta, beta_sig, amp = float("nan"), float("nan"), float("nan")
    if np.isfinite(a_fit):
        o = otf_values(qc * cutoff, 0 * qc, cutoff, decay=a_fit, pixel=True).astype(float)
        use = inside & above & (qc > qrange[0]) & (qc < qrange[1]) & (o > 0)
        if use.sum() >= 3:
            yv = np.log(prad[use] - noise) - 2.0 * np.log(o[use])
            xmat = np.stack([np.ones(use.sum()), -np.log(qc[use])], axis=1)
            coef, res, *_ = np.linalg.lstsq(xmat, yv, rcond=None)
            dof = max(use.sum() - 2, 1)
            s2 = float(np.sum((yv - xmat @ coef) ** 2) / dof)
            cov = np.linalg.inv(xmat.T @ xmat) * s2
            amp, beta, beta_sig = float(np.exp(coef[0])), float(coef[1]), float(np.sqrt(cov[1, 1]))
    return OTFCalibration(
        attenuation=a_fit,
        attenuation_sigma=a_sig,
        modulation=m,
        modulation_sigma=m_sig,
        object_slope=beta,
        object_slope_sigma=beta_sig,
        amplitude=amp,
        noise_floor=noise,
        support_cutoff=support,
        chi2_reduced=chi2,
        ratio=ratio,
        radial=np.stack([qc, prad]),
    )


# --------------------------------------------------------------------------------------------
# Haze
# --------------------------------------------------------------------------------------------
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
    arr = _as_stack(frames)
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


# --------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------
def calibrate(frames: Any, optics: Optics, *, seed: int = 0) -> Calibration:
    """Camera, pattern, OTF and haze of a dataset from its raw frames (module docstring).

    ``frames``: ``(9, y, x)`` or ``(n, 9, y, x)`` raw 2D-SIM frames in ADU, angle-major.
    """
    t0 = time.perf_counter()
    arr = _as_stack(frames)
    camera = calibrate_camera(arr, optics, seed=seed)
    params = [estimate_parameters(a, optics) for a in arr]
    b = camera.offset if np.isfinite(camera.offset) else None
    otf = calibrate_otf(arr, optics, params, offset=b)
    haze = calibrate_haze(arr, optics, offset=b)
    return Calibration(
        optics=optics,
        camera=camera,
        pattern=params,
        otf=otf,
        haze=haze,
        seconds=time.perf_counter() - t0,
    )


def calibrated_sim_settings(
    calib: Calibration, optics: Optics | None = None, *, max_rel_sigma: float = 1.0
) -> dict[str, float]:
    """Wiener settings of :func:`dps_stages.sim.reconstruct` from a calibration.

    ``otf_decay``: the fitted attenuation ``a``, converted to ``optics`` when its cutoff
    differs from the calibration's (``a^(f / f_c) = a'^(f / f_c')`` gives ``a' = a^(f_c' /
    f_c)``). When ``a`` is not determined (nan, or its relative uncertainty ``sigma_a / a``
    above ``max_rel_sigma``: too little signal in the band overlap) the ideal OTF (1) is kept.
    Everything else stays at the reconstruction's defaults.
    """
    a, s = calib.otf.attenuation, calib.otf.attenuation_sigma
    if not (np.isfinite(a) and a > 0 and np.isfinite(s) and s / a <= max_rel_sigma):
        return {"otf_decay": 1.0}
    a = min(float(a), 1.0)
    if optics is not None:
        a = a ** (optics.cutoff / calib.optics.cutoff)
    return {"otf_decay": float(a)}


def write_calibration(path: str | Path, calib: Calibration) -> Path:
    """Write :meth:`Calibration.to_dict` as JSON (``NaN`` written as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        if isinstance(v, np.integer):
            return int(v)
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(calib.to_dict()), indent=2) + "\n")
    tmp.replace(path)
    return path


def plot_calibration(calib: Calibration, path: str | Path) -> Path:
    """Figure: photon transfer (tiles and fit), band ratio against ``a^dq``, radial spectrum
    against the fitted model, haze map; estimates in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cam, otf, hz = calib.camera, calib.otf, calib.haze
    fig, ax = plt.subplots(1, 4, figsize=(18, 4.2))
    if cam.points is not None and cam.points.size:
        mu, var = cam.points
        ax[0].plot(mu, var, ".", ms=2, alpha=0.4, label="tiles")
        xs = np.linspace(min(mu.min(), cam.offset), mu.max(), 50)
        ax[0].plot(xs, cam.gain * xs + cam.intercept, "r-", label="fit")
        ax[0].axvline(cam.offset, color="k", ls=":", label="offset")
        ax[0].legend(fontsize=8)
    ax[0].set(xlabel="tile mean (ADU)", ylabel="noise variance (ADU$^2$)")
    ax[0].set_title(
        f"g={cam.gain:.3g}±{cam.gain_sigma:.2g} ADU/e-, b={cam.offset:.4g}±{cam.offset_sigma:.2g}"
        f"\nread noise {cam.read_noise:.3g}±{cam.read_noise_sigma:.2g} e-", fontsize=9
    )  # fmt: skip
    if otf.ratio is not None and len(otf.ratio):
        dq, rr, ss = otf.ratio.T
        good = ss < 0.5 * np.maximum(np.abs(rr), 1e-3) + 0.5
        ax[1].errorbar(dq[good], rr[good], ss[good], fmt=".", ms=3, alpha=0.5, elinewidth=0.5)
        xs = np.linspace(dq.min(), dq.max(), 50)
        if np.isfinite(otf.attenuation):
            ax[1].plot(xs, otf.attenuation**xs, "r-", label=f"a^dq, a={otf.attenuation:.3g}")
        ax[1].plot(xs, np.ones_like(xs), "k:", label="ideal (a=1)")
        ax[1].set_yscale("log")
        ax[1].legend(fontsize=8)
    ax[1].set(xlabel="q1 - q0 (fraction of f_c)", ylabel="R / (m T_ideal)")
    ax[1].set_title(
        f"band overlap: a={otf.attenuation:.3g}±{otf.attenuation_sigma:.2g}, "
        f"m={', '.join(f'{v:.2f}' for v in otf.modulation[:3])}", fontsize=9
    )  # fmt: skip
    if otf.radial is not None:
        qc, prad = otf.radial
        ax[2].semilogy(qc, prad, "k.", ms=3, label="data (widefield)")
        ax[2].axhline(otf.noise_floor, color="gray", ls=":", label="noise floor")
        if np.isfinite(otf.object_slope):
            qq = qc[(qc > 0.02) & (qc < 1.0)]
            cut = calib.optics.cutoff_per_pixel
            for a, lab in ((otf.attenuation, "fit"), (1.0, "ideal OTF, same object")):
                o = otf_values(qq * cut, 0 * qq, cut, decay=a, pixel=True).astype(float)
                model = otf.amplitude * qq ** (-otf.object_slope) * o**2 + otf.noise_floor
                ax[2].semilogy(qq, model, "r-" if lab == "fit" else "b--", label=lab)
        ax[2].axvline(1.0, color="k", lw=0.5)
        ax[2].legend(fontsize=8)
    ax[2].set(xlabel="|f| / f_c", ylabel="power")
    ax[2].set_title(
        f"radial spectrum: beta={otf.object_slope:.2f}, support {otf.support_cutoff:.2f} f_c",
        fontsize=9,
    )
    if hz.map is not None:
        im = ax[3].imshow(hz.map, cmap="magma")
        fig.colorbar(im, ax=ax[3], fraction=0.046)
    ax[3].set_title(
        f"haze {100 * hz.level:.1f}±{100 * hz.level_sigma:.1f} % of mean, "
        f"scale {hz.scale:.2g}±{hz.scale_sigma:.1g} um", fontsize=9
    )  # fmt: skip
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
