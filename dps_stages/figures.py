"""Figures for the report: each stage's images side by side with the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dps_stages import io
from dps_stages.evaluate import OBJECT_TRUTH, find_truths, stage_images
from dps_stages.metrics import normalise_percentile


def stage_panel(
    stages: Sequence[tuple[str, Path]],
    truth_store: str | Path | None,
    level: str,
    output: str | Path,
    *,
    n_images: int = 4,
) -> None:
    """A grid of images: one row per image, one column per stage, the 2x truths last
    (the object's, then any other kind the store holds, e.g. the SIM-passband truth).

    Each panel is normalised to its own 0.1 and 99.9 percentiles (the metrics' protocol) and
    drawn over the same field of view, whatever its grid (1x, 2x, 4x).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns: list[tuple[str, np.ndarray]] = []
    for name, path in stages:
        images, _ = stage_images(path)
        columns.append((name, images[:n_images]))
    structures: list[str] = []
    if truth_store is not None:
        group = io.open_group(truth_store)
        structures = list(group.attrs.get("structures", []))
        for t in find_truths(group):
            if t.grid == "2x":
                label = "ground truth" if t.kind == OBJECT_TRUTH else f"{t.kind} truth"
                columns.append((f"{label} (2x)", np.asarray(group[t.name][:n_images])))
    rows = min(len(c[1]) for c in columns)
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(2.2 * len(columns), 2.2 * rows + 0.4), squeeze=False
    )
    for j, (name, images) in enumerate(columns):
        for i in range(rows):
            ax = axes[i][j]
            ax.imshow(normalise_percentile(images[i]), cmap="magma", extent=(0, 1, 1, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0 and i < len(structures):
                ax.set_ylabel(structures[i], fontsize=9)
    fig.suptitle(f"signal level {level}", fontsize=10)
    fig.tight_layout()
    with io.atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
