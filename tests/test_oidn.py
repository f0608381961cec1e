"""OIDN (Jin et al. 2024): shapes, parameter count, the constrained PSF, its losses, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dps_stages.losses import (
    OIDNLoss,
    charbonnier_fft,
    psf_energy_loss,
    psf_prior_loss,
    psf_symmetry_loss,
)
from dps_stages.nets.oidn import DEFAULT_ARCH, OIDN, PAPER_ARCH, RadialPSF
from dps_stages.optics import airy_psf, fwhm, sr_psf

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = {"frames": 9, "width": 8, "groups": 1, "blocks": 1, "group_conv": 2}


def tiny(seed: int = 0, **over) -> OIDN:
    torch.manual_seed(seed)
    return OIDN(**(TINY | over))


def conv_params(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin * cout * k * k // groups + cout


def oidn_params(
    frames: int,
    width: int,
    groups: int,
    blocks: int,
    group_conv: int,
    psf_size: int = 15,
    n_radial: int = 11,
    psf_sigma: float = 1.0,
) -> int:
    c, m = width, max(width // 4, 4)
    addb = (
        conv_params(c, c, 3)
        + conv_params(c, c, 3, group_conv)
        + conv_params(2 * c, 2 * c, 1)
        + conv_params(2 * c, m, 1)
        + conv_params(m, 2 * c, 1)
    )
    addg = blocks * addb + conv_params(c, c, 3)
    return (
        conv_params(frames, c, 3)
        + groups * addg
        + conv_params(c, c, 3)
        + conv_params(c, 4 * c, 3)
        + conv_params(c, 1, 3)
        + n_radial
    )


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def assert_constrained(h: torch.Tensor) -> None:
    """Non-negative, unit sum, exactly invariant under rot90, transpose and flips."""
    assert (h >= 0).all()
    assert float(h.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(h, torch.rot90(h, 1, (0, 1)))
    assert torch.equal(h, h.T)
    assert torch.equal(h, h.flip(0))
    assert torch.equal(h, h.flip(1))


# --------------------------------------------------------------------------------- network


def test_shapes_and_attributes():
    net = tiny()
    x = torch.rand(2, 9, 32, 32)
    out = net(x)
    assert out.shape == (2, 1, 64, 64)
    assert net.object(x).shape == (2, 1, 64, 64)
    assert (net.scale, net.multiple, net.in_channels, net.out_channels) == (2, 1, 9, 1)
    assert net.local is False
    # odd and tiny sizes work (no down-sampling; replicate padding below the PSF radius)
    assert net(torch.rand(1, 9, 13, 7)).shape == (1, 1, 26, 14)
    assert net(torch.rand(1, 9, 3, 3)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="takes"):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(NotImplementedError, match="whole images"):
        net.receptive_halo()


def test_forward_is_the_degraded_object():
    net = tiny()
    x = torch.rand(1, 9, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), net.degrade(net.object(x)))
        # a unit-sum PSF keeps the flux of a constant object exactly (mirror padding)
        flat = torch.full((1, 1, 20, 20), 0.7)
        assert torch.allclose(net.degrade(flat), flat, atol=1e-6)


def test_global_dependence():
    # FFT branch and global pooling: one input pixel (a corner) changes the output far
    # beyond the convolutions' reach (a few pixels), in the opposite quadrant
    net = tiny()
    x = torch.rand(1, 9, 24, 24)
    x2 = x.clone()
    x2[0, :, 0, 0] += 1.0
    with torch.no_grad():
        diff = (net(x2) - net(x)).abs()
    far = diff[..., 24:, 24:]
    assert (far > 0).float().mean() > 0.95


def test_arch_rebuild_and_json():
    net = tiny(group_conv=4, psf_size=11, n_radial=7, psf_sigma=1.5)
    arch = json.loads(json.dumps(net.arch))
    assert arch == net.arch
    twin = OIDN(**arch)
    twin.load_state_dict(net.state_dict())
    x = torch.rand(1, 9, 16, 16)
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))
    assert set(DEFAULT_ARCH) == set(net.arch) == set(PAPER_ARCH)
    assert OIDN(**DEFAULT_ARCH).arch == DEFAULT_ARCH


def test_bad_arch():
    with pytest.raises(ValueError, match="multiple of group_conv"):
        OIDN(width=10, group_conv=4)
    with pytest.raises(ValueError, match="odd"):
        OIDN(psf_size=14)
    with pytest.raises(ValueError, match="n_radial"):
        OIDN(n_radial=1)


@pytest.mark.parametrize(
    "arch",
    [
        TINY,
        TINY | {"groups": 2, "blocks": 3, "width": 12, "group_conv": 3},
        TINY | {"width": 32, "group_conv": 4, "n_radial": 5},
    ],
)
def test_parameter_count_is_analytic(arch):
    assert count(OIDN(**arch)) == oidn_params(**arch)


def test_default_and_paper_counts():
    assert oidn_params(**DEFAULT_ARCH) == 34_748
    assert oidn_params(**PAPER_ARCH) == 1_409_548
    assert count(OIDN(**DEFAULT_ARCH)) == 34_748


def test_count_scales_with_groups_and_blocks():
    base = oidn_params(**TINY)
    one_group = oidn_params(**(TINY | {"groups": 2})) - base
    one_block = oidn_params(**(TINY | {"blocks": 2})) - base
    assert oidn_params(**(TINY | {"groups": 4})) - base == 3 * one_group
    assert oidn_params(**(TINY | {"blocks": 4})) - base == 3 * one_block


# --------------------------------------------------------------------------------- PSF


def test_psf_constraints_at_init():
    net = tiny()
    h = net.psf()
    assert h.shape == (15, 15)
    assert_constrained(h.detach())
    # rings of equal radius hold equal values: (0, 5) and (3, 4) from the centre
    assert h[7, 12] == h[10, 11]
    # Gaussian initialisation: the profile at the knots is exp(-r^2 / 2 sigma^2) (peak 1)
    psf = RadialPSF(15, 11, sigma=2.0)
    r = np.asarray(psf.knots)
    np.testing.assert_allclose(
        psf.profile().detach().numpy(), np.exp(-(r**2) / 8.0).clip(1e-8), rtol=1e-4, atol=1e-7
    )


def test_psf_stays_constrained_under_optimisation():
    # the optimiser would like a PSF peaked off-centre and with negative lobes
    net = tiny()
    want = torch.zeros(15, 15)
    want[3, 9] = 1.0
    want[7, 7] = -0.5
    opt = torch.optim.Adam(net.psf_module.parameters(), lr=0.1)
    first = None
    for _ in range(40):
        loss = ((net.psf() - want) ** 2).sum()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first  # it did move
    h = net.psf().detach()
    assert_constrained(h)
    assert float(psf_prior_loss(h)) < 1e-10


@pytest.mark.parametrize("kind", ["airy", "sr"])
def test_set_psf_from_theoretical(kind):
    # 525 nm, NA 1.4, 65 nm camera pixel: the 2x grid has 32.5 nm pixels
    if kind == "airy":
        ref = airy_psf(15, 525.0, 1.4, 32.5)
    else:
        ref = sr_psf(15, 525.0, 1.4, 32.5, 1.9)
    net = tiny()
    net.set_psf_from(ref)
    h = net.psf().detach().numpy()
    assert_constrained(net.psf().detach())
    assert np.abs(h - ref).max() < 0.02 * ref.max()
    assert fwhm(h[7]) == pytest.approx(fwhm(ref[7]), rel=0.02)
    # a larger PSF is cropped about its centre to the kernel and renormalised
    big = airy_psf(31, 525.0, 1.4, 32.5)
    net.set_psf_from(big)
    crop = big[8:23, 8:23] / big[8:23, 8:23].sum()
    assert np.abs(net.psf().detach().numpy() - crop).max() < 0.02 * crop.max()


def test_psf_losses_zero_for_symmetric_positive_for_perturbed():
    d = torch.arange(15, dtype=torch.float64) - 7
    g = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / 8.0)
    g = g / g.sum()
    assert float(psf_energy_loss(g)) < 1e-28
    assert float(psf_symmetry_loss(g)) < 1e-28
    assert float(psf_energy_loss(g[None, None])) < 1e-28
    # energy: scaled by 1.1 -> (1.1 - 1)^2
    assert float(psf_energy_loss(1.1 * g)) == pytest.approx(0.01)
    assert float(psf_symmetry_loss(1.1 * g)) < 1e-28  # scale invariant
    # symmetry: a pixel moved off one ring (same sum)
    bad = g.clone()
    bad[7, 8] += 0.01
    bad[7, 6] -= 0.01
    assert float(psf_symmetry_loss(bad)) > 1e-4
    assert float(psf_energy_loss(bad)) < 1e-28
    shifted = torch.roll(g, 1, dims=1)
    assert 0 < float(psf_symmetry_loss(shifted)) <= 1
    with pytest.raises(ValueError, match="odd"):
        psf_symmetry_loss(torch.ones(4, 4))


# --------------------------------------------------------------------------------- losses


def test_charbonnier_fft_formula():
    eps = 1e-3
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    assert float(charbonnier_fft(x, x, eps)) == pytest.approx(2 * eps, rel=1e-12)
    x32 = x.float()
    assert float(charbonnier_fft(x32, x32, eps)) == pytest.approx(2 * eps, rel=1e-6)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    d = np.fft.fft2((x - y).numpy(), norm="ortho")
    want = (np.sqrt(d.real**2 + eps**2) + np.sqrt(d.imag**2 + eps**2)).mean()
    assert float(charbonnier_fft(x, y, eps)) == pytest.approx(want, rel=1e-12)
    # grows with the difference
    noise = torch.randn_like(x)
    values = [float(charbonnier_fft(x + t * noise, x, eps)) for t in (0.0, 1e-3, 1e-2, 1e-1)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_oidn_loss_terms_and_gradient_into_psf():
    net = tiny()
    loss = OIDNLoss()
    assert loss.w == 0.8
    x = torch.rand(2, 9, 16, 16)
    y = torch.rand(2, 1, 32, 32)
    # unbound: no PSF term
    loss(net(x).detach(), y)
    assert loss.last["psf"] == 0.0
    loss.bind(net)
    assert list(loss.parameters()) == []  # the model is not a submodule of the loss
    total = loss(net(x), y)
    total.backward()
    last = loss.last
    assert set(last) == {"l1", "ssim", "psf", "charbonnier", "total"}
    assert all(isinstance(v, float) for v in last.values())
    want = 0.8 * last["l1"] + 0.2 * last["ssim"] + 1e-3 * last["psf"] + 0.01 * last["charbonnier"]
    assert last["total"] == pytest.approx(want, rel=1e-6)
    assert last["psf"] < 1e-10
    grad = net.psf_module.theta.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().max() > 0


def test_oidn_loss_bind_initialises_psf():
    ref = sr_psf(15, 525.0, 1.4, 32.5, 1.9)
    net = tiny()
    OIDNLoss(init_psf=ref).bind(net)
    assert np.abs(net.psf().detach().numpy() - ref).max() < 0.02 * ref.max()
    with pytest.raises(TypeError, match="psf"):
        OIDNLoss().bind(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="w must"):
        OIDNLoss(w=1.5)


def _train(steps: int = 30) -> list[float]:
    net = tiny(seed=0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 9, 16, 16, generator=g)
    y = torch.nn.functional.interpolate(x.mean(1, keepdim=True), scale_factor=2, mode="bilinear")
    loss_fn = OIDNLoss()
    loss_fn.bind(net)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    history = []
    for _ in range(steps):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert_constrained(net.psf().detach())
    return history


def test_training_reduces_loss_deterministically():
    history = _train()
    assert history[-1] < 0.6 * history[0]
    assert _train() == history
