"""Helpers shared by the benchmark scripts: the machine's description and best-of timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line for a results table: cores, CPU model, system."""
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} CPU cores (nproc), {cpu_model()}, {system}"


def best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
