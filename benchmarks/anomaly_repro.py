"""Step 1: reproduce the DAG's Wiener SSIM per level (issue 12 item 5)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.anomaly_common import CACHE, LEVELS, OPTICS, SIM_KW, raw, raw_bg, reference  # noqa: E402
from dps_stages.metrics import compare  # noqa: E402
from dps_stages.sim import reconstruct_stack  # noqa: E402


def main() -> None:
    ref = reference()
    rows = {}
    for level in LEVELS:
        t0 = time.perf_counter()
        r = raw(level)
        bg = raw_bg(level)
        img, params = reconstruct_stack(bg, OPTICS, **SIM_KW)
        np.save(CACHE / f"wiener_dag_{level}.npy", img[0])
        c = compare(img[0], ref)
        p = params[0].to_dict()
        rows[level] = {"mean_raw": float(r.mean()), "mean_bg": float(bg.mean()), **c, "params": p}
        print(
            f"{level:>4} mean {r.mean():7.1f} bg-mean {bg.mean():6.1f} "
            f"SSIM {c['ssim']:.3f} PSNR {c['psnr']:.2f} "
            f"f {np.round(p['frequency'], 4)} m {np.round(p['modulation'], 2)} "
            f"sig {p['significance']} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    (CACHE / "repro.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
