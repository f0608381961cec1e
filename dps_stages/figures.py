"""Figures for the report: each stage's images beside the ground truth, a few stages per
figure (the palette, scale bars and tables live in :mod:`dps_stages.plotting`).

The Snakefile imports :data:`STAGE_GROUPS` from here on every parse: the reading and scoring
modules (Zarr, Dask, SciPy) are imported inside the functions that draw."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dps_stages.plotting import (  # noqa: F401  (the report's figure helpers, re-exported)
    MARKERS,
    PALETTE,
    SUMMARY_METRICS,
    add_scale_bar,
    format_um,
    metrics_figure,
    palette_distance,
    robust_limits,
    scale_bar_length,
    stage_style,
    summary_html,
)

#: The stage figures of the report, at most four stages each beside the truths, so that each
#: panel stays readable at the report's width. Stages outside every group go to ``other``.
STAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "inputs": ("widefield", "raw_bg", "widefield_bg", "raw_dn", "sim", "sim_bg"),
    "deconvolution": ("widefield_rl", "widefield_rl_id", "widefield_sparse", "sim_sparse"),
    "sim": ("sim_wiener", "sim_dn_wiener", "sim_dps", "sim_oidn"),
    "chain": ("sim_ar", "sim_ar_bg", "sim_dbpn", "widefield_dbpn"),
}


def group_stages(names: Sequence[str]) -> dict[str, list[str]]:
    """The stages of :data:`STAGE_GROUPS` present in ``names`` (their order kept), non-empty
    groups only; names in no group form the group ``other``."""
    groups: dict[str, list[str]] = {}
    for group, members in STAGE_GROUPS.items():
        found = [n for n in names if n in members]
        if found:
            groups[group] = found
    rest = [n for n in names if not any(n in m for m in STAGE_GROUPS.values())]
    if rest:
        groups["other"] = rest
    return groups


def _panel_scores(metrics: pd.DataFrame | None, stage: str, image: int) -> str:
    """The per-panel label: PSNR / SSIM against the object truth where scored, the
    decorrelation resolution otherwise (empty without a table)."""
    if metrics is None:
        return ""
    from dps_stages.evaluate import OBJECT_TRUTH

    rows = metrics[(metrics["stage"] == stage) & (metrics["image"] == image)]
    if rows.empty:
        return ""
    scored = rows[rows["truth"].fillna("") == OBJECT_TRUTH]
    parts = []
    if not scored.empty and pd.notna(scored["psnr"].iloc[0]):
        r = scored.iloc[0]
        parts.append(f"{r['psnr']:.1f} dB  SSIM {r['ssim']:.2f}")
    res = rows["resolution_nm"].iloc[0]
    if pd.notna(res):
        flag = " (grid)" if bool(rows["grid_limited"].iloc[0]) else ""
        parts.append(f"res. {res:.0f} nm{flag}")
    return "\n".join(parts)


#: A panel is drawn from at most this many pixels along y and x (block means of a larger
#: image); a panel is under 300 pixels wide on the page.
PREVIEW_PX = 1024


def preview(images, max_px: int = PREVIEW_PX) -> np.ndarray:
    """Images (n, y, x), numpy or lazy dask, in memory for display: block means of ``f x f``
    pixels where they exceed ``max_px`` (``f`` the smallest factor that brings them under),
    computed tile by tile, so that a 32768² stage is never held whole."""
    import dask.array as da

    f = max(1, -(-max(images.shape[-2:]) // max_px))
    if f == 1:
        return np.asarray(images)
    lazy = images if isinstance(images, da.Array) else da.from_array(images)
    axes = {lazy.ndim - 2: f, lazy.ndim - 1: f}
    return np.asarray(da.coarsen(np.mean, lazy, axes, trim_excess=True))


def stage_panel(
    stages: Sequence[tuple[str, Path]],
    truth_store: str | Path | None,
    level: str,
    output: str | Path,
    *,
    n_images: int = 4,
    metrics: str | Path | pd.DataFrame | None = None,
    title: str | None = None,
) -> None:
    """A grid of images: one row per image (structure), one column per stage, the 2x truths
    last (the object's, then any other kind the store holds, e.g. the SIM-passband truth).

    Each panel is normalised to its own 0.1 and 99.9 percentiles (the metrics' protocol) and
    drawn over the same field of view, whatever its grid (1x, 2x, 4x), with a scale bar in
    micrometres (from the stage's pixel size) and, given the level's metrics table, the
    panel's PSNR / SSIM against the object and its decorrelation resolution.
    """
    import dask.array as da
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dps_stages import io
    from dps_stages.evaluate import OBJECT_TRUTH, find_truths, stage_stack
    from dps_stages.metrics import normalise_percentile

    table = pd.read_csv(metrics, sep="\t") if isinstance(metrics, (str, Path)) else metrics
    columns: list[tuple[str, np.ndarray, float | None]] = []
    for name, path in stages:
        images, attrs = stage_stack(path)
        px = attrs.get("pixel_size")
        field = px * images.shape[-1] / 1000 if px else None
        columns.append((name, preview(images[:n_images]), field))
    structures: list[str] = []
    if truth_store is not None:
        group = io.open_group(truth_store)
        structures = list(group.attrs.get("structures", []))
        field = next((f for _, _, f in columns if f), None)
        for t in find_truths(group):
            if t.grid == "2x":
                label = "ground truth" if t.kind == OBJECT_TRUTH else f"{t.kind} truth"
                truth = da.from_array(group[t.name])[:n_images]
                columns.append((f"{label} (2x)", preview(truth), field))
    rows = min(len(c[1]) for c in columns)
    size = 2.6
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(size * len(columns), size * rows + 0.5), squeeze=False
    )
    for j, (name, images, field) in enumerate(columns):
        for i in range(rows):
            ax = axes[i][j]
            ax.imshow(normalise_percentile(images[i]), cmap="magma", extent=(0, 1, 1, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if field:
                add_scale_bar(ax, field)
            label = _panel_scores(table, name, i)
            if label:
                ax.text(0.03, 0.97, label, color="white", fontsize=7.5, va="top", ha="left",
                        transform=ax.transAxes, bbox={"facecolor": "black", "alpha": 0.55,
                        "pad": 1.5, "edgecolor": "none"})  # fmt: skip
            if i == 0:
                ax.set_title(name, fontsize=11)
            if j == 0 and i < len(structures):
                ax.set_ylabel(structures[i], fontsize=11)
    fig.suptitle(title or f"signal level {level}", fontsize=12)
    fig.tight_layout()
    with io.atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(output).suffix.lstrip(".") or "png")
    plt.close(fig)
