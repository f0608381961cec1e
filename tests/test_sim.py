"""2D-SIM reconstruction: parameter estimation against the simulated truth, the Wiener
reconstruction's gain over widefield, invariants, input checks and the real TIRF-SIM data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dps_stages import sim
from dps_stages.metrics import compare, decorrelation
from dps_stages.optics import Optics, widefield_otf
from dps_stages.simulate import SIMPattern, simulate_sample

OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
SIZE = 128

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vdl-sim-microtubules"
#: Settings for the real TIRF-SIM data (optics unpublished; chosen in benchmarks/bench_sim.py).
REAL_OPTICS = Optics(wavelength=670.0, na=1.49, pixel_size=60.0)
REAL_KW = {"otf_decay": 0.1, "wiener_factor": 6.0}


@pytest.fixture(scope="module")
def samples() -> dict[str, dict]:
    """One simulated acquisition per structure at 100 and 1000 photons, plus clean frames."""
    out = {}
    for i, name in enumerate(["microtubules", "ccps", "er", "actin"]):
        rng = np.random.default_rng([2024, i])
        out[name] = simulate_sample(name, SIZE, OPTICS, rng, levels=[100, 1000])
    return out


def _match(params: sim.SIMParameters, truth: SIMPattern) -> tuple[np.ndarray, np.ndarray]:
    """|dk| * N and the phase error (deg) per angle, comparing up to the sign of k.

    With ``-k`` the same pattern has phases ``-phi``, so the phase error is taken with the
    sign that matches the wave vector.
    """
    dk = np.zeros(3)
    dphi = np.zeros(3)
    for a in range(3):
        errs = [np.hypot(*(params.k[a] - s * truth.k[a])) for s in (1, -1)]
        s = 1 if errs[0] <= errs[1] else -1
        dk[a] = min(errs) * SIZE
        d = np.angle(np.exp(1j * (params.phases[a] - s * truth.phases[a])))
        dphi[a] = np.degrees(np.abs(d)).max()
    return dk, dphi


def hexagonal_pattern(modulation: float) -> SIMPattern:
    """Three angles 60 degrees apart, |k| = 0.31 cycles/px, equal phase steps."""
    return SIMPattern(
        k=[[0.0, 0.31], [0.27, -0.155], [0.27, 0.155]],
        phases=np.arange(9).reshape(3, 3) * 2 * np.pi / 3 + 0.4,
        modulation=modulation,
    )


def bead_frames(rng: np.random.Generator, n: int = 96):
    """Nine noisy raw frames (camera ``n x n``) of 12 bright beads on a background, under
    :func:`hexagonal_pattern` (modulation 0.8), imaged with the ideal OTF on the 2x grid
    and binned. Returns ``(bead positions on the 2x grid, the 2x grid's y and x in camera
    coordinates, raw frames)``; draws the positions, then the Poisson noise, from ``rng``."""
    truth = hexagonal_pattern(0.8)
    obj = np.zeros((2 * n, 2 * n))
    pos = rng.integers(24, 2 * n - 24, size=(12, 2))
    obj[pos[:, 0], pos[:, 1]] = 1.0
    yy, xx = np.mgrid[0 : 2 * n, 0 : 2 * n] / 2.0 - 0.25  # camera coordinates of the 2x grid
    f2 = np.fft.fftfreq(2 * n, 0.5)
    otf2 = sim.otf_values(f2[:, None], f2[None, :], OPTICS.cutoff_per_pixel, pixel=False)
    frames = []
    for (ky, kx), phases in zip(truth.k, truth.phases, strict=True):
        for ph in phases:
            ill = 1 + 0.8 * np.cos(2 * np.pi * (ky * yy + kx * xx) + ph)
            img2 = np.fft.ifft2(np.fft.fft2(obj * ill) * otf2).real
            frames.append(img2.reshape(n, 2, n, 2).sum(axis=(1, 3)))
    clean = 2e4 * np.asarray(frames) / np.max(frames) + 50.0  # bright beads on a background
    return pos, yy, xx, rng.poisson(clean).astype(np.float32)


@pytest.mark.parametrize("name", ["microtubules", "ccps", "er", "actin"])
def test_parameters_match_truth(samples, name):
    d = samples[name]
    truth = d["pattern"]
    p = sim.estimate_parameters(d["raw"][1], OPTICS)  # 1000 photons
    dk, dphi = _match(p, truth)
    assert np.all(dk < 0.05), dk
    assert np.all(dphi < 10.0), dphi
    assert np.all(np.abs(p.modulation - truth.modulation) < 0.15), p.modulation
    assert np.all(p.significance > 50)
    # the returned sign makes the phases step by about +2 pi / 3, as the simulation draws them
    np.testing.assert_allclose(p.phase_steps, 2 * np.pi / 3, atol=np.radians(10))
    # the equal-step variant agrees
    q = sim.estimate_parameters(d["raw"][1], OPTICS, equal_steps=True)
    dk, dphi = _match(q, truth)
    assert np.all(dk < 0.05) and np.all(dphi < 10.0)


def test_parameters_at_lower_signal_and_with_a_guess(samples):
    d = samples["er"]
    truth = d["pattern"]
    p = sim.estimate_parameters(d["raw"][0], OPTICS)  # 100 photons
    dk, dphi = _match(p, truth)
    assert np.all(dk < 0.1) and np.all(dphi < 20.0), (dk, dphi)
    # a rough guess of either sign leads to the same answer
    guess = -truth.k + 1.5 / SIZE
    g = sim.estimate_parameters(d["raw"][0], OPTICS, k_guess=guess)
    np.testing.assert_allclose(g.k, p.k, atol=1e-3 / SIZE)


def test_parameters_round_trip_and_flip():
    p = sim.SIMParameters(
        k=[[0.1, 0.2], [0.3, -0.1], [-0.2, 0.1]],
        phases=np.arange(9).reshape(3, 3),
        modulation=[0.5, 0.6, 0.7],
        significance=[10.0, np.inf, 3.0],
    )
    q = sim.SIMParameters.from_dict(p.to_dict())
    for attr in ("k", "phases", "modulation", "significance"):
        np.testing.assert_array_equal(getattr(q, attr), getattr(p, attr))
    assert p.phases.max() < 2 * np.pi and p.k.flags.writeable is False
    f = p.flipped()
    np.testing.assert_allclose(f.k, -p.k)
    np.testing.assert_allclose(np.cos(f.phases), np.cos(p.phases))
    np.testing.assert_allclose(np.sin(f.phases), -np.sin(p.phases), atol=1e-12)


def test_otf_model_is_the_optics_otf():
    shape = (64, 48)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    mine = sim.otf_values(fy, fx, OPTICS.cutoff_per_pixel, pixel=False)
    ref = widefield_otf(shape, OPTICS.wavelength, OPTICS.na, OPTICS.pixel_size)
    np.testing.assert_allclose(mine, ref, atol=1e-6)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.31, -0.12), (-0.45, 0.4), (0.9, 0.9)])
def test_otf_on_its_support_equals_the_dense_evaluation(shift):
    """A grid given as a column and a row is evaluated on the rows and columns that reach
    into the cutoff disc only; outside it the OTF is 0, inside the values are the same."""
    from dps_stages.sim.otf import _otf_dense

    fy = (np.fft.fftfreq(96, 0.5)[:, None] + shift[0]).astype(np.float32)
    fx = (np.fft.rfftfreq(80, 0.5)[None, :] + shift[1]).astype(np.float32)
    for decay, pixel in ((1.0, True), (0.3, False)):
        box = sim.otf_values(fy, fx, OPTICS.cutoff_per_pixel, decay=decay, pixel=pixel)
        dense = _otf_dense(fy, fx, OPTICS.cutoff_per_pixel, decay, pixel)
        np.testing.assert_array_equal(box, dense)
        assert box.dtype == np.float32 and box.shape == (96, 41)


def test_reconstruction_beats_widefield(samples):
    for name in ("microtubules", "er", "ccps"):
        d = samples[name]
        img, p = sim.reconstruct(d["raw"][1], OPTICS)
        assert img.shape == (2 * SIZE, 2 * SIZE) and img.dtype == np.float32
        wf = sim.fourier_upsample(d["widefield_noisy"][1])
        c_sim = compare(img, d["truth_2x"])
        c_wf = compare(wf, d["truth_2x"])
        assert c_sim["psnr"] > c_wf["psnr"] + 0.5, (name, c_sim, c_wf)
        assert c_sim["ssim"] > c_wf["ssim"] + 0.05, (name, c_sim, c_wf)


def test_resolution_is_extended(samples):
    d = samples["microtubules"]
    truth = d["pattern"]
    params = sim.SIMParameters.from_pattern(truth)
    img, _ = sim.reconstruct(d["raw_clean"], OPTICS, params=params, background_percentile=None)
    wf = sim.fourier_upsample(d["widefield_clean"])
    r_sim = decorrelation(img).resolution_px
    r_wf = decorrelation(wf).resolution_px
    assert r_wf / r_sim >= 1.4, (r_wf, r_sim)
    # energy beyond the widefield cutoff, which the widefield image does not have
    n = 2 * SIZE
    f = np.fft.fftfreq(n, d=0.5)  # cycles per camera pixel
    fy, fx = f[:, None], f[None, :]
    radius = np.hypot(fy, fx)
    fc = OPTICS.cutoff_per_pixel
    hann = np.hanning(n)[:, None] * np.hanning(n)[None, :]  # no leakage cross from the borders
    spec_sim = np.abs(np.fft.fft2((img - img.mean()) * hann)) ** 2
    spec_wf = np.abs(np.fft.fft2((wf - wf.mean()) * hann)) ** 2
    beyond = (radius > 1.1 * fc) & (radius < 1.6 * fc)
    assert spec_sim[beyond].sum() > 1e-3 * spec_sim[radius < fc].sum()
    assert spec_sim[beyond].sum() > 100 * spec_wf[beyond].sum()
    # out to |k| + f_c = 1.9 f_c along the pattern directions only: at 30 degrees from them
    # the shifted passbands reach 1.67 f_c
    cos_to_pattern = np.max(
        [np.abs(fy * ky + fx * kx) / (radius * np.hypot(ky, kx) + 1e-12) for ky, kx in truth.k],
        axis=0,
    )
    ring = (radius > 1.72 * fc) & (radius < 1.85 * fc)
    along = ring & (cos_to_pattern > np.cos(np.radians(8)))
    across = ring & (cos_to_pattern < np.cos(np.radians(22)))
    assert np.median(spec_sim[along]) > 10 * np.median(spec_sim[across])


def test_flat_input_gives_flat_output():
    frames = np.full((9, 64, 64), 500.0, dtype=np.float32)
    img, p = sim.reconstruct(frames, OPTICS, background_percentile=None)
    assert np.all(np.isfinite(img))
    assert img.std() / img.mean() < 1e-3
    # a uniform object under the SIM pattern: the stripes must go, nothing appears
    truth = hexagonal_pattern(0.8)
    y, x = np.mgrid[0:96, 0:96]
    amp = 0.8 * float(sim.otf_values(np.array(0.0), np.array(0.31), OPTICS.cutoff_per_pixel))
    raw = np.stack(
        [1 + amp * np.cos(2 * np.pi * (ky * y + kx * x) + ph)
         for (ky, kx), phases in zip(truth.k, truth.phases, strict=True) for ph in phases]
    ).astype(np.float32)  # fmt: skip
    assert raw.std() / raw.mean() > 0.01  # the pattern is there
    img, _ = sim.reconstruct(
        raw, OPTICS, params=sim.SIMParameters.from_pattern(truth), background_percentile=None
    )
    assert img.std() / img.mean() < 1e-3
    # the same with estimated parameters: no structure invented from a pattern-free image
    img2, p2 = sim.reconstruct(frames, OPTICS)
    assert np.all(np.isfinite(img2)) and np.allclose(img2, img2.flat[0], atol=1e-3)
    assert np.all(p2.significance < 10)


def test_shapes_stack_and_bad_input(samples):
    raw = samples["ccps"]["raw"][1][:, :64, :80]
    img, p = sim.reconstruct(raw, OPTICS)
    assert img.shape == (128, 160) and img.dtype == np.float32
    assert isinstance(p, sim.SIMParameters) and p.k.shape == (2 * 0 + 3, 2)
    stack, plist = sim.reconstruct_stack(np.stack([raw, raw]), OPTICS, params=p)
    assert stack.shape == (2, 128, 160) and len(plist) == 2
    np.testing.assert_allclose(stack[0], sim.reconstruct(raw, OPTICS, params=p)[0])
    for bad in (np.zeros((8, 32, 32)), np.zeros((9, 32)), np.zeros((3, 3, 32, 32))):
        with pytest.raises(ValueError, match=r"shape \(" + ", ".join(map(str, bad.shape))):
            sim.reconstruct(bad, OPTICS)
    with pytest.raises(ValueError, match=r"\(2, 8, 32, 32\)"):
        sim.reconstruct_stack(np.zeros((2, 8, 32, 32)), OPTICS)
    with pytest.raises(ValueError, match="band_weights"):
        sim.reconstruct(raw, OPTICS, params=p, band_weights="nope")


def test_fourier_upsample_keeps_samples_and_grid():
    rng = np.random.default_rng(0)
    spec = np.fft.fft2(rng.standard_normal((32, 32)))
    f = np.fft.fftfreq(32)
    spec[(np.abs(f[:, None]) > 0.3) | (np.abs(f[None, :]) > 0.3)] = 0
    img = np.fft.ifft2(spec).real.astype(np.float32)
    up = sim.fourier_upsample(img, centred=False)
    np.testing.assert_allclose(up[::2, ::2], img, atol=1e-4)
    # centred grid: fine pixel j sits at coarse coordinate j / 2 - 1/4
    y = np.arange(32)[:, None]
    wave = np.cos(2 * np.pi * 0.1875 * y + 0.3) * np.ones((1, 8))
    upc = sim.fourier_upsample(wave.astype(np.float32))
    yy = np.arange(64)[:, None] / 2 - 0.25
    np.testing.assert_allclose(upc, np.cos(2 * np.pi * 0.1875 * yy + 0.3) * np.ones((1, 16)),
                               atol=1e-4)  # fmt: skip


@pytest.mark.shared
def test_real_tirf_sim_gt_matches_reference():
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder {REAL_DATA} is absent (it sits beside the project)")
    tifffile = pytest.importorskip("tifffile")
    frames = np.stack(
        [tifffile.imread(REAL_DATA / "raw" / "GT" / f"640-1_{i}.tiff") for i in range(1, 10)]
    )
    reference = tifffile.imread(REAL_DATA / "reference" / "TIRF_SIM_640_1.tif")
    img, p = sim.reconstruct(frames, REAL_OPTICS, **REAL_KW)
    assert img.shape == reference.shape
    assert np.all(p.significance > 50)
    # the three pattern directions are 60 degrees apart and of equal frequency
    ang = np.sort(np.mod(np.degrees(p.angles), 180))
    np.testing.assert_allclose(np.diff(ang), 60, atol=2)
    np.testing.assert_allclose(p.frequencies, p.frequencies.mean(), rtol=0.02)
    assert compare(img, reference)["ssim"] >= 0.36


def test_no_residual_pattern_peaks_on_a_sparse_bright_object():
    """Honeycomb guard: a sparse object (isolated beads) at high photon count, estimated
    parameters. The output spectrum has no isolated peaks at +-k_a, +-2 k_a (the signature of
    leaked pattern copies), and the empty background between beads stays flat (the band
    around |k_a| that a constant Wiener parameter over-amplifies)."""
    n = 96
    pos, _, _, raw = bead_frames(np.random.default_rng(7), n)
    img, p = sim.reconstruct(raw, OPTICS)
    f = np.fft.fftfreq(2 * n, 0.5)
    fy, fx = f[:, None], f[None, :]
    pw = np.abs(np.fft.fft2(img - img.mean())) ** 2
    ratios = []
    for ka in p.k:
        for h in (1, 2, -1, -2):
            d = np.hypot(fy - h * ka[0], fx - h * ka[1])
            ratios.append(pw[d < 0.012].mean() / pw[(d > 0.02) & (d < 0.05)].mean())
    assert max(ratios) < 3.0, ratios
    # background far from every bead: its band-passed noise is small against the bead peaks
    far = np.ones((2 * n, 2 * n), dtype=bool)
    for y0, x0 in pos:
        far &= np.hypot(np.arange(2 * n)[:, None] - y0, np.arange(2 * n)[None, :] - x0) > 20
    r = np.hypot(fy, fx) / OPTICS.cutoff_per_pixel
    band = np.fft.ifft2(np.fft.fft2(img) * ((r > 0.5) & (r < 1.5))).real
    assert far.sum() > 500
    assert band[far].std() < 0.01 * img.max(), band[far].std() / img.max()


def test_attenuation_as_band_weight_reduces_ringing_around_bright_points():
    """Hexagonal-ringing guard. With the fairSIM form (attenuated OTF ``A O`` in the
    numerator, ``A^2 O^2`` in the denominator) the transfer near ``|k|`` is ``A O^2 / (A^2
    O^2 + w^2)``: bumps above 1 beside the notches at the side-band centres, which ring at
    the pattern frequency around every bright point. ``attenuation_mode="weight"`` (the
    default: ``A`` as a band weight, the transfer at most the apodisation) rings less."""
    pos, yy, xx, raw = bead_frames(np.random.default_rng(8))
    dist = np.min([np.hypot(yy * 2 + 0.5 - y0, xx * 2 + 0.5 - x0) for y0, x0 in pos], axis=0)
    ring = (dist > 4) & (dist < 12)  # 2x-grid pixels from the nearest bead
    rms = {}
    for mode in ("otf", "weight"):
        img, _ = sim.reconstruct(raw, OPTICS, attenuation_mode=mode)
        peak = np.mean([img[y0, x0] for y0, x0 in pos])
        rms[mode] = img[ring].std() / peak
    assert rms["weight"] < 0.75 * rms["otf"], rms
    assert rms["weight"] < 0.02, rms
    with pytest.raises(ValueError, match="attenuation_mode"):
        sim.reconstruct(raw, OPTICS, attenuation_mode="nope")


def test_local_wiener_removes_the_noise_ring():
    """Honeycomb-grain guard: on pure shot-noise frames (a dark background) the Wiener
    filter's noise transfer peaks in an annulus where the combined OTF weight falls to about
    ``w^2``; that ring of noise power is the grain seen between filaments. The local Wiener
    step (default) keeps the output noise spectrum nearly flat instead: its power in 0.5-1.5
    f_c stays near that of 0.1-0.3 f_c, and no radial bin rises far above it."""
    rng = np.random.default_rng(3)
    n = 128
    truth = hexagonal_pattern(0.5)
    p = sim.SIMParameters.from_pattern(truth)
    raw = rng.poisson(200.0, (9, n, n)).astype(np.float32)
    f = np.fft.fftfreq(2 * n, 0.5)
    r = np.hypot(f[:, None], f[None, :]) / OPTICS.cutoff_per_pixel
    kw = {"params": p, "wiener": 0.1, "background_percentile": None, "normalise_intensity": False}
    ratio, peak = {}, {}
    for lw in (None, 1.5):
        img, _ = sim.reconstruct(raw, OPTICS, local_wiener=lw, **kw)
        pw = np.abs(np.fft.fft2(img - img.mean())) ** 2
        low = pw[(r > 0.1) & (r < 0.3)].mean()
        ratio[lw] = pw[(r > 0.5) & (r < 1.5)].mean() / low
        peak[lw] = max(pw[(r > a) & (r < a + 0.1)].mean() / low for a in np.arange(0.3, 1.8, 0.1))
    assert ratio[None] > 5.0 and peak[None] > 8.0, (ratio, peak)  # the plain filter: a ring
    assert ratio[1.5] < 1.2 and peak[1.5] < 2.5, (ratio, peak)
    # the default is the local step; noise-free structure passes (flat input test above)
    img_default, _ = sim.reconstruct(raw, OPTICS, **kw)
    img_on, _ = sim.reconstruct(raw, OPTICS, local_wiener=1.5, **kw)
    np.testing.assert_array_equal(img_default, img_on)


# --------------------------------------------------------------------------------------------
# tile by tile


def test_shift_origin_moves_the_phases_with_the_pattern():
    from dps_stages.sim.reconstruction import shift_origin

    p = sim.SIMParameters(k=[[0.1, 0.2], [0.3, -0.1], [-0.2, 0.25]], phases=np.zeros((3, 3)),
                          modulation=[0.8, 0.8, 0.8])  # fmt: skip
    q = shift_origin(p, 3, 5)
    expected = np.mod(
        2 * np.pi * (np.asarray(p.k)[:, 0] * 3 + np.asarray(p.k)[:, 1] * 5), 2 * np.pi
    )
    np.testing.assert_allclose(q.phases, np.repeat(expected[:, None], 3, axis=1), atol=1e-12)
    np.testing.assert_allclose(shift_origin(q, -3, -5).phases % (2 * np.pi), 0, atol=1e-9)


def test_reconstruction_by_tiles_equals_the_whole_image():
    """Tiles of 64 camera pixels with the halo of sim_halo (70), the same parameters and
    Wiener parameter: within 1 % of the maximum (0.53 % measured) beyond ``edge`` (16)
    camera pixels of the image border. Within that band the whole image's own edge treatment
    (periodic plus smooth decomposition, which couples opposite borders) differs from a
    tile's, up to about 14 %.
    Frames that fit one tile give exactly :func:`sim.reconstruct`."""
    from dps_stages.sim.reconstruction import reconstruct_tiled, sim_halo

    rng = np.random.default_rng([2024, 14])
    raw = simulate_sample("microtubules", 256, OPTICS, rng, levels=[1000])["raw"][0]
    raw = sim.preprocess(raw)  # camera offset and frame gains taken away first
    kw = {"wiener": 0.1, "background_percentile": None, "normalise_intensity": False}
    whole, params = sim.reconstruct(raw, OPTICS, **kw)
    assert sim_halo(OPTICS) == 70
    tiled, used, w = reconstruct_tiled(raw, OPTICS, params=params, tile=64, **kw)
    tiled = tiled.compute()
    assert tiled.shape == whole.shape and w == 0.1 and used is params
    inner = np.abs(tiled - whole)[32:-32, 32:-32]
    assert inner.max() <= 1e-2 * np.abs(whole).max()
    short, _, _ = reconstruct_tiled(raw, OPTICS, params=params, tile=64, halo=4, **kw)
    assert np.abs(short.compute() - whole)[32:-32, 32:-32].max() > 1e-2 * np.abs(whole).max()
    one, p1, _ = reconstruct_tiled(raw, OPTICS, tile=256)
    ref, p2 = sim.reconstruct(raw, OPTICS)
    np.testing.assert_array_equal(one.compute(), ref)
    np.testing.assert_array_equal(p1.phases, p2.phases)


def test_tiled_reconstruction_estimates_once_on_the_centre():
    """Parameters from the central tile, moved to the image origin, and the per-image
    preprocessing scalars: close to the whole image's estimate and reconstruction."""
    from dps_stages.sim.reconstruction import reconstruct_tiled

    rng = np.random.default_rng([2024, 15])
    raw = simulate_sample("er", 192, OPTICS, rng, levels=[1000])["raw"][0].astype(np.float32)
    whole, p_whole = sim.reconstruct(raw, OPTICS)
    tiled, p_tiled, _ = reconstruct_tiled(raw, OPTICS, tile=128)
    np.testing.assert_allclose(p_tiled.k, p_whole.k, atol=2e-3)
    dphi = np.angle(np.exp(1j * (p_tiled.phases - p_whole.phases)))
    assert np.abs(dphi).max() < 0.2
    inner = (slice(32, -32), slice(32, -32))
    ref = whole[inner]
    assert np.corrcoef(tiled.compute()[inner].ravel(), ref.ravel())[0, 1] > 0.98


def test_frame_spectra_are_computed_once(samples):
    """The reconstruction shares the nine frame spectra between the estimation, the zero band,
    the Wiener parameter and the noise map: one FFT per frame, the periodic-smooth
    decomposition done on the spectra (no 2-D transform of its own), 79 two-dimensional
    transforms in all for one acquisition (97 with the real-space decomposition, 118 when each
    step transformed the frames again). The result equals the one made from separately
    estimated parameters (the same spectra, fresh transforms)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fft_count import counting_ffts

    frames = samples["microtubules"]["raw"][1]
    with counting_ffts() as counts:
        out, params = sim.reconstruct(frames, OPTICS)
    by_function = {}
    for site, n in counts.items():
        fn = site.split(":")[1]
        by_function[fn] = by_function.get(fn, 0) + n
    assert by_function["periodic_spectra"] == pytest.approx(9, abs=0.5)  # frames; 1-D edges
    assert "reconstruct" not in by_function and "periodic_smooth_decomposition" not in by_function
    assert "_zero_band" not in by_function and "_auto_wiener" not in by_function
    assert sum(counts.values()) <= 79
    again, _ = sim.reconstruct(frames, OPTICS, params=sim.estimate_parameters(frames, OPTICS))
    np.testing.assert_allclose(again, out, rtol=0, atol=1e-6 * np.abs(out).max())


def test_periodic_spectra_equal_the_real_space_decomposition(rng):
    """Moisan's decomposition done on the spectra (separable boundary transform) equals the
    transforms of the real-space one; the periodic part's spectrum has no cross: its
    periodic extension has no jump, so its mean |p_hat|^2 on the axes is that of the rest."""
    from scipy import fft as sfft

    from dps_stages.sim.otf import periodic_smooth_decomposition, periodic_spectra

    ramp = np.linspace(0.0, 40.0, 80, dtype=np.float32)
    u = (rng.random((3, 64, 80)) * 10.0).astype(np.float32) + ramp  # a jump across x
    p, s = periodic_smooth_decomposition(u)
    p_hat, s_hat = periodic_spectra(u)
    for got, ref in ((p_hat, sfft.fft2(p.astype(np.float64))), (s_hat, sfft.fft2(s))):
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(p_hat + s_hat, sfft.fft2(u), rtol=0, atol=1e-5 * np.abs(u).sum())
    axis_power = np.mean(np.abs(p_hat[:, 0, 1:]) ** 2)
    raw_axis_power = np.mean(np.abs(sfft.fft2(u)[:, 0, 1:]) ** 2)
    assert axis_power < 0.05 * raw_axis_power


def test_an_unaberrated_pupil_reconstructs_as_the_ideal_otf(samples):
    """``pupil`` with every term 0 is the ideal pupil computed numerically
    (:class:`dps_stages.optics.PupilOTF`, the disc sampled on the grid) instead of the
    analytic OTF: the same reconstruction within 2 % of its maximum (1.4 % measured), and
    a real OTF, so no phase: correlation above 0.9999."""
    frames = samples["microtubules"]["raw"][1]
    ideal, params = sim.reconstruct(frames, OPTICS)
    numeric, _ = sim.reconstruct(frames, OPTICS, params=params, pupil={5: 0.0, 7: 0.0})
    assert np.abs(numeric - ideal).max() < 0.02 * np.abs(ideal).max()
    assert np.corrcoef(numeric.ravel(), ideal.ravel())[0, 1] > 0.9999


def test_reconstruct_reports_the_wiener_parameter_it_used(samples):
    """``info`` receives the ``"auto"`` parameter as a number, which reproduces the output."""
    raw = samples["microtubules"]["raw"][0]
    info: dict = {}
    auto, _ = sim.reconstruct(raw, OPTICS, info=info)
    assert isinstance(info["wiener"], float) and info["wiener"] > 0
    again, _ = sim.reconstruct(raw, OPTICS, wiener=info["wiener"])
    np.testing.assert_array_equal(again, auto)
    from dps_stages.sim.reconstruction import reconstruct_tiled

    _, _, w = reconstruct_tiled(raw, OPTICS, tile=256)
    assert w == info["wiener"]
