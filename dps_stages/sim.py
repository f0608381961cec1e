"""Classical 2D-SIM reconstruction: parameter estimation and the generalised Wiener filter.

Written from the equations of Gustafsson (J. Microsc. 198, 82-87, 2000), with the parameter
estimation and the filter refinements of fairSIM (Mueller, Lachetta, Huebner, Huser, Nat.
Commun. 7, 10980, 2016) and HiFi-SIM (Wen et al., Light Sci. Appl. 10, 70, 2021).

Conventions (those of :mod:`dps_stages.simulate`)
--------------------------------------------------
Nine raw frames ``(9, y, x)``, angle-major: frame ``i`` has angle ``a = i // 3`` and phase
``p = i % 3``. The illumination is ``I_ap(r) = 1 + m_a cos(2 pi k_a . r + phi_ap)`` with
``r = (y, x)`` in camera pixels measured from the centre of camera pixel ``(0, 0)`` and
``k_a = (ky, kx)`` in cycles per camera pixel. ``k`` and ``-k`` describe the same pattern with
``phi -> -phi``; :func:`estimate_parameters` returns the sign for which the phases *increase*
from frame to frame (steps near ``+2 pi / 3``, as :func:`dps_stages.simulate.random_pattern`
draws them), so that its phases can be compared with the simulated truth directly.

Image formation (Gustafsson 2000, eq. 3)
----------------------------------------
With ``X`` the object spectrum and ``O`` the detection OTF, frame ``(a, p)`` has the spectrum

``D_ap(f) = O(f) [X(f) + (m/2) e^{i phi_ap} X(f - k_a) + (m/2) e^{-i phi_ap} X(f + k_a)]``,

a mix of three bands. For each angle the 3 x 3 mixing matrix
``M[p] = (1, e^{i phi_p} / 2, e^{-i phi_p} / 2)`` (unit modulation) is inverted,
``C = M^{-1} D``, giving ``C_0 = O X``, ``C_+1(f) = m O(f) X(f - k)`` and
``C_-1(f) = conj(C_+1(-f))`` (the frames are real).

The OTF model is the analytic OTF of :func:`dps_stages.optics.widefield_otf`,
``O_ideal(q) = (2/pi)(acos q - q sqrt(1 - q^2))`` for ``q = |f| / f_c <= 1``, ``f_c = 2 NA /
lambda``, optionally damped as fairSIM's approximate OTF, ``O = O_ideal a^q`` (``otf_decay``
``= a``, 1 by default), and multiplied by the camera pixel's transfer function
``sinc(f_y) sinc(f_x)`` (a camera pixel integrates the intensity over its area).

Parameter estimation (:func:`estimate_parameters`)
--------------------------------------------------
1. Background: the camera offset is removed by subtracting a low percentile (0.5 %) of all
   nine frames, and each frame is scaled to the common mean intensity (laser fluctuation,
   bleaching). Spectra are taken of the periodic components of the frames (see *Edges*).
2. Wave vector, coarse: the bands are separated assuming equal phase steps ``2 pi p / 3``
   (cosine-windowed frames) and the cross-correlation of the zero and +1 bands,
   ``CC(s) = sum_g conj(C_0(g) O(g)) C_+1(g + s) O(g + s)`` (one FFT), is searched for its
   peak over integer shifts ``s`` in the annulus ``k_range`` (fractions of ``f_c``, default
   0.5 to 1.0), not knowing the angle, after dividing ``|CC|`` by its median over the ring of
   the same ``|s|`` (the correlation grows towards small ``|s|``, where the OTF is large; the
   ring median removes that trend). The peak of ``|C_+1|`` alone is no good when ``O(k)`` is
   small: the object's own spectrum then outweighs the shifted zero frequency. An angle whose
   ring-normalised peak is below ``min_peak`` is looked for near the strongest angle's ``k``
   rotated by +-60 degrees (the pattern directions of 2D-SIM are 60 degrees apart), or near
   ``k_guess`` when given.
3. Wave vector, sub-pixel: with ``a = w F^-1[C_0(g) O(g + s_0)]`` and ``b = w F^-1[C_+1(f)
   O(f - s_0)]`` (``w`` a cosine edge window applied *after* the filters, ``s_0`` the current
   estimate), the band overlap ``rho(s) = sum_r conj(a) b e^{-2 pi i s.r}`` equals, by
   Parseval, ``sum_g conj(C_0(g) O(g + s_0)) C_+1(g + s) O(g + s - s_0)``; at ``s = s_0 = k``
   both sides are ``O(g) O(g + k) X(g)`` (times ``m e^{i phi}``), so ``|rho(s)|`` is largest
   at ``k`` (Cauchy-Schwarz; the norm of the modulated ``b`` does not depend on ``s``). It is
   evaluated at continuous ``s`` by matrix-multiply DFTs on local grids (Guizar-Sicairos,
   Thurman & Fienup, Opt. Lett. 33, 156, 2008: 0.2, 0.04, 0.008 px steps of the spectrum
   grid, parabolic fit), then ``s_0`` is updated and the search repeated finer. Windowing
   the frames instead of the filtered bands biases ``k`` by a few hundredths of a pixel; this
   form is unbiased (about 0.003 px on noise-free simulations).
4. Phases: each frame's own phase from the overlap of its modulated part ``E_p = D_p - C_0``
   with the zero band at ``k`` (an overlap variant of Wicker et al., Opt. Express 21, 2032,
   2013): ``rho_p = sum_r conj(a) b_p e^{-2 pi i k.r} / (|a|^2 - noise) ~ (m/2) e^{i phi_p}``,
   so unequal phase steps are measured, not assumed (``equal_steps=True`` fits one offset
   to steps of ``2 pi / 3`` instead). The bands are separated with these phases, ``k`` is
   refined once more on the cleaner band, and the overlap ``rho = m e^{i delta}`` of
   ``C_+1`` with ``C_0`` gives the modulation ``m = |rho|`` and a common phase correction
   ``delta``. The neighbourhood ``|g| < 0.1 f_c`` of each band's origin is left out of this
   overlap (unmodulated background sits there) and the noise power of ``C_0`` (measured
   beyond the OTF cutoff) is subtracted from the denominator, so that ``m`` is not biased low
   by noise. Phases are absolute (origin at pixel ``(0, 0)``), so an error ``dk`` of the wave
   vector moves them by about ``2 pi dk . r_c`` with ``r_c`` the image centre.
5. Significance: ``|rho| / std(rho)`` with ``std(rho)`` the noise of the overlap sum (from
   the noise power of ``C_+1`` beyond the cutoff). :func:`reconstruct` leaves out the side
   bands of an angle whose significance is below ``min_significance``: it falls back to a
   Wiener-deconvolved widefield image in that direction rather than invent structure from a
   pattern it cannot see.

Reconstruction (:func:`reconstruct`)
-------------------------------------
Each side band ``S_a = C_+1 / m_a`` (separated with the absolute phases, so its phase is
corrected too; ``m_a`` capped at 1) is zero-padded to the 2x grid in Fourier space, brought
back to real space, multiplied by ``exp(-i 2 pi k_a . r)`` on the 2x grid (``r`` in camera
pixels: an exact shift by the non-integer ``k_a``) and transformed again, so that ``S_a(f)``
sits at its true place ``O(f + k_a) X(f)``; ``S_-1(f) = conj(S_+1(-f))``. The bands are
combined by the generalised Wiener filter (Gustafsson 2000, eq. 8; Gustafsson et al.,
Biophys. J. 94, 4957, 2008)

``X_hat(f) = A(f) sum_j c_j A_j(f) O_j^*(f) S_j(f) / (sum_j c_j A_j(f) |O_j(f)|^2 + w^2)``,

``j`` running over the zero band of each angle and the +-1 bands, ``O_j(f) = O(f - j k_a)``
the band's shifted OTF and:

- ``c_j`` the band weights: ``band_weights="equal"`` gives every band ``c = 1`` (the
  formula as Gustafsson writes it); ``"snr"`` (default) gives the zero bands 1 and the side
  bands ``m_a^2 / 4``, the inverse of their noise variance relative to the zero band (with
  unit-modulation separation, ``C_+1`` carries ``4 / m^2`` times the zero band's noise power
  per unit of signal), i.e. the minimum-variance combination. A weakly modulated angle then
  adds little noise; with ``"equal"`` its noise is multiplied by ``1 / m``.
- ``w`` the Wiener parameter: a number, or ``"auto"``: ``w = wiener_factor sqrt(sigma^2 /
  Phi)`` with ``sigma^2`` the noise power per Fourier coefficient of the widefield (mean)
  image, measured beyond 1.1 ``f_c``, and ``Phi`` its mean object power ``(|C_0|^2 -
  sigma^2) / O^2`` over ``0.3 <= |f| / f_c <= 0.6`` (the classical Wiener noise-to-signal
  ratio), so that the regularisation follows the signal level of the data.
- ``A`` the apodisation to the extended cutoff ``f_ext = apodisation_cutoff (max_a |k_a| +
  f_c)``: ``"triangle"``: ``(1 - |f| / f_ext)^bend``; ``"cosine"``: ``cos(pi |f| / (2
  f_ext))``; ``"none"``.
- ``A_j(f) = 1 - s exp(-4 ln 2 |f - j k_a|^2 / FWHM^2)`` the OTF attenuation of fairSIM
  (``attenuation=(s, FWHM)``, FWHM in um^-1; default ``(0.99, 1.2)``, fairSIM's values;
  None: ``A_j = 1``), which damps each band near its own origin. Here it is applied to the
  side bands only (``attenuate_zero_band=True`` damps the zero band too, as fairSIM does):
  what an imperfect separation (phase error, intensity fluctuation between frames) leaks
  from the zero band into a side band sits at that band's origin, and the shift would turn
  it into stripes at the pattern frequency across the whole image (seen on the real data at
  the higher signal levels); the zero band, not attenuated, still supplies the low
  frequencies. Damping the zero band as well removes out-of-focus haze with ``"equal"``
  weights, but with ``"snr"`` weights the side bands cannot make up for it and the low
  frequencies are lost.
  ``A_j`` enters as a band weight, the same in the numerator and the denominator
  (``attenuation_mode="weight"``, default), so the signal transfer ``A sum c_j A_j |O_j|^2
  / (sum c_j A_j |O_j|^2 + w^2)`` never exceeds the apodisation. fairSIM's form
  (``attenuation_mode="otf"``: the attenuated OTF ``A_j O_j`` in the numerator, its square in
  the denominator; the data themselves carry ``O_j``) has the transfer ``A_j |O_j|^2 / (A_j^2
  |O_j|^2 + w^2)``, which rises above 1 wherever ``A_j |O_j| > w`` on the flanks of each
  notch: with the damped OTF used for the real TIRF data it was 1.2-1.4 at 0.70 and 0.85
  ``f_c`` along the pattern directions around a dip of 0.4 at ``|k| = 0.79 f_c``. That
  ripple, on three directions, rings at the pattern frequency around bright points and
  gives a honeycomb in the dark background between filaments.

Local noise suppression (``local_wiener``, default 1.5)
-------------------------------------------------------
The generalised Wiener filter amplifies noise most where the combined weight ``D(f) = sum_j
c_j A_j |O_j|^2`` falls to about ``w^2``: its noise transfer ``A^2 V / (D + w^2)^2`` (``V =
sum_j c_j A_j^2 |O_j|^2``, about ``D``) peaks there. With low modulation and a damped OTF
(the real TIRF data: ``m`` 0.23-0.51, ``otf_decay=0.1``) that is an annulus around ``|k|``
(0.45-1.35 ``f_c``, peak near 0.75 ``f_c``, about 125 times the transfer at zero frequency,
six-fold modulated), and the shot noise it passes shows as a honeycomb-like grain of that
period in the dark background. No linear filter removes it without removing the signal of
those frequencies too (it costs SSIM and resolution: see benchmarks/RESULTS.md). The output
is therefore split into a smooth estimate ``b`` (the same filter with the Wiener parameter
``local_wiener_smooth`` times larger) and the detail ``d = x - b`` (the difference of the two
filters, ``F_d = A (1/(D + w^2) - 1/(D + (s w)^2))``), and the detail is kept in proportion
to its local signal-to-noise ratio, the local linear minimum-mean-square-error (adaptive
Wiener) estimate of Lee (IEEE Trans. Pattern Anal. Mach. Intell. 2, 165, 1980) and Kuan et
al. (ibid. 7, 165, 1985, signal-dependent noise):

``x_out(r) = b(r) + max(0, 1 - kappa nu(r) / <d^2>(r)) d(r)``,

``<d^2>`` the local mean of ``d^2`` (Gaussian window of ``local_wiener_sigma`` output
pixels) and ``nu(r) = s^2(r) G_d`` the variance that the frames' noise gives ``d``: ``G_d =
(N / M^2) sum_f |F_d(f)|^2 V'(f)`` by Parseval (``N``, ``M`` the pixel counts of the camera
and the 2x grid, ``V'`` the noise weights of the bands with the actual mixing rows), and
``s^2(r)`` the frames' local white-noise variance, measured beyond 1.1 ``f_c`` where they
hold no signal (shot noise makes it follow the brightness). ``kappa = local_wiener``;
None or 0 turns the step off (the plain Wiener output). Where structure stands out of the
noise the detail is kept whole; in the dark background, where ``<d^2>`` is about ``nu``,
it is dropped and the smooth estimate remains. Noise-free frames give ``nu = 0`` and the
plain output.

Edges: the FFT treats the image as periodic. The zero bands are built from the periodic
components of the frames (periodic plus smooth decomposition, Moisan, J. Math. Imaging Vis.
39, 161, 2011: ``u = p + s``, ``s`` the smooth image whose discrete Laplacian equals that of
the jumps of ``u`` across the border, so that ``p`` has no border discontinuity and no
leakage cross in its spectrum), and the mean smooth component is added back to the output,
interpolated. The side bands are built from the frames tapered to zero over ``edge`` camera
pixels (raised cosine): the smooth components differ from phase to phase (they carry the
pattern at the border) and would put spurious low frequencies into the side bands, which the
shift turns into stripes at the pattern frequency; the taper also keeps the multiplication
by a non-integer ramp from creating a jump at the border. Within ``edge`` pixels of the
border the output therefore tends to the (deconvolved) widefield resolution.

Background: a low percentile of the frames (camera offset) is subtracted before anything
else (:func:`preprocess`); any remaining smooth background stays in the zero band.

Output grid: pixel ``j`` of the 2x image is centred at camera coordinate ``j / 2 - 1/4``
(each camera pixel splits into 2 x 2 finer pixels, as ``truth_2x`` of the simulation). The
output is not clipped: the Wiener filter and the apodisation may leave small negative values
(ringing around bright structures, and noise where there is no signal); its scale is that of
the background-subtracted frames (the widefield mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from .optics import Optics

__all__ = [
    "SIMParameters",
    "auto_wiener",
    "estimate_parameters",
    "fourier_upsample",
    "otf_values",
    "periodic_smooth_decomposition",
    "preprocess",
    "reconstruct",
    "reconstruct_stack",
]

_WORKERS = -1
_TWO_PI = 2.0 * np.pi
_EQUAL_STEPS = _TWO_PI * np.arange(3) / 3.0


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SIMParameters:
    """Illumination parameters of a 3-angle x 3-phase 2D-SIM acquisition.

    ``I_ap(r) = 1 + m_a cos(2 pi k_a . r + phi_ap)``, ``r = (y, x)`` in camera pixels from the
    centre of pixel ``(0, 0)`` (the convention of :class:`dps_stages.simulate.SIMPattern`).

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
    def angles(self) -> np.ndarray:
        """Pattern angles ``atan2(ky, kx)`` in rad, shape (3,)."""
        return np.arctan2(self.k[:, 0], self.k[:, 1])

    @property
    def frequencies(self) -> np.ndarray:
        """``|k_a|`` in cycles per camera pixel, shape (3,)."""
        return np.hypot(self.k[:, 0], self.k[:, 1])

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


def _mixing_inverse(phases: np.ndarray) -> np.ndarray:
    """``M^{-1}`` for ``M[p] = (1, e^{i phi_p}/2, e^{-i phi_p}/2)``: rows give C_0, C_+1, C_-1."""
    e = np.exp(1j * np.asarray(phases, dtype=np.float64))
    mix = np.stack([np.ones(3), e / 2.0, np.conj(e) / 2.0], axis=1)
    return np.linalg.inv(mix)


def _wrapped_index(n: int) -> np.ndarray:
    """Index of ``-f`` for each FFT index of an ``n`` grid."""
    return (-np.arange(n)) % n


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

    def otf_at(self, ky: float, kx: float) -> np.ndarray:
        """``O(f + k)`` on the grid."""
        return otf_values(self.fy + ky, self.fx + kx, self.cutoff, decay=self.decay,
                          pixel=self.pixel)  # fmt: skip

    def mask_at(self, ky: float, kx: float) -> np.ndarray:
        """1 where ``|f + k| >= dc_exclude f_c`` (away from a band origin), else 0."""
        r0 = self.dc_exclude * self.cutoff
        return (((self.fy + ky) ** 2 + (self.fx + kx) ** 2) >= r0 * r0).astype(np.float32)

    def noise_power(self, spec: np.ndarray) -> float:
        """Mean ``|spec|^2`` beyond 1.1 f_c (noise only for a band-limited image); 0 if none."""
        q = np.hypot(self.fy, self.fx) / self.cutoff
        out = (q > 1.1) & (np.abs(self.fy) < 0.45) & (np.abs(self.fx) < 0.45)
        if out.sum() < 64:
            return 0.0
        return float(np.mean(np.abs(spec[out]) ** 2))


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


def _refine_k(
    est: _Estimation, c0: np.ndarray, cp: np.ndarray, k0: np.ndarray, iterations: int = 2
) -> np.ndarray:
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
    """
    ny, nx = c0.shape
    centre = np.asarray(k0, dtype=np.float64)
    for it in range(iterations):
        a, b, _ = _overlap_pair(est, c0, cp, centre, mask=False)
        p = (np.conj(a) * b).astype(np.complex64)
        # (step, half-width in steps) of the successive grids, in spectrum pixels
        span = ((0.2, 6), (0.04, 5), (0.008, 5)) if it == 0 else ((0.01, 5), (0.002, 5))
        for step, half in span:
            off = np.arange(-half, half + 1) * step
            sy = centre[0] + off / ny
            sx = centre[1] + off / nx
            r = np.abs(_dft_grid(p, sy, sx))
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
    ny, nx = c0.shape
    a = sfft.ifft2(c0 * est.otf, workers=_WORKERS)
    b = sfft.ifft2(cp * est.otf, workers=_WORKERS)
    cc = np.abs(sfft.fft2(np.conj(a) * b, workers=_WORKERS))
    radius = np.hypot(est.fy * ny, est.fx * nx)
    q = np.hypot(est.fy, est.fx) / est.cutoff
    ann = (q >= k_range[0]) & (q <= k_range[1])
    if not ann.any():
        raise ValueError(f"the search annulus {k_range} (x f_c) holds no frequency")
    ring = np.rint(radius[ann]).astype(np.int64)
    vals = cc[ann]
    order = np.lexsort((vals, ring))
    ring_s, vals_s = ring[order], vals[order]
    starts = np.flatnonzero(np.r_[True, ring_s[1:] != ring_s[:-1]])
    counts = np.diff(np.r_[starts, ring_s.size])
    med_of = np.zeros(int(ring_s.max()) + 1)
    med_of[ring_s[starts]] = vals_s[starts + counts // 2]  # (upper) median of each ring
    score = np.zeros_like(cc)
    score[ann] = vals / np.maximum(med_of[ring], 1e-30)
    return score


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
    """Integer-pixel wave vectors ``(3, 2)`` from the score maps (see the module doc)."""
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
    k_guess: np.ndarray | Sequence[Sequence[float]] | None = None,
    k_range: tuple[float, float] = (0.5, 1.0),
    search_radius: float = 3.0,
    min_peak: float = 8.0,
    equal_steps: bool = False,
    dc_exclude: float = 0.1,
    apodisation_width: float = 0.125,
    otf_decay: float = 1.0,
    pixel_otf: bool = True,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
) -> SIMParameters:
    """Estimate the illumination pattern (wave vectors, phases, modulation) from raw frames.

    See the module docstring for the method (band separation, coarse peak search in an
    annulus, sub-pixel maximisation of the band overlap, per-frame phases from the overlap
    with the zero band, modulation from the final overlap).

    Parameters
    ----------
    frames
        ``(9, y, x)`` raw frames, angle-major (camera offset included or not).
    optics
        Wavelength, NA and camera pixel size (they set the OTF cutoff in cycles per pixel).
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
    background_percentile, normalise_intensity
        See :func:`preprocess`.

    Returns
    -------
    SIMParameters
    """
    x = preprocess(
        frames, background_percentile=background_percentile, normalise_intensity=normalise_intensity
    )
    return _estimate(
        x,
        optics,
        k_guess=k_guess,
        k_range=k_range,
        search_radius=search_radius,
        min_peak=min_peak,
        equal_steps=equal_steps,
        dc_exclude=dc_exclude,
        apodisation_width=apodisation_width,
        otf_decay=otf_decay,
        pixel_otf=pixel_otf,
    )


def _estimate(
    x: np.ndarray,
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
    """:func:`estimate_parameters` on frames already through :func:`preprocess`."""
    x = np.asarray(x, dtype=np.float32)
    _, ny, nx = x.shape
    cutoff = float(optics.cutoff_per_pixel)
    win = (
        _tukey(ny, int(round(apodisation_width * ny)))[:, None]
        * _tukey(nx, int(round(apodisation_width * nx)))[None, :]
    )
    xp, _ = periodic_smooth_decomposition(x)
    est = _Estimation(
        spec=sfft.fft2(xp, workers=_WORKERS, axes=(-2, -1)).astype(np.complex64),
        win=win,
        otf=_grid_otf((ny, nx), 1.0, cutoff, float(otf_decay), bool(pixel_otf)),
        fy=_freqs(ny, 1.0)[:, None],
        fx=_freqs(nx, 1.0)[None, :],
        cutoff=cutoff,
        decay=float(otf_decay),
        pixel=bool(pixel_otf),
        dc_exclude=float(dc_exclude),
    )
    guess = None if k_guess is None else np.asarray(k_guess, dtype=np.float64).reshape(3, 2)
    u_eq = _mixing_inverse(_EQUAL_STEPS)[1].astype(np.complex64)
    # coarse search on the windowed frames
    xw = x * win
    scores = []
    for a in range(3):
        xa = xw[3 * a : 3 * a + 3]
        c0w = sfft.fft2(xa.mean(axis=0), workers=_WORKERS)
        cpw = sfft.fft2(np.tensordot(u_eq, xa, axes=1), workers=_WORKERS)
        annulus = (0.05, 2.0) if guess is not None else k_range
        scores.append(_coarse_scores(c0w, cpw, est, annulus))
    ks = _coarse_k(scores, guess, min_peak, search_radius)

    k_out = np.zeros((3, 2))
    phases = np.zeros((3, 3))
    mods = np.zeros(3)
    sig = np.zeros(3)
    for a in range(3):
        spec = est.spec[3 * a : 3 * a + 3]
        c0 = spec.mean(axis=0)
        cp = np.tensordot(u_eq, spec, axes=1)
        k = _refine_k(est, c0, cp, ks[a], iterations=2)
        ph, m, s, raw_ph = _angle_parameters(est, spec, k, equal_steps)
        if equal_steps:
            k_out[a], phases[a], mods[a], sig[a] = k, ph, m, s
            continue
        # once more on the band separated with the measured phases
        cp = np.tensordot(_mixing_inverse(raw_ph)[1].astype(np.complex64), spec, axes=1)
        k2 = _refine_k(est, c0, cp, k, iterations=1)
        if np.hypot(*(k2 - k)) * max(ny, nx) < 1.0:
            k = k2
            ph, m, s, _ = _angle_parameters(est, spec, k, equal_steps)
        k_out[a], phases[a], mods[a], sig[a] = k, ph, m, s
    return SIMParameters(k=k_out, phases=phases, modulation=mods, significance=sig)


# --------------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------------
def _apodisation(
    fy: np.ndarray, fx: np.ndarray, kind: str, f_ext: float, bend: float
) -> np.ndarray | None:
    if kind == "none":
        return None
    r = np.sqrt(fy * fy + fx * fx) / np.float32(f_ext)
    rc = np.minimum(r, np.float32(1.0))
    if kind == "triangle":
        out = (1.0 - rc) ** np.float32(bend) if bend != 1.0 else 1.0 - rc
    elif kind == "cosine":
        out = np.cos(np.float32(np.pi / 2) * rc)
    else:
        raise ValueError(f"apodisation must be 'triangle', 'cosine' or 'none'; got {kind!r}")
    return out.astype(np.float32)


def _pad_axis(spec: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Zero-pad an unshifted spectrum along ``axis`` to ``m`` samples (Nyquist split in two)."""
    spec = np.moveaxis(spec, axis, 0)
    n = spec.shape[0]
    out = np.zeros((m,) + spec.shape[1:], dtype=np.complex64)
    h = n // 2
    if n % 2:
        out[: h + 1] = spec[: h + 1]
        out[m - h :] = spec[h + 1 :]
    else:
        out[:h] = spec[:h]
        if h > 1:
            out[m - h + 1 :] = spec[h + 1 :]
        out[h] = 0.5 * spec[h]
        out[m - h] += 0.5 * spec[h]
    return np.moveaxis(out, 0, axis)


def fourier_upsample(image: np.ndarray, factor: int = 2, *, centred: bool = True) -> np.ndarray:
    """Band-limited (Fourier, zero-padding) interpolation of a 2D image by ``factor``, float32.

    The spectrum is zero-padded to ``factor`` times the size (an even-sized axis' Nyquist
    line split equally between the positive and the negative frequency, so the interpolant is
    real) and multiplied by ``factor^2`` so that intensities are kept. With ``centred`` the
    output pixel ``j`` sits at input coordinate ``(j + 1/2) / factor - 1/2`` (each input pixel
    splits into ``factor x factor`` finer pixels: the grid of :func:`reconstruct` and of the
    simulation's ``truth_2x``); otherwise at ``j / factor`` (input samples are kept exactly).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"fourier_upsample needs a 2D image; got shape {img.shape}")
    ny, nx = img.shape
    my, mx = factor * ny, factor * nx
    spec = sfft.fft2(img, workers=_WORKERS)
    out = _pad_axis(_pad_axis(spec, my, 0), mx, 1)
    if centred:
        delta = (1.0 - factor) / (2.0 * factor)
        out *= np.exp(2j * np.pi * delta * _freqs(my, 1.0 / factor))[:, None].astype(np.complex64)
        out *= np.exp(2j * np.pi * delta * _freqs(mx, 1.0 / factor))[None, :].astype(np.complex64)
    res = sfft.ifft2(out, workers=_WORKERS).real * np.float32(factor * factor)
    return res.astype(np.float32)


def _pad_to(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-pad a full (unshifted) spectrum to a larger grid, dropping the Nyquist lines."""
    ny, nx = spec.shape
    my, mx = shape
    out = np.zeros((my, mx), dtype=np.complex64)
    hy, hx = (ny - 1) // 2, (nx - 1) // 2
    ys = np.r_[0 : hy + 1, ny - hy : ny]
    xs = np.r_[0 : hx + 1, nx - hx : nx]
    yd = np.r_[0 : hy + 1, my - hy : my]
    xd = np.r_[0 : hx + 1, mx - hx : mx]
    out[np.ix_(yd, xd)] = spec[np.ix_(ys, xs)]
    return out


def _auto_wiener(xp: np.ndarray, cutoff: float, decay: float, pixel: bool) -> float:
    """``sqrt(sigma^2 / Phi)``: noise-to-signal amplitude ratio of the widefield spectrum.

    ``sigma^2`` is the noise power per Fourier coefficient of the mean of the nine frames
    (measured beyond ``1.1 f_c``, where the image holds no signal) and ``Phi`` the mean object
    power ``(|C_0(f)|^2 - sigma^2) / O(f)^2`` over the mid band ``0.3 <= |f| / f_c <= 0.6``.
    """
    ny, nx = xp.shape[-2:]
    c0 = sfft.fft2(xp.mean(axis=0), workers=_WORKERS)
    fy = _freqs(ny, 1.0)[:, None]
    fx = _freqs(nx, 1.0)[None, :]
    q = np.hypot(fy, fx) / cutoff
    noise_region = (q > 1.1) & (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)
    if noise_region.sum() < 64:
        return 0.05
    sigma2 = float(np.mean(np.abs(c0[noise_region]) ** 2))
    band = (q >= 0.3) & (q <= 0.6)
    otf = _grid_otf((ny, nx), 1.0, cutoff, decay, pixel)
    phi = float(np.mean((np.abs(c0[band]) ** 2 - sigma2) / otf[band] ** 2))
    if not phi > 0:
        return 1.0
    return float(np.sqrt(sigma2 / phi))


def auto_wiener(frames: np.ndarray, optics: Optics, *, otf_decay: float = 1.0,
                pixel_otf: bool = True, **preprocess_kw: Any) -> float:  # fmt: skip
    """The data-driven Wiener parameter of :func:`reconstruct` (before ``wiener_factor``).

    ``w_0 = sqrt(sigma^2 / Phi)`` with ``sigma^2`` the noise power per Fourier coefficient of
    the widefield (mean) image, measured beyond 1.1 times the OTF cutoff, and ``Phi`` the
    mean object power ``(|C_0|^2 - sigma^2) / O^2`` over ``0.3 <= |f| / f_c <= 0.6``: the
    classical Wiener ratio of noise to signal power (the generalised Wiener filter of
    Gustafsson 2000 with ``w^2`` set to it, evaluated in the middle of the passband).
    """
    x = preprocess(_check_frames(frames), **preprocess_kw)
    xp, _ = periodic_smooth_decomposition(x)
    return _auto_wiener(xp, float(optics.cutoff_per_pixel), float(otf_decay), bool(pixel_otf))


def _local_noise_variance(xp: np.ndarray, cutoff: float, sigma: float = 2.0) -> np.ndarray | None:
    """Local variance of the frames' white noise per camera pixel, ``(y, x)`` float32.

    The sum of the nine (periodic) frames is high-passed to ``|f| > 1.1 f_c`` (beyond the
    OTF no signal is left, only noise), squared, smoothed by a Gaussian of ``sigma`` camera
    pixels and divided by ``9`` times the fraction of the spectrum kept: ``s^2(r)`` with
    ``E[n_p(r)^2] = s^2(r)`` for each frame. Shot noise makes it follow the local brightness.
    None when the region beyond the cutoff is too small to measure it (under-sampled data).
    """
    ny, nx = xp.shape[-2:]
    fy = _freqs(ny, 1.0)[:, None]
    fx = (np.arange(nx // 2 + 1, dtype=np.float32) / np.float32(nx))[None, :]
    keep = np.hypot(fy, fx) > np.float32(1.1 * cutoff)
    frac = (keep[:, 0].sum() + 2.0 * keep[:, 1:].sum()) / float(ny * nx)  # of the full grid
    if frac * ny * nx < 256:
        return None
    hp = sfft.irfft2(sfft.rfft2(xp.sum(axis=0), workers=_WORKERS) * keep, s=(ny, nx),
                     workers=_WORKERS)  # fmt: skip
    v = ndi.gaussian_filter((hp * hp).astype(np.float32), sigma, mode="reflect")
    return (v / np.float32(9.0 * frac)).astype(np.float32)


def _upsample2(v: np.ndarray) -> np.ndarray:
    """Pixel replication of a smooth map to the 2x grid."""
    return np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)


def reconstruct(
    frames: np.ndarray,
    optics: Optics,
    *,
    params: SIMParameters | None = None,
    wiener: float | str = "auto",
    wiener_factor: float = 3.0,
    apodisation: str = "triangle",
    apodisation_cutoff: float = 1.0,
    apodisation_bend: float = 0.5,
    attenuation: tuple[float, float] | None = (0.99, 1.2),
    attenuate_zero_band: bool = False,
    attenuation_mode: str = "weight",
    otf_decay: float = 1.0,
    pixel_otf: bool = True,
    band_weights: str = "snr",
    local_wiener: float | None = 1.5,
    local_wiener_smooth: float = 4.0,
    local_wiener_sigma: float = 4.0,
    min_modulation: float = 0.2,
    min_significance: float = 10.0,
    edge: int = 16,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
    **estimate_kw: Any,
) -> tuple[np.ndarray, SIMParameters]:
    """2D-SIM reconstruction on the 2x grid by the generalised Wiener filter (Gustafsson 2000).

    See the module docstring for the formulas. The parameters are estimated from the frames
    (:func:`estimate_parameters`, extra keywords go to it) unless ``params`` is given.

    Parameters
    ----------
    frames
        ``(9, y, x)`` raw frames, angle-major.
    optics
        Wavelength, NA, camera pixel size.
    params
        Illumination parameters; estimated when None.
    wiener, wiener_factor
        Wiener parameter ``w`` (the denominator gets ``w^2``; larger is smoother), or
        ``"auto"``: ``wiener_factor`` times :func:`auto_wiener` (the data's noise-to-signal
        amplitude ratio), which adapts the regularisation to the photon level.
    apodisation, apodisation_cutoff, apodisation_bend
        ``"triangle"`` (``(1 - |f|/f_ext)^bend``), ``"cosine"`` or ``"none"``; ``f_ext =
        apodisation_cutoff (max_a |k_a| + f_c)``.
    attenuation, attenuate_zero_band
        ``(strength, fwhm)`` of the OTF attenuation, FWHM in cycles per um (e.g.
        ``(0.99, 1.2)``, fairSIM's values; None: none), applied to the side bands, and to the
        zero band as well with ``attenuate_zero_band`` (fairSIM applies it to all bands).
    attenuation_mode
        ``"weight"`` (default): the attenuation weights each band in the numerator and the
        denominator alike (transfer at most the apodisation, no ripple around ``|k|``);
        ``"otf"``: fairSIM's attenuated OTF (``A`` in the numerator, ``A^2`` in the
        denominator; transfer above 1 beside the notches, ringing at the pattern frequency).
    otf_decay, pixel_otf
        OTF model (see :func:`otf_values`).
    band_weights
        ``"snr"`` (side bands weighted by ``m^2 / 4``, minimum variance) or ``"equal"``.
    local_wiener, local_wiener_smooth, local_wiener_sigma
        Local noise suppression (module docstring): the detail between the output and a
        smooth estimate (Wiener parameter ``local_wiener_smooth`` times larger) is kept in
        proportion ``max(0, 1 - local_wiener nu / <d^2>)`` to its local signal-to-noise ratio
        (Lee 1980), ``<d^2>`` over a Gaussian window of ``local_wiener_sigma`` output pixels.
        None or 0: off (the plain generalised Wiener output).
    min_modulation
        With ``"equal"`` weights the side bands are divided by ``max(m_a, min_modulation)``
        (noise guard); unused with ``"snr"`` (the weight ``m^2 / 4`` cancels the division).
    min_significance
        Angles whose band-overlap significance is below this contribute their zero band only.
    edge
        Width (camera pixels) of the raised-cosine taper of the frames the side bands are
        built from (at least 1, at most a quarter of the image side).
    background_percentile, normalise_intensity
        See :func:`preprocess`.

    Returns
    -------
    (image, params)
        float32 ``(2y, 2x)`` image (not clipped; see the module docstring for its grid and
        scale) and the parameters used.
    """
    x = preprocess(
        _check_frames(frames),
        background_percentile=background_percentile,
        normalise_intensity=normalise_intensity,
    )
    if params is None:
        params = _estimate(x, optics, otf_decay=otf_decay, pixel_otf=pixel_otf, **estimate_kw)
    elif estimate_kw:
        raise TypeError(f"unexpected keyword arguments {sorted(estimate_kw)} with params given")
    _, ny, nx = x.shape
    my, mx = 2 * ny, 2 * nx
    hx = mx // 2 + 1
    cutoff = float(optics.cutoff_per_pixel)
    decay = float(otf_decay)
    pix = bool(pixel_otf)

    # periodic + smooth decomposition (Moisan 2011): bands from the periodic parts
    xp, smooth = periodic_smooth_decomposition(x)

    att = None  # (strength, FWHM in cycles per camera pixel)
    if attenuation is not None:
        strength, fwhm_um = attenuation
        att = (float(strength), float(fwhm_um) * float(optics.pixel_size) / 1000.0)

    # O A on the 1x grid (each band in its own coordinates): side bands, zero band
    o1 = _grid_otf((ny, nx), 1.0, cutoff, decay, pix)
    a1 = None
    if att is not None:
        a1 = _attenuation(_freqs(ny, 1.0)[:, None], _freqs(nx, 1.0)[None, :], *att)
    w_side = o1 if a1 is None else o1 * a1
    w_zero = w_side if attenuate_zero_band else o1

    # half spectrum (rfft layout) of the 2x grid, in cycles per camera pixel
    fy2 = _freqs(my, 0.5)[:, None]
    fx2 = (np.arange(hx, dtype=np.float32) / np.float32(mx * 0.5))[None, :]

    if attenuation_mode not in ("weight", "otf"):
        raise ValueError(f"attenuation_mode must be 'weight' or 'otf'; got {attenuation_mode!r}")
    square_att = attenuation_mode == "otf"

    def weight_at(ky: float, kx: float, attenuate: bool) -> tuple[np.ndarray, np.ndarray]:
        """Denominator term of a band whose origin sits at ``f = (ky, kx)``: ``A O^2``
        (``attenuation_mode="weight"``) or ``A^2 O^2`` (``"otf"``); and its noise term
        ``A^2 O^2``."""
        gy, gx = fy2 - np.float32(ky), fx2 - np.float32(kx)
        o = otf_values(gy, gx, cutoff, decay=decay, pixel=pix)
        o2 = o * o
        v2 = o2  # noise term A^2 O^2 of the band (per unit band weight)
        if att is not None and attenuate:
            a = _attenuation(gy, gx, *att)
            v2 = o2 * (a * a)
            o2 = v2 if square_att else o2 * a
        return o2, v2

    # zero bands: row 0 of each angle's mixing inverse is real
    w0 = np.concatenate([_mixing_inverse(params.phases[a])[0].real for a in range(3)])
    c0 = sfft.fft2(np.tensordot(w0.astype(np.float32), xp, axes=1), workers=_WORKERS) * w_zero
    num = _pad_to(c0, (my, mx))[:, :hx]
    den, noise = weight_at(0.0, 0.0, attenuate_zero_band)
    # den: sum of the bands' A O^2; noise: variance of num per unit frame-noise variance and
    # camera pixel (white noise), divided by the number of pixels
    den = 3.0 * den
    noise = np.float32(np.sum(w0 * w0)) * noise

    if band_weights not in ("snr", "equal"):
        raise ValueError(f"band_weights must be 'snr' or 'equal'; got {band_weights!r}")
    # side bands from the frames tapered to zero at the border (see the module doc, *Edges*)
    edge = int(min(max(edge, 1), ny // 4, nx // 4))
    xs = x * (_tukey(ny, edge)[:, None] * _tukey(nx, edge)[None, :])
    iy_neg = _wrapped_index(my)
    ix_neg = _wrapped_index(mx)[:hx]
    used = []
    for a in range(3):
        if not params.significance[a] >= min_significance:
            continue
        used.append(a)
        u = _mixing_inverse(params.phases[a])[1]
        m = min(float(params.modulation[a]), 1.0)  # a modulation above 1 is unphysical
        if band_weights == "snr":  # c = m^2 / 4; the band C_+1 / m times c
            c, scale = m * m / 4.0, m / 4.0
        else:
            c, scale = 1.0, 1.0 / max(m, float(min_modulation))
        if c == 0.0:
            continue
        cp_real = np.tensordot((u * scale).astype(np.complex64), xs[3 * a : 3 * a + 3], axes=1)
        cp = sfft.fft2(cp_real, workers=_WORKERS) * w_side
        band = sfft.ifft2(_pad_to(cp, (my, mx)), workers=_WORKERS, overwrite_x=True)
        ky, kx = params.k[a]
        band *= _ramp(my, ky, 0.5)[:, None]
        band *= _ramp(mx, kx, 0.5)[None, :]
        s_plus = sfft.fft2(band, workers=_WORKERS, overwrite_x=True)
        # S_+1(f) = C_+1(f + k) (OTF O(f + k)); S_-1(f) = conj(S_+1(-f)) (OTF O(f - k))
        num += s_plus[:, :hx]
        num += np.conj(s_plus[np.ix_(iy_neg, ix_neg)])
        dm, vm = weight_at(-ky, -kx, True)
        dp, vp = weight_at(ky, kx, True)
        den += np.float32(c) * (dm + dp)
        noise += np.float32(scale * scale * np.sum(np.abs(u) ** 2)) * (vm + vp)

    f_ext = cutoff + (float(max(params.frequencies[used])) if used else 0.0)
    if isinstance(wiener, str):
        if wiener != "auto":
            raise ValueError(f"wiener must be a number or 'auto'; got {wiener!r}")
        wiener = wiener_factor * _auto_wiener(xp, cutoff, decay, pix)
    filt = np.float32(4.0) / (den + np.float32(float(wiener) ** 2))  # x4: the 2x grid's FFT scale
    apo = _apodisation(fy2, fx2, apodisation, apodisation_cutoff * f_ext, apodisation_bend)
    if apo is not None:
        filt *= apo
    # output pixel j at camera coordinate j/2 - 1/4
    shift = np.exp(-0.5j * np.pi * fy2).astype(np.complex64) * np.exp(-0.5j * np.pi * fx2).astype(
        np.complex64
    )
    # the smooth component, interpolated (not filtered)
    spec_s = _pad_to(sfft.fft2(smooth.mean(axis=0), workers=_WORKERS), (my, mx))[:, :hx] * 4.0
    frame_var = None
    if local_wiener is not None and local_wiener > 0:
        frame_var = _local_noise_variance(xp, cutoff)
    if frame_var is None:
        spec = (num * filt + spec_s) * shift
        out = sfft.irfft2(spec, s=(my, mx), workers=_WORKERS)
        return out.astype(np.float32, copy=False), params
    # local Wiener step (see the module docstring, *Local noise suppression*)
    w2s = np.float32((float(local_wiener_smooth) * float(wiener)) ** 2)
    filt_s = np.float32(4.0) / (den + w2s)
    if apo is not None:
        filt_s *= apo
    filt_d = filt - filt_s
    # variance of the detail image per unit frame-noise variance: Parseval over the full
    # spectrum (the rfft half counts twice, except its first and, for even mx, last column)
    col = np.full(hx, 2.0, dtype=np.float64)
    col[0] = 1.0
    if mx % 2 == 0:
        col[-1] = 1.0
    g_d = float(np.sum((filt_d * filt_d * noise).astype(np.float64) @ col)) * ny * nx
    g_d /= float(my * mx) ** 2
    base = sfft.irfft2((num * filt_s + spec_s) * shift, s=(my, mx), workers=_WORKERS)
    detail = sfft.irfft2(num * filt_d * shift, s=(my, mx), workers=_WORKERS)
    sig = float(local_wiener_sigma)
    local_var = ndi.gaussian_filter(detail * detail, sig, mode="reflect")
    nu = np.float32(float(local_wiener) * g_d) * _upsample2(frame_var)
    alpha = np.clip(1.0 - nu / np.maximum(local_var, np.float32(1e-30)), 0.0, 1.0)
    out = base + alpha * detail
    return out.astype(np.float32, copy=False), params


def reconstruct_stack(
    raw: np.ndarray, optics: Optics, **kw: Any
) -> tuple[np.ndarray, list[SIMParameters]]:
    """:func:`reconstruct` for each of ``n`` acquisitions ``(n, 9, y, x)`` -> ``(n, 2y, 2x)``.

    ``(9, y, x)`` is accepted as ``n = 1``. Keywords go to :func:`reconstruct`; a ``params``
    keyword may be one :class:`SIMParameters` for all or a sequence of ``n``.
    """
    arr = np.asarray(raw)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 9:
        raise ValueError(
            f"raw 2D-SIM stack must have shape (n, 9, y, x) or (9, y, x); got shape {np.shape(raw)}"
        )
    params = kw.pop("params", None)
    if params is None or isinstance(params, SIMParameters):
        plist = [params] * arr.shape[0]
    else:
        plist = list(params)
        if len(plist) != arr.shape[0]:
            raise ValueError(f"got {len(plist)} parameter sets for {arr.shape[0]} acquisitions")
    out = np.empty((arr.shape[0], 2 * arr.shape[2], 2 * arr.shape[3]), dtype=np.float32)
    used: list[SIMParameters] = []
    for i in range(arr.shape[0]):
        out[i], p = reconstruct(arr[i], optics, params=plist[i], **kw)
        used.append(p)
    return out, used
