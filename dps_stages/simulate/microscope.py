"""A microscope unlike the ideal one: attenuated and aberrated OTF, haze, randomisation.

The default simulator images through the ideal, aberration-free OTF with no background. This
module holds what a real 2D-SIM microscope adds (issue 12, item 2), each off by default:

OTF (:func:`microscope_otf`)
    ``O(f) = O_pupil(f) a^(min(f / f_c, 1))``, ``f_c = 2 NA / lambda``: the attenuation model
    of fairSIM (Mueller et al., Nat. Commun. 7, 10980, 2016) and HiFi-SIM (Wen et al., Light
    Sci. Appl. 10, 70, 2021), ``a = otf_attenuation`` in ``(0, 1]`` (1: none), the same as
    ``otf_decay`` of :func:`dps_stages.sim.reconstruct` and the ``attenuation`` of the
    calibration. ``O_pupil`` is the analytic OTF of the circular pupil
    (:func:`dps_stages.optics.widefield_otf`) or, with Zernike coefficients, the OTF of
    :func:`dps_stages.optics.zernike_psf` (pupil phase ``2 pi sum_j c_j Z_j``, ``c_j`` in
    waves rms, Noll indices; pupil radius ``NA pixel / lambda`` cycles per fine pixel),
    computed uncropped on a pupil grid that is a multiple of the image grid and folded onto
    it (the periodised PSF). ``O(0) = 1``.
Haze (:func:`haze_background`)
    Out-of-focus light: a smooth background ``H`` added to all nine frames alike (the pattern
    is blurred out of focus, so haze is not modulated), with
    ``mean(H) = haze * mean(W)``, ``W`` the in-focus widefield image (normalised as the
    frames), and spatial scale ``haze_scale`` nm, the half-width at half-maximum of the
    autocorrelation of ``H`` (the ``scale`` of the calibration, in um there). ``"field"``:
    ``H ~ clip(1 + c g, 0)``, ``g`` white noise low-passed by a Gaussian of
    ``sigma = haze_scale / (2 sqrt(ln 2))`` (autocorrelation ``exp(-r^2 / (4 sigma^2))``,
    1/2 at ``haze_scale``), standardised, ``c = haze_contrast``; ``"object"``: the object
    itself blurred by that Gaussian (an out-of-focus copy of the structure).
SIM-passband truth (:func:`sim_passband_truth`)
    ``S_2[h_sr * x]``: the object seen through the ideal SIM passband (the srPSF of DPS,
    :func:`dps_stages.optics.sr_psf`, the Airy pattern of ``m_f NA``), binned to the 2x grid.
Randomisation (:func:`randomise_microscope`)
    Per image ``v' = v (1 + s u)`` (relative keys), ``v' = v + s u`` (absolute keys, rad) or
    ``v' = v e^{s u}`` (log keys: the photon count of every signal level, a factor within
    ``e^{+-s}``), ``u ~ U(-1, 1)`` drawn in a fixed order (:data:`RANDOMISE_KEYS`) from a
    child generator of the image's generator, so that the object, pattern and noise of the
    existing stream are untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..optics import Optics, otf_from_psf, widefield_otf, zernike_psf
from ..physics import Binning, Blur

__all__ = [
    "HAZE_KINDS",
    "CALIBRATED_RANDOMISE",
    "RANDOMISE_KEYS",
    "covering_levels",
    "haze_background",
    "microscope_blur",
    "microscope_otf",
    "photon_spread",
    "randomise_microscope",
    "sim_passband_truth",
    "simulate_kwargs_from_calibration",
]

#: Keys of ``randomise``: ``(kind, number of draws)``; kind "relative" (``v (1 + s u)``) or
#: "absolute" (``v + s u``, radians). The slots are drawn in this order, always all of them.
RANDOMISE_KEYS: dict[str, tuple[str, int]] = {
    "modulation": ("relative", 3),  # per angle
    "frequency": ("relative", 3),  # per angle, |k_a|
    "angle": ("absolute", 3),  # per angle, rad
    "phase_error": ("absolute", 9),  # per frame, rad
    "otf_attenuation": ("relative", 1),
    "haze": ("relative", 1),
    "haze_scale": ("relative", 1),
    "gain": ("relative", 1),
    "offset": ("relative", 1),
    "read_noise": ("relative", 1),
    "photons": ("log", 1),  # one factor on every signal level's photon count
}
#: The spreads a simulation around a calibrated microscope draws by default (training data
#: that cover the microscope, Tobin et al. 2017's domain randomisation): pattern modulation
#: +-15 %, frequency +-1 %, angle +-0.01 rad, phase steps +-0.1 rad, OTF attenuation +-20 %,
#: haze +-50 %, and photons within a factor 2 of each signal level (a user's acquisitions
#: span more than the three nominal levels: the real TIRF-SIM levels 0.1 and 0.2 have their
#: brightest widefield pixels at 12 and 18 photons, below the lowest level, 20). The camera
#: (gain, offset, read noise) is calibrated precisely and kept.
CALIBRATED_RANDOMISE: dict[str, float] = {
    "modulation": 0.15,
    "frequency": 0.01,
    "angle": 0.01,
    "phase_error": 0.1,
    "otf_attenuation": 0.2,
    "haze": 0.5,
    "photons": float(np.log(2.0)),
}
HAZE_KINDS = ("field", "object")
_HWHM_PER_SIGMA = 2.0 * np.sqrt(np.log(2.0))  # autocorrelation of a Gaussian-filtered field


# --------------------------------------------------------------------------------------------
# OTF and the SIM-passband truth
# --------------------------------------------------------------------------------------------
def _zernike_key(zernike: Mapping[int, float] | None) -> tuple[tuple[int, float], ...]:
    return tuple(sorted((int(j), float(c)) for j, c in (zernike or {}).items() if float(c) != 0))


@lru_cache(maxsize=8)
def _otf_cached(
    shape: tuple[int, int],
    wavelength: float,
    na: float,
    pixel_size: float,
    attenuation: float,
    zernike: tuple[tuple[int, float], ...],
) -> np.ndarray:
    if zernike:
        # the whole intensity on a pupil grid that is a multiple of the image grid, folded
        # onto it: the periodised PSF, as the analytic OTF is for the ideal pupil
        fc = na * pixel_size / wavelength
        period = int(np.lcm(shape[0], shape[1]))
        pad = period * int(np.ceil(max(128.0 / fc, 2.0 * period) / period))
        psf = zernike_psf(pad, dict(zernike), fc, pad=pad)
        otf = otf_from_psf(psf, shape)
    else:
        otf = widefield_otf(shape, wavelength, na, pixel_size).astype(np.complex64)
    if attenuation != 1.0:
        fy = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
        fx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
        q = np.minimum(np.hypot(fy, fx) / (2.0 * na / wavelength), 1.0)
        otf = otf * (attenuation**q).astype(np.float32)
    otf = otf.astype(np.complex64)
    otf.setflags(write=False)
    return otf


def microscope_otf(
    shape: tuple[int, int],
    optics: Optics,
    pixel_size: float,
    *,
    otf_attenuation: float = 1.0,
    zernike: Mapping[int, float] | None = None,
) -> np.ndarray:
    """OTF ``O_pupil(f) a^(min(f / f_c, 1))`` on the unshifted FFT grid (module docstring).

    ``pixel_size`` is that of the grid (nm, e.g. ``optics.pixel_size / 4``); ``zernike`` maps
    Noll indices to pupil-phase coefficients in waves rms. complex64 ``shape``, ``O[0, 0] =
    1``, read-only (cached).
    """
    a = float(otf_attenuation)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"otf_attenuation must lie in (0, 1]; got {a}")
    key = _zernike_key(zernike)
    return _otf_cached(
        (int(shape[0]), int(shape[1])),
        float(optics.wavelength),
        float(optics.na),
        float(pixel_size),
        a,
        key,
    )


def microscope_blur(
    shape: tuple[int, int],
    optics: Optics,
    factor: int,
    *,
    otf_attenuation: float = 1.0,
    zernike: Mapping[int, float] | None = None,
) -> Blur:
    """Periodic :class:`~dps_stages.physics.Blur` on the fine grid with :func:`microscope_otf`."""
    return Blur(
        otf=microscope_otf(
            shape,
            optics,
            optics.pixel_size / factor,
            otf_attenuation=otf_attenuation,
            zernike=zernike,
        )
    )


@lru_cache(maxsize=8)
def _sr_blur(shape: tuple[int, int], wavelength: float, na: float, pixel_size: float) -> Blur:
    return Blur(otf=widefield_otf(shape, wavelength, na, pixel_size))


def sim_passband_truth(obj: np.ndarray, optics: Optics, *, factor: int = 4) -> np.ndarray:
    """The object through the ideal SIM passband, on the 2x grid: ``S_{f/2}[h_sr * x]``.

    ``x`` is the object on the fine grid (pixel ``pixel_size / factor``), ``h_sr`` the srPSF
    of DPS (:func:`dps_stages.optics.sr_psf`: the Airy pattern of numerical aperture
    ``m_f NA``, ``m_f = optics.modulation_factor``), applied exactly through its analytic OTF
    (:func:`dps_stages.optics.widefield_otf` with ``m_f NA``: the DFT of the point-sampled,
    periodised srPSF; zero beyond ``2 m_f NA / lambda``, ``OTF(0) = 1``), then the mean over
    ``f/2 x f/2`` blocks (:class:`~dps_stages.physics.Binning`). Same normalisation as
    ``truth_2x = S_{f/2}[x]``: no rescaling, so both have the same sum (and mean).
    Strictly band-limited on the 2x grid when ``2 m_f NA / lambda`` is below its Nyquist
    frequency ``f / (4 pixel_size)`` (true for the defaults: 0.0101 < 0.0154 nm^-1).
    """
    obj = np.asarray(obj, dtype=np.float32)
    if factor % 2:
        raise ValueError(f"the fine grid must be an even multiple of the camera's; got {factor}")
    blur = _sr_blur(
        (int(obj.shape[-2]), int(obj.shape[-1])),
        float(optics.wavelength),
        float(optics.na * optics.modulation_factor),
        float(optics.pixel_size) / factor,
    )
    return Binning(factor // 2).A(blur.A(obj))


# --------------------------------------------------------------------------------------------
# Haze
# --------------------------------------------------------------------------------------------
def _gaussian_lowpass(x: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian filter of standard deviation ``sigma`` pixels (through the FFT)."""
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.rfftfreq(x.shape[1])[None, :]
    g = np.exp(-2.0 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    return np.fft.irfft2(np.fft.rfft2(x) * g, s=x.shape)


def haze_background(
    widefield_clean: np.ndarray,
    optics: Optics,
    *,
    haze: float,
    haze_scale: float = 2000.0,
    haze_kind: str = "field",
    haze_contrast: float = 0.5,
    obj: np.ndarray | None = None,
    factor: int = 4,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Smooth out-of-focus background ``H`` on the camera grid (module docstring), float32.

    ``mean(H) = haze mean(widefield_clean)``; ``haze_scale`` (nm) the half-width at half
    maximum of ``H``'s autocorrelation. ``"field"`` draws white noise from ``rng``;
    ``"object"`` blurs ``obj`` (the fine-grid object) and bins it (no random draw).
    """
    if haze_kind not in HAZE_KINDS:
        raise ValueError(f"haze_kind must be one of {HAZE_KINDS}; got {haze_kind!r}")
    wf = np.asarray(widefield_clean, dtype=np.float64)
    target = float(haze) * float(wf.mean())
    if target <= 0:
        return np.zeros(wf.shape, np.float32)
    sigma_cam = float(haze_scale) / _HWHM_PER_SIGMA / float(optics.pixel_size)
    if haze_kind == "field":
        if rng is None:
            raise ValueError("haze_kind 'field' needs a random generator")
        g = _gaussian_lowpass(rng.standard_normal(wf.shape), sigma_cam)
        g = (g - g.mean()) / max(float(g.std()), 1e-12)
        field = np.clip(1.0 + float(haze_contrast) * g, 0.0, None)
    else:
        if obj is None:
            raise ValueError("haze_kind 'object' needs the object")
        fine = _gaussian_lowpass(np.asarray(obj, dtype=np.float64), sigma_cam * factor)
        field = np.asarray(Binning(factor).A(fine), dtype=np.float64)
    mean = float(field.mean())
    if mean <= 0:
        return np.zeros(wf.shape, np.float32)
    return (field * (target / mean)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Randomisation around given values
# --------------------------------------------------------------------------------------------
def photon_spread(randomise: Mapping[str, float] | None) -> float:
    """The factor ``s = e^(randomise["photons"])`` within which a level's photon count is drawn
    either way (1: not randomised)."""
    return float(np.exp(float((randomise or {}).get("photons", 0.0))))


def covering_levels(photons: Sequence[float], spread: float) -> list[float]:
    """Signal levels whose randomised photon counts cover ``[min(photons), max(photons)]``.

    Each level ``L`` is drawn at ``L e^u``, ``u`` uniform in ``[-log s, log s]``
    (``randomise["photons"] = log s``, ``s = spread``), so it covers ``[L / s, L s]``. The
    fewest levels that tile the range, ``n = max(1, ceil(log R / log s^2))`` for ``R =
    p_max / p_min``, at ratios ``s^2`` (no gaps), centred on the range in log: ``L_i = p_min s
    (s^2)^i / sqrt(q)`` with the slack ``q = s^(2n) / R`` shared by both ends (one count: one
    level, the count itself). Rounded to 3 significant digits. Training data that span the
    photon counts of the acquisitions the networks will restore (each measured by its
    calibration, :attr:`dps_stages.calibrate.CameraCalibration.photons`).
    """
    p = np.asarray([float(v) for v in photons], dtype=float)
    if p.size == 0 or not np.all(np.isfinite(p) & (p > 0)):
        raise ValueError(f"photon counts must be positive and finite; got {list(p)}")
    if not spread > 1.0:
        raise ValueError(f"the photon spread must exceed 1 (a randomised level); got {spread}")
    ratio = float(p.max() / p.min())
    n = max(1, int(np.ceil(np.log(ratio) / np.log(spread**2) - 1e-12)))
    first = float(p.min()) * spread / np.sqrt(spread ** (2 * n) / ratio)
    return [float(f"{first * spread ** (2 * i):.3g}") for i in range(n)]


def _check_randomise(randomise: Mapping[str, float]) -> None:
    for key, s in randomise.items():
        if key not in RANDOMISE_KEYS:
            raise KeyError(f"unknown randomise key {key!r}; choose from {list(RANDOMISE_KEYS)}")
        if float(s) < 0:
            raise ValueError(f"randomise spread {key!r} must be >= 0; got {s}")


def randomise_microscope(
    pattern: Any,
    micro: Mapping[str, Any],
    noise: Mapping[str, Any],
    randomise: Mapping[str, float],
    rng: np.random.Generator,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Per-image values around the given ones (module docstring), all draws from ``rng``.

    ``pattern`` (:class:`~dps_stages.simulate.SIMPattern`): ``m_a (1 + s u_a)`` clipped to
    ``[0, 1]``, ``|k_a| (1 + s u_a)``, angle ``theta_a + s u_a``, phases ``phi_ap + s u_ap``;
    ``micro``: ``otf_attenuation`` (clipped to ``[1e-3, 1]``), ``haze``, ``haze_scale``
    (``>= 0``) and, with ``photons`` asked, ``photons`` (``e^{s u}``, the factor
    :func:`~dps_stages.simulate.simulate_sample` applies to every level's photon count);
    ``noise`` (keywords of :func:`dps_stages.noise.acquisition_chain`, defaults gain 1,
    offset 100, read noise 1.5): ``gain``, ``offset``, ``read_noise`` (``>= 0``).
    ``rng`` gives ``sum(n)`` uniforms over :data:`RANDOMISE_KEYS` in order, whatever is asked.
    """
    _check_randomise(randomise)
    n = sum(c for _, c in RANDOMISE_KEYS.values())
    u_all = rng.uniform(-1.0, 1.0, n)
    u: dict[str, np.ndarray] = {}
    i = 0
    for key, (_, count) in RANDOMISE_KEYS.items():
        u[key] = u_all[i : i + count]
        i += count

    def rel(key: str) -> np.ndarray:
        return 1.0 + float(randomise.get(key, 0.0)) * u[key]

    def ab(key: str) -> np.ndarray:
        return float(randomise.get(key, 0.0)) * u[key]

    k, phases, modulation = pattern.k, pattern.phases, pattern.modulation
    if "modulation" in randomise:
        m = np.broadcast_to(np.asarray(modulation, dtype=float), (3,))
        modulation = np.clip(m * rel("modulation"), 0.0, 1.0)
    if "angle" in randomise or "frequency" in randomise:
        theta = pattern.angles + ab("angle")
        kmag = pattern.frequencies * rel("frequency")
        k = kmag[:, None] * np.stack([np.sin(theta), np.cos(theta)], axis=1)
    if "phase_error" in randomise:
        phases = np.mod(phases + ab("phase_error").reshape(3, 3), 2 * np.pi)
    new_pattern = type(pattern)(k=k, phases=phases, modulation=modulation)

    micro = dict(micro)
    micro["otf_attenuation"] = float(
        np.clip(float(micro["otf_attenuation"]) * rel("otf_attenuation")[0], 1e-3, 1.0)
    )
    micro["haze"] = max(float(micro["haze"] * rel("haze")[0]), 0.0)
    micro["haze_scale"] = max(float(micro["haze_scale"] * rel("haze_scale")[0]), 0.0)
    if "photons" in randomise:
        micro["photons"] = float(micro.get("photons", 1.0)) * float(np.exp(ab("photons")[0]))
    noise = dict(noise)
    defaults = {"gain": 1.0, "offset": 100.0, "read_noise": 1.5}
    for key, default in defaults.items():
        if key in randomise:
            noise[key] = max(float(float(noise.get(key, default)) * rel(key)[0]), 0.0)
    return new_pattern, micro, noise


# --------------------------------------------------------------------------------------------
# Calibration -> simulator keywords
# --------------------------------------------------------------------------------------------
def _finite(v: Any) -> bool:
    try:
        return v is not None and bool(np.all(np.isfinite(np.asarray(v, dtype=float))))
    except (TypeError, ValueError):
        return False


def _wrap(x: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(x, dtype=float)))


def _pattern_from_calibration(
    patterns: Sequence[Mapping[str, Any]], pixel_cal: float, optics: Optics
) -> dict[str, Any]:
    """Angles (circular mean of ``2 theta``), ``|k|`` as a fraction of ``optics.cutoff``,
    phase-step deviations (mean) and their spread over acquisitions; modulation (mean)."""
    thetas, freqs, devs, mods = [], [], [], []
    for p in patterns:
        if "k" in p and _finite(p["k"]):
            k = np.asarray(p["k"], dtype=float).reshape(3, 2)
            thetas.append(np.arctan2(k[:, 0], k[:, 1]))
            freqs.append(np.hypot(k[:, 0], k[:, 1]))
        elif _finite(p.get("angle_deg")) and _finite(p.get("frequency")):
            thetas.append(np.radians(np.asarray(p["angle_deg"], dtype=float)))
            freqs.append(np.asarray(p["frequency"], dtype=float))
        if _finite(p.get("phases")):
            ph = np.asarray(p["phases"], dtype=float).reshape(3, 3)
            rel = ph - ph[:, :1]
            step = np.arange(3) * 2 * np.pi / 3
            up, down = _wrap(rel - step), _wrap(-rel - step)  # a flipped k reverses the steps
            use_up = (up**2).sum(axis=1) <= (down**2).sum(axis=1)
            devs.append(np.where(use_up[:, None], up, down))
        if _finite(p.get("modulation")):
            mods.append(np.broadcast_to(np.asarray(p["modulation"], dtype=float), (3,)))
    out: dict[str, Any] = {}
    if thetas:
        z = np.exp(2j * np.asarray(thetas)).mean(axis=0)
        out["angles"] = [float(a) for a in np.mod(0.5 * np.angle(z), np.pi)]
        f_nm = np.mean(freqs, axis=0) / pixel_cal  # cycles per nm
        out["pattern_frequency"] = [float(v) for v in f_nm / optics.cutoff]
    if devs:
        d = np.asarray(devs)
        out["phase_offsets"] = _wrap(d.mean(axis=0)).tolist()
        if len(devs) > 1:
            out["phase_error"] = float(np.sqrt(np.mean((d - d.mean(axis=0)) ** 2)))
    if mods:
        out["modulation"] = [float(v) for v in np.mean(mods, axis=0)]
    return out


def simulate_kwargs_from_calibration(
    calib: Mapping[str, Any], optics: Optics, *, max_rel_sigma: float = 1.0, pupil: bool = False
) -> dict[str, Any]:
    """Keywords of :func:`dps_stages.simulate.simulate_dataset` for a calibrated microscope.

    ``calib`` is the calibration JSON (:func:`dps_stages.calibrate.write_calibration`):
    ``optics`` (the calibration's, default ``optics``), ``camera`` {``gain``, ``offset``,
    ``read_noise``}, ``pattern`` (one :meth:`SIMParameters.to_dict` per acquisition: ``k``
    in cycles per camera pixel or ``angle_deg`` and ``frequency``, ``phases``,
    ``modulation``), ``otf`` {``attenuation``, ``attenuation_sigma``, ``modulation`` (per
    angle, or per acquisition and angle: averaged over acquisitions)}, ``haze`` {``level``,
    ``scale`` (um)}, ``sim_settings`` {``pupil``}. Mapping:

    * ``noise_kw``: ``gain``, ``offset``, ``read_noise`` (photo-electrons) as they are;
    * ``pattern_kw``: ``angles`` (rad, the circular mean over acquisitions of ``theta mod
      pi``), ``pattern_frequency`` per angle ``(|k| / p_cal) / (2 NA / lambda)`` of
      ``optics``, ``phase_offsets`` (the mean deviation of the phase steps from ``2 pi / 3``)
      and ``phase_error`` (their spread, with several acquisitions), ``modulation`` per angle
      from ``otf.modulation`` (fitted with the attenuated OTF), else from the pattern,
      clipped to ``[0.05, 1]``;
    * ``otf_attenuation``: ``a`` converted to ``optics`` (``a^(f / f_c) = a'^(f / f_c')``
      gives ``a' = a^(f_c' / f_c)``); 1 when undetermined (``sigma_a / a > max_rel_sigma``);
    * ``zernike`` (only with ``pupil``; the DAG does not ask for it, as its Wiener stage
      keeps the ideal pupil by default): ``sim_settings.pupil``, the pupil's significant
      terms (waves rms on the unit pupil, so the same for any ``optics``;
      :func:`dps_stages.calibrate.significant_aberration`), with ``otf_attenuation`` from
      the radial fit above;
    * ``haze``: the calibration's ``level = B / mean(W + B)`` is ``h / (1 + h)`` of this
      simulator's ``h = mean(H) / mean(W)`` (for a dark-background sample), so
      ``h = level / (1 - level)`` (level clipped to ``[0, 0.9]``); ``haze_scale`` = ``1000
      scale`` nm. Unknown or non-finite values are left out (the simulator's defaults).
    """
    cal_optics = calib.get("optics") or {}
    pixel_cal = float(cal_optics.get("pixel_size", optics.pixel_size))
    cutoff_cal = (
        2.0
        * float(cal_optics.get("na", optics.na))
        / float(cal_optics.get("wavelength", optics.wavelength))
    )
    out: dict[str, Any] = {}
    cam = calib.get("camera") or {}
    noise = {k: float(cam[k]) for k in ("gain", "offset", "read_noise") if _finite(cam.get(k))}
    noise = {k: v for k, v in noise.items() if v >= 0 and (k != "gain" or v > 0)}
    if noise:
        out["noise_kw"] = noise
    pat = _pattern_from_calibration(calib.get("pattern") or [], pixel_cal, optics)
    otf = calib.get("otf") or {}
    if _finite(otf.get("modulation")):  # per angle, or per acquisition and angle
        m_otf = np.asarray(otf["modulation"], dtype=float).reshape(-1)
        m_otf = np.broadcast_to(m_otf, (3,)) if m_otf.size == 1 else m_otf.reshape(-1, 3)
        pat["modulation"] = [float(v) for v in np.atleast_2d(m_otf).mean(axis=0)]
    if "modulation" in pat:
        pat["modulation"] = [float(np.clip(v, 0.05, 1.0)) for v in pat["modulation"]]
    if pat:
        out["pattern_kw"] = pat
    a, s = otf.get("attenuation"), otf.get("attenuation_sigma")
    if _finite(a) and float(a) > 0:
        a = min(float(a), 1.0)
        ok = _finite(s) and float(s) / a <= max_rel_sigma  # null sigma: undetermined
        out["otf_attenuation"] = float(a ** (optics.cutoff / cutoff_cal)) if ok else 1.0
    elif _finite((calib.get("sim_settings") or {}).get("otf_decay")):
        out["otf_attenuation"] = float(min(calib["sim_settings"]["otf_decay"], 1.0))
    pupil_terms = (calib.get("sim_settings") or {}).get("pupil")  # the significant terms
    if pupil and pupil_terms:
        out["zernike"] = {int(j): float(c) for j, c in pupil_terms.items()}
    haze = calib.get("haze") or {}
    if _finite(haze.get("level")):
        level = float(np.clip(haze["level"], 0.0, 0.9))
        out["haze"] = level / (1.0 - level)
    if _finite(haze.get("scale")) and float(haze["scale"]) > 0:
        out["haze_scale"] = 1000.0 * float(haze["scale"])
    return out
