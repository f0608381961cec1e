"""Bad inputs to every `dps` command: a clean error, exit 2, nothing written, inputs unchanged.

Each case runs :func:`dps_stages.cli.main` in-process on tiny files: NaN, Inf, complex and
boolean pixels, images too small for the command, a Zarr store with a corrupt chunk, an output
equal to (or inside) an input, unwritable outputs, and impossible numeric flags. It asserts
exit status 2, the documented message ``dps <command>: error: ...`` as the last line of
stderr, no traceback, nothing new next to the output, and every input byte-identical.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dps_stages import io
from dps_stages.cli import main

PX = ["--pixel-size", "65"]


def _tiff(path: Path, arr: np.ndarray) -> str:
    tifffile.imwrite(path, arr)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """Good and bad inputs and tiny models, written once for the module."""
    import torch

    from dps_stages.inference import save_model
    from dps_stages.nets import build

    root = tmp_path_factory.mktemp("fuzz_inputs")
    rng = np.random.default_rng(7)
    img = (rng.random((64, 64)) * 100 + 10).astype(np.float32)
    raw = (rng.random((9, 64, 64)) * 100 + 10).astype(np.float32)
    f = {"root": str(root)}
    f["good"] = _tiff(root / "good.tif", img)
    f["raw"] = _tiff(root / "raw.tif", raw)
    bad = img.copy()
    bad[3, 3] = np.nan
    f["nan"] = _tiff(root / "nan.tif", bad)
    bad = img.copy()
    bad[5, 1] = -np.inf
    f["inf"] = _tiff(root / "inf.tif", bad)
    f["complex"] = _tiff(root / "complex.tif", (img + 1j * img).astype(np.complex64))
    f["bool"] = _tiff(root / "bool.tif", img > 50)
    f["px1"] = _tiff(root / "px1.tif", np.ones((1, 1), np.float32))
    f["px8"] = _tiff(root / "px8.tif", img[:8, :8].copy())
    f["zero"] = _tiff(root / "zero.tif", np.zeros((64, 64), np.float32))
    bad = raw.copy()
    bad[4, 2, 2] = np.nan
    f["rawnan"] = _tiff(root / "rawnan.tif", bad)
    f["rawcomplex"] = _tiff(root / "rawcomplex.tif", (raw + 1j).astype(np.complex64))
    f["raw8"] = _tiff(root / "raw8.tif", raw[:, :8, :8].copy())
    f["rawbool"] = _tiff(root / "rawbool.tif", raw > 50)
    io.write_stage(root / "good.zarr", np.stack([img, img]), {"pixel_size": 65.0}, tile=16)
    f["zarr"] = str(root / "good.zarr")
    for name, arr in (("corrupt", np.stack([img, img])), ("rawcorrupt", raw[None])):
        store = root / f"{name}.zarr"
        io.write_stage(store, arr, {"pixel_size": 65.0}, tile=16)
        chunks = sorted(p for p in (store / "image").rglob("*") if p.is_file())
        chunks = [p for p in chunks if p.name != "zarr.json"]
        chunks[len(chunks) // 2].write_bytes(b"not a blosc frame" * 4)  # found while streaming
        f[name] = str(store)
    f["file"] = _tiff(root / "a_file.tif", img)  # a file where an output folder should be
    torch.manual_seed(0)
    archs = {
        "denoise": {"frames": 9, "width": 4, "depth": 1, "blocks": 1},
        "artifact": {"width": 4, "depth": 1, "blocks": 1},
        "psfid": {"in_channels": 1, "patch": 64, "psf_size": 21, "width": 4, "depth": 2},
    }
    for net, arch in archs.items():
        folder = root / f"model_{net}"
        folder.mkdir()
        save_model(folder / "model.pt", net, build(net, arch), {"origin": "test_fuzz"})
        f[f"model_{net}"] = str(folder)
    (root / "models").mkdir()
    f["models"] = str(root / "models")
    assert main(["simulate", str(root / "sim.zarr"), "--size", "16", "--n-per-structure", "1",
                 "--structures", "ccps", "--levels", "50", "--seed", "1"]) == 0  # fmt: skip
    f["sim"] = str(root / "sim.zarr")
    return f


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses a flag with exit 2
        return int(exc.code)


#: bad images of commands that take one widefield (or SIM) image
IMAGE_BAD = ("nan", "inf", "complex", "bool", "px1", "corrupt")
#: bad raw 2D-SIM frames
RAW_BAD = ("rawnan", "rawcomplex", "raw8", "rawbool", "rawcorrupt", "good")


def _cases() -> list[tuple[str, list[str]]]:
    """(id, argv) with ``{name}`` for an input of the fixture and ``{out}/`` for the output
    folder of the case."""
    c: list[tuple[str, list[str]]] = []

    def add(label: str, *argv: str) -> None:
        c.append((label, list(argv)))

    for b in IMAGE_BAD:
        add(f"background-{b}", "background", f"{{{b}}}", "{out}/bg.zarr", "--radius", "5")
        add(f"decorrelation-{b}", "decorrelation", f"{{{b}}}", *PX)
        add(f"compare-candidate-{b}", "compare", f"{{{b}}}", "{good}")
        add(f"compare-reference-{b}", "compare", "{good}", f"{{{b}}}")
        add(f"deconvolve-{b}", "deconvolve", f"{{{b}}}", "{out}/d.tif", "--iterations", "2", *PX)
        if b != "px1":  # export converts any size
            add(f"export-{b}", "export", f"{{{b}}}", "--tiff", "{out}/e.tif")
        add(f"import-{b}", "import", f"{{{b}}}", "{out}/i.zarr", "--kind", "widefield", *PX)
        add(f"infer-{b}", "infer", "artifact", f"{{{b}}}", "{out}/n.zarr",
            "--model", "{model_artifact}", *PX)  # fmt: skip
        add(f"identify-psf-{b}", "identify-psf", f"{{{b}}}", "{out}/p.tif",
            "--model", "{model_psfid}", *PX)  # fmt: skip
    for b in RAW_BAD:
        add(f"sim-reconstruct-{b}", "sim-reconstruct", f"{{{b}}}", "{out}/s.tif", *PX)
        add(f"calibrate-{b}", "calibrate", f"{{{b}}}", "{out}/c.json", *PX)
        add(f"import-raw-{b}", "import", f"{{{b}}}", "{out}/r.zarr", "--kind", "raw", *PX)
        add(f"infer-denoise-{b}", "infer", "denoise", f"{{{b}}}", "{out}/n.zarr",
            "--model", "{model_denoise}", *PX)  # fmt: skip
        add(f"restore-{b}", "restore", f"{{{b}}}", "{out}/r.tif", "--models", "{models}",
            "--background-radius", "5", *PX)  # fmt: skip
    # constant images: no PSNR or SSIM against them
    add("compare-constant-reference", "compare", "{good}", "{zero}")
    add("compare-both-constant", "compare", "{zero}", "{zero}")
    add("decorrelation-8px", "decorrelation", "{px8}", *PX)
    add("identify-psf-8px", "identify-psf", "{px8}", "{out}/p.tif", "--model", "{model_psfid}")
    # the output is an input, or inside one: the user's data would be replaced
    add("background-out-is-in-tif", "background", "{good}", "{good}", "--radius", "5")
    add("background-out-is-in-zarr", "background", "{zarr}", "{zarr}", "--radius", "5")
    add("background-out-inside-in", "background", "{zarr}", "{zarr}/x.tif", "--radius", "5")
    add("deconvolve-out-is-in", "deconvolve", "{zarr}", "{zarr}", "--iterations", "2", *PX)
    add("import-out-is-in", "import", "{zarr}", "{zarr}", "--kind", "widefield")
    add("export-out-is-in", "export", "{good}", "--tiff", "{good}")
    add("sim-reconstruct-out-is-in", "sim-reconstruct", "{raw}", "{raw}", *PX)
    add("calibrate-out-is-in", "calibrate", "{raw}", "{raw}", *PX)
    add("infer-out-is-in", "infer", "artifact", "{zarr}", "{zarr}", "--model", "{model_artifact}")
    add("extract-out-is-store", "extract", "{sim}", "--level", "50", "--raw", "{sim}")
    add("adapt-out-is-frames", "adapt", "denoise", "{model_denoise}", "{raw}", "{raw}", *PX)
    add("export-two-outputs-one-path", "export", "{zarr}", "--tiff", "{out}/a.tif",
        "--ome-zarr", "{out}/a.tif")  # fmt: skip
    # unwritable outputs (a file where the output's folder should be): the first output of a
    # command with two is removed too
    add("background-unwritable", "background", "{good}", "{file}/x.tif", "--radius", "5")
    add("deconvolve-unwritable", "deconvolve", "{good}", "{file}/x.zarr", "--iterations", "2",
        *PX)  # fmt: skip
    add("export-second-unwritable", "export", "{good}", "--tiff", "{out}/ok.tif",
        "--ome-zarr", "{file}/x.ome.zarr")  # fmt: skip
    add("import-widefield-unwritable", "import", "{raw}", "{out}/ok.zarr", "--kind", "raw",
        "--widefield", "{file}/w.zarr", *PX)  # fmt: skip
    add("extract-second-unwritable", "extract", "{sim}", "--level", "50", "--raw",
        "{out}/ok.zarr", "--widefield", "{file}/w.zarr")  # fmt: skip
    add("identify-psf-sr-unwritable", "identify-psf", "{good}", "{out}/ok.tif", "--sr",
        "{file}/sr.tif", "--model", "{model_psfid}", *PX)  # fmt: skip
    add("simulate-unwritable", "simulate", "{file}/s.zarr", "--size", "16",
        "--n-per-structure", "1", "--structures", "ccps", "--levels", "50")  # fmt: skip
    add("evaluate-unwritable", "evaluate", "{file}/t.tsv", "--stage", "wf", "{zarr}", "-")
    # missing and corrupt inputs of the table and figure commands
    add("evaluate-missing-stage", "evaluate", "{out}/t.tsv", "--stage", "wf", "{out}/no.zarr", "-")
    add("evaluate-corrupt-stage", "evaluate", "{out}/t.tsv", "--stage", "wf", "{corrupt}", "-")
    add("figures-corrupt-stage", "figures", "{out}/f.png", "--stage", "wf", "{corrupt}")
    add("summarise-missing", "summarise", "{out}/s.tsv", "{out}/no.tsv", "--summary",
        "{out}/m.tsv", "--figure", "{out}/f.png")  # fmt: skip
    add("deconvolve-missing-psf", "deconvolve", "{good}", "{out}/d.tif", "--psf",
        "{out}/none.tif", *PX)  # fmt: skip
    # numeric flags
    for v in ("0", "-1", "nan", "1e6"):
        add(f"background-radius-{v}", "background", "{good}", "{out}/b.tif", "--radius", v)
        add(f"restore-background-radius-{v}", "restore", "{good}", "{out}/r.tif", "--from",
            "widefield", "--models", "{models}", "--background-radius", v, *PX)  # fmt: skip
    for v in ("0", "-3", "nan"):
        add(f"decorrelation-n-r-{v}", "decorrelation", "{good}", "--n-r", v, *PX)
        add(f"deconvolve-iterations-{v}", "deconvolve", "{good}", "{out}/d.tif",
            "--iterations", v, *PX)  # fmt: skip
        add(f"simulate-n-per-structure-{v}", "simulate", "{out}/s.zarr", "--size", "16",
            "--n-per-structure", v, "--structures", "ccps", "--levels", "50")  # fmt: skip
        add(f"simulate-levels-{v}", "simulate", "{out}/s.zarr", "--size", "16",
            "--n-per-structure", "1", "--structures", "ccps", "--levels", v)  # fmt: skip
    for v in ("1", "8"):
        add(f"simulate-size-{v}", "simulate", "{out}/s.zarr", "--size", v,
            "--n-per-structure", "1", "--structures", "ccps", "--levels", "50")  # fmt: skip
    sim = ["simulate", "{out}/s.zarr", "--size", "16", "--n-per-structure", "1", "--structures",
           "ccps"]  # fmt: skip
    add("simulate-levels-merge", *sim, "--levels", "100,100.0000001")
    for v in ("5", "1.8"):
        add(f"deconvolve-na-{v}", "deconvolve", "{good}", "{out}/d.tif", "--na", v, *PX)
        add(f"simulate-na-{v}", *sim, "--levels", "50", "--na", v)
    add("deconvolve-wavelength-1e9", "deconvolve", "{good}", "{out}/d.tif", "--wavelength",
        "1e9", *PX)  # fmt: skip
    return c


CASES = _cases()


@pytest.mark.parametrize("argv", [a for _, a in CASES], ids=[i for i, _ in CASES])
def test_bad_input_is_a_clean_error(argv, data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fields = {**data, "out": str(out)}
    args = [a.format(**fields) for a in argv]
    root = Path(data["root"])
    before = _digest(root)
    rc = _run(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"dps {args[0]}: error:"), err
    assert list(out.iterdir()) == [], "a failed command left an output"
    assert _digest(root) == before, "an input changed"


def test_unwritable_output_folder(data, tmp_path, capsys):
    """An output in a folder without write permission: exit 2, naming it, nothing left."""
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write to a read-only folder (root)")
        for argv in (
            ["background", data["good"], str(locked / "b.zarr"), "--radius", "5"],
            [
                "export",
                data["good"],
                "--tiff",
                str(tmp_path / "ok.tif"),
                "--ome-zarr",
                str(locked / "e.ome.zarr"),
            ],  # fmt: skip
        ):
            assert _run(argv) == 2
            err = capsys.readouterr().err
            assert err.strip().splitlines()[-1].startswith(f"dps {argv[0]}: error:")
            assert str(locked) in err and "Traceback" not in err
            assert list(locked.iterdir()) == [] and not (tmp_path / "ok.tif").exists()
    finally:
        os.chmod(locked, 0o700)


def test_good_inputs_still_work(data, tmp_path, capsys):
    """The checks refuse the bad, not the good: integer images, Zarr, a constant candidate
    (flagged), an NA of 1.49, a radius the size of the image."""
    u16 = _tiff(tmp_path / "u16.tif", (np.asarray(tifffile.imread(data["good"])) * 10).astype(
        np.uint16))  # fmt: skip
    assert _run(["background", u16, str(tmp_path / "b.tif"), "--radius", "64"]) == 0
    assert _run(["background", data["zarr"], str(tmp_path / "b.zarr"), "--radius", "5"]) == 0
    assert _run(["deconvolve", data["good"], str(tmp_path / "d.tif"), "--na", "1.49",
                 "--iterations", "2", *PX]) == 0  # fmt: skip
    capsys.readouterr()
    assert _run(["compare", data["zero"], data["good"]]) == 0
    assert "constant" in capsys.readouterr().out


def test_stale_temporaries_of_an_output_are_removed(tmp_path):
    """A killed write leaves a hidden ``.<name>.tmp-*`` sibling; the next write of that output
    removes it, and leaves other files' temporaries alone."""
    out = tmp_path / "x.zarr"
    (tmp_path / ".x.zarr.tmp-deadbeef").mkdir()
    (tmp_path / ".x.zarr.tmp-deadbeef" / "chunk").write_bytes(b"half")
    (tmp_path / ".x.zarr.tmp-0badf00d").write_bytes(b"half")
    (tmp_path / ".y.zarr.tmp-deadbeef").mkdir()
    io.write_stage(out, np.ones((4, 4), np.float32))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".y.zarr.tmp-deadbeef", "x.zarr"]


def test_failed_write_removes_its_temporary(tmp_path):
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "a.tif") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_check_distinct_and_check_image(tmp_path):
    a = tmp_path / "a.zarr"
    with pytest.raises(io.DpsInputError, match="is the input"):
        io.check_distinct({"input": a}, {"output": tmp_path / "." / "a.zarr"})
    with pytest.raises(io.DpsInputError, match="inside one another"):
        io.check_distinct({"input": a}, {"output": a / "b.tif"})
    io.check_distinct({"input": a}, {"output": tmp_path / "b.zarr"})
    with pytest.raises(io.DpsInputError, match="complex"):
        io.check_image(np.ones((8, 8), np.complex64), "c.tif")
    with pytest.raises(io.DpsInputError, match="at least 16 x 16"):
        io.check_image(np.ones((9, 8, 8), np.float32), "r.tif", min_size=16)
    with pytest.raises(io.DpsInputError, match="NaN"):
        io.check_image(np.full((8, 8), np.nan), "n.tif")
    assert io.check_image(np.ones((8, 8), np.uint16), "u.tif").dtype == np.uint16
