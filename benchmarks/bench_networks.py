"""Benchmark: the DPS networks, from finished workflow runs, plus Res-U-DBPN's speed.

    python benchmarks/bench_networks.py --run results            # default pipeline
    python benchmarks/bench_networks.py --real results_real      # benchmarks/configs/real_data.yaml
    python benchmarks/bench_networks.py --speed                  # Res-U-DBPN vs sparse, 1024^2

1. ``--run``: training time and size of every network (``models/*/record.json``); the metrics
   summary of the simulated test split per stage (PSNR / SSIM against ground truth,
   decorrelation resolution, gain over the stage's input); Res-U-DBPN's data consistency,
   SSIM of ``x * srPSF`` (brought back to the input grid) against its input, next to its
   resolution gain, in the chain and on images of its training kind (2x truth * srPSF +
   photon noise) where the 4x truth is known.
2. ``--real``: every level of the real TIRF-SIM data against reference/TIRF_SIM_640_1.tif with
   the protocol of ``dps compare``: the Wiener reconstruction, the chain's artifact-removed
   SIM image, and Res-U-DBPN's output binned 2 x 2 to the reference grid, beside the
   published VDL-SIM outputs; decorrelation resolution of each. Res-U-DBPN on the DPS paper's
   Fig. 3a: resolution before and after, and a figure.
3. ``--speed``: Res-U-DBPN (the default architecture, and the paper's) on a 1024 x 1024 image
   against sparse deconvolution of the same image, in the same run.
Prints markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, machine  # noqa: E402
from dps_stages import inference, io, losses, nets, training  # noqa: E402
from dps_stages.metrics import compare, decorrelation  # noqa: E402
from dps_stages.register import register  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VDL = SHARED / "vdl-sim-microtubules"
FIGURES = Path(__file__).resolve().parent / "figures"
LEVELS = ("0.1", "0.2", "0.3", "0.4", "0.5", "1", "1.5", "2.5", "3.5", "GT")


def _psf_of(record: dict) -> np.ndarray:
    """The srPSF Res-U-DBPN was trained with, rebuilt from its record."""
    from dps_stages.optics import sr_psf

    p = record["psf"]
    psf = sr_psf(
        p["size"], p["wavelength"], p["na"], p["output_pixel_size"], p["modulation_factor"]
    )
    return psf / psf.sum()


def consistency(x: np.ndarray, y: np.ndarray, psf: np.ndarray) -> float:
    """SSIM of ``x * srPSF`` binned to the input grid against the (normalised) input ``y``."""
    lo, hi = inference.percentile_range(y)
    yt = torch.from_numpy(((y - lo) / (hi - lo)).astype(np.float32))[None, None]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    xlo, xhi = inference.percentile_range(x)
    with torch.no_grad():
        rb = losses.reblur_to_input((xt - xlo) / (xhi - xlo), psf)
        # SSIM after a least-squares scale/offset: the network's output units are its own
        a = np.polyfit(rb.numpy().ravel(), yt.numpy().ravel(), 1)
        rb = rb * float(a[0]) + float(a[1])
        return float(losses.ssim_index(rb, yt))


def run_tables(results: Path) -> None:
    print("### Training, default budget\n")
    print(
        "| network | parameters | steps | batch x patch | seconds | device | final loss | "
        "loss features |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for net in ("denoise", "sim", "artifact", "resudbpn", "oidn"):
        if not (results / "models" / net).exists():
            continue
        rec = json.loads((results / "models" / net / "record.json").read_text())
        s = rec["settings"]
        print(
            f"| {net} | {rec['parameters']:,} | {s['steps']} | {s['batch']} x {s['patch']} | "
            f"{rec['seconds']:.0f} | {rec['device']} | {rec['final_loss']:.3f} | "
            f"{rec.get('loss_features') or '-'} |"
        )

    ds = "simulated"
    summary = pd.read_csv(results / ds / "metrics_summary.tsv", sep="\t", dtype={"level": str})
    print("\n### Simulated test split, per stage (mean over images)\n")
    cols = [
        "psnr_mean",
        "ssim_mean",
        "resolution_nm_mean",
        "resolution_gain_mean",
        "grid_limited_fraction",
    ]
    if "truth" not in summary:  # a table of an older run: one truth, the object
        summary["truth"] = "object"
    for level, table in summary.groupby("level", sort=False):
        print(f"\n{level} photons:\n")
        print("| stage | truth | PSNR | SSIM | resolution (nm) | gain over input | grid-limited |")
        print("|---|---|---|---|---|---|---|")
        for _, r in table.iterrows():
            vals = [f"{r[c]:.3g}" if pd.notna(r[c]) else "-" for c in cols]
            truth = r["truth"] if isinstance(r["truth"], str) else "-"
            print(f"| {r['stage']} | {truth} | " + " | ".join(vals) + " |")

    print("\n### Denoising, frame by frame\n")
    print(
        "Each of the 9 raw frames against its noise-free counterpart (`dps compare` "
        "protocol), mean over frames and images:\n"
    )
    print("| level | raw frames PSNR / SSIM | denoised (`raw_dn`) PSNR / SSIM |")
    print("|---|---|---|")
    clean = io.open_group(results / ds / "simulate" / "test.zarr")["raw_clean"][...]
    for level in summary["level"].unique():
        cells = []
        for stage in ("raw", "raw_dn"):
            arr, _ = io.open_stage(results / ds / level / f"{stage}.zarr")
            arr = np.asarray(arr)
            m = [compare(arr[n, f], clean[n, f]) for n in range(arr.shape[0]) for f in range(9)]
            cells.append(
                f"{np.mean([c['psnr'] for c in m]):.2f} / {np.mean([c['ssim'] for c in m]):.3f}"
            )
        print(f"| {level} | " + " | ".join(cells) + " |")

    oidn_psf(results)

    model, rec = inference.load_model(results / "models" / "resudbpn")
    psf = _psf_of(rec)
    print("\n### Res-U-DBPN: resolution gain and data consistency\n")
    print(
        "In the chain (input `sim_ar_bg`, the artifact-removed SIM image after background "
        "removal):\n"
    )
    print(
        "| level | input resolution (nm) | output resolution (nm) | gain | "
        "consistency SSIM(x * srPSF, input) |"
    )
    print("|---|---|---|---|---|")
    for level in summary["level"].unique():
        xin, _ = io.open_stage(results / ds / level / "sim_ar_bg.zarr")
        xout, _ = io.open_stage(results / ds / level / "sim_dbpn.zarr")
        xin, xout = np.asarray(xin), np.asarray(xout)
        c = [consistency(o, i, psf) for o, i in zip(xout, xin, strict=True)]
        row = summary[(summary["level"] == level) & (summary["stage"] == "sim_dbpn")].iloc[0]
        before = summary[(summary["level"] == level) & (summary["stage"] == "sim_ar_bg")]
        print(
            f"| {level} | {before['resolution_nm_mean'].iloc[0]:.0f} | "
            f"{row['resolution_nm_mean']:.0f} | {row['resolution_gain_mean']:.2f} | "
            f"{np.mean(c):.3f} |"
        )

    store = results / ds / "simulate" / "test.zarr"
    pairs = training.dbpn_pairs_simulated(store, _input_psf(rec), 1, grid="2x")
    truth4 = io.open_group(store)["truth_4x"][...]
    levels = io.read_attrs(store)["levels"]
    print(
        "\nOn images of its training kind (test split's 2x truth * srPSF + photon noise; "
        "SSIM against the 4x truth after `dps compare`'s fit; input up-sampled 2x by "
        "pixel replication):\n"
    )
    print(
        "| photons | input res. (nm) | output res. (nm) | gain | SSIM input | SSIM output | "
        "consistency |"
    )
    print("|---|---|---|---|---|---|---|")
    px = rec["psf"]["input_pixel_size"]
    for li, photons in enumerate(levels):
        rows = []
        for n in range(truth4.shape[0]):
            x = pairs.inputs[n * len(levels) + li][0]
            y = np.asarray(inference.predict(model, x[None], tile=None))[0]
            r0 = decorrelation(x, pixel_size=px).resolution_nm
            r1 = decorrelation(y, pixel_size=px / 2).resolution_nm
            up = np.kron(x, np.ones((2, 2), np.float32))
            rows.append(
                (
                    r0,
                    r1,
                    r0 / r1,
                    compare(up, truth4[n])["ssim"],
                    compare(y, truth4[n])["ssim"],
                    consistency(y, x, psf),
                )
            )
        m = np.nanmean(np.array(rows), axis=0)
        print(
            f"| {photons:g} | {m[0]:.0f} | {m[1]:.0f} | {m[2]:.2f} | {m[3]:.3f} | "
            f"{m[4]:.3f} | {m[5]:.3f} |"
        )


def oidn_psf(results: Path) -> None:
    """OIDN's learned PSF against the theoretical srPSF it started from (2x grid)."""
    from dps_stages.optics import fwhm
    from dps_stages.paper import oidn_learned_psf

    folder = results / "models" / "oidn"
    if not (folder / "psf.tif").exists():
        return
    learned, theory, pixel = oidn_learned_psf(folder)
    c = learned.shape[0] // 2
    f_l, f_t = fwhm(learned[c]) * pixel, fwhm(theory[c]) * pixel
    diff = np.abs(learned - theory).sum()
    print("\n### OIDN's learned PSF against the theoretical srPSF\n")
    print("| PSF | FWHM (nm) | peak | sum |")
    print("|---|---|---|---|")
    print(f"| theoretical srPSF (start) | {f_t:.1f} | {theory.max():.4f} | {theory.sum():.4f} |")
    print(f"| learned | {f_l:.1f} | {learned.max():.4f} | {learned.sum():.4f} |")
    print(f"\nL1 distance {diff:.3f}; min of the learned PSF {learned.min():.2e}; "
          f"figure: `models/oidn/psf.png`.")  # fmt: skip


def _input_psf(record: dict) -> np.ndarray:
    from dps_stages.optics import psf_size_for, sr_psf

    p = record["psf"]
    px = p["input_pixel_size"]
    size = psf_size_for(p["wavelength"], p["na"] * p["modulation_factor"], px) | 1
    return sr_psf(size, p["wavelength"], p["na"], px, p["modulation_factor"])


def _stage(results: Path, ds: str, stage: str) -> np.ndarray:
    arr, _ = io.open_stage(results / ds / "input" / f"{stage}.zarr")
    return np.asarray(arr, dtype=np.float32)[0]


def real_tables(results: Path, figures: bool) -> None:
    import tifffile

    reference = tifffile.imread(VDL / "reference" / "TIRF_SIM_640_1.tif").astype(np.float32)
    print("\n### Real TIRF-SIM, networks trained on simulation only\n")
    print(
        "Against reference/TIRF_SIM_640_1.tif (`dps compare` protocol): PSNR / SSIM, and "
        "decorrelation resolution in nm at the assumed 30 nm SIM pixel. Res-U-DBPN's 2048^2 "
        "output is binned 2 x 2 to the reference grid for PSNR/SSIM; its resolution is "
        "measured at 15 nm.\n"
    )
    stages = ("sim_wiener", "sim_dn_wiener", "sim_dps", "sim_oidn", "sim_ar", "sim_dbpn")
    head = " | ".join(f"`{st}`" for st in stages)
    print(f"| level | {head} | VDL-SIM (published) |")
    print("|---|" + "---|" * (len(stages) + 1))
    resolution_rows, registered_rows = [], []
    inner = (slice(16, -16), slice(16, -16))  # the same pixels for every registered image
    for level in LEVELS:
        ds = f"vdl_{level}"
        if not (results / ds).exists():
            continue
        cells, res, reg_cells = [], [], []
        for st in stages:
            img = _stage(results, ds, st)
            px = 30.0
            if img.shape[-1] == 2 * reference.shape[-1]:
                res.append(decorrelation(img, pixel_size=15.0).resolution_nm)
                img = img.reshape(1024, 2, 1024, 2).mean(axis=(1, 3))
            else:
                res.append(decorrelation(img, pixel_size=px).resolution_nm)
            c = compare(img, reference)
            cells.append(f"{c['psnr']:.2f} / {c['ssim']:.3f}")
            reg_cells.append(_registered_cell(img, reference, inner))
        vdl_file = VDL / "vdl-sim-output" / f"{level}.tif"
        vdl = tifffile.imread(vdl_file).astype(np.float32)
        c = compare(vdl, reference)
        cells.append(f"{c['psnr']:.2f} / {c['ssim']:.3f}")
        reg_cells.append(_registered_cell(vdl, reference, inner))
        registered_rows.append(f"| {level} | " + " | ".join(reg_cells) + " |")
        res.append(decorrelation(vdl, pixel_size=30.0).resolution_nm)
        print(f"| {level} | " + " | ".join(cells) + " |")
        resolution_rows.append(f"| {level} | " + " | ".join(f"{r:.0f}" for r in res) + " |")
    print(
        "\nRegistered to the reference first (`dps_stages.register`: the levels are separate "
        "acquisitions, shifted by about 4-5 SIM pixels against the GT frames the reference was "
        "made from), scored over the image less a 16-pixel border: SSIM with the fit over all "
        "pixels / with the censored fit (`compare(fit='censored')`: the reference is 0 on "
        "44.5 % of its pixels):\n"
    )
    print(f"| level | {head} | VDL-SIM (published) |")
    print("|---|" + "---|" * (len(stages) + 1))
    print("\n".join(registered_rows))
    ref_res = decorrelation(reference, pixel_size=30.0).resolution_nm
    print(f"\nDecorrelation resolution (nm; the reference: {ref_res:.0f}):\n")
    print(f"| level | {head} | VDL-SIM |")
    print("|---|" + "---|" * (len(stages) + 1))
    print("\n".join(resolution_rows))

    if figures:
        _crops_figure(results, reference)

    if (results / "fig3a").exists():
        before = _stage(results, "fig3a", "sim_bg")
        after = _stage(results, "fig3a", "sim_dbpn")
        rb = decorrelation(before, pixel_size=32.5)
        ra = decorrelation(after, pixel_size=16.25)
        rec = json.loads((results / "fig3a" / "model_resudbpn" / "record.json").read_text())
        print("\n### Res-U-DBPN on Fig. 3a (self-supervised on the image itself)\n")
        print(
            f"Trained {rec['settings']['steps']} steps in {rec['seconds']:.0f} s; srPSF "
            f"{rec['psf']['wavelength']:g} nm, NA {rec['psf']['na']:g} x "
            f"{rec['psf']['modulation_factor']:g}.\n"
        )
        print("| image | pixel (nm) | kc | resolution (nm) |")
        print("|---|---|---|---|")
        print(f"| input (background removed) | 32.5 | {rb.kc:.3f} | {rb.resolution_nm:.1f} |")
        print(f"| Res-U-DBPN | 16.25 | {ra.kc:.3f} | {ra.resolution_nm:.1f} |")
        print(f"\nGain {rb.resolution_nm / ra.resolution_nm:.2f}x.")
        if figures:
            _fig3a_figure(before, after)


CROP_LEVELS = ("0.3", "1", "GT")


def _crops_figure(results: Path, reference: np.ndarray) -> None:
    """Crops at levels 0.3, 1 and GT: Wiener, the chain's final SIM-grid output (``sim_ar``),
    the published VDL-SIM output and the reference, each registered to the reference (the
    levels are separate acquisitions) and shown with the reference's colour limits after the
    protocol's linear fit, so that brightness differences do not read as structure; per-panel
    SSIM (registered, fit over all pixels) and a 1 um scale bar (30 nm SIM pixel)."""
    import matplotlib
    import tifffile

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dps_stages.metrics.comparison import fit_scale_offset

    y0, x0, n = 400, 700, 200  # a field with an aster, crossing and parallel filaments
    window = (slice(y0, y0 + n), slice(x0, x0 + n))
    lo, hi = np.percentile(reference[window], (0.5, 99.8))
    columns = ("sim_wiener", "sim_ar", "VDL-SIM (published)", "reference")
    levels = [lv for lv in CROP_LEVELS  # the levels whose stages are all there
              if all((results / f"vdl_{lv}" / "input" / f"{st}.zarr").exists()
                     for st in columns[:2])]  # fmt: skip
    if not levels:
        return
    fig, axes = plt.subplots(len(levels), 4, figsize=(12, 3.15 * len(levels)), dpi=150)
    axes = np.atleast_2d(axes)
    for row, level in zip(axes, levels, strict=True):
        images = [_stage(results, f"vdl_{level}", st) for st in columns[:2]]
        images.append(tifffile.imread(VDL / "vdl-sim-output" / f"{level}.tif").astype(np.float32))
        for ax, img, name in zip(row, [*images, reference], columns, strict=True):
            if name != "reference":
                img = register(img, reference).image
                img = fit_scale_offset(img, reference)
                ssim = compare(img[16:-16, 16:-16], reference[16:-16, 16:-16])["ssim"]
                name = f"{name}  SSIM {ssim:.3f}"
            ax.imshow(np.clip((img[window] - lo) / (hi - lo), 0, 1), cmap="magma")
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            bar = 1000.0 / 30.0  # 1 um in 30 nm pixels
            ax.plot([n - 12 - bar, n - 12], [n - 12, n - 12], color="white", lw=3)
            ax.text(n - 12 - bar / 2, n - 18, "1 µm", color="white", ha="center", fontsize=8)
        row[0].set_ylabel(f"level {level}", fontsize=10)
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(FIGURES / f"real_crops.{ext}")
    plt.close(fig)
    print("\nFigure: benchmarks/figures/real_crops.png (and .pdf)")


def _registered_cell(img: np.ndarray, reference: np.ndarray, inner) -> str:
    """SSIM after registration to the reference (fit over all pixels / censored fit)."""
    reg = register(img, reference)
    a = compare(reg.image[inner], reference[inner])["ssim"]
    b = compare(reg.image[inner], reference[inner], fit="censored")["ssim"]
    return f"{a:.3f} / {b:.3f}"


def _fig3a_figure(before: np.ndarray, after: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y0, x0, n = 900, 900, 256  # a crop of the input grid, and the same field at 2x
    crops = [before[y0 : y0 + n, x0 : x0 + n], after[2 * y0 : 2 * (y0 + n), 2 * x0 : 2 * (x0 + n)]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), dpi=150)
    for ax, img, title in zip(
        axes, crops, ("Fig. 3a, background removed (32.5 nm)", "Res-U-DBPN (16.25 nm)"), strict=True
    ):
        lo, hi = np.percentile(img, (0.1, 99.9))
        ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1), cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "dbpn_fig3a.png")
    plt.close(fig)
    print(f"\nFigure: benchmarks/figures/{'dbpn_fig3a.png'}")


def speed() -> None:
    from dps_stages.deconvolution import sparse_hessian
    from dps_stages.optics import psf_size_for, sr_psf

    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    image = rng.random((1024, 1024)).astype(np.float32)
    psf = sr_psf(psf_size_for(525, 1.4 * 1.9, 32.5) | 1, 525, 1.4, 32.5, 1.9)
    print("\n### Speed: Res-U-DBPN against sparse deconvolution, 1024 x 1024, same run\n")
    print(
        f"{machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{datetime.date.today()}.\n"
    )
    t_sparse, _ = best_of(lambda: sparse_hessian(image, psf=psf), repeats=1)
    print("| method | seconds | output |")
    print("|---|---|---|")
    print(f"| sparse deconvolution (defaults, 100 iterations + RL) | {t_sparse:.2f} | 1024^2 |")
    for scale in ("small", "paper"):
        arch = nets.default_arch("resudbpn") if scale == "small" else nets.paper_arch("resudbpn")
        torch.manual_seed(0)
        model = nets.build("resudbpn", arch).eval()
        t0 = time.perf_counter()
        out = np.asarray(inference.predict(model, image[None], tile=256))
        t = time.perf_counter() - t0
        print(
            f"| Res-U-DBPN {scale} ({nets.count_parameters(model) / 1e6:.2f} M parameters), "
            f"tiles of 256 + halo | {t:.2f} | {out.shape[-1]}^2 |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, help="results folder of the default pipeline")
    ap.add_argument("--real", type=Path, help="results folder of configs/real_data.yaml")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    print(f"## DPS networks ({machine()}, {datetime.date.today()})\n")
    if args.run:
        run_tables(args.run)
    if args.real:
        real_tables(args.real, not args.no_figures)
    if args.speed:
        speed()


if __name__ == "__main__":
    main()
