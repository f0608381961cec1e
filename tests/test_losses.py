"""Losses and regularisers of the DPS networks: each on a case with a known answer."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from dps_stages.deconvolution import hessian_weights
from dps_stages.losses import (
    NINE_LAYERS,
    ArtifactLoss,
    DBPNLoss,
    DenoiseLoss,
    PerceptualLoss,
    SIMLoss,
    fft_l1,
    hessian_penalty,
    l1,
    l1_sparsity,
    reblur_to_input,
    ssim_index,
    ssim_loss,
)
from dps_stages.nets.vgg import LAYER_INDEX, VGG16Features, load_vgg16


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row (y) and column (x) index grids, float32."""
    f32 = torch.float32
    return torch.meshgrid(torch.arange(h, dtype=f32), torch.arange(w, dtype=f32), indexing="ij")


def _blobs(n: int = 32, seed: int = 0) -> torch.Tensor:
    """A (1, 1, n, n) image of a few Gaussian spots and a line in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = _grid(n, n)
    img = torch.zeros(n, n)
    for _ in range(6):
        cy, cx = (torch.rand(2, generator=g) * (n - 8) + 4).tolist()
        img += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0)
    img += torch.exp(-((yy - xx * 0.5 - 5) ** 2) / 1.5)
    return (img / img.max())[None, None]


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k1 = torch.exp(-(t**2) / (2 * sigma**2))
    k = torch.outer(k1, k1)
    k = (k / k.sum())[None, None]
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), k)


def _airy_like(k: int = 7) -> torch.Tensor:
    """A small symmetric PSF (Gaussian), not normalised, to check normalisation too."""
    t = torch.arange(k, dtype=torch.float32) - k // 2
    return torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / 2.0) * 3.0


# --------------------------------------------------------------------------- Hessian


def test_hessian_of_affine_ramp_is_zero():
    yy, xx = _grid(12, 15)
    ramp = (0.3 * xx - 0.7 * yy + 2.0)[None, None].repeat(2, 3, 1, 1)
    assert hessian_penalty(ramp).item() == pytest.approx(0.0, abs=1e-5)
    # a ramp in t as well, time on axis 1
    t = torch.arange(5, dtype=torch.float32)[None, :, None, None]
    ramp_t = 0.3 * xx - 0.7 * yy + 0.5 * t + 1.0
    assert hessian_penalty(ramp_t, t_weight=0.8).item() == pytest.approx(0.0, abs=1e-5)


def test_hessian_of_quadratics_has_the_analytic_value():
    yy, xx = _grid(9, 11)
    # x^2: x_xx = 2, x_yy = x_xy = 0  ->  R = 2; y^2 likewise
    assert hessian_penalty((xx**2)[None, None]).item() == pytest.approx(2.0, abs=1e-6)
    assert hessian_penalty((yy**2)[None, None]).item() == pytest.approx(2.0, abs=1e-6)
    # x y: x_xy = 1 counted twice -> R = 2; 3 x^2 + x y -> 6 + 2
    assert hessian_penalty((xx * yy)[None, None]).item() == pytest.approx(2.0, abs=1e-6)
    assert hessian_penalty((3 * xx**2 + xx * yy)[None, None]).item() == pytest.approx(8.0)
    # t^2: x_tt = 2 weighted by w^2; t x: x_xt = 1 weighted by 2 w
    w = 0.6
    t = torch.arange(4, dtype=torch.float32)[None, :, None, None]
    assert hessian_penalty(t**2 + 0 * xx, t_weight=w).item() == pytest.approx(2 * w**2)
    assert hessian_penalty(t * xx, t_weight=w).item() == pytest.approx(2 * w)
    assert hessian_penalty(t * yy, t_weight=w).item() == pytest.approx(2 * w)


def test_hessian_time_weights_match_sparse_deconvolution():
    """``t_weight = sqrt(continuity)`` gives the weights of deconvolution.hessian_weights."""
    x = torch.rand(1, 4, 8, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = 0.49
    wts = hessian_weights(s)
    d = {
        "xx": x[..., 2:] - 2 * x[..., 1:-1] + x[..., :-2],
        "yy": x[..., 2:, :] - 2 * x[..., 1:-1, :] + x[..., :-2, :],
        "tt": x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2],
        "xy": torch.diff(torch.diff(x, dim=-2), dim=-1),
        "xt": torch.diff(torch.diff(x, dim=1), dim=-1),
        "yt": torch.diff(torch.diff(x, dim=1), dim=-2),
    }
    expected = sum(wts[k] * v.abs().mean() for k, v in d.items())
    assert hessian_penalty(x, t_weight=math.sqrt(s)).item() == pytest.approx(expected.item())
    # t_weight 0: the three spatial terms only
    spatial = sum(wts[k] * d[k].abs().mean() for k in ("xx", "yy", "xy"))
    assert hessian_penalty(x).item() == pytest.approx(spatial.item())


def test_hessian_gradient_and_errors():
    x = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: hessian_penalty(v, t_weight=0.5), (x,))
    with pytest.raises(ValueError, match="3 time points"):
        hessian_penalty(torch.rand(1, 2, 8, 8), t_weight=1.0)
    with pytest.raises(ValueError, match="3 x 3"):
        hessian_penalty(torch.rand(1, 1, 2, 8))


# --------------------------------------------------------------------------- L1, FFT-L1


def test_l1_and_sparsity():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    assert l1_sparsity(x).item() == pytest.approx(3.5 / 4)
    assert l1(x, torch.zeros_like(x)).item() == pytest.approx(3.5 / 4)
    assert l1(x, x).item() == 0.0


def test_fft_l1_known_values():
    x = torch.rand(2, 1, 16, 20, generator=torch.Generator().manual_seed(3))
    assert fft_l1(x, x).item() == 0.0
    # a constant offset lives at DC only: |c| sqrt(HW) over HW frequencies
    c = 0.37
    assert fft_l1(x + c, x).item() == pytest.approx(c / math.sqrt(16 * 20), rel=1e-4)
    # a cosine of amplitude A: two frequencies of modulus A sqrt(HW) / 2
    _, xx = _grid(16, 20)
    a = 0.8
    wave = a * torch.cos(2 * math.pi * 3 * xx / 20)
    assert fft_l1(x + wave, x).item() == pytest.approx(a / math.sqrt(16 * 20), rel=1e-4)
    y = torch.rand(2, 1, 16, 20, generator=torch.Generator().manual_seed(4))
    ref = np.abs(np.fft.fft2((x - y).double().numpy(), norm="ortho")).mean()
    assert fft_l1(x, y).item() == pytest.approx(ref, rel=1e-5)


def test_fft_l1_gradient_finite_at_zero_difference():
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    fft_l1(x, x.detach()).backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- SSIM


def test_ssim_identity_and_small_images():
    for n in (3, 5, 16, 32):
        x = torch.rand(2, 1, n, n, generator=torch.Generator().manual_seed(n))
        assert ssim_index(x, x).item() == pytest.approx(1.0, abs=1e-6)
        assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="3 x 3"):
        ssim_index(torch.rand(1, 1, 2, 8), torch.rand(1, 1, 2, 8))
    with pytest.raises(ValueError, match="one shape"):
        ssim_index(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


def test_ssim_loss_decreases_with_noise():
    x = _blobs(16)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=g)
    losses = [ssim_loss(x + s * noise, x).item() for s in (0.3, 0.1, 0.03, 0.01)]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] > 0


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(6)
    a = _blobs(64, seed=6)[0, 0].numpy()
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    got = ssim_index(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]).item()
    assert got == pytest.approx(ref, abs=1e-3)


# --------------------------------------------------------------------------- re-blur


def test_reblur_constant_stays_constant():
    x = torch.full((2, 3, 16, 12), 0.7)
    out = reblur_to_input(x, _airy_like(7), scale=2)
    assert out.shape == (2, 3, 8, 6)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))
    # image not larger than the pad: edge replication instead of reflection
    small = torch.full((1, 1, 4, 4), 0.3)
    torch.testing.assert_close(
        reblur_to_input(small, _airy_like(11)), torch.full((1, 1, 2, 2), 0.3)
    )


def test_reblur_conserves_flux_and_is_a_true_convolution():
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 14:18, 12:17] = torch.rand(4, 5, generator=torch.Generator().manual_seed(7))
    out = reblur_to_input(x, _airy_like(7), scale=2)
    assert (out.sum() * 4).item() == pytest.approx(x.sum().item(), rel=1e-5)
    # a point image gives the PSF itself (not mirrored), normalised to unit sum
    psf = torch.zeros(5, 5)
    psf[2, 2], psf[0, 3], psf[4, 1] = 2.0, 1.0, 1.0  # not symmetric under a flip of x or y
    delta = torch.zeros(1, 1, 9, 9)
    delta[0, 0, 4, 4] = 1.0
    got = reblur_to_input(delta, psf, scale=1)[0, 0, 2:7, 2:7]
    torch.testing.assert_close(got, psf / psf.sum())
    with pytest.raises(ValueError, match="multiple"):
        reblur_to_input(torch.zeros(1, 1, 9, 10), psf)
    with pytest.raises(ValueError, match="odd"):
        reblur_to_input(torch.zeros(1, 1, 8, 8), torch.ones(4, 4))


# --------------------------------------------------------------------------- DBPN


def test_dbpn_loss_vanishes_on_a_consistent_pair():
    x = _blobs(32, seed=8)
    psf = _airy_like(7).numpy()
    y = reblur_to_input(x, torch.from_numpy(psf))
    loss = DBPNLoss(psf, beta_hessian=0.0, beta_l1=0.0)
    assert loss.psf.shape == (1, 1, 7, 7)
    assert loss.psf.sum().item() == pytest.approx(1.0)
    assert loss(x, y).item() < 1e-6
    assert loss.last["ssim"] < 1e-6
    bh, bl = 0.05, 0.2
    loss = DBPNLoss(psf, beta_hessian=bh, beta_l1=bl)
    total = loss(x, y).item()
    expected = bh * hessian_penalty(x).item() + bl * l1_sparsity(x).item()
    assert total == pytest.approx(expected, abs=1e-6)
    assert set(loss.last) == {"ssim", "hessian", "l1", "total"}
    assert loss.last["hessian"] == pytest.approx(hessian_penalty(x).item())
    with pytest.raises(ValueError, match="does not match"):
        loss(x, y[..., :-1, :])


def test_dbpn_loss_time_lapse_and_ssim_reference():
    """The SSIM term equals scikit-image's SSIM of the re-blurred output and the input."""
    x = torch.cat([_blobs(64, seed=s) for s in (9, 10, 11)], dim=1)  # (1, T=3, 64, 64)
    psf = _airy_like(5)
    y = reblur_to_input(x, psf) + 0.02 * torch.randn(1, 3, 32, 32, generator=torch.Generator())
    loss = DBPNLoss(psf, beta_hessian=0.0, beta_l1=0.0, t_weight=0.5)
    loss(x, y)
    rb = reblur_to_input(x, psf)
    ref = np.mean(
        [
            structural_similarity(
                rb[0, t].numpy(),
                y[0, t].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for t in range(3)
        ]
    )
    assert loss.last["ssim"] == pytest.approx(1 - ref, abs=1e-3)
    assert loss.last["hessian"] == pytest.approx(hessian_penalty(x, t_weight=0.5).item())


# --------------------------------------------------------------------------- pixel losses


def test_denoise_and_sim_losses_are_their_weighted_terms():
    x = _blobs(16, seed=12)
    y = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(12))
    dl = DenoiseLoss(a=2.0, b=3.0, e=0.5)
    assert dl(x, x).item() == pytest.approx(0.0, abs=1e-6)
    total = dl(y, x).item()
    s, d, f = ssim_loss(y, x).item(), l1(y, x).item(), fft_l1(y, x).item()
    assert total == pytest.approx(2 * s + 3 * d + 0.5 * f, rel=1e-5)
    assert dl.last == pytest.approx({"ssim": s, "l1": d, "fft": f, "total": total}, rel=1e-5)
    sl = SIMLoss(ssim=0.5, l1=4.0)
    assert sl(y, x).item() == pytest.approx(0.5 * s + 4 * d, rel=1e-5)
    assert set(sl.last) == {"ssim", "l1", "total"}


# --------------------------------------------------------------------------- VGG16 / perceptual


@pytest.fixture(scope="module")
def perceptual() -> PerceptualLoss:
    return PerceptualLoss(seed=0)


def test_vgg_layout_matches_torchvision_indices():
    model = VGG16Features()
    convs = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert len(model.features) == 31
    assert LAYER_INDEX["relu1_1"] == 1 and LAYER_INDEX["relu5_3"] == 29
    assert len(NINE_LAYERS) == 9 and set(NINE_LAYERS) <= set(LAYER_INDEX)


def test_vgg_forward_returns_requested_layers_and_stops_early(perceptual):
    vgg = perceptual.vgg
    called = []
    hook = vgg.features[21].register_forward_hook(lambda *a: called.append(1))  # conv4_3
    try:
        out = vgg(torch.rand(1, 3, 32, 32), ["relu4_2", "relu1_1"])
    finally:
        hook.remove()
    assert list(out) == ["relu4_2", "relu1_1"]
    assert out["relu1_1"].shape == (1, 64, 32, 32)
    assert out["relu4_2"].shape == (1, 512, 4, 4)
    assert not called
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        vgg(torch.rand(1, 3, 8, 8), ["relu6_1"])


def test_perceptual_zero_for_identical_and_grows_with_blur(perceptual):
    x = _blobs(32, seed=13)
    assert perceptual(x, x).item() == 0.0
    losses = [perceptual(_gauss_blur(x, s), x).item() for s in (0.5, 1.0, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    # grey input is the RGB image with three equal channels
    assert perceptual(x, x * 0.5).item() == pytest.approx(
        perceptual(x.repeat(1, 3, 1, 1), x.repeat(1, 3, 1, 1) * 0.5).item(), rel=1e-5
    )


def test_perceptual_random_features_are_deterministic(perceptual):
    x, y = _blobs(16, seed=14), _blobs(16, seed=15)
    same = PerceptualLoss(seed=0)
    other = PerceptualLoss(seed=1)
    assert perceptual.source == "random:seed=0" and other.source == "random:seed=1"
    assert same(x, y).item() == perceptual(x, y).item()
    assert other(x, y).item() != perceptual(x, y).item()
    assert all(not p.requires_grad for p in perceptual.parameters())
    perceptual.train()
    assert not perceptual.vgg.training


def test_load_vgg16_from_a_torchvision_state_dict(tmp_path):
    model, _ = load_vgg16(None, seed=3)
    state = {f"features.{k}": v.clone() for k, v in model.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 2)  # the head of a full vgg16: ignored
    path = tmp_path / "vgg16-test.pth"
    torch.save(state, path)
    loaded, source = load_vgg16(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert source == f"imagenet:vgg16-test.pth:sha256={digest}"
    x = torch.rand(1, 3, 16, 16)
    a, b = model(x, NINE_LAYERS), loaded(x, NINE_LAYERS)
    for name in NINE_LAYERS:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    # keys without the "features." prefix load too
    bare = tmp_path / "bare.pth"
    torch.save(model.features.state_dict(), bare)
    loss = PerceptualLoss(weights=bare)
    assert loss.source.startswith("imagenet:bare.pth:sha256=")
    # ImageNet weights see inputs standardised with the ImageNet mean and std
    g = _blobs(16, seed=16)
    rgb = (g.repeat(1, 3, 1, 1) - loss.mean) / loss.std
    zero = (torch.zeros_like(rgb) - loss.mean) / loss.std
    fa, fb = model(rgb, NINE_LAYERS), model(zero, NINE_LAYERS)
    ref = sum(F.mse_loss(fa[n], fb[n]) for n in NINE_LAYERS)
    assert loss(g, torch.zeros_like(g)).item() == pytest.approx(ref.item(), rel=1e-5)


def test_load_vgg16_rejects_a_wrong_file(tmp_path):
    model = VGG16Features()
    state = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"wrong\.pth.*features\.0\.weight.*\(64, 1, 3, 3\)"):
        load_vgg16(path)
    del state["features.28.bias"]
    state["features.0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['features\.28\.bias'\]"):
        load_vgg16(path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_vgg16(tmp_path / "junk.pth")


# --------------------------------------------------------------------------- gradients


def test_every_loss_class_passes_finite_gradients(perceptual):
    target = _blobs(32, seed=17)
    psf = _airy_like(5)
    cases = [
        (DenoiseLoss(), target),
        (SIMLoss(), target),
        (ArtifactLoss(perceptual, w_perceptual=0.5), target),
        (DBPNLoss(psf), reblur_to_input(target, psf)),
    ]
    for loss, y in cases:
        pred = (target + 0.1 * torch.rand(target.shape)).requires_grad_(True)
        loss(pred, y).backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all(), type(loss).__name__
        assert pred.grad.abs().sum() > 0, type(loss).__name__
        assert set(loss.last) >= {"ssim", "total"}
    assert ArtifactLoss(perceptual).source == "random:seed=0"
