"""OTF attenuation of a real objective from the overlap of the SIM bands.

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

"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from ..optics import Optics
from ..sim import SIMParameters, estimate_parameters, otf_values, periodic_smooth_decomposition
from ._util import MIN_SNR, NOISE_Q, as_stack, overlap_bands, q_grid

__all__ = ["OTFCalibration", "calibrate_otf"]


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


def _band_ratios(
    x: np.ndarray, params: SIMParameters, cutoff: float, nbins: int, qmin: float, qmax: float
) -> list[np.ndarray]:
    """Per angle: rows ``(q0, q1, R, sigma_R)`` of the binned band ratio (module docstring)."""
    out = []
    # each band's noise cross term is subtracted from the overlap, and the camera pixel's
    # sinc divided out of both (it is part of the model OTF of sim.py, not of a)
    for ov in overlap_bands(x, params, cutoff):
        q0, q1, c0, c1 = ov.q0, ov.q1, ov.c0, ov.c1
        sel = (q0 > qmin) & (q1 > qmin) & (q0 < qmax) & (q1 < qmax)
        n0s, n1s = ov.n0[sel], ov.n1[sel]
        b0 = np.minimum((q0[sel] * nbins).astype(int), nbins - 1)
        b1 = np.minimum((q1[sel] * nbins).astype(int), nbins - 1)
        idx = b0 * nbins + b1
        z = np.conj(c0[sel]) * c1[sel] - ov.cross[sel]
        p0, p1 = np.abs(c0[sel]) ** 2, np.abs(c1[sel]) ** 2
        nb2 = nbins * nbins
        cnt = np.bincount(idx, minlength=nb2).astype(float)
        zs = np.bincount(idx, z.real, nb2) + 1j * np.bincount(idx, z.imag, nb2)
        bias = np.bincount(idx, n0s, nb2)
        den = np.bincount(idx, p0, nb2) - bias
        vz = (np.bincount(idx, p0 * n1s, nb2) + np.bincount(idx, p1 * n0s, nb2)) / 2.0
        mq0 = np.bincount(idx, q0[sel], nb2) / np.maximum(cnt, 1)
        mq1 = np.bincount(idx, q1[sel], nb2) / np.maximum(cnt, 1)
        ok = (cnt >= 8) & (den > MIN_SNR * bias / np.sqrt(np.maximum(cnt, 1)))
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
    arr = as_stack(frames)
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
    fy, fx, q = q_grid((ny, nx), cutoff)
    noise = float(np.mean(pw[(q > NOISE_Q) & (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)]))
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
