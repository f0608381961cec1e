"""Resume after ``kill -9`` at many points of the tiny pipeline (issue 13).

One uninterrupted run of ``tests/data/tiny.yaml``, then for each kill point k: a fresh run
killed (SIGKILL to Snakemake and its jobs) one second after its k-th job started, resumed the
way ``make run`` does, and its ``results/`` compared file by file with the uninterrupted run
(bytes; rule logs skipped; JSON records without their wall-time keys: ``tests/resume.py``).

    python benchmarks/bench_resume.py --points 1,10,20,30,40,50,60,69 [--work DIR]

Prints a markdown table: kill point, the rules started by then, the resume's exit status and
the files that differ.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from resume import differences, resume, run_killed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default="1,10,20,30,40,50,60,69",
                    help="comma-separated job numbers to kill at")  # fmt: skip
    ap.add_argument("--config", default=str(ROOT / "tests" / "data" / "tiny.yaml"))
    ap.add_argument("--work", default=None, help="folder for the runs (default: a temp one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="dps-resume-"))
    reference = work / "uninterrupted"
    if not (reference / "results").is_dir():
        reference.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.config, reference / "config.yaml")
        t0 = time.perf_counter()
        done = resume(reference)
        if done.returncode != 0:
            sys.exit(f"the uninterrupted run failed:\n{done.stderr[-3000:]}")
        print(f"uninterrupted run: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print("| kill at job | rules started (last was running) | resume exit | differing files |")
    print("|---|---|---|---|")
    for k in (int(p) for p in args.points.split(",")):
        run = work / f"killed_{k}"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        shutil.copy(args.config, run / "config.yaml")
        try:
            started = run_killed(run, k)
        except RuntimeError as exc:
            print(f"| {k} | {exc} | | |", flush=True)
            continue
        done = resume(run)
        diff = differences(reference / "results", run / "results") if done.returncode == 0 else []
        last = ", ".join(started[-3:])
        print(f"| {k} | ... {last} | {done.returncode} | {len(diff)} {' '.join(diff[:5])} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
