"""`dps export-model`: BioImage Model Zoo packages that bioimageio.core loads, runs and tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from dps_stages.cli import main

pytest.importorskip(
    "bioimageio.core", reason="the modelzoo extra (pip install -e '.[modelzoo]') is absent"
)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Two-step tiny models: the SIM network (9 frames -> 2x) and PSF identification."""
    root = tmp_path_factory.mktemp("mz")
    split = root / "train.zarr"
    assert main(["simulate", str(split), "--split", "train", "--seed", "3", "--size", "32",
                 "--structures", "microtubules", "--n-per-structure", "1", "--levels", "500",
                 "--tile", "64"]) == 0  # fmt: skip
    common = ["--steps", "2", "--batch", "2", "--width", "4", "--depth", "2", "--device", "cpu"]
    assert main(["train", "sim", str(root / "sim"), "--data", str(split), "--patch", "16",
                 *common]) == 0  # fmt: skip
    assert main(["train", "psfid", str(root / "psfid"), "--patch", "32", *common]) == 0
    return root


@pytest.mark.parametrize("net", ["sim", "psfid"])
def test_exported_package_passes_bioimageio_test(models, tmp_path, net, one_thread):
    from bioimageio.core import load_model_description, test_model

    out = tmp_path / f"{net}.zip"
    assert main(["export-model", net, str(models / net), str(out), "--pixel-size", "65"]) == 0
    names = set(zipfile.ZipFile(out).namelist())
    assert {"rdf.yaml", "weights.pt", "dps_architecture.py", "test_input.npy",
            "test_output.npy", "cover.png", "README.md"} <= names  # fmt: skip
    summary = test_model(out)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    descr = load_model_description(out)
    space_in = {a.id: a for a in descr.inputs[0].axes if a.type == "space"}
    space_out = {a.id: a for a in descr.outputs[0].axes if a.type == "space"}
    assert space_in["x"].scale == pytest.approx(0.065) and space_in["x"].unit == "micrometer"
    if net == "sim":  # 2x: half the pixel size, size referenced to the input's
        assert space_out["x"].scale == pytest.approx(0.0325)
        assert "scale_range" in [p.id for p in descr.inputs[0].preprocessing]
    assert any("10.34133" in str(c.doi) for c in descr.cite) == (net == "sim")
    test_out = np.load(zipfile.ZipFile(out).open("test_output.npy"))
    assert np.isfinite(test_out).all()


def test_export_refuses_a_network_that_does_not_stand_alone(models, tmp_path, capsys):
    assert main(["export-model", "vgg", str(models / "sim"), str(tmp_path / "x.zip")]) == 2
    assert "not a standalone network" in capsys.readouterr().err
