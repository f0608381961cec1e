"""The evaluation stage: every stage's output against ground truth and by its own resolution.

For each image of each stage: PSNR, SSIM and NRMSE against every ground truth of the same
grid (1x camera grid, 2x SIM grid, 4x) under the protocol of :func:`dps_stages.metrics.compare`,
one row per truth, the column ``truth`` naming its kind (``object``; ``sim_passband``, the
object through the ideal SIM passband, where the store holds it; empty where no truth
exists; naming in :func:`find_truths` and docs/metrics.md); the decorrelation resolution
(Descloux et al., Nature Methods 2019), which needs none; and the resolution gain over the
stage's input,
``gain = resolution(input) / resolution(stage)`` (> 1 means finer). Where the decorrelation
peak sits at the sampling limit (kc >= 0.95) the row is flagged ``grid_limited``: the figure
then says more about the pixel grid than about the image.

A raw-frame stage (n, 9, y, x) is evaluated on the mean of its 9 frames: the widefield image
that those frames amount to. An image larger than ``max_region`` (4096 by default) is scored
on its centred region of that size, read alone from the store (column ``region``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import zarr

from dps_stages import io
from dps_stages.metrics import compare, decorrelation

if TYPE_CHECKING:
    import dask.array as da

#: The object's truths, one per grid (block means of the object on the 4x grid).
TRUTH_ARRAYS = ("truth_1x", "truth_2x", "truth_4x")
#: The kind of truth of an array named ``truth_<grid>``.
OBJECT_TRUTH = "object"
#: A truth array's name: ``truth_<grid>`` (the object) or ``truth_<grid>_<kind>``.
TRUTH_NAME = re.compile(r"^truth_(?P<grid>\d+x)(?:_(?P<kind>[A-Za-z0-9_]+))?$")
COLUMNS = [
    "level", "stage", "input", "image", "structure", "grid", "truth", "pixel_size_nm",
    "psnr", "ssim", "nrmse", "kc", "grid_limited", "resolution_px", "resolution_nm",
    "input_resolution_nm", "resolution_gain", "region",
]  # fmt: skip
#: The largest region (pixels along y and x) evaluated: a larger image is scored on its
#: centre, so that memory and time stay bounded (a 32768² output's decorrelation analysis
#: alone would need tens of GB). The table's ``region`` column says what was scored.
MAX_REGION = 4096
#: kc at or above this (normalised frequency, 1 = Nyquist) means the decorrelation curve
#: peaks at the sampling limit: the figure is the grid's, not the image's resolution (typical
#: of deconvolved or sparse outputs whose spectrum is not band-limited by the optics).
GRID_LIMIT_KC = 0.95


@dataclass(frozen=True)
class Truth:
    """A ground-truth array of a simulated store: its name, grid (``2x``) and kind."""

    name: str
    grid: str
    kind: str


def find_truths(group: zarr.Group) -> list[Truth]:
    """The truth arrays of a store, object truths first (in :data:`TRUTH_ARRAYS` order).

    An array ``truth_<grid>`` is the object on that grid; ``truth_<grid>_<kind>`` another
    truth (e.g. ``truth_2x_sim_passband``). The array attributes ``grid`` and ``truth``, when
    present, take precedence over the name. Raises ValueError for a ``truth_*`` array whose
    grid cannot be told, or for two truths of the same kind on one grid.
    """
    names = [n for n in group.array_keys() if n.startswith("truth_")]
    names.sort(key=lambda n: (TRUTH_ARRAYS.index(n) if n in TRUTH_ARRAYS else len(TRUTH_ARRAYS), n))
    truths: list[Truth] = []
    for name in names:
        attrs = dict(group[name].attrs)
        match = TRUTH_NAME.match(name)
        grid = attrs.get("grid") or (match and match["grid"])
        kind = attrs.get("truth") or (match and match["kind"]) or OBJECT_TRUTH
        if not grid:
            raise ValueError(
                f"truth array {name!r}: name it truth_<grid>[_<kind>] (e.g. truth_2x_sim_passband)"
                " or give it the attributes 'grid' and 'truth'"
            )
        if any(t.grid == grid and t.kind == kind for t in truths):
            raise ValueError(f"two truths of kind {kind!r} on grid {grid}: {name!r} and another")
        truths.append(Truth(name, str(grid), str(kind)))
    return truths


def stage_stack(path: str | Path) -> tuple[da.Array, dict]:
    """A stage's images as a lazy (n, y, x) float32 dask array (frame stacks averaged) and
    its attributes: nothing is read until an image (or a region of one) is computed."""
    arr, attrs = io.open_stage(path)
    images = arr.astype(np.float32)
    if images.ndim == 4:
        images = images.mean(axis=1)
    elif images.ndim == 2:
        images = images[None]
    return images, attrs


def stage_images(path: str | Path) -> tuple[np.ndarray, dict]:
    """A stage's images as (n, y, x) float32 in memory (frame stacks averaged), and its
    attributes; :func:`stage_stack` for images too large to hold."""
    images, attrs = stage_stack(path)
    return np.asarray(images), attrs


def centre_region(shape: tuple[int, ...], max_px: int | None) -> tuple[slice, slice]:
    """The centred region of at most ``max_px`` pixels along y and x (all of a smaller
    image; all of any image when ``max_px`` is None)."""
    out = []
    for n in shape[-2:]:
        m = n if max_px is None else min(n, int(max_px))
        out.append(slice((n - m) // 2, (n - m) // 2 + m))
    return out[0], out[1]


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
    max_region: int | None = MAX_REGION,
) -> pd.DataFrame:
    """Metrics of every image of every stage at one signal level, one row each.

    Parameters
    ----------
    stages : (name, zarr path, input stage name or None)
        In DAG order: a stage's input must come before it.
    truth_store : simulated Zarr group with truth arrays (:func:`find_truths`), or None for
        real data. A stage is scored against every truth of its images' shape, one row per
        (truth, image); a stage without one gets one row per image, ``truth`` empty.
    max_region : an image larger than this along y or x is scored on its centred region of
        this size (:func:`centre_region`; column ``region``), read alone from the store;
        None scores every image whole.
    """
    # image shape -> [(kind, lazy truth images)], and the grid name of that shape
    truths: dict[tuple[int, int], list[tuple[str, zarr.Array]]] = {}
    grids: dict[tuple[int, int], str] = {}
    structures: list[str] | None = None
    if truth_store is not None:
        group = io.open_group(truth_store)
        structures = list(group.attrs.get("structures", []))
        for t in find_truths(group):
            arr = group[t.name]
            shape = arr.shape[-2:]
            if grids.setdefault(shape, t.grid) != t.grid:
                raise ValueError(
                    f"{truth_store}: {t.name} (grid {t.grid}) has the shape of grid {grids[shape]}"
                )
            truths.setdefault(shape, []).append((t.kind, arr))

    rows: list[dict] = []
    resolution: dict[str, list[float]] = {}
    for name, path, input_name in stages:
        images, attrs = stage_stack(path)
        pixel_size = attrs.get("pixel_size")
        stage_truths = truths.get(images.shape[-2:], [("", None)])
        res_list = []
        per_truth: list[list[dict]] = [[] for _ in stage_truths]
        ys, xs = centre_region(images.shape, max_region)
        whole = (ys.stop - ys.start, xs.stop - xs.start) == tuple(images.shape[-2:])
        region = "full" if whole else f"centre {ys.stop - ys.start}x{xs.stop - xs.start}"
        for i in range(images.shape[0]):
            image = np.asarray(images[i, ys, xs])
            row: dict = {
                "level": level, "stage": name, "input": input_name or "", "image": i,
                "structure": structures[i] if structures and i < len(structures) else "",
                "grid": grids.get(images.shape[-2:], ""), "pixel_size_nm": pixel_size,
                "region": region,
            }  # fmt: skip
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
            for rows_of_truth, (kind, truth) in zip(per_truth, stage_truths, strict=True):
                scored = {**row, "truth": kind}
                if truth is not None:
                    scored.update(compare(image, np.asarray(truth[i, ys, xs], np.float32)))
                rows_of_truth.append(scored)
        for rows_of_truth in per_truth:
            rows.extend(rows_of_truth)
        resolution[name] = res_list
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def summarise(
    tables: Sequence[str | Path],
    output: str | Path,
    summary_output: str | Path,
    figure: str | Path,
    summary_html_output: str | Path | None = None,
) -> None:
    """Merge per-level tables into one; write the mean per (level, stage, truth), a figure
    (:func:`dps_stages.figures.metrics_figure`: the decorrelation resolution and, per kind of
    truth, PSNR and SSIM) and, given ``summary_html_output``, the summary as HTML tables.
    """
    from dps_stages.plotting import metrics_figure, summary_html

    frames = [pd.read_csv(t, sep="\t", dtype={"level": str, "truth": str}) for t in tables]
    full = pd.concat(frames, ignore_index=True)
    if "truth" not in full:  # a table from before truths had kinds: one truth per grid
        full.insert(full.columns.get_loc("grid") + 1, "truth", OBJECT_TRUTH)
        full.loc[full["psnr"].isna(), "truth"] = ""
    full["truth"] = full["truth"].fillna("")
    with io.atomic_path(output) as tmp:
        full.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    metrics = ["psnr", "ssim", "nrmse", "resolution_nm", "resolution_gain"]
    keys = ["level", "stage", "truth"]
    groups = full.groupby(keys, sort=False)
    summary = groups[metrics].agg(["mean", "std"]).reset_index()
    summary.columns = [
        "_".join(c for c in col if c) if isinstance(col, tuple) else col for col in summary.columns
    ]
    summary.insert(len(keys), "n_images", groups.size().values)
    summary["grid_limited_fraction"] = groups["grid_limited"].mean().values
    with io.atomic_path(summary_output) as tmp:
        summary.to_csv(tmp, sep="\t", index=False, float_format="%.4g")

    metrics_figure(full, figure, object_truth=OBJECT_TRUTH)
    if summary_html_output is not None:
        summary_html(summary, summary_html_output, title=f"metrics: {Path(output).parent.name}")
