"""The napari plugin: its npe2 manifest, the reader of a run's results through a headless
viewer (napari's ViewerModel, no Qt), and the restore widget's function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari", reason="napari is the optional extra `napari`")
npe2 = pytest.importorskip("npe2", reason="npe2 comes with napari")

from napari.components import ViewerModel  # noqa: E402
from napari.layers import Layer  # noqa: E402

from dps_stages import io  # noqa: E402
from dps_stages.cli import main  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "dps_stages" / "napari" / "napari.yaml"


@pytest.fixture(scope="module")
def plugin() -> str:
    """The plugin's manifest, validated by npe2 and registered with napari's plugin manager
    (an editable install made before the entry point existed does not list it)."""
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    pm = npe2.PluginManager.instance()
    try:
        pm.get_manifest(manifest.name)  # installed with the entry point: napari found it
    except KeyError:
        pm.register(manifest)
    return manifest.name


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run's results: dataset `cells`, level 50, a SIM stage of two fields of view at
    32.5 nm, a widefield stage of one image at 65 nm, and the dataset's metrics tables."""
    results = tmp_path_factory.mktemp("run") / "results"
    rng = np.random.default_rng(7)
    final = results / "cells" / "50" / "final"
    sim = rng.random((2, 32, 32)).astype(np.float32)
    io.write_ome_zarr(final / "sim_wiener.ome.zarr", sim, 32.5, {"stage": "sim_wiener"})
    wf = rng.random((24, 24)).astype(np.float32)
    io.write_ome_zarr(final / "widefield_rl.ome.zarr", wf, 65.0, {"stage": "widefield_rl"})
    (results / "cells" / "metrics.tsv").write_text(
        "level\tstage\timage\tpsnr\tssim\n"
        "50\tsim_wiener\t0\t21.5\t0.61\n"
        "50\tsim_wiener\t1\t23.0\t\n"
        "50\twidefield_rl\t0\t18.25\t0.5\n"
        "500\tsim_wiener\t0\t30.0\t0.9\n"
    )
    return results


def test_manifest_declares_reader_and_widget(plugin):
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == plugin == "dps-stages"
    assert [r.command for r in manifest.contributions.readers] == ["dps-stages.get_reader"]
    assert [w.command for w in manifest.contributions.widgets] == ["dps-stages.restore_widget"]
    # the commands name real functions
    for command in manifest.contributions.commands:
        assert callable(_resolve(command.python_name))


def _resolve(python_name: str):
    import importlib

    module, attr = python_name.split(":")
    return getattr(importlib.import_module(module), attr)


def test_viewer_opens_a_run_with_names_scale_and_metrics(plugin, run):
    viewer = ViewerModel()
    layers = viewer.open(str(run), plugin=plugin)
    assert [layer.name for layer in layers] == ["cells/50/sim_wiener", "cells/50/widefield_rl"]
    sim, wf = layers
    assert sim.data.shape == (2, 32, 32) and wf.data.shape == (24, 24)
    np.testing.assert_allclose(sim.scale, [1.0, 0.0325, 0.0325])
    np.testing.assert_allclose(wf.scale, [0.065, 0.065])
    assert [str(u) for u in sim.units[-2:]] == ["micrometer", "micrometer"]
    assert tuple(sim.axis_labels) == ("image", "y", "x")
    assert sim.metadata["pixel_size_nm"] == pytest.approx(32.5)
    assert sim.metadata["dps"]["stage"] == "sim_wiener"
    # the dataset's rows of this level and stage only; an empty cell is None
    assert [r["psnr"] for r in sim.metadata["metrics"]] == [21.5, 23.0]
    assert sim.metadata["metrics"][1]["ssim"] is None
    assert [r["psnr"] for r in wf.metadata["metrics"]] == [18.25]
    # one stage's store opens alone, by the same plugin
    store = run / "cells" / "50" / "final" / "widefield_rl.ome.zarr"
    (alone,) = ViewerModel().open(str(store), plugin=plugin)
    assert alone.name == "cells/50/widefield_rl"
    np.testing.assert_allclose(alone.scale, [0.065, 0.065])


def test_reader_declines_what_it_cannot_open(tmp_path):
    from dps_stages.napari._reader import get_reader

    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "a.tif")) is None
    assert get_reader(str(tmp_path / "empty")) is None
    # a Zarr store outside a run: named by the store, pixel size from its attributes
    io.write_stage(tmp_path / "x.zarr", np.ones((3, 16, 16), np.float32), {"pixel_size": 100.0})
    reader = get_reader(str(tmp_path / "x.zarr"))
    ((data, kwargs, kind),) = reader(str(tmp_path / "x.zarr"))
    assert kind == "image" and kwargs["name"] == "x" and data.shape == (3, 16, 16)
    assert kwargs["scale"] == (1.0, 0.1, 0.1)


def test_widget_restores_an_image_layer(tmp_path):
    """A tiny Res-U-DBPN (2 self-supervised steps on a SIM image at 32.5 nm) restores a SIM
    layer opened by the reader: twice the pixels, half the pixel size, same field of view."""
    import tifffile

    from dps_stages.napari._reader import read_stage
    from dps_stages.napari._widget import restore_layer, restore_widget

    rng = np.random.default_rng(11)
    sim = rng.poisson(100 * rng.random((2, 32, 32))).astype(np.float32)
    tifffile.imwrite(tmp_path / "sim.tif", sim[0])
    models = tmp_path / "models"
    args = ["train", "resudbpn", str(models / "resudbpn"), "--data", str(tmp_path / "sim.tif"),
            "--pixel-size", "32.5", "--steps", "2", "--batch", "2", "--patch", "16",
            "--width", "4", "--depth", "2", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    store = tmp_path / "cells" / "50" / "final" / "sim_wiener.ome.zarr"
    io.write_ome_zarr(store, sim, 32.5)
    viewer = ViewerModel()
    layer = viewer.add_layer(Layer.create(*read_stage(store)))

    data, kwargs, kind = restore_layer(layer, models=models, kind="sim", background_radius=8.0,
                                       device="cpu")  # fmt: skip
    assert kind == "image" and data.shape == (2, 64, 64) and np.isfinite(data).all()
    assert kwargs["name"] == "cells/50/sim_wiener restored"
    np.testing.assert_allclose(kwargs["scale"], [1.0, 0.01625, 0.01625])
    # the first output pixel's centre: a quarter of an input pixel before the input's
    np.testing.assert_allclose(kwargs["translate"][-2:], [-0.008125, -0.008125])
    assert kwargs["metadata"]["pixel_size_nm"] == pytest.approx(16.25)
    assert [s["step"] for s in kwargs["metadata"]["dps"]["chain"]] == ["background", "resudbpn"]
    out = viewer.add_layer(Layer.create(data, kwargs, kind))
    assert out.name in viewer.layers and out.data.shape == (2, 64, 64)
    # the same image through the command line's chain function: the same pixels
    from dps_stages.chain import restore
    from dps_stages.optics import Optics
    from dps_stages.settings import default

    keys = ("wavelength", "na", "modulation_factor")
    optics = Optics(pixel_size=32.5, **{k: default(f"optics.{k}") for k in keys})
    ref, _ = restore(sim[1:2], kind="sim", models=models, optics=optics, background_radius=8.0,
                     device="cpu")  # fmt: skip
    np.testing.assert_allclose(data[1], ref[0], rtol=1e-5, atol=1e-5)

    # no pixel size: a layer at napari's default scale (pixels) is refused with a message
    bare = viewer.add_image(sim[0], name="bare")
    with pytest.raises(io.DpsInputError, match="no pixel size"):
        restore_layer(bare, models=models, kind="sim")
    assert callable(restore_widget)
