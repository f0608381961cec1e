"""Benchmark: rolling-ball background, ours (dps_stages.background) vs scikit-image.

    python benchmarks/bench_background.py [--radius 50] [--no-exact] \
    (its markdown output is recorded in benchmarks/RESULTS.md)

Builds seeded fluorescence-like images (smooth background + sparse thin bright structures
+ Poisson noise) at 2048 and 512 px, and, where present, the real 2048 px SIM image
../shared/data/dps-fig3a/Fig3a.tif. For each it times our rolling_ball_background
(best of 3) and skimage.restoration.rolling_ball (once at 2048 px, best of 3 below) in the
same run, and reports the speed ratio and the agreement: Pearson correlation of the
background-subtracted images and max |difference| relative to the image range.

skimage's rolling_ball is the erosion alone; ours is the opening (erosion then dilation,
as ImageJ). Unless --no-exact, the exact opening is also built from skimage (a second
skimage pass: -rolling_ball(-eroded)) to split the difference into the definitional gap
(opening vs erosion) and our shrinking error (ours vs exact opening). Prints markdown.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import scipy
import skimage
from scipy import ndimage as ndi
from skimage.restoration import rolling_ball

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, machine  # noqa: E402
from dps_stages.background import rolling_ball_background, shrink_factor  # noqa: E402

FIG3A = Path(__file__).resolve().parents[2] / "shared" / "data" / "dps-fig3a" / "Fig3a.tif"


def fluorescence_like(n: int, seed: int = 0) -> np.ndarray:
    """Smooth background (gradient + broad Gaussian blobs, 20-170 counts), thin curved
    filaments and spots (blurred, up to ~800 counts), Poisson noise. float32 counts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    background = 20 + 30 * xx + 15 * yy
    for _ in range(6):
        cy, cx = rng.uniform(0, 1, 2)
        s, a = rng.uniform(0.1, 0.3), rng.uniform(20, 60)
        background += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    structures = np.zeros((n, n))
    t = np.linspace(0, 1, 4 * n)
    for _ in range(int(40 * (n / 512) ** 2) + 5):
        y0, x0 = rng.uniform(0, n, 2)
        angle, bend = rng.uniform(0, 2 * np.pi), rng.normal(0, 3)
        length = rng.uniform(0.1, 0.5) * n
        y = (y0 + np.cumsum(np.sin(angle + bend * t)) * length / t.size).astype(int)
        x = (x0 + np.cumsum(np.cos(angle + bend * t)) * length / t.size).astype(int)
        keep = (y >= 0) & (y < n) & (x >= 0) & (x < n)
        structures[y[keep], x[keep]] = rng.uniform(100, 300)
    k = int(200 * (n / 512) ** 2)
    structures[rng.integers(0, n, k), rng.integers(0, n, k)] += rng.uniform(200, 800, k)
    structures = 4 * ndi.gaussian_filter(structures, 1.2)
    return rng.poisson(background + structures).astype(np.float32)


def agreement(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """Correlation of the subtracted images; max |a - b| / (max - min of the image)."""
    corr = np.corrcoef((image - a).ravel(), (image - b).ravel())[0, 1]
    return float(corr), float(np.abs(a - b).max() / np.ptp(image))


def pct(rel: float, image: np.ndarray) -> str:
    """A relative difference as a percentage of the range and in grey levels."""
    return f"{100 * rel:.2f} % ({rel * float(np.ptp(image)):.2g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radius", type=float, default=50.0)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact opening")
    args = parser.parse_args()
    r = args.radius

    cases = [("synthetic", fluorescence_like(n, seed=0)) for n in (2048, 512)]
    if FIG3A.exists():
        import tifffile

        cases.append((f"real SIM, {FIG3A.name}", tifffile.imread(FIG3A).astype(np.float32)))

    print("# Rolling-ball background: benchmark\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- machine: {machine()}")
    print(
        f"- python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-image {skimage.__version__}"
    )
    print(
        f"- radius {r:g} px; ours: `rolling_ball_background(image, {r:g})` (shrink factor "
        f"{shrink_factor(r)}, ImageJ's rule), best of 3; scikit-image: "
        "`skimage.restoration.rolling_ball(image, radius=...)` (default workers), 1 run at "
        "2048 px, best of 3 below, in the same process"
    )
    print("- command: `python benchmarks/bench_background.py`\n")

    head = "| image | size | ours (s) | skimage (s) | speed-up | corr vs skimage"
    head += " | max diff vs skimage"
    sep = "|---|---|---|---|---|---|---"
    if not args.no_exact:
        head += " | corr vs exact opening | max diff vs exact opening | opening vs erosion gap"
        sep += "|---|---|---"
    print(head + " |")
    print(sep + "|")
    for name, image in cases:
        n = image.shape[0]
        t_ours, ours = best_of(lambda im=image: rolling_ball_background(im, r), 3)
        t_sk, eroded = best_of(lambda im=image: rolling_ball(im, radius=r), 1 if n > 1024 else 3)
        corr, rel = agreement(ours, eroded, image)
        row = (
            f"| {name} | {image.shape[0]} x {image.shape[1]} | {t_ours:.3f} | {t_sk:.2f} | "
            f"{t_sk / t_ours:.0f}x | {corr:.5f} | {pct(rel, image)}"
        )
        if not args.no_exact:
            opened = -rolling_ball(-eroded, radius=r)
            corr_x, rel_x = agreement(ours, opened, image)
            _, gap = agreement(opened, eroded, image)
            row += f" | {corr_x:.6f} | {pct(rel_x, image)} | {pct(gap, image)}"
        print(row + " |", flush=True)

    print(
        "\nmax diff = max |ours - reference| / (image max - image min), in grey levels in "
        "brackets; corr = Pearson "
        "correlation of image - background. skimage's `rolling_ball` is the erosion "
        "(apex of the ball centred at each pixel); ours is the opening (envelope of the "
        "balls, ImageJ / DPS), so part of the difference is by definition: the last column "
        "is max |exact opening - skimage| / range, the exact opening computed from skimage "
        "itself as `-rolling_ball(-rolling_ball(image))`; the two columns before it are "
        "ours against that exact opening, i.e. the error of shrinking."
    )


if __name__ == "__main__":
    main()
