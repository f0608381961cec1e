"""Simulation: structures, the 2D-SIM forward model, the camera noise chain, splits."""

from __future__ import annotations

import numpy as np
import pytest

from dps_stages.noise import acquisition_chain
from dps_stages.optics import Optics
from dps_stages.simulate import (
    STRUCTURES,
    SIMPattern,
    draw_pits,
    random_pattern,
    render_pits,
    sim_frames,
    simulate_dataset,
    widefield,
)

OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)


def small(split="test", seed=5, **kw):
    return simulate_dataset(
        ["microtubules", "ccps", "er", "actin"], 1, 32, OPTICS,
        levels=[20, 200], seed=seed, split=split, **kw,
    )  # fmt: skip


def test_reproducible_and_splits_differ():
    a, b = small(), small()
    for key in ("truth_4x", "raw", "widefield_noisy"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["patterns"] == b["patterns"]
    train = small(split="train")
    assert not np.allclose(train["truth_4x"], a["truth_4x"])
    # a sample does not depend on how many others are asked for
    one = simulate_dataset(["er"], 1, 32, OPTICS, levels=[20, 200], seed=5, split="test")
    np.testing.assert_array_equal(one["raw"][0], a["raw"][2])


def test_shapes_dtypes_and_ranges():
    d = small()
    assert d["truth_4x"].shape == (4, 128, 128)
    assert d["truth_2x"].shape == (4, 64, 64) and d["truth_1x"].shape == (4, 32, 32)
    assert d["raw_clean"].shape == (4, 9, 32, 32) and d["raw"].shape == (4, 2, 9, 32, 32)
    assert d["widefield_noisy"].shape == (4, 2, 32, 32)
    for key in ("truth_4x", "truth_2x", "raw", "widefield_clean"):
        assert d[key].dtype == np.float32
    truth = d["truth_4x"]
    assert truth.min() >= 0 and truth.max() <= 1
    assert all(t.max() > 0.5 and (t > 0.05).mean() > 0.002 for t in truth)
    assert d["structure"] == ["microtubules", "ccps", "er", "actin"]
    # the 2x truth is the 4x truth binned
    np.testing.assert_allclose(d["truth_2x"][0], truth[0].reshape(64, 2, 64, 2).mean((1, 3)),
                               atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_every_structure_renders_fast_enough_to_be_useful(name, rng):
    image = STRUCTURES[name]((256, 256), 16.25, rng)
    assert image.shape == (256, 256) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() == pytest.approx(1.0, abs=1e-6)


def test_clathrin_pits_are_rings_of_the_drawn_diameter(rng):
    px = 4.0
    params = draw_pits((200, 200), px, rng, density=1.0)
    assert np.all((params["diameter"] >= 80) & (params["diameter"] <= 150))
    one = {k: v[:1] for k, v in params.items()}
    one.update(centre=np.array([[100.0, 100.0]]), arc_extent=np.array([2 * np.pi]),
               fill=np.array([0.0]), diameter=np.array([120.0]))  # fmt: skip
    image = render_pits((200, 200), px, one)
    yy, xx = np.mgrid[:200, :200]
    r = np.hypot(yy - 100, xx - 100) * px
    profile = np.bincount(r.astype(int).ravel() // 4, image.ravel()) / np.bincount(
        r.astype(int).ravel() // 4
    )
    peak_radius_nm = 4 * np.argmax(profile[:40]) + 2
    assert peak_radius_nm == pytest.approx(60, abs=6)  # ring wall at diameter / 2
    assert profile[0] < 0.2 * profile.max()  # hollow


def test_widefield_is_the_mean_of_the_nine_frames(rng):
    obj = STRUCTURES["microtubules"]((128, 128), 65 / 4, rng)
    pattern = random_pattern(OPTICS, rng)
    frames = sim_frames(obj, OPTICS, pattern)
    wf = widefield(obj, OPTICS)
    np.testing.assert_allclose(frames.mean(axis=0), wf, atol=2e-4)
    assert wf.max() == pytest.approx(1.0)


def test_pattern_sits_at_its_wave_vector_and_widefield_is_band_limited(rng):
    n = 64
    obj = np.ones((4 * n, 4 * n), np.float32)  # a flat object: the frame is the pattern, blurred
    pattern = SIMPattern(k=[[0.0, 8 / n], [6 / n, 4 / n], [6 / n, -4 / n]],
                         phases=np.zeros((3, 3)), modulation=0.8)  # fmt: skip
    frames = sim_frames(obj, OPTICS, pattern)
    for a in range(3):
        spec = np.abs(np.fft.fft2(frames[3 * a] - frames[3 * a].mean()))
        ky, kx = np.unravel_index(spec.argmax(), spec.shape)
        expect = {(round(pattern.k[a, 0] * n) % n, round(pattern.k[a, 1] * n) % n),
                  (-round(pattern.k[a, 0] * n) % n, -round(pattern.k[a, 1] * n) % n)}  # fmt: skip
        assert (ky, kx) in expect
    # a random object's widefield has no energy beyond 2 NA / lambda
    obj = STRUCTURES["actin"]((4 * n, 4 * n), 65 / 4, rng)
    spec = np.abs(np.fft.fft2(widefield(obj, OPTICS))) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n, 65.0), np.fft.fftfreq(n, 65.0), indexing="ij"))
    cutoff = 2 * OPTICS.na / OPTICS.wavelength
    assert spec[f > 1.05 * cutoff].sum() < 1e-4 * spec.sum()


def test_noise_chain_statistics_on_a_flat_object(rng):
    photons, read, gain, offset = 50.0, 2.0, 1.5, 100.0
    chain = acquisition_chain(photons, read_noise=read, gain=gain, offset=offset, bits=12)
    x = np.full((400, 400), 0.5, np.float32)
    y = chain(x, rng)
    assert y.dtype == np.float32
    assert np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= 2**12 - 1
    assert y.mean() == pytest.approx(gain * photons * 0.5 + offset, rel=0.01)
    expected_var = gain**2 * (photons * 0.5 + read**2) + 1 / 12
    assert y.var() == pytest.approx(expected_var, rel=0.05)


def test_salt_and_pepper_fraction(rng):
    chain = acquisition_chain(100.0, bits=16, salt_pepper=0.01)
    y = chain(np.full((300, 300), 0.5, np.float32), rng)
    extreme = np.mean((y == 0) | (y == 2**16 - 1))
    assert extreme == pytest.approx(0.01, rel=0.2)


def test_random_pattern_geometry_and_round_trip(rng):
    import json

    pattern = random_pattern(OPTICS, rng, pattern_frequency=0.9, modulation=0.7)
    expected = 0.9 * 2 * OPTICS.na / OPTICS.wavelength * OPTICS.pixel_size
    np.testing.assert_allclose(pattern.frequencies, expected, rtol=1e-12)
    steps = np.mod(np.diff(pattern.angles), np.pi)
    np.testing.assert_allclose(np.minimum(steps, np.pi - steps), np.pi / 3, atol=1e-9)
    dphi = np.mod(np.diff(pattern.phases, axis=1), 2 * np.pi)
    np.testing.assert_allclose(dphi, 2 * np.pi / 3, atol=1e-9)
    back = SIMPattern.from_dict(json.loads(json.dumps(pattern.to_dict())))
    np.testing.assert_array_equal(back.k, pattern.k)
    np.testing.assert_array_equal(back.phases, pattern.phases)
    assert back.modulation == pattern.modulation


def test_frame_phase_is_the_pattern_phase_at_camera_pixel_centres(rng):
    """A flat object gives D_ap(r) = A + B cos(2 pi k_a . r + phi_ap), r from pixel (0, 0)."""
    n = 48
    k = np.array([[5 / n, 11 / n], [-9 / n, 7 / n], [12 / n, -2 / n]])  # periodic on the grid
    phases = rng.uniform(0, 2 * np.pi, (3, 3))
    pattern = SIMPattern(k=k, phases=phases, modulation=0.9)
    frames = sim_frames(np.ones((4 * n, 4 * n), np.float32), OPTICS, pattern)
    y, x = np.mgrid[:n, :n]
    for i in range(9):
        a, p = divmod(i, 3)
        arg = 2 * np.pi * (k[a, 0] * y + k[a, 1] * x)
        basis = np.stack([np.ones(n * n), np.cos(arg).ravel(), np.sin(arg).ravel()], axis=1)
        (_, c, s), *_ = np.linalg.lstsq(basis, frames[i].ravel().astype(float), rcond=None)
        dphi = np.angle(np.exp(1j * (np.arctan2(-s, c) - phases[a, p])))
        assert abs(dphi) < 1e-3


def test_a_sampled_airy_psf_gives_the_same_frames_as_the_analytic_otf(rng):
    from dps_stages.optics import airy_psf

    obj = STRUCTURES["er"]((128, 128), 65 / 4, rng)
    pattern = random_pattern(OPTICS, rng)
    psf = airy_psf(127, OPTICS.wavelength, OPTICS.na, 65 / 4, oversample=1)
    exact = sim_frames(obj, OPTICS, pattern)
    sampled = sim_frames(obj, OPTICS, pattern, psf=psf)
    np.testing.assert_allclose(sampled, exact, atol=0.02)


def test_noisy_frames_follow_the_clean_frames():
    level, gain, offset = 2000.0, 2.0, 100.0
    d = simulate_dataset(["er"], 1, 32, OPTICS, levels=[level], seed=1, split="val",
                         noise_kw={"gain": gain, "offset": offset})  # fmt: skip
    clean, raw = d["raw_clean"][0], d["raw"][0, 0]
    expected = gain * level * clean + offset
    # residuals are Poisson + read + rounding noise: standardised, mean 0 and variance 1
    z = (raw - expected) / np.sqrt(gain**2 * (level * clean + 1.5**2) + 1 / 12)
    assert abs(z.mean()) < 0.05 and z.var() == pytest.approx(1.0, rel=0.1)
    np.testing.assert_allclose(d["widefield_noisy"][0, 0], raw.mean(axis=0), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# SIM-passband truth and a microscope unlike the default (issue 12, items 2 and 4)
# --------------------------------------------------------------------------------------------
def _radial_freq(n: int, pixel: float) -> np.ndarray:
    f = np.fft.fftfreq(n, pixel)
    return np.hypot(f[:, None], f[None, :])


def test_sim_passband_truth_is_band_limited_and_conserves_energy():
    from dps_stages.optics import sr_psf
    from dps_stages.physics import Binning, Blur
    from dps_stages.simulate import sim_passband_truth

    d = small()
    sp, t2 = d["truth_2x_sim_passband"], d["truth_2x"]
    assert sp.shape == t2.shape and sp.dtype == np.float32
    f = _radial_freq(sp.shape[-1], OPTICS.pixel_size / 2)
    cutoff = 2 * OPTICS.na * OPTICS.modulation_factor / OPTICS.wavelength
    for i in range(sp.shape[0]):
        spec = np.abs(np.fft.fft2(sp[i].astype(np.float64)))
        assert spec[f > 1.001 * cutoff].max() < 1e-6 * spec.max()
        assert sp[i].sum() == pytest.approx(t2[i].sum(), rel=1e-5)  # same normalisation
        # truth_2x itself is not band-limited: the passband truth is a real blur of it
        spec2 = np.abs(np.fft.fft2(t2[i].astype(np.float64)))
        assert spec2[f > 1.001 * cutoff].max() > 1e-3 * spec2.max()
    # the formula: the fine-grid object through the (point-sampled) srPSF, binned to 2x
    obj = d["truth_4x"][0]
    psf = sr_psf(127, OPTICS.wavelength, OPTICS.na, OPTICS.pixel_size / 4,
                 OPTICS.modulation_factor, oversample=1)  # fmt: skip
    direct = Binning(2)(Blur(psf, boundary="periodic")(obj))
    np.testing.assert_allclose(sim_passband_truth(obj, OPTICS), direct, atol=5e-3)
    np.testing.assert_array_equal(sim_passband_truth(obj, OPTICS), sp[0])


def test_write_dataset_sets_grid_and_truth_attributes(tmp_path):
    from dps_stages import io
    from dps_stages.simulate import ARRAY_ATTRS, write_dataset

    d = simulate_dataset(["ccps"], 1, 16, OPTICS, levels=[50], seed=0, split="val")
    path = write_dataset(tmp_path / "sim.zarr", d, {"kind": "simulated"}, tile=64)
    group = io.open_group(path)
    assert dict(group["truth_2x_sim_passband"].attrs) == {"grid": "2x", "truth": "sim_passband"}
    assert set(ARRAY_ATTRS) <= set(group.array_keys())
    np.testing.assert_array_equal(group["truth_2x_sim_passband"][...], d["truth_2x_sim_passband"])


def test_attenuated_otf_follows_a_to_the_q_and_keeps_the_object():
    a = 0.2
    base = simulate_dataset(["actin"], 1, 64, OPTICS, levels=[50], seed=2, split="val")
    att = simulate_dataset(["actin"], 1, 64, OPTICS, levels=[50], seed=2, split="val",
                           otf_attenuation=a)  # fmt: skip
    np.testing.assert_array_equal(att["truth_4x"], base["truth_4x"])  # same random stream
    q = _radial_freq(64, OPTICS.pixel_size) / OPTICS.cutoff
    ratio = np.abs(np.fft.fft2(att["widefield_clean"][0])) / np.maximum(
        np.abs(np.fft.fft2(base["widefield_clean"][0])), 1e-12
    )
    ratio /= ratio[0, 0]
    for q0 in (0.3, 0.6):
        ring = np.abs(q - q0) < 0.03
        assert np.median(ratio[ring]) == pytest.approx(a**q0, rel=0.02)
    assert att["microscopes"][0]["otf_attenuation"] == a


def test_aberrated_pupil_otf():
    from dps_stages.optics import widefield_otf
    from dps_stages.simulate import microscope_otf

    shape, px = (128, 128), OPTICS.pixel_size / 4
    ideal = widefield_otf(shape, OPTICS.wavelength, OPTICS.na, px)
    tiny = microscope_otf(shape, OPTICS, px, zernike={4: 1e-9})
    np.testing.assert_allclose(np.abs(tiny), ideal, atol=0.01)  # the pupil geometry matches
    defocus = microscope_otf(shape, OPTICS, px, zernike={4: 0.15})
    q = _radial_freq(128, px) / OPTICS.cutoff
    mid = np.abs(q - 0.4) < 0.05
    assert np.abs(defocus[mid]).mean() < 0.8 * ideal[mid].mean()
    assert abs(defocus[0, 0]) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(defocus[q > 1.02]).max() < 1e-3  # still band-limited
    d = simulate_dataset(["er"], 1, 32, OPTICS, levels=[50], seed=2, split="val",
                         zernike={4: 0.15, 6: 0.05})  # fmt: skip
    assert d["widefield_clean"].max() == pytest.approx(1.0)


def test_haze_is_an_unmodulated_background_of_the_stated_level_and_scale():
    from dps_stages.simulate.microscope import haze_background

    kw = dict(levels=[50], seed=4, split="test")
    base = simulate_dataset(["microtubules"], 1, 32, OPTICS, **kw)
    hazy = simulate_dataset(["microtubules"], 1, 32, OPTICS, haze=0.4, haze_scale=1500.0, **kw)
    bg = hazy["raw_clean"][0] - base["raw_clean"][0]
    np.testing.assert_allclose(bg, bg[:1].repeat(9, axis=0), atol=1e-6)  # same in all frames
    assert bg.min() >= 0
    assert bg[0].mean() == pytest.approx(0.4 * base["widefield_clean"][0].mean(), rel=1e-4)
    obj_haze = simulate_dataset(["microtubules"], 1, 32, OPTICS, haze=0.4, haze_kind="object",
                                **kw)  # fmt: skip
    assert obj_haze["widefield_clean"][0].mean() == pytest.approx(
        1.4 * base["widefield_clean"][0].mean(), rel=1e-4
    )
    # the scale: half-width at half maximum of the autocorrelation
    rng = np.random.default_rng(0)
    scale = 1500.0
    widths = []
    for _ in range(4):
        h = haze_background(np.ones((256, 256)), OPTICS, haze=1.0, haze_scale=scale, rng=rng)
        d = h - h.mean()
        ac = np.fft.ifft2(np.abs(np.fft.fft2(d)) ** 2).real
        ac /= ac[0, 0]
        r = np.hypot(*np.meshgrid(np.fft.fftfreq(256) * 256, np.fft.fftfreq(256) * 256))
        widths.append(r[ac < 0.5].min() * OPTICS.pixel_size)
    assert np.mean(widths) == pytest.approx(scale, rel=0.2)


def test_randomise_draws_within_the_spreads_and_leaves_the_stream_alone():
    spreads = {"modulation": 0.1, "otf_attenuation": 0.2, "haze": 0.5, "gain": 0.1,
               "frequency": 0.03, "angle": 0.05, "phase_error": 0.1}  # fmt: skip
    kw = dict(
        levels=[50],
        seed=6,
        split="train",
        otf_attenuation=0.5,
        haze=0.2,
        noise_kw={"gain": 2.0},
        pattern_kw={"modulation": 0.7, "angles": [0.1, 1.2, 2.2]},
    )
    base = simulate_dataset(["ccps", "er"], 3, 16, OPTICS, **kw)
    rand = simulate_dataset(["ccps", "er"], 3, 16, OPTICS, randomise=spreads, **kw)
    again = simulate_dataset(["ccps", "er"], 3, 16, OPTICS, randomise=spreads, **kw)
    np.testing.assert_array_equal(rand["truth_4x"], base["truth_4x"])
    np.testing.assert_array_equal(rand["raw"], again["raw"])
    gains = []
    for p0, p, m in zip(base["patterns"], rand["patterns"], rand["microscopes"], strict=True):
        b, r = SIMPattern.from_dict(p0), SIMPattern.from_dict(p)
        assert np.all(np.abs(np.asarray(r.modulation) / 0.7 - 1) <= 0.1 + 1e-12)
        assert np.all(np.abs(r.frequencies / b.frequencies - 1) <= 0.03 + 1e-12)
        dth = np.angle(np.exp(2j * (r.angles - b.angles))) / 2
        assert np.all(np.abs(dth) <= 0.05 + 1e-12)
        dph = np.angle(np.exp(1j * (r.phases - b.phases)))
        assert np.all(np.abs(dph) <= 0.1 + 1e-12)
        assert 0.4 - 1e-12 <= m["otf_attenuation"] <= 0.6 + 1e-12
        assert 0.1 - 1e-12 <= m["haze"] <= 0.3 + 1e-12
        assert 1.8 - 1e-12 <= m["gain"] <= 2.2 + 1e-12
        gains.append(m["gain"])
    assert len(set(gains)) == len(gains)  # drawn per image
    # photons: one factor within e^(+-s) on every level, drawn after the other keys (which it
    # leaves as they were)
    more = simulate_dataset(["ccps", "er"], 3, 16, OPTICS, randomise={**spreads, "photons": 0.7},
                            **{**kw, "levels": [50, 500]})  # fmt: skip
    factors = []
    for m0, m in zip(rand["microscopes"], more["microscopes"], strict=True):
        assert {k: v for k, v in m.items() if k != "photons"} == m0
        assert np.exp(-0.7) - 1e-12 <= m["photons"] <= np.exp(0.7) + 1e-12
        factors.append(m["photons"])
    assert len(set(factors)) == len(factors)
    # the signal (mean over the offset, per ADU gain) follows level x factor
    signal = (more["raw"].mean(axis=(2, 3, 4)) - 100.0) / np.array(
        [m["gain"] for m in more["microscopes"]]
    )[:, None]
    ratio = signal[:, 1] / signal[:, 0]
    np.testing.assert_allclose(ratio, 10.0, rtol=0.05)
    bright = signal[:, 1] / np.array(factors)
    assert np.std(bright) / np.mean(bright) < np.std(signal[:, 1]) / np.mean(signal[:, 1])
    with pytest.raises(KeyError):
        simulate_dataset(["ccps"], 1, 16, OPTICS, randomise={"wavelength": 0.1}, **kw)


def test_pattern_with_fixed_angles_per_angle_frequency_modulation_and_phase_offsets(rng):
    import json

    offsets = np.array([[0, 0.1, -0.05], [0, 0.0, 0.2], [0, -0.1, 0.1]])
    p = random_pattern(OPTICS, rng, pattern_frequency=[0.8, 0.85, 0.9], modulation=[0.5, 0.6, 0.7],
                       angles=[0.3, 1.35, 2.4], phase_offsets=offsets)  # fmt: skip
    np.testing.assert_allclose(p.angles, [0.3, 1.35, 2.4], atol=1e-12)
    np.testing.assert_allclose(p.frequencies / OPTICS.cutoff_per_pixel, [0.8, 0.85, 0.9])
    steps = np.angle(np.exp(1j * (p.phases - p.phases[:, :1] - np.arange(3) * 2 * np.pi / 3)))
    np.testing.assert_allclose(steps, offsets, atol=1e-12)
    back = SIMPattern.from_dict(json.loads(json.dumps(p.to_dict())))
    np.testing.assert_array_equal(back.modulation, [0.5, 0.6, 0.7])
    # per-angle modulation reaches the frames: a flat object, the same |k| for every angle
    n = 48
    k = np.array([[0, 10 / n], [8 / n, 6 / n], [8 / n, -6 / n]])
    pat = SIMPattern(k=k, phases=np.zeros((3, 3)), modulation=[0.3, 0.6, 0.9])
    frames = sim_frames(np.ones((4 * n, 4 * n), np.float32), OPTICS, pat)
    amp = [np.abs(np.fft.fft2(frames[3 * a])).ravel() for a in range(3)]
    amp = [np.sort(x)[-2] / x.max() for x in amp]  # side peak over the mean
    np.testing.assert_allclose(np.array(amp) / amp[0], [1, 2, 3], rtol=1e-3)


def test_simulate_kwargs_from_calibration():
    from dps_stages.simulate import simulate_kwargs_from_calibration

    angles = np.array([0.2, 1.25, 2.3])
    kmag = 0.85 * OPTICS.cutoff_per_pixel
    k = kmag * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    dev = np.array([[0, 0.05, -0.1], [0, 0.1, 0.0], [0, -0.05, 0.05]])
    phases = 0.7 + np.arange(3)[None, :] * 2 * np.pi / 3 + dev
    flipped = {"k": (-k).tolist(), "phases": (-phases).tolist(), "modulation": [0.5, 0.5, 0.6]}
    calib = {
        "optics": {"wavelength": 525.0, "na": 1.4, "pixel_size": 65.0},
        "camera": {"gain": 2.4, "offset": 98.0, "read_noise": 1.8, "gain_sigma": 0.1},
        "pattern": [{"k": k.tolist(), "phases": phases.tolist(), "modulation": [0.5, 0.5, 0.6]},
                    flipped],
        "otf": {"attenuation": 0.3, "attenuation_sigma": 0.03, "modulation": [0.7, 0.8, 0.75]},
        "haze": {"level": 0.2, "scale": 2.5},
    }  # fmt: skip
    kw = simulate_kwargs_from_calibration(calib, OPTICS)
    assert kw["noise_kw"] == {"gain": 2.4, "offset": 98.0, "read_noise": 1.8}
    np.testing.assert_allclose(kw["pattern_kw"]["angles"], angles, atol=1e-9)
    np.testing.assert_allclose(kw["pattern_kw"]["pattern_frequency"], 0.85, rtol=1e-9)
    np.testing.assert_allclose(kw["pattern_kw"]["phase_offsets"], dev, atol=1e-9)
    assert kw["pattern_kw"]["modulation"] == [0.7, 0.8, 0.75]
    assert kw["otf_attenuation"] == pytest.approx(0.3)
    assert kw["haze"] == pytest.approx(0.25) and kw["haze_scale"] == pytest.approx(2500.0)
    # other optics: the attenuation per unit frequency is kept, the pattern frequency in nm^-1
    other = Optics(wavelength=600.0, na=1.2, pixel_size=80.0)
    kw2 = simulate_kwargs_from_calibration(calib, other)
    assert kw2["otf_attenuation"] == pytest.approx(0.3 ** (other.cutoff / OPTICS.cutoff))
    np.testing.assert_allclose(kw2["pattern_kw"]["pattern_frequency"],
                               0.85 * OPTICS.cutoff / other.cutoff)  # fmt: skip
    # several acquisitions: otf.modulation holds one value per acquisition and angle
    calib["otf"]["modulation"] = [0.7, 0.8, 0.75, 0.9, 0.8, 0.75]
    m = simulate_kwargs_from_calibration(calib, OPTICS)["pattern_kw"]["modulation"]
    np.testing.assert_allclose(m, [0.8, 0.8, 0.75])
    # an undetermined attenuation keeps the ideal OTF; the keywords drive the simulator
    calib["otf"]["attenuation_sigma"] = 1.0
    kw3 = simulate_kwargs_from_calibration(calib, OPTICS)
    assert kw3["otf_attenuation"] == 1.0
    d = simulate_dataset(["ccps"], 1, 16, OPTICS, levels=[30], seed=0, split="test", **kw)
    p = SIMPattern.from_dict(d["patterns"][0])
    np.testing.assert_allclose(np.mod(p.angles, np.pi), angles, atol=1e-9)


@pytest.mark.parametrize("spread", [2.0, 1.5])
def test_covering_levels_span_the_photon_counts(spread):
    """Every count between the dimmest and the brightest lies within a level's randomised
    range ``[L / s, L s]`` (to the rounding), with the fewest levels that can: intervals of
    ratio ``s^2`` cover a ratio ``R`` with ``ceil(log R / log s^2)`` of them."""
    from dps_stages.simulate import covering_levels

    for photons in ([6.5, 12.0, 47.0, 183.0, 1146.0], [30.0], [30.0, 300.0], [20.0, 21.0]):
        levels = np.asarray(covering_levels(photons, spread))
        grid = np.geomspace(min(photons), max(photons), 400)
        lo, hi = levels / spread / 1.005, levels * spread * 1.005  # the rounding
        assert ((grid[:, None] >= lo) & (grid[:, None] <= hi)).any(axis=1).all()
        ratio = max(photons) / min(photons)
        assert len(levels) == max(1, int(np.ceil(np.log(ratio) / np.log(spread**2) - 1e-9)))
        # centred: the same margin beyond the dimmest and the brightest count
        below, above = min(photons) / (levels[0] / spread), levels[-1] * spread / max(photons)
        assert below == pytest.approx(above, rel=0.01)
    assert covering_levels([30.0], 2.0) == [30.0]
    assert covering_levels([5.4, 1146.0], 2.0) == [9.83, 39.3, 157.0, 629.0]
    with pytest.raises(ValueError, match="spread"):
        covering_levels([10.0], 1.0)
    with pytest.raises(ValueError, match="positive"):
        covering_levels([0.0, 10.0], 2.0)
