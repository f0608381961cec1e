"""Tests of dps_stages.background: rolling-ball background (Sternberg 1983, ImageJ)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.restoration import rolling_ball

from dps_stages.background import rolling_ball_background, shrink_factor, subtract_background


def fluorescence_like(n=192, seed=0):
    """Smooth background (gradient + broad Gaussian blobs) + sparse thin bright
    filaments and spots, with Poisson noise (photon counts)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    background = 20 + 30 * xx + 15 * yy
    for _ in range(4):
        cy, cx = rng.uniform(0, 1, 2)
        s, a = rng.uniform(0.15, 0.3), rng.uniform(20, 50)
        background += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    structures = np.zeros((n, n))
    t = np.linspace(0, 1, 4 * n)
    for _ in range(8):  # gently curved filaments, one pixel wide before blurring
        y0, x0 = rng.uniform(0, n, 2)
        angle, bend = rng.uniform(0, 2 * np.pi), rng.normal(0, 2)
        length = rng.uniform(0.2, 0.5) * n
        y = (y0 + np.cumsum(np.sin(angle + bend * t)) * length / t.size).astype(int)
        x = (x0 + np.cumsum(np.cos(angle + bend * t)) * length / t.size).astype(int)
        keep = (y >= 0) & (y < n) & (x >= 0) & (x < n)
        structures[y[keep], x[keep]] = rng.uniform(100, 300)
    k = n * n // 1000
    structures[rng.integers(0, n, k), rng.integers(0, n, k)] += rng.uniform(200, 800, k)
    structures = 4 * ndi.gaussian_filter(structures, 1.2)
    return rng.poisson(background + structures).astype(np.float32)


def exact_opening(image, radius):
    """The exact grey opening by the ball, from scikit-image alone: its rolling_ball is
    the erosion; the dilation is -erosion(-eroded) (the ball is symmetric)."""
    eroded = rolling_ball(image, radius=radius)
    return -rolling_ball(-eroded, radius=radius)


def agreement(a, b, image):
    """Pearson correlation of the subtracted images, max |a - b| relative to the range."""
    corr = np.corrcoef((image - a).ravel(), (image - b).ravel())[0, 1]
    return corr, np.abs(a - b).max() / np.ptp(image)


@pytest.fixture(scope="module")
def image():
    return fluorescence_like(192, seed=1)


# --- agreement with the reference ------------------------------------------------------


@pytest.fixture(scope="module")
def exact(image):
    cache = {}

    def get(radius):
        if radius not in cache:
            cache[radius] = exact_opening(image, radius)
        return cache[radius]

    return get


@pytest.mark.parametrize("radius", [12, 25])
def test_agrees_with_skimage_rolling_ball(image, exact, radius):
    # skimage's rolling_ball is the erosion alone (the apex of the ball centred at each
    # pixel); ours is the opening (erosion then dilation: the envelope of the balls, as
    # ImageJ and DPS), which lies between that erosion and the image. The gap between the
    # two definitions, measured exactly with skimage below, is ~2.4-2.5 % of the range on
    # this noisy 192 px image; the shrinking adds at most 1.5 % (next tests). So the bound
    # is gap + 1.5 %, and at most 3 %. The subtracted images must correlate >= 0.99.
    reference = rolling_ball(image, radius=radius)
    ours = rolling_ball_background(image, radius)
    corr, rel = agreement(ours, reference, image)
    _, gap = agreement(exact(radius), reference, image)
    assert corr >= 0.99
    assert rel <= gap + 0.015
    assert rel < 0.03
    assert np.all(exact(radius) >= reference - 1e-4)  # opening >= erosion


def test_exact_mode_is_the_opening(image, exact):
    # shrink=False computes (f ⊖ b) ⊕ b exactly, with skimage's edge handling
    radius = 9.5
    ours = rolling_ball_background(image, radius, shrink=False)
    np.testing.assert_allclose(ours, exact(radius), atol=1e-5 * np.ptp(image))


@pytest.mark.parametrize(("radius", "shrink"), [(12, True), (25, True), (25, 4), (40, 8)])
def test_shrinking_stays_close_to_the_exact_opening(image, exact, radius, shrink):
    # block minima + a coarse ball + bilinear enlargement. Measured here: 1.1 % of the range
    # for radius 12 / s=2 (a coarse ball of only 6 px), <= 0.8 % otherwise; 0.1-0.5 % at
    # radius 50 on 512-2048 px images (benchmarks/bench_background.py).
    ours = rolling_ball_background(image, radius, shrink=shrink)
    corr, rel = agreement(ours, exact(radius), image)
    assert corr >= 0.999
    assert rel < 0.015


# --- properties with a known answer ----------------------------------------------------


@pytest.mark.parametrize("shrink", [True, False])
def test_flat_image_subtracts_to_zero(shrink):
    flat = np.full((64, 80), 123.5, dtype=np.float32)
    np.testing.assert_allclose(subtract_background(flat, 20, shrink=shrink), 0.0, atol=1e-4)


@pytest.mark.parametrize("shrink", [True, False])
def test_smooth_background_is_removed(shrink):
    # constant + ramp + a Gaussian far broader and flatter than the ball: its curvature
    # (40 / 60**2 ~ 0.011 per pixel) is well below the ball's (1 / 15 ~ 0.067), so the ball
    # follows the surface and almost nothing should remain. Shrinking (s=2 here) leaves a
    # small offset: a block's minimum sits ~(s-1)/2 px downhill of its centre, i.e.
    # ~|grad f|_1 (s-1)/2 ~ 0.3 grey levels here (0.4 % of the range).
    n = 160
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    blob = 40 * np.exp(-((yy - 70) ** 2 + (xx - 90) ** 2) / (2 * 60.0**2))
    smooth = 50 + 0.2 * xx - 0.1 * yy + blob
    residual = subtract_background(smooth, 15, shrink=shrink)
    assert residual.min() >= 0
    assert residual.max() < 0.01 * np.ptp(smooth)
    assert residual.mean() < (0.005 if shrink else 0.0005) * np.ptp(smooth)


@pytest.mark.parametrize("shrink", [True, False])
def test_narrow_spot_survives_with_full_height(shrink):
    # a spot (sigma 1.5 px) much narrower than the ball (radius 20) on a tilted plane:
    # the ball cannot enter it, so its full height remains after subtraction
    n = 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    base = 10 + 0.1 * xx + 0.05 * yy
    spot = 100 * np.exp(-((yy - 64) ** 2 + (xx - 50) ** 2) / (2 * 1.5**2))
    out = subtract_background(base + spot, 20, shrink=shrink)
    assert out[64, 50] >= 0.97 * 100
    far = np.hypot(yy - 64, xx - 50) > 8
    assert np.abs(out[far]).max() < 1.0  # the plane itself is removed


@pytest.mark.parametrize("shrink", [True, False, 2, 8])
def test_background_below_image_and_dtype(image, shrink):
    counts = image.astype(np.uint16)
    background = rolling_ball_background(counts, 14, shrink=shrink)
    assert background.dtype == np.float32
    assert background.shape == counts.shape
    assert np.all(background <= counts)
    subtracted = subtract_background(counts, 14, shrink=shrink)
    assert subtracted.dtype == np.float32
    assert subtracted.min() >= 0
    np.testing.assert_array_equal(subtracted, counts.astype(np.float32) - background)


@pytest.mark.parametrize("shape", [(3, 56, 48), (2, 9, 40, 36)])
def test_stacks_are_processed_image_by_image(shape):
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 20, shape[-1], dtype=np.float32)
    stack = rng.poisson(30, size=shape).astype(np.float32) + ramp
    radius = 12  # shrink factor 2
    out = rolling_ball_background(stack, radius)
    assert out.shape == shape and out.dtype == np.float32
    flat = stack.reshape((-1,) + shape[-2:])
    expected = np.stack([rolling_ball_background(im, radius) for im in flat]).reshape(shape)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(rolling_ball_background(stack, radius, workers=1), expected)


def test_shrink_factor_follows_imagej():
    assert [shrink_factor(r) for r in (5, 10, 10.5, 30, 31, 100, 101)] == [1, 1, 2, 2, 4, 4, 8]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0, -3, float("nan"), float("inf")])
def test_bad_radius_raises(radius):
    with pytest.raises(ValueError, match=f"radius.*{radius!r}"):
        rolling_ball_background(np.ones((16, 16)), radius)
    with pytest.raises(ValueError, match="radius"):
        subtract_background(np.ones((16, 16)), radius)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_image_raises(bad):
    image = np.ones((16, 16))
    image[3, 4] = bad
    with pytest.raises(ValueError, match="non-finite"):
        rolling_ball_background(image, 5)


@pytest.mark.parametrize("shrink", [0, -2, 1.5, "4"])
def test_bad_shrink_raises(shrink):
    with pytest.raises(ValueError, match="shrink"):
        rolling_ball_background(np.ones((16, 16)), 5, shrink=shrink)


def test_one_dimensional_input_raises():
    with pytest.raises(ValueError, match="2 axes"):
        rolling_ball_background(np.ones(16), 5)
