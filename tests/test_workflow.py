"""The real Snakemake DAG on a tiny configuration, config validation, lint and dry run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run snakemake from this interpreter's environment, with `dps` on the PATH."""
    exe = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{exe}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(exe / "snakemake"), "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def workdir_with(tmp_path: Path, config: dict) -> Path:
    """A working directory holding config.yaml (what `configfile:` reads) and nothing else."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def tiny_config(**overrides) -> dict:
    config = yaml.safe_load(TINY.read_text())
    config.update(overrides)
    return config


def merged(config: dict, change: dict) -> dict:
    """``config`` with the nested values of ``change`` put in (a copy)."""
    out = dict(config)
    for key, value in change.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def scheduled(work: Path, config: dict) -> set[str]:
    """The rules a dry run in ``work`` with ``config`` (as changed.yaml) would run."""
    (work / "changed.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake("-n", "--quiet", "rules", "--configfile", "changed.yaml", cwd=work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    return {line.split()[0] for line in dry.stdout.splitlines() if line[:1].isalpha()}


def test_default_config_dry_run_and_lint():
    dry = snakemake("-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr
    lint = snakemake("--lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr


def test_workflow_imports_no_torch():
    """What the rule files import from dps_stages (on every parse of the Snakefile, once per
    `snakemake` call) loads no torch, Dask or SciPy; the registry's specs, read as the rules
    read them, stay plain data (their home, with torch, is imported where a network trains)."""
    lines = [
        line
        for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
        for line in smk.read_text().splitlines()
        if re.match(r"(from|import) dps_stages\b", line)
    ]
    assert any("registry" in line for line in lines), lines
    code = "\n".join([
        "import sys", *lines,
        "from dps_stages.nets.registry import REGISTRY",
        "for s in REGISTRY.values():",
        "    (s.name, s.data, s.inputs, s.loss_terms, s.settings, s.variants, s.sim_method)",
        "print(sorted(m for m in ('torch', 'dask.array', 'scipy') if m in sys.modules))",
    ])  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_profile_is_loaded(tmp_path):
    """profiles/default beside the Snakefile is where Snakemake looks: rerun-incomplete on."""
    from snakemake.cli import parse_args

    work = workdir_with(tmp_path, {"datasets": {"s": {"source": "simulate"}}})
    dry = snakemake("-n", "--quiet", "rules", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert f"workflow specific profile {ROOT / 'profiles' / 'default'}" in dry.stderr
    _, args = parse_args(["-s", str(ROOT / "Snakefile"), "-n"])
    assert args.rerun_incomplete and args.printshellcmds


def test_stale_lock_is_removed_only_without_a_live_run(tmp_path):
    """`make run`'s first step: a killed run's lock goes, and the run proceeds."""
    work = workdir_with(tmp_path, {"datasets": {"s": {"source": "simulate"}}})
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(work / "results" / "s" / "simulate" / "test.zarr"))
    exe = Path(sys.executable).parent / "snakemake"
    script = ROOT / "workflow" / "scripts" / "unlock_stale.py"
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, str(script), str(exe), "-s", str(ROOT / "Snakefile")]
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "unlocking" in run.stderr
    assert not locks.exists() or not any(locks.iterdir())
    # no lock: nothing to do, nothing said
    again = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr == ""


def test_minimal_config_takes_every_default_from_the_schema(tmp_path):
    work = workdir_with(tmp_path, {"datasets": {"s": {"source": "simulate"}}})
    dry = snakemake("-n", "-p", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert "--size 128 --levels 20,100,1000" in dry.stdout
    assert "--radius 50" in dry.stdout


def test_training_simulation_of_a_calibrated_microscope(tmp_path):
    """`simulate.calibration` names a raw dataset: its calibration is the simulation's input
    and the command gets it with the default spreads; a bad name stops before any job. The
    dataset's `adapt` networks are fine-tuned on its frames and restore it."""
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, np.zeros((9, 64, 64), np.uint16))
    config = merged(
        tiny_config(), {"datasets": {"simulated": {"simulate": {"calibration": "cells"}}}}
    )
    config["datasets"]["cells"] = {"source": str(raw), "kind": "raw", "adapt": ["sim"]}
    work = workdir_with(tmp_path / "w", config)
    dry = snakemake("-n", "-p", "--forceall", cwd=work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "--calibration results/cells/input/calibration.json" in dry.stdout
    assert "rule calibrate" in dry.stdout
    # the SIM network adapted on the acquisition's own frames restores it
    assert "dps adapt sim results/models/sim results/cells/input/raw.zarr" in dry.stdout
    assert "--model results/cells/input/models/sim" in dry.stdout
    assert "dps infer sim results/cells/input/raw.zarr" in dry.stdout  # the frames it adapted on
    assert "--cover" not in dry.stdout  # the levels as written unless training_levels: data
    # training_levels: data: training and validation splits span the raw data's photon
    # counts; the test split not
    config["datasets"]["simulated"]["simulate"]["training_levels"] = "data"
    work = workdir_with(tmp_path / "w1", config)
    dry = snakemake("-n", "-p", "--forceall", cwd=work)
    cover = "--cover results/cells/input/calibration.json --split"
    assert dry.stdout.count(cover) == 2 and f"{cover} test" not in dry.stdout
    config["datasets"]["simulated"]["simulate"]["randomise"] = {"haze": 0.3}
    work = workdir_with(tmp_path / "w2", config)
    dry = snakemake("-n", "-p", cwd=work)
    assert "--randomise haze=0.3" in dry.stdout, dry.stdout[-3000:]
    assert "--cover" not in dry.stdout  # no photon spread: the levels as written
    config["datasets"]["simulated"]["simulate"]["calibration"] = "simulated"
    work = workdir_with(tmp_path / "w3", config)
    run = snakemake("-n", cwd=work)
    assert run.returncode != 0 and "is not a raw dataset" in run.stderr + run.stdout


def test_bioimageio_option_exports_every_trained_model(tmp_path):
    """`networks.bioimageio: true`: one `dps export-model` per trained model, its pixel size
    that of the model's input grid (the SIM grid for artifact removal)."""
    work = workdir_with(tmp_path, merged(tiny_config(), {"networks": {"bioimageio": True}}))
    dry = snakemake("-n", "-p", cwd=work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert (
        "dps export-model sim results/models/sim results/models/bioimageio/sim.zip "
        "--pixel-size 65" in dry.stdout
    )
    assert "results/models/bioimageio/artifact.zip --pixel-size 32.5" in dry.stdout


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"optics": {"na": 2.5}}, "na"),
        ({"background": {"radius": "big"}}, "radius"),
        ({"bogus_key": 1}, "bogus_key"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, change, key):
    work = workdir_with(tmp_path, tiny_config(**change))
    run = snakemake("--cores", "1", cwd=work)
    assert run.returncode != 0
    assert key in run.stderr + run.stdout
    assert not (work / "results").exists()


@pytest.mark.e2e
def test_tiny_pipeline_end_to_end(tmp_path):
    work = workdir_with(tmp_path, tiny_config())
    run = snakemake("--cores", "2", cwd=work)
    assert run.returncode == 0, run.stderr[-4000:]
    results = work / "results" / "simulated"

    table = pd.read_csv(results / "metrics.tsv", sep="\t", dtype={"level": str})
    assert set(table["level"]) == {"50", "500"}
    stages = {"widefield", "raw_bg", "widefield_bg", "widefield_rl", "widefield_sparse",
              "sim_wiener", "sim_sparse", "widefield_rl_id", "raw_dn", "sim_dn_wiener",
              "sim_dps", "sim_oidn", "sim_ar", "sim_ar_bg", "sim_dbpn"}  # fmt: skip
    assert set(table["stage"]) == stages
    # every stage against the object truth of its grid (levels x stages x images); the SIM
    # grid's stages also against the SIM-passband truth
    assert len(table[table["truth"] == "object"]) == 2 * len(stages) * 2
    sim_grid = set(table.loc[table["grid"] == "2x", "stage"])
    passband = table[table["truth"] == "sim_passband"]
    assert set(passband["stage"]) == sim_grid and len(passband) == 2 * len(sim_grid) * 2
    assert table["psnr"].notna().all() and table["resolution_nm"].notna().all()
    gains = table.loc[table["stage"] == "widefield_bg", "resolution_gain"]
    assert gains.notna().all()
    # more photons, a better widefield image
    wf = table[table["stage"] == "widefield"].groupby("level")["psnr"].mean()
    assert wf["500"] > wf["50"]

    summary = pd.read_csv(results / "metrics_summary.tsv", sep="\t")
    assert {"psnr_mean", "resolution_nm_mean", "n_images"} <= set(summary.columns)
    assert (results / "metrics.png").stat().st_size > 0
    # the report's stage figures: a few stages each, every group of the chain
    assert {p.stem for p in (results / "50" / "stages").iterdir()} == {
        "inputs",
        "deconvolution",
        "sim",
        "chain",
    }
    html = (results / "metrics_summary.html").read_text()
    assert html.count("<table>") >= 4 and "sim_dbpn" in html

    # SIM reconstructions live on the 2x grid and are judged against the 2x ground truth
    sim = table[table["stage"] == "sim_wiener"]
    assert set(sim["grid"]) == {"2x"} and (sim["pixel_size_nm"] == 32.5).all()
    tif = results / "500" / "final" / "sim_wiener.tif"
    with tifffile.TiffFile(tif) as f:
        assert f.is_imagej and f.asarray().shape == (2, 64, 64)
    # the final OME-Zarr: the fields of view as separate NGFF images, no time axis
    import zarr
    from ome_zarr_models.v05 import BioFormats2Raw

    ome = zarr.open_group(str(results / "500" / "final" / "widefield_rl.ome.zarr"), mode="r")
    images = BioFormats2Raw.from_zarr(ome).images
    assert len(images) == 2
    assert all(
        a.type != "time" for i in images.values() for a in i.ome_attributes.multiscales[0].axes
    )
    # no foreign file in any Zarr store (a directory() output's .snakemake_timestamp)
    assert not list((work / "results").rglob("*.zarr/.snakemake_timestamp"))
    # every registered network: trained by its rule; chained, Res-U-DBPN on the 4x grid
    from dps_stages.nets.registry import REGISTRY

    for net in REGISTRY:
        folder = work / "results" / "models" / net
        assert {"model.pt", "record.json", "loss.tsv", "loss.png"} <= {
            p.name for p in folder.iterdir()
        }
    figures = work / "results" / "models" / "figures"
    assert (figures / "oidn_psf.png").exists() and (figures / "denoise_loss.png").exists()
    dbpn = table[table["stage"] == "sim_dbpn"]
    assert set(dbpn["grid"]) == {"4x"} and (dbpn["pixel_size_nm"] == 16.25).all()
    assert (dbpn["input"] == "sim_ar_bg").all() and dbpn["resolution_gain"].notna().all()
    assert set(table.loc[table["stage"] == "sim_ar", "input"]) == {"sim_dn_wiener"}
    assert (results / "500" / "final" / "sim_dbpn.tif").exists()
    for rule_log in (work / "results" / "logs" / "simulated").iterdir():
        assert rule_log.suffix == ".log"

    # the reviewer's page on the tiny run: every row filled, a verdict each (rows whose data
    # this config lacks say why)
    page = snakemake("--cores", "2", "paper", cwd=work)
    assert page.returncode == 0, page.stderr[-3000:]
    claims = pd.read_csv(work / "results" / "paper" / "claims.tsv", sep="\t", dtype=str)
    assert len(claims) >= 10 and claims.notna().all().all()
    assert set(claims["verdict"]) <= {"reproduced", "not reproduced", "not comparable"}
    computed = claims[~claims["reproduced"].str.startswith("not computed")]
    assert {"OIDN (Jin et al. 2024)", "PSF identification (Nguyen et al.)"} <= set(
        computed["paper"]
    )
    assert "<table>" in (work / "results" / "paper" / "index.html").read_text()
    shutil.rmtree(work / "results" / "paper")  # not an output of the default target

    # a rerun with the same config is a no-op, and a fresh run gives identical numbers
    again = snakemake("--cores", "2", "-n", cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a changed setting reruns what reads it, and only that (the `settings` params)
    for change, rerun, kept in (
        ({"networks": {"denoise": {"steps": 4}}}, {"train_denoise", "infer"},
         {"simulate", "train_psfid", "deconvolve"}),
        ({"sim": {"local_wiener": 0.5}}, {"sim_reconstruct", "train_artifact"},
         {"simulate", "train_denoise", "train_psfid"}),
        ({"deconvolution": {"rl": {"iterations": 3}}}, {"deconvolve"},
         {"sim_reconstruct", "train_denoise"}),
        # the stage rules' named params, compared by Snakemake, without hand-made digests
        ({"deconvolution": {"sparse": {"fidelity": 100}}}, {"deconvolve"},
         {"simulate", "sim_reconstruct", "train_denoise", "infer"}),
        ({"background": {"radius": 6}}, {"background"}, {"simulate", "extract_level"}),
        ({"evaluate": {"figure_images": 1}}, {"stage_figure"},
         {"evaluate", "deconvolve", "simulate"}),
        # (Wiener on the denoised frames follows the denoiser's inference)
        ({"networks": {"tile": 16}}, {"infer", "sim_reconstruct"},
         {"simulate", "deconvolve", "train_denoise"}),
        # a changed input (sim_ar now cleans sim_dps) reruns infer by the input trigger
        ({"networks": {"sim_method": "dps"}}, {"infer", "train_artifact"},
         {"simulate", "extract_level"}),
    ):  # fmt: skip
        rules = scheduled(work, merged(tiny_config(), change))
        assert rerun <= rules and not kept & rules, (change, sorted(rules))
    # a fresh run killed (SIGKILL to Snakemake and its jobs) midway and resumed the README's
    # way gives byte-identical outputs (benchmarks/bench_resume.py: other kill points)
    from resume import differences, resume, run_killed

    (work / "results").rename(tmp_path / "uninterrupted")
    shutil.rmtree(work / ".snakemake", ignore_errors=True)
    started = run_killed(work, 35)
    assert (work / ".snakemake" / "locks").is_dir()  # a killed run's lock, left behind
    done = resume(work)
    assert done.returncode == 0, (started[-3:], done.stderr[-4000:])
    assert differences(tmp_path / "uninterrupted", work / "results") == [], started[-3:]
    table2 = pd.read_csv(results / "metrics.tsv", sep="\t", dtype={"level": str})
    pd.testing.assert_frame_equal(table, table2)


@pytest.mark.e2e
def test_user_raw_frames_with_eight_frames_fail_clearly(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1, 9):
        tifffile.imwrite(frames / f"f_{i}.tif", np.ones((32, 32), np.uint16))
    config = tiny_config(
        datasets={"mine": {"source": str(frames), "kind": "raw"}},
    )
    work = workdir_with(tmp_path / "w", config)
    # the import's own output as the target: the networks' trainings are not needed to fail
    run = snakemake("--cores", "1", "results/mine/input/raw.zarr/zarr.json", cwd=work)
    assert run.returncode != 0
    assert "import_raw" in run.stdout + run.stderr  # the import ran (and failed)
    log = (work / "results" / "logs" / "mine" / "import.log").read_text()
    assert str(frames) in log and "9 frames" in log and "8 frames" in log
    assert not (work / "results" / "mine" / "input" / "raw.zarr").exists()


@pytest.mark.e2e
def test_user_widefield_image_without_ground_truth(tmp_path, rng):
    """A user's widefield TIFF enters at background; metrics are resolution-only. Blind mode:
    its PSF is identified and used for deconvolution."""
    yy, xx = np.mgrid[:64, :64]
    spot = 50 * np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 40.0)
    image = 200 + spot + rng.normal(0, 2, yy.shape)
    source = tmp_path / "cells.tif"
    tifffile.imwrite(source, image.astype(np.float32))
    config = tiny_config(
        datasets={"cells": {"source": str(source), "kind": "widefield",
                            "optics": {"pixel_size": 80, "psf": "identify"}}},
    )  # fmt: skip
    work = workdir_with(tmp_path / "w", config)
    run = snakemake("--cores", "2", cwd=work)
    assert run.returncode == 0, run.stderr[-4000:]
    table = pd.read_csv(work / "results" / "cells" / "metrics.tsv", sep="\t")
    assert list(table["stage"]) == ["widefield", "widefield_bg", "widefield_rl",
                                    "widefield_sparse", "widefield_dbpn"]  # fmt: skip
    assert table["psnr"].isna().all()  # no ground truth, no invented reference
    assert (table["pixel_size_nm"][:4] == 80).all()
    assert table["pixel_size_nm"].iloc[4] == 40  # Res-U-DBPN doubles the grid
    assert (work / "results" / "cells" / "input" / "final" / "widefield_rl.tif").exists()
    # blind mode: the identified PSF (shown in the report) drove the deconvolution
    psf_dir = work / "results" / "cells" / "input" / "psf"
    assert (psf_dir / "identified.png").exists()
    assert (work / "results" / "models" / "psfid" / "model.pt").exists()
    from dps_stages.io import read_attrs

    rl = read_attrs(work / "results" / "cells" / "input" / "widefield_rl.zarr")
    assert rl["psf"] == str(psf_dir.relative_to(work) / "widefield.tif")
    # no simulated dataset: the networks trained on the hidden one, which is not evaluated
    assert (work / "results" / "models" / "resudbpn_widefield" / "model.pt").exists()
    assert not (work / "results" / "_training" / "metrics.tsv").exists()
    # an edit of the dataset's own optics reruns the stages that read them, not its import
    rules = scheduled(work, merged(config, {"datasets": {"cells": {"optics": {"na": 1.2}}}}))
    assert {"identify_psf", "deconvolve", "evaluate"} <= rules, sorted(rules)
    assert not {"import_image", "background", "train_psfid"} & rules, sorted(rules)


def widefield_folder(folder: Path, n: int, size: int = 8) -> Path:
    """``n`` tiny widefield TIFFs ``cell000.tif`` ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        tifffile.imwrite(folder / f"cell{i:03d}.tif", np.full((size, size), i, np.float32))
    return folder


def dry_jobs(work: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """A dry run in ``work`` and the count of each rule's jobs (Snakemake's job stats)."""
    dry = snakemake("-n", "--quiet", "rules", *args, cwd=work)
    counts = {}
    for line in dry.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts.setdefault(parts[0], int(parts[1]))
    return dry, counts


def test_glob_source_makes_one_dataset_per_acquisition(tmp_path):
    """`source: <folder>/*.tif` (and `<folder>/*/`): one dataset per match, named after the
    entry and what the wildcard matched, each with the entry's other keys and its own
    outputs; a name made twice is an error naming both paths."""
    files = widefield_folder(tmp_path / "run1", 3)
    for name in ("b", "a"):  # folders read as one stack each
        widefield_folder(tmp_path / "run2" / f"fov {name}", 1)
    config = tiny_config(
        datasets={
            "wf": {"source": f"{files}/*.tif", "kind": "widefield",
                   "optics": {"pixel_size": 80}},
            "fov": {"source": f"{tmp_path}/run2/*/", "kind": "widefield"},
        }
    )  # fmt: skip
    work = workdir_with(tmp_path / "w", config)
    dry = snakemake("-n", "-p", cwd=work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    imported = re.findall(r"dps import .* results/([^/\s]+)/input/widefield\.zarr", dry.stdout)
    names = {"wf_cell000", "wf_cell001", "wf_cell002", "fov_fov_a", "fov_fov_b"}
    assert sorted(imported) == sorted(names)  # each once
    assert f"dps import {files}/cell001.tif results/wf_cell001/input/widefield.zarr" in dry.stdout
    assert "--pixel-size 80 " in dry.stdout  # the entry's optics, inherited
    for name in names:
        assert f"results/{name}/input/final/widefield_rl.tif" in dry.stdout
        assert f"results/{name}/metrics.tsv" in dry.stdout
    assert "results/wf/" not in dry.stdout  # the glob entry itself is no dataset
    # the same name from two entries: an error naming both paths, before any job
    config["datasets"]["wf_cell001"] = {"source": str(files / "cell002.tif"), "kind": "widefield"}
    work = workdir_with(tmp_path / "w2", config)
    run = snakemake("--cores", "1", cwd=work)
    said = run.stdout + run.stderr
    assert run.returncode != 0 and "made twice" in said, said[-2000:]
    assert str(files / "cell001.tif") in said and str(files / "cell002.tif") in said
    assert not (work / "results").exists()
    config["datasets"] = {"wf": {"source": f"{tmp_path}/none/*.tif", "kind": "widefield"}}
    run = snakemake("-n", cwd=workdir_with(tmp_path / "w3", config))
    assert run.returncode != 0 and "matches nothing" in run.stdout + run.stderr


def write_sheet(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def test_sample_sheet_rows_become_datasets(tmp_path):
    """`samples: samples.tsv`: each row a dataset as if under `datasets:` (its optics over the
    top-level ones, a glob in a row expanded), beside the config's own datasets."""
    files = widefield_folder(tmp_path / "run", 3)
    config = tiny_config(samples="samples.tsv")
    work = workdir_with(tmp_path / "w", config)
    write_sheet(work / "samples.tsv", [
        ["name", "source", "kind", "na", "pixel_size", "psf"],
        ["one", str(files / "cell000.tif"), "widefield", "1.2", "90", ""],
        ["many", f"{files}/cell00[12].tif", "widefield", "", "", "theory"],
    ])  # fmt: skip
    dry = snakemake("-n", "-p", cwd=work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    out = dry.stdout
    assert f"dps import {files}/cell000.tif results/one/input/widefield.zarr" in out
    assert "--pixel-size 90.0 " in out and "--na 1.2 " in out
    for name in ("many_cell001", "many_cell002"):
        assert f"results/{name}/input/final/widefield_sparse.tif" in out
    assert "results/simulated/metrics.tsv" in out  # the config's own dataset still runs
    # only a sample sheet, no `datasets:`
    del config["datasets"]
    work2 = workdir_with(tmp_path / "w2", config)
    shutil.copy(work / "samples.tsv", work2 / "samples.tsv")
    dry, counts = dry_jobs(work2)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert counts["import_image"] == 3 and counts["metrics_table"] == 3


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        ([["name", "source"], ["a", "x.tif"]], ["column 'kind' is missing"]),
        ([["name", "source", "kind", "na"], ["a", "x.tif", "widefield", "1.2"],
          ["b", "x.tif", "widefield", "2.5"]], ["row 2", "column 'na'", "2.5"]),
        ([["name", "source", "kind", "na"], ["a", "x.tif", "widefield", "big"]],
         ["row 1", "column 'na'", "'big' is not of type 'number'"]),
        ([["name", "source", "kind"], ["a", "x.tif", "widefield"], ["a", "y.tif", "raw"]],
         ["row 2", "column 'name'", "'a' is also the name of row 1"]),
        ([["name", "source", "kind", "colour"], ["a", "x.tif", "widefield", "red"]],
         ["column 'colour' is not a sample sheet column"]),
        ([["name", "source", "kind"], ["a/..", "x.tif", "widefield"]], ["row 1", "column 'name'"]),
        ([["name", "source", "kind"], ["simulated", "x.tif", "widefield"]],
         ["row 1", "'simulated' is also a dataset of `datasets:`"]),
    ],
)  # fmt: skip
def test_bad_sample_sheet_stops_before_any_job_naming_row_and_column(tmp_path, rows, said):
    work = workdir_with(tmp_path, tiny_config(samples="samples.tsv"))
    tifffile.imwrite(work / "x.tif", np.zeros((8, 8), np.float32))
    write_sheet(work / "samples.tsv", rows)
    run = snakemake("--cores", "1", cwd=work)
    assert run.returncode != 0
    for text in ["sample sheet samples.tsv", *said]:
        assert text in run.stdout + run.stderr, (text, run.stderr[-2000:])
    assert not (work / "results").exists()


def test_many_acquisitions_dry_run(tmp_path):
    """A glob over many small widefield images builds its DAG: every per-dataset rule
    scheduled once per image (Snakemake's own job stats). 200 here to keep the suite short;
    benchmarks/bench_fov.py times 500."""
    n = 200
    files = widefield_folder(tmp_path / "run", n)
    config = tiny_config(datasets={"fov": {"source": f"{files}/*.tif", "kind": "widefield"}})
    work = workdir_with(tmp_path / "w", config)
    dry, counts = dry_jobs(work)
    assert dry.returncode == 0, dry.stderr[-2000:]
    for rule in ("import_image", "background", "identify_psf", "infer", "evaluate",
                 "metrics_table"):  # fmt: skip
        assert counts[rule] == n, (rule, counts)
    # three stage figures of a widefield image (inputs, deconvolution, chain)
    assert counts["deconvolve"] == counts["export"] == counts["stage_figure"] == 3 * n
    assert counts["train_resudbpn"] == counts["train_psfid"] == 1  # shared networks, once
