"""Shared loading for the issue-12 item-5 analysis (the classical anomaly on real TIRF-SIM).

Reproduces what the DAG does for `benchmarks/configs/real_data.yaml` with dps_stages calls:
import (float32) -> `dps background --radius 50` on each of the 9 frames -> `dps
sim-reconstruct` (Optics 670 nm, NA 1.49, 60 nm, modulation factor 1.9; wiener auto x 6,
otf_decay 0.1, local_wiener 1.5) -> metrics.compare against reference/TIRF_SIM_640_1.tif.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from dps_stages.background import subtract_background_tiled
from dps_stages.optics import Optics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vdl-sim-microtubules"
CACHE = Path(os.environ.get("ANOMALY_CACHE", "benchmarks/out/anomaly_cache"))
LEVELS = ("0.1", "0.2", "0.3", "0.4", "0.5", "1", "1.5", "2.5", "3.5", "GT")
OPTICS = Optics(wavelength=670.0, na=1.49, pixel_size=60.0, modulation_factor=1.9)
SIM_KW = {"wiener": "auto", "wiener_factor": 6.0, "otf_decay": 0.1, "local_wiener": 1.5}
RADIUS = 50.0
TILE = 1024


def raw(level: str) -> np.ndarray:
    """The 9 raw frames of a level, float32 (9, 512, 512), angle-major."""
    files = [DATA / "raw" / level / f"640-1_{i}.tiff" for i in range(1, 10)]
    return np.stack([tifffile.imread(f) for f in files]).astype(np.float32)


def raw_bg(level: str) -> np.ndarray:
    """The rolling-ball background-subtracted frames as the DAG's `background` rule makes
    them (radius 50, tile 1024), cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"raw_bg_{level}.npy"
    if path.exists():
        return np.load(path)
    out = np.asarray(subtract_background_tiled(raw(level)[None], RADIUS, tile=TILE))[0]
    out = out.astype(np.float32)
    np.save(path, out)
    return out


def reference() -> np.ndarray:
    return tifffile.imread(DATA / "reference" / "TIRF_SIM_640_1.tif").astype(np.float32)


def widefield_reference() -> np.ndarray:
    return tifffile.imread(DATA / "reference" / "Widefield_640_1.tif").astype(np.float32)


def vdl(level: str) -> np.ndarray:
    return tifffile.imread(DATA / "vdl-sim-output" / f"{level}.tif").astype(np.float32)
