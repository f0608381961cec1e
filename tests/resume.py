"""Kill a Snakemake run with SIGKILL at its k-th job, resume it the README's way, compare.

Shared by the end-to-end test (one kill point) and ``benchmarks/bench_resume.py`` (every kill
point it is asked for). A kill takes the whole process group (Snakemake and the ``dps`` jobs
it started), as a power cut or ``scancel`` would. The resume is what ``make run`` does:
``workflow/scripts/unlock_stale.py`` (a killed run's lock), then ``snakemake`` (the default
profile's ``rerun-incomplete`` redoes unfinished jobs; trainings continue from their
checkpoints).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
_JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$", re.MULTILINE)
# keys of JSON records that hold wall time or the device, not results
TIMING_KEYS = frozenset({"seconds"})


def _env() -> dict[str, str]:
    exe = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{exe}{os.pathsep}{os.environ.get('PATH', '')}"}


def _snakemake() -> list[str]:
    return [str(Path(sys.executable).parent / "snakemake"), "-s", str(SNAKEFILE)]


def run_killed(work: Path, k: int, *, cores: int = 2, settle: float = 1.0,
               timeout: float = 900.0) -> list[str]:  # fmt: skip
    """Start the pipeline in ``work``, SIGKILL its process group ``settle`` s after its
    ``k``-th job started; returns the rules started by then (the last one was running).
    Raises RuntimeError when the run ends before its ``k``-th job."""
    log = work / f"killed_at_{k}.log"
    with open(log, "w") as out:
        command = [*_snakemake(), "--cores", str(cores)]
        proc = subprocess.Popen(command, cwd=work, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while True:
            started = _JOB_START.findall(log.read_text())
            if len(started) >= k:
                time.sleep(settle)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the run ended after {len(started)} jobs, before job {k}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {k} did not start within {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return started


def resume(work: Path, *, cores: int = 2, timeout: float = 900.0) -> subprocess.CompletedProcess:
    """What ``make run`` does after a kill: remove a stale lock, then run again."""
    unlock = ROOT / "workflow" / "scripts" / "unlock_stale.py"
    first = subprocess.run([sys.executable, str(unlock), *_snakemake()], cwd=work, env=_env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    if first.returncode != 0:
        return first
    return subprocess.run([*_snakemake(), "--cores", str(cores)], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def differences(a: Path, b: Path) -> list[str]:
    """Files under results trees ``a`` and ``b`` that differ, or exist in one only.

    Bytes are compared, except: rule logs (``logs/``, wall times and progress) are skipped,
    and JSON records are compared without their wall-time keys (``TIMING_KEYS``)."""

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and p.relative_to(root).parts[0] != "logs"}  # fmt: skip

    fa, fb = files(a), files(b)
    out = sorted(fa ^ fb)
    for rel in sorted(fa & fb):
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if x == y:
            continue
        if rel.endswith(".json"):
            try:
                if _without_timings(json.loads(x)) == _without_timings(json.loads(y)):
                    continue
            except ValueError:
                pass
        out.append(rel)
    return out
