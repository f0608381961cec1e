"""Benchmark: calibration from raw frames (dps_stages.calibrate) and the SIM it sets up.

    python benchmarks/bench_calibration.py [--pixel 65] [--no-sim] [--figure]

1. Real TIRF-SIM (../shared/data/vdl-sim-microtubules, optics assumed 670 nm / NA 1.49 /
   ``--pixel`` nm): the calibration of each of the 10 levels (gain, offset, read noise, OTF
   attenuation, modulation, haze, seconds), fitted to that level's raw frames only (the
   reference is never seen by the fit), then SSIM / PSNR (dps_stages.metrics.compare against
   reference/TIRF_SIM_640_1.tif) of ``sim.reconstruct`` with default settings, with
   :func:`calibrated_sim_settings` (defaults otherwise) and the hand-tuned ``otf_decay=0.1,
   wiener_factor=6``.
2. Simulated (dps_stages.simulate, default optics 525 / 1.4 / 65 nm, 4 structures x 1 seed,
   128 x 128): SSIM against ``truth_2x`` with default vs calibrated settings at 20, 100 and
   1000 photons (the calibration must not hurt where the ideal OTF is true).
3. Haze round trip (dps_stages.simulate, 525 / 1.4 / 65 nm, microtubules at densities 2 and 4,
   256 x 256, 200 photons, haze 0 / 0.3 / 1 of the in-focus mean, field haze of scale 2 um):
   the haze level against ``h / (1 + h)`` and the scale, with the camera offset calibrated
   and with it known (100 ADU).
Prints markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dps_stages import sim  # noqa: E402
from dps_stages.calibrate import (  # noqa: E402
    calibrate,
    calibrate_haze,
    calibrated_sim_settings,
    plot_calibration,
)
from dps_stages.metrics import compare  # noqa: E402
from dps_stages.optics import Optics  # noqa: E402
from dps_stages.simulate import simulate_sample  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vdl-sim-microtubules"
LEVELS = ("0.1", "0.2", "0.3", "0.4", "0.5", "1", "1.5", "2.5", "3.5", "GT")
TUNED = {"otf_decay": 0.1, "wiener_factor": 6.0}


def read_raw(level: str) -> np.ndarray:
    import tifffile

    return np.stack(
        [tifffile.imread(DATA / "raw" / level / f"640-1_{i}.tiff") for i in range(1, 10)]
    ).astype(np.float32)


def real(pixel: float, figure: bool) -> None:
    import tifffile

    print(f"### Real TIRF-SIM, optics 670 nm / NA 1.49 / {pixel:g} nm\n")
    if not DATA.is_dir():
        print(f"Skipped: {DATA} is absent.\n")
        return
    ref = tifffile.imread(DATA / "reference" / "TIRF_SIM_640_1.tif")
    optics = Optics(670.0, 1.49, pixel)
    print(
        "| level | gain (ADU/e-) | offset (ADU) | read noise (e-) | OTF attenuation a | "
        "modulation (3 angles) | haze (% of mean) | haze scale (um) | calib. s | SSIM default | "
        "SSIM calibrated | SSIM tuned | PSNR default / calibrated / tuned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for lv in LEVELS:
        raw = read_raw(lv)
        t0 = time.perf_counter()
        c = calibrate(raw, optics)
        dt = time.perf_counter() - t0
        s = calibrated_sim_settings(c, optics)
        img_d, p = sim.reconstruct(raw, optics)
        img_c, _ = sim.reconstruct(raw, optics, **s)
        img_t, _ = sim.reconstruct(raw, optics, **TUNED)
        cd, cc, ct = (compare(i, ref) for i in (img_d, img_c, img_t))
        cam, otf, hz = c.camera, c.otf, c.haze
        used = "" if s["otf_decay"] == otf.attenuation else f" (used {s['otf_decay']:g})"
        print(
            f"| {lv} | {cam.gain:.2f} ± {cam.gain_sigma:.2f} | {cam.offset:.1f} ± "
            f"{cam.offset_sigma:.1f} | {cam.read_noise:.2f} ± {cam.read_noise_sigma:.2f} | "
            f"{otf.attenuation:.3f} ± {otf.attenuation_sigma:.3f}{used} | "
            f"{', '.join(f'{m:.2f}' for m in otf.modulation)} | "
            f"{100 * hz.level:.1f} ± {100 * hz.level_sigma:.1f} | "
            f"{hz.scale:.2f} ± {hz.scale_sigma:.2f} | {dt:.1f} | "
            f"{cd['ssim']:.3f} | {cc['ssim']:.3f} | {ct['ssim']:.3f} | "
            f"{cd['psnr']:.2f} / {cc['psnr']:.2f} / {ct['psnr']:.2f} |"
        )
        if figure and lv == "GT":
            out = Path(__file__).resolve().parent / "figures" / f"calibration_GT_{pixel:g}nm.png"
            plot_calibration(c, out)
    print()


def simulated() -> None:
    optics = Optics(525.0, 1.4, 65.0)
    levels = (20.0, 100.0, 1000.0)
    print("### Simulated, default optics (ideal OTF): SSIM vs truth_2x, default / calibrated\n")
    print("| photons | SSIM default | SSIM calibrated | a fitted (mean, range) |")
    print("|---|---|---|---|")
    rows = {lv: ([], [], []) for lv in levels}
    for j, st in enumerate(("microtubules", "ccps", "er", "actin")):
        d = simulate_sample(st, 128, optics, np.random.default_rng([7, j]), levels=levels)
        for i, lv in enumerate(levels):
            raw = d["raw"][i]
            c = calibrate(raw, optics)
            s = calibrated_sim_settings(c, optics)
            img_d, p = sim.reconstruct(raw, optics)
            img_c, _ = sim.reconstruct(raw, optics, **s)
            rows[lv][0].append(compare(img_d, d["truth_2x"])["ssim"])
            rows[lv][1].append(compare(img_c, d["truth_2x"])["ssim"])
            rows[lv][2].append(s["otf_decay"])
    for lv, (sd, sc, a) in rows.items():
        print(
            f"| {lv:g} | {np.mean(sd):.3f} | {np.mean(sc):.3f} | {np.mean(a):.2f} "
            f"({min(a):.2f}-{max(a):.2f}) |"
        )
    print()


def haze_roundtrip() -> None:
    optics = Optics(525.0, 1.4, 65.0)
    print("### Simulated haze round trip (256 x 256, 200 photons, field haze, scale 2 um)\n")
    print(
        "| density | haze h | expected level h/(1+h) | level (offset calibrated) | "
        "level (offset known) | scale um (offset known) | offset (ADU, true 100) |"
    )
    print("|---|---|---|---|---|---|---|")
    for dens in (2.0, 4.0):
        for h in (0.0, 0.3, 1.0):
            d = simulate_sample(
                "microtubules", 256, optics, np.random.default_rng([0, 5]), levels=(200.0,),
                structure_kw={"density": dens}, haze=h, haze_scale=2000.0,
            )  # fmt: skip
            raw = d["raw"][0]
            c = calibrate(raw, optics)
            hk = calibrate_haze(raw, optics, c.pattern, c.otf, offset=100.0)
            print(
                f"| {dens:g} | {h:g} | {h / (1 + h):.3f} | {c.haze.level:.3f} ± "
                f"{c.haze.level_sigma:.3f} | {hk.level:.3f} ± {hk.level_sigma:.3f} | "
                f"{hk.scale:.2f} ± {hk.scale_sigma:.2f} | {c.camera.offset:.1f} ± "
                f"{c.camera.offset_sigma:.1f} |"
            )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixel", type=float, default=65.0)
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--figure", action="store_true")
    args = ap.parse_args()
    real(args.pixel, args.figure)
    if not args.no_sim:
        simulated()
        haze_roundtrip()


if __name__ == "__main__":
    main()
