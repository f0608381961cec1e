"""Benchmark of the decorrelation analysis: accuracy against the authors' code, and speed.

Usage::

    python benchmarks/bench_decorrelation.py > out.md

Prints markdown: the machine, the cut-off frequency kc found on the reference images of
``../shared/data`` next to the value of the authors' MATLAB code (ImDecorr ``getDcorr``, run
under GNU Octave, r = linspace(0, 1, 50), Ng = 10, after ``apodImRect(image, 20)``), and the
time of one analysis (best of 3) on a 2048 x 2048 image (``dps-fig3a/Fig3a.tif`` when present,
else synthetic) and on a 512 x 512 one. Images that are absent are reported as such.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import cpu_model  # noqa: E402
from dps_stages.metrics import decorrelation  # noqa: E402
from dps_stages.paper import REFERENCE_KC  # noqa: E402  (the authors' kc, shared/data/README.md)

DATA = ROOT.parent / "shared" / "data"

#: Octave timings of the authors' code on a 2-core machine (shared/data/README.md).
AUTHORS_SECONDS = {512: 2.0, 2048: 47.0}


def n_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def read_image(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def synthetic(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Band-limited noise (hard disc at 0.6 Nyquist) plus a little white noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.standard_normal(shape))
    ky = 2.0 * np.fft.fftfreq(shape[0])[:, None]
    kx = 2.0 * np.fft.rfftfreq(shape[1])[None, :]
    spectrum[np.hypot(ky, kx) >= 0.6] = 0.0
    image = np.fft.irfft2(spectrum, s=shape)
    return (image + 0.1 * image.std() * rng.standard_normal(shape)).astype(np.float32)


def best_of(n: int, func) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(n):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    print("# Decorrelation analysis: accuracy and speed\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(
        f"- machine: {n_cpus()} CPU(s), {cpu_model()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    print("- implementation: `dps_stages.metrics.decorrelation` (n_r=50, n_g=10, apodise_px=20)")
    print("- data: `../shared/data`" + ("" if DATA.exists() else " (absent)"))
    print()

    print("## kc against the authors' code\n")
    print(
        "| image | size | kc (authors) | kc (dps) | relative error | A0 (dps) | resolution (px) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, ref in REFERENCE_KC.items():
        path = DATA / name
        if not path.exists():
            print(f"| `{name}` | - | {ref:.4f} | absent | - | - | - |")
            continue
        image = read_image(path)
        res = decorrelation(image)
        err = (res.kc - ref) / ref
        print(
            f"| `{name}` | {image.shape[0]} x {image.shape[1]} | {ref:.4f} | {res.kc:.4f} | "
            f"{100 * err:+.2f} % | {res.a0:.3f} | {res.resolution_px:.2f} |"
        )
    print()

    print("## Time of one analysis (best of 3)\n")
    print("| image | size | time (s) | authors' code under Octave (s) | kc |")
    print("|---|---|---|---|---|")
    fig3a = DATA / "dps-fig3a" / "Fig3a.tif"
    if fig3a.exists():
        big, big_name = read_image(fig3a), "`dps-fig3a/Fig3a.tif`"
    else:
        big, big_name = synthetic((2048, 2048)), "synthetic"
    cases = [(big_name, big)]
    if fig3a.exists():
        cases.append(("`Fig3a.tif`, top-left crop", big[:512, :512]))
    else:
        cases.append(("synthetic", synthetic((512, 512))))
    cases.append(
        ("`Fig3a.tif`, 2048 x 1500 crop" if fig3a.exists() else "synthetic", big[:, :1500])
    )
    decorrelation(cases[1][1])  # warm-up: imports, FFT plans
    for label, image in cases:
        seconds, res = best_of(3, lambda image=image: decorrelation(image))
        ref = AUTHORS_SECONDS.get(image.shape[0]) if image.shape[0] == image.shape[1] else None
        ref_txt = f"{ref:.0f}" if ref is not None else "-"
        print(
            f"| {label} | {image.shape[0]} x {image.shape[1]} | {seconds:.3f} | {ref_txt} | "
            f"{res.kc:.4f} |"
        )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
