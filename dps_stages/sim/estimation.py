"""2D-SIM illumination parameters and their estimation from the raw frames.

Wave vectors by cross-correlation of the separated bands (Gustafsson 2000; Wicker et al.,
Opt. Express 21, 2032, 2013), phases and modulation from the band overlap (fairSIM, Mueller
et al., Nat. Commun. 7, 10980, 2016). Theory and conventions: ``docs/sim.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from scipy import fft as sfft

from ..optics import Optics
from ..physics import PatternGeometry
from .otf import (
    _freqs,
    _grid_otf,
    _mixing_inverse,
    _ramp,
    _tukey,
    otf_values,
    periodic_spectra,
    preprocess,
)

_WORKERS = -1
_TWO_PI = 2.0 * np.pi
_EQUAL_STEPS = _TWO_PI * np.arange(3) / 3.0


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SIMParameters(PatternGeometry):
    """Illumination parameters of a 3-angle x 3-phase 2D-SIM acquisition.

    ``I_ap(r) = 1 + m_a cos(2 pi k_a . r + phi_ap)``, ``r = (y, x)`` in camera pixels from the
    centre of pixel ``(0, 0)`` (the convention of :class:`dps_stages.simulate.SIMPattern`); a
    parameter holder of :class:`dps_stages.physics.SIMIllumination` (:meth:`illumination`).

    Attributes
    ----------
    k
        ``(3, 2)`` wave vectors ``(ky, kx)`` in cycles per camera pixel.
    phases
        ``(3, 3)`` absolute phases ``phi_ap`` in rad, in ``[0, 2 pi)``, ``[angle, phase]``.
    modulation
        ``(3,)`` modulation depth ``m_a`` per angle.
    significance
        ``(3,)`` signal-to-noise ratio of the band overlap that gave ``m_a`` and the phases
        (``inf`` for parameters given, not estimated). Angles below a threshold are left out
        of the reconstruction's side bands.
    """

    k: np.ndarray
    phases: np.ndarray
    modulation: np.ndarray
    significance: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = np.asarray(self.k, dtype=np.float64).reshape(3, 2)
        phases = np.mod(np.asarray(self.phases, dtype=np.float64).reshape(3, 3), _TWO_PI)
        mod = np.broadcast_to(np.asarray(self.modulation, dtype=np.float64), (3,)).copy()
        sig = self.significance
        sig = np.full(3, np.inf) if sig is None else np.asarray(sig, dtype=np.float64)
        for arr in (k, phases, mod, sig):
            arr.setflags(write=False)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "modulation", mod)
        object.__setattr__(self, "significance", sig.reshape(3))

    @property
    def phase_steps(self) -> np.ndarray:
        """``(3, 2)`` steps ``phi_a,p+1 - phi_a,p`` wrapped to ``(-pi, pi]``."""
        d = np.diff(self.phases, axis=1)
        return np.angle(np.exp(1j * d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (nested lists of floats; ``inf`` significance as None)."""
        sig = [None if not np.isfinite(s) else float(s) for s in self.significance]
        return {
            "k": self.k.tolist(),
            "phases": self.phases.tolist(),
            "modulation": self.modulation.tolist(),
            "significance": sig,
            "frequency": self.frequencies.tolist(),
            "angle_deg": np.degrees(self.angles).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SIMParameters:
        """Inverse of :meth:`to_dict` (extra keys are ignored)."""
        sig = d.get("significance")
        if sig is not None:
            sig = [np.inf if s is None else float(s) for s in sig]
        return cls(k=d["k"], phases=d["phases"], modulation=d["modulation"], significance=sig)

    @classmethod
    def from_pattern(cls, pattern: Any) -> SIMParameters:
        """From a :class:`dps_stages.simulate.SIMPattern` (the simulated truth)."""
        return cls(k=pattern.k, phases=pattern.phases, modulation=pattern.modulation)

    def flipped(self) -> SIMParameters:
        """The same illumination written with ``-k`` (and hence ``-phi``)."""
        return SIMParameters(-self.k, -self.phases, self.modulation, self.significance)


# --------------------------------------------------------------------------------------------
# Parameter estimation
# --------------------------------------------------------------------------------------------
@dataclass
class _Estimation:
    """Everything the estimation of one acquisition shares (grids, window, spectra)."""

    spec: np.ndarray  # (9, ny, nx) complex64 spectra of the periodic components
    win: np.ndarray  # (ny, nx) float32 edge window
    otf: np.ndarray  # (ny, nx) float32 OTF on the grid
    fy: np.ndarray  # (ny, 1) cycles per pixel
    fx: np.ndarray  # (1, nx)
    cutoff: float
    decay: float
    pixel: bool
    dc_exclude: float
    _otf: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)
    _rings: dict[tuple[float, float], tuple] = field(default_factory=dict)

    def otf_at(self, ky: float, kx: float) -> np.ndarray:
        """``O(f + k)`` on the grid, computed once per shift (read-only)."""
        key = (float(ky), float(kx))
        if key not in self._otf:
            o = otf_values(self.fy + ky, self.fx + kx, self.cutoff, decay=self.decay,
                           pixel=self.pixel)  # fmt: skip
            o.flags.writeable = False
            self._otf[key] = o
        return self._otf[key]

    def mask_at(self, ky: float, kx: float) -> np.ndarray:
        """1 where ``|f + k| >= dc_exclude f_c`` (away from a band origin), else 0."""
        r0 = self.dc_exclude * self.cutoff
        return (((self.fy + ky) ** 2 + (self.fx + kx) ** 2) >= r0 * r0).astype(np.float32)

    @cached_property
    def _noise_region(self) -> np.ndarray | None:
        """Flat indices of the grid beyond 1.1 f_c (away from Nyquist); None when under 64."""
        q = np.hypot(self.fy, self.fx) / self.cutoff
        out = (q > 1.1) & (np.abs(self.fy) < 0.45) & (np.abs(self.fx) < 0.45)
        return np.flatnonzero(out) if out.sum() >= 64 else None

    def noise_power(self, spec: np.ndarray) -> float:
        """Mean ``|spec|^2`` beyond 1.1 f_c (noise only for a band-limited image); 0 if none."""
        idx = self._noise_region
        if idx is None:
            return 0.0
        vals = np.take(spec.reshape(spec.shape[:-2] + (-1,)), idx, axis=-1)
        return float(np.mean(vals.real**2 + vals.imag**2))

    def rings(self, k_range: tuple[float, float]) -> tuple[np.ndarray, ...]:
        """The annulus ``k_range`` (fractions of f_c) of the shift grid as flat indices grouped
        by ring (integer radius in spectrum pixels), each ring's start and size in that order,
        and each index's ring rank shifted into the high 32 bits (the sort key of
        :func:`_coarse_scores`): fixed for a grid, so computed once per annulus."""
        key = (float(k_range[0]), float(k_range[1]))
        if key not in self._rings:
            ny, nx = self.spec.shape[-2:]
            q = np.hypot(self.fy, self.fx) / self.cutoff
            ann = np.flatnonzero((q >= key[0]) & (q <= key[1]))
            if ann.size == 0:
                raise ValueError(f"the search annulus {k_range} (x f_c) holds no frequency")
            radius = np.hypot(self.fy * ny, self.fx * nx).ravel()[ann]
            ring = np.rint(radius).astype(np.int64)
            order = np.argsort(ring, kind="stable")
            ring_s = ring[order]
            starts = np.flatnonzero(np.r_[True, ring_s[1:] != ring_s[:-1]])
            counts = np.diff(np.r_[starts, ring_s.size])
            rank = np.repeat(np.arange(starts.size, dtype=np.uint64), counts) << np.uint64(32)
            self._rings[key] = (ann[order], starts, counts, rank)
        return self._rings[key]


def _dft_grid(p: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """``sum_r p(r) exp(-2 pi i s . r)`` for all ``s`` in ``sy x sx`` (matrix-multiply DFT).

    ``r`` are the array indices; ``p`` must vanish near its borders (it is windowed), so the
    sum is the Fourier transform of a compact function at the continuous frequency ``s``.
    """
    ny, nx = p.shape
    ey = np.exp(-2j * np.pi * np.outer(sy, np.arange(ny))).astype(p.dtype)
    ex = np.exp(-2j * np.pi * np.outer(np.arange(nx), sx)).astype(p.dtype)
    return (ey @ p) @ ex


def _parabola(a: float, b: float, c: float) -> float:
    """Vertex offset (in samples, within +-0.5) of the parabola through (-1, a), (0, b), (1, c)."""
    den = a - 2.0 * b + c
    if den >= 0 or not np.isfinite(den):
        return 0.0
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


def _overlap_pair(
    est: _Estimation, c0: np.ndarray, side: np.ndarray, k: np.ndarray, mask: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed real-space forms of the two sides of the band overlap at shift ``k``.

    ``a = w F^-1[C_0(g) O(g + k) M(g)]`` and ``b = w F^-1[C_side(f) O(f - k) M(f - k)]``; then
    ``b exp(-2 pi i k.r)`` is the side band moved to its place, filtered by ``O(g)``: at the
    true ``k`` both equal ``w F^-1[O(g) O(g + k) X(g)]`` up to the complex factor ``m e^{i
    phi}``. The window is applied after the filters, so the equality holds exactly for the
    windowed images as well (applying it to the raw frames instead biases ``k`` by a few
    hundredths of a pixel). ``side`` may be a stack ``(n, y, x)``. Returns ``(a, b, F_b)`` with
    ``F_b = O(f - k) M(f - k)``.
    """
    fa = est.otf_at(k[0], k[1])
    fb = est.otf_at(-k[0], -k[1])
    if mask:
        fa = fa * est.mask_at(0.0, 0.0) * est.mask_at(k[0], k[1])
        fb = fb * est.mask_at(0.0, 0.0) * est.mask_at(-k[0], -k[1])
    a = est.win * sfft.ifft2(c0 * fa, workers=_WORKERS)
    b = est.win * sfft.ifft2(side * fb, workers=_WORKERS, axes=(-2, -1))
    return a, b, fb


class _Field(NamedTuple):
    """One field's part in an angle's wave-vector search: its estimation context and the
    spectra of its zero band ``C_0`` and side band ``C_+1``."""

    est: _Estimation
    c0: np.ndarray
    cp: np.ndarray


def _fields(
    ests: Sequence[_Estimation],
    specs: Sequence[np.ndarray],
    phases: Sequence[np.ndarray] | None = None,
) -> list[_Field]:
    """Each field's bands from its three frame spectra: ``C_0`` their mean, ``C_+1``
    separated with the field's ``phases`` (equal steps ``2 pi p / 3`` when None)."""
    out = []
    for i, (est, sp) in enumerate(zip(ests, specs, strict=True)):
        u = _mixing_inverse(_EQUAL_STEPS if phases is None else phases[i])[1]
        out.append(_Field(est, sp.mean(axis=0), np.tensordot(u.astype(np.complex64), sp, axes=1)))
    return out


def _refine_k_pooled(fields: Sequence[_Field], k0: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Sub-pixel wave vector: maximise the band-overlap correlation around ``k0``.

    For a trial shift ``s`` the overlap ``rho(s) = sum_r conj(a(r)) b(r) e^{-2 pi i s.r}``
    (:func:`_overlap_pair` with the filters taken at the current estimate ``s_0``) is, by
    Parseval, ``sum_g conj(C_0(g) O(g + s_0)) C_+1(g + s) O(g + s - s_0)`` for the windowed
    images, whose modulus is largest at ``s = k`` when ``s_0 = k`` (Cauchy-Schwarz, the norms
    of ``a`` and of the modulated ``b`` not depending on ``s``). It is evaluated at
    continuous ``s`` by matrix-multiply DFTs on local grids (0.1 px, then 0.01 px steps of
    the spectrum grid; Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156, 2008),
    finished by a parabolic fit; ``s_0`` is then updated and the search repeated, which
    removes the small bias of filters taken at a wrong ``s_0``.

    Several fields sharing one wave vector (one acquisition): with one field the criterion
    is ``|rho(s)|``. With fields ``i`` that share ``k`` but not the object, phase or
    brightness, each overlap ``rho_i(s) = A_i u_i(s)`` has its own unknown complex
    amplitude ``A_i`` and, for white noise in ``C_+1`` of power ``N_i`` per coefficient, a
    noise variance ``var_i ~ N_i sum_r |a_i(r)|^2``.
    Maximising the likelihood over the ``A_i`` (matched filter with an unknown amplitude per
    field: Kay, *Fundamentals of Statistical Signal Processing* II, Sec. 7.6) leaves
    ``L(s) = sum_i |rho_i(s)|^2 / var_i``, whose maximum is searched the same way
    (``sqrt(L)``, the combined significance, on the local grids and in the parabolic fit).
    """
    ny, nx = fields[0].c0.shape
    centre = np.asarray(k0, dtype=np.float64)
    single = len(fields) == 1
    for it in range(iterations):
        ps, weights = [], []
        for est, c0, cp in fields:
            a, b, _ = _overlap_pair(est, c0, cp, centre, mask=False)
            ps.append((np.conj(a) * b).astype(np.complex64))
            if not single:
                noise = est.noise_power(cp) or float(np.mean(np.abs(cp) ** 2))
                weights.append(1.0 / max(noise * float(np.vdot(a, a).real), 1e-300))
        # (step, half-width in steps) of the successive grids, in spectrum pixels
        span = ((0.2, 6), (0.04, 5), (0.008, 5)) if it == 0 else ((0.01, 5), (0.002, 5))
        for step, half in span:
            off = np.arange(-half, half + 1) * step
            sy = centre[0] + off / ny
            sx = centre[1] + off / nx
            if single:
                r = np.abs(_dft_grid(ps[0], sy, sx))
            else:
                terms = zip(weights, ps, strict=True)
                r = np.sqrt(sum(w * np.abs(_dft_grid(p, sy, sx)) ** 2 for w, p in terms))
            iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
            iy = int(np.clip(iy, 1, r.shape[0] - 2))
            ix = int(np.clip(ix, 1, r.shape[1] - 2))
            centre = np.array([sy[iy], sx[ix]])
        dy = _parabola(r[iy - 1, ix], r[iy, ix], r[iy + 1, ix])
        dx = _parabola(r[iy, ix - 1], r[iy, ix], r[iy, ix + 1])
        centre = centre + np.array([dy * step / ny, dx * step / nx])
    return centre


def _coarse_scores(
    c0: np.ndarray, cp: np.ndarray, est: _Estimation, k_range: tuple[float, float]
) -> np.ndarray:
    """Ring-normalised band cross-correlation ``|CC(s)|`` on the integer grid of shifts.

    ``CC(s) = sum_g conj(C_0(g) O(g)) C_+1(g + s) O(g + s)`` (one FFT of the real-space
    product ``conj(a) b``, windowed frames) divided by its median over the ring of the same
    ``|s|`` (integer radius in spectrum pixels): the plain correlation grows towards small
    ``|s|``, where the OTF is large, and its noise changes with ``|s|``; the ring median
    removes both trends, so that the pattern peak stands out at any radius. Zero outside the
    annulus ``k_range`` (fractions of ``f_c``).
    """
    a = sfft.ifft2(c0 * est.otf, workers=_WORKERS)
    b = sfft.ifft2(cp * est.otf, workers=_WORKERS)
    cc = np.abs(sfft.fft2(np.conj(a) * b, workers=_WORKERS)).astype(np.float32)
    idx, starts, counts, rank = est.rings(k_range)
    vals = cc.ravel()[idx]
    # sort within rings with one sort of (ring, value) packed in 64 bits: the bits of a
    # non-negative float32 order as the values do
    packed = np.sort(rank | vals.view(np.uint32).astype(np.uint64))
    vals_s = (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    med = vals_s[starts + counts // 2].astype(np.float64)  # (upper) median of each ring
    score = np.zeros(cc.size, dtype=np.float64)
    score[idx] = vals / np.maximum(np.repeat(med, counts), 1e-30)
    return score.reshape(cc.shape)


def _peak_near(score: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, float]:
    """Highest ``score`` within ``radius`` spectrum pixels of ``centre`` (cycles/px)."""
    ny, nx = score.shape
    cy, cx = centre[0] * ny, centre[1] * nx
    iy = np.arange(int(np.floor(cy - radius)), int(np.ceil(cy + radius)) + 1)
    ix = np.arange(int(np.floor(cx - radius)), int(np.ceil(cx + radius)) + 1)
    sub = score[np.ix_(iy % ny, ix % nx)]
    inside = (iy[:, None] - cy) ** 2 + (ix[None, :] - cx) ** 2 <= radius * radius
    sub = np.where(inside, sub, -np.inf)
    j = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return np.array([iy[j[0]] / ny, ix[j[1]] / nx]), float(sub[j])


def _global_peak(score: np.ndarray) -> tuple[np.ndarray, float]:
    ny, nx = score.shape
    j = np.unravel_index(int(np.argmax(score)), score.shape)
    iy = (j[0] + ny // 2) % ny - ny // 2
    ix = (j[1] + nx // 2) % nx - nx // 2
    return np.array([iy / ny, ix / nx]), float(score[j])


def _rotate(k: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``(ky, kx)`` by ``angle`` (rad, counter-clockwise in the (x, y) plane)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([s * k[1] + c * k[0], c * k[1] - s * k[0]])


def _coarse_k(
    scores: list[np.ndarray],
    k_guess: np.ndarray | None,
    min_peak: float,
    search_radius: float,
) -> np.ndarray:
    """Integer-pixel wave vectors ``(3, 2)`` from the score maps (see ``docs/sim.md``)."""
    ks = np.zeros((3, 2))
    if k_guess is not None:
        for a in range(3):
            cands = [_peak_near(scores[a], sgn * k_guess[a], search_radius) for sgn in (1, -1)]
            ks[a] = max(cands, key=lambda c: c[1])[0]
        return ks
    peaks = [_global_peak(s) for s in scores]
    heights = np.array([p[1] for p in peaks])
    for a in range(3):
        ks[a] = peaks[a][0]
    anchor = int(np.argmax(heights))
    if heights[anchor] < min_peak:
        return ks
    ka = ks[anchor]
    kmag = float(np.hypot(*ka))
    for a in range(3):
        if a == anchor:
            continue
        if heights[a] >= min_peak:
            kn = float(np.hypot(*ks[a]))
            cosang = abs(float(np.dot(ks[a], ka))) / (kn * kmag)
            if abs(kn / kmag - 1) < 0.1 and abs(cosang - 0.5) < 0.1:
                continue  # its own peak agrees with the 60-degree geometry
        cands = [
            _peak_near(scores[a], sgn * _rotate(ka, rot), search_radius)
            for rot in (np.pi / 3, -np.pi / 3)
            for sgn in (1, -1)
        ]
        ks[a] = max(cands, key=lambda c: c[1])[0]
    return ks


def _angle_parameters(
    est: _Estimation,
    spec: np.ndarray,
    k: np.ndarray,
    equal_steps: bool,
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Phases, modulation and significance of one angle at wave vector ``k``.

    ``spec`` are the angle's three frame spectra. Each frame's modulated part ``E_p = D_p -
    C_0`` is overlapped with the zero band (:func:`_overlap_pair`, DC neighbourhoods masked):
    ``rho_p = sum_r conj(a) b_p e^{-2 pi i k.r} / (|a|^2 - noise) ~ (m/2) e^{i phi_p}``. The
    bands are separated with these phases, and the overlap of ``C_+1`` (a linear combination
    of the ``E_p``, hence of the ``rho_p``) gives ``rho = m e^{i delta}``. Returns
    ``(phases + delta, |rho|, significance, phases)``.
    """
    ny, nx = spec.shape[-2:]
    c0 = spec.mean(axis=0)
    a, b, fb = _overlap_pair(est, c0, spec - c0, k, mask=True)
    ramp = _ramp(ny, k[0])[:, None] * _ramp(nx, k[1])[None, :]
    n_p = np.array([np.vdot(a, b[p] * ramp) for p in range(3)])
    n4 = float(ny * nx) ** 2
    w2 = float(np.sum(est.win.astype(np.float64) ** 2))
    fa = est.otf_at(k[0], k[1]) * est.mask_at(0.0, 0.0) * est.mask_at(k[0], k[1])
    noise_a = est.noise_power(c0) * float(np.sum(fa.astype(np.float64) ** 2)) * w2 / n4
    den = max(float(np.vdot(a, a).real) - noise_a, 1e-30)
    rho_p = n_p / den
    phases = np.angle(rho_p)
    gaps = np.abs(np.angle(np.exp(1j * (phases - np.roll(phases, 1)))))
    if equal_steps or gaps.min() < np.radians(30):  # steps unmeasurable: assume equal
        offset = np.angle(np.sum(rho_p * np.exp(-1j * _EQUAL_STEPS)))
        phases = offset + _EQUAL_STEPS
    u = _mixing_inverse(phases)[1]
    rho = complex(np.sum(u * rho_p))
    # noise of rho: C_+1 = sum_p U[1,p] D_p has white noise of power sigma_+^2 per coefficient
    sigma_p = est.noise_power(np.tensordot(u.astype(np.complex64), spec, axes=1))
    aw2 = float(np.sum((np.abs(a) * est.win) ** 2))
    std = np.sqrt(sigma_p * float(np.sum(fb.astype(np.float64) ** 2)) / n4 * aw2) / den
    if std > 0:
        significance = abs(rho) / std
    else:  # no measurable noise: significant if there is any overlap at all
        significance = np.inf if abs(rho) > 0 else 0.0
    return np.mod(phases + np.angle(rho), _TWO_PI), abs(rho), float(significance), phases


def estimate_parameters(
    frames: np.ndarray,
    optics: Optics,
    *,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
    **kw: Any,
) -> SIMParameters:
    """Estimate the illumination pattern (wave vectors, phases, modulation) from raw frames.

    See ``docs/sim.md`` for the method (band separation, coarse peak search in an
    annulus, sub-pixel maximisation of the band overlap, per-frame phases from the overlap
    with the zero band, modulation from the final overlap).

    Parameters
    ----------
    frames
        ``(9, y, x)`` raw frames, angle-major (camera offset included or not).
    optics
        Wavelength, NA and camera pixel size (they set the OTF cutoff in cycles per pixel).
    background_percentile, normalise_intensity
        See :func:`preprocess` (None and False: frames already through it, used as given).
    **kw
        The settings of the search (:func:`estimate_from_spectra`, where they are defined
        and their defaults kept): ``k_guess``, ``k_range``, ``search_radius``, ``min_peak``,
        ``equal_steps``, ``dc_exclude``, ``apodisation_width``, ``otf_decay``, ``pixel_otf``.

    Returns
    -------
    SIMParameters
    """
    x = preprocess(
        frames, background_percentile=background_percentile, normalise_intensity=normalise_intensity
    )
    spec, _ = periodic_spectra(x)
    return estimate_from_spectra(x, spec, optics, **kw)


def estimate_from_spectra(
    x: np.ndarray,
    spec: np.ndarray,
    optics: Optics,
    *,
    k_guess: np.ndarray | Sequence[Sequence[float]] | None = None,
    k_range: tuple[float, float] = (0.5, 1.0),
    search_radius: float = 3.0,
    min_peak: float = 8.0,
    equal_steps: bool = False,
    dc_exclude: float = 0.1,
    apodisation_width: float = 0.125,
    otf_decay: float = 1.0,
    pixel_otf: bool = True,
) -> SIMParameters:
    """:func:`estimate_parameters` on preprocessed frames ``x`` (9, y, x) and the spectra
    ``spec`` (9, y, x) of their periodic components (:func:`periodic_smooth_decomposition`),
    which :func:`dps_stages.sim.reconstruct` computes once and shares with the bands.

    Parameters
    ----------
    k_guess
        Optional ``(3, 2)`` approximate wave vectors (cycles per pixel, either sign): the peak
        is then searched within ``search_radius`` spectrum pixels of ``+-k_guess``.
    k_range
        Annulus of the blind search, fractions of the OTF cutoff.
    search_radius
        Radius (spectrum pixels) of the local searches.
    min_peak
        Ring-normalised peak height below which an angle's own peak is not trusted and is
        looked for near the strongest angle's wave vector rotated by +-60 degrees.
    equal_steps
        Assume phase steps of exactly ``2 pi / 3`` and estimate one offset per angle (less
        noise) instead of each frame's phase.
    dc_exclude
        Radius (fraction of ``f_c``) around each band's origin left out of the overlap.
    apodisation_width
        Width of the cosine edge window, fraction of each side.
    otf_decay, pixel_otf
        OTF model (see :func:`otf_values`).

    Returns
    -------
    SIMParameters
    """
    est = _estimation(x, spec, optics, apodisation_width, otf_decay, pixel_otf, dc_exclude)
    guess = None if k_guess is None else np.asarray(k_guess, dtype=np.float64).reshape(3, 2)
    ks = _coarse_k(_score_maps(est, x, guess, k_range), guess, min_peak, search_radius)
    return _finish([est], ks, equal_steps)[0]


def estimate_parameters_pooled(
    frames: np.ndarray,
    optics: Optics,
    *,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
    full_output: bool = False,
    **kw: Any,
) -> list[SIMParameters] | tuple[list[SIMParameters], dict[str, np.ndarray]]:
    """Illumination patterns of several fields of one acquisition session, ``k`` pooled.

    The wave vectors of a 2D-SIM microscope are fixed by its hardware (grating or SLM
    period and orientation, the objective's magnification), so the fields of one session
    share ``k_a``; their phases and modulation may differ (a phase reference per
    acquisition, the object's depth). The ring-normalised coarse score maps (step 2 of
    ``docs/sim.md``) are averaged over the fields and their peak refined in each field
    (``k_i``, uncertainty ``sigma_i``: :func:`_k_sigma` times ``_K_SIGMA_FACTOR``, the
    white-noise sigma being 2-5 times smaller than the errors seen on simulations). Then,
    per angle, one ``k`` is fitted to all fields: the sub-pixel
    search maximises ``L(s) = sum_i |rho_i(s)|^2 / var_i`` (:func:`_refine_k_pooled`), the
    likelihood of one ``k`` with an unknown overlap amplitude per field, each field's side
    band separated with its own measured phases. The fields are taken to share ``k`` only if
    they agree within their noise, ``chi^2 = sum_i |k_i - k|^2 / sigma_i^2`` below the 99.9 %
    quantile of ``chi^2`` with ``2 (n - 1)`` degrees of freedom (fields of different
    sessions, or a pattern that drifts between fields, keep their own ``k_i``). Phases,
    modulation and significance are then each field's own at the common ``k``
    (:func:`_angle_parameters`, refined once more on the bands separated with the measured
    phases, as in :func:`estimate_parameters`). Pooling ``n`` fields of similar signal
    divides the variance of ``k`` by about ``n``; since phases refer to pixel ``(0, 0)``, an
    error ``dk`` moves them by ``2 pi dk . r_c`` (``r_c`` the image centre), which pooling
    reduces too.

    ``frames``: ``(n, 9, y, x)`` (or ``(9, y, x)``, ``n = 1``); the keywords are those of
    :func:`estimate_parameters`, whose result each field gets when not pooled (always for
    ``n = 1``). Returns one :class:`SIMParameters` per field; with ``full_output`` also a
    dict of ``k_sigma`` ``(n, 3, 2)`` (cycles per pixel, 1 sigma), ``phase_sigma`` ``(n, 3,
    3)`` (rad: each frame's own noise, :func:`_phase_sigma`, and that of ``k`` through ``2 pi
    sigma_k . r_c``), ``pooled`` ``(3,)`` and ``chi2`` ``(3,)``.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 9:
        raise ValueError(f"frames must be (9, y, x) or (n, 9, y, x); got {arr.shape}")
    opts = _search_settings(kw)
    k_guess, k_range, search_radius = opts["k_guess"], opts["k_range"], opts["search_radius"]
    min_peak, equal_steps, dc_exclude = opts["min_peak"], opts["equal_steps"], opts["dc_exclude"]
    apodisation_width = opts["apodisation_width"]
    otf_decay, pixel_otf = opts["otf_decay"], opts["pixel_otf"]
    guess = None if k_guess is None else np.asarray(k_guess, dtype=np.float64).reshape(3, 2)
    ests, params, maps = [], [], []
    for acq in arr:
        x = preprocess(
            acq,
            background_percentile=background_percentile,
            normalise_intensity=normalise_intensity,
        )
        spec, _ = periodic_spectra(x)
        est = _estimation(x, spec, optics, apodisation_width, otf_decay, pixel_otf, dc_exclude)
        maps.append(_score_maps(est, x, guess, k_range))
        ks = _coarse_k(maps[-1], guess, min_peak, search_radius)
        ests.append(est)
        params.append(_finish([est], ks, equal_steps)[0])  # = estimate_parameters
    n = len(ests)
    ny, nx = ests[0].spec.shape[-2:]
    centre = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    k_sig = np.zeros((n, 3, 2))
    ph_sig = np.zeros((n, 3, 3))
    pooled = np.zeros(3, dtype=bool)
    chi2 = np.full(3, np.nan)
    k_out = np.stack([p.k for p in params])
    phases = np.stack([p.phases for p in params])
    mods = np.stack([p.modulation for p in params])
    sig = np.stack([p.significance for p in params])
    ks_pool = _coarse_k(
        [np.mean([m[a] for m in maps], axis=0) for a in range(3)], guess, min_peak, search_radius
    )
    for a in range(3):
        specs = [est.spec[3 * a : 3 * a + 3] for est in ests]
        fields = _fields(ests, specs)
        if n > 1:
            # each field refined from the pooled coarse peak, then one k for all
            ki = np.array([_refine_k_pooled([f], ks_pool[a]) for f in fields])
            si = np.array([_k_sigma([f], k) for f, k in zip(fields, ki, strict=True)])
            si = _K_SIGMA_FACTOR * si
            w = 1.0 / np.maximum(si**2, 1e-300)
            k = _refine_k_pooled(fields, (w * ki).sum(axis=0) / w.sum(axis=0))
            chi2[a] = float(np.sum((ki - k) ** 2 * w))
            if np.all(np.isfinite(si)) and chi2[a] <= _chi2_ppf(2 * (n - 1)):
                pooled[a] = True
                k, res, measured = _phases_at(ests, specs, k, equal_steps)
                ks_p = _K_SIGMA_FACTOR * _k_sigma(measured, k) if full_output else 0.0
                for i, (ph, m, s_, _) in enumerate(res):
                    k_out[i, a], phases[i, a], mods[i, a], sig[i, a] = k, ph, m, s_
                    k_sig[i, a] = ks_p
        if not full_output:  # the uncertainties below are reported, never used
            continue
        for i in range(n):
            if not pooled[a]:
                field = _fields([ests[i]], [specs[i]], [phases[i, a]])
                k_sig[i, a] = _K_SIGMA_FACTOR * _k_sigma(field, k_out[i, a])
            frame = _phase_sigma(ests[i], specs[i], k_out[i, a], float(sig[i, a]))
            from_k = _TWO_PI * float(np.hypot(*(centre * k_sig[i, a])))
            ph_sig[i, a] = np.hypot(frame, from_k)
    out = [
        SIMParameters(k=k_out[i], phases=phases[i], modulation=mods[i], significance=sig[i])
        for i in range(n)
    ]
    if full_output:
        info = {"k_sigma": k_sig, "phase_sigma": ph_sig, "pooled": pooled, "chi2": chi2}
        return out, info
    return out


def _search_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """The search settings of :func:`estimate_from_spectra` (where their defaults are kept),
    updated by ``kw``; an unknown name raises TypeError as a wrong keyword would."""
    import inspect

    params = inspect.signature(estimate_from_spectra).parameters
    names = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(kw) - set(names))
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}")
    return {n: kw.get(n, params[n].default) for n in names}


#: the white-noise (Fisher) uncertainty of k times this factor: on simulations (the tests'
#: fields, ``benchmarks/bench_unlike.py``) the errors of k are 2-5 times the white-noise
#: sigma, the rest being the object's own terms and band-separation residuals that the
#: likelihood of :func:`_k_sigma` does not model.
_K_SIGMA_FACTOR = 4.0


def _chi2_ppf(dof: int, p: float = 0.999) -> float:
    """``p`` quantile of the chi^2 distribution with ``dof`` degrees of freedom."""
    from scipy.stats import chi2

    return float(chi2.ppf(p, dof))


def _k_sigma(fields: Sequence[_Field], k: np.ndarray, h: float = 0.05) -> np.ndarray:
    """1-sigma uncertainty ``(sigma_ky, sigma_kx)`` (cycles per pixel) of the wave vector.

    The log-likelihood of ``k`` with one unknown complex overlap amplitude per field, for
    complex Gaussian noise of variance ``var_i = E|noise of rho_i|^2``, is ``L(s) = sum_i
    |rho_i(s)|^2 / var_i`` (:func:`_refine_k_pooled`); its curvature at the maximum is the
    observed Fisher information, ``Cov(k) = (-H)^-1`` with ``H`` the Hessian of ``L``
    (Kay, *Fundamentals of Statistical Signal Processing* I, Sec. 7.5). ``H`` from ``L`` on
    a 3 x 3 grid of step ``h`` spectrum pixels around ``k`` (complex128, the curvature over
    ``h`` being far below complex64 precision at the 0.002 px steps of the search).
    ``var_i`` counts the white noise of both sides of the overlap (``N_+`` beyond the cutoff
    through ``b``'s filter ``F_b``, weighted by ``|a|^2``, and ``N_0`` through ``F_a``,
    weighted by ``|b|^2``; ``w`` the window): ``var = (N_+ sum F_b^2 sum |a|^2 w^2 + N_0
    sum F_a^2 sum |b|^2 w^2) / (n_y n_x)^2``. ``inf`` where ``L`` is not curved downwards.
    """
    ny, nx = fields[0].c0.shape
    off = np.array([-h, 0.0, h])
    sy, sx = k[0] + off / ny, k[1] + off / nx
    total = np.zeros((3, 3))
    for est, c0, cp in fields:
        fa = est.otf_at(k[0], k[1]).astype(np.float64)
        fb = est.otf_at(-k[0], -k[1]).astype(np.float64)
        a = est.win * np.fft.ifft2(c0.astype(np.complex128) * fa)
        b = est.win * np.fft.ifft2(cp.astype(np.complex128) * fb)
        w2 = est.win.astype(np.float64) ** 2
        n4 = float(ny * nx) ** 2
        var = (
            est.noise_power(cp) * float(np.sum(fb**2)) * float(np.sum(np.abs(a) ** 2 * w2))
            + est.noise_power(c0) * float(np.sum(fa**2)) * float(np.sum(np.abs(b) ** 2 * w2))
        ) / n4
        if not var > 0:
            return np.full(2, np.inf)
        total += np.abs(_dft_grid(np.conj(a) * b, sy, sx)) ** 2 / var
    hy, hx = h / ny, h / nx
    hess = np.array(
        [
            [(total[0, 1] - 2 * total[1, 1] + total[2, 1]) / hy**2,
             (total[2, 2] - total[2, 0] - total[0, 2] + total[0, 0]) / (4 * hy * hx)],
            [0.0, (total[1, 0] - 2 * total[1, 1] + total[1, 2]) / hx**2],
        ]
    )  # fmt: skip
    hess[1, 0] = hess[0, 1]
    try:
        cov = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        return np.full(2, np.inf)
    d = np.diag(cov)
    return np.where(d > 0, np.sqrt(np.abs(d)), np.inf)


def _phase_sigma(
    est: _Estimation, spec: np.ndarray, k: np.ndarray, significance: float
) -> np.ndarray:
    """1-sigma noise ``(3,)`` (rad) of each frame's phase at a known ``k``.

    Phase ``p`` is ``arg rho_p + delta`` (:func:`_angle_parameters`): ``rho_p =
    sum_r conj(a) b_p e^{-2 pi i k.r}`` has the noise variance ``var_p`` of
    :func:`_k_sigma` (``b_p`` from ``E_p = D_p - C_0``), so ``sigma(arg rho_p) =
    sqrt(var_p / 2) / |rho_p|`` (complex Gaussian noise, ``|rho_p|`` well above it); the
    common correction ``delta`` adds ``1 / (sqrt(2) significance)``. The phase's error from
    the wave vector (phases refer to pixel ``(0, 0)``) is added by the caller.
    """
    ny, nx = spec.shape[-2:]
    c0 = spec.mean(axis=0)
    a, b, fb = _overlap_pair(est, c0, spec - c0, k, mask=True)
    fa = est.otf_at(k[0], k[1]) * est.mask_at(0.0, 0.0) * est.mask_at(k[0], k[1])
    ramp = _ramp(ny, k[0])[:, None] * _ramp(nx, k[1])[None, :]
    w2 = est.win.astype(np.float64) ** 2
    n4 = float(ny * nx) ** 2
    aw2 = float(np.sum(np.abs(a.astype(np.complex128)) ** 2 * w2))
    n0 = est.noise_power(c0) * float(np.sum(fa.astype(np.float64) ** 2)) / n4
    fb2 = float(np.sum(fb.astype(np.float64) ** 2)) / n4
    out = np.empty(3)
    for p in range(3):
        rho = complex(np.vdot(a.astype(np.complex128), (b[p] * ramp).astype(np.complex128)))
        bw2 = float(np.sum(np.abs(b[p].astype(np.complex128)) ** 2 * w2))
        var = est.noise_power(spec[p] - c0) * fb2 * aw2 + n0 * bw2
        out[p] = np.sqrt(var / 2.0) / max(abs(rho), 1e-300)
    common = 1.0 / (np.sqrt(2.0) * significance) if significance > 0 else np.inf
    return np.hypot(out, common)


def _estimation(
    x: np.ndarray,
    spec: np.ndarray,
    optics: Optics,
    apodisation_width: float,
    otf_decay: float,
    pixel_otf: bool,
    dc_exclude: float,
) -> _Estimation:
    """The grids, window, OTF and spectra one acquisition's estimation shares."""
    _, ny, nx = x.shape
    cutoff = float(optics.cutoff_per_pixel)
    win = (
        _tukey(ny, int(round(apodisation_width * ny)))[:, None]
        * _tukey(nx, int(round(apodisation_width * nx)))[None, :]
    )
    return _Estimation(
        spec=np.asarray(spec, dtype=np.complex64),
        win=win,
        otf=_grid_otf((ny, nx), 1.0, cutoff, float(otf_decay), bool(pixel_otf)),
        fy=_freqs(ny, 1.0)[:, None],
        fx=_freqs(nx, 1.0)[None, :],
        cutoff=cutoff,
        decay=float(otf_decay),
        pixel=bool(pixel_otf),
        dc_exclude=float(dc_exclude),
    )


def _score_maps(
    est: _Estimation, x: np.ndarray, guess: np.ndarray | None, k_range: tuple[float, float]
) -> list[np.ndarray]:
    """Coarse score map of each angle (:func:`_coarse_scores`) on the windowed frames."""
    u_eq = _mixing_inverse(_EQUAL_STEPS)[1].astype(np.complex64)
    xw = x * est.win
    scores = []
    for a in range(3):
        xa = xw[3 * a : 3 * a + 3]
        c0w = sfft.fft2(xa.mean(axis=0), workers=_WORKERS)
        cpw = sfft.fft2(np.tensordot(u_eq, xa, axes=1), workers=_WORKERS)
        annulus = (0.05, 2.0) if guess is not None else k_range
        scores.append(_coarse_scores(c0w, cpw, est, annulus))
    return scores


def _finish(ests: Sequence[_Estimation], ks: np.ndarray, equal_steps: bool) -> list[SIMParameters]:
    """Sub-pixel ``k`` (pooled over ``ests`` when several), then each field's phases,
    modulation and significance at it (steps 3-4 of ``docs/sim.md``)."""
    n = len(ests)
    k_out = np.zeros((3, 2))
    phases = np.zeros((n, 3, 3))
    mods = np.zeros((n, 3))
    sig = np.zeros((n, 3))
    for a in range(3):
        specs = [est.spec[3 * a : 3 * a + 3] for est in ests]
        k = _refine_k_pooled(_fields(ests, specs), ks[a], iterations=2)
        k, res, _ = _phases_at(ests, specs, k, equal_steps)
        k_out[a] = k
        for i, (ph, m, s, _) in enumerate(res):
            phases[i, a], mods[i, a], sig[i, a] = ph, m, s
    return [
        SIMParameters(k=k_out, phases=phases[i], modulation=mods[i], significance=sig[i])
        for i in range(n)
    ]


def _phases_at(
    ests: Sequence[_Estimation], specs: Sequence[np.ndarray], k: np.ndarray, equal_steps: bool
) -> tuple[np.ndarray, list[tuple[np.ndarray, float, float, np.ndarray]], list[_Field]]:
    """Each field's phases at ``k`` (:func:`_per_field`), then ``k`` refined once more on the
    bands separated with the measured phases (kept if it moves less than a spectrum pixel)
    and the phases again. Returns ``(k, per-field results, the fields' bands so separated)``.
    """
    res = _per_field(ests, specs, k, equal_steps)
    measured = _fields(ests, specs, [r[3] for r in res])
    if not equal_steps:
        ny, nx = ests[0].spec.shape[-2:]
        k2 = _refine_k_pooled(measured, k, iterations=1)
        if np.hypot(*(k2 - k)) * max(ny, nx) < 1.0:
            k = k2
            res = _per_field(ests, specs, k, equal_steps)
    return k, res, measured


def _per_field(
    ests: Sequence[_Estimation], specs: Sequence[np.ndarray], k: np.ndarray, equal_steps: bool
) -> list[tuple[np.ndarray, float, float, np.ndarray]]:
    """:func:`_angle_parameters` of each field at the common ``k``."""
    return [_angle_parameters(e, sp, k, equal_steps) for e, sp in zip(ests, specs, strict=True)]
