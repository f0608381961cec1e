"""Optics: the Airy PSF, srPSF, OTF and Zernike PSFs against properties their formulas imply."""

from __future__ import annotations

import numpy as np
import pytest

from dps_stages.optics import (
    Optics,
    airy_psf,
    fwhm,
    noll_to_nm,
    otf_from_psf,
    sr_psf,
    widefield_otf,
    zernike,
    zernike_psf,
)


@pytest.mark.parametrize(("wavelength", "na"), [(525.0, 1.4), (670.0, 1.49), (488.0, 0.8)])
def test_airy_fwhm_is_0_5145_lambda_over_na(wavelength, na):
    pixel = wavelength / na / 40  # fine sampling: pixel integration negligible
    psf = airy_psf(161, wavelength, na, pixel, oversample=1)
    measured = fwhm(psf[80], spacing=pixel)
    assert measured == pytest.approx(0.5145 * wavelength / na, rel=0.02)


def test_psf_conserves_energy_and_is_rotationally_symmetric():
    psf = airy_psf(65, 525, 1.4, 32.5)
    assert psf.dtype == np.float32
    assert psf.sum() == pytest.approx(1.0, abs=1e-5)
    assert psf.min() >= 0
    np.testing.assert_allclose(psf, psf.T, atol=1e-7)
    np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-7)
    assert np.unravel_index(psf.argmax(), psf.shape) == (32, 32)


def test_sr_psf_is_narrower_by_the_modulation_factor():
    px = 10.0
    wide = fwhm(airy_psf(101, 525, 1.4, px, oversample=1)[50], px)
    narrow = fwhm(sr_psf(101, 525, 1.4, px, 1.9)[50], px)
    assert wide / narrow == pytest.approx(1.9, rel=0.03)


def test_otf_support_ends_at_2na_over_lambda():
    wavelength, na, px = 525.0, 1.4, 20.0
    shape = (256, 256)
    otf = widefield_otf(shape, wavelength, na, px)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256, px), np.fft.fftfreq(256, px), indexing="ij"))
    cutoff = 2 * na / wavelength
    assert otf[0, 0] == pytest.approx(1.0)
    assert np.all(otf[f > cutoff] == 0)
    assert np.all(otf[f < 0.95 * cutoff] > 0)
    # the sampled Airy PSF has the same band limit: its spectrum vanishes beyond the cutoff
    psf_otf = np.abs(otf_from_psf(airy_psf(255, wavelength, na, px, oversample=1), shape))
    assert psf_otf[f > 1.05 * cutoff].max() < 0.01
    assert psf_otf[(f > 0.8 * cutoff) & (f < 0.9 * cutoff)].min() > 0.01
    # and matches the analytic OTF inside it
    inside = f < 0.9 * cutoff
    np.testing.assert_allclose(psf_otf[inside], otf[inside], atol=0.03)


def test_noll_table():
    table = {1: (0, 0), 2: (1, 1), 3: (1, -1), 4: (2, 0), 5: (2, -2), 6: (2, 2), 7: (3, -1),
             8: (3, 1), 9: (3, -3), 10: (3, 3), 11: (4, 0)}  # fmt: skip
    for j, nm in table.items():
        assert noll_to_nm(j) == nm


def test_zernike_orthonormal_over_the_unit_disc():
    n = 801
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    rho, theta = np.hypot(y, x), np.arctan2(y, x)
    da = (2 / (n - 1)) ** 2
    zs = [zernike(j, rho, theta) for j in range(1, 12)]
    gram = np.array([[np.sum(a * b) * da for b in zs] for a in zs])
    np.testing.assert_allclose(gram, np.pi * np.eye(11), atol=0.02 * np.pi)


def test_zernike_psf_without_aberration_is_the_airy_pattern():
    optics = Optics(wavelength=525.0, na=1.4, pixel_size=40.0)
    fc = optics.na * optics.pixel_size / optics.wavelength
    airy = airy_psf(33, optics.wavelength, optics.na, optics.pixel_size, oversample=1)
    zern = zernike_psf(33, [0.0] * 8, fc)
    assert zern.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(zern, airy, atol=2e-3 * airy.max())


def test_defocus_broadens_and_symmetric_terms_stay_symmetric():
    fc = 0.2
    sharp = zernike_psf(33, {}, fc)
    defocused = zernike_psf(33, {4: 0.3}, fc)
    spherical = zernike_psf(33, {11: 0.2}, fc)
    assert defocused.max() < 0.7 * sharp.max()
    for psf in (defocused, spherical):
        np.testing.assert_allclose(psf, psf.T, atol=1e-6)
        np.testing.assert_allclose(psf, psf[::-1, :], atol=1e-6)
    coma = zernike_psf(33, {7: 0.3}, fc)
    assert not np.allclose(coma, coma[::-1, ::-1], atol=1e-4)  # coma is not symmetric


def test_rescale_psf_turns_the_airy_pattern_into_the_srpsf():
    """airy(NA) narrowed by f / 2 is airy(NA f) on the half-size pixel grid."""
    from dps_stages.optics import airy_psf, rescale_psf

    wide = airy_psf(63, 525.0, 1.4, 65.0)
    sr = airy_psf(31, 525.0, 1.4 * 1.9, 32.5)
    got = rescale_psf(wide, 1.9 / 2, size=31)
    assert abs(float(got.sum()) - 1) < 1e-5 and got.min() >= 0
    assert np.abs(got - sr).max() < 0.02 * sr.max()
