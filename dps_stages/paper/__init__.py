"""The reviewer's page: the papers' claims beside what this code reproduces.

:func:`build_page` reads what the workflow computed (a results folder: the stages of every
dataset, their metrics tables, the trained models) and the shared reference data
(``../shared/data`` beside the project; its README names the sources), and writes
``index.md`` and ``index.html`` with one row per claim: the paper's number, ours, a verdict
(:data:`VERDICTS`) and why, plus the figures (PDF and PNG, scale bars in micrometres) and the
real TIRF-SIM table (every stage at every level beside the published VDL-SIM output).

Papers: DPS (Ye et al., Intelligent Computing 2024, doi:10.34133/icomputing.0082), OIDN (Jin
et al., Optics Express 32(21), 2024), PSF identification (Nguyen, Sarron, Escande & Weiss),
decorrelation analysis (Descloux, Grussmayer & Radenovic, Nature Methods 16, 2019), VDL-SIM
(Advanced Imaging 1, 011001, 2024: the real data and its published outputs).

No number here is typed in from our own results: every "reproduced" cell is computed when
the page is built; the claimed numbers are the papers' (and the data README's).

Modules: :mod:`~dps_stages.paper.base` (rows, inputs, verdicts), :mod:`~dps_stages.paper.claims`
(DPS, OIDN, PSF identification, decorrelation), :mod:`~dps_stages.paper.real` (the real
TIRF-SIM data) and :mod:`~dps_stages.paper.page` (provenance, ``index.md``, ``index.html``).
"""

from dps_stages.paper.base import DATA_HINT, FIG3A, VDL_LEVELS, VDL_RAW, VERDICTS, Inputs, Row
from dps_stages.paper.claims import (
    DCORR,
    DPS,
    DPS_GAIN,
    KC_TOLERANCE,
    OIDN,
    PSFID,
    PSFID_PSNR,
    REFERENCE_KC,
    decorrelation_rows,
    dps_rows,
    fig3a_figure,
    line_profiles,
    oidn_learned_psf,
    oidn_rows,
    psfid_rows,
)
from dps_stages.paper.page import COLUMNS, PACKAGES, all_rows, build_page, machine, versions
from dps_stages.paper.real import (
    REAL_STAGES,
    VDL,
    VDL_PUBLISHED,
    real_figure,
    real_table,
    vdl_rows,
)

__all__ = [
    "COLUMNS",
    "DATA_HINT",
    "DCORR",
    "DPS",
    "DPS_GAIN",
    "FIG3A",
    "KC_TOLERANCE",
    "OIDN",
    "PACKAGES",
    "PSFID",
    "PSFID_PSNR",
    "REAL_STAGES",
    "REFERENCE_KC",
    "oidn_learned_psf",
    "VDL",
    "VDL_LEVELS",
    "VDL_PUBLISHED",
    "VDL_RAW",
    "VERDICTS",
    "Inputs",
    "Row",
    "all_rows",
    "build_page",
    "decorrelation_rows",
    "dps_rows",
    "fig3a_figure",
    "line_profiles",
    "machine",
    "oidn_rows",
    "psfid_rows",
    "real_figure",
    "real_table",
    "vdl_rows",
    "versions",
]
