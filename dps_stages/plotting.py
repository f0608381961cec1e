"""Figure helpers that need no evaluation: one colour and marker per stage, scale bars in
micrometres, robust axis limits, the metrics figure and the metrics as HTML tables (used by
:mod:`dps_stages.evaluate` and :mod:`dps_stages.figures`)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dps_stages.io_core import atomic_path

#: A qualitative palette of 20 colours that stay apart from one another (after Kelly's
#: colours of maximum contrast, without white and black): one per stage, in DAG order.
PALETTE = (
    "#0067a5", "#e25822", "#008856", "#be0032", "#875692", "#f3c300", "#654522",
    "#a1caf1", "#e68fac", "#2b3d26", "#f99379", "#604e97", "#8db600", "#882d17",
    "#848482", "#c2b280", "#b3446c", "#dcd300", "#f6a600", "#000000",
)  # fmt: skip
#: Marker shapes, cycled with a period prime to the palette's so that colour and marker
#: together tell stages apart in print and for colour-blind readers.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG (its folder made) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def stage_style(index: int) -> tuple[str, str]:
    """The colour and marker of the ``index``-th stage: distinct for 20 stages by colour
    alone, and for ``len(PALETTE) * len(MARKERS)`` by the pair."""
    return PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]


def scale_bar_length(field_um: float, fraction: float = 0.25) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k micrometres), the largest not longer than
    ``fraction`` of a field of view ``field_um`` micrometres wide."""
    if not field_um > 0:
        raise ValueError(f"field of view must be positive, got {field_um}")
    target = fraction * field_um
    exp = math.floor(math.log10(target))
    for mantissa in (5, 2, 1):
        length = mantissa * 10.0**exp
        if length <= target * (1 + 1e-9):
            return length
    return 10.0**exp  # unreachable: 1 x 10^floor(log10 t) <= t


def format_um(length_um: float) -> str:
    """A scale-bar label: ``2 µm``, ``0.5 µm``, ``500 nm`` under half a micrometre."""
    if length_um < 0.5:
        return f"{length_um * 1000:g} nm"
    return f"{length_um:g} µm"


def add_scale_bar(ax: Any, field_um: float, *, colour: str = "white", fontsize: float = 7) -> float:
    """Draw a scale bar at the lower right of an image drawn with extent (0, 1, 1, 0) over a
    field ``field_um`` micrometres wide; returns its length in micrometres."""
    length = scale_bar_length(field_um)
    frac = length / field_um
    x1, y = 0.95, 0.93
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2, foreground="black")]
    ax.plot([x1 - frac, x1], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
    ax.text(x1 - frac / 2, y - 0.03, format_um(length), color=colour, fontsize=fontsize,
            ha="center", va="bottom", path_effects=outline)  # fmt: skip
    return length


def robust_limits(values: np.ndarray, *, log: bool = False, whisker: float = 3.0) -> tuple:
    """Axis limits that outliers do not set: the quartiles widened by ``whisker`` times the
    interquartile range (on log10 values for a log axis), clipped to the data's range."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if v.size == 0:
        return (1.0, 10.0) if log else (0.0, 1.0)
    t = np.log10(v) if log else v
    q1, q3 = np.percentile(t, (25, 75))
    iqr = max(q3 - q1, 0.05 * max(abs(q3), 1e-12), 1e-6)
    lo, hi = max(t.min(), q1 - whisker * iqr), min(t.max(), q3 + whisker * iqr)
    pad = 0.08 * max(hi - lo, 1e-6)
    lo, hi = lo - pad, hi + pad
    return (10**lo, 10**hi) if log else (lo, hi)


def metrics_figure(full: pd.DataFrame, output: str | Path, object_truth: str = "object") -> None:
    """Per-stage metrics against the signal level: decorrelation resolution (log axis, median
    and interquartile range over the images, outliers beyond the axis marked at its edge) and,
    per kind of truth, PSNR and SSIM (median and interquartile range). One colour and marker
    per stage (:func:`stage_style`), one legend for the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(dict.fromkeys(full["level"]))
    stages = list(dict.fromkeys(full["stage"]))
    per_image = full.drop_duplicates(["level", "stage", "image"])
    panels: list[tuple[str, str, pd.DataFrame, bool]] = [
        ("resolution_nm", "decorrelation resolution (nm, log; lower is finer)", per_image, True)
    ]
    kinds = [k for k in dict.fromkeys(full["truth"]) if k]
    for kind in kinds:
        name = "ground truth" if kinds == [object_truth] else f"{kind} truth"
        scored = full[full["truth"] == kind]
        panels += [
            ("psnr", f"PSNR vs {name} (dB)", scored, False),
            ("ssim", f"SSIM vs {name}", scored, False),
        ]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(5.4 * ncols + 2.2, 4.2 * nrows), squeeze=False)
    axes = [list(grid.ravel()[: len(panels)])]
    for ax in grid.ravel()[len(panels) :]:
        ax.set_visible(False)
    x = np.arange(len(levels), dtype=float)
    offsets = np.linspace(-0.3, 0.3, len(stages)) if len(stages) > 1 else np.zeros(1)
    for ax, (col, title, table, log) in zip(axes[0], panels, strict=True):
        stats = {}
        for stage in stages:
            groups = table[table["stage"] == stage].groupby("level", sort=False)[col]
            q = groups.quantile([0.25, 0.5, 0.75]).unstack() if len(groups) else None
            stats[stage] = [
                q.loc[lv].to_numpy() if q is not None and lv in q.index else np.full(3, np.nan)
                for lv in levels
            ]
        medians = np.array([s[1] for v in stats.values() for s in v])
        lo, hi = robust_limits(medians, log=log)
        for j, stage in enumerate(stages):
            colour, marker = stage_style(j)
            q = np.array(stats[stage])  # (levels, 3)
            xs = x + offsets[j]
            med = q[:, 1]
            inside = (med >= lo) & (med <= hi)
            err = np.vstack([med - q[:, 0], q[:, 2] - med])
            ax.errorbar(xs[inside], med[inside], yerr=err[:, inside], color=colour, marker=marker,
                        ms=5, lw=1, capsize=2, ls="-" if len(levels) > 1 else "none",
                        label=stage)  # fmt: skip
            for xi, m in zip(xs[~inside], med[~inside], strict=True):
                if np.isfinite(m):  # an outlier: a marker at the axis edge with its value
                    edge, va = (hi, "top") if m > hi else (lo, "bottom")
                    ax.plot(xi, edge, marker="^" if m > hi else "v", color=colour, ms=7,
                            clip_on=False)  # fmt: skip
                    ax.annotate(f"{m:.3g}", (xi, edge), fontsize=7, color=colour, va=va,
                                ha="center", xytext=(0, -9 if m > hi else 9),
                                textcoords="offset points")  # fmt: skip
        if log:
            ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.set_xticks(x, levels)
        ax.set_xlim(-0.6, len(levels) - 0.4)
        ax.set_xlabel("signal level")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both" if log else "major")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / fig.get_figwidth(), 1))
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(output).suffix.lstrip(".") or "png")
    plt.close(fig)


def _cell(mean: float, std: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


#: The metrics of the HTML summary: (summary column stem, heading, digits, needs a truth)
SUMMARY_METRICS = (
    ("ssim", "SSIM", 3, True),
    ("psnr", "PSNR (dB)", 2, True),
    ("nrmse", "NRMSE", 3, True),
    ("resolution_nm", "decorrelation resolution (nm)", 0, False),
    ("resolution_gain", "resolution gain over the stage's input", 2, False),
)


def summary_html(summary: pd.DataFrame, output: str | Path, title: str = "metrics") -> None:
    """The summary table as a page of tables (stage by signal level, mean ± std over the
    images), one per metric and kind of truth, for the report's browser view."""
    summary = summary.copy()
    summary["truth"] = summary["truth"].fillna("")
    summary["level"] = summary["level"].astype(str)
    # styles scoped to the wrapper: the page is also embedded in the report's landing page
    css = (
        ".dps-metrics{font-family:sans-serif;font-size:14px}"
        ".dps-metrics table{border-collapse:collapse;margin:0 0 1.5em}"
        ".dps-metrics td,.dps-metrics th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        ".dps-metrics th{background:#f0f0f0}.dps-metrics td:first-child{text-align:left}"
    )
    n_images = ", ".join(str(n) for n in sorted(set(summary["n_images"])))
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{css}</style></head><body><div class='dps-metrics'>",
        f"<h2>{html.escape(title)}</h2><p>Mean ± standard deviation over the test images, per "
        f"stage (rows, in DAG order) and signal level (columns); images per cell: {n_images}.</p>",
    ]
    levels = list(dict.fromkeys(summary["level"]))
    kinds = [k for k in dict.fromkeys(summary["truth"]) if k]
    for stem, heading, digits, needs_truth in SUMMARY_METRICS:
        for kind in kinds if needs_truth else [None]:
            if kind is None:  # one value per image, whichever truth row carries it
                table = summary.drop_duplicates(["level", "stage"])
                name = heading
            else:
                table = summary[summary["truth"] == kind]
                name = f"{heading} against the {kind} truth"
            if f"{stem}_mean" not in table or table[f"{stem}_mean"].isna().all():
                continue
            cells = {(r.stage, r.level): _cell(getattr(r, f"{stem}_mean"),
                                               getattr(r, f"{stem}_std"), digits)
                     for r in table.itertuples()}  # fmt: skip
            rows = list(dict.fromkeys(table["stage"]))
            parts.append(f"<h3>{html.escape(name)}</h3><table><tr><th>stage</th>")
            parts += [f"<th>{html.escape(lv)}</th>" for lv in levels]
            parts.append("</tr>")
            for stage in rows:
                parts.append(f"<tr><td>{html.escape(stage)}</td>")
                parts += [f"<td>{cells.get((stage, lv), '–')}</td>" for lv in levels]
                parts.append("</tr>")
            parts.append("</table>")
    parts.append("</div></body></html>")
    with atomic_path(output) as tmp:
        Path(tmp).write_text("".join(parts), encoding="utf-8")


def palette_distance(colours: Sequence[str] | Mapping[Any, str]) -> float:
    """The smallest Euclidean distance in RGB (0-1 per channel) between two of ``colours``."""
    from matplotlib.colors import to_rgb

    rgb = np.array([to_rgb(c) for c in (colours.values() if isinstance(colours, Mapping)
                                        else colours)])  # fmt: skip
    d = np.sqrt(((rgb[:, None] - rgb[None]) ** 2).sum(-1))
    d[np.diag_indices(len(rgb))] = np.inf
    return float(d.min())
