"""Tests of dps_stages.evaluate: every stage against every truth of its grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import ndimage

from dps_stages import io
from dps_stages.evaluate import (
    OBJECT_TRUTH,
    evaluate_level,
    find_truths,
    summarise,
)
from dps_stages.figures import stage_panel
from dps_stages.metrics import compare

N, SIZE = 2, 24  # images, camera grid
FAST = {"n_r": 30, "n_g": 5}


def make_objects(rng: np.random.Generator) -> np.ndarray:
    """Sparse bright points on the 4x grid, (N, 4 SIZE, 4 SIZE)."""
    obj = np.zeros((N, 4 * SIZE, 4 * SIZE), np.float32)
    for k in range(N):
        idx = rng.integers(4, 4 * SIZE - 4, size=(40, 2))
        obj[k, idx[:, 0], idx[:, 1]] = rng.uniform(0.5, 1.0, 40)
    return ndimage.gaussian_filter(obj, (0, 1.0, 1.0))


def bin_mean(x: np.ndarray, f: int) -> np.ndarray:
    n, h, w = x.shape
    return x.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4))


def build(tmp_path: Path, *, with_passband: bool, seed: int = 0) -> dict[str, Path]:
    """A simulated store (object truths, optionally a 2x SIM-passband truth) and two stages:
    a noisy widefield image on the 1x grid and a SIM-like image on the 2x grid, which is the
    passband truth plus a little noise."""
    rng = np.random.default_rng(seed)
    obj = make_objects(rng)
    t2 = bin_mean(obj, 2)
    arrays = {"truth_4x": obj, "truth_2x": t2, "truth_1x": bin_mean(obj, 4)}
    passband = ndimage.gaussian_filter(t2, (0, 1.5, 1.5)).astype(np.float32)
    if with_passband:
        arrays["truth_2x_sim_passband"] = passband
    store = io.write_group(
        tmp_path / "test.zarr", arrays, {"structures": ["dots"] * N, "pixel_size": 65.0}
    )
    wf = ndimage.gaussian_filter(arrays["truth_1x"], (0, 1.2, 1.2))
    wf = wf + 0.02 * wf.max() * rng.standard_normal(wf.shape)
    sim = passband + 0.01 * passband.max() * rng.standard_normal(passband.shape)
    return {
        "store": store,
        "wf": io.write_stage(tmp_path / "wf.zarr", wf, {"pixel_size": 65.0}),
        "sim": io.write_stage(tmp_path / "sim.zarr", sim, {"pixel_size": 32.5}),
    }


def stages(paths: dict[str, Path]) -> list[tuple[str, Path, str | None]]:
    return [("wf", paths["wf"], None), ("sim", paths["sim"], "wf")]


def test_two_truths_on_the_2x_grid_give_two_rows_per_image(tmp_path):
    paths = build(tmp_path, with_passband=True)
    table = evaluate_level(stages(paths), paths["store"], "100", **FAST)
    wf = table[table["stage"] == "wf"]
    sim = table[table["stage"] == "sim"]
    assert len(wf) == N and set(wf["truth"]) == {OBJECT_TRUTH} and set(wf["grid"]) == {"1x"}
    assert len(sim) == 2 * N and set(sim["grid"]) == {"2x"}
    assert list(sim["truth"]) == [OBJECT_TRUTH] * N + ["sim_passband"] * N
    # each row is scored against its own truth array
    group = io.open_group(paths["store"])
    images = np.asarray(io.open_stage(paths["sim"])[0])
    for kind, name in ((OBJECT_TRUTH, "truth_2x"), ("sim_passband", "truth_2x_sim_passband")):
        rows = sim[sim["truth"] == kind]
        for i in range(N):
            expect = compare(images[i], np.asarray(group[name][i]))
            row = rows[rows["image"] == i].iloc[0]
            assert row["ssim"] == pytest.approx(expect["ssim"], rel=1e-12)
            assert row["psnr"] == pytest.approx(expect["psnr"], rel=1e-12)
    # the stage is the passband truth plus noise: closer to it than to the object
    by_truth = sim.groupby("truth")["ssim"].mean()
    assert by_truth["sim_passband"] > by_truth[OBJECT_TRUTH] + 0.05
    assert by_truth["sim_passband"] > 0.9
    # the resolution needs no truth: the same on every truth's row, gain from the input
    per_image = sim.groupby("image")[["kc", "resolution_nm", "resolution_gain"]].nunique()
    assert (per_image == 1).all().all()
    assert sim["resolution_gain"].notna().all()


def test_only_object_truths_give_one_row_per_image_and_the_same_scores(tmp_path):
    two = evaluate_level(
        stages(build(tmp_path / "a", with_passband=True)),
        tmp_path / "a" / "test.zarr",
        "100",
        **FAST,
    )
    one = evaluate_level(
        stages(build(tmp_path / "b", with_passband=False)),
        tmp_path / "b" / "test.zarr",
        "100",
        **FAST,
    )
    assert len(one) == 2 * N and set(one["truth"]) == {OBJECT_TRUTH}
    pd.testing.assert_frame_equal(
        one, two[two["truth"] == OBJECT_TRUTH].reset_index(drop=True), check_exact=True
    )


def test_a_large_image_is_scored_on_its_centre(tmp_path):
    """Above ``max_region`` an image is scored on its centred region, truth cropped alike:
    the same numbers as scoring those crops whole, and the table says so."""
    from dps_stages.evaluate import centre_region
    from dps_stages.metrics import decorrelation

    paths = build(tmp_path, with_passband=False)
    table = evaluate_level(stages(paths), paths["store"], "100", max_region=32, **FAST)
    assert set(table.loc[table["stage"] == "sim", "region"]) == {"centre 32x32"}
    assert set(table.loc[table["stage"] == "wf", "region"]) == {"full"}  # 24 px: all of it
    ys, xs = centre_region((2 * SIZE, 2 * SIZE), 32)
    assert (ys.start, ys.stop) == (SIZE - 16, SIZE + 16)
    images = np.asarray(io.open_stage(paths["sim"])[0])[:, ys, xs]
    truth = np.asarray(io.open_group(paths["store"])["truth_2x"])[:, ys, xs]
    for i, row in table[table["stage"] == "sim"].reset_index().iterrows():
        assert row["ssim"] == pytest.approx(compare(images[i], truth[i])["ssim"], rel=1e-12)
        dec = decorrelation(images[i], pixel_size=32.5, apodise_px=4, **FAST)
        assert row["kc"] == pytest.approx(dec.kc, rel=1e-12)


def test_no_truth_store_leaves_truth_empty(tmp_path):
    paths = build(tmp_path, with_passband=True)
    table = evaluate_level(stages(paths), None, "1", **FAST)
    assert len(table) == 2 * N
    assert (table["truth"] == "").all()
    assert table["psnr"].isna().all() and table["kc"].notna().all()


def test_find_truths_names_attributes_and_errors(tmp_path):
    store = tmp_path / "s.zarr"
    a = np.zeros((1, 8, 8), np.float32)
    io.write_group(store, {"truth_2x_sim_passband": a, "truth_1x": a[:, :4, :4], "truth_2x": a})
    got = [(t.name, t.grid, t.kind) for t in find_truths(io.open_group(store))]
    assert got == [
        ("truth_1x", "1x", "object"),
        ("truth_2x", "2x", "object"),
        ("truth_2x_sim_passband", "2x", "sim_passband"),
    ]
    # attributes name the grid and kind of an array whose name does not
    odd = tmp_path / "odd.zarr"
    io.write_group(odd, {"truth_sim2x": a, "truth_2x": a})
    zarr.open_group(str(odd), mode="a")["truth_sim2x"].attrs.update(
        {"grid": "2x", "truth": "sim_passband"}
    )
    kinds = {(t.grid, t.kind) for t in find_truths(io.open_group(odd))}
    assert kinds == {("2x", "object"), ("2x", "sim_passband")}
    # a name that tells no grid, or two truths of one kind on a grid, are errors
    bad = tmp_path / "bad.zarr"
    io.write_group(bad, {"truth_passband": a})
    with pytest.raises(ValueError, match="truth_<grid>"):
        find_truths(io.open_group(bad))
    dup = tmp_path / "dup.zarr"
    io.write_group(dup, {"truth_2x": a, "truth_x": a})
    zarr.open_group(str(dup), mode="a")["truth_x"].attrs.update({"grid": "2x"})
    with pytest.raises(ValueError, match="two truths"):
        find_truths(io.open_group(dup))


def test_summary_groups_by_truth_and_figures_work(tmp_path):
    paths = build(tmp_path, with_passband=True)
    tables = []
    for level in ("10", "100"):
        t = tmp_path / f"{level}.tsv"
        evaluate_level(stages(paths), paths["store"], level, **FAST).to_csv(
            t, sep="\t", index=False
        )
        tables.append(t)
    out, summary_out, fig = tmp_path / "all.tsv", tmp_path / "summary.tsv", tmp_path / "m.png"
    summarise(tables, out, summary_out, fig)
    full = pd.read_csv(out, sep="\t", dtype={"level": str})
    assert len(full) == 2 * 3 * N  # levels x (wf: 1 truth, sim: 2 truths) x images
    summary = pd.read_csv(summary_out, sep="\t", dtype={"level": str})
    assert list(summary.columns[:4]) == ["level", "stage", "truth", "n_images"]
    assert len(summary) == 2 * 3 and (summary["n_images"] == N).all()
    sim = summary[(summary["stage"] == "sim") & (summary["level"] == "100")].set_index("truth")
    assert sim.loc["sim_passband", "ssim_mean"] > sim.loc[OBJECT_TRUTH, "ssim_mean"]
    rows = full[(full["stage"] == "sim") & (full["level"] == "100")]
    for kind in (OBJECT_TRUTH, "sim_passband"):
        expect = rows.loc[rows["truth"] == kind, "ssim"].mean()
        assert sim.loc[kind, "ssim_mean"] == pytest.approx(expect, rel=1e-3)
    assert fig.stat().st_size > 0

    panel = tmp_path / "stages.png"
    stage_panel([("wf", paths["wf"]), ("sim", paths["sim"])], paths["store"], "100", panel)
    assert panel.stat().st_size > 0


def test_summarise_reads_tables_without_a_truth_column(tmp_path):
    paths = build(tmp_path, with_passband=False)
    table = evaluate_level(stages(paths), paths["store"], "100", **FAST)
    old = tmp_path / "old.tsv"
    table.drop(columns="truth").to_csv(old, sep="\t", index=False)
    summary_out = tmp_path / "summary.tsv"
    summarise([old], tmp_path / "all.tsv", summary_out, tmp_path / "m.png")
    summary = pd.read_csv(summary_out, sep="\t")
    assert set(summary["truth"]) == {OBJECT_TRUTH} and len(summary) == 2
