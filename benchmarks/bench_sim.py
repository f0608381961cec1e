"""Benchmark: classical 2D-SIM reconstruction (dps_stages.sim), simulated and real data.

    python benchmarks/bench_sim.py [--size 256] [--seeds 2] [--no-figures]
    (its markdown output is recorded in benchmarks/RESULTS_sim.md)

1. Simulated data (dps_stages.simulate, default optics 525 nm / NA 1.4 / 65 nm, pattern at
   0.9 of the OTF cutoff, modulation 0.8, seeded): error of the estimated wave vector (pixels
   of the spectrum grid, |dk| N), phases (degrees, sign-matched) and modulation against the
   truth; PSNR / SSIM of the reconstruction against the 2x ground truth next to the
   widefield image upsampled to 2x by Fourier interpolation on the same grid
   (:func:`dps_stages.sim.fourier_upsample`); decorrelation resolution of both and the gain.
2. Real TIRF-SIM (../shared/data/vdl-sim-microtubules): all nine signal levels and GT
   against the authors' reconstruction reference/TIRF_SIM_640_1.tif, next to the published
   VDL-SIM outputs through the same metrics.compare; a sweep of the assumed camera pixel
   size and OTF damping that justifies the settings; PNG crops in benchmarks/figures/.
3. Speed: 9 x 512 x 512 -> 1024 x 1024 including parameter estimation, best of 3.
Prints markdown.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, cpu_model  # noqa: E402
from dps_stages import sim  # noqa: E402
from dps_stages.metrics import compare, decorrelation  # noqa: E402
from dps_stages.optics import Optics  # noqa: E402
from dps_stages.simulate import simulate_sample  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vdl-sim-microtubules"
FIGURES = Path(__file__).resolve().parent / "figures"
SIM_OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
STRUCTURES = ("microtubules", "ccps", "er", "actin")
PHOTONS = (20, 100, 1000)
LEVELS = ("0.1", "0.2", "0.3", "0.4", "0.5", "1", "1.5", "2.5", "3.5", "GT")
#: Assumed optics of the real data (none published): emission 670 nm, NA 1.49, and the camera
#: pixel and the OTF damping chosen by the sweep below.
REAL_PIXEL = 60.0
REAL_KW = {"otf_decay": 0.1, "wiener_factor": 6.0}
#: The bar set by the issue: a widely used open Wiener-SIM implementation with guessed optics.
BAR = {"GT": "0.36", "1": "0.12-0.14", "0.3": "0.12-0.14"}


def match(params: sim.SIMParameters, truth, n: int) -> tuple[float, float, float]:
    """Max over angles of |dk| N, |dphi| (deg, sign-matched) and |dm|."""
    dk, dphi = [], []
    for a in range(3):
        errs = [np.hypot(*(params.k[a] - s * truth.k[a])) for s in (1, -1)]
        s = 1 if errs[0] <= errs[1] else -1
        dk.append(min(errs) * n)
        d = np.angle(np.exp(1j * (params.phases[a] - s * truth.phases[a])))
        dphi.append(np.degrees(np.abs(d)).max())
    return max(dk), max(dphi), float(np.max(np.abs(params.modulation - truth.modulation)))


def to_uint8(img: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """0.1-99.9 percentile stretch (of ``ref`` if given) to uint8."""
    lo, hi = np.percentile(img if ref is None else ref, [0.1, 99.9])
    return (np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def save_panels(path: Path, panels: list[np.ndarray], labels: list[str]) -> None:
    from PIL import Image, ImageDraw

    gap = 4
    h, w = panels[0].shape
    canvas = np.full((h, len(panels) * (w + gap) - gap), 255, np.uint8)
    for i, p in enumerate(panels):
        canvas[:, i * (w + gap) : i * (w + gap) + w] = p
    im = Image.fromarray(canvas)
    draw = ImageDraw.Draw(im)
    for i, lab in enumerate(labels):
        draw.text((i * (w + gap) + 4, 3), lab, fill=255)
    im.save(path, optimize=True)


def harmonic_peak_ratio(img: np.ndarray, k: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Residual pattern peaks: max over ``+-k_a, +-2 k_a`` of the mean spectral power in a disc
    (radius 0.006 cycles/camera px) over that of the annulus 0.012-0.03 around it (2x grid;
    ``weight`` an optional real-space mask, e.g. the dark background). ~1: no peak."""
    from scipy import ndimage as ndi

    n = img.shape
    hp = img - ndi.gaussian_filter(img, 10)
    pw = np.abs(np.fft.fft2(hp if weight is None else hp * weight)) ** 2
    fy = np.fft.fftfreq(n[0], 0.5)[:, None]
    fx = np.fft.fftfreq(n[1], 0.5)[None, :]
    out = 0.0
    for ka in k:
        for h in (1, 2, -1, -2):
            d = np.hypot(fy - h * ka[0], fx - h * ka[1])
            out = max(out, pw[d < 0.006].mean() / pw[(d > 0.012) & (d < 0.03)].mean())
    return float(out)


def background_texture(img: np.ndarray, weight: np.ndarray, cutoff: float) -> float:
    """Std of the image band-passed to 0.5-1.5 f_c (where the honeycomb sits) over the dark
    background (``weight``), in % of the 0.1-99.9 percentile range."""
    n = img.shape
    f = np.hypot(np.fft.fftfreq(n[0], 0.5)[:, None], np.fft.fftfreq(n[1], 0.5)[None, :]) / cutoff
    b = np.fft.ifft2(np.fft.fft2(img) * ((f > 0.5) & (f < 1.5))).real
    rng = np.percentile(img, 99.9) - np.percentile(img, 0.1)
    return float(100 * np.sqrt(np.sum(b**2 * weight) / weight.sum()) / rng)


def grain_ratio(img: np.ndarray, weight: np.ndarray, cutoff: float) -> float:
    """Spectral shape of the dark background (``weight``): power of ``(img - gaussian_10(img))
    weight`` averaged over 0.5-1.2 f_c (the annulus where the Wiener filter's noise transfer
    peaks, the honeycomb-like grain) over that averaged over 0.1-0.3 f_c. Noise shaped into a
    ring scores above 1; a background whose spectrum falls with frequency well below 1."""
    from scipy import ndimage as ndi

    n = img.shape
    hp = img - ndi.gaussian_filter(img, 10)
    pw = np.abs(np.fft.fft2(hp * weight)) ** 2
    f = np.hypot(np.fft.fftfreq(n[0], 0.5)[:, None], np.fft.fftfreq(n[1], 0.5)[None, :]) / cutoff
    return float(pw[(f > 0.5) & (f < 1.2)].mean() / pw[(f > 0.1) & (f < 0.3)].mean())


def save_spectrum(path: Path, img: np.ndarray) -> None:
    """log10 |FFT| of the (Hann-windowed) image, centred, 512 x 512 PNG."""
    from PIL import Image

    n = img.shape[0]
    h = np.hanning(n)
    spec = np.fft.fftshift(np.abs(np.fft.fft2((img - img.mean()) * np.outer(h, h))))
    lg = np.log10(spec + 1e-6)
    lo, hi = np.percentile(lg, [1, 99.95])
    u8 = (np.clip((lg - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(u8).resize((512, 512), Image.BILINEAR).save(path, optimize=True)


# --------------------------------------------------------------------------- 1. simulated


def simulated(size: int, seeds: int, figures: bool) -> None:
    print(f"### 1. Simulated data ({size} x {size} camera pixels -> {2 * size} x {2 * size})\n")
    print(
        f"Optics {SIM_OPTICS.wavelength:g} nm / NA {SIM_OPTICS.na} / {SIM_OPTICS.pixel_size:g} nm;"
        " pattern at 0.9 f_c, modulation 0.8, equal phase steps; camera: read noise 1.5 e-, "
        "offset 100 ADU, 16 bit. `sim.reconstruct` with its defaults (parameters estimated, "
        "`wiener='auto'`, `wiener_factor=3`, SNR band weights, side-band OTF attenuation "
        "(0.99, 1.2 um^-1), triangle apodisation with bend 0.5, local Wiener step 1.5)."
        f" {seeds} seed(s) per structure; errors are the worst angle of each acquisition, "
        "then the worst over seeds; metrics are means over seeds. Widefield: the mean of the "
        "nine raw frames, Fourier-interpolated to 2x on the same grid. Resolution: "
        "decorrelation analysis, nm (2x pixel 32.5 nm); on noisy images it follows the noise, "
        "which reaches the corners of the spectrum, so only the 1000-photon rows and the "
        "noise-free line below measure the resolution.\n"
    )
    print(
        "| structure | photons | max \\|dk\\| N (px) | max \\|dphi\\| (deg) | max \\|dm\\| "
        "| PSNR WF / SIM | SSIM WF / SIM | resolution WF / SIM (nm) | gain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    px2 = SIM_OPTICS.pixel_size / 2
    summary = {p: [] for p in PHOTONS}
    example = None
    for si, name in enumerate(STRUCTURES):
        rows = {p: [] for p in PHOTONS}
        for seed in range(seeds):
            rng = np.random.default_rng([20261121, si, seed])
            d = simulate_sample(name, size, SIM_OPTICS, rng, levels=PHOTONS)
            for li, photons in enumerate(PHOTONS):
                img, params = sim.reconstruct(d["raw"][li], SIM_OPTICS)
                wf = sim.fourier_upsample(d["widefield_noisy"][li])
                c_sim, c_wf = compare(img, d["truth_2x"]), compare(wf, d["truth_2x"])
                r_sim = decorrelation(img, pixel_size=px2).resolution_nm
                r_wf = decorrelation(wf, pixel_size=px2).resolution_nm
                dk, dphi, dm = match(params, d["pattern"], size)
                rows[photons].append(
                    (dk, dphi, dm, c_wf["psnr"], c_sim["psnr"], c_wf["ssim"], c_sim["ssim"],
                     r_wf, r_sim)
                )  # fmt: skip
                if example is None and name == "microtubules" and photons == 100:
                    example = (d["truth_2x"], wf, img)
        for photons in PHOTONS:
            r = np.array(rows[photons])
            summary[photons].append(r)
            worst = r[:, :3].max(axis=0)
            mean = r.mean(axis=0)
            print(
                f"| {name} | {photons} | {worst[0]:.3f} | {worst[1]:.1f} | {worst[2]:.3f} "
                f"| {mean[3]:.2f} / {mean[4]:.2f} | {mean[5]:.3f} / {mean[6]:.3f} "
                f"| {mean[7]:.0f} / {mean[8]:.0f} | {mean[7] / mean[8]:.2f} |"
            )
    for photons in PHOTONS:
        r = np.concatenate(summary[photons])
        worst, mean = r[:, :3].max(axis=0), r.mean(axis=0)
        print(
            f"| **all** | {photons} | {worst[0]:.3f} | {worst[1]:.1f} | {worst[2]:.3f} "
            f"| {mean[3]:.2f} / {mean[4]:.2f} | {mean[5]:.3f} / {mean[6]:.3f} "
            f"| {mean[7]:.0f} / {mean[8]:.0f} | {mean[7] / mean[8]:.2f} |"
        )
    # resolution gain on noise-free frames (the decorrelation of noisy images tracks the noise)
    gains = []
    for si, name in enumerate(STRUCTURES):
        d = simulate_sample(name, size, SIM_OPTICS, np.random.default_rng([20261121, si, 0]),
                            levels=[1000])  # fmt: skip
        p = sim.SIMParameters.from_pattern(d["pattern"])
        img, _ = sim.reconstruct(d["raw_clean"], SIM_OPTICS, params=p, background_percentile=None)
        wf = sim.fourier_upsample(d["widefield_clean"])
        gains.append(
            (decorrelation(wf, pixel_size=px2).resolution_nm,
             decorrelation(img, pixel_size=px2).resolution_nm)
        )  # fmt: skip
    g = ", ".join(f"{n} {a:.0f} -> {b:.0f} nm ({a / b:.2f}x)" for n, (a, b) in
                  zip(STRUCTURES, gains, strict=True))  # fmt: skip
    print(f"\nNoise-free frames, true parameters, decorrelation resolution WF -> SIM: {g}.\n")
    if figures and example is not None:
        truth, wf, img = example
        c = slice(0, min(256, truth.shape[0]))
        path = FIGURES / "sim_simulated_microtubules_100.png"
        save_panels(
            path,
            [to_uint8(truth[c, c]), to_uint8(wf[c, c]), to_uint8(img[c, c])],
            ["truth (2x)", "widefield (2x)", "SIM"],
        )
        print(f"Figure: `{path.relative_to(FIGURES.parent.parent)}` (microtubules, 100 photons).\n")


# --------------------------------------------------------------------------- 2. real data


def read_raw(level: str) -> np.ndarray:
    import tifffile

    return np.stack(
        [tifffile.imread(DATA / "raw" / level / f"640-1_{i}.tiff") for i in range(1, 10)]
    ).astype(np.float32)


def real(figures: bool) -> None:
    import tifffile

    print("### 2. Real TIRF-SIM, microtubules (vdl-sim-microtubules)\n")
    if not DATA.is_dir():
        print(f"Skipped: {DATA} is absent.\n")
        return
    reference = tifffile.imread(DATA / "reference" / "TIRF_SIM_640_1.tif")
    raws = {lv: read_raw(lv) for lv in LEVELS}

    # choice of the unpublished optics: camera pixel and OTF damping
    print(
        "**Assumed optics.** Emission 670 nm, NA 1.49 (TIRF objective). The pixel size and an "
        "effective OTF damping ``a`` (fairSIM's approximate OTF ``O_ideal(q) a^q``) were "
        "swept; SSIM against the reference at GT / level 1 / level 0.3 "
        "(`wiener_factor=6`):\n"
    )
    decays = (1.0, 0.3, 0.1)
    pixels = (56.0, 58.0, 60.0, 62.6, 65.0)
    print("| pixel (nm) | " + " | ".join(f"a = {a:g}" for a in decays) + " |")
    print("|---|" + "---|" * len(decays))
    for px in pixels:
        cells = []
        for a in decays:
            s = []
            for lv in ("GT", "1", "0.3"):
                img, _ = sim.reconstruct(raws[lv], Optics(670.0, 1.49, px), otf_decay=a,
                                         wiener_factor=6.0)  # fmt: skip
                s.append(compare(img, reference)["ssim"])
            cells.append(" / ".join(f"{v:.3f}" for v in s))
        print(f"| {px:g} | " + " | ".join(cells) + " |")
    optics = Optics(670.0, 1.49, REAL_PIXEL)
    print(
        f"\nChosen: pixel {REAL_PIXEL:g} nm (output pixel {REAL_PIXEL / 2:g} nm), "
        f"`otf_decay={REAL_KW['otf_decay']}`, `wiener_factor={REAL_KW['wiener_factor']}` "
        "(other settings: defaults).\n"
    )

    print(
        "| level | significance (min of 3) | k (cycles/px, angle 3) | modulation | PSNR / SSIM "
        "(ours) | resolution (nm) | PSNR / SSIM (VDL-SIM) | resolution VDL-SIM (nm) | "
        "bar (SSIM) | texture (%) | peak ratio | grain ratio | SSIM / grain, local_wiener=None |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    from scipy import ndimage as ndi

    smooth_ref = ndi.gaussian_filter(reference.astype(np.float32), 4)
    dark = ndi.binary_erosion(smooth_ref < np.percentile(smooth_ref, 30), iterations=6)
    dark_w = ndi.gaussian_filter(dark.astype(np.float64), 3)
    outputs, plains = {}, {}
    for lv in LEVELS:
        img, p = sim.reconstruct(raws[lv], optics, **REAL_KW)
        outputs[lv] = img
        plain, _ = sim.reconstruct(raws[lv], optics, params=p, local_wiener=None, **REAL_KW)
        plains[lv] = plain
        c = compare(img, reference)
        cp = compare(plain, reference)["ssim"]
        gp = grain_ratio(plain, dark_w, optics.cutoff_per_pixel)
        r = decorrelation(img, pixel_size=REAL_PIXEL / 2).resolution_nm
        vdl_path = DATA / "vdl-sim-output" / f"{lv}.tif"
        vdl = tifffile.imread(vdl_path).astype(np.float32) if vdl_path.exists() else None
        if vdl is not None:
            cv = compare(vdl, reference)
            rv = decorrelation(vdl, pixel_size=REAL_PIXEL / 2).resolution_nm
            vtxt = f"{cv['psnr']:.2f} / {cv['ssim']:.3f} | {rv:.0f}"
        else:
            vtxt = "- | -"
        k = p.k[2]
        print(
            f"| {lv} | {p.significance.min():.0f} | ({k[0]:+.4f}, {k[1]:+.4f}) "
            f"| {', '.join(f'{m:.2f}' for m in p.modulation)} | {c['psnr']:.2f} / {c['ssim']:.3f} "
            f"| {r:.0f} | {vtxt} | {BAR.get(lv, '-')} "
            f"| {background_texture(img, dark_w, optics.cutoff_per_pixel):.2f} "
            f"| {harmonic_peak_ratio(img, p.k, dark_w):.1f} "
            f"| {grain_ratio(img, dark_w, optics.cutoff_per_pixel):.2f} | {cp:.3f} / {gp:.2f} |"
        )
    rr = decorrelation(reference, pixel_size=REAL_PIXEL / 2).resolution_nm
    wf_ref = tifffile.imread(DATA / "reference" / "Widefield_640_1.tif")
    cw = compare(wf_ref, reference)
    rw = decorrelation(wf_ref, pixel_size=REAL_PIXEL / 2).resolution_nm
    g_ref = grain_ratio(reference.astype(np.float64), dark_w, optics.cutoff_per_pixel)
    g_wf = grain_ratio(wf_ref.astype(np.float64), dark_w, optics.cutoff_per_pixel)
    print(
        f"\nThe reference itself: decorrelation resolution {rr:.0f} nm; the published widefield "
        f"image (reference/Widefield_640_1.tif) against it: PSNR {cw['psnr']:.2f}, SSIM "
        f"{cw['ssim']:.3f}, resolution {rw:.0f} nm (pixel {REAL_PIXEL / 2:g} nm assumed for "
        f"all). Grain ratio of the reference {g_ref:.2f}, of the widefield {g_wf:.2f}.\n"
    )
    if figures:
        FIGURES.mkdir(parents=True, exist_ok=True)
        y0, x0, s = 384, 384, 256
        crop = (slice(y0, y0 + s), slice(x0, x0 + s))
        for lv in ("GT", "1"):
            vdl = tifffile.imread(DATA / "vdl-sim-output" / f"{lv}.tif").astype(np.float32)
            panels = [
                to_uint8(wf_ref[crop], wf_ref),
                to_uint8(outputs[lv][crop], outputs[lv]),
                to_uint8(vdl[crop], vdl),
                to_uint8(reference[crop], reference),
            ]
            name = "GT" if lv == "GT" else f"level{lv}"
            path = FIGURES / f"sim_real_{name}.png"
            save_panels(path, panels, ["widefield (GT)", f"ours ({lv})", f"VDL-SIM ({lv})",
                                       "reference (GT)"])  # fmt: skip
            print(f"Figure: `{path.relative_to(FIGURES.parent.parent)}` ({s} x {s} crop at "
                  f"({y0}, {x0}) of the 2x grid).")  # fmt: skip
        # background before/after: the plain generalised Wiener output (local_wiener=None)
        # against the local Wiener step (the default)
        before = plains["GT"]
        cb = compare(before, reference)["ssim"]
        tb = background_texture(before, dark_w, optics.cutoff_per_pixel)
        gb = grain_ratio(before, dark_w, optics.cutoff_per_pixel)
        y1, x1, s1 = 520, 384, 128
        bg = (slice(y1, y1 + s1), slice(x1, x1 + s1))

        def stretch(img: np.ndarray) -> np.ndarray:  # 2x contrast: the background shows
            u = to_uint8(img[bg], img).astype(np.float32) * 2
            return np.kron(np.clip(u, 0, 255).astype(np.uint8), np.ones((3, 3), np.uint8))

        path = FIGURES / "sim_real_GT_background.png"
        save_panels(path, [stretch(before), stretch(outputs["GT"]), stretch(reference)],
                    ["GT, local_wiener=None (before)", "GT, local_wiener=1.5 (default)",
                     "reference"])  # fmt: skip
        print(f"Figure: `{path.relative_to(FIGURES.parent.parent)}` ({s1} x {s1} crop at "
              f"({y1}, {x1}), shown 3x, contrast 2x; before: SSIM {cb:.3f}, texture "
              f"{tb:.2f} %, grain ratio {gb:.2f}).")  # fmt: skip
        path = FIGURES / "sim_real_GT_before.png"
        save_panels(path, [to_uint8(before[crop], before), to_uint8(outputs["GT"][crop],
                                                                   outputs["GT"]),
                           to_uint8(reference[crop], reference)],
                    ["ours, local_wiener=None", "ours (default)", "reference (GT)"])  # fmt: skip
        print(f"Figure: `{path.relative_to(FIGURES.parent.parent)}` (the crop of "
              "`sim_real_GT.png`, plain Wiener output against the default).")  # fmt: skip
        path = FIGURES / "sim_real_GT_spectrum.png"
        save_spectrum(path, outputs["GT"])
        print(f"Figure: `{path.relative_to(FIGURES.parent.parent)}` (log10 \\|FFT\\| of our GT "
              "output, Hann window).")  # fmt: skip
        print()


# --------------------------------------------------------------------------- 3. speed


def speed() -> None:
    print("### 3. Speed (9 x 512 x 512 -> 1024 x 1024, best of 3)\n")
    if DATA.is_dir():
        raw, optics, kw = read_raw("GT"), Optics(670.0, 1.49, REAL_PIXEL), REAL_KW
        what = "real GT frames, the settings of section 2"
    else:
        d = simulate_sample("microtubules", 512, SIM_OPTICS, np.random.default_rng(0),
                            levels=[1000])  # fmt: skip
        raw, optics, kw, what = d["raw"][0], SIM_OPTICS, {}, "simulated frames, defaults"
    sim.reconstruct(raw, optics, **kw)  # warm the caches
    decay = kw.get("otf_decay", 1.0)
    t_est, p = best_of(lambda: sim.estimate_parameters(raw, optics, otf_decay=decay))
    t_all, _ = best_of(lambda: sim.reconstruct(raw, optics, **kw))
    t_rec, _ = best_of(lambda: sim.reconstruct(raw, optics, params=p, **kw))
    print("| step | time (s) |")
    print("|---|---|")
    print(f"| parameter estimation | {t_est:.3f} |")
    print(f"| reconstruction with given parameters | {t_rec:.3f} |")
    print(f"| **estimation + reconstruction** | **{t_all:.3f}** |")
    print(f"\n({what}; scipy.fft with workers=-1, complex64.)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    figures = not args.no_figures
    print("## 2D-SIM reconstruction (`dps_stages.sim`)\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(
        f"- machine: {os.cpu_count()} CPU(s) (nproc), {cpu_model()}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    )
    print("- command: `python benchmarks/bench_sim.py`\n")
    if figures:
        FIGURES.mkdir(parents=True, exist_ok=True)
    simulated(args.size, args.seeds, figures)
    real(figures)
    speed()


if __name__ == "__main__":
    main()
