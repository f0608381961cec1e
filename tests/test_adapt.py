"""Self-supervised adaptation (dps_stages.adapt): R2R denoiser, SIM physics consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from dps_stages.adapt import (
    NoiseModel,
    SIMConsistency,
    adapt_denoiser,
    adapt_sim,
    denoise_frames,
    otf_attenuation_of,
    r2r_pair,
)
from dps_stages.inference import percentile_range, run_block
from dps_stages.metrics import compare
from dps_stages.nets import OIDN, DenoiseNet, SIMNet
from dps_stages.noise import acquisition_chain
from dps_stages.optics import Optics
from dps_stages.sim import SIMParameters
from dps_stages.simulate import SIMPattern, simulate_dataset

OPTICS = Optics(525, 1.4, 65)
CAMERA = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}


def _params(d, j=0):
    return SIMParameters.from_pattern(SIMPattern.from_dict(d["patterns"][j]))


# ------------------------------------------------------------------------------ noise model
def test_noise_model_variance_and_calibration_forms():
    nm = NoiseModel.from_calibration(CAMERA)
    s2 = (2.0 * 1.5) ** 2 + 1 / 12
    assert nm.read_noise == pytest.approx(np.sqrt(s2))
    y = np.array([50.0, 100.0, 150.0])
    # below the offset the variance is clipped to the read noise
    np.testing.assert_allclose(nm.variance(y), [s2, s2, 2.0 * 50 + s2], rtol=1e-6)
    same = NoiseModel.from_calibration({"gain": 2.0, "offset": 100.0, "read_noise_adu": 3.0})
    assert same.read_noise == 3.0
    # frames that were not integer (the calibration's quantisation 0): no rounding variance
    real = NoiseModel.from_calibration(CAMERA | {"quantisation": 0.0})
    assert real.read_noise == pytest.approx(2.0 * 1.5)
    with pytest.raises(ValueError):
        NoiseModel.from_calibration({"gain": float("nan"), "offset": 0.0, "read_noise": 1.0})


def test_noise_model_is_the_acquisition_chains_variance():
    """The variance the model reads off the frames is the one the camera chain draws:
    ``g^2 (gamma x + s^2) + 1/12`` with quantisation (independent: sample variance of draws)."""
    g, b, s = 2.5, 100.0, 2.0
    chain = acquisition_chain(photons=40.0, read_noise=s, gain=g, offset=b, bits=16)
    x = np.full(200_000, 0.5)
    y = chain(x, np.random.default_rng(0)).astype(np.float64)
    nm = NoiseModel.from_calibration({"gain": g, "offset": b, "read_noise": s})
    assert float(np.mean(nm.variance(y, np.float64))) == pytest.approx(np.var(y), rel=0.01)
    assert nm.variance(y, np.float64).dtype == np.float64


def test_noise_model_without_offset_takes_the_intercept():
    """No dark tiles: the calibration leaves the offset undetermined and the line
    ``var = g y + v_0`` stands in; without either the model is refused."""
    g, b, s = 2.0, 100.0, 1.5
    v0 = (g * s) ** 2 + 1 / 12 - g * b
    nm = NoiseModel.from_calibration(
        {"camera": {"gain": g, "offset": None, "read_noise": None, "intercept": v0}}
    )
    full = NoiseModel.from_calibration({"gain": g, "offset": b, "read_noise": s})
    y = np.array([150.0, 400.0])
    np.testing.assert_allclose(nm.variance(y), full.variance(y), rtol=1e-6)
    assert nm.variance(np.array([0.0]))[0] == pytest.approx(0.01 * g * g)
    with pytest.raises(ValueError, match="intercept"):
        NoiseModel.from_calibration({"gain": g, "offset": None, "read_noise": None})


def test_r2r_pair_noises_uncorrelated_with_the_right_variances():
    gen = torch.Generator().manual_seed(0)
    sigma, alpha, n = 0.3, 0.5, 400_000
    x = torch.zeros(n, dtype=torch.float64)
    noise = sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    var = torch.full((n,), sigma**2, dtype=torch.float64)
    y_hat, y_tilde = r2r_pair(x + noise, var, alpha, gen)
    assert float(torch.mean(y_hat * y_tilde)) == pytest.approx(0.0, abs=4e-4)
    assert float(y_hat.var()) == pytest.approx((1 + alpha**2) * sigma**2, rel=0.01)
    assert float(y_tilde.var()) == pytest.approx((1 + alpha**-2) * sigma**2, rel=0.01)
    with pytest.raises(ValueError):
        r2r_pair(x, var, 0.0, gen)


# ------------------------------------------------------------------------------ R2R
@pytest.fixture(scope="module")
def noisy():
    d = simulate_dataset(
        ["microtubules"], 2, 64, OPTICS, levels=[30], seed=3, split="test", noise_kw=CAMERA
    )
    clean_adu = CAMERA["gain"] * 30 * d["raw_clean"] + CAMERA["offset"]
    return d["raw"][:, 0], clean_adu


def test_adapt_denoiser_lowers_r2r_loss_and_error(noisy):
    raw, clean = noisy
    torch.manual_seed(0)
    net = DenoiseNet(width=8, depth=2, blocks=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tuned, hist = adapt_denoiser(
        net, raw, CAMERA, steps=200, patch=32, batch=4, lr=2e-3, seed=0, progress=False
    )
    assert hist["eval_loss"][-1] < 0.8 * hist["eval_loss"][0]
    assert len(hist["loss"]) == 200 and hist["seconds"] > 0
    mse = lambda a: float(np.mean((a - clean) ** 2))  # noqa: E731
    untouched, adapted = mse(denoise_frames(net, raw)), mse(denoise_frames(tuned, raw))
    assert adapted < mse(raw) and adapted < untouched
    # the given model is left as it was
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_adapt_denoiser_deterministic(noisy):
    raw, _ = noisy
    torch.manual_seed(1)
    net = DenoiseNet(width=8, depth=1, blocks=1)
    kw = {"steps": 3, "patch": 16, "batch": 2, "progress": False, "eval_every": 3}
    a, ha = adapt_denoiser(net, raw, CAMERA, seed=7, **kw)
    b, hb = adapt_denoiser(net, raw, CAMERA, seed=7, **kw)
    c, _ = adapt_denoiser(net, raw, CAMERA, seed=8, **kw)
    assert ha["loss"] == hb["loss"]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_denoise_frames_monte_carlo_needs_and_uses_calibration(noisy):
    raw, _ = noisy
    net = DenoiseNet(width=8, depth=1, blocks=1)
    plain = denoise_frames(net, raw[:1])
    mc = denoise_frames(net, raw[:1], recorruptions=2, calib=CAMERA, seed=0)
    assert plain.shape == mc.shape == raw[:1].shape
    assert not np.allclose(plain, mc)


# ------------------------------------------------------------------------------ physics loss
@pytest.mark.parametrize("att", [1.0, 0.3])
def test_consistency_of_the_true_object(att):
    d = simulate_dataset(
        ["microtubules"], 1, 64, OPTICS, levels=[100], seed=3, split="test", otf_attenuation=att
    )
    x, y = d["truth_2x"][0], d["raw_clean"][0]
    scale = float(np.abs(y - y.mean()).mean())
    loss = SIMConsistency(_params(d), OPTICS, otf_attenuation=att, margin=0)
    truth = loss.loss_numpy(x, y) / scale
    assert truth < 0.02  # the 2x grid approximates the simulator's 4x grid
    blurred = [loss.loss_numpy(ndi.gaussian_filter(x, s), y) / scale for s in (0.75, 1.5, 3.0)]
    assert truth < blurred[0] < blurred[1] < blurred[2]
    wrong = SIMConsistency(_params(d), OPTICS, otf_attenuation=0.3 if att == 1 else 1.0, margin=0)
    assert wrong.loss_numpy(x, y) / scale > 5 * truth
    # the output's scale does not matter; an offset of the object is modulated light
    assert loss.loss_numpy(3 * x, y) == pytest.approx(loss.loss_numpy(x, y), rel=1e-4)
    assert loss.loss_numpy(x + 2 * x.mean(), y) > 1.5 * loss.loss_numpy(x, y)


def test_consistency_patch_offset_shifts_the_pattern():
    d = simulate_dataset(["er"], 1, 64, OPTICS, levels=[100], seed=4, split="test")
    x, y = d["truth_2x"][0], d["raw_clean"][0]
    loss = SIMConsistency(_params(d), OPTICS, margin=8)
    xt = torch.as_tensor(x[None, None, 32:96, 40:104].astype(np.float64))
    yt = torch.as_tensor(y[None, :, 16:48, 20:52].astype(np.float64))
    right = float(loss.terms(xt, yt, [(16, 20)])["data"])
    wrong = float(loss.terms(xt, yt, [(0, 0)])["data"])
    assert right < 0.5 * wrong


def test_otf_attenuation_of():
    assert otf_attenuation_of(None, OPTICS) == 1.0
    assert otf_attenuation_of(0.25, OPTICS) == 0.25


# ------------------------------------------------------------------------------ SIM adaptation
def _pretrained_simnet(steps: int = 150) -> SIMNet:
    """A tiny SIMNet trained on the default microscope (L1 to the 2x SIM-passband truth)."""
    d = simulate_dataset(
        ["microtubules", "er"], 4, 32, OPTICS, levels=[1000], seed=11, split="train"
    )
    xs, ts = [], []
    for j in range(len(d["raw"])):
        lo, hi = percentile_range(d["raw"][j, 0])
        xs.append((d["raw"][j, 0] - lo) / (hi - lo))
        t = d["truth_2x_sim_passband"][j]
        ts.append(t / np.percentile(t, 99.9))
    x, t = torch.tensor(np.stack(xs)), torch.tensor(np.stack(ts))[:, None]
    torch.manual_seed(0)
    net = SIMNet(width=8, depth=2, blocks=1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        idx = rng.choice(len(x), 4, replace=False)
        loss = torch.mean(torch.abs(net(x[idx]) - t[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def other_microscope():
    """Frames of a microscope unlike the default: lower pattern frequency, attenuated OTF."""
    return simulate_dataset(
        ["microtubules", "er"], 1, 64, OPTICS, levels=[300], seed=5, split="test",
        otf_attenuation=0.3, pattern_kw={"pattern_frequency": 0.75, "modulation": 0.6},
    )  # fmt: skip


def test_adapt_sim_loss_falls_and_is_deterministic(other_microscope):
    d = other_microscope
    torch.manual_seed(2)
    net = SIMNet(width=8, depth=1, blocks=1)
    kw = {"steps": 30, "patch": 32, "batch": 2, "lr": 1e-3, "progress": False, "eval_every": 30}
    tuned, hist = adapt_sim(net, d["raw"][:1, 0], _params(d), OPTICS, 0.3, seed=0, **kw)
    assert hist["eval_loss"][-1] < hist["eval_loss"][0]
    again, hist2 = adapt_sim(net, d["raw"][:1, 0], _params(d), OPTICS, 0.3, seed=0, **kw)
    assert hist["loss"] == hist2["loss"]
    for k, v in tuned.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_adapt_sim_raises_ssim_on_another_microscope(other_microscope):
    d = other_microscope
    net = _pretrained_simnet()
    frames = d["raw"][:, 0]
    params = [_params(d, j) for j in range(len(frames))]

    def ssim(model):
        out = []
        for j in range(len(frames)):
            lo, hi = percentile_range(frames[j])
            x = run_block(model, (frames[j] - lo) / (hi - lo))[0]
            out.append(compare(x, d["truth_2x_sim_passband"][j])["ssim"])
        return np.mean(out)

    tuned, hist = adapt_sim(
        net, frames, params, OPTICS, 0.3, steps=60, patch=48, lr=3e-4, seed=0, progress=False
    )
    assert hist["eval_loss"][-1] < hist["eval_loss"][0]
    before, after = ssim(net), ssim(tuned)
    print(f"SSIM vs SIM-passband truth: {before:.3f} -> {after:.3f}")
    assert after > before + 0.02


def test_adapt_sim_takes_oidn(other_microscope):
    d = other_microscope
    torch.manual_seed(3)
    net = OIDN(width=8, groups=1, blocks=1, group_conv=4, psf_size=7, n_radial=5)
    kw = {"steps": 4, "patch": 32, "batch": 2, "lr": 1e-3, "progress": False, "eval_every": 4}
    tuned, hist = adapt_sim(net, d["raw"][:1, 0], _params(d), OPTICS, 0.3, seed=0, **kw)
    assert np.all(np.isfinite(hist["loss"])) and len(hist["eval_loss"]) == 2
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in tuned.state_dict().items())


def test_noise_level_matches_the_data_term_of_the_truth_on_noisy_frames():
    """The stopping rule's noise level is what the true object leaves on noisy frames."""
    from dps_stages.adapt.sim import _noise_level

    d = simulate_dataset(["er"], 1, 64, OPTICS, levels=[50], seed=6, split="test", noise_kw=CAMERA)
    raw = d["raw"][0, 0]
    loss = SIMConsistency(_params(d), OPTICS, margin=0)
    lo, hi = percentile_range(raw)
    truth = loss.loss_numpy(d["truth_2x"][0], (raw - lo) / (hi - lo))
    level = _noise_level(NoiseModel.from_calibration(CAMERA), raw[None], [(0, 0, 0)], 64, 0, "l1")
    assert truth == pytest.approx(level, rel=0.1)


def test_adapt_sim_stops_at_the_noise_level(other_microscope):
    d = simulate_dataset(["er"], 1, 64, OPTICS, levels=[20], seed=6, split="test", noise_kw=CAMERA)
    net = SIMNet(width=8, depth=1, blocks=1)
    kw = {"steps": 20, "patch": 32, "progress": False, "eval_every": 10, "camera": CAMERA}
    _, hist = adapt_sim(net, d["raw"][:, 0], _params(d), OPTICS, 1.0, noise_stop=100.0, **kw)
    assert hist["stopped_at"] == 0 and hist["step"] == [] and hist["noise_level"] > 0
    _, hist = adapt_sim(net, d["raw"][:, 0], _params(d), OPTICS, 1.0, noise_stop=None, **kw)
    assert hist["stopped_at"] is None and len(hist["step"]) == 20


@pytest.mark.parametrize("net", ["denoise", "sim"])
def test_adapt_command_writes_a_loadable_model(net, other_microscope, tmp_path, capsys):
    """`dps adapt NET MODEL RAW OUT`: a model folder that loads, records what it was adapted
    on, and leaves the source model alone; OUT equal to MODEL is refused."""
    import tifffile

    from dps_stages.cli import main
    from dps_stages.inference import load_model, save_model

    torch.manual_seed(0)
    model = DenoiseNet(width=4, depth=1, blocks=1) if net == "denoise" else SIMNet(width=4, depth=1)
    src = tmp_path / "model"
    src.mkdir()
    save_model(src / "model.pt", net, model, {"origin": "test"})
    before = (src / "model.pt").read_bytes()
    raw = np.asarray(other_microscope["raw"], np.float32)[0]
    tifffile.imwrite(tmp_path / "raw.tif", raw.reshape(-1, *raw.shape[-2:]).astype(np.float32))
    out = tmp_path / "adapted"
    args = ["adapt", net, str(src), str(tmp_path / "raw.tif"), str(out), "--steps", "2",
            "--wavelength", "670", "--na", "1.49", "--pixel-size", "65"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    adapted, record = load_model(out, expect=net)
    assert record["adapted"]["source_model"] == str(src) and record["origin"] == "test"
    assert (src / "model.pt").read_bytes() == before
    assert main([*args[:4], str(src), *args[5:]]) == 2
    assert "must not replace its source" in capsys.readouterr().err
