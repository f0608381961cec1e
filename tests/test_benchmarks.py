"""The benchmarks' measuring helpers (``benchmarks/bench_memory.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
#: more than a pipe holds (64 KiB): what ~100 s of a progress bar redrawn every 0.1 s write
NOISY = "import sys; sys.stderr.write('x' * (1 << 20) + 'END'); sys.stderr.flush(); sys.exit({})"


def _peak_rss_of(code: str) -> subprocess.CompletedProcess:
    """``bench_memory.peak_rss`` of a child running ``code``, in a driver process killed after
    120 s: a hang fails the test (and, its pipe closed, ends the child) instead of blocking."""
    driver = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import bench_memory\n"
        f"try:\n"
        f"    mb, _ = bench_memory.peak_rss([sys.executable, '-c', {code!r}])\n"
        f"    print('peak', mb)\n"
        f"except RuntimeError as exc:\n"
        f"    print('error', str(exc)[:200].splitlines()[0][-40:], str(exc)[-20:])\n"
    )
    try:
        return subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("peak_rss hung on a child that writes 1 MiB to stderr (a full pipe)")


def test_peak_rss_of_a_child_filling_stderr_returns():
    """The child's stderr must not be a pipe read only after it exits: it would fill, block
    the child's next write and the parent's ``wait4`` for ever (the hang of ``sim-reconstruct``
    at "99% Completed" under the memory benchmark)."""
    res = _peak_rss_of(NOISY.format(0))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("peak ")
    assert float(res.stdout.split()[1]) > 0


def test_peak_rss_reports_the_tail_of_a_failed_childs_stderr():
    res = _peak_rss_of(NOISY.format(3))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("error ")
    assert "failed (3)" in res.stdout
    assert res.stdout.rstrip().endswith("xxxEND")


def test_progress_bar_redraws_at_most_once_a_second():
    """dask's default redraw (every 0.1 s) writes ~600 bytes a second to a rule's log."""
    from dps_stages.cli.common import _progress

    assert _progress()._dt >= 1.0
