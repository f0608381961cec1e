"""Training loop, checkpoints and resume, tiled inference, and the network commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from dps_stages import inference, nets, training
from dps_stages.cli import main

TINY = {"width": 4, "depth": 2, "blocks": 1}


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return nets.build(name, nets.default_arch(name) | TINY).eval()


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """A tiny simulated split: 2 structures x 1 image, 32 px, two signal levels."""
    out = tmp_path_factory.mktemp("sim") / "train.zarr"
    args = [
        "simulate",
        str(out),
        "--split",
        "train",
        "--seed",
        "3",
        "--size",
        "32",
        "--structures",
        "microtubules,ccps",
        "--n-per-structure",
        "1",
        "--levels",
        "50,500",
        "--tile",
        "64",
    ]
    assert main(args) == 0
    return out


# --------------------------------------------------------------------------------------------
# tiled inference


@pytest.mark.parametrize("name", ["denoise", "sim", "artifact", "resudbpn"])
def test_tiled_inference_equals_whole_image(name):
    model = _model(name)
    rng = np.random.default_rng(1)
    h, w = 2 * model.receptive_halo() + 30, 3 * model.receptive_halo() + 14
    image = rng.random((model.in_channels, h, w)).astype(np.float32)
    whole = np.asarray(inference.predict(model, image, tile=None))
    tiled = inference.predict(model, image, tile=16)
    # really tiled: 2 or more rows of tiles, 3 or more tiles a row (chunks of 2 x batch tiles)
    assert len(tiled.chunks[1]) >= 2 and len(tiled.chunks[2]) >= 2
    tiled = np.asarray(tiled)
    assert whole.shape == (model.out_channels, h * model.scale, w * model.scale)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_tiles_without_halo_differ():
    """The equality above is the halo's doing: with no halo, tile seams appear."""
    model = _model("artifact")
    image = np.random.default_rng(2).random((1, 64, 64)).astype(np.float32)
    whole = np.asarray(inference.predict(model, image, tile=None))
    seams = np.asarray(inference.predict(model, image, tile=16, halo=0))
    assert np.abs(seams - whole).max() > 1e-3 * np.abs(whole).max()


def test_restore_stack_normalises_and_maps_back():
    model = _model("denoise")
    stack = np.random.default_rng(3).random((2, 9, 32, 32)).astype(np.float32) * 500 + 100
    out = [
        np.asarray(o)
        for o in inference.restore_stack(model, stack, tile=None, denormalise=True, progress=False)
    ]
    lo, hi = inference.percentile_range(stack[0])
    expect = np.asarray(inference.predict(model, (stack[0] - lo) / (hi - lo), tile=None))
    np.testing.assert_allclose(out[0], expect * (hi - lo) + lo, rtol=1e-5)
    assert out[0].shape == (9, 32, 32)


def test_percentile_range_of_flat_image_is_finite():
    lo, hi = inference.percentile_range(np.full((8, 8), 5.0))
    assert lo == 5.0 and hi == 6.0


# --------------------------------------------------------------------------------------------
# training data and loop


def test_denoise_pairs_target_is_expected_frames(split):
    pairs = training.denoise_pairs(split)
    assert len(pairs) == 4  # 2 images x 2 levels
    x, y = pairs.inputs[1], pairs.targets[1]
    assert x.shape == y.shape == (9, 32, 32)
    # the target is the noisy input's expectation: their difference is zero-mean noise
    assert abs(float((x - y).mean())) < 0.02
    assert float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) > 0.8


def test_denoise_pairs_follow_each_images_randomised_camera(tmp_path):
    """A randomised microscope (a calibrated simulation) draws each image's photon factor
    and gain: the target is that image's expectation, not the nominal level's."""
    from dps_stages.optics import Optics
    from dps_stages.simulate import simulate_dataset, write_dataset

    optics = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
    noise = {"gain": 2.0, "offset": 100.0}
    data = simulate_dataset(["microtubules", "ccps"], 2, 32, optics, levels=[50, 500], seed=4,
                            split="train", noise_kw=noise,
                            randomise={"photons": 0.7, "gain": 0.2})  # fmt: skip
    factors = [m["photons"] for m in data["microscopes"]]
    assert max(factors) / min(factors) > 1.3  # the draws differ enough to matter
    attrs = {"kind": "simulated", "levels": [50.0, 500.0], "noise": noise,
             "structures": list(data["structure"]), "microscopes": data["microscopes"]}  # fmt: skip
    path = write_dataset(tmp_path / "train.zarr", data, attrs, tile=64)
    pairs = training.denoise_pairs(path)
    assert len(pairs) == 8  # 4 images x 2 levels
    for x, y in zip(pairs.inputs, pairs.targets, strict=True):
        # the target is the noisy input's expectation: their difference is zero-mean noise
        assert abs(float((x - y).mean())) < 0.02


def test_sim_targets_are_the_chosen_truth(split):
    """SIM-stage networks learn the SIM-passband truth by default (the object through the
    srPSF, what SIM resolves), or the binned object with ``target="object"``."""
    from dps_stages import io, pairs
    from dps_stages.nets.registry import REGISTRY

    for name in ("sim", "oidn", "artifact"):
        assert {s.key: s.default for s in REGISTRY[name].settings}["target"] == "sim_passband"
    group = io.open_group(split)
    levels = len(group.attrs["levels"])
    sp = pairs.sim_pairs(split, target="sim_passband")
    ob = pairs.sim_pairs(split, target="object")
    expect = pairs.normalise_target(group["truth_2x_sim_passband"][0])
    np.testing.assert_array_equal(sp.targets[0][0], expect)
    np.testing.assert_array_equal(
        ob.targets[levels][0], pairs.normalise_target(group["truth_2x"][1])
    )
    # the passband truth is the smoother one: less power at high frequencies
    hi = lambda a: np.abs(np.fft.fft2(a))[a.shape[0] // 4 : -a.shape[0] // 4].sum()  # noqa: E731
    assert hi(sp.targets[0][0]) < 0.8 * hi(ob.targets[0][0])


def test_sampler_is_seeded_and_aligned(split):
    pairs = training.sim_pairs(split)
    a = training.PatchSampler(pairs, 16, 4, np.random.default_rng(0)).batch(3)
    b = training.PatchSampler(pairs, 16, 4, np.random.default_rng(0)).batch(3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 9, 16, 16) and a[1].shape == (3, 1, 32, 32)


def _settings(**kw) -> training.TrainSettings:
    base = dict(
        steps=6,
        batch=2,
        patch=16,
        lr=1e-3,
        seed=5,
        checkpoint_every=3,
        validate_every=2,
        device="cpu",
    )
    return training.TrainSettings(**(base | kw))


def test_interrupted_training_resumes_to_the_same_model(split, tmp_path, monkeypatch):
    from dps_stages.losses import DenoiseLoss

    pairs = training.denoise_pairs(split)
    arch = nets.default_arch("denoise") | TINY
    full = training.train(
        "denoise", arch, pairs, pairs, DenoiseLoss(), tmp_path / "a", _settings(), progress=False
    )
    assert full["steps_resumed_from"] == 0

    # interrupt after step 4: the checkpoint of step 3 survives
    ckpt = tmp_path / "ckpt.pt"
    calls = {"n": 0}
    original = training.PatchSampler.batch

    def failing(self, size):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, size)

    monkeypatch.setattr(training.PatchSampler, "batch", failing)

    def with_checkpoint() -> dict:
        return training.train(
            "denoise", arch, pairs, pairs, DenoiseLoss(), tmp_path / "b", _settings(),
            checkpoint=ckpt, progress=False,
        )  # fmt: skip

    with pytest.raises(KeyboardInterrupt):
        with_checkpoint()
    assert ckpt.is_file() and not (tmp_path / "b").exists()
    monkeypatch.setattr(training.PatchSampler, "batch", original)
    resumed = with_checkpoint()
    assert resumed["steps_resumed_from"] == 3
    assert not ckpt.exists()
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ha = (tmp_path / "a" / "loss.tsv").read_text()
    assert ha == (tmp_path / "b" / "loss.tsv").read_text()


def test_model_folder_contents_and_reload(split, tmp_path):
    from dps_stages.losses import SIMLoss

    pairs = training.sim_pairs(split)
    arch = nets.default_arch("sim") | TINY
    info = training.train(
        "sim", arch, pairs, None, SIMLoss(), tmp_path / "m", _settings(steps=2), progress=False
    )
    for name in ("model.pt", "record.json", "loss.tsv", "loss.png"):
        assert (tmp_path / "m" / name).is_file()
    record = json.loads((tmp_path / "m" / "record.json").read_text())
    assert record["parameters"] == info["parameters"] > 0
    assert record["data"]["examples"] == 4
    model, rec = inference.load_model(tmp_path / "m", expect="sim")
    assert model.arch == arch and rec["model_sha256"]
    with pytest.raises(inference.DpsInputError, match="holds a 'sim' network"):
        inference.load_model(tmp_path / "m", expect="denoise")


# --------------------------------------------------------------------------------------------
# commands


def _train(net: str, out: Path, data: Path, *extra: str) -> int:
    return main(
        [
            "train",
            net,
            str(out),
            "--data",
            str(data),
            "--steps",
            "2",
            "--batch",
            "2",
            "--patch",
            "16",
            "--width",
            "4",
            "--depth",
            "2",
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_train_infer_restore_commands(split, tmp_path):
    models = tmp_path / "models"
    assert _train("denoise", models / "denoise", split, "--val", str(split)) == 0
    assert _train("sim", models / "sim", split, "--denoise-model", str(models / "denoise")) == 0
    assert (
        _train(
            "artifact",
            models / "artifact",
            split,
            "--denoise-model",
            str(models / "denoise"),
            "--background-radius",
            "8",
        )
        == 0
    )
    assert _train("resudbpn", models / "resudbpn", split) == 0
    assert _train("oidn", models / "oidn", split, "--denoise-model", str(models / "denoise")) == 0
    assert {"psf.tif", "psf.png"} <= {p.name for p in (models / "oidn").iterdir()}
    learned = tifffile.imread(models / "oidn" / "psf.tif")
    assert learned.min() >= 0 and abs(learned.sum() - 1) < 1e-5
    record = json.loads((models / "artifact" / "record.json").read_text())
    assert record["loss_features"].startswith("random:seed=")
    assert json.loads((models / "resudbpn" / "record.json").read_text())["psf"]["psf"] == "sr"

    raw = tmp_path / "raw.tif"
    from dps_stages import io

    frames = np.asarray(io.open_group(split)["raw"][0, 1])
    tifffile.imwrite(raw, frames)
    out = tmp_path / "dn.zarr"
    assert (
        main(
            [
                "infer",
                "denoise",
                str(raw),
                str(out),
                "--model",
                str(models / "denoise"),
                "--pixel-size",
                "65",
                "--tile",
                "16",
            ]
        )
        == 0
    )
    arr, attrs = io.open_stage(out)
    assert arr.shape == (1, 9, 32, 32) and attrs["network"]["net"] == "denoise"

    for method in ("wiener", "dps", "oidn"):
        final = tmp_path / f"restored_{method}.tif"
        assert (
            main(
                [
                    "restore",
                    str(raw),
                    str(final),
                    "--models",
                    str(models),
                    "--pixel-size",
                    "65",
                    "--sim-method",
                    method,
                    "--background-radius",
                    "8",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        img = tifffile.imread(final)
        assert img.shape == (128, 128) and np.isfinite(img).all()

    sim_img = tmp_path / "sim.tif"
    tifffile.imwrite(sim_img, np.asarray(io.open_group(split)["truth_2x"][0]))
    assert (
        main(
            [
                "restore",
                str(sim_img),
                str(tmp_path / "dbpn.tif"),
                "--from",
                "sim",
                "--models",
                str(models),
                "--pixel-size",
                "32.5",
            ]
        )
        == 0
    )
    assert tifffile.imread(tmp_path / "dbpn.tif").shape == (128, 128)
    # self-supervised on a user's own SIM image
    assert _train("resudbpn", tmp_path / "own", sim_img, "--pixel-size", "32.5") == 0


def test_psf_identification_commands(tmp_path):
    """dps train psfid (data drawn on the fly) and dps identify-psf with its srPSF."""
    model = tmp_path / "psfid"
    args = ["train", "psfid", str(model), "--steps", "2", "--batch", "2", "--patch", "32",
            "--width", "4", "--depth", "2", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((model / "record.json").read_text())
    assert record["give_params"] is False and record["data"]["examples"] > 0
    rng = np.random.default_rng(4)
    image = rng.poisson(200 * rng.random((2, 64, 64))).astype(np.float32)
    out, sr, fig = tmp_path / "psf.tif", tmp_path / "sr.tif", tmp_path / "psf.png"
    assert main(["identify-psf", str(tmp_path / "img.tif"), str(out), "--model", str(model)]) == 2
    tifffile.imwrite(tmp_path / "img.tif", image)
    assert main(["identify-psf", str(tmp_path / "img.tif"), str(out), "--model", str(model),
                 "--sr", str(sr), "--figure", str(fig), "--pixel-size", "65"]) == 0  # fmt: skip
    psf = tifffile.imread(out)
    assert psf.min() >= 0 and abs(psf.sum() - 1) < 1e-5
    narrow = tifffile.imread(sr)
    assert narrow.shape == psf.shape and abs(narrow.sum() - 1) < 1e-5
    assert fig.stat().st_size > 0


def test_network_commands_reject_bad_input(split, tmp_path, capsys):
    tif = tmp_path / "img.tif"
    tifffile.imwrite(tif, np.zeros((32, 32), np.float32))
    assert _train("denoise", tmp_path / "m", tif) == 2
    assert "simulated split" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert (
        main(
            [
                "restore",
                str(tif),
                str(tmp_path / "o.tif"),
                "--from",
                "sim",
                "--models",
                str(tmp_path / "none"),
                "--pixel-size",
                "30",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "none" in err and "no trained model" in err
    assert not (tmp_path / "o.tif").exists()


# --------------------------------------------------------------------------------------------
# every registered network through the command line, from the registry alone


def _registry_inputs(spec, split: Path, models: Path) -> list[str]:
    """Options naming what a spec's training reads, from its declared inputs."""
    args = [] if spec.data == "generated" else ["--data", str(split)]
    if "denoise_model" in spec.inputs:
        args += ["--denoise-model", str(models / "denoise")]
    if "sim_options" in spec.inputs:
        args += ["--background-radius", "8"]
    return args


def test_every_registered_network_trains_and_runs(split, tmp_path):
    """Build, train two steps and run every network of the registry through `dps train` and
    `dps infer` (psfid: `dps identify-psf`), options made from its spec only."""
    from dps_stages import io
    from dps_stages.nets.registry import REGISTRY

    models = tmp_path / "models"
    # networks that read another's model come after it (the registry's chain order)
    for name, spec in REGISTRY.items():
        patch = "32" if spec.data == "generated" else "16"
        args = ["train", name, str(models / name), "--steps", "2", "--batch", "2",
                "--patch", patch, "--width", "4", "--depth", "1" if name == "oidn" else "2",
                "--device", "cpu", *_registry_inputs(spec, split, models)]  # fmt: skip
        assert main(args) == 0, name
        record = json.loads((models / name / "record.json").read_text())
        assert record["net"] == name and len(record["arch"]) > 0
        assert set(record["settings"]) >= {"steps", "batch", "patch", "lr"}
        history = pd.read_csv(models / name / "loss.tsv", sep="\t")
        assert list(history["step"]) == [1, 2] and np.isfinite(history["loss"]).all()
        model, _ = inference.load_model(models / name, expect=name)
        assert model.arch == record["arch"]

    raw = np.asarray(io.open_group(split)["raw"][0, 1])
    image = np.asarray(io.open_group(split)["truth_2x"][0])
    for name in REGISTRY:
        if name == "psfid":
            tifffile.imwrite(tmp_path / "wf.tif", raw.mean(0))
            out = tmp_path / "psf.tif"
            assert main(["identify-psf", str(tmp_path / "wf.tif"), str(out),
                         "--model", str(models / name), "--pixel-size", "65"]) == 0  # fmt: skip
            assert abs(tifffile.imread(out).sum() - 1) < 1e-5
            continue
        model, _ = inference.load_model(models / name)
        src = tmp_path / f"in_{name}.tif"
        tifffile.imwrite(src, raw if model.in_channels > 1 else image)
        out = tmp_path / f"{name}.zarr"
        assert main(["infer", name, str(src), str(out), "--model", str(models / name),
                     "--pixel-size", "65", "--tile", "32", "--device", "cpu"]) == 0  # fmt: skip
        arr, attrs = io.open_stage(out)
        assert attrs["network"]["net"] == name and np.isfinite(np.asarray(arr)).all()
        assert arr.shape[-1] == src_width(src) * model.scale


def src_width(path: Path) -> int:
    return tifffile.imread(path).shape[-1]


def test_train_flags_are_the_specs_own(capsys, tmp_path):
    """`dps train <net>` takes its own loss weights only; bad values are refused (exit 2)."""
    from dps_stages.nets.registry import REGISTRY

    for name, spec in REGISTRY.items():
        others = {t.flag for s in REGISTRY.values() for t in s.loss_terms} - {
            t.flag for t in spec.loss_terms
        }
        for flag in others:
            with pytest.raises(SystemExit) as exc:
                main(["train", name, str(tmp_path / "m"), flag, "1"])
            assert exc.value.code == 2
    capsys.readouterr()
    for bad in (["--steps", "0"], ["--steps", "-5"], ["--lr", "nan"], ["--w-ssim", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["train", "denoise", str(tmp_path / "m"), *bad])
        assert exc.value.code == 2, bad
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------------------------
# security: no code from data (torch.load with weights_only=True everywhere)


class _Exploit:
    """A pickle that, when unpickled without restrictions, writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_crafted_checkpoint_and_model_run_no_code(split, tmp_path, capsys):
    marker = tmp_path / "marker.txt"
    crafted = {"signature": "x", "model": _Exploit(marker)}
    ckpt = tmp_path / "ckpt.pt"
    torch.save(crafted, ckpt)
    out = tmp_path / "m"
    rc = _train("denoise", out, split, "--checkpoint", str(ckpt))
    assert rc == 2 and not marker.exists() and not out.exists()
    assert "checkpoint" in capsys.readouterr().err
    with pytest.raises(inference.DpsInputError):
        training.load_checkpoint(ckpt)
    assert not marker.exists()

    folder = tmp_path / "bad_model"
    folder.mkdir()
    torch.save({"net": "denoise", "arch": {}, "state_dict": _Exploit(marker)},
               folder / "model.pt")  # fmt: skip
    img = tmp_path / "raw.tif"
    tifffile.imwrite(img, np.asarray(training.io.open_group(split)["raw"][0, 0]))
    rc = main(["infer", "denoise", str(img), str(tmp_path / "o.zarr"), "--model", str(folder)])
    assert rc == 2 and not marker.exists() and not (tmp_path / "o.zarr").exists()
    assert "not a dps model file" in capsys.readouterr().err
    # a model file with an impossible architecture: a clean error too
    torch.save({"net": "denoise", "arch": {"width": -3}, "state_dict": {}}, folder / "model.pt")
    rc = main(["infer", "denoise", str(img), str(tmp_path / "o.zarr"), "--model", str(folder)])
    assert rc == 2 and "cannot build" in capsys.readouterr().err
