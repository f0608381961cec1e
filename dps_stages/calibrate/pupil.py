"""Pupil aberrations of the objective from the overlap of the SIM bands.

The attenuation model ``O_ideal(q) a^q`` of :mod:`dps_stages.calibrate.otf` is radial and
real. A real objective also has a wavefront error ``W`` over its pupil, which makes the OTF
anisotropic (astigmatism) and complex (coma: an odd ``W`` gives the OTF a phase). Model
(Goodman, *Introduction to Fourier Optics*, 6.4; Zernike terms in Noll's ordering and
normalisation, Noll, J. Opt. Soc. Am. 66, 207, 1976):

``O(f) = a^min(q, 1) F[h](f) / F[h](0)``,  ``h = |F^-1[P(f) exp(-2 pi i W(f))]|^2``,
``W = sum_j c_j Z_j(|f| / f_p, theta)``, ``j`` in :data:`NOLL` (astigmatism 5, 6; coma 7,
8; primary spherical 11), ``c_j`` in waves rms, ``P`` the pupil disc of radius ``f_p = NA
pixel / lambda`` (cycles per camera pixel), ``q = |f| / (2 f_p)``.

The band overlap removes the object (as in :mod:`dps_stages.calibrate.otf`): with
``C_0(g) = O(g) X(g)`` and the first side band shifted to its place, ``C_+1(g + k) = A
O(g + k) X(g)``, ``A = m e^{i delta}``, so that for every ``g`` of the overlap

``C_+1(g + k) = A T(g) C_0(g)``,  ``T(g) = O(g + k) / O(g)``,

now point by point in 2-D (the direction of ``g`` against each angle's ``k`` is what tells
the terms apart). ``c`` and ``a`` are fitted by weighted least squares over the points of
all angles and fields with ``0.1 < q_0 < 0.8``, ``0.1 < q_1 < 0.95`` (no haze, no division
by a vanishing OTF) whose zero-band power stands ``MIN_SNR`` times above its noise; each
angle's ``A`` is solved in closed form at every step (variable projection, Golub & Pereyra,
SIAM J. Numer. Anal. 10, 413, 1973) with the zero band's noise power taken off its
denominator (``A = sum w conj(T C_0) C_+1 / sum w (|T C_0|^2 - |T|^2 N_0)``: without it the
noise of ``C_0`` biases ``|A|`` low, errors in variables). The weights ``w = 1 / (N_1 + |T|^2
N_0)`` are fixed at the ideal pupil (refitted weights would let the fit inflate ``T`` to
shrink them). ``a`` may reach 1.5 here: the simulator's camera binning (4 x 4 fine pixels)
transfers about 1 % more at high frequency than the pixel's ``sinc`` divided out, and with
``a <= 1`` the ideal default simulation read that as 0.016-0.048 waves of spherical
aberration at 12-16 sigma (with ``a <= 1.5``: ``a`` 1.05-1.27, delta chi^2 11-36).
Uncertainties: the Jacobian's covariance scaled by the reduced chi^2 (when above 1). Near
``c = 0`` an even term changes the OTF only to second order, so the linearised error
understates its noise there: an ideal pupil reads up to 0.026 waves of astigmatism
(at about 4 sigma), and on small, strongly attenuated fields (128 x 128, a = 0.2) up to
0.06 waves of spherical aberration. Hence two tests before a term is used (by the Wiener
stage and the simulator, :func:`dps_stages.calibrate.significant_aberration`): the whole
aberration must improve the fit over the ideal pupil (``a`` alone refitted) by
``delta_chi2 >= DELTA_CHI2_MIN``, and the term must stand ``3`` sigma and
:data:`ABERRATION_FLOOR` waves from 0.

What it gives the rest: the haze (:mod:`dps_stages.calibrate.haze`) extrapolates the
in-focus light to ``g = 0`` through this OTF (through the ideal one an aberrated pupil reads
as haze), and ``phase_offset = arg A`` per angle: the pattern estimator takes the OTF as real
and its phases absorb the OTF's phase; ``pattern phase + phase_offset`` is the pattern's own
phase, while a reconstruction with a real OTF wants the estimator's. The even terms'
common sign is not determined: the PSF of ``-W`` is that of ``W`` rotated by 180 degrees, so
flipping every even term (astigmatism, spherical) and keeping the odd ones (coma) gives the
same PSF. The fit runs on the central ``256 x 256`` of larger frames (:data:`MAX_SIDE`),
enough for the six parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from ..optics import Optics, PupilOTF
from ..sim import SIMParameters
from ..sim.reconstruction import shift_origin
from ._util import MIN_SNR, as_stack, overlap_bands

__all__ = [
    "ABERRATION_FLOOR",
    "DELTA_CHI2_MIN",
    "NOLL",
    "PupilCalibration",
    "calibrate_pupil",
    "pupil_otf",
]

#: The Zernike terms fitted (Noll indices): astigmatism, coma, primary spherical.
NOLL = (5, 6, 7, 8, 11)
#: Frames larger than this (pixels per side) are fitted on their central region.
MAX_SIDE = 256
#: Waves rms: the smallest term taken as real (an ideal pupil read up to 0.026 waves of
#: astigmatism on 192 x 192 fields at 300 photons, seeds 0-4 of tests/test_calibrate.py).
ABERRATION_FLOOR = 0.03
#: The aberration is taken as real only when it improves the fit over the ideal pupil by at
#: least this chi^2 (five more parameters: chi^2_5 exceeds 40 with probability 2e-7). Ideal
#: pupils measured 1-25 (128 x 128 with a = 0.2 the highest), aberrated ones 68-2500.
DELTA_CHI2_MIN = 40.0


@dataclass
class PupilCalibration:
    """Fitted pupil: ``aberration`` ``{noll: waves rms}`` with ``aberration_sigma``; the
    ``attenuation`` fitted with it; per acquisition and angle the ``modulation`` ``|A|`` and
    ``phase_offset`` ``arg A`` (rad; add it to the pattern's phases for the pattern's own
    phase); ``chi2_reduced``; ``points`` of the overlap used; ``delta_chi2`` the fit's
    improvement over the ideal pupil. All ``nan`` (and ``points`` 0) when the fit could not
    be made (too few points, or frames sampled too coarsely)."""

    aberration: dict[int, float]
    aberration_sigma: dict[int, float]
    attenuation: float
    attenuation_sigma: float
    modulation: list[float]
    phase_offset: list[float]
    chi2_reduced: float
    points: int
    rms: float = float("nan")
    delta_chi2: float = float("nan")
    otf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def determined(self) -> bool:
        return bool(self.points > 0 and np.isfinite(self.attenuation))


def _pupil_radius(optics: Optics) -> float:
    """``f_p = NA pixel / lambda``, cycles per camera pixel."""
    return float(optics.na * optics.pixel_size / optics.wavelength)


def pupil_otf(
    shape: tuple[int, int], optics: Optics, coefficients: Sequence[float], attenuation: float
) -> Callable[[np.ndarray], np.ndarray]:
    """``O(g + k)`` on the camera grid of ``shape`` for any shift ``k`` (cycles per pixel):
    :class:`dps_stages.optics.PupilOTF` with ``coefficients`` for :data:`NOLL`; ``O(0) =
    1``."""
    model = PupilOTF(shape, _pupil_radius(optics), NOLL)
    h = model.psf(coefficients)
    return lambda k: model.at(h, float(attenuation), np.asarray(k, dtype=float))


@dataclass
class _Band:
    """One angle of one acquisition: its shift, the bands on the grid and the points used."""

    acq: int
    angle: int
    k: np.ndarray
    c0: np.ndarray  # C_0(g) at the points
    c1: np.ndarray  # C_+1(g + k) at the points
    n0: np.ndarray  # noise power of C_0 at the points
    n1: np.ndarray
    sel: np.ndarray  # flat indices of the points


def _bands(x: np.ndarray, params: SIMParameters, acq: int, cutoff: float) -> list[_Band]:
    """The three angles' overlap points of one acquisition's (offset-free) frames."""
    out = []
    for a, ov in enumerate(overlap_bands(x, params, cutoff)):
        use = (ov.q0 > 0.1) & (ov.q0 < 0.8) & (ov.q1 > 0.1) & (ov.q1 < 0.95)
        use &= np.abs(ov.c0) ** 2 > MIN_SNR * ov.n0
        sel = np.flatnonzero(use)
        out.append(_Band(acq, a, ov.k, ov.c0.ravel()[sel], ov.c1.ravel()[sel],
                         ov.n0.ravel()[sel], ov.n1.ravel()[sel], sel))  # fmt: skip
    return out


def _centre(arr: np.ndarray, side: int) -> np.ndarray:
    ny, nx = arr.shape[-2:]
    cy, cx = min(side, ny), min(side, nx)
    y0, x0 = (ny - cy) // 2, (nx - cx) // 2
    return arr[..., y0 : y0 + cy, x0 : x0 + cx]


def calibrate_pupil(
    frames: Any,
    optics: Optics,
    params: list[SIMParameters],
    *,
    offset: float | None = None,
    attenuation: float = 0.5,
) -> PupilCalibration:
    """Fit the pupil's astigmatism, coma and spherical aberration and the OTF attenuation to
    the SIM band overlap (module docstring).

    ``frames`` ``(9, y, x)`` or ``(n, 9, y, x)`` in ADU; ``params`` the pattern of each
    acquisition; ``offset`` the camera offset (ADU; the 0.5th percentile when None);
    ``attenuation`` the starting value of ``a`` (the radial fit's; 0.5 where that is not
    in ``(0, 1]``).
    """
    if not (np.isfinite(attenuation) and 0 < attenuation <= 1):
        attenuation = 0.5
    arr = as_stack(frames)
    n = arr.shape[0]
    cutoff = float(optics.cutoff_per_pixel)
    nan = float("nan")
    empty = PupilCalibration({j: nan for j in NOLL}, {j: nan for j in NOLL}, nan, nan,
                             [nan] * 3 * n, [nan] * 3 * n, nan, 0)  # fmt: skip
    if cutoff > 0.5:  # the intensity PSF is not sampled without aliasing
        return empty
    b = float(np.percentile(arr, 0.5)) if offset is None else float(offset)
    crop = _centre(arr, MAX_SIDE)
    y0, x0 = (arr.shape[2] - crop.shape[2]) // 2, (arr.shape[3] - crop.shape[3]) // 2
    shape = crop.shape[-2:]
    bands: list[_Band] = []
    for i, acq in enumerate(crop):
        x = acq - b
        means = x.mean(axis=(1, 2))
        if np.all(means > 0):
            x = x * (means.mean() / means)[:, None, None]
        bands += [bd for bd in _bands(x, shift_origin(params[i], y0, x0), i, cutoff)
                  if bd.sel.size >= 16]  # fmt: skip
    npar = len(NOLL) + 1
    points = sum(bd.sel.size for bd in bands)
    if not bands or points < 4 * npar:
        return empty
    weights: list[np.ndarray] = []

    model = PupilOTF(shape, _pupil_radius(optics), NOLL)

    def project(p: np.ndarray) -> tuple[np.ndarray, list[complex]]:
        h, att = model.psf(p[:-1]), float(np.exp(p[-1]))
        o0 = model.at(h, att, np.zeros(2)).ravel()
        res, amps = [], []
        for j, bd in enumerate(bands):
            t = model.at(h, att, bd.k).ravel()[bd.sel] / o0[bd.sel]
            if len(weights) <= j:
                weights.append(1.0 / (bd.n1 + np.abs(t) ** 2 * bd.n0))
            w = weights[j]
            u = t * bd.c0
            den = float(np.sum(w * (np.abs(u) ** 2 - np.abs(t) ** 2 * bd.n0)))
            amp = complex(np.sum(w * np.conj(u) * bd.c1)) / max(den, 1e-300)
            # each of the real and imaginary parts carries half the complex noise power
            r = (bd.c1 - amp * u) * np.sqrt(2.0 * w)
            res += [r.real, r.imag]
            amps.append(amp)
        return np.concatenate(res), amps

    project(np.r_[np.zeros(len(NOLL)), np.log(attenuation)])  # weights at the ideal pupil
    lo = np.r_[np.full(len(NOLL), -0.25), np.log(1e-3)]
    hi = np.r_[np.full(len(NOLL), 0.25), np.log(1.5)]  # a <= 1.5 (module docstring)
    start = np.r_[np.zeros(len(NOLL)), np.log(attenuation)]
    sol = optimize.least_squares(
        lambda p: project(p)[0], start, bounds=(lo, hi), diff_step=1e-3,
        x_scale=np.r_[np.full(len(NOLL), 0.05), 0.3], ftol=1e-6, xtol=1e-6,
    )  # fmt: skip
    # the ideal pupil with only a free: how much the aberration terms improve the fit
    ideal = optimize.least_squares(
        lambda q: project(np.r_[np.zeros(len(NOLL)), q])[0], start[-1:], bounds=(lo[-1:], hi[-1:]),
        diff_step=1e-3, x_scale=[0.3], ftol=1e-6, xtol=1e-6,
    )  # fmt: skip
    res, amps = project(sol.x)
    dof = max(res.size - npar - 2 * len(bands), 1)
    delta_chi2 = float(2.0 * (ideal.cost - sol.cost))
    chi2 = float(res @ res / dof)
    try:
        cov = np.linalg.inv(sol.jac.T @ sol.jac) * max(chi2, 1.0)
        sig = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        sig = np.full(npar, nan)
    mods, offsets = [nan] * 3 * n, [nan] * 3 * n
    for bd, amp in zip(bands, amps, strict=True):
        mods[3 * bd.acq + bd.angle] = abs(amp)
        offsets[3 * bd.acq + bd.angle] = float(np.angle(amp))
    coef = sol.x[:-1]
    a = float(np.exp(sol.x[-1]))
    return PupilCalibration(
        aberration={j: float(c) for j, c in zip(NOLL, coef, strict=True)},
        aberration_sigma={j: float(s) for j, s in zip(NOLL, sig[:-1], strict=True)},
        attenuation=a,
        attenuation_sigma=float(a * sig[-1]),
        modulation=mods,
        phase_offset=offsets,
        chi2_reduced=chi2,
        points=int(points),
        rms=float(np.sqrt(np.sum(coef**2))),
        delta_chi2=delta_chi2,
        otf=pupil_otf(tuple(arr.shape[-2:]), optics, coef, a),
    )
