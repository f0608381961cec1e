"""The evaluation stage: every stage's output against ground truth and by its own resolution.

For each image of each stage: PSNR, SSIM and NRMSE against the ground truth of the same grid
(1x camera grid, 2x SIM grid, 4x) under the protocol of :func:`dps_stages.metrics.compare`,
where a ground truth exists; the decorrelation resolution (Descloux et al., Nature Methods
2019), which needs none; and the resolution gain over the stage's input,
``gain = resolution(input) / resolution(stage)`` (> 1 means finer). Where the decorrelation
peak sits at the sampling limit (kc >= 0.95) the row is flagged ``grid_limited``: the figure
then says more about the pixel grid than about the image.

A raw-frame stage (n, 9, y, x) is evaluated on the mean of its 9 frames: the widefield image
that those frames amount to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dps_stages import io
from dps_stages.metrics import compare, decorrelation

TRUTH_ARRAYS = ("truth_1x", "truth_2x", "truth_4x")
COLUMNS = [
    "level", "stage", "input", "image", "structure", "grid", "pixel_size_nm",
    "psnr", "ssim", "nrmse", "kc", "grid_limited", "resolution_px", "resolution_nm",
    "input_resolution_nm", "resolution_gain",
]  # fmt: skip
#: kc at or above this (normalised frequency, 1 = Nyquist) means the decorrelation curve
#: peaks at the sampling limit: the figure is the grid's, not the image's resolution (typical
#: of deconvolved or sparse outputs whose spectrum is not band-limited by the optics).
GRID_LIMIT_KC = 0.95


def stage_images(path: str | Path) -> tuple[np.ndarray, dict]:
    """A stage's images as (n, y, x) float32 (frame stacks averaged) and its attributes."""
    arr, attrs = io.open_stage(path)
    images = np.asarray(arr, dtype=np.float32)
    if images.ndim == 4:
        images = images.mean(axis=1)
    elif images.ndim == 2:
        images = images[None]
    return images, attrs


def apodisation_width(shape: tuple[int, ...]) -> int:
    """The authors' 20-pixel edge apodisation, narrowed for images under 160 pixels."""
    return int(min(20, max(2, min(shape[-2:]) // 8)))


def evaluate_level(
    stages: Sequence[tuple[str, Path, str | None]],
    truth_store: str | Path | None,
    level: str,
    *,
    n_r: int = 50,
    n_g: int = 10,
) -> pd.DataFrame:
    """Metrics of every image of every stage at one signal level, one row each.

    Parameters
    ----------
    stages : (name, zarr path, input stage name or None)
        In DAG order: a stage's input must come before it.
    truth_store : simulated Zarr group with ``truth_1x/2x/4x``, or None for real data.
    """
    truths: dict[tuple[int, int], np.ndarray] = {}
    grids: dict[tuple[int, int], str] = {}
    structures: list[str] | None = None
    if truth_store is not None:
        group = io.open_group(truth_store)
        structures = list(group.attrs.get("structures", []))
        for name in TRUTH_ARRAYS:
            if name in group:
                arr = np.asarray(group[name][...], dtype=np.float32)
                truths[arr.shape[-2:]] = arr
                grids[arr.shape[-2:]] = name.split("_")[1]

    rows: list[dict] = []
    resolution: dict[str, list[float]] = {}
    for name, path, input_name in stages:
        images, attrs = stage_images(path)
        pixel_size = attrs.get("pixel_size")
        truth = truths.get(images.shape[-2:])
        res_list = []
        for i, image in enumerate(images):
            row: dict = {
                "level": level, "stage": name, "input": input_name or "", "image": i,
                "structure": structures[i] if structures and i < len(structures) else "",
                "grid": grids.get(images.shape[-2:], ""), "pixel_size_nm": pixel_size,
            }  # fmt: skip
            if truth is not None:
                row.update(compare(image, truth[i]))
            dec = decorrelation(
                image, pixel_size=pixel_size, n_r=n_r, n_g=n_g,
                apodise_px=apodisation_width(image.shape),
            )  # fmt: skip
            # kc = 0: no resolution found (flat or noise-only image); NaN, not inf, in tables
            res_px = dec.resolution_px if dec.kc > 0 else np.nan
            res_nm = res_px * pixel_size if pixel_size else np.nan
            row.update({"kc": dec.kc, "grid_limited": bool(dec.kc >= GRID_LIMIT_KC),
                        "resolution_px": res_px, "resolution_nm": res_nm})  # fmt: skip
            res_list.append(res_nm)
            if input_name is not None and input_name in resolution:
                before = resolution[input_name][i]
                row["input_resolution_nm"] = before
                row["resolution_gain"] = before / res_nm if res_nm > 0 else np.nan
            rows.append(row)
        resolution[name] = res_list
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def summarise(
    tables: Sequence[str | Path],
    output: str | Path,
    summary_output: str | Path,
    figure: str | Path,
) -> None:
    """Merge per-level tables into one; write the mean per (level, stage) and a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [pd.read_csv(t, sep="\t", dtype={"level": str}) for t in tables]
    full = pd.concat(frames, ignore_index=True)
    with io.atomic_path(output) as tmp:
        full.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    metrics = ["psnr", "ssim", "nrmse", "resolution_nm", "resolution_gain"]
    summary = (
        full.groupby(["level", "stage"], sort=False)[metrics].agg(["mean", "std"]).reset_index()
    )
    summary.columns = [
        "_".join(c for c in col if c) if isinstance(col, tuple) else col for col in summary.columns
    ]
    groups = full.groupby(["level", "stage"], sort=False)
    summary.insert(2, "n_images", groups.size().values)
    summary["grid_limited_fraction"] = groups["grid_limited"].mean().values
    with io.atomic_path(summary_output) as tmp:
        summary.to_csv(tmp, sep="\t", index=False, float_format="%.4g")

    levels = list(dict.fromkeys(full["level"]))
    stages = list(dict.fromkeys(full["stage"]))
    panels = [("resolution_nm", "decorrelation resolution (nm, lower is finer)")]
    if full["psnr"].notna().any():
        panels += [("psnr", "PSNR vs ground truth (dB)"), ("ssim", "SSIM vs ground truth")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    width = 0.8 / max(1, len(stages))
    x = np.arange(len(levels))
    for ax, (col, title) in zip(axes[0], panels, strict=True):
        for j, stage in enumerate(stages):
            sub = full[full["stage"] == stage].groupby("level", sort=False)[col]
            mean = [sub.mean().get(lv, np.nan) for lv in levels]
            std = [sub.std().get(lv, np.nan) for lv in levels]
            ax.bar(x + (j - (len(stages) - 1) / 2) * width, mean, width, yerr=std, label=stage)
        ax.set_xticks(x, levels)
        ax.set_xlabel("signal level (photons)")
        ax.set_title(title, fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with io.atomic_path(figure) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(figure).suffix.lstrip(".") or "png")
    plt.close(fig)
