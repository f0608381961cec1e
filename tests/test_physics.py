"""Physics operators: adjointness, flux, numpy/torch agreement, SIM pattern properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from dps_stages.physics import BOUNDARIES, Binning, Blur, SIMForward, SIMIllumination

RNG = np.random.default_rng(0)
PSF_EVEN = np.outer(*(2 * [np.exp(-0.5 * (np.arange(7) - 3.0) ** 2 / 1.5**2)]))
PSF_EVEN /= PSF_EVEN.sum()
PSF_ODD = RNG.random((5, 5))
PSF_ODD /= PSF_ODD.sum()
K = np.array([[4.0, 12.0], [10.0, -6.0], [-8.0, 5.0]]) / 64  # on the 64-point FFT grid
PHASES = np.array([0.3, 1.0, 2.0])[:, None] + 2 * np.pi * np.arange(3)[None, :] / 3


def _adjoint_gap(op, x: np.ndarray) -> float:
    ax = op.A(x)
    y = RNG.standard_normal(ax.shape)
    aty = op.A_adjoint(y)
    assert aty.shape == x.shape
    lhs, rhs = float(np.vdot(ax, y)), float(np.vdot(x, aty))
    return abs(lhs - rhs) / max(abs(lhs), 1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("psf", [PSF_EVEN, PSF_ODD], ids=["even", "odd"])
def test_blur_adjoint_numpy_and_torch(boundary: str, psf: np.ndarray) -> None:
    x = RNG.standard_normal((2, 17, 20))
    op = Blur(psf, boundary=boundary)
    assert _adjoint_gap(op, x) < 1e-10
    xt = torch.as_tensor(x)
    axt = op.A(xt)
    np.testing.assert_allclose(axt.numpy(), op.A(x), atol=1e-10)
    y = torch.as_tensor(RNG.standard_normal(tuple(axt.shape)))
    np.testing.assert_allclose(op.A_adjoint(y).numpy(), op.A_adjoint(y.numpy()), atol=1e-10)


def test_unit_sum_psf_keeps_flux() -> None:
    """Periodic: any unit-sum PSF keeps the sum; the mirror boundary: an even one (DCT)."""
    x = RNG.random((24, 18))
    for psf, boundary in [(PSF_EVEN, "periodic"), (PSF_ODD, "periodic"), (PSF_EVEN, "symmetric")]:
        out = Blur(psf, boundary=boundary).A(x)
        assert out.sum() == pytest.approx(x.sum(), rel=1e-6)
    assert Blur(PSF_EVEN, boundary="symmetric").uses_dct()


def test_blur_matches_direct_convolution_and_otf() -> None:
    x = RNG.random((16, 16))
    big = np.pad(x, 2, mode="wrap")
    ref = fftconvolve(big, PSF_ODD, mode="valid")
    np.testing.assert_allclose(Blur(PSF_ODD).A(x), ref, atol=1e-6)
    placed = np.zeros((16, 16))
    placed[:5, :5] = PSF_ODD
    otf = np.fft.fft2(np.roll(placed, (-2, -2), axis=(0, 1)))
    np.testing.assert_allclose(Blur(otf=otf).A(x), ref, atol=1e-6)
    # the symmetric boundary is a half-sample mirror; the DCT path equals the mirrored FFT
    mir = np.pad(x, 3, mode="symmetric")
    np.testing.assert_allclose(
        Blur(PSF_EVEN, boundary="symmetric").A(x), fftconvolve(mir, PSF_EVEN, "valid"), atol=1e-6
    )
    refl = fftconvolve(np.pad(x, 2, mode="reflect"), PSF_ODD, "valid")
    np.testing.assert_allclose(Blur(PSF_ODD, boundary="reflect").A(x), refl, atol=1e-10)


def test_blur_per_example_psf_torch_is_differentiable() -> None:
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    h = torch.rand(3, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    for boundary in ("valid", "periodic"):
        out = Blur(h, boundary=boundary).A(x)
        ref = Blur(h.detach().numpy(), boundary=boundary).A(x.numpy())
        np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)
        (g,) = torch.autograd.grad(out.sum(), h)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_binning_adjoint_and_mean() -> None:
    op = Binning(4)
    x = RNG.standard_normal((3, 16, 8))
    assert _adjoint_gap(op, x) < 1e-6
    np.testing.assert_allclose(op.A(np.ones((8, 8))), 1.0)
    xt = torch.as_tensor(x)
    np.testing.assert_allclose(op.A(xt).numpy(), op.A(x), atol=1e-6)


def test_pattern_mean_over_phases_is_one_and_peak_at_k() -> None:
    ill = SIMIllumination(K, PHASES, [0.8, 0.7, 0.9])
    pats = ill.patterns((64, 64))
    np.testing.assert_allclose(pats.reshape(3, 3, 64, 64).mean(axis=1), 1.0, atol=1e-12)
    x = RNG.random((64, 64))
    np.testing.assert_allclose(ill.A(x).reshape(3, 3, 64, 64).mean(axis=1)[0], x, atol=1e-12)
    f = np.fft.fftfreq(64)
    for a in range(3):
        spec = np.abs(np.fft.fft2(pats[3 * a]))
        spec[0, 0] = 0.0
        iy, ix = np.unravel_index(np.argmax(spec), spec.shape)
        peak = np.array([f[iy], f[ix]])
        assert np.allclose(peak, K[a], atol=1e-9) or np.allclose(peak, -K[a], atol=1e-9)
        # amplitude m / 2 at +-k
        assert spec[iy, ix] / pats[0].size == pytest.approx(ill.modulation[a] / 2, rel=1e-9)


def test_sim_forward_adjoint_torch_agrees_and_widefield() -> None:
    ill = SIMIllumination(K, PHASES, 0.8, factor=2)
    fwd = SIMForward(ill, Blur(PSF_EVEN))
    x = RNG.random((32, 32))
    assert _adjoint_gap(fwd, x) < 1e-6  # numpy binning gives float32
    y = fwd.A(x)
    assert y.shape == (9, 16, 16)
    xt = torch.as_tensor(x, dtype=torch.float64).requires_grad_(True)
    yt = fwd.A(xt)
    np.testing.assert_allclose(yt.detach().numpy(), y, atol=1e-6)
    (g,) = torch.autograd.grad((yt**2).sum(), xt)
    np.testing.assert_allclose(g.numpy(), 2 * fwd.A_adjoint(y), atol=1e-5)
    widefield = Binning(2).A(Blur(PSF_EVEN).A(x))
    np.testing.assert_allclose(y.reshape(3, 3, 16, 16).mean(axis=1)[1], widefield, atol=1e-6)


def test_blur_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Blur()
    with pytest.raises(ValueError, match="boundary"):
        Blur(PSF_ODD, boundary="wrap")
    with pytest.raises(ValueError, match="odd"):
        Blur(np.ones((4, 4)), boundary="zero")
