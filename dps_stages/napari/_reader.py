"""napari reader: a run's stages as image layers at their pixel size, with their metrics.

A stage's physical grid is the NGFF ``scale`` of its full-resolution level (micrometres on
y and x, as :func:`dps_stages.io.write_ome_zarr` writes it); a collection of fields of view
(bioformats2raw layout) is opened as one layer with a leading ``image`` axis of scale 1. A
Zarr intermediate gives its pixel size in nm (attribute ``pixel_size``): scale = nm / 1000.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zarr

from dps_stages import io

LayerData = tuple[Any, dict[str, Any], str]
STAGE_SUFFIXES = (".ome.zarr", ".zarr")
#: where a results folder's stages lie below it: a run, a dataset, a level, a `final` folder
FINAL_PATTERNS = ("*/*/final/*.ome.zarr", "*/final/*.ome.zarr", "final/*.ome.zarr", "*.ome.zarr")


def get_reader(path: str | os.PathLike | Sequence[str]) -> Callable[..., list[LayerData]] | None:
    """The reader for ``path`` (napari's ``get_reader`` hook): a Zarr store, or a folder
    holding final stages (``*/final/*.ome.zarr`` at most three levels down); None otherwise."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if paths and all(_is_stage(Path(p)) or _final_stages(Path(p)) for p in paths):
        return read_results
    return None


def read_results(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """One image layer per stage of ``path``: a stage's store, or every final stage of a
    results folder (sorted by dataset, level, stage)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[LayerData] = []
    for p in map(Path, paths):
        stages = [p] if _is_stage(p) else _final_stages(p)
        layers.extend(read_stage(s) for s in stages)
    return layers


def read_stage(path: str | os.PathLike) -> LayerData:
    """A stage's output as napari layer data ``(dask array, kwargs, "image")``.

    Name ``<dataset>/<level>/<stage>`` when the store sits in a run's results
    (``<ds>/<level>/final/<stage>.ome.zarr`` or ``<ds>/<level>/<stage>.zarr`` beside a
    ``<ds>/metrics.tsv``), else the store's name without its suffix. Metadata: the project's
    attributes (``dps``), the pixel size in nm, and the stage's rows of the dataset's
    ``metrics.tsv`` and ``metrics_summary.tsv`` (lists of dicts; empty when absent).
    """
    path = Path(path)
    data, attrs = io.open_stage(path)
    axes, scale, units = _grid(path, data.ndim, attrs.get("pixel_size"))
    ds, level, stage = _position(path)
    name = f"{ds}/{level}/{stage}" if ds else stage
    metadata: dict[str, Any] = {
        "path": str(path),
        "dataset": ds,
        "level": level,
        "stage": stage,
        "pixel_size_nm": attrs.get("pixel_size"),
        "dps": attrs,
        "metrics": [],
        "metrics_summary": [],
    }
    if ds:
        ds_dir = _level_dir(path).parent
        metadata["metrics"] = _stage_rows(ds_dir / "metrics.tsv", level, stage)
        if not metadata["metrics"]:  # the level's own table, before the dataset's is made
            metadata["metrics"] = _stage_rows(ds_dir / level / "metrics.tsv", level, stage)
        metadata["metrics_summary"] = _stage_rows(ds_dir / "metrics_summary.tsv", level, stage)
    kwargs = {
        "name": name,
        "scale": scale,
        "units": units,
        "axis_labels": axes,
        "metadata": metadata,
    }
    return data, kwargs, "image"


def _is_stage(path: Path) -> bool:
    return path.name.endswith(STAGE_SUFFIXES) and io.is_zarr(path)


def _final_stages(path: Path) -> list[Path]:
    """The final stages under a results folder (a run, a dataset, a level or ``final``)."""
    if not path.is_dir() or io.is_zarr(path):
        return []
    for pattern in FINAL_PATTERNS:
        found = sorted(p for p in path.glob(pattern) if io.is_zarr(p))
        if found:
            return found
    return []


def _level_dir(path: Path) -> Path:
    return path.parent.parent if path.parent.name == "final" else path.parent


def _position(path: Path) -> tuple[str | None, str | None, str]:
    """(dataset, level, stage) of a stage's store in a run's results, or (None, None, name)."""
    stage = next(path.name[: -len(s)] for s in STAGE_SUFFIXES if path.name.endswith(s))
    level_dir = _level_dir(path)
    if path.parent.name == "final" or (level_dir.parent / "metrics.tsv").is_file():
        return level_dir.parent.name, level_dir.name, stage
    return None, None, stage


def _grid(
    path: Path, ndim: int, pixel_size: float | None
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]]:
    """Axis names, scale and units of the layer: the NGFF axes and full-resolution scale of an
    OME-Zarr (a collection's first image, behind a leading ``image`` axis), else ``y x`` at
    ``pixel_size`` nm (as µm) behind unit-scale leading axes."""
    node = zarr.open(str(path), mode="r")
    ome = io.ome_attrs(dict(node.attrs)) if isinstance(node, zarr.Group) else {}
    lead: list[str] = []
    if "bioformats2raw.layout" in ome:
        lead = ["image"]
        ome = io.ome_attrs(dict(node[io.ome_series(node)[0]].attrs))
    multiscales = ome.get("multiscales")
    if multiscales:
        ms = multiscales[0]
        transforms = ms["datasets"][0].get("coordinateTransformations", [])
        scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), None)
        axes = [a["name"] if isinstance(a, dict) else a for a in ms["axes"]]
        units = [(a.get("unit") if isinstance(a, dict) else None) or "pixel" for a in ms["axes"]]
        if scale is not None and len(lead) + len(axes) == ndim:
            return (
                tuple(lead + axes),
                tuple([1.0] * len(lead) + [float(s) for s in scale]),
                tuple(["pixel"] * len(lead) + units),
            )
    names = tuple(f"axis {i}" for i in range(ndim - 2)) + ("y", "x")
    if pixel_size:
        um = float(pixel_size) / 1e3
        return names, (1.0,) * (ndim - 2) + (um, um), ("pixel",) * (ndim - 2) + ("micrometer",) * 2
    return names, (1.0,) * ndim, ("pixel",) * ndim


def _stage_rows(table: Path, level: str | None, stage: str) -> list[dict[str, Any]]:
    """The rows of a metrics table (TSV) for one level and stage, NaN as None."""
    if not table.is_file():
        return []
    import pandas as pd

    df = pd.read_csv(table, sep="\t", dtype={"level": str})
    if "stage" not in df.columns:
        return []
    keep = df["stage"].astype(str) == stage
    if level is not None and "level" in df.columns:
        keep &= df["level"] == str(level)
    rows = df[keep].to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]
