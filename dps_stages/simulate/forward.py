"""The 2D-SIM forward model and the simulated datasets.

2D-SIM (Gustafsson 2000, J. Microsc. 198, 82): frame ``(a, p)`` (angle-major, frame index
``i = 3 a + p``) is

``D_ap = S_4[ h * (x (1 + m cos(2 pi k_a . r + phi_ap))) ]``

with ``x`` the object on the fine grid, ``h`` the Airy PSF (:func:`dps_stages.optics.airy_psf`)
at the fine pixel size, ``S_4`` the mean over 4 x 4 blocks (the camera pixel), ``r`` in camera
pixels measured from the centre of camera pixel ``(0, 0)`` and ``k_a`` in cycles per camera
pixel, ``|k_a| = pattern_frequency 2 NA / lambda`` (times the camera pixel size): the
operator :class:`dps_stages.physics.SIMForward`. The convolution is circular: it multiplies
the FFT of the object by the analytic OTF (:func:`dps_stages.optics.widefield_otf`), which is
the exact DFT of the point-sampled, periodised Airy PSF on the fine grid (Nyquist-sampled
there), so images are strictly band-limited by the optics. The widefield image is
``S_4[h * x]``, which equals the mean of the three phases of any angle because the phases are
equally spaced.

Normalisation: :func:`sim_frames` and :func:`widefield` divide by the maximum of the
(unnormalised) widefield image, so the brightest camera pixel of the widefield (= mean) frame
is 1, and ``photons`` in :func:`dps_stages.noise.acquisition_chain` is the expected number of
photo-electrons at that pixel. SIM frames then peak at up to about ``1 + m``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..noise import acquisition_chain
from ..optics import Optics, otf_from_psf, widefield_otf
from ..physics import Binning, Blur, PatternGeometry, SIMForward
from .microscope import (
    HAZE_KINDS,
    haze_background,
    microscope_blur,
    randomise_microscope,
    sim_passband_truth,
)
from .structures import FINE_FACTOR
from .structures_extra import ALL_STRUCTURES

__all__ = [
    "ARRAY_ATTRS",
    "MICROSCOPE_DEFAULTS",
    "SPLIT_IDS",
    "SIMPattern",
    "bin_image",
    "random_pattern",
    "sim_frames",
    "simulate_dataset",
    "simulate_sample",
    "widefield",
    "write_dataset",
]

#: Per-split stream of random numbers, so that train, val and test never share an image.
SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}


# --------------------------------------------------------------------------------------------
# 2D-SIM forward model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SIMPattern(PatternGeometry):
    """Illumination of a 3-angle x 3-phase 2D-SIM acquisition.

    ``I_ap(r) = 1 + m cos(2 pi k_a . r + phi_ap)`` with ``r = (y, x)`` in camera pixels from
    the centre of camera pixel ``(0, 0)``; a parameter holder of
    :class:`dps_stages.physics.SIMIllumination` (:meth:`illumination`).

    Attributes
    ----------
    k
        ``(3, 2)`` wave vectors ``(ky, kx)`` in cycles per camera pixel, one per angle.
    phases
        ``(3, 3)`` phases ``phi_ap`` in rad, ``[angle, phase]``.
    modulation
        Modulation depth ``m`` in ``[0, 1]``: one float for all angles, or ``(3,)`` (per angle
        ``m_a``, kept as a float64 array).
    """

    k: np.ndarray
    phases: np.ndarray
    modulation: float | np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", np.asarray(self.k, dtype=np.float64).reshape(3, 2))
        object.__setattr__(self, "phases", np.asarray(self.phases, dtype=np.float64).reshape(3, 3))
        if np.ndim(self.modulation) == 0:
            object.__setattr__(self, "modulation", float(self.modulation))
        else:
            m = np.array(self.modulation, dtype=np.float64).reshape(3)
            m.setflags(write=False)
            object.__setattr__(self, "modulation", m)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (nested lists of floats)."""
        m = self.modulation
        return {
            "k": self.k.tolist(),
            "phases": self.phases.tolist(),
            "modulation": m if isinstance(m, float) else m.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SIMPattern:
        """Inverse of :meth:`to_dict`."""
        return cls(k=np.asarray(d["k"]), phases=np.asarray(d["phases"]), modulation=d["modulation"])


def random_pattern(
    optics: Optics,
    rng: np.random.Generator,
    *,
    pattern_frequency: float | Sequence[float] = 0.9,
    modulation: float | Sequence[float] = 0.8,
    angle_error: float = 0.0,
    phase_error: float = 0.0,
    angles: Sequence[float] | None = None,
    phase_offsets: Any = None,
) -> SIMPattern:
    """Random 2D-SIM pattern (Gustafsson 2000).

    ``|k_a| = pattern_frequency (2 NA / lambda) pixel_size`` cycles per camera pixel (one
    value, or one per angle); angles ``theta_a = theta_0 + a pi / 3 + e_a`` with
    ``theta_0 ~ U[0, pi)``, or ``theta_a = angles[a] + e_a`` (rad, a microscope's fixed
    angles; ``theta_0`` is still drawn), ``e_a ~ N(0, angle_error^2)``;
    ``k_a = |k_a| (sin theta_a, cos theta_a)`` as ``(ky, kx)``; phases
    ``phi_ap = phi_0a + p 2 pi / 3 + d_ap + e_ap`` (mod 2 pi) with ``phi_0a ~ U[0, 2 pi)``,
    ``d_ap = phase_offsets`` (``(3, 3)`` rad, systematic phase-step errors, default 0) and
    ``e_ap ~ N(0, phase_error^2)``; ``modulation`` one value or one per angle. The draws are
    the same whatever the options.
    """
    if np.ndim(pattern_frequency) == 0:
        kmag = pattern_frequency * optics.cutoff_per_pixel
    else:
        kmag = np.asarray(pattern_frequency, dtype=np.float64).reshape(3, 1)
        kmag = kmag * optics.cutoff_per_pixel
    theta0 = rng.uniform(0.0, np.pi)
    base = theta0 + np.arange(3) * np.pi / 3
    if angles is not None:
        base = np.asarray(angles, dtype=np.float64).reshape(3)
    theta = base + angle_error * rng.standard_normal(3)
    k = kmag * np.stack([np.sin(theta), np.cos(theta)], axis=1)
    phi0 = rng.uniform(0.0, 2 * np.pi, 3)
    phases = phi0[:, None] + np.arange(3)[None, :] * 2 * np.pi / 3
    if phase_offsets is not None:
        phases = phases + np.asarray(phase_offsets, dtype=np.float64).reshape(3, 3)
    phases = np.mod(phases + phase_error * rng.standard_normal((3, 3)), 2 * np.pi)
    return SIMPattern(k=k, phases=phases, modulation=modulation)


def bin_image(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes (float32).

    ``y[..., i, j] = mean_{0 <= u, v < f} x[..., f i + u, f j + v]``; the last two sizes must
    be multiples of ``factor`` (:class:`dps_stages.physics.Binning`).
    """
    return Binning(factor).A(np.asarray(x))


@lru_cache(maxsize=16)
def _analytic_blur(shape: tuple[int, int], wavelength: float, na: float, pixel_size: float) -> Blur:
    return Blur(otf=widefield_otf(shape, wavelength, na, pixel_size))


def _blur(
    shape: tuple[int, int],
    optics: Optics,
    factor: int,
    psf: np.ndarray | None,
    blur: Blur | None = None,
) -> Blur:
    """Periodic blur on the fine grid: ``blur`` when given, else the analytic Airy OTF
    (cached), or that of ``psf``."""
    if blur is not None:
        return blur
    if psf is None:
        return _analytic_blur(
            (int(shape[0]), int(shape[1])),
            float(optics.wavelength),
            float(optics.na),
            float(optics.pixel_size) / factor,
        )
    return Blur(otf=otf_from_psf(psf, shape))


def widefield(
    obj_4x: np.ndarray,
    optics: Optics,
    *,
    factor: int = FINE_FACTOR,
    psf: np.ndarray | None = None,
    normalise: bool = True,
    blur: Blur | None = None,
) -> np.ndarray:
    """Widefield image ``S_f[h * x]`` on the camera grid, float32 ``(y, x)``.

    ``x`` is the object on the fine grid (pixel ``pixel_size / factor``), ``h`` the Airy PSF at
    the fine pixel size (applied exactly through the analytic OTF; pass ``psf`` (centred, on
    the fine grid) to use another, or ``blur``, a periodic :class:`~dps_stages.physics.Blur`
    on the fine grid such as :func:`~dps_stages.simulate.microscope.microscope_blur`), ``S_f``
    the mean over ``f x f`` blocks. With ``normalise`` the image is divided by its maximum
    (brightest camera pixel = 1).
    """
    obj = np.asarray(obj_4x, dtype=np.float32)
    wf = bin_image(_blur(obj.shape, optics, factor, psf, blur).A(obj), factor)
    if normalise:
        peak = float(wf.max())
        if peak > 0:
            wf = wf / np.float32(peak)
    return wf.astype(np.float32)


def sim_frames(
    obj_4x: np.ndarray,
    optics: Optics,
    pattern: SIMPattern,
    *,
    factor: int = FINE_FACTOR,
    psf: np.ndarray | None = None,
    normalise: bool = True,
    blur: Blur | None = None,
) -> np.ndarray:
    """Nine noise-free 2D-SIM frames (Gustafsson 2000), float32 ``(9, y, x)``, angle-major.

    ``D_ap = S_f[h * (x (1 + m cos(2 pi k_a . r + phi_ap)))]``
    (:class:`dps_stages.physics.SIMForward`) with ``r`` the camera-pixel
    coordinates of the fine pixel centres, ``(i + 0.5) / f - 0.5`` (so ``r`` is measured from
    the centre of camera pixel 0), frame index ``3 a + p``. With ``normalise`` (default) all
    frames are divided by the maximum of the unnormalised widefield ``S_f[h * x]``, so that the
    brightest camera pixel of the widefield (mean) frame is 1 and ``photons`` in the noise chain
    counts expected photo-electrons there. ``psf`` or ``blur``: as in :func:`widefield`.
    """
    obj = np.asarray(obj_4x, dtype=np.float32)
    h = _blur(obj.shape, optics, factor, psf, blur)
    forward = SIMForward(pattern.illumination(factor), h)
    frames = forward.A(obj)
    if normalise:
        peak = float(widefield(obj, optics, factor=factor, normalise=False, blur=h).max())
        if peak > 0:
            frames /= np.float32(peak)
    return frames


#: Keywords of :func:`simulate_sample` / :func:`simulate_dataset` describing the microscope
#: beyond the ideal one (:mod:`dps_stages.simulate.microscope`), with their defaults.
MICROSCOPE_DEFAULTS: dict[str, Any] = {
    "otf_attenuation": 1.0,
    "zernike": None,
    "haze": 0.0,
    "haze_scale": 2000.0,
    "haze_kind": "field",
    "haze_contrast": 0.5,
    "randomise": None,
}


def simulate_sample(
    structure: str,
    size: int,
    optics: Optics,
    rng: np.random.Generator,
    *,
    levels: Sequence[float],
    pattern_kw: Mapping[str, Any] | None = None,
    noise_kw: Mapping[str, Any] | None = None,
    structure_kw: Mapping[str, Any] | None = None,
    otf_attenuation: float = 1.0,
    zernike: Mapping[int, float] | None = None,
    haze: float = 0.0,
    haze_scale: float = 2000.0,
    haze_kind: str = "field",
    haze_contrast: float = 0.5,
    randomise: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """One simulated SIM acquisition of a random structure.

    The object is ``ALL_STRUCTURES[structure]`` on the fine grid ``(4 size, 4 size)`` at pixel
    ``optics.pixel_size / 4``; the pattern comes from :func:`random_pattern` (``pattern_kw``),
    the clean frames from :func:`sim_frames` and :func:`widefield` (same normalisation: the
    brightest widefield pixel is 1); each noise level ``gamma`` in ``levels`` gives
    ``raw[l] = acquisition_chain(photons=gamma, **noise_kw)(raw_clean)`` (ADU, offset
    included) and ``widefield_noisy[l] = mean_i raw[l, i]``. Draw order from ``rng``: object,
    pattern, then the noise of each level in turn.

    The microscope (:mod:`dps_stages.simulate.microscope`; the defaults are the ideal one and
    give the same arrays, bit for bit, as without these keywords): ``otf_attenuation`` ``a``
    and ``zernike`` ({Noll index: waves rms}) set the OTF ``O_pupil(f) a^(f / f_c)``;
    ``haze`` (mean background over mean in-focus widefield), ``haze_scale`` (nm),
    ``haze_kind`` ("field" or "object") and ``haze_contrast`` add a smooth, unmodulated
    background to every clean frame (after the normalisation, so that ``photons`` still
    counts the in-focus peak); ``randomise`` ({key: spread},
    :data:`dps_stages.simulate.microscope.RANDOMISE_KEYS`) draws per-image values around the
    pattern, OTF, haze and camera. The extra random draws (randomisation, then the haze field)
    come from ``rng.spawn(2)`` (child generators), which leaves ``rng``'s own stream as
    without them.

    Returns
    -------
    dict
        float32 arrays ``truth_4x`` (4s, 4s), ``truth_2x`` (2s, 2s), ``truth_1x`` (s, s) (the
        object and its 2 x 2 and 4 x 4 block means), ``truth_2x_sim_passband`` (2s, 2s) (the
        object through the ideal SIM passband, :func:`~.microscope.sim_passband_truth`),
        ``raw_clean`` (9, s, s), ``widefield_clean`` (s, s), ``raw`` (L, 9, s, s),
        ``widefield_noisy`` (L, s, s), ``pattern`` (:class:`SIMPattern`) and ``microscope``
        (the per-image ``otf_attenuation``, ``haze``, ``haze_scale``, camera keywords and,
        when randomised, the ``photons`` factor).
    """
    if structure not in ALL_STRUCTURES:
        raise KeyError(f"unknown structure {structure!r}; choose from {sorted(ALL_STRUCTURES)}")
    fine = size * FINE_FACTOR
    obj = ALL_STRUCTURES[structure](
        (fine, fine), optics.pixel_size / FINE_FACTOR, rng, **dict(structure_kw or {})
    )
    pattern = random_pattern(optics, rng, **dict(pattern_kw or {}))
    noise = dict(noise_kw or {})
    micro = {
        "otf_attenuation": float(otf_attenuation),
        "haze": float(haze),
        "haze_scale": float(haze_scale),
    }
    need_field = float(haze) > 0 and haze_kind == "field"
    if randomise or need_field:
        rand_rng, haze_rng = rng.spawn(2)
        if randomise:
            pattern, micro, noise = randomise_microscope(pattern, micro, noise, randomise, rand_rng)
    blur = None
    if micro["otf_attenuation"] != 1.0 or zernike:
        blur = microscope_blur(
            (fine, fine),
            optics,
            FINE_FACTOR,
            otf_attenuation=micro["otf_attenuation"],
            zernike=zernike,
        )
    raw_clean = sim_frames(obj, optics, pattern, blur=blur)
    wf_clean = widefield(obj, optics, blur=blur)
    if micro["haze"] > 0:
        background = haze_background(
            wf_clean,
            optics,
            haze=micro["haze"],
            haze_scale=micro["haze_scale"],
            haze_kind=haze_kind,
            haze_contrast=haze_contrast,
            obj=obj,
            factor=FINE_FACTOR,
            rng=haze_rng if need_field else None,
        )
        raw_clean += background[None]
        wf_clean = (wf_clean + background).astype(np.float32)
    raw = np.empty((len(levels), 9, size, size), dtype=np.float32)
    photons = float(micro.get("photons", 1.0))  # a randomised factor, else 1
    for i, level in enumerate(levels):
        chain = acquisition_chain(photons=float(level) * photons, **noise)
        raw[i] = chain(raw_clean, rng)
    return {
        "truth_4x": obj.astype(np.float32),
        "truth_2x": bin_image(obj, 2),
        "truth_1x": bin_image(obj, FINE_FACTOR),
        "truth_2x_sim_passband": sim_passband_truth(obj, optics, factor=FINE_FACTOR),
        "raw_clean": raw_clean,
        "widefield_clean": wf_clean,
        "raw": raw,
        "widefield_noisy": raw.mean(axis=1, dtype=np.float64).astype(np.float32),
        "pattern": pattern,
        "microscope": {**micro, **noise},
    }


_ARRAY_KEYS = (
    "truth_4x",
    "truth_2x",
    "truth_1x",
    "truth_2x_sim_passband",
    "raw_clean",
    "widefield_clean",
    "raw",
    "widefield_noisy",
)

#: Attributes of the truth arrays in a written dataset (:func:`write_dataset`): the grid
#: (fine 4x, SIM 2x, camera 1x) and the kind of truth (the object, or the object through the
#: ideal SIM passband); the evaluation reads ``truth_<grid>[_<kind>]``.
ARRAY_ATTRS: dict[str, dict[str, str]] = {
    "truth_4x": {"grid": "4x", "truth": "object"},
    "truth_2x": {"grid": "2x", "truth": "object"},
    "truth_1x": {"grid": "1x", "truth": "object"},
    "truth_2x_sim_passband": {"grid": "2x", "truth": "sim_passband"},
}


def simulate_dataset(
    structures: Sequence[str],
    n_per_structure: int,
    size: int,
    optics: Optics,
    *,
    levels: Sequence[float],
    seed: int,
    split: str,
    pattern_kw: Mapping[str, Any] | None = None,
    noise_kw: Mapping[str, Any] | None = None,
    structure_kw: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    **microscope: Any,
) -> dict[str, Any]:
    """A stack of :func:`simulate_sample` results, structure-major.

    Sample ``i`` of structure ``s`` draws from its own generator
    ``np.random.default_rng([seed, SPLIT_IDS[split], index of s in ALL_STRUCTURES, i])`` (the
    default structures come first, so their indices are those of :data:`STRUCTURES`), so
    splits never share images and every sample is independent of how many samples (or which
    other structures) are asked for. ``structure_kw`` maps a structure name to keyword
    arguments of its generator; ``microscope``: the keywords of :func:`simulate_sample` in
    :data:`MICROSCOPE_DEFAULTS` (with those defaults).

    Returns
    -------
    dict
        The array keys of :func:`simulate_sample` stacked on a new first axis of length
        ``n = len(structures) * n_per_structure`` (float32), ``structure`` (list of str),
        ``patterns`` (list of :meth:`SIMPattern.to_dict` dicts) and ``microscopes`` (list of
        the per-image microscope dicts).
    """
    if split not in SPLIT_IDS:
        raise KeyError(f"unknown split {split!r}; choose from {sorted(SPLIT_IDS)}")
    names = list(ALL_STRUCTURES)
    for s in structures:
        if s not in ALL_STRUCTURES:
            raise KeyError(f"unknown structure {s!r}; choose from {names}")
    unknown = sorted(set(microscope) - set(MICROSCOPE_DEFAULTS))
    if unknown:
        raise TypeError(
            f"unexpected keyword arguments {unknown}; microscope: {MICROSCOPE_DEFAULTS}"
        )
    haze_kind = microscope.get("haze_kind", MICROSCOPE_DEFAULTS["haze_kind"])
    if haze_kind not in HAZE_KINDS:
        raise ValueError(f"haze_kind must be one of {HAZE_KINDS}; got {haze_kind!r}")
    n = len(structures) * n_per_structure
    fine = size * FINE_FACTOR
    out: dict[str, Any] = {
        "truth_4x": np.empty((n, fine, fine), np.float32),
        "truth_2x": np.empty((n, fine // 2, fine // 2), np.float32),
        "truth_1x": np.empty((n, size, size), np.float32),
        "truth_2x_sim_passband": np.empty((n, fine // 2, fine // 2), np.float32),
        "raw_clean": np.empty((n, 9, size, size), np.float32),
        "widefield_clean": np.empty((n, size, size), np.float32),
        "raw": np.empty((n, len(levels), 9, size, size), np.float32),
        "widefield_noisy": np.empty((n, len(levels), size, size), np.float32),
        "structure": [],
        "patterns": [],
        "microscopes": [],
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"simulate {split}", unit="image")
    k = 0
    for s in structures:
        kw = (structure_kw or {}).get(s)
        for i in range(n_per_structure):
            rng = np.random.default_rng([seed, SPLIT_IDS[split], names.index(s), i])
            sample = simulate_sample(
                s,
                size,
                optics,
                rng,
                levels=levels,
                pattern_kw=pattern_kw,
                noise_kw=noise_kw,
                structure_kw=kw,
                **microscope,
            )
            for key in _ARRAY_KEYS:
                out[key][k] = sample[key]
            out["structure"].append(s)
            out["patterns"].append(sample["pattern"].to_dict())
            out["microscopes"].append(sample["microscope"])
            k += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out


def write_dataset(
    path: Any, data: Mapping[str, Any], attrs: Mapping[str, Any] | None = None, *, tile: int = 1024
) -> Any:
    """Write the arrays of :func:`simulate_dataset` as a Zarr group, with :data:`ARRAY_ATTRS`.

    ``dps_stages.io.write_group(path, arrays, attrs, tile=tile)`` for every numpy array of
    ``data``, then the attributes ``grid`` and ``truth`` on each truth array. Returns the path.
    """
    import zarr

    from .. import io

    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    out = io.write_group(path, arrays, attrs, tile=tile)
    group = zarr.open_group(str(out), mode="r+")
    for name, extra in ARRAY_ATTRS.items():
        if name in arrays:
            group[name].attrs.update(extra)
    return out
