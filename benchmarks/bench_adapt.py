"""Benchmark of the self-supervised adaptation (dps_stages.adapt).

Two parts:

``timing``: seconds per step of :func:`adapt_denoiser` and :func:`adapt_sim` on a simulated
9 x 512 x 512 stack with the given (or CPU-scale) networks, on ``--threads`` torch threads,
and the wall time of the default number of steps extrapolated from ``--timing-steps``.

``real``: the real TIRF-SIM data (../shared/data/vdl-sim-microtubules, assumed optics 670 nm,
NA 1.49, 65 nm): per level, calibration, Wiener with the calibrated settings, the SIM
network before and after adaptation (on the raw frames, and on the frames denoised by the
R2R-adapted denoiser), each scored against reference/TIRF_SIM_640_1.tif with
:func:`dps_stages.metrics.compare`.

Run from the project root:
    python benchmarks/bench_adapt.py --models /path/to/results/models --out adapt.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from dps_stages.adapt import (  # noqa: E402
    DENOISE_STEPS,
    SIM_STEPS,
    adapt_denoiser,
    adapt_sim,
    denoise_frames,
)
from dps_stages.calibrate import calibrate, calibrated_sim_settings  # noqa: E402
from dps_stages.inference import load_model, percentile_range, run_block  # noqa: E402
from dps_stages.metrics import compare  # noqa: E402
from dps_stages.nets import build, default_arch  # noqa: E402
from dps_stages.optics import Optics  # noqa: E402
from dps_stages.sim import SIMParameters, reconstruct_stack  # noqa: E402
from dps_stages.simulate import SIMPattern, simulate_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vdl-sim-microtubules"
REAL_OPTICS = Optics(670, 1.49, 65)


def _model(models: Path | None, name: str) -> torch.nn.Module:
    if models is not None and (models / name / "model.pt").is_file():
        return load_model(models / name)[0]
    torch.manual_seed(0)
    return build(name, default_arch(name)).eval()


def timing(models: Path | None, steps: int) -> dict:
    """Seconds per step on a simulated 9 x 512 x 512 stack; extrapolated default budgets."""
    optics = Optics(525, 1.4, 65)
    d = simulate_dataset(["microtubules"], 1, 512, optics, levels=[100], seed=0, split="test")
    frames = d["raw"][:, 0]
    params = SIMParameters.from_pattern(SIMPattern.from_dict(d["patterns"][0]))
    out = {}
    cam = {"gain": 1.0, "offset": 100.0, "read_noise": 1.5}
    t0 = time.perf_counter()
    _, h = adapt_denoiser(_model(models, "denoise"), frames, cam, steps=steps, progress=False)
    per = h["seconds"] / steps
    out["denoise"] = {"seconds_per_step": per, "default_steps": DENOISE_STEPS,
                      "default_seconds": per * DENOISE_STEPS,
                      "wall_incl_setup": time.perf_counter() - t0}  # fmt: skip
    t0 = time.perf_counter()
    _, h = adapt_sim(_model(models, "sim"), frames, params, optics, 1.0, steps=steps,
                     progress=False)  # fmt: skip
    per = h["seconds"] / steps
    out["sim"] = {"seconds_per_step": per, "default_steps": SIM_STEPS,
                  "default_seconds": per * SIM_STEPS,
                  "wall_incl_setup": time.perf_counter() - t0}  # fmt: skip
    return out


def _read_level(level: str) -> np.ndarray:
    folder = DATA / "raw" / level
    return np.stack([tifffile.imread(folder / f"640-1_{i}.tiff") for i in range(1, 10)]).astype(
        np.float32
    )


def _sim_net(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    lo, hi = percentile_range(frames)
    return run_block(model, (frames - lo) / np.float32(hi - lo))[0]


def real(models: Path | None, levels: list[str], den_steps: int, sim_steps: int) -> dict:
    """Scores against the reference per level (module docstring)."""
    ref = tifffile.imread(DATA / "reference" / "TIRF_SIM_640_1.tif").astype(np.float32)
    den0, sim0 = _model(models, "denoise"), _model(models, "sim")
    res: dict = {}
    for level in levels:
        frames = _read_level(level)
        t0 = time.perf_counter()
        calib = calibrate(frames, REAL_OPTICS)
        row: dict = {"calibration_seconds": time.perf_counter() - t0,
                     "gain": calib.camera.gain, "offset": calib.camera.offset,
                     "read_noise_e": calib.camera.read_noise,
                     "otf_attenuation": calib.otf.attenuation}  # fmt: skip
        settings = calibrated_sim_settings(calib, REAL_OPTICS)
        wiener, _ = reconstruct_stack(frames, REAL_OPTICS, params=calib.pattern[0], **settings)
        row["wiener_calibrated"] = compare(wiener[0], ref)
        row["sim_before_raw"] = compare(_sim_net(sim0, frames), ref)
        t0 = time.perf_counter()
        sim_raw, h = adapt_sim(sim0, frames, calib.pattern[0], REAL_OPTICS, calib,
                               steps=sim_steps, progress=False)  # fmt: skip
        row["sim_after_raw"] = compare(_sim_net(sim_raw, frames), ref)
        row["sim_after_raw_loss"] = [h["eval_loss"][0], h["eval_loss"][-1]]
        row["sim_after_raw_stopped_at"] = h.get("stopped_at")
        row["noise_level"] = h.get("noise_level")
        row["sim_adapt_seconds"] = time.perf_counter() - t0
        # the chain's order: denoise (baseline, then R2R-adapted), then the SIM network
        den_base = denoise_frames(den0, frames)[0]
        row["sim_before_denoised_base"] = compare(_sim_net(sim0, den_base), ref)
        t0 = time.perf_counter()
        den1, hd = adapt_denoiser(den0, frames, calib, steps=den_steps, progress=False)
        row["denoise_adapt_seconds"] = time.perf_counter() - t0
        row["r2r_loss"] = [hd["eval_loss"][0], hd["eval_loss"][-1]]
        den = denoise_frames(den1, frames)[0]
        row["sim_before_denoised_r2r"] = compare(_sim_net(sim0, den), ref)
        sim_den, h = adapt_sim(sim0, den, calib.pattern[0], REAL_OPTICS, calib,
                               steps=sim_steps, progress=False)  # fmt: skip
        row["sim_after_denoised_r2r"] = compare(_sim_net(sim_den, den), ref)
        row["sim_after_denoised_loss"] = [h["eval_loss"][0], h["eval_loss"][-1]]
        row["sim_after_denoised_stopped_at"] = h.get("stopped_at")
        res[level] = row
        print(level, json.dumps({k: v for k, v in row.items()}, default=float), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=None, help="folder with denoise/ and sim/")
    ap.add_argument("--part", choices=["timing", "real", "all"], default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timing-steps", type=int, default=30)
    ap.add_argument("--levels", nargs="+", default=["0.3", "1", "GT"])
    ap.add_argument("--denoise-steps", type=int, default=DENOISE_STEPS)
    ap.add_argument("--sim-steps", type=int, default=SIM_STEPS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"machine": machine(), "threads": args.threads}
    if args.part in ("timing", "all"):
        out["timing"] = timing(args.models, args.timing_steps)
        print(json.dumps(out["timing"], indent=1), flush=True)
    if args.part in ("real", "all"):
        if not DATA.is_dir():
            print(f"skipping the real data: {DATA} not found")
        else:
            out["real"] = real(args.models, args.levels, args.denoise_steps, args.sim_steps)
            out["real_steps"] = {"denoise": args.denoise_steps, "sim": args.sim_steps}
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
