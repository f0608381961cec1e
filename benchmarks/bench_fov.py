"""Benchmark of many fields of view: the dry run of a config whose one glob names N small
widefield acquisitions (``source: <tmp>/*.tif``), repeated.

For each repeat: the wall time of ``snakemake -n --quiet rules`` and its CPU time (user +
system of the child, which on a shared machine is the steadier figure: one process, one core),
and the number of jobs scheduled. Optionally a real run (``--real N``) of N acquisitions with
the tiny networks of tests/data/tiny.yaml, its wall and CPU time and the jobs it ran.

Run from the project root:
    python benchmarks/bench_fov.py --n 500 --repeats 3 --out fov.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]


def acquisitions(folder: Path, n: int, size: int, seed: int) -> None:
    """``n`` widefield TIFFs of ``size`` x ``size``: a Gaussian spot on 200 plus N(0, 2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        spot = 50 * np.exp(-((yy - size / 3 - i % 12) ** 2 + (xx - size / 2) ** 2) / 20.0)
        image = 200 + spot + rng.normal(0, 2, yy.shape)
        tifffile.imwrite(folder / f"cell{i:03d}.tif", image.astype(np.float32))


def timed(args: list[str], cwd: Path) -> dict:
    """Wall and CPU seconds (user + system of the child processes) of one command."""
    exe = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{exe}{os.pathsep}{os.environ.get('PATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "log": run.stdout + run.stderr}


def job_total(stdout: str) -> int:
    """The `total` line of Snakemake's job stats."""
    return next(int(line.split()[1]) for line in stdout.splitlines() if line.startswith("total"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="acquisitions of the dry run")
    parser.add_argument("--size", type=int, default=32, help="image edge, pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real", type=int, default=0, help="acquisitions of a real run (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fov.json"))
    args = parser.parse_args()
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile")]
    tiny = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    record = {"n": args.n, "size": args.size, "dry_runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        acquisitions(work / "data", args.n, args.size, args.seed)
        config = {**tiny, "datasets": {"wf": {"source": f"{work}/data/*.tif",
                                              "kind": "widefield"}}}  # fmt: skip
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        for _ in range(args.repeats):
            run = timed([*snakemake, "-n", "--quiet", "rules"], work)
            run["jobs"] = job_total(run.pop("log"))
            record["dry_runs"].append(run)
            print(run, flush=True)
        if args.real:
            real = work / "real"
            acquisitions(real / "data", args.real, args.size, args.seed)
            config["datasets"]["wf"]["source"] = f"{real}/data/*.tif"
            (real / "config.yaml").write_text(yaml.safe_dump(config))
            run = timed([*snakemake, "--cores", "2"], real)
            run["jobs"] = run.pop("log").count("Finished job")
            run["acquisitions"] = args.real
            record["real_run"] = run
            print(run, flush=True)
            shutil.rmtree(real)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
