"""Benchmark: Richardson-Lucy and sparse deconvolution (dps_stages.deconvolution).

    python benchmarks/bench_deconvolution.py [--quick]
    (its markdown output is recorded in benchmarks/RESULTS_deconvolution.md)

1. Richardson-Lucy on a 2048 x 2048 image, 30 iterations: ours against
   skimage.restoration.richardson_lucy in the same run (time, ratio, agreement away from the
   borders, where the boundary conditions differ: skimage continues the image by zeros, ours
   by mirror reflection).
2. Sparse deconvolution of a 512 x 512 image at the published defaults (100 split-Bregman
   iterations, then 30 RL iterations), and of a 16 x 256 x 256 time-lapse.
3. PSNR / SSIM under the fixed protocol (dps_stages.metrics.compare) on images shipped with
   scikit-image, blurred by an Airy PSF (525 nm, NA 1.4, 65 nm pixels: FWHM 2.97 px) and
   passed through the camera noise chain (dps_stages.noise.acquisition_chain, offset
   subtracted) at 100 and 1000 photons.
4. The same on the simulated test set (dps_stages.simulate.simulate_dataset): the offset-
   subtracted widefield image deconvolved with the camera-grid Airy PSF, against truth_1x.

--quick runs (1) on 1024 x 1024 and (3, 4) on two images each, for a smoke test.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import skimage
from scipy import ndimage
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.restoration import richardson_lucy as sk_richardson_lucy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine  # noqa: E402
from dps_stages.deconvolution import (  # noqa: E402
    richardson_lucy,
    sparse_hessian,
    sparse_hessian_denoise,
)
from dps_stages.deconvolution import rl as rl_module  # noqa: E402
from dps_stages.metrics import compare  # noqa: E402
from dps_stages.noise import acquisition_chain  # noqa: E402
from dps_stages.optics import Optics, airy_psf, fwhm, psf_size_for  # noqa: E402
from dps_stages.simulate import simulate_dataset  # noqa: E402

OPTICS = Optics(525.0, 1.4, 65.0)
PSF_SIZE = psf_size_for(OPTICS.wavelength, OPTICS.na, OPTICS.pixel_size)  # 4 Airy rings: 27
PSF = airy_psf(PSF_SIZE, OPTICS.wavelength, OPTICS.na, OPTICS.pixel_size)
OFFSET = 100.0  # acquisition_chain's default camera offset (ADU)
RL_SWEEP = (5, 10, 20, 30, 50, 100)
AUTHORS_PACKAGE_S = 19.0  # sparse-recon (authors' Python package), 512 x 512, these machines


def timed(fn: Callable[[], np.ndarray], repeats: int = 1) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    assert out is not None
    return best, out


def blur(x: np.ndarray) -> np.ndarray:
    """Object blurred by the PSF, mirror boundaries (scipy.ndimage, independent of our code)."""
    return ndimage.convolve(np.asarray(x, np.float64), PSF.astype(np.float64), mode="reflect")


def fluorescence_like(n: int, seed: int = 0) -> np.ndarray:
    """Spots and thin curved filaments on a dim background, blurred by the PSF, Poisson noise
    at about 500 photons at the brightest structures. float32 counts."""
    rng = np.random.default_rng(seed)
    obj = np.zeros((n, n))
    t = np.linspace(0.0, 1.0, 4 * n)
    for _ in range(int(60 * (n / 512) ** 2) + 5):
        y0, x0 = rng.uniform(0, n, 2)
        angle, bend = rng.uniform(0, 2 * np.pi), rng.normal(0, 3)
        length = rng.uniform(0.1, 0.4) * n
        y = (y0 + np.cumsum(np.sin(angle + bend * t)) * length / t.size).astype(int)
        x = (x0 + np.cumsum(np.cos(angle + bend * t)) * length / t.size).astype(int)
        keep = (y >= 0) & (y < n) & (x >= 0) & (x < n)
        obj[y[keep], x[keep]] = rng.uniform(0.3, 1.0)
    k = int(300 * (n / 512) ** 2)
    obj[rng.integers(0, n, k), rng.integers(0, n, k)] += rng.uniform(0.5, 2.0, k)
    img = blur(obj)
    img = 500 * img / img.max() + 10
    return rng.poisson(img).astype(np.float32)


def section_rl(n: int, rounds: int) -> None:
    print(f"## 1. Richardson-Lucy, {n} x {n}, 30 iterations\n")
    image = fluorescence_like(n, seed=1)
    richardson_lucy(image[:256, :256], PSF, iterations=2)  # warm up the FFT plans
    t_ours, t_one, t_sk = [], [], []
    ours = ref = image
    for _ in range(rounds):  # interleaved: all see the same machine load
        t, ours = timed(lambda: richardson_lucy(image, PSF, iterations=30))
        t_ours.append(t)
        rl_module._WORKERS = 1  # scipy.fft on one thread, as skimage's convolve
        t_one.append(timed(lambda: richardson_lucy(image, PSF, iterations=30))[0])
        rl_module._WORKERS = -1
        t, ref = timed(lambda: sk_richardson_lucy(image, PSF, num_iter=30, clip=False))
        t_sk.append(t)
    t_pad, padded = timed(lambda: richardson_lucy(image, PSF, iterations=30, pad=PSF_SIZE))
    t_acc, _ = timed(lambda: richardson_lucy(image, PSF, iterations=30, accelerate=True))
    ratios = [b / a for a, b in zip(t_ours, t_sk, strict=True)]
    m = 2 * PSF_SIZE
    inner = (slice(m, -m), slice(m, -m))
    rel = np.abs(ours[inner] - ref[inner]).max() / ref[inner].max()
    rms = np.sqrt(np.mean((ours[inner] - ref[inner]) ** 2) / np.mean(ref[inner] ** 2))
    rel_pad = np.abs(padded - ours).max() / ours.max()
    sk_best = min(t_sk)
    print("| implementation | time (s) | speed-up vs skimage (best times) |")
    print("|---|---|---|")
    print(
        f"| ours, mirror boundaries by DCT (default), best of {rounds} | {min(t_ours):.2f} | "
        f"{sk_best / min(t_ours):.1f}x (per round: "
        + ", ".join(f"{r:.1f}x" for r in ratios)
        + ") |"
    )
    print(
        f"| ours, DCT, one thread (`scipy.fft` workers=1), best of {rounds} | "
        f"{min(t_one):.2f} | {sk_best / min(t_one):.1f}x |"
    )
    print(
        f"| ours, FFT with >= {PSF_SIZE} px mirror padding (path of asymmetric PSFs), once | "
        f"{t_pad:.2f} | {sk_best / t_pad:.1f}x |"
    )
    print(f"| ours, Biggs-Andrews accelerated, once | {t_acc:.2f} | {sk_best / t_acc:.1f}x |")
    print(
        f"| skimage.restoration.richardson_lucy (clip=False), best of {rounds} | "
        f"{sk_best:.2f} | 1x |"
    )
    print(
        f"\nRuns of ours and skimage alternate, {rounds} rounds (skimage's convolve runs "
        "`scipy.signal.fftconvolve`, one thread, 3 real FFTs per convolution; ours 2 per "
        f"convolution, the PSF transformed once, on {os.cpu_count()} threads). Agreement "
        f"with skimage {m} px (2 PSF sizes) and more from the border: max |diff| = "
        f"{rel:.1e} of the maximum, "
        f"relative rms {rms:.1e}. DCT path vs padded-FFT path, whole image: max |diff| = "
        f"{rel_pad:.1e} of the maximum. PSF: Airy, {PSF_SIZE} x {PSF_SIZE} px, FWHM "
        f"{fwhm(PSF[PSF_SIZE // 2]):.2f} px. Image: simulated fluorescence (spots and "
        "filaments, about 500 photons at the peaks, Poisson noise).\n"
    )


def section_sparse() -> None:
    print("## 2. Sparse deconvolution, time at the published defaults\n")
    image = fluorescence_like(512, seed=2)
    t1, g = timed(lambda: sparse_hessian_denoise(image), 2)
    t2, _ = timed(lambda: richardson_lucy(g, PSF, iterations=30), 2)
    t_all, _ = timed(lambda: sparse_hessian(image, psf=PSF), 1)
    movie = np.stack([fluorescence_like(256, seed=3 + i) for i in range(16)])
    t_movie, _ = timed(lambda: sparse_hessian(movie, psf=PSF), 1)
    print("| input | step 1: sparse Hessian, 100 it. (s) | step 2: RL, 30 it. (s) | total (s) |")
    print("|---|---|---|---|")
    print(f"| 512 x 512 | {t1:.2f} | {t2:.2f} | {t_all:.2f} |")
    print(f"| 16 x 256 x 256 time-lapse (t terms on) | - | - | {t_movie:.2f} |")
    print(
        f"\nReference: the authors' Python package (sparse-recon) takes about "
        f"{AUTHORS_PACKAGE_S:.0f} s for 512 x 512 on these machines (not installed here, not "
        "rerun); ours is step 1 with fidelity 150, sparsity 10, continuity 0.5, mu 1, then "
        "30 plain RL iterations with the Airy PSF.\n"
    )


def standard_images(quick: bool) -> dict[str, np.ndarray]:
    imgs = {
        "camera": skdata.camera(),
        "astronaut (grey)": rgb2gray(skdata.astronaut()),
        "coins": skdata.coins(),
        "moon": skdata.moon(),
    }
    if quick:
        imgs = dict(list(imgs.items())[:2])
    out = {}
    for name, im in imgs.items():
        im = np.asarray(im, dtype=np.float64)
        out[name] = (im - im.min()) / (im.max() - im.min())
    return out


def methods(y: np.ndarray) -> dict[str, np.ndarray]:
    """Every restoration of one offset-subtracted image, keyed by row label."""
    res: dict[str, np.ndarray] = {"input (blurred, noisy)": y}
    for it in RL_SWEEP:
        res[f"RL {it}"] = richardson_lucy(y, PSF, iterations=it)
    res["RL 10, accelerated"] = richardson_lucy(y, PSF, iterations=10, accelerate=True)
    g = sparse_hessian_denoise(y)
    res["sparse Hessian (step 1 only)"] = g
    res["sparse deconvolution (defaults: + RL 30)"] = richardson_lucy(g, PSF, iterations=30)
    res["sparse deconvolution, + RL 10"] = richardson_lucy(g, PSF, iterations=10)
    res["sparse deconvolution, + accelerated RL 7 (authors' step 2)"] = richardson_lucy(
        g, PSF, iterations=7, accelerate=True
    )
    g3 = sparse_hessian_denoise(y, sparsity=3.0)
    res["sparse deconvolution, sparsity 3, + RL 30"] = richardson_lucy(g3, PSF, iterations=30)
    return res


def print_table(title: str, columns: list[str], scores: dict[str, list[dict[str, float]]]) -> None:
    print(title + "\n")
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    best_rl = {}
    for j in range(len(columns)):
        best_rl[j] = max(RL_SWEEP, key=lambda it, j=j: scores[f"RL {it}"][j]["psnr"])
    for label, row in scores.items():
        cells = [f"{s['psnr']:.2f} / {s['ssim']:.3f}" for s in row]
        for j, it in best_rl.items():
            if label == f"RL {it}":
                cells[j] = f"**{cells[j]}**"
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        "\nCells: PSNR (dB) / SSIM under `dps_stages.metrics.compare` against the clean "
        "object; bold: the best RL iteration count of the sweep for that column (an oracle "
        "choice, made with the ground truth).\n"
    )


def section_standard(quick: bool) -> None:
    print("## 3. Standard images (scikit-image), Airy blur and camera noise\n")
    columns: list[str] = []
    scores: dict[str, list[dict[str, float]]] = {}
    for name, clean in standard_images(quick).items():
        blurred = blur(clean)
        blurred /= blurred.max()
        for photons in (100, 1000):
            rng = np.random.default_rng([20261121, int(photons)])
            y = acquisition_chain(photons)(blurred, rng) - np.float32(OFFSET)
            columns.append(f"{name}, {photons} ph")
            for label, out in methods(y).items():
                scores.setdefault(label, []).append(compare(out, clean))
    print_table(
        "Rows: restorations of the offset-subtracted image; columns: image and photons at "
        "the brightest blurred pixel (Poisson, read noise 1.5 e-, offset 100, 16 bits).",
        columns,
        scores,
    )


def section_simulated(quick: bool) -> None:
    print("## 4. Simulated test set (microtubules, CCPs, ER, actin), widefield\n")
    structures = ["microtubules", "ccps", "er", "actin"]
    levels = [20, 100, 1000]
    t0 = time.perf_counter()
    ds = simulate_dataset(
        structures, 1 if quick else 2, 128, OPTICS, levels=levels, seed=20241121, split="test"
    )
    n = len(ds["structure"])
    print(
        f"{n} images of 128 x 128 (simulated in {time.perf_counter() - t0:.1f} s); input: "
        "`widefield_noisy - 100` (the mean of the 9 raw SIM frames, offset subtracted); "
        f"PSF: `airy_psf({PSF_SIZE}, 525, 1.4, 65)`; reference: `truth_1x`.\n"
    )
    columns = [f"{lev} photons" for lev in levels]
    scores: dict[str, list[dict[str, float]]] = {}
    for li in range(len(levels)):
        per: dict[str, list[dict[str, float]]] = {}
        for i in range(n):
            y = ds["widefield_noisy"][i, li] - np.float32(OFFSET)
            for label, out in methods(y).items():
                per.setdefault(label, []).append(compare(out, ds["truth_1x"][i]))
        for label, lst in per.items():
            scores.setdefault(label, []).append(
                {k: float(np.mean([s[k] for s in lst])) for k in ("psnr", "ssim", "nrmse")}
            )
    print_table(f"Mean over the {n} images per photon level.", columns, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller smoke-test run")
    args = parser.parse_args()
    print("# Deconvolution: benchmark\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- machine: {machine()}")
    print(
        f"- python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, scikit-image {skimage.__version__}"
    )
    print("- command: `python benchmarks/bench_deconvolution.py`\n")
    section_rl(1024 if args.quick else 2048, 2 if args.quick else 3)
    section_sparse()
    section_standard(args.quick)
    section_simulated(args.quick)


if __name__ == "__main__":
    main()
