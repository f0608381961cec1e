"""Tests of dps_stages.metrics: comparison protocol, decorrelation analysis, FRC."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dps_stages.metrics import (
    DecorrelationResult,
    FRCResult,
    apodise,
    compare,
    decorrelation,
    fit_scale_offset,
    frc,
    normalise_percentile,
)
from dps_stages.metrics.decorrelation_analysis import prepare

# kc of the authors' MATLAB code (ImDecorr getDcorr, r = linspace(0, 1, 50), Ng = 10, after
# apodImRect(image, 20)), from shared/data/README.md; kept once, beside the paper page's claims
from dps_stages.paper import REFERENCE_KC

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bandlimited_noise(shape: tuple[int, int], kc0: float, seed: int) -> np.ndarray:
    """White noise low-passed by a hard disc at kc0 (normalised frequency, 1 = Nyquist)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal(shape))
    ky = 2.0 * np.fft.fftfreq(shape[0])[:, None]
    kx = 2.0 * np.fft.fftfreq(shape[1])[None, :]
    spectrum[np.hypot(ky, kx) >= kc0] = 0.0
    return np.fft.ifft2(spectrum).real


def smooth_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap")


def direct_dcorr(image: np.ndarray, radii: np.ndarray, g: float | None) -> np.ndarray:
    """d(r) mask by mask, straight from the formula (slow; for cross-checking)."""
    x = prepare(image, 20)  # apodised, odd FFT-friendly sides
    ny, nx = x.shape
    spec = np.fft.fft2(x)
    ky = np.fft.fftfreq(ny) * ny / ((ny - 1) / 2)
    kx = np.fft.fftfreq(nx) * nx / ((nx - 1) / 2)
    r2 = ky[:, None] ** 2 + kx[None, :] ** 2
    inside = r2 < 1.0
    big_i = np.where(inside, spec, 0.0)
    if g is not None:
        big_i = big_i * (1.0 - np.exp(-2.0 * g * g * r2))
    amp = np.abs(spec)
    i_n = np.where(inside & (amp > 0), spec / np.where(amp > 0, amp, 1.0), 0.0)
    c = np.sqrt(np.sum(np.abs(big_i) ** 2))
    out = []
    for r in radii:
        m = r2 < r * r
        num = np.sum((big_i * np.conj(i_n) * m).real)
        den = c * np.sqrt(np.sum(np.abs(i_n * m) ** 2))
        out.append(num / den if den > 0 else 0.0)
    return np.array(out)


# --------------------------------------------------------------------------- compare


def test_compare_identical_images_are_perfect():
    ref = smooth_image((64, 64), 0)
    scores = compare(ref, ref)
    assert set(scores) == {"psnr", "ssim", "nrmse"}
    assert scores["psnr"] == math.inf or scores["psnr"] > 100
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert scores["nrmse"] == pytest.approx(0.0, abs=1e-9)


def test_compare_affine_candidate_is_perfect_after_fit():
    ref = smooth_image((64, 64), 1)
    scores = compare(3.0 * ref + 7.0, ref)
    assert scores["psnr"] == math.inf or scores["psnr"] > 100
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert scores["nrmse"] < 1e-5


def test_compare_psnr_matches_independent_computation():
    rng = np.random.default_rng(2)
    ref = smooth_image((128, 128), 3)
    cand = ref + 0.05 * ref.std() * rng.standard_normal(ref.shape)

    # the protocol written out by hand
    def norm(x):
        lo, hi = np.percentile(x, [0.1, 99.9])
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    r_n, c_n = norm(ref), norm(cand)
    a, b = np.polyfit(c_n.ravel(), r_n.ravel(), 1)
    mse = np.mean((a * c_n + b - r_n) ** 2)
    expected = 10.0 * np.log10(1.0 / mse)
    scores = compare(cand, ref)
    assert scores["psnr"] == pytest.approx(expected, abs=1e-3)
    assert scores["nrmse"] == pytest.approx(
        np.sqrt(np.sum((a * c_n + b - r_n) ** 2) / np.sum(r_n**2)), rel=1e-4
    )
    assert 0.0 < scores["ssim"] < 1.0


def test_compare_worse_candidate_scores_lower():
    rng = np.random.default_rng(4)
    ref = smooth_image((96, 96), 5)
    mild = ref + 0.05 * ref.std() * rng.standard_normal(ref.shape)
    strong = ref + 0.5 * ref.std() * rng.standard_normal(ref.shape)
    s_mild, s_strong = compare(mild, ref), compare(strong, ref)
    assert s_mild["psnr"] > s_strong["psnr"]
    assert s_mild["ssim"] > s_strong["ssim"]
    assert s_mild["nrmse"] < s_strong["nrmse"]


def test_compare_shape_mismatch_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(10, 12\).*\(10, 11\)"):
        compare(np.zeros((10, 12)), np.zeros((10, 11)))


def test_compare_rejects_non_2d():
    with pytest.raises(ValueError, match="2D"):
        compare(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))


def test_normalise_percentile_range_dtype_and_flat_image():
    x = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    out = normalise_percentile(x)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    assert out.min() == 0.0 and out.max() == 1.0
    flat = normalise_percentile(np.full((8, 8), 5.0))
    assert np.all(np.isfinite(flat)) and np.all(flat == 0.0)


def test_fit_scale_offset_recovers_affine_map():
    ref = smooth_image((32, 32), 6)
    cand = (ref - 1.5) / 4.0
    np.testing.assert_allclose(fit_scale_offset(cand, ref), ref, atol=1e-12)
    const = fit_scale_offset(np.ones((4, 4)), ref[:4, :4])
    np.testing.assert_allclose(const, ref[:4, :4].mean())


# --------------------------------------------------------------------------- decorrelation


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 64), (61, 40)])
def test_decorrelation_curves_equal_direct_formula(shape):
    image = np.random.default_rng(7).standard_normal(shape).cumsum(0).cumsum(1)
    res = decorrelation(image)
    np.testing.assert_allclose(res.d0, direct_dcorr(image, res.radii0, None), atol=1e-6)
    np.testing.assert_allclose(
        res.d_first[3], direct_dcorr(image, res.radii0, float(res.g_first[3])), atol=1e-6
    )
    np.testing.assert_allclose(
        res.d_refined[2],
        direct_dcorr(image, res.radii_refined, float(res.g_refined[2])),
        atol=1e-6,
    )


@pytest.mark.parametrize("kc0", [0.3, 0.5, 0.8])
def test_decorrelation_finds_band_limit(kc0):
    image = bandlimited_noise((256, 256), kc0, seed=int(kc0 * 10))
    res = decorrelation(image)
    assert res.kc == pytest.approx(kc0, rel=0.03)
    assert res.resolution_px == pytest.approx(2.0 / res.kc)
    assert 0.05 < res.a0 <= 1.0


@pytest.mark.parametrize("name", sorted(REFERENCE_KC))
def test_decorrelation_matches_authors_code(name):
    tifffile = pytest.importorskip("tifffile")
    path = DATA / name
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (shared/data is outside the repo)")
    res = decorrelation(tifffile.imread(path))
    assert res.kc == pytest.approx(REFERENCE_KC[name], rel=0.02)


def test_decorrelation_constant_image_gives_zero():
    res = decorrelation(np.full((64, 64), 3.0))
    assert res.kc == 0.0
    assert res.a0 == 0.0
    assert math.isinf(res.resolution_px)
    assert res.to_dict()["resolution_px"] is None


def test_decorrelation_flat_image_with_one_step_does_not_crash():
    image = np.zeros((64, 64))
    image[:, 32:] = 1.0
    res = decorrelation(image, apodise_px=0)
    assert 0.0 <= res.kc <= 1.0
    assert np.all(np.isfinite(res.d0))


def test_decorrelation_blurring_lowers_kc():
    obj = bandlimited_noise((256, 256), 0.8, seed=11)
    noise = 0.05 * obj.std() * np.random.default_rng(12).standard_normal(obj.shape)
    kcs = [
        decorrelation(ndimage.gaussian_filter(obj, s, mode="wrap") + noise).kc
        for s in (0.0, 1.5, 2.0, 3.0)
    ]
    assert kcs[0] == pytest.approx(0.8, rel=0.03)
    assert all(a > b for a, b in zip(kcs, kcs[1:], strict=False)), kcs


def test_decorrelation_pixel_size_dtype_and_transpose():
    image = bandlimited_noise((96, 128), 0.5, seed=13)
    res = decorrelation(image, pixel_size=30.0)
    assert res.resolution_nm == pytest.approx(res.resolution_px * 30.0)
    # scale, offset and integer dtype do not change the result
    as_int = np.round((image - image.min()) * 1000).astype(np.uint16)
    assert decorrelation(as_int).kc == pytest.approx(res.kc, abs=1e-3)
    # the radius is normalised per axis, so transposing changes nothing
    assert decorrelation(image.T).kc == pytest.approx(res.kc, abs=1e-9)
    # R = k / ((n - 1) / 2) after cropping to odd n: about 1 / n above 2 k / n on a small image
    assert res.kc == pytest.approx(0.5, rel=0.05)


def test_decorrelation_result_shapes_and_dict():
    res = decorrelation(bandlimited_noise((64, 64), 0.5, seed=14), n_r=40, n_g=6)
    assert isinstance(res, DecorrelationResult)
    assert res.d0.shape == res.radii0.shape == (40,)
    assert res.d_first.shape == (7, 40)
    assert res.d_refined.shape == (6, 40)
    assert res.kc_candidates.shape == (13,)
    d = res.to_dict(curves=True)
    json.dumps(d)
    assert {"kc", "a0", "resolution_px", "resolution_nm"} <= set(d)
    with pytest.raises(AttributeError):
        res.kc = 1.0  # frozen


def test_decorrelation_rejects_bad_input():
    with pytest.raises(ValueError, match="2D"):
        decorrelation(np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="too small"):
        decorrelation(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="apodise_px"):
        decorrelation(np.zeros((16, 16)), apodise_px=-1)


def test_apodise_edges_take_the_mean():
    image = np.random.default_rng(15).random((50, 40))
    out = apodise(image, 10)
    mean = image.mean()
    np.testing.assert_allclose(out[0], mean)
    np.testing.assert_allclose(out[:, -1], mean)
    np.testing.assert_allclose(out[10:-10, 10:-10], image[10:-10, 10:-10])
    np.testing.assert_allclose(out[9, 9], image[9, 9])  # the innermost tapered pixel has w = 1


# --------------------------------------------------------------------------- FRC


@pytest.mark.parametrize("kc0", [0.3, 0.5, 0.8])
def test_frc_of_two_noisy_realisations_finds_band_limit(kc0):
    obj = bandlimited_noise((256, 256), kc0, seed=20 + int(10 * kc0))
    rng = np.random.default_rng(21)
    s = obj.std()
    a = obj + 0.5 * s * rng.standard_normal(obj.shape)
    b = obj + 0.5 * s * rng.standard_normal(obj.shape)
    res = frc(a, b, apodise_px=0)  # the object is periodic: no edge to apodise
    assert isinstance(res, FRCResult)
    assert res.threshold_reached
    assert res.resolution_px == pytest.approx(2.0 / kc0, rel=0.05)
    # with the default apodisation, a little finer (the taper spreads the hard band edge)
    res_apod = frc(a, b)
    assert 0.8 * 2.0 / kc0 < res_apod.resolution_px <= 1.01 * 2.0 / kc0


def test_frc_identical_images_is_one():
    image = np.random.default_rng(22).standard_normal((128, 96))
    res = frc(image, image, pixel_size=40.0)
    np.testing.assert_allclose(res.curve, 1.0, atol=1e-9)
    assert not res.threshold_reached
    assert res.resolution_px == pytest.approx(2.0)
    assert res.resolution_nm == pytest.approx(80.0)
    assert res.frequencies[0] == 0.0 and res.frequencies[-1] == pytest.approx(0.5)
    json.dumps(res.to_dict(curves=True))


def test_frc_independent_noise_has_no_correlation():
    rng = np.random.default_rng(23)
    res = frc(rng.standard_normal((128, 128)), rng.standard_normal((128, 128)), smooth=1)
    assert abs(float(np.mean(res.curve[10:]))) < 0.02
    assert res.resolution_px > 20


def test_frc_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\(16, 16\).*\(16, 17\)"):
        frc(np.zeros((16, 16)), np.zeros((16, 17)))


def test_compare_censored_fit_recovers_a_clipped_reference():
    """A reference clipped at 0 (a real SIM reference's black background) and the unclipped
    image it came from: the censored fit scores it perfect, the fit over all pixels not."""
    rng = np.random.default_rng(5)
    truth = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64)), 2.0)
    reference = np.clip(truth, 0, None)  # 0 over about half of the pixels
    candidate = 3.0 * truth + 7.0
    censored = compare(candidate, reference, fit="censored")
    plain = compare(candidate, reference)
    assert censored["ssim"] > 0.999
    assert plain["ssim"] < 0.9
    with pytest.raises(ValueError, match="fit must be"):
        compare(candidate, reference, fit="bogus")
