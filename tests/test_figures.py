"""Tests of the report's figure helpers: palette, scale bars, stage groups, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dps_stages.figures import STAGE_GROUPS, group_stages
from dps_stages.plotting import (
    MARKERS,
    PALETTE,
    add_scale_bar,
    format_um,
    metrics_figure,
    palette_distance,
    robust_limits,
    scale_bar_length,
    stage_style,
    summary_html,
)

#: the stages of a raw dataset, in DAG order (workflow/rules/common.smk, stage_chain)
RAW_STAGES = [
    "widefield", "raw_bg", "widefield_bg", "widefield_rl", "widefield_sparse",
    "widefield_rl_id", "sim_wiener", "sim_sparse", "raw_dn", "sim_dn_wiener", "sim_dps",
    "sim_oidn", "sim_ar", "sim_ar_bg", "sim_dbpn",
]  # fmt: skip


def test_fifteen_stages_get_fifteen_colours_far_apart():
    colours = [stage_style(i)[0] for i in range(len(RAW_STAGES))]
    assert len(set(colours)) == 15 and len(PALETTE) >= 15
    # no two alike: at least 0.15 apart in RGB (tab10 cycled gives 0 for its repeats)
    assert palette_distance(colours) > 0.15
    # colour and marker together stay unique far beyond the palette
    n = len(PALETTE) * len(MARKERS)
    assert len({stage_style(i) for i in range(n)}) == n


@pytest.mark.parametrize(
    ("field", "length", "label"),
    [(33.28, 5.0, "5 µm"), (16.64, 2.0, "2 µm"), (4.0, 1.0, "1 µm"), (1.5, 0.2, "200 nm"),
     (100.0, 20.0, "20 µm")],
)  # fmt: skip
def test_scale_bar_is_round_and_at_most_a_quarter_of_the_field(field, length, label):
    got = scale_bar_length(field)
    assert got == pytest.approx(length) and got <= field / 4
    assert format_um(got) == label


def test_scale_bar_is_drawn_at_its_length():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((8, 8)), extent=(0, 1, 1, 0))
    length = add_scale_bar(ax, 20.0)  # a 20 µm field: a 5 µm bar, a quarter of the width
    xs = ax.lines[-1].get_xdata()
    assert length == 5.0 and xs[1] - xs[0] == pytest.approx(0.25)
    plt.close(fig)


def test_stage_groups_cover_the_chain_in_small_figures():
    groups = group_stages(RAW_STAGES)
    assert list(groups) == list(STAGE_GROUPS)
    assert sorted(s for g in groups.values() for s in g) == sorted(RAW_STAGES)
    assert max(len(g) for g in groups.values()) <= 4
    assert group_stages(["sim", "sim_bg", "new_stage"]) == {
        "inputs": ["sim", "sim_bg"],
        "other": ["new_stage"],
    }


def test_robust_limits_leave_an_outlier_out():
    values = np.array([100.0, 110, 120, 130, 140, 1171])
    lo, hi = robust_limits(values, log=True)
    assert lo < 100 and 140 < hi < 1171
    assert robust_limits(values[:-1]) == pytest.approx(robust_limits(values[:-1], whisker=99))


def _summary_and_table():
    rows = []
    for level in ("50", "500"):
        for j, stage in enumerate(("widefield", "sim_wiener")):
            for image in range(2):
                res = 200 - 80 * j + (900 if image and j else 0)  # one outlier
                rows.append({"level": level, "stage": stage, "image": image, "truth": "object",
                             "psnr": 20 + j + image, "ssim": 0.5 + 0.1 * j,
                             "resolution_nm": res})  # fmt: skip
    full = pd.DataFrame(rows)
    g = full.groupby(["level", "stage", "truth"], sort=False)
    summary = g[["psnr", "ssim", "resolution_nm"]].agg(["mean", "std"]).reset_index()
    summary.columns = ["_".join(c for c in col if c) for col in summary.columns]
    summary.insert(3, "n_images", g.size().values)
    return full, summary


def test_summary_html_has_one_table_per_metric_with_every_cell(tmp_path):
    full, summary = _summary_and_table()
    out = tmp_path / "s.html"
    summary_html(summary, out)
    html = out.read_text()
    assert html.count("<table>") == 3  # SSIM, PSNR, resolution (no NRMSE, no gain)
    assert "0.600 ± 0.000" in html and "–" not in html


def test_metrics_figure_uses_a_log_resolution_axis(tmp_path):
    full, _ = _summary_and_table()
    out = tmp_path / "m.png"
    metrics_figure(full, out)
    assert out.stat().st_size > 0
