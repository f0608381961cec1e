"""Tests of the reviewer's page (dps_stages.paper) on tiny inputs: every row filled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from dps_stages import io
from dps_stages.cli import main
from dps_stages.paper import COLUMNS, VERDICTS, Inputs, build_page, line_profiles
from dps_stages.paper.claims import saturated_pixels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def filaments(n: int, seed: int, sigma: float) -> np.ndarray:
    """Thin vertical lines blurred by a Gaussian of ``sigma`` pixels."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n), np.float32)
    img[:, rng.choice(np.arange(10, n - 10, 16), 3, replace=False)] = 1.0
    return ndimage.gaussian_filter(img, sigma)


def test_line_profiles_measure_the_width_of_a_line():
    before = filaments(64, 0, 2.0)
    after = ndimage.zoom(filaments(64, 0, 1.0), 2, order=1)
    prof = line_profiles(before, after, n=2, half=7)
    assert len(prof) == 2
    for p in prof:  # Gaussian FWHM = 2.355 sigma, in pixels of the input grid
        assert p["fwhm_before"] == pytest.approx(2.355 * 2.0, rel=0.15)
        assert p["fwhm_before"] / p["fwhm_after"] > 1.5


def test_line_profiles_skip_saturated_filaments():
    before = filaments(64, 0, 2.0)
    clipped = np.minimum(before, 0.5 * before.max())  # every line clipped at its top
    after = ndimage.zoom(filaments(64, 0, 1.0), 2, order=1)
    sat = saturated_pixels(clipped)
    assert sat.sum() >= 8
    assert line_profiles(clipped, after, n=2, half=7, saturated=sat) == []
    # unclipped: no pixel shares the maximum with 7 others, nothing is masked
    assert not saturated_pixels(before + np.linspace(0, 1e-3, before.size).reshape(64, 64)).any()
    wide = line_profiles(clipped, after, n=2, half=7)  # the flat top widens the FWHM
    assert all(p["fwhm_before"] > 1.2 * 2.355 * 2.0 for p in wide)


def tiny_results(root: Path) -> dict[str, tuple[str, str]]:
    """A results folder as a run would leave it: a simulated dataset's metrics and a Fig. 3a
    stand-in (a SIM image and a sharper 2x output) with its metrics."""
    rows = []
    stages = {"widefield_bg": 18, "widefield_rl": 21, "widefield_rl_id": 20, "sim_dn_wiener": 24,
              "sim_dps": 25, "sim_oidn": 26, "sim_ar_bg": 25, "sim_dbpn": 24}  # fmt: skip
    for level in ("50", "500"):
        for stage, psnr in stages.items():
            for image in range(2):
                rows.append({"level": level, "stage": stage, "image": image, "truth": "object",
                             "psnr": psnr + image, "ssim": psnr / 30, "resolution_nm": 120.0,
                             "resolution_gain": 1.3, "grid_limited": False})  # fmt: skip
    (root / "sim").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "sim" / "metrics.tsv", sep="\t", index=False)
    before, after = filaments(64, 1, 2.0), ndimage.zoom(filaments(64, 1, 0.8), 2, order=1)
    io.write_stage(root / "fig3a" / "input" / "sim.zarr", before[None], {"pixel_size": 32.5})
    io.write_stage(root / "fig3a" / "input" / "sim_bg.zarr", before[None], {"pixel_size": 32.5})
    io.write_stage(root / "fig3a" / "input" / "sim_dbpn.zarr", after[None], {"pixel_size": 16.25})
    fig = [{"level": "input", "stage": s, "image": 0, "truth": "", "resolution_nm": r,
            "resolution_gain": g, "grid_limited": False}
           for s, r, g in (("sim_bg", 110.0, np.nan), ("sim_sparse", 90.0, 1.2),
                           ("sim_dbpn", 60.0, 110 / 60))]  # fmt: skip
    pd.DataFrame(fig).to_csv(root / "fig3a" / "metrics.tsv", sep="\t", index=False)
    return {"sim": ("raw", "simulate"), "fig3a": ("sim", "../shared/data/dps-fig3a/Fig3a.tif")}


def check_filled(rows, out: Path) -> None:
    assert rows and all(r.verdict in VERDICTS for r in rows)
    for r in rows:
        assert all(str(getattr(r, c)).strip() for c in COLUMNS), r
    md = (out / "index.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]
    for line in table:  # no empty cell in any table of the page
        assert "|  |" not in line and not line.rstrip().endswith("| |"), line
    html = (out / "index.html").read_text()
    assert html.count("<tr>") >= len(rows) + 1 and "<td></td>" not in html


def test_page_without_the_shared_data_says_what_to_download(tmp_path):
    datasets = tiny_results(tmp_path / "results")
    out = tmp_path / "paper"
    rows = build_page(Inputs(tmp_path / "results", tmp_path / "no-data", datasets, out))
    check_filled(rows, out)
    by_claim = {r.claim: r for r in rows}
    gain = by_claim[next(c for c in by_claim if c.endswith("Fig. 3a, decorrelation"))]
    assert gain.reproduced.startswith("1.83x") and gain.verdict == "reproduced"
    oidn = [r for r in rows if r.claim.startswith("OIDN scores above") and "simulated" in r.claim]
    assert len(oidn) == 2 and all(r.verdict == "reproduced" for r in oidn)
    absent = [r for r in rows if "Descloux" in r.paper]
    assert len(absent) == 5 and all("vdl-sim-microtubules/" in r.why for r in absent)
    assert all(r.verdict == "not comparable" for r in absent)
    assert (out / "fig3a.pdf").exists() and (out / "fig3a.png").exists()
    assert "fig3a.png" in (out / "index.html").read_text()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} absent (real data beside the project)")
def test_page_through_the_command_with_the_shared_data(tmp_path):
    datasets = tiny_results(tmp_path / "results")
    out = tmp_path / "paper"
    args = ["paper", str(out), "--results", str(tmp_path / "results"), "--data", str(SHARED)]
    for name, (kind, source) in datasets.items():
        args += ["--dataset", name, kind, source]
    assert main(args) == 0
    claims = pd.read_csv(out / "claims.tsv", sep="\t")
    dcorr = claims[claims["paper"].str.startswith("Decorrelation")]
    assert (dcorr["verdict"] != "not comparable").all() and len(dcorr) == 5
    vdl = claims[claims["claim"].str.startswith("the published VDL-SIM output")]
    assert len(vdl) == 4 and (vdl["verdict"] == "reproduced").all()
    check_filled(list(claims.itertuples()), out)


def test_make_figures_asks_snakemake_for_the_paper_target():
    """`make figures`' Snakemake command, parsed by Snakemake's own parser: the target is
    `paper` and the config the real-data one (a target after --configfile is read as a
    second config file, and the command fails at once)."""
    import shlex

    from snakemake.cli import get_argument_parser

    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nfigures:", 1)[1].split("\n\n", 1)[0]
    line = next(ln for ln in recipe.splitlines() if "snakemake " in ln and "unlock" not in ln)
    words = shlex.split(line.replace("$(CORES)", "2"))
    args = get_argument_parser().parse_args(words[words.index("$(BIN)/snakemake") + 1 :])
    assert list(args.targets) == ["paper"]
    assert [str(p) for p in args.configfile] == ["benchmarks/configs/real_data.yaml"]
