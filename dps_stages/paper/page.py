"""The page itself: versions and machine (provenance), every row, and ``index.md``,
``index.html``, ``claims.tsv`` and ``real_tirf_sim.tsv`` (:func:`build_page`)."""

from __future__ import annotations

import datetime
import html
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dps_stages.paper.base import DATA_HINT, VERDICTS, Inputs, Row
from dps_stages.paper.claims import decorrelation_rows, dps_rows, oidn_rows, psfid_rows
from dps_stages.paper.real import real_figure, real_table, vdl_rows

PACKAGES = ("dps-stages", "numpy", "scipy", "scikit-image", "torch", "pandas", "zarr",
            "matplotlib", "snakemake")  # fmt: skip


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores, {cpu}, {platform.system()} {platform.machine()}"


def all_rows(inp: Inputs) -> list[Row]:
    return (
        dps_rows(inp) + oidn_rows(inp) + psfid_rows(inp) + decorrelation_rows(inp) + vdl_rows(inp)
    )


COLUMNS = ("paper", "claim", "claimed", "reproduced", "verdict", "why")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def build_page(inp: Inputs) -> list[Row]:
    """Compute every row and figure, and write ``index.md``, ``index.html``, ``claims.tsv``
    and ``real_tirf_sim.tsv`` under ``inp.out``. Returns the rows."""
    inp.out.mkdir(parents=True, exist_ok=True)
    rows = all_rows(inp)
    real_md = ""
    try:
        table = real_table(inp)
        if not table.empty:
            table.to_csv(inp.out / "real_tirf_sim.tsv", sep="\t")
            real_md = _md_table(["level", *table.columns],
                                [[lv, *table.loc[lv]] for lv in table.index])  # fmt: skip
            inp.figures += [p.name for p in real_figure(inp, "GT" if "GT" in table.index
                                                        else table.index[-1])]  # fmt: skip
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:
        real_md = f"Not computed: {err}"
    if not real_md:
        real_md = ("Not computed: no dataset of this config reads vdl-sim-microtubules/raw/"
                   "<level> (benchmarks/configs/real_data.yaml does).")  # fmt: skip
    pd.DataFrame([r.__dict__ for r in rows]).to_csv(inp.out / "claims.tsv", sep="\t", index=False)
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    provenance = [
        f"command: `{inp.command or 'dps paper'}`",
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"machine: {machine()}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"results read: `{inp.results}`; shared data: `{inp.data}` "
        + (
            "(present)"
            if inp.data.is_dir()
            else "(ABSENT: " + DATA_HINT.format(data=inp.data) + ")"
        ),  # fmt: skip
        "data provenance: real TIRF-SIM of microtubules, nine signal levels, reference and "
        "VDL-SIM outputs from WenjieLab/Deep-learning-based-real-time-SIM (test/images); Fig. 3a "
        "from WenjieLab/DPS-framework-for-microscopy (test/Fig3a.tif); decorrelation reference "
        "images and kc from Ades91/ImDecorr (see ../shared/data/README.md)",
        f"verdicts: {', '.join(f'{n} {v}' for v, n in counts.items())}",
    ]
    md = ["# The papers' claims beside this code's numbers", ""]
    md += [f"- {p}" for p in provenance]
    md += [
        "",
        "## Claims",
        "",
        _md_table(list(COLUMNS), [[getattr(r, c) for c in COLUMNS] for r in rows]),
    ]
    md += [
        "",
        "## Real TIRF-SIM: every stage at every level",
        "",
        "SSIM against reference/TIRF_SIM_640_1.tif after registration (unregistered in "
        "brackets); 4x outputs block-averaged to the reference grid.",
        "",
        real_md,
    ]
    md += ["", "## Figures", ""]
    md += [f"- [{f}]({f})" for f in inp.figures] or ["- none computed (see the rows above)"]
    (inp.out / "index.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (inp.out / "index.html").write_text(_html(rows, provenance, real_md, inp.figures),
                                        encoding="utf-8")  # fmt: skip
    return rows


def _md_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(str(c)) for c in row) + " |" for row in body]
    return "\n".join(lines)


_VERDICT_COLOUR = {"reproduced": "#d8f0d8", "not reproduced": "#f6d5d5",
                   "not comparable": "#eeeeee"}  # fmt: skip


def _html(rows: list[Row], provenance: list[str], real_md: str, figures: list[str]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dps: the papers' claims"
        "</title><style>body{font-family:sans-serif;max-width:1400px;margin:auto;"
        "font-size:14px}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
        "padding:4px 6px;vertical-align:top}th{background:#eee}img{max-width:100%}"
        "</style></head><body><h1>The papers' claims beside this code's numbers</h1><ul>"
    ]
    parts += [f"<li>{e(p).replace('`', '')}</li>" for p in provenance]
    parts.append("</ul><h2>Claims</h2><table><tr>")
    parts += [f"<th>{c}</th>" for c in COLUMNS]
    parts.append("</tr>")
    for r in rows:
        colour = _VERDICT_COLOUR[r.verdict]
        parts.append("<tr>" + "".join(
            f"<td style='background:{colour}'>{e(str(getattr(r, c)))}</td>" if c == "verdict"
            else f"<td>{e(str(getattr(r, c)))}</td>" for c in COLUMNS) + "</tr>")  # fmt: skip
    parts.append("</table><h2>Real TIRF-SIM: every stage at every level</h2>")
    if real_md.startswith("|"):
        lines = [ln for ln in real_md.splitlines() if not ln.startswith("|---")]
        cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
        parts.append("<p>SSIM against reference/TIRF_SIM_640_1.tif after registration "
                     "(unregistered in brackets).</p><table>")  # fmt: skip
        parts.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in cells[0]) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in cells[1:]]
        parts.append("</table>")
    else:
        parts.append(f"<p>{e(real_md)}</p>")
    parts.append("<h2>Figures</h2>")
    for f in figures:
        if f.endswith(".png"):
            pdf = f[:-4] + ".pdf"
            parts.append(f"<p><a href='{e(pdf)}'>{e(pdf)}</a><br><img src='{e(f)}'></p>")
    if not any(f.endswith(".png") for f in figures):
        parts.append("<p>none computed (see the rows above)</p>")
    parts.append("</body></html>")
    return "".join(parts)
