"""The data stages of ``dps``: simulate, extract, import, background, the metrics
(decorrelation, compare, evaluate, summarise), figures and export."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages.cli.checks import check_radius
from dps_stages.cli.common import (
    _add_file_pixel_size,
    _add_optics,
    _add_stage_name,
    _count,
    _floats,
    _names,
    _non_negative,
    _option,
    _positive,
    _progress,
    _provenance,
    _read_2d,
    _write_any,
    level_key,
)
from dps_stages.io_core import DpsInputError

log = logging.getLogger("dps")


# --------------------------------------------------------------------------------------------
# inputs


def cmd_simulate(args: argparse.Namespace) -> None:
    from dps_stages import io
    from dps_stages.optics import Optics
    from dps_stages.simulate import ALL_STRUCTURES, simulate_dataset, write_dataset

    optics = Optics(wavelength=args.wavelength, na=args.na, pixel_size=args.pixel_size,
                    modulation_factor=args.modulation_factor)  # fmt: skip
    noise = {
        "read_noise": args.read_noise,
        "gain": args.gain,
        "offset": args.offset,
        "bits": args.bits,
        "salt_pepper": args.salt_pepper,
    }
    pattern = {
        "pattern_frequency": args.pattern_frequency,
        "modulation": args.modulation,
        "angle_error": args.angle_error,
        "phase_error": args.phase_error,
    }
    microscope: dict[str, Any] = {}
    if args.calibration is not None:
        microscope, pattern, noise = _calibrated(args, optics, pattern, noise)
    unknown = sorted(set(args.structures) - set(ALL_STRUCTURES))
    if unknown:
        raise io.DpsInputError(f"unknown structures {unknown}; choose from {list(ALL_STRUCTURES)}")
    levels = [float(v) for v in args.levels]
    covered: list[float] = []
    if args.cover:
        levels, covered = _covering(args, microscope)
    data = simulate_dataset(
        list(args.structures),
        args.n_per_structure,
        args.size,
        optics,
        levels=levels,
        seed=args.seed,
        split=args.split,
        pattern_kw=pattern,
        noise_kw=noise,
        progress=True,
        **microscope,
    )
    attrs = {
        "kind": "simulated",
        "split": args.split,
        "seed": args.seed,
        "levels": levels,
        "structures": list(data["structure"]),
        "patterns": data["patterns"],
        "optics": optics.to_dict(),
        "pixel_size": optics.pixel_size,
        "noise": noise,
        **_provenance("simulate", args),
    }
    if microscope:
        attrs |= {"microscope": _plain(microscope), "microscopes": _plain(data["microscopes"])}
    if covered:
        attrs["covered_photons"] = covered
    write_dataset(args.output, data, attrs, tile=args.tile)
    arrays = [k for k, v in data.items() if isinstance(v, np.ndarray)]
    log.info("wrote %s: %d images, arrays %s", args.output, len(data["structure"]), arrays)


def _covering(args: argparse.Namespace, microscope: dict[str, Any]) -> tuple[list, list]:
    """``--cover``: the levels whose randomised photon counts span those of the calibrations'
    acquisitions (:func:`dps_stages.simulate.covering_levels`), and those counts."""
    from dps_stages import io
    from dps_stages.simulate import covering_levels, photon_spread

    spread = photon_spread(microscope.get("randomise"))
    if not spread > 1.0:
        raise io.DpsInputError(
            "--cover needs randomised photon counts: --calibration with the 'photons' spread "
            f"in --randomise; got spread {spread:g}"
        )
    photons: list[float] = []
    for path in args.cover:
        try:
            record = json.loads(Path(path).read_text())
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except (OSError, ValueError) as exc:
            raise io.DpsInputError(f"{path}: not a calibration JSON: {exc}") from exc
        # an acquisition the calibration could not determine has no camera: not covered
        counts = (record.get("camera") or {}).get("photons") or []
        if not counts:
            log.warning("%s: no photon count (camera or offset undetermined); not covered", path)
        photons += [float(v) for v in counts if float(v) > 0]
    if not photons:
        log.warning("--cover: no photon counts; the levels stay %s", list(args.levels))
        return [float(v) for v in args.levels], []
    levels = covering_levels(photons, spread)
    log.info("photon counts %.3g-%.3g e- of %d acquisitions: levels %s (each within a "
             "factor %.3g)", min(photons), max(photons), len(photons), levels, spread)  # fmt: skip
    return levels, photons


def _plain(value: Any) -> Any:
    """JSON-ready copy (numpy arrays and scalars as lists and floats)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _calibrated(
    args: argparse.Namespace, optics: Any, pattern: dict[str, Any], noise: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The microscope of a calibration JSON (``--calibration``) with its randomisation:
    simulation keywords, pattern and camera settings (the calibration's values win)."""
    from dps_stages import io
    from dps_stages.simulate import CALIBRATED_RANDOMISE, simulate_kwargs_from_calibration

    try:
        calib = json.loads(Path(args.calibration).read_text())
    except (OSError, ValueError) as exc:
        raise io.DpsInputError(f"{args.calibration}: not a calibration JSON: {exc}") from exc
    if calib.get("determined") is False:
        raise io.DpsInputError(
            f"{args.calibration}: the acquisition could not be calibrated "
            f"({calib.get('reason', 'undetermined')}); simulate without --calibration"
        )
    try:
        kw = simulate_kwargs_from_calibration(calib, optics)
    except (KeyError, TypeError, ValueError) as exc:
        raise io.DpsInputError(f"{args.calibration}: not a usable calibration: {exc}") from exc
    pattern = pattern | kw.pop("pattern_kw", {})
    noise = noise | kw.pop("noise_kw", {})
    kw["randomise"] = CALIBRATED_RANDOMISE if args.randomise is None else args.randomise
    return kw, pattern, noise


def cmd_extract(args: argparse.Namespace) -> None:
    """Take one signal level of a simulated split as the stage inputs raw and widefield."""
    from dps_stages import io

    group = io.open_group(args.store)
    attrs = dict(group.attrs)
    keys = [level_key(v) for v in attrs["levels"]]
    if args.level not in keys:
        raise DpsInputError(f"{args.store}: no signal level {args.level!r}; it holds {keys}")
    li = keys.index(args.level)
    common = {
        "source": str(args.store),
        "level": args.level,
        "structures": attrs["structures"],
        "optics": attrs["optics"],
        "pixel_size": attrs["optics"]["pixel_size"],
        "truth_store": str(args.store),
    }
    prov = _provenance("extract", args)
    if args.raw:
        io.write_stage(args.raw, group["raw"][:, li], {**common, "stage": "raw", **prov})
    if args.widefield:
        wf = group["widefield_noisy"][:, li]
        io.write_stage(args.widefield, wf, {**common, "stage": "widefield", **prov})


def cmd_import(args: argparse.Namespace) -> None:
    """Validate a user's image and write it as the stage input (raw and widefield, or sim)."""
    import dask.array as da

    from dps_stages import io

    if args.widefield and args.kind != "raw":
        raise DpsInputError("--widefield is only for --kind raw (the mean of the 9 frames)")
    arr, meta = io.read_image(args.input)
    if args.kind == "raw":
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
    io.check_image(arr, args.input, min_size=16 if args.kind == "raw" else 8, finite=False)
    arr = da.asarray(arr).astype(np.float32)
    if not bool(da.isfinite(arr).all().compute()):
        raise DpsInputError(f"{args.input}: holds NaN or infinite pixels; expected finite values")
    pixel_size = args.pixel_size or meta.get("pixel_size")
    if pixel_size is None:
        raise DpsInputError(
            f"{args.input}: the file gives no pixel size; pass --pixel-size (nm) "
            "or set optics.pixel_size for this dataset"
        )
    attrs = {"source": str(args.input), "level": "input", "pixel_size": float(pixel_size)}
    attrs.update(_provenance("import", args))
    io.write_stage(args.output, arr, {**attrs, "stage": args.kind}, tile=args.tile)
    if args.widefield:
        io.write_stage(
            args.widefield, arr.mean(axis=1), {**attrs, "stage": "widefield"}, tile=args.tile
        )


# --------------------------------------------------------------------------------------------
# background


def cmd_background(args: argparse.Namespace) -> None:
    from dps_stages import io
    from dps_stages.background import subtract_background_tiled

    arr, meta = io.read_image(args.input, lazy=True, tile=args.tile)
    arr = io.check_image(arr, args.input)
    check_radius(args.radius, arr.shape, args.input)
    out = subtract_background_tiled(arr, args.radius, tile=args.tile)
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps")}
    attrs.update({"source": str(args.input), "stage": args.stage or "background"})
    with _progress():
        _write_any(args.output, out, attrs | _provenance("background", args), tile=args.tile)


# --------------------------------------------------------------------------------------------
# metrics


def cmd_decorrelation(args: argparse.Namespace) -> None:
    from dps_stages import io
    from dps_stages.metrics import decorrelation

    image, meta = _read_2d(args.image)
    io.check_image(image, args.image, min_size=32)
    pixel_size = args.pixel_size or meta.get("pixel_size")
    res = decorrelation(image, pixel_size=pixel_size, n_r=args.n_r, n_g=args.n_g)
    out = {k: v for k, v in res.to_dict().items() if not isinstance(v, (list, np.ndarray))}
    out["image"] = str(args.image)
    print(json.dumps(out, indent=2))


def cmd_compare(args: argparse.Namespace) -> None:
    from dps_stages import io
    from dps_stages.metrics import compare

    cand, _ = _read_2d(args.candidate)
    ref, _ = _read_2d(args.reference)
    if cand.shape != ref.shape:
        raise DpsInputError(
            f"{args.candidate}: shape {cand.shape} differs from the reference "
            f"{args.reference} {ref.shape}"
        )
    io.check_image(ref, args.reference, min_size=8)
    if np.ptp(ref) == 0:
        raise DpsInputError(f"{args.reference}: the reference is constant; PSNR and SSIM "
                            "against it are undefined")  # fmt: skip
    out: dict[str, Any] = {k: float(v) for k, v in compare(cand, ref).items()}
    if np.ptp(cand) == 0:
        out["warning"] = "the candidate is constant: it holds no image"
        log.warning("%s: the candidate is constant", args.candidate)
    out.update({"candidate": str(args.candidate), "reference": str(args.reference)})
    print(json.dumps(out, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from dps_stages.evaluate import evaluate_level
    from dps_stages.io import atomic_path

    table = evaluate_level(
        stages=[(name, Path(path), None if inp == "-" else inp) for name, path, inp in args.stage],
        truth_store=args.truth,
        level=args.level,
        n_r=args.n_r,
        n_g=args.n_g,
        max_region=args.max_region,
    )
    with atomic_path(args.output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def cmd_summarise(args: argparse.Namespace) -> None:
    from dps_stages.evaluate import summarise

    summarise(args.tables, args.output, args.summary, args.figure, args.summary_html)


def cmd_figures(args: argparse.Namespace) -> None:
    from dps_stages.figures import stage_panel

    stage_panel(
        stages=[(name, Path(path)) for name, path in args.stage],
        truth_store=args.truth,
        level=args.level,
        output=args.output,
        n_images=args.n_images,
        metrics=args.metrics,
        title=args.title,
    )


def cmd_paper(args: argparse.Namespace) -> None:
    """The reviewer's page: every claim of the papers beside the number this code gives."""
    from dps_stages.paper import Inputs, build_page

    rows = build_page(
        Inputs(
            results=args.results,
            data=args.data,
            datasets={name: (kind, source) for name, kind, source in args.dataset or []},
            out=args.output,
            command=args.command_line or "",
        )
    )
    counts = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    print(f"{args.output}/index.html: {len(rows)} rows, {counts}")


def cmd_export(args: argparse.Namespace) -> None:
    """Write a stage's output as OME-Zarr and ImageJ TIFF for Fiji and napari, tile by tile."""
    from dps_stages import io

    arr, meta = io.read_image(args.input, lazy=True)
    image = io.check_image(arr, args.input, min_size=1).astype(np.float32)
    attrs = {k: v for k, v in meta.items() if k != "path"}
    if args.ome_zarr:
        io.write_ome_zarr(args.ome_zarr, image, meta.get("pixel_size"), attrs)
    if args.tiff:
        io.write_tiff(args.tiff, image, meta.get("pixel_size"))


# --------------------------------------------------------------------------------------------


def _add_decorrelation(p: argparse.ArgumentParser) -> None:
    _option(p, "--n-r", key="evaluate.n_r", type=_count, help="decorrelation: radii sampled")
    _option(p, "--n-g", key="evaluate.n_g", type=_count, help="decorrelation: high-pass filters")


def _spreads(text: str) -> dict[str, float]:
    """``key=spread,...`` of the simulator's randomisation (``none``: no randomisation)."""
    from dps_stages.simulate import RANDOMISE_KEYS

    if text.strip() == "none":
        return {}
    out = {}
    for item in _names(text):
        key, _, value = item.partition("=")
        try:
            spread = float(value)
        except ValueError:
            spread = math.nan
        if key not in RANDOMISE_KEYS or not spread >= 0 or not math.isfinite(spread):
            raise argparse.ArgumentTypeError(
                f"expected key=spread >= 0 with key in {list(RANDOMISE_KEYS)}; got {item!r}"
            )
        out[key] = spread
    return out


def add_parsers(sub) -> None:
    """The subcommands of this module."""
    p = sub.add_parser("simulate", help="simulate ground truth, raw SIM frames and widefield")
    p.add_argument("output", type=Path, help="Zarr group to write")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    _option(p, "--seed", key="seed", type=int)
    _option(p, "--structures", key="simulate.structures", type=_names,
            help="comma-separated: microtubules, ccps, er, actin; also varying_filaments, "
            "bundles, rings, network, cytoplasm, natural")  # fmt: skip
    p.add_argument("--n-per-structure", type=_count, default=2)
    _option(p, "--size", key="simulate.size", type=_count, help="camera-grid size in pixels")
    _option(p, "--levels", key="simulate.levels", type=_floats, help="photons, peak pixel")
    _option(p, "--pattern-frequency", key="simulate.pattern.frequency", type=_positive)
    _option(p, "--modulation", key="simulate.pattern.modulation", type=_non_negative)
    _option(p, "--angle-error", key="simulate.pattern.angle_error", type=_non_negative)
    _option(p, "--phase-error", key="simulate.pattern.phase_error", type=_non_negative)
    _option(p, "--read-noise", key="simulate.noise.read_noise", type=_non_negative)
    _option(p, "--gain", key="simulate.noise.gain", type=_positive)
    _option(p, "--offset", key="simulate.noise.offset", type=_non_negative)
    _option(p, "--bits", key="simulate.noise.bits", type=_count)
    _option(p, "--salt-pepper", key="simulate.noise.salt_pepper", type=_non_negative,
            help="fraction of hot or dead pixels")  # fmt: skip
    _option(p, "--tile", key="tile", type=_count)
    p.add_argument("--calibration", type=Path,
                   help="calibration JSON (dps calibrate): simulate that microscope (pattern, "
                   "OTF attenuation, camera, haze), randomised around it")  # fmt: skip
    p.add_argument("--randomise", type=_spreads, default=None,
                   help="with --calibration: spreads, e.g. 'modulation=0.15,haze=0.5'; "
                   "default: dps_stages.simulate.CALIBRATED_RANDOMISE; 'none': none")  # fmt: skip
    p.add_argument("--cover", type=Path, nargs="+", default=None, metavar="CALIBRATION",
                   help="with --calibration: calibration JSONs of the acquisitions to restore; "
                   "the levels (instead of --levels) span their photon counts")  # fmt: skip
    _add_optics(p, pixel_size=True)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("extract", help="one signal level of a simulated split as stage inputs")
    p.add_argument("store", type=Path)
    p.add_argument("--level", required=True)
    p.add_argument("--raw", type=Path, help="Zarr for the raw frames (n, 9, y, x)")
    p.add_argument("--widefield", type=Path, help="Zarr for the widefield images (n, y, x)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("import", help="validate a user's image and write it as a stage input")
    p.add_argument("input", type=Path, help="TIFF, folder of TIFFs, Zarr or OME-Zarr")
    p.add_argument("output", type=Path, help="Zarr to write")
    p.add_argument("--kind", choices=("raw", "widefield", "sim"), required=True)
    p.add_argument(
        "--pixel-size",
        type=_positive,
        help="pixel size of this image at the sample, nm (wins "
        "over the file's own; for a SIM image that is half the camera pixel)",
    )
    p.add_argument("--widefield", type=Path, help="with --kind raw: also write the frame mean")
    _option(p, "--tile", key="tile", type=_count)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("background", help="rolling-ball background subtraction")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    _option(p, "--radius", key="background.radius", type=_positive, help="ball radius, pixels")
    _option(p, "--tile", key="tile", type=_count)
    _add_stage_name(p)
    p.set_defaults(func=cmd_background)

    p = sub.add_parser("decorrelation", help="image resolution by decorrelation analysis")
    p.add_argument("image", type=Path)
    _add_file_pixel_size(p)
    _add_decorrelation(p)
    p.set_defaults(func=cmd_decorrelation)

    p = sub.add_parser("compare", help="PSNR, SSIM, NRMSE of a candidate against a reference")
    p.add_argument("candidate", type=Path)
    p.add_argument("reference", type=Path)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("evaluate", help="metrics table of the stages of one signal level")
    p.add_argument("output", type=Path, help="TSV to write")
    p.add_argument(
        "--stage",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "PATH", "INPUT"),
        help="a stage, its Zarr, and the stage it was computed from ('-' for none)",
    )
    p.add_argument("--truth", type=Path, help="simulated store with ground truth")
    p.add_argument("--level", default="input")
    _add_decorrelation(p)
    _option(p, "--max-region", key="evaluate.max_region", type=_count,
            help="score a larger image on its centred region of this many pixels")  # fmt: skip
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summarise", help="merge per-level metrics into one table and a figure")
    p.add_argument("output", type=Path, help="TSV: all rows of all levels")
    p.add_argument("tables", type=Path, nargs="+")
    p.add_argument("--summary", type=Path, required=True, help="TSV: mean and std per stage")
    p.add_argument("--figure", type=Path, required=True)
    p.add_argument("--summary-html", type=Path, help="HTML: the summary as tables, for the report")
    p.set_defaults(func=cmd_summarise)

    p = sub.add_parser("figures", help="stage outputs side by side with the ground truth")
    p.add_argument("output", type=Path, help="PNG to write")
    p.add_argument("--stage", nargs=2, action="append", required=True, metavar=("NAME", "PATH"))
    p.add_argument("--truth", type=Path)
    p.add_argument("--level", default="input")
    _option(p, "--n-images", key="evaluate.figure_images", type=_count)
    p.add_argument("--metrics", type=Path, help="the level's metrics TSV: scores on each panel")
    p.add_argument("--title", help="the figure's title (default: the signal level)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("paper", help="the papers' claims beside this code's numbers (a page)")
    p.add_argument("output", type=Path, help="folder: index.html, index.md, figures, tables")
    p.add_argument("--results", type=Path, required=True, help="the workflow's results folder")
    p.add_argument("--data", type=Path, required=True, help="the shared data (../shared/data)")
    p.add_argument(
        "--dataset",
        nargs=3,
        action="append",
        metavar=("NAME", "KIND", "SOURCE"),
        help="a dataset of the run: kind raw|widefield|sim (simulated: 'raw simulate')",
    )
    p.add_argument("--command-line", help="the command that built the page, for the record")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("export", help="a stage's output as OME-Zarr and ImageJ TIFF")
    p.add_argument("input", type=Path)
    p.add_argument("--ome-zarr", type=Path)
    p.add_argument("--tiff", type=Path)
    p.set_defaults(func=cmd_export)
