"""Calibration from raw frames (dps_stages.calibrate) on simulated data with known values.

A microscope unlike the default: 600 nm, NA 1.2, 80 nm pixels, an attenuated OTF
``O_ideal(q) a^q`` (a = 0.2), pattern at 0.85 f_c with modulation 0.6, angle and phase errors,
an sCMOS-like camera (gain 2.5 ADU/e-, offset 100 ADU, read noise 2 e-, 16 bit) and a smooth
haze. 128 x 128 camera pixels.

Tolerances (measured over seeds 0-3, then widened about 2x): OTF attenuation within 30 % (at
200 photons: 0.18-0.20 for a true 0.2), modulation within 0.08, wave vector within 0.1
spectrum pixel; gain within 8 % (2.38-2.54 for 2.5), offset within 10 ADU and read noise
within 1 e- when the field has dark regions (50 photons, no haze: offsets 97-105). Haze
(default optics, 256 x 256, dps_stages.simulate): level and scale round trips, tolerances in
the tests' docstrings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dps_stages import calibrate as cal
from dps_stages.noise import acquisition_chain
from dps_stages.optics import Optics, widefield_otf
from dps_stages.simulate import FINE_FACTOR, microtubules, random_pattern, sim_frames

OPTICS = Optics(wavelength=600.0, na=1.2, pixel_size=80.0)
GAIN, OFFSET, READ = 2.5, 100.0, 2.0


def _acquire(seed: int, *, a: float, photons: float, haze: float, size: int = 128):
    rng = np.random.default_rng(seed)
    fine = size * FINE_FACTOR
    d = OPTICS.pixel_size / FINE_FACTOR
    obj = microtubules((fine, fine), d, rng, density=4.0)
    otf = widefield_otf((fine, fine), OPTICS.wavelength, OPTICS.na, d).astype(np.float64)
    f = np.hypot(np.fft.fftfreq(fine, d)[:, None], np.fft.fftfreq(fine, d)[None, :])
    psf = np.fft.fftshift(np.fft.ifft2(otf * a ** np.minimum(f / OPTICS.cutoff, 1.0)).real)
    pattern = random_pattern(
        OPTICS, rng, pattern_frequency=0.85, modulation=0.6, phase_error=0.05, angle_error=0.02
    )
    clean = sim_frames(obj, OPTICS, pattern, psf=psf)
    yy, xx = np.mgrid[:size, :size] / size
    clean = clean + haze * (0.5 + 0.5 * np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.1))[None]
    chain = acquisition_chain(photons, read_noise=READ, gain=GAIN, offset=OFFSET)
    return chain(clean, rng), pattern


@pytest.fixture(scope="module")
def attenuated():
    raw, pattern = _acquire(0, a=0.2, photons=200.0, haze=0.3)
    return raw, pattern, cal.calibrate(raw, OPTICS)


def test_otf_attenuation_and_pattern_recovered(attenuated) -> None:
    raw, pattern, c = attenuated
    assert abs(np.log(c.otf.attenuation / 0.2)) < np.log(1.3)
    assert np.all(np.abs(np.asarray(c.otf.modulation) - 0.6) < 0.08)
    assert c.otf.attenuation_sigma < 0.1
    n = raw.shape[-1]
    for a in range(3):
        err = min(np.hypot(*(c.pattern[0].k[a] - s * pattern.k[a])) for s in (1, -1))
        assert err * n < 0.1


def test_ideal_otf_is_not_read_as_attenuated() -> None:
    raw, _ = _acquire(1, a=1.0, photons=200.0, haze=0.0)
    otf = cal.calibrate_otf(raw, OPTICS)
    assert otf.attenuation > 0.7


def test_camera_gain_offset_read_noise() -> None:
    raw, _ = _acquire(2, a=0.5, photons=50.0, haze=0.0)
    cam = cal.calibrate_camera(raw, OPTICS)
    assert abs(cam.gain / GAIN - 1.0) < 0.08
    assert abs(cam.offset - OFFSET) < 10.0
    assert abs(cam.read_noise - READ) < 1.0
    assert 0 < cam.gain_sigma < 0.2 and cam.offset_sigma > 0
    # integer ADU carry the rounding's 1/12 ADU^2; frames that are not integer do not
    assert cam.quantisation == pytest.approx(1 / 12)
    assert cal.calibrate_camera(raw + 1e-3, OPTICS).quantisation == 0.0


def test_camera_signal_photons() -> None:
    """The calibrated signal is the photo-electrons of the brightest widefield pixels: the
    simulation's expectation ``level x P_99.9(clean widefield)`` (the clean frames are in
    units of the level), at a dim and a bright level; within 12 % (the gain of a 128 x 128
    field is a few per cent off, and at 15 photons the in-band noise lifts the percentile)."""
    from dps_stages.simulate import simulate_sample

    d = simulate_sample(
        "microtubules", 128, OPTICS, np.random.default_rng(3), levels=(15.0, 300.0),
        noise_kw={"gain": GAIN, "offset": OFFSET, "read_noise": READ},
    )  # fmt: skip
    expected = np.percentile(d["raw_clean"].astype(np.float64).mean(axis=0), 99.9)
    for level, raw in zip((15.0, 300.0), d["raw"], strict=True):
        cam = cal.calibrate_camera(raw, OPTICS)
        assert len(cam.photons) == 1
        assert cam.photons[0] == pytest.approx(level * expected, rel=0.12)
    two = cal.calibrate_camera(np.stack(list(d["raw"])), OPTICS)
    assert len(two.photons) == 2 and two.photons[0] < two.photons[1] / 10


HAZE_OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
HAZE_CASES = [(dens, h) for dens in (2.0, 4.0) for h in (0.0, 0.3, 1.0)]


def _hazy(dens: float, h: float, scale: float = 2000.0):
    from dps_stages.simulate import simulate_sample

    d = simulate_sample(
        "microtubules", 256, HAZE_OPTICS, np.random.default_rng([0, 5]), levels=(200.0,),
        structure_kw={"density": dens}, haze=h, haze_scale=scale,
    )  # fmt: skip
    raw = d["raw"][0]
    c = cal.calibrate(raw, HAZE_OPTICS)
    known = cal.calibrate_haze(raw, HAZE_OPTICS, c.pattern, c.otf, offset=100.0)
    return c, known


@pytest.fixture(scope="module")
def hazy():
    return {case: _hazy(*case) for case in HAZE_CASES}


@pytest.mark.parametrize("case", HAZE_CASES)
def test_haze_level_round_trips(hazy, case) -> None:
    """Level = h / (1 + h) within 0.05 with the offset known (measured: within 0.02), within
    0.2 with the calibrated offset (a uniform haze and an offset error are the same thing in
    the frames; measured: within 0.12 at 256 x 256)."""
    _, h = case
    c, known = hazy[case]
    expected = h / (1.0 + h)
    assert abs(known.level - expected) < 0.05
    assert 0 < known.level_sigma < 0.05
    assert abs(c.haze.level - expected) < 0.2


@pytest.mark.parametrize("case", [cs for cs in HAZE_CASES if cs[1] > 0])
def test_haze_scale_round_trips(hazy, case) -> None:
    """Scale 2 um read within a factor 1.6 (measured 1.1-2.0 um; a 16.6 um field holds few
    correlation cells), finer than one 32-pixel tile (2.08 um) can resolve."""
    _, known = hazy[case]
    assert 2.0 / 1.6 < known.scale < 2.0 * 1.6
    assert known.resolution < 1.5 and np.isfinite(known.scale_sigma)


def test_haze_scale_follows_the_haze(hazy) -> None:
    _, small = _hazy(4.0, 1.0, scale=1000.0)
    _, large = hazy[(4.0, 1.0)]
    assert small.scale < large.scale - 3 * max(small.scale_sigma, large.scale_sigma)
    assert abs(small.scale - 1.0) < 0.3


def test_haze_undetermined_without_otf(hazy) -> None:
    from dataclasses import replace

    c, _ = hazy[(2.0, 0.3)]
    raw = np.zeros((9, 64, 64)) + 100.0
    bad = replace(c.otf, attenuation=float("nan"))
    hz = cal.calibrate_haze(raw, HAZE_OPTICS, c.pattern, bad, offset=100.0)
    assert np.isnan(hz.level) and np.isnan(hz.scale) and hz.map is None


def test_haze_maps_to_the_simulator(hazy) -> None:
    from dps_stages.simulate import simulate_kwargs_from_calibration

    c, _ = hazy[(4.0, 1.0)]
    kw = simulate_kwargs_from_calibration(c.to_dict(), HAZE_OPTICS)
    assert kw["haze"] == pytest.approx(c.haze.level / (1.0 - c.haze.level))
    assert kw["haze_scale"] == pytest.approx(1000.0 * c.haze.scale)


def test_settings_json_and_figure(attenuated, tmp_path) -> None:
    _, _, c = attenuated
    s = cal.calibrated_sim_settings(c, OPTICS)
    assert s["otf_decay"] == pytest.approx(c.otf.attenuation)
    # the same physical attenuation at another NA: a' = a^(f_c' / f_c)
    other = Optics(OPTICS.wavelength, OPTICS.na / 2, OPTICS.pixel_size)
    assert cal.calibrated_sim_settings(c, other)["otf_decay"] == pytest.approx(
        c.otf.attenuation**0.5
    )
    path = cal.write_calibration(tmp_path / "c.json", c)
    d = json.loads(path.read_text())
    assert d["camera"]["gain"] == pytest.approx(c.camera.gain)
    assert d["sim_settings"]["otf_decay"] == pytest.approx(s["otf_decay"])
    assert len(d["pattern"]) == 1 and "points" not in d["camera"]
    fig = cal.plot_calibration(c, tmp_path / "c.png")
    assert fig.stat().st_size > 10_000


def test_undetermined_attenuation_keeps_the_ideal_otf(attenuated) -> None:
    _, _, c = attenuated
    from dataclasses import replace

    bad = replace(c, otf=replace(c.otf, attenuation=float("nan")))
    assert cal.calibrated_sim_settings(bad, OPTICS) == {"otf_decay": 1.0}
    noisy = replace(c, otf=replace(c.otf, attenuation=0.2, attenuation_sigma=0.5))
    assert cal.calibrated_sim_settings(noisy, OPTICS) == {"otf_decay": 1.0}


def test_cli_writes_json_and_figure(tmp_path) -> None:
    import tifffile

    from dps_stages.cli import main

    raw, _ = _acquire(0, a=0.2, photons=200.0, haze=0.3)
    src = tmp_path / "raw.tif"
    tifffile.imwrite(src, np.round(raw).astype(np.uint16))
    rc = main(
        ["calibrate", str(src), str(tmp_path / "o.json"), "--wavelength", "600", "--na", "1.2",
         "--pixel-size", "80", "--figure", str(tmp_path / "o.png")]
    )  # fmt: skip
    assert rc == 0
    d = json.loads((tmp_path / "o.json").read_text())
    assert abs(np.log(d["otf"]["attenuation"] / 0.2)) < np.log(1.3)
    assert d["optics"]["pixel_size"] == 80.0 and d["determined"] is True
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json", "o.png", "raw.tif"]


def test_cli_small_frames_are_undetermined(tmp_path) -> None:
    """Frames under 64 px cannot be calibrated: the record says so and the Wiener stage gets
    the ideal OTF."""
    import tifffile

    from dps_stages.cli import main

    src = tmp_path / "raw.tif"
    tifffile.imwrite(src, np.full((9, 32, 32), 100, np.uint16))
    out = tmp_path / "o.json"
    assert main(["calibrate", str(src), str(out), "--pixel-size", "65"]) == 0
    d = json.loads(out.read_text())
    assert d["determined"] is False and "at least 64 x 64" in d["reason"]
    assert d["sim_settings"] == {"otf_decay": 1.0}
    assert cal.resolve_sim_settings({"otf_decay": "auto"}, np.zeros((9, 32, 32)), OPTICS) == {
        "otf_decay": 1.0
    }
    assert cal.resolve_sim_settings({"otf_decay": "auto"}, None, OPTICS, calibration=out) == {
        "otf_decay": 1.0
    }


def test_auto_otf_decay_is_the_fitted_attenuation() -> None:
    """``otf_decay="auto"`` (the Wiener stage's default) becomes the attenuation fitted to the
    frames; a number passes through untouched."""
    raw, _ = _acquire(0, a=0.2, photons=200.0, haze=0.0)
    auto = cal.resolve_sim_settings({"otf_decay": "auto", "wiener_factor": 3.0}, raw, OPTICS)
    assert abs(np.log(auto["otf_decay"] / 0.2)) < np.log(1.3)
    assert auto["wiener_factor"] == 3.0
    assert cal.resolve_sim_settings({"otf_decay": 0.5}, raw, OPTICS) == {"otf_decay": 0.5}


def test_undersampled_frames_are_undetermined_not_an_error(tmp_path) -> None:
    """Pixels too coarse to leave a noise band beyond the OTF cutoff (520 nm, NA 1.4, 108 nm:
    a 60x objective on a 6.5 um camera): the record says why and the Wiener stage keeps the
    ideal OTF, instead of stopping the chain."""
    import tifffile

    from dps_stages.cli import main

    coarse = Optics(wavelength=520.0, na=1.4, pixel_size=108.0)
    frames = np.random.default_rng(0).poisson(200.0, (9, 96, 96)).astype(np.float32) + 100
    assert cal.resolve_sim_settings({"otf_decay": "auto"}, frames, coarse) == {"otf_decay": 1.0}
    tifffile.imwrite(tmp_path / "raw.tif", frames)
    out = tmp_path / "o.json"
    args = ["calibrate", str(tmp_path / "raw.tif"), str(out), "--wavelength", "520", "--na",
            "1.4", "--pixel-size", "108"]  # fmt: skip
    assert main(args) == 0
    d = json.loads(out.read_text())
    assert d["determined"] is False and d["reason"] and d["sim_settings"] == {"otf_decay": 1.0}


# --- pattern pooled over the fields of one session, offset without dark tiles ------------
def _fields(seed: int, n: int, photons: float, *, shared: bool, size: int = 96):
    """``n`` fields (different microtubule objects) of one pattern (``shared``) or of
    patterns drawn per field; ideal OTF, the camera of this module."""
    rng = np.random.default_rng(seed)
    fine = size * FINE_FACTOR
    d = OPTICS.pixel_size / FINE_FACTOR
    kw = dict(pattern_frequency=0.85, modulation=0.6, phase_error=0.05, angle_error=0.05)
    pattern = random_pattern(OPTICS, rng, **kw)
    chain = acquisition_chain(photons, read_noise=READ, gain=GAIN, offset=OFFSET)
    raws, patterns = [], []
    for _ in range(n):
        p = pattern if shared else random_pattern(OPTICS, rng, **kw)
        obj = microtubules((fine, fine), d, rng, density=4.0)
        raws.append(chain(sim_frames(obj, OPTICS, p), rng))
        patterns.append(p)
    return np.stack(raws), patterns


def _k_err(k: np.ndarray, true: np.ndarray, size: int) -> np.ndarray:
    """Per angle, spectrum pixels, up to the sign of k."""
    return np.minimum(np.hypot(*(k - true).T), np.hypot(*(k + true).T)) * size


def test_pooled_wave_vector_beats_per_image() -> None:
    from dps_stages.sim import estimate_parameters, estimate_parameters_pooled

    raw, pats = _fields(5, 4, 12.0, shared=True)
    single = np.array([_k_err(estimate_parameters(r, OPTICS).k, pats[0].k, 96) for r in raw])
    pooled, info = estimate_parameters_pooled(raw, OPTICS, full_output=True)
    assert info["pooled"].all()
    assert all(np.array_equal(p.k, pooled[0].k) for p in pooled)
    err = _k_err(pooled[0].k, pats[0].k, 96)
    # per angle, the pooled k is closer than the per-image ones are on average (rms)
    assert np.all(err < np.sqrt((single**2).mean(axis=0))), (err, single)
    assert np.sqrt((err**2).mean()) < 0.6 * np.sqrt((single**2).mean())
    assert np.all(np.isfinite(info["phase_sigma"])) and np.all(info["phase_sigma"] > 0)


def test_fields_with_different_patterns_are_not_pooled() -> None:
    from dps_stages.sim import estimate_parameters, estimate_parameters_pooled

    raw, pats = _fields(6, 2, 200.0, shared=False)
    pooled, info = estimate_parameters_pooled(raw, OPTICS, full_output=True)
    assert not info["pooled"].any()
    for r, p in zip(raw, pooled, strict=True):
        q = estimate_parameters(r, OPTICS)
        assert np.array_equal(p.k, q.k) and np.array_equal(p.phases, q.phases)


def test_single_image_pooled_is_estimate_parameters() -> None:
    from dps_stages.sim import estimate_parameters, estimate_parameters_pooled

    raw, _ = _fields(7, 1, 100.0, shared=True)
    (p,) = estimate_parameters_pooled(raw, OPTICS)
    q = estimate_parameters(raw[0], OPTICS)
    assert np.array_equal(p.k, q.k) and np.array_equal(p.phases, q.phases)
    assert np.array_equal(p.modulation, q.modulation)


def test_offset_without_dark_tiles() -> None:
    """A bright hazy field, no tile within 60 ADU (24 e-) of the offset (as the unlike
    benchmark at 300 photons): within the bounds (read noise >= 0, below the darkest tile)
    the offset is within 10 ADU and the read noise within 1 e-, the error within 3 sigma."""
    raw, _ = _fields(8, 3, 300.0, shared=True, size=256)
    raw = raw + GAIN * np.random.default_rng(9).poisson(30.0, raw.shape)  # uniform haze
    c = cal.calibrate_camera(raw, OPTICS)
    assert c.points[0].min() > OFFSET + 60.0  # no dark tile (as the benchmark's 300 ph)
    assert abs(c.offset - OFFSET) < 10.0, (c.offset, c.offset_sigma)
    assert abs(c.offset - OFFSET) < 3.0 * c.offset_sigma + 1.0
    assert abs(c.read_noise - READ) < 1.0, (c.read_noise, c.read_noise_sigma)


# --------------------------------------------------------------------------------------------
# pupil aberrations (dps_stages.calibrate.pupil)
# --------------------------------------------------------------------------------------------
ABERRATION = {5: 0.05, 7: 0.05, 11: 0.06}  # astigmatism, coma, spherical (waves rms, Noll)


def _aberrated(seed: int, zernike: dict[int, float] | None, photons: float = 300.0):
    """One field of 192 x 192 through an aberrated, attenuated pupil with haze (the project's
    simulator, as benchmarks/bench_unlike.py at a smaller size)."""
    from dps_stages.simulate import simulate_sample

    d = simulate_sample(
        "microtubules", 192, OPTICS, np.random.default_rng([seed, 12]), levels=[photons],
        pattern_kw={"pattern_frequency": 0.85, "modulation": 0.6, "phase_error": 0.05},
        noise_kw={"gain": GAIN, "offset": OFFSET, "read_noise": READ, "bits": 16},
        otf_attenuation=0.3, zernike=zernike, haze=0.5, haze_scale=2000.0, haze_kind="field",
    )  # fmt: skip
    return d["raw"][0].astype(np.float32), d["pattern"]


@pytest.fixture(scope="module")
def aberrated():
    raw, pattern = _aberrated(0, ABERRATION)
    return raw, pattern, cal.calibrate(raw, OPTICS)


def test_pupil_otf_of_the_ideal_pupil_is_the_airy_otf() -> None:
    """With no aberration and no attenuation the model is the incoherent OTF of the disc
    (Goodman 6.3.2): O(0) = 1 (energy), the analytic curve within the pupil's sampling, zero
    beyond the cutoff 2 NA / lambda; a shift k moves it exactly (O(g + k) at index g)."""
    from dps_stages.calibrate.pupil import pupil_otf
    from dps_stages.sim import otf_values

    shape = (128, 128)
    otf_at = pupil_otf(shape, OPTICS, [0.0] * 5, 1.0)
    o = otf_at(np.zeros(2))
    assert o[0, 0] == pytest.approx(1.0, abs=1e-9)
    f = np.fft.fftfreq(128)
    ideal = otf_values(f[:, None], f[None, :], OPTICS.cutoff_per_pixel, pixel=False)
    assert np.abs(o - ideal).max() < 0.03
    beyond = np.hypot(f[:, None], f[None, :]) > 1.05 * OPTICS.cutoff_per_pixel
    assert np.abs(o[beyond]).max() < 1e-3
    k = np.array([3.0, -5.0]) / 128  # a whole-pixel shift: a roll of the grid
    np.testing.assert_allclose(otf_at(k), np.roll(o, (-3, 5), axis=(0, 1)), atol=1e-9)


def test_pupil_aberration_recovered(aberrated) -> None:
    """Astigmatism, coma and spherical aberration (0.05, 0.05, 0.06 waves) from one 192 x 192
    field at 300 photons: each term within 0.015 waves (even terms up to their common sign), the
    terms that are not there within 0.015 of 0, the modulation |A| within 0.08 of 0.6.
    Measured on seeds 0-4: errors up to 0.008 waves, each true term at 7-24 sigma."""
    _, _, c = aberrated
    p = c.pupil
    assert p is not None and p.determined
    for j in (5, 6, 7, 8, 11):
        true = ABERRATION.get(j, 0.0)
        got = abs(p.aberration[j]) if j in (5, 6, 11) else p.aberration[j]
        assert abs(got - true) < 0.015, (j, p.aberration[j])
        assert 0 < p.aberration_sigma[j] < 0.015
    assert np.all(np.abs(np.asarray(p.modulation) - 0.6) < 0.08)


def test_small_attenuated_ideal_fields_keep_the_ideal_pupil(attenuated) -> None:
    """128 x 128 through an ideal pupil with a = 0.2: the fit reads up to 0.06 waves of
    spurious terms there (seeds 0-2), but they improve the fit by a chi^2 under 25, below
    DELTA_CHI2_MIN: the Wiener stage keeps the ideal pupil."""
    _, _, c = attenuated
    assert c.pupil.delta_chi2 < cal.pupil.DELTA_CHI2_MIN
    assert "pupil" not in cal.calibrated_sim_settings(c, OPTICS)


def test_ideal_pupil_is_not_read_as_aberrated() -> None:
    """No aberration: rms under 0.05 waves and no term significant (beyond 3 sigma and
    ABERRATION_FLOOR), so that the Wiener stage keeps the ideal pupil. Near zero an even term
    changes the OTF only to second order and its linearised error is too small: measured on
    seeds 0-4, up to 0.026 waves at 4.1 sigma, rms up to 0.034."""
    raw, _ = _aberrated(1, None)
    p = cal.calibrate_pupil(raw, OPTICS, [cal.calibrate(raw, OPTICS).pattern[0]], offset=OFFSET)
    assert p.rms < 0.05, p.aberration
    assert cal.significant_aberration(p) == {}, p.aberration


def test_haze_through_the_fitted_pupil(aberrated) -> None:
    """Haze 0.5 of the in-focus mean (level h / (1 + h) = 1/3) under the aberrated pupil: read
    through the ideal OTF the missing side-band light counts as haze (0.6 measured); through
    the fitted pupil within 0.15. The pupil's phase offset (arg A) brings the phases nearer
    the pattern's own than the estimator's, which absorb the OTF's phase (coma)."""
    raw, pattern, c = aberrated
    ideal = cal.calibrate_haze(raw, OPTICS, c.pattern, c.otf, offset=c.camera.offset)
    assert abs(c.haze.level - 1.0 / 3.0) < 0.15
    assert abs(ideal.level - 1.0 / 3.0) > abs(c.haze.level - 1.0 / 3.0)
    est = np.asarray(c.pattern[0].phases, dtype=float)
    own = est + np.asarray(c.pupil.phase_offset)[:, None]

    def err(ph: np.ndarray) -> float:
        out = []
        for a in range(3):
            s = 1 if np.hypot(*(c.pattern[0].k[a] - pattern.k[a])) < 0.01 else -1
            out.append(np.abs(np.angle(np.exp(1j * (ph[a] - s * pattern.phases[a])))).max())
        return max(out)

    assert err(own) < err(est)


def test_wiener_through_the_calibrated_pupil(aberrated, tmp_path) -> None:
    """The calibration hands its significant pupil terms to the Wiener stage (``sim_settings``
    of the JSON); reconstructing through that complex OTF (conj(O) on the bands, |O|^2 in the
    denominators) scores higher against the SIM-passband truth than through the ideal pupil
    (unlike microscope, 3 fields of 256 x 256 at 300 photons: 0.648 -> 0.694 SSIM; the
    true pupil 0.702), and through coma of the wrong sign lower than through the right one."""
    from dps_stages import sim
    from dps_stages.metrics import compare
    from dps_stages.simulate import simulate_sample

    raw, pattern, c = aberrated
    settings = cal.calibrated_sim_settings(c, OPTICS)
    assert {int(j) for j in settings["pupil"]} >= {5, 7, 11}
    path = cal.write_calibration(tmp_path / "cal.json", c)
    kw = cal.resolve_sim_settings({"otf_decay": "auto"}, raw, OPTICS, calibration=path)
    assert kw["pupil"] == pytest.approx({int(j): v for j, v in settings["pupil"].items()})
    truth = simulate_sample(
        "microtubules", 192, OPTICS, np.random.default_rng([0, 12]), levels=[300.0],
        pattern_kw={"pattern_frequency": 0.85, "modulation": 0.6, "phase_error": 0.05},
        noise_kw={"gain": GAIN, "offset": OFFSET, "read_noise": READ, "bits": 16},
        otf_attenuation=0.3, zernike=ABERRATION, haze=0.5, haze_scale=2000.0, haze_kind="field",
    )["truth_2x_sim_passband"]  # fmt: skip
    frames = raw - c.camera.offset
    a = kw["otf_decay"]

    def ssim(pupil) -> float:
        out, _ = sim.reconstruct(frames, OPTICS, params=c.pattern[0], otf_decay=a, pupil=pupil)
        return compare(out, truth)["ssim"]

    ideal, fitted = ssim(None), ssim(kw["pupil"])
    flipped = ssim({j: (-v if j in (7, 8) else v) for j, v in kw["pupil"].items()})
    assert fitted > ideal + 0.01, (ideal, fitted)
    assert fitted > flipped, (flipped, fitted)


def test_sim_reconstruct_pupil_is_opt_in(aberrated, tmp_path) -> None:
    """`dps sim-reconstruct --calibration` keeps the ideal pupil by default (sim.pupil:
    ideal) and takes the calibration's significant terms with --pupil calibrated; with a
    fixed --otf-decay the calibrated pupil is refused, naming the option and the value."""
    import tifffile

    from dps_stages import io
    from dps_stages.cli import main

    raw, _, c = aberrated
    src = tmp_path / "raw.tif"
    tifffile.imwrite(src, np.round(raw).astype(np.uint16))
    cal_json = cal.write_calibration(tmp_path / "cal.json", c)
    optics = ["--wavelength", "600", "--na", "1.2", "--pixel-size", "80"]
    for mode in ("ideal", "calibrated"):
        out = tmp_path / f"{mode}.zarr"
        rc = main(["sim-reconstruct", str(src), str(out), "--calibration", str(cal_json),
                   "--pupil", mode, *optics])  # fmt: skip
        assert rc == 0
        settings = io.open_stage(out)[1]["sim_settings"]
        assert ("pupil" in settings) == (mode == "calibrated"), settings
    rc = main(["sim-reconstruct", str(src), str(tmp_path / "x.zarr"), "--pupil", "calibrated",
               "--otf-decay", "0.5", *optics])  # fmt: skip
    assert rc != 0 and not (tmp_path / "x.zarr").exists()
