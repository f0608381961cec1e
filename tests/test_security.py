"""A config with shell metacharacters runs nothing it should not: every config-derived value
in the stage rules' shell commands is quoted, dataset names are safe path components, and no
write escapes `results`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny.yaml"
HOSTILE_RESULTS = "r;touch X;x $(touch Z)"
HOSTILE_MODEL = "m/$(touch Y)`touch W`"


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{exe}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(exe / "snakemake"), "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def hostile_work(tmp_path: Path) -> Path:
    """A working directory whose config puts shell code in `results` and in every network's
    model path (the model folders exist, so that no training is scheduled)."""
    config = yaml.safe_load(TINY.read_text())
    config["results"] = HOSTILE_RESULTS
    for net in ("denoise", "sim", "artifact", "resudbpn", "oidn", "psfid"):
        config["networks"].setdefault(net, {})["model"] = f"{HOSTILE_MODEL}{net}"
        (tmp_path / f"{HOSTILE_MODEL}{net}").mkdir(parents=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def shell_commands(stdout: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in stdout.splitlines()
            if line.startswith("Shell command:") and "None" not in line]  # fmt: skip


def test_dry_run_quotes_every_config_value(tmp_path):
    work = hostile_work(tmp_path)
    dry = snakemake("-n", "-p", cwd=work)
    assert dry.returncode == 0, dry.stderr[-3000:]
    commands = shell_commands(dry.stdout)
    assert commands and not any(c.startswith("dps train") for c in commands)
    for command in commands:
        words = shlex.split(command)  # what the shell will see, word by word
        # the hostile strings arrive whole, inside one word, never as shell syntax
        for word in words:
            if "touch" in word:
                assert HOSTILE_RESULTS in word or HOSTILE_MODEL in word, (word, command)
        assert not {"touch", "X;x", "Y)`touch"} & set(words), command
    assert not any((work / name).exists() for name in "XYZW")


def test_real_run_writes_only_under_results(tmp_path):
    """Simulate, extract and background for real with the hostile `results`."""
    work = hostile_work(tmp_path)
    before = {p for p in work.rglob("*")}
    target = f"{HOSTILE_RESULTS}/simulated/50/widefield_bg.zarr/zarr.json"  # the store's
    run = snakemake("--cores", "1", target, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / target).exists()
    assert not any((work / name).exists() for name in "XYZW")
    results = work / HOSTILE_RESULTS
    new = {p for p in work.rglob("*")} - before
    outside = [p for p in new if results not in p.parents and p != results
               and ".snakemake" not in p.relative_to(work).parts]  # fmt: skip
    assert not outside, outside


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"datasets": {"..": {"source": "simulate"}}}, ".."),
        ({"datasets": {"a/b": {"source": "simulate"}}}, "a/b"),
        ({"datasets": {"$(touch Q)": {"source": "simulate"}}}, "touch"),
        ({"results": "r\ntouch Q"}, "results"),
        ({"datasets": {"s": {"source": "simulate", "simulate": {"n_train": 0}}}}, "n_train"),
        ({"background": {"radius": 0}}, "radius"),
        ({"deconvolution": {"rl": {"iterations": 0}}}, "iterations"),
    ],
)
def test_unsafe_or_out_of_range_config_stops_before_any_job(tmp_path, change, key):
    config = yaml.safe_load(TINY.read_text())
    config.update(change)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake("--cores", "1", cwd=tmp_path)
    assert run.returncode != 0
    assert key in run.stderr + run.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["config.yaml"]
    assert not (tmp_path.parent / "Q").exists() and not (tmp_path / "Q").exists()


def test_levels_with_the_same_name_are_refused(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["simulated"]["simulate"]["levels"] = [100, 100.0000001]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake("-n", cwd=tmp_path)
    assert run.returncode != 0
    assert "levels" in run.stderr + run.stdout and "same level" in run.stderr + run.stdout
