"""PSF identification: the Zernike PSF model, the simulated data, the loss and PSFNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from dps_stages.nets.psfnet import DEFAULT_ARCH, PAPER_ARCH, PSFNet
from dps_stages.noise import acquisition_chain
from dps_stages.optics import airy_psf, fwhm, zernike_psf
from dps_stages.psf_id import (
    NOLL,
    PSFData,
    PSFIdentificationLoss,
    evaluate,
    identify,
    normalise_observation,
    psnr,
    psnr_psf,
    random_psf,
    reblur,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_data(**kw) -> PSFData:
    return PSFData(patch=32, psf_size=11, **kw)


# ------------------------------------------------------------------------------ PSF model


@pytest.mark.parametrize("fc", [0.1, 0.2])
def test_zernike_without_aberrations_is_the_airy_pattern(fc):
    wavelength, na = 500.0, 1.0
    pixel = fc * wavelength / na  # fc = NA pixel / lambda
    size = 31
    z = zernike_psf(size, {}, fc)
    a = airy_psf(size, wavelength, na, pixel, oversample=1)
    assert np.abs(z - a).max() < 1e-3 * a.max()
    c = size // 2
    expected = 0.5145 * wavelength / na / pixel  # FWHM 0.51 lambda / NA, in pixels
    assert fwhm(z[c]) == pytest.approx(expected, rel=0.03)
    assert fwhm(z[:, c]) == pytest.approx(expected, rel=0.03)


def test_random_psf_is_a_deterministic_unit_sum_psf_within_range():
    theta_max, fc_range = 0.2, (0.13, 0.22)
    for seed in range(4):
        h, theta, fc = random_psf(np.random.default_rng(seed), 21, theta_max, fc_range)
        assert h.shape == (21, 21) and h.dtype == np.float32
        assert h.min() >= 0 and h.sum() == pytest.approx(1.0, abs=1e-5)
        assert theta.shape == (len(NOLL),) and np.all(np.abs(theta) <= theta_max)
        assert fc_range[0] <= fc <= fc_range[1]
        h2, theta2, fc2 = random_psf(np.random.default_rng(seed), 21, theta_max, fc_range)
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(theta, theta2)
        assert fc == fc2
    h3, _, _ = random_psf(np.random.default_rng(99), 21, theta_max, fc_range)
    assert not np.allclose(h, h3)
    _, _, fixed = random_psf(np.random.default_rng(0), 21, theta_max, fc=0.17)
    assert fixed == 0.17


def test_sign_of_even_aberrations_is_not_identifiable_but_odd_ones_rotate():
    # pure defocus: h(+t) == h(-t) exactly (the pupil phase is even, so h is centrosymmetric,
    # and flipping the phase's sign rotates h by 180 degrees)
    np.testing.assert_allclose(
        zernike_psf(21, {4: 0.2}, 0.15), zernike_psf(21, {4: -0.2}, 0.15), atol=1e-7
    )
    even = {4: 0.2, 5: 0.1, 6: -0.07, 11: 0.05}
    np.testing.assert_allclose(
        zernike_psf(21, even, 0.15),
        zernike_psf(21, {j: -t for j, t in even.items()}, 0.15),
        atol=1e-7,
    )
    # coma: the opposite sign is the PSF rotated by 180 degrees, a different PSF
    plus, minus = zernike_psf(21, {7: 0.2}, 0.15), zernike_psf(21, {7: -0.2}, 0.15)
    assert np.abs(plus - minus).max() > 0.1 * plus.max()
    np.testing.assert_allclose(plus, minus[::-1, ::-1], atol=1e-7)


# ------------------------------------------------------------------------------ data


def test_acquisition_mean_is_gain_photons_blur_plus_offset():
    rng = np.random.default_rng(0)
    h, _, _ = random_psf(rng, 11, 0.1)
    x = rng.random((26, 26)).astype(np.float32)
    clean = fftconvolve(x, h, mode="valid")  # 16 x 16
    photons, gain, offset, sigma = 300.0, 2.0, 100.0, 1.5
    chain = acquisition_chain(photons, read_noise=sigma, gain=gain, offset=offset, bits=16)
    reps = 300
    y = np.stack([chain(clean, rng) for _ in range(reps)])
    expected = gain * photons * clean + offset
    std = np.sqrt(gain**2 * (photons * clean + sigma**2) + 1 / 12)
    z = (y.mean(axis=0) - expected) / (std / np.sqrt(reps))
    assert np.abs(z).max() < 5
    assert abs(z.mean()) < 5 / np.sqrt(z.size)


def test_example_y_is_the_blur_in_object_units():
    data = _tiny_data(p_salt_pepper=0.0)
    rng = np.random.default_rng(3)
    for _ in range(4):
        e = data.example(rng)
        cam = e["camera"]
        # y = (y_adu - o) / (g gamma): its residual to h * x is zero-mean noise
        var = (cam["photons"] * e["clean"] + cam["read_noise"] ** 2) / cam["photons"] ** 2
        resid = (e["y"] - e["clean"]).mean()
        assert abs(resid) < 5 * np.sqrt(var.mean() / e["y"].size) + 1e-3 / cam["photons"]


def test_object_crop_is_aligned_with_the_measurement():
    data = _tiny_data(p_salt_pepper=0.0)
    e = data.example(np.random.default_rng(5))
    r = 11 // 2
    blurred = fftconvolve(e["x"], e["h"], mode="valid")
    np.testing.assert_allclose(blurred, e["clean"][r:-r, r:-r], atol=1e-5)


def test_psfdata_batches_are_reproducible_per_seed():
    data = _tiny_data(give_params=True)
    a_in, a_t = data.sampler(32, 4, np.random.default_rng(7)).batch(3)
    b_in, b_t = data.sampler(32, 4, np.random.default_rng(7)).batch(3)
    c_in, c_t = data.sampler(32, 4, np.random.default_rng(8)).batch(3)
    assert a_in.shape == (3, 3, 32, 32) and a_in.dtype == torch.float32
    assert [t.shape for t in a_t] == [(3, 1, 11, 11), (3, 1, 32, 32), (3, 1, 32, 32)]
    assert torch.equal(a_in, b_in) and all(torch.equal(u, v) for u, v in zip(a_t, b_t, strict=True))
    assert not torch.equal(a_in, c_in) and not torch.equal(a_t[0], c_t[0])
    # the parameter channels are constant; the image channel is normalised
    assert torch.all(a_in[:, 1:] == a_in[:, 1:, :1, :1])
    assert a_in[:, 0].min() >= -1 and a_in[:, 0].max() <= 2
    v1, v2 = data.validation(4, 64), data.validation(4)
    assert v1[0].shape == (16, 3, 32, 32) and torch.equal(v1[0], v2[0])
    assert _tiny_data(give_params=True).digest() == data.digest()
    assert _tiny_data(give_params=True, seed=1).digest() != data.digest()
    assert len(data) == 10000 and data.description["psf_size"] == 11


def test_normalise_observation_ignores_hot_pixels():
    rng = np.random.default_rng(0)
    y = 100 + 50 * rng.random((32, 32)).astype(np.float32)
    hot = y.copy()
    hot[3, 4] = hot[20, 9] = 65535
    a, b = normalise_observation(y), normalise_observation(hot)
    mask = np.ones_like(y, dtype=bool)
    mask[3, 4] = mask[20, 9] = False
    np.testing.assert_allclose(a[mask], b[mask], atol=0.05)
    assert b.max() == 2.0


# ------------------------------------------------------------------------------ loss


def test_reblur_is_the_valid_true_convolution():
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 20, 20)).astype(np.float32)
    h = rng.random((2, 1, 5, 5)).astype(np.float32)  # not symmetric: convolution != correlation
    out = reblur(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    for i in range(2):
        np.testing.assert_allclose(out[i, 0], fftconvolve(x[i, 0], h[i, 0], "valid"), atol=1e-5)


def test_loss_is_zero_for_the_true_psf_without_noise_and_positive_otherwise():
    data = _tiny_data()
    b = data.draw(np.random.default_rng(1), 3)
    h, x = torch.from_numpy(b["h"]), torch.from_numpy(b["x"])
    clean, noisy = torch.from_numpy(b["clean"]), torch.from_numpy(b["y"])
    loss = PSFIdentificationLoss(lam=1.0)
    assert float(loss(h, (h, x, clean))) == pytest.approx(0.0, abs=1e-6)
    assert loss.last["psf"] == 0.0 and loss.last["reblur"] < 1e-6
    assert set(loss.last) == {"psf", "reblur", "total"}
    other = torch.roll(h, 1, dims=-1)
    assert float(loss(other, (h, x, clean))) > 0.01
    assert loss.last["psf"] > 0 and loss.last["reblur"] > 0
    assert loss.last["total"] == pytest.approx(loss.last["psf"] + loss.last["reblur"], rel=1e-5)
    assert float(loss(h, (h, x, noisy))) > 0


# ------------------------------------------------------------------------------ network


def test_psfnet_output_is_a_unit_sum_psf():
    torch.manual_seed(0)
    for arch in (dict(DEFAULT_ARCH), dict(DEFAULT_ARCH, in_channels=3, psf_size=25)):
        net = PSFNet(**arch)
        assert PSFNet(**net.arch).arch == arch == net.arch
        assert net.multiple == 16 and net.scale == 1 and net.out_channels == 1
        assert net.local is False
        x = torch.rand(2, arch["in_channels"], 64, 64)
        h = net(x)
        k = arch["psf_size"]
        assert h.shape == (2, 1, k, k)
        assert torch.all(h >= 0)
        torch.testing.assert_close(h.sum(dim=(1, 2, 3)), torch.ones(2))
        assert net(torch.rand(1, arch["in_channels"], 48, 48)).shape == (1, 1, k, k)
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 40, 40))
    assert set(PAPER_ARCH) == set(DEFAULT_ARCH)


def test_psfnet_learns_on_a_tiny_problem():
    torch.manual_seed(0)
    data = _tiny_data()
    inputs, targets = data.sampler(32, 8, np.random.default_rng(0)).batch(16)
    net = PSFNet(in_channels=1, patch=32, psf_size=11, width=8, depth=3)
    loss_fn = PSFIdentificationLoss()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(loss_fn(net(inputs), targets))
    for _ in range(40):
        loss = loss_fn(net(inputs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn(net(inputs), targets))
    assert last < 0.7 * first


# ------------------------------------------------------------------------------ use


def test_identify_a_large_image_deterministically():
    torch.manual_seed(0)
    net = PSFNet(in_channels=1, patch=32, psf_size=11, width=8, depth=3)
    rng = np.random.default_rng(0)
    image = 100 + 1000 * rng.random((90, 70)).astype(np.float32)
    h = identify(net, image, n_patches=4)
    assert h.shape == (11, 11) and h.min() >= 0 and h.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(h, identify(net, image, n_patches=4))
    assert identify(net, image[:20, :25]).shape == (11, 11)  # smaller than a patch: padded
    net3 = PSFNet(in_channels=3, patch=32, psf_size=11, width=8, depth=3)
    with pytest.raises(ValueError, match="fc"):
        identify(net3, image)
    assert identify(net3, image, fc=0.2, theta_max=0.1).shape == (11, 11)


def test_psnr_and_evaluate():
    ref = np.array([[0.0, 1.0], [0.5, 0.25]])
    assert psnr(ref, ref) == float("inf")
    # mse 0.01, peak 1: 20 dB
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert psnr_psf(ref[None, None] + 0.1, ref) == pytest.approx(20.0)
    torch.manual_seed(0)
    net = PSFNet(in_channels=1, patch=32, psf_size=11, width=8, depth=3)
    res = evaluate(net, n=4, seed=0, batch=2)
    for key in ("psnr_psf", "psnr_reblur", "psnr_reblur_measured", "l1_psf"):
        assert np.isfinite(res[key]) and np.isfinite(res[f"{key}_mean_psf"])
    assert res["n"] == 4
