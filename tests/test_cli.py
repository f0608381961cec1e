"""The `dps` command line on single files: outputs, JSON, and clear errors on bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dps_stages import io
from dps_stages.cli import main


def digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def test_simulate_extract_background_export(tmp_path):
    store = tmp_path / "sim.zarr"
    assert main([
        "simulate", str(store), "--size", "32", "--n-per-structure", "1",
        "--structures", "ccps,actin", "--levels", "30,300", "--seed", "3",
    ]) == 0  # fmt: skip
    group = io.open_group(store)
    assert group["raw"].shape == (2, 2, 9, 32, 32)
    assert group["truth_2x"].shape == (2, 64, 64)
    assert group.attrs["structures"] == ["ccps", "actin"]
    assert len(group.attrs["patterns"]) == 2

    raw, wf = tmp_path / "raw.zarr", tmp_path / "wf.zarr"
    assert main(["extract", str(store), "--level", "300", "--raw", str(raw),
                 "--widefield", str(wf)]) == 0  # fmt: skip
    arr, attrs = io.open_stage(raw)
    assert arr.shape == (2, 9, 32, 32) and attrs["pixel_size"] == 65.0
    np.testing.assert_array_equal(arr.compute(), group["raw"][:, 1])
    assert main(["extract", str(store), "--level", "7", "--raw", str(tmp_path / "x.zarr")]) == 2
    assert not (tmp_path / "x.zarr").exists()

    before = digest(wf)
    out = tmp_path / "bg.tif"
    assert main(["background", str(wf), str(out), "--radius", "6"]) == 0
    assert digest(wf) == before  # the input is never modified
    back, meta = io.read_image(out)
    assert back.shape == (2, 32, 32) and back.min() >= 0
    assert meta["pixel_size"] == pytest.approx(65.0)

    assert main(["export", str(wf), "--ome-zarr", str(tmp_path / "o.ome.zarr"),
                 "--tiff", str(tmp_path / "o.tif")]) == 0  # fmt: skip
    assert io.read_image(tmp_path / "o.ome.zarr")[1]["pixel_size"] == pytest.approx(65.0)


def test_compare_and_decorrelation_print_json(tmp_path, capsys, rng):
    ref = rng.random((64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "ref.tif", ref)
    tifffile.imwrite(tmp_path / "cand.tif", 2 * ref + 5)
    assert main(["compare", str(tmp_path / "cand.tif"), str(tmp_path / "ref.tif")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6) and out["nrmse"] < 1e-5

    assert main(["decorrelation", str(tmp_path / "ref.tif"), "--pixel-size", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"kc", "a0", "resolution_px", "resolution_nm"} <= set(out)
    assert out["resolution_nm"] == pytest.approx(10 * out["resolution_px"])


def test_compare_shape_mismatch_names_both_files(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.float32))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((8, 9), np.float32))
    assert main(["compare", str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) == 2
    err = capsys.readouterr().err
    assert "a.tif" in err and "b.tif" in err and "(8, 9)" in err


def test_import_rejects_eight_frames_and_writes_nothing(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        tifffile.imwrite(frames / f"f{i}.tif", np.ones((16, 16), np.uint16))
    out = tmp_path / "raw.zarr"
    code = main(["import", str(frames), str(out), "--kind", "raw", "--pixel-size", "65"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(frames) in err and "9 frames" in err and "8 frames" in err
    assert list(tmp_path.iterdir()) == [frames]


def test_import_rejects_nan_and_missing_pixel_size(tmp_path, capsys):
    image = np.ones((16, 16), np.float32)
    image[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", image)
    assert main(["import", str(tmp_path / "nan.tif"), str(tmp_path / "o.zarr"),
                 "--kind", "widefield", "--pixel-size", "65"]) == 2  # fmt: skip
    assert "nan.tif" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "plain.tif", np.ones((16, 16), np.float32))
    assert main(["import", str(tmp_path / "plain.tif"), str(tmp_path / "o.zarr"),
                 "--kind", "widefield"]) == 2  # fmt: skip
    assert "pixel size" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_import_real_raw_frames(shared_data, tmp_path):
    folder = shared_data / "vdl-sim-microtubules" / "raw" / "1"
    raw, wf = tmp_path / "raw.zarr", tmp_path / "wf.zarr"
    assert main(["import", str(folder), str(raw), "--kind", "raw", "--pixel-size", "62.6",
                 "--widefield", str(wf)]) == 0  # fmt: skip
    assert io.open_stage(raw)[0].shape == (1, 9, 512, 512)
    assert io.open_stage(wf)[0].shape == (1, 512, 512)


def test_sim_reconstruct_and_deconvolve(tmp_path):
    store = tmp_path / "sim.zarr"
    args = ["simulate", str(store), "--size", "64", "--n-per-structure", "1",
            "--structures", "microtubules", "--levels", "1000", "--seed", "4"]  # fmt: skip
    assert main(args) == 0
    raw = tmp_path / "raw.zarr"
    assert main(["extract", str(store), "--level", "1000", "--raw", str(raw)]) == 0
    out = tmp_path / "sim.tif"
    assert main(["sim-reconstruct", str(raw), str(out)]) == 0
    image, meta = io.read_image(out)
    assert image.shape[-2:] == (128, 128)  # a single image reads back as 2D
    assert meta["pixel_size"] == pytest.approx(32.5)  # from the input's 65 nm, halved

    for method, psf in (("rl", "airy"), ("sparse", "sr")):
        dec = tmp_path / f"{method}.zarr"
        args = ["deconvolve", str(out), str(dec), "--method", method, "--psf", psf,
                "--iterations", "5"]  # fmt: skip
        assert main(args) == 0
        arr, attrs = io.open_stage(dec)
        assert arr.shape == (1, 128, 128) and attrs["pixel_size"] == pytest.approx(32.5)
        assert np.isfinite(arr.compute()).all()


def test_deconvolve_rejects_a_negative_psf(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "img.tif", np.ones((16, 16), np.float32))
    psf = np.zeros((5, 5), np.float32)
    psf[2, 2] = -1
    tifffile.imwrite(tmp_path / "psf.tif", psf)
    code = main(["deconvolve", str(tmp_path / "img.tif"), str(tmp_path / "o.tif"),
                 "--psf", str(tmp_path / "psf.tif"), "--pixel-size", "65"])  # fmt: skip
    assert code == 2
    assert "psf.tif" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def import_graph() -> dict[str, set[str]]:
    """Module -> the dps_stages modules it imports: at the top or inside functions (every
    ``import`` node of the tree), absolute or relative (``from ..physics import Blur``)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "dps_stages"
    files = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def absolute(name: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = name.split(".")[: len(name.split(".")) - (files[name].name != "__init__.py")]
        base = package[: len(package) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, f in files.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = absolute(name, node)
                if module.startswith("dps_stages"):
                    for alias in node.names:
                        sub = f"{module}.{alias.name}"
                        graph[name].add(sub if sub in files else module)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in files}
    return {m: {t for t in ts if t not in (m, "dps_stages")} for m, ts in graph.items()}


def test_import_graph_counts_function_level_and_relative_imports():
    graph = import_graph()
    assert "dps_stages.cli.common" in graph["dps_stages.cli.nets"]
    assert "dps_stages.training" in graph["dps_stages.cli.nets"]  # inside cmd_train
    assert "dps_stages.physics" in graph["dps_stages.psf_id.data"]  # from ..physics import
    assert "dps_stages.physics.base" in graph["dps_stages.physics.blur"]  # from .base import


def test_no_import_circle_in_the_package():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            assert state.get(target) != 1, " -> ".join([*path, target])
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_chain_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dps_stages.chain, dps_stages.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parser_imports_neither_torch_nor_dask():
    """`dps --help` and every command's parser (``dps train <net>``'s flags from the specs
    included) load no torch and no Dask: they are imported where a command runs."""
    import subprocess
    import sys

    code = (
        "import sys; from dps_stages.cli import build_parser; p = build_parser(); "
        "p.parse_args(['train', 'psfid', 'out', '--give-params']); "
        "print(sorted(m for m in ('torch', 'dask.array', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_bar_into_a_log_stops_with_the_computation():
    """Into a file the bar redraws every 30 s, yet the command does not wait out the interval
    at its end: the timer waits on an event that the end of the computation sets. With
    dask's own timer (a sleep, then a join) this computation would take the whole 30 s
    interval; here it must end within the 25 s guard (it takes well under one)."""
    import io as pyio
    import threading

    import dask.array as da

    from dps_stages.cli.common import LOG_PROGRESS_INTERVAL, _progress

    log = pyio.StringIO()  # not a terminal: the log interval
    bar = _progress(out=log)
    assert bar._dt == LOG_PROGRESS_INTERVAL >= 30

    def run() -> None:
        with bar:
            da.ones((64, 64), chunks=16).sum().compute()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=25)
    assert not worker.is_alive(), "the progress bar waited out its interval"


def test_simulate_cover_spans_the_calibrated_photon_counts(tmp_path, capsys):
    """`dps simulate --cover`: the training levels span the photon counts that the given
    calibrations measured; without a photon spread it is refused and nothing is written."""
    from dps_stages.simulate import covering_levels

    store = tmp_path / "sim.zarr"
    assert (
        main(
            [
                "simulate",
                str(store),
                "--size",
                "128",
                "--n-per-structure",
                "1",
                "--structures",
                "microtubules",
                "--levels",
                "20,400",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    optics = ["--wavelength", "525", "--na", "1.4"]
    counts = []
    for level in ("20", "400"):
        raw = tmp_path / f"raw{level}.zarr"
        assert main(["extract", str(store), "--level", level, "--raw", str(raw)]) == 0
        calib = tmp_path / f"calib{level}.json"
        assert main(["calibrate", str(raw), str(calib), *optics]) == 0
        counts += json.loads(calib.read_text())["camera"]["photons"]
    assert len(counts) == 2 and counts[0] < counts[1]
    covers = [str(tmp_path / "calib20.json"), str(tmp_path / "calib400.json")]
    out = tmp_path / "train.zarr"
    common = [str(out), "--split", "train", "--size", "32", "--n-per-structure", "1",
              "--structures", "microtubules", "--calibration", covers[1], *optics]  # fmt: skip
    assert main(["simulate", *common, "--cover", *covers]) == 0
    attrs = io.read_attrs(out)
    assert attrs["levels"] == covering_levels(counts, 2.0)
    assert attrs["covered_photons"] == pytest.approx(counts)
    # an acquisition the calibration could not determine is left out, with a warning
    undetermined = tmp_path / "undetermined.json"
    undetermined.write_text(json.dumps({"determined": False, "reason": "too small"}))
    partial = tmp_path / "partial.zarr"
    common[0] = str(partial)
    assert main(["simulate", *common, "--cover", covers[0], str(undetermined)]) == 0
    assert io.read_attrs(partial)["covered_photons"] == pytest.approx(counts[:1])
    refused = tmp_path / "refused.zarr"
    common[0] = str(refused)
    assert main(["simulate", *common, "--randomise", "none", "--cover", *covers]) != 0
    assert "--cover needs randomised photon counts" in capsys.readouterr().err
    assert not refused.exists()
