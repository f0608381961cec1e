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
