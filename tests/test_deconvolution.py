"""Deconvolution: Richardson-Lucy and sparse (Hessian) deconvolution against their properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft
from scipy import ndimage
from skimage.restoration import richardson_lucy as sk_richardson_lucy

from dps_stages.deconvolution import (
    hessian_weights,
    richardson_lucy,
    sparse_hessian,
    sparse_hessian_denoise,
)
from dps_stages.deconvolution.sparse import _apply, _neumann_eigenvalues
from dps_stages.metrics import compare
from dps_stages.optics import airy_psf, fwhm

# 525 nm, NA 1.4, 65 nm pixels: an Airy PSF with a FWHM of 2.97 px
PSF = airy_psf(21, 525.0, 1.4, 65.0)


def _blur(x: np.ndarray, psf: np.ndarray = PSF) -> np.ndarray:
    return ndimage.convolve(np.asarray(x, np.float64), psf.astype(np.float64), mode="reflect")


def _point_source(n: int = 64, photons: float = 2e4, seed: int = 0) -> tuple[np.ndarray, int]:
    """A point source (plus a dim background) blurred by the PSF, with Poisson noise."""
    obj = np.full((n, n), 0.002)
    c = n // 2
    obj[c, c] = 1.0
    blurred = _blur(obj)
    rng = np.random.default_rng(seed)
    return (rng.poisson(photons * blurred) / photons).astype(np.float32), c


def _sparse_scene(n: int, seed: int, count: int, sigma: float = 1.5) -> np.ndarray:
    """Sparse bright spots of a few pixels' width on a dark background, max 1."""
    rng = np.random.default_rng(seed)
    obj = np.zeros((n, n))
    idx = rng.integers(4, n - 4, (count, 2))
    obj[idx[:, 0], idx[:, 1]] = rng.uniform(0.5, 1.0, count)
    obj = ndimage.gaussian_filter(obj, sigma)
    return (obj / obj.max()).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, float) - b) ** 2)))


# --------------------------------------------------------------------------- Richardson-Lucy


def test_rl_sharpens_a_point_source():
    y, c = _point_source()
    x = richardson_lucy(y, PSF, iterations=30)
    assert x.dtype == np.float32 and x.shape == y.shape
    blurred_fwhm = fwhm(y[c, c - 10 : c + 11])
    sharp_fwhm = fwhm(x[c, c - 10 : c + 11])
    assert blurred_fwhm == pytest.approx(2.97, rel=0.1)
    assert sharp_fwhm < 0.6 * blurred_fwhm
    assert x.max() > 3 * y.max()
    assert np.unravel_index(x.argmax(), x.shape) == (c, c)


@pytest.mark.parametrize("pad", [True, 12, False])
def test_rl_keeps_a_flat_image_flat(pad):
    y = np.full((48, 56), 37.5, dtype=np.float32)
    x = richardson_lucy(y, PSF, iterations=20, pad=pad)
    assert np.abs(x / 37.5 - 1).max() < 1e-3


@pytest.mark.parametrize(("pad", "rtol"), [(True, 1e-4), (21, 1e-2), (False, 1e-4)])
def test_rl_conserves_flux(pad, rtol):
    # mirror boundaries (DCT) and periodic ones keep the flux of the image exactly; padding
    # keeps it on the padded grid, and on the image to within what crosses the border (the
    # mirrored pad gives back about as much as it takes: measured < 1e-6 here)
    rng = np.random.default_rng(1)
    y = (rng.poisson(200 * _blur(_sparse_scene(64, 2, 30)) + 5)).astype(np.float32)
    x = richardson_lucy(y, PSF, iterations=30, pad=pad)
    assert x.sum(dtype=np.float64) == pytest.approx(y.sum(dtype=np.float64), rel=rtol)


def test_rl_is_non_negative_and_clips_negative_data():
    rng = np.random.default_rng(2)
    y = (_blur(_sparse_scene(64, 3, 20)) + 0.05 * rng.standard_normal((64, 64))).astype(np.float32)
    assert y.min() < 0
    x = richardson_lucy(y, PSF, iterations=25)
    assert x.min() >= 0
    np.testing.assert_allclose(x, richardson_lucy(np.maximum(y, 0), PSF, iterations=25))


def test_rl_stack_is_image_by_image():
    rng = np.random.default_rng(3)
    stack = rng.poisson(100 * _blur(_sparse_scene(48, 4, 15)) + 3, size=(2, 3, 48, 48))
    stack = stack.astype(np.float32)
    out = richardson_lucy(stack, PSF, iterations=10)
    assert out.shape == stack.shape
    for idx in np.ndindex(2, 3):
        np.testing.assert_array_equal(out[idx], richardson_lucy(stack[idx], PSF, iterations=10))


@pytest.mark.parametrize("asymmetric", [False, True])
def test_rl_matches_scikit_image_away_from_the_borders(asymmetric):
    """Same iteration as skimage.restoration.richardson_lucy (constant start, unit-sum PSF).

    The two differ at the borders only: skimage continues the image by zeros, this module by
    mirror reflection. One PSF size away from the border the difference (measured 1e-6 of
    the maximum after 30 iterations) is float32 rounding, so 1e-4 is a safe bound.
    """
    psf = PSF.astype(np.float64)
    if asymmetric:  # a coma-like tail: takes the padded-FFT path
        psf = psf + 0.5 * np.roll(psf, (2, 3), axis=(0, 1))
    psf = (psf / psf.sum()).astype(np.float32)
    rng = np.random.default_rng(4)
    y = rng.poisson(300 * _blur(_sparse_scene(96, 5, 40), psf) + 10).astype(np.float32)
    ours = richardson_lucy(y, psf, iterations=30)
    ref = sk_richardson_lucy(y, psf, num_iter=30, clip=False)
    m = 2 * psf.shape[0]
    inner = (slice(m, -m), slice(m, -m))
    assert np.abs(ours[inner] - ref[inner]).max() < 1e-4 * ref[inner].max()


@pytest.mark.parametrize("asymmetric", [False, True])
def test_rl_boundaries_are_mirror_reflections(asymmetric):
    """From a flat start the first iterate is h^T * y; with the image continued by mirror
    reflection (scipy.ndimage mode 'reflect', y(-1) = y(0)) it is exact up to the border, by
    the DCT (symmetric PSF) and by the padded FFT (any PSF) alike."""
    psf = PSF.astype(np.float64)
    if asymmetric:
        psf = psf + 0.5 * np.roll(psf, (2, 3), axis=(0, 1))
    psf /= psf.sum()
    y = np.random.default_rng(16).random((40, 52)).astype(np.float32) + 0.5
    x1 = richardson_lucy(y, psf, iterations=1)
    ref = ndimage.correlate(y.astype(np.float64), psf, mode="reflect")
    np.testing.assert_allclose(x1, ref, rtol=1e-5)


def test_rl_tolerance_stops_early():
    y, _ = _point_source(seed=5)
    once = richardson_lucy(y, PSF, iterations=1)
    np.testing.assert_array_equal(richardson_lucy(y, PSF, iterations=50, tol=np.inf), once)
    # a tolerance between the first and the later relative changes stops in between
    stopped = richardson_lucy(y, PSF, iterations=200, tol=1e-2)
    assert richardson_lucy(y, PSF, iterations=3).max() < stopped.max()
    assert stopped.max() < richardson_lucy(y, PSF, iterations=200).max()


def test_rl_acceleration_sharpens_faster():
    y, c = _point_source(seed=6)
    plain = richardson_lucy(y, PSF, iterations=10)
    fast = richardson_lucy(y, PSF, iterations=10, accelerate=True)
    assert fast.max() > 1.3 * plain.max()  # measured 1.53
    assert fast.min() >= 0
    assert fast.sum() == pytest.approx(y.sum(), rel=0.02)


def test_rl_rejects_bad_input():
    with pytest.raises(ValueError):
        richardson_lucy(np.zeros(5), PSF)
    with pytest.raises(ValueError):
        richardson_lucy(np.zeros((8, 8)), -PSF)
    with pytest.raises(ValueError):
        richardson_lucy(np.full((8, 8), np.nan), PSF)
    assert np.all(richardson_lucy(np.zeros((8, 8)), PSF) == 0)


# --------------------------------------------------------------------------- sparse Hessian


def test_hessian_weights_follow_the_paper():
    w = hessian_weights(0.5)
    assert w == pytest.approx(
        {"xx": 1, "yy": 1, "tt": 0.5, "xy": 2, "xt": 2 * np.sqrt(0.5), "yt": 2 * np.sqrt(0.5)}
    )


def test_quadratic_step_is_solved_exactly_by_the_dct():
    """sum_i w_i D_i^T D_i (reflecting boundaries) is diagonal in the DCT-II, eigenvalues
    products of 4 sin^2(pi k / 2n); the operators' adjoints are exact."""
    rng = np.random.default_rng(7)
    shape = (5, 6, 8)
    w = hessian_weights(0.7)
    g = rng.standard_normal(shape)
    v = rng.standard_normal(shape)
    for term in w:
        lhs = np.vdot(_apply(term, g, adjoint=False), v)
        assert lhs == pytest.approx(np.vdot(g, _apply(term, v, adjoint=True)), rel=1e-10)
    direct = sum(wk * _apply(k, _apply(k, g, adjoint=False), adjoint=True) for k, wk in w.items())
    lam = dict(
        zip(
            "tyx",
            np.meshgrid(*(_neumann_eigenvalues(n) for n in shape), indexing="ij"),
            strict=True,
        )
    )
    eig = sum(wk * lam[k[0]] * lam[k[1]] for k, wk in w.items())
    via_dct = sfft.idctn(sfft.dctn(g, type=2, norm="ortho") * eig, type=2, norm="ortho")
    np.testing.assert_allclose(direct, via_dct, atol=1e-10)


def test_sparse_hessian_keeps_a_flat_image_flat():
    f = np.full((40, 50), 7.0, dtype=np.float32)
    g = sparse_hessian_denoise(f)
    assert g.std() / g.mean() < 1e-5
    # the Hessian of a constant vanishes; the sparsity alone lowers it by sparsity / fidelity
    assert g.mean() == pytest.approx(7.0 * (1 - 10 / 150), rel=1e-4)
    np.testing.assert_allclose(sparse_hessian_denoise(f, sparsity=0), f, rtol=1e-5)


@pytest.mark.parametrize(("ay", "ax"), [(0.0, 0.3), (0.2, 0.3), (-0.25, 0.1)])
def test_sparse_hessian_leaves_a_ramp_unchanged(ay, ax):
    """An affine image has no second derivatives: with sparsity 0 it is a fixed point.

    Inside the image this holds to float32 rounding. At the border the reflecting (Neumann)
    boundary makes g_xx(0) = g(1) - g(0), the slope, so the border pixels move a little
    (measured 0.3 % of the maximum after the 100 default iterations, which are not yet
    converged; the minimiser itself moves them by about 2 / (n fidelity)).
    """
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    ramp = (40 + ay * yy + ax * xx).astype(np.float32)
    g = sparse_hessian_denoise(ramp, sparsity=0)
    err = np.abs(g - ramp) / ramp.max()
    assert err[8:-8, 8:-8].max() < 1e-4
    assert err.max() < 5e-3


def test_sparse_hessian_denoises_sparse_structures():
    clean = _sparse_scene(128, 8, 60)
    rng = np.random.default_rng(9)
    noisy = (rng.poisson(100 * clean + 5) / 100 - 0.05).astype(np.float32)
    g = sparse_hessian_denoise(noisy)
    # under the fixed protocol (scale and offset fitted: the sparsity lowers every value)
    assert compare(g, clean)["psnr"] > compare(noisy, clean)["psnr"] + 1.5
    # the Hessian term alone, plain PSNR
    assert _psnr(sparse_hessian_denoise(noisy, sparsity=0), clean) > _psnr(noisy, clean) + 3


def test_sparse_hessian_is_scale_equivariant_and_subtracts_the_background():
    clean = _sparse_scene(48, 10, 10)
    before = clean.copy()
    g = sparse_hessian_denoise(clean, iterations=30)
    np.testing.assert_array_equal(clean, before)  # the input is left alone
    np.testing.assert_allclose(
        sparse_hessian_denoise(250 * clean, iterations=30), 250 * g, rtol=1e-4, atol=1e-4 * 250
    )
    shifted = sparse_hessian_denoise(clean + 3.0, iterations=30, background=3.0)
    np.testing.assert_allclose(shifted, g, atol=1e-5)


def test_sparse_hessian_objective_decreases():
    clean = _sparse_scene(64, 11, 20)
    noisy = (np.random.default_rng(12).poisson(50 * clean + 5) / 50).astype(np.float32)
    g, hist = sparse_hessian_denoise(noisy, iterations=60, return_history=True)
    assert hist.shape == (61,)
    assert hist[-1] < 0.8 * hist[0]
    # split Bregman is not monotone step by step, but nearly so
    steps = np.diff(hist)
    assert np.mean(steps > 0) < 0.1
    assert steps.max() < 0.01 * (hist[0] - hist[-1])
    assert hist[-1] <= hist[-10:].max()


def test_full_sparse_deconvolution_sharpens_a_point_source():
    y, c = _point_source(photons=5e3, seed=13)
    x = sparse_hessian(y, psf=PSF)
    assert x.dtype == np.float32 and x.shape == y.shape and x.min() >= 0
    assert fwhm(x[c, c - 10 : c + 11]) < 0.7 * fwhm(y[c, c - 10 : c + 11])
    assert x.max() > 2 * y.max()
    fast = sparse_hessian(y, psf=PSF, deconv="rl-accelerated", deconv_iterations=7)
    assert fwhm(fast[c, c - 10 : c + 11]) < 0.7 * fwhm(y[c, c - 10 : c + 11])
    # without a PSF the method is step 1 alone
    np.testing.assert_array_equal(sparse_hessian(y), sparse_hessian_denoise(y))


def test_time_lapse_continuity_reduces_frame_to_frame_noise():
    clean = 0.2 + 0.8 * _sparse_scene(64, 14, 20, sigma=2.0)
    rng = np.random.default_rng(15)
    movie = (rng.poisson(200 * clean, size=(8, 64, 64)) / 200).astype(np.float32)
    still = sparse_hessian_denoise(movie, continuity=0.0)
    smooth, hist = sparse_hessian_denoise(movie, continuity=0.5, return_history=True)
    assert smooth.shape == movie.shape and smooth.dtype == np.float32
    assert hist.shape == (101,)
    noise_in = movie.std(axis=0).mean()
    noise_still = still.std(axis=0).mean()
    noise_smooth = smooth.std(axis=0).mean()
    assert noise_still < noise_in
    assert noise_smooth < 0.6 * noise_still
    # several series (..., t, y, x) are processed one by one
    both, hists = sparse_hessian_denoise(
        np.stack([movie, movie]), iterations=10, return_history=True
    )
    assert both.shape == (2, 8, 64, 64) and hists.shape == (2, 11)
    np.testing.assert_array_equal(both[1], sparse_hessian_denoise(movie, iterations=10))
    # with the full method, step 2 deconvolves every frame
    assert sparse_hessian(movie[:3], psf=PSF, iterations=10).shape == (3, 64, 64)


def test_sparse_hessian_rejects_bad_input():
    with pytest.raises(ValueError):
        sparse_hessian_denoise(np.zeros(4))
    with pytest.raises(ValueError):
        sparse_hessian_denoise(np.zeros((8, 8)), fidelity=0)
    with pytest.raises(ValueError):
        sparse_hessian_denoise(np.zeros((8, 8)), continuity=-1)
    with pytest.raises(ValueError):
        sparse_hessian(np.zeros((8, 8)), psf=PSF, deconv="wiener")  # type: ignore[arg-type]
    assert np.all(sparse_hessian_denoise(np.zeros((8, 8))) == 0)


# --------------------------------------------------------------------------------------------
# tile by tile


def _tiled_case():
    from scipy import ndimage as ndi

    from dps_stages.optics import Optics, psf_for

    rng = np.random.default_rng(140)
    psf = psf_for("airy", Optics(wavelength=525, na=1.4, pixel_size=65), (512, 512))
    obj = np.zeros((160, 192), np.float32)
    idx = rng.integers(0, 160, (150, 2))
    obj[idx[:, 0], idx[:, 1]] = rng.random(150) * 100
    img = ndi.convolve(ndi.gaussian_filter(obj, 1) + 1, psf, mode="reflect")
    return rng.poisson(img * 20).astype(np.float32), psf


@pytest.mark.parametrize("method", ["rl", "sparse"])
def test_deconvolution_by_tiles_equals_the_whole_image(method):
    """Tiles of 48 pixels with the halo of deconvolution_halo: within 1e-4 of the maximum
    (float rounding is about 1e-6); a stack that fits one tile gives exactly the same."""
    from dps_stages.deconvolution import deconvolution_halo, deconvolve_tiled

    img, psf = _tiled_case()
    stack = np.stack([img, img[::-1] * 0.5])
    if method == "rl":
        whole = np.stack([richardson_lucy(im, psf, iterations=20) for im in stack])
    else:
        whole = np.stack([sparse_hessian(im, psf=psf, iterations=30) for im in stack])
    halo = deconvolution_halo(psf, method)
    assert halo == 2 * psf.shape[0] + (16 if method == "sparse" else 0)
    tiled = deconvolve_tiled(stack, psf, method=method, tile=48, iterations=20 if method == "rl"
                             else 30).compute()  # fmt: skip
    assert tiled.shape == stack.shape
    for t, w in zip(tiled, whole, strict=True):
        assert np.abs(t - w).max() <= 1e-4 * w.max()
    one = deconvolve_tiled(stack, psf, method=method, tile=256,
                           iterations=20 if method == "rl" else 30).compute()  # fmt: skip
    np.testing.assert_array_equal(one, whole)
    # too small a halo is visibly wrong: the test can fail
    short = deconvolve_tiled(stack[:1], psf, method=method, tile=48, halo=2,
                             iterations=20 if method == "rl" else 30).compute()  # fmt: skip
    assert np.abs(short[0] - whole[0]).max() > 1e-3 * whole[0].max()
