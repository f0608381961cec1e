"""What every part of the reviewer's page shares: a claim's :class:`Row`, the :class:`Inputs`
the page reads, the verdicts and the reference data's layout, and :func:`_guard` (the rows of
a claim, or one row saying why they could not be computed)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: The verdicts a row may carry.
VERDICTS = ("reproduced", "not reproduced", "not comparable")
#: Levels of the real TIRF-SIM data, low to high signal.
VDL_LEVELS = ("0.1", "0.2", "0.3", "0.4", "0.5", "1", "1.5", "2.5", "3.5", "GT")
VDL_RAW = re.compile(r"vdl-sim-microtubules/raw/(?P<level>[^/]+)/?$")
FIG3A = re.compile(r"dps-fig3a/Fig3a\.tif$")
#: what to download when ../shared/data is absent
DATA_HINT = (
    "put the shared data beside the project, at {data}: vdl-sim-microtubules/ (repository "
    "WenjieLab/Deep-learning-based-real-time-SIM, test/images), dps-fig3a/Fig3a.tif "
    "(WenjieLab/DPS-framework-for-microscopy, test/Fig3a.tif) and decorrelation/ (band-limited "
    "noise and ImDecorr's test image, Ades91/ImDecorr), laid out as ../shared/data/README.md says"
)


@dataclass
class Row:
    """One claim: the paper's number beside ours, a verdict and why."""

    paper: str
    claim: str
    claimed: str
    reproduced: str
    verdict: str
    why: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")
        for name in ("paper", "claim", "claimed", "reproduced", "why"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"row {self.claim!r}: empty {name}")


@dataclass
class Inputs:
    """What the page reads: a results folder, its datasets and the shared data."""

    results: Path
    data: Path
    #: dataset name -> (kind, source) as the config gives them
    datasets: dict[str, tuple[str, str]]
    out: Path
    command: str = ""
    figures: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    def stage(self, ds: str, stage: str, level: str = "input") -> tuple[np.ndarray, dict]:
        from dps_stages.evaluate import stage_images

        return stage_images(self.results / ds / level / f"{stage}.zarr")

    def metrics(self, ds: str) -> pd.DataFrame:
        path = self.results / ds / "metrics.tsv"
        if not path.exists():
            raise FileNotFoundError(f"{path} absent")
        table = pd.read_csv(path, sep="\t", dtype={"level": str, "truth": str})
        table["truth"] = table["truth"].fillna("")
        return table

    def real_levels(self) -> dict[str, str]:
        """Level of the real TIRF-SIM data -> the raw dataset that reads it."""
        out = {}
        for ds, (kind, source) in self.datasets.items():
            m = VDL_RAW.search(str(source).replace(os.sep, "/"))
            if kind == "raw" and m:
                out[m["level"]] = ds
        return {lv: out[lv] for lv in VDL_LEVELS if lv in out}

    def fig3a(self) -> str | None:
        for ds, (kind, source) in self.datasets.items():
            if kind == "sim" and FIG3A.search(str(source).replace(os.sep, "/")):
                return ds
        return None

    def simulated(self) -> str | None:
        return next((ds for ds, (_, s) in self.datasets.items() if s == "simulate"), None)


def _not_computed(paper: str, claim: str, claimed: str, why: str) -> Row:
    return Row(paper, claim, claimed, "not computed (see why)", "not comparable", why)


def _guard(paper: str, claim: str, claimed: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """The rows of ``fn``, or one row saying why they could not be computed."""
    try:
        return fn()
    except KeyError as err:
        return [_not_computed(paper, claim, claimed, f"{err} absent from the results")]
    except FileNotFoundError as err:
        why = f"{err.filename} absent" if err.filename else str(err)
        return [_not_computed(paper, claim, claimed, why)]
    except (ValueError, OSError) as err:
        return [_not_computed(paper, claim, claimed, str(err) or type(err).__name__)]
