"""Tests of dps_stages.register: sub-pixel registration by phase correlation."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from dps_stages.register import (
    estimate_shift,
    periodic_component,
    register,
    shift_image,
    valid_region,
)


def filaments(n: int = 96, seed: int = 0) -> np.ndarray:
    """A periodic fluorescence-like image: random lines (wrapped around the borders) blurred
    by a Gaussian PSF (wrapped), so that a circular shift is an exact translation."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n))
    t = np.linspace(0.0, 1.0, 4 * n)
    for _ in range(10):
        y0, x0 = rng.uniform(0, n, 2)
        a = rng.uniform(0, np.pi)
        y = np.floor(y0 + (t - 0.5) * n * np.sin(a)).astype(int) % n
        x = np.floor(x0 + (t - 0.5) * n * np.cos(a)).astype(int) % n
        img[y, x] = rng.uniform(50, 150)
    return ndi.gaussian_filter(img, 2.0, mode="wrap") + 10.0


def fourier_shifted(img: np.ndarray, d: tuple[float, float]) -> np.ndarray:
    """``img(x - d)``, circularly (exact for a band-limited periodic image)."""
    return np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(img), d)).real


@pytest.mark.parametrize("normalization,noise", [(None, 1.0), ("phase", 0.0)])
@pytest.mark.parametrize("true", [(2.37, -1.61), (-0.42, 0.85)])
def test_recovers_known_subpixel_shift(true, normalization, noise):
    """Plain cross-correlation with noise; phase correlation only without: it weights the
    noise beyond the blur's band as much as the signal (see the module docstring)."""
    rng = np.random.default_rng(7)
    ref = filaments()
    moving = fourier_shifted(ref, (-true[0], -true[1]))  # ref(x) = moving(x - true)
    moving = moving + rng.normal(0, noise, moving.shape)  # noise 1 ~ 1-2 % of the peak
    shift, error = estimate_shift(moving, ref, normalization=normalization, periodic=False)
    np.testing.assert_allclose(shift, true, atol=0.05)
    if normalization is None:  # skimage's error is not meaningful after phase normalisation
        assert 0.0 <= error < 0.2


@pytest.mark.parametrize("true", [(2.37, -1.61), (-0.42, 0.85), (5.5, 3.2)])
def test_recovers_shift_between_two_crops_of_a_field(true):
    """Two crops of one field (non-periodic borders, unlike a circular shift)."""
    rng = np.random.default_rng(11)
    field = filaments(300, seed=5)
    ref = fourier_shifted(field, true)[50:250, 50:250]
    moving = field[50:250, 50:250] + rng.normal(0, 1.0, (200, 200))
    shift, _ = estimate_shift(moving, ref)
    np.testing.assert_allclose(shift, true, atol=0.05)


def test_periodic_component():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:50]
    u = 3.0 * yy + 0.5 * xx + rng.normal(0, 1, (40, 50))  # a ramp: large border jumps
    p = periodic_component(u)
    s = u - p
    # the jump across each border of p is that of the noise only, far below the ramp's
    assert np.abs(p[-1, :] - p[0, :]).mean() < 3.0 < np.abs(u[-1, :] - u[0, :]).mean()
    assert np.abs(p[:, -1] - p[:, 0]).mean() < 3.0 < np.abs(u[:, -1] - u[:, 0]).mean()
    # s is smooth (harmonic inside): its discrete Laplacian vanishes away from the borders
    lap = s[:-2, 1:-1] + s[2:, 1:-1] + s[1:-1, :-2] + s[1:-1, 2:] - 4 * s[1:-1, 1:-1]
    np.testing.assert_allclose(lap[1:-1, 1:-1], 0.0, atol=1e-9)
    np.testing.assert_allclose(p.mean(), u.mean(), atol=1e-9)


def test_shift_is_independent_of_scale_and_offset():
    ref = filaments(seed=3)
    moving = 5.0 * fourier_shifted(ref, (1.3, -0.7)) + 400.0
    shift, _ = estimate_shift(moving, ref, periodic=False)
    np.testing.assert_allclose(shift, (-1.3, 0.7), atol=0.05)


def test_register_aligns_the_image():
    ref = filaments(seed=1)
    moving = fourier_shifted(ref, (-3.25, 1.5))
    out = register(moving, ref, periodic=False)
    np.testing.assert_allclose(out.shift, (3.25, -1.5), atol=0.05)
    rows, cols = out.valid
    assert (rows, cols) == (slice(4, 96), slice(0, 94))
    inner = (slice(8, -8), slice(8, -8))  # away from the resampled borders and the wrap
    before = np.abs(moving[inner] - ref[inner]).max()
    after = np.abs(out.image[inner] - ref[inner]).max()
    assert after < 0.05 * before
    assert out.image.dtype == np.float64


def test_register_with_a_given_shift_applies_it():
    img = filaments(seed=2).astype(np.float32)
    out = register(img, img, shift=(2.0, -1.0))
    np.testing.assert_allclose(out.image[10:-10, 10:-10], img[8:-12, 11:-9], atol=1e-4)
    assert np.isnan(out.error)
    assert out.image.dtype == np.float32


def test_shift_image_sign_convention():
    img = np.zeros((16, 16))
    img[5, 7] = 1.0
    out = shift_image(img, (2, -3), order=1)
    assert np.unravel_index(np.argmax(out), out.shape) == (7, 4)


def test_valid_region():
    assert valid_region((10, 12), (0.2, -2.5)) == (slice(1, 10), slice(0, 9))
    assert valid_region((10, 12), (0.0, 0.0)) == (slice(0, 10), slice(0, 12))
    with pytest.raises(ValueError, match="no overlap"):
        valid_region((10, 12), (10.5, 0.0))


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        estimate_shift(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="2D"):
        estimate_shift(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    bad = np.zeros((8, 8))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        register(bad, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="normalization"):
        estimate_shift(np.ones((8, 8)), np.ones((8, 8)), normalization="bogus")
