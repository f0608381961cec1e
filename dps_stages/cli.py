"""The ``dps`` command line: one subcommand per stage, called by the workflow's rules.

Each subcommand reads its inputs, calls the science in :mod:`dps_stages`, and writes its
outputs atomically. A bad input stops with ``dps <command>: error: <file>: <problem>`` on
stderr and exit status 2, leaving no output behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages import __version__
from dps_stages.io import DpsInputError

log = logging.getLogger("dps")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _wiener(text: str) -> str:
    if text != "auto":
        try:
            if float(text) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected 'auto' or a number > 0, got {text!r}"
            ) from None
    return text


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_optics(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optics (nm)")
    g.add_argument("--wavelength", type=float, default=525.0, help="emission wavelength")
    g.add_argument("--na", type=float, default=1.4, help="numerical aperture")
    g.add_argument("--pixel-size", type=float, default=65.0, help="camera pixel at the sample")
    g.add_argument("--modulation-factor", type=float, default=1.9, help="SIM passband factor")


def _optics(args: argparse.Namespace, meta: dict[str, Any] | None = None):
    """Optics from the options; without --pixel-size, the pixel size the file gives."""
    from dps_stages.optics import Optics

    pixel_size = args.pixel_size or (meta or {}).get("pixel_size")
    if pixel_size is None:
        raise DpsInputError(f"{args.input}: the file gives no pixel size; pass --pixel-size (nm)")
    return Optics(
        wavelength=args.wavelength, na=args.na, pixel_size=float(pixel_size),
        modulation_factor=args.modulation_factor,
    )  # fmt: skip


def _provenance(command: str, args: argparse.Namespace, started: float) -> dict[str, Any]:
    params = {k: v for k, v in vars(args).items() if k != "func"}
    return {
        "dps": {
            "command": command,
            "version": __version__,
            "parameters": params,
            "seconds": round(time.perf_counter() - started, 3),
            "numpy": np.__version__,
        }
    }


# --------------------------------------------------------------------------------------------
# simulate


def cmd_simulate(args: argparse.Namespace) -> None:
    from dps_stages import io
    from dps_stages.simulate import simulate_dataset

    t0 = time.perf_counter()
    optics = _optics(args)
    data = simulate_dataset(
        args.structures,
        args.n_per_structure,
        args.size,
        optics,
        levels=args.levels,
        seed=args.seed,
        split=args.split,
        pattern_kw={
            "pattern_frequency": args.pattern_frequency,
            "modulation": args.modulation,
            "angle_error": args.angle_error,
            "phase_error": args.phase_error,
        },
        noise_kw={
            "read_noise": args.read_noise,
            "gain": args.gain,
            "offset": args.offset,
            "bits": args.bits,
            "salt_pepper": args.salt_pepper,
        },
        progress=True,
    )
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    attrs = {
        "kind": "simulated",
        "split": args.split,
        "seed": args.seed,
        "levels": [float(v) for v in args.levels],
        "structures": list(data["structure"]),
        "patterns": data["patterns"],
        "optics": optics.to_dict(),
        "pixel_size": optics.pixel_size,
        "noise": {
            "read_noise": args.read_noise,
            "gain": args.gain,
            "offset": args.offset,
            "bits": args.bits,
            "salt_pepper": args.salt_pepper,
        },
        **_provenance("simulate", args, t0),
    }
    io.write_group(args.output, arrays, attrs, tile=args.tile)
    log.info("wrote %s: %d images, arrays %s", args.output, len(data["structure"]), list(arrays))


def level_key(level: float) -> str:
    """The name of a signal level in paths and tables: 20.0 -> '20', 0.5 -> '0.5'."""
    return f"{float(level):g}"


def cmd_extract(args: argparse.Namespace) -> None:
    """Take one signal level of a simulated split as the stage inputs raw and widefield."""
    from dps_stages import io

    t0 = time.perf_counter()
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
    prov = _provenance("extract", args, t0)
    if args.raw:
        io.write_stage(args.raw, group["raw"][:, li], {**common, "stage": "raw", **prov})
    if args.widefield:
        wf = group["widefield_noisy"][:, li]
        io.write_stage(args.widefield, wf, {**common, "stage": "widefield", **prov})


def cmd_import(args: argparse.Namespace) -> None:
    """Validate a user's image and write it as the stage input (raw and widefield, or sim)."""
    import dask.array as da

    from dps_stages import io

    t0 = time.perf_counter()
    if args.widefield and args.kind != "raw":
        raise DpsInputError("--widefield is only for --kind raw (the mean of the 9 frames)")
    arr, meta = io.read_image(args.input)
    if args.kind == "raw":
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
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
    attrs.update(_provenance("import", args, t0))
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

    t0 = time.perf_counter()
    arr, meta = io.read_image(args.input)
    out = subtract_background_tiled(arr, args.radius, tile=args.tile)
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps")}
    attrs.update({"source": str(args.input), "stage": args.stage or "background"})
    with _progress():
        _write_any(args.output, out, attrs | _provenance("background", args, t0), tile=args.tile)


def _progress():
    """A progress bar over the tiles of a dask computation, on stderr (the rule's log)."""
    from dask.diagnostics import ProgressBar

    return ProgressBar(minimum=2.0, out=sys.stderr)


def _write_any(path: str | Path, image, attrs: dict[str, Any], *, tile: int = 1024) -> None:
    """Zarr for ``*.zarr`` (stage layout, or OME-Zarr for ``*.ome.zarr``), else ImageJ TIFF."""
    from dps_stages import io

    path = Path(path)
    name = path.name.lower()
    if name.endswith(".ome.zarr"):
        io.write_ome_zarr(path, np.asarray(image), attrs.get("pixel_size"), attrs)
    elif name.endswith(".zarr"):
        io.write_stage(path, image, attrs, tile=tile)
    elif name.endswith((".tif", ".tiff")):
        io.write_tiff(path, np.asarray(image), attrs.get("pixel_size"))
    else:
        raise DpsInputError(f"{path}: output must end in .zarr, .ome.zarr, .tif or .tiff")


# --------------------------------------------------------------------------------------------
# metrics


def _read_2d(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    from dps_stages import io

    arr, meta = io.read_image(path)
    arr = np.asarray(arr, dtype=np.float32)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise DpsInputError(f"{path}: expected a single 2D image; got shape {arr.shape}")
    io.check_finite(arr, path)
    return arr, meta


def cmd_decorrelation(args: argparse.Namespace) -> None:
    from dps_stages.metrics import decorrelation

    image, meta = _read_2d(args.image)
    pixel_size = args.pixel_size or meta.get("pixel_size")
    res = decorrelation(image, pixel_size=pixel_size, n_r=args.n_r, n_g=args.n_g)
    out = {k: v for k, v in res.to_dict().items() if not isinstance(v, (list, np.ndarray))}
    out["image"] = str(args.image)
    print(json.dumps(out, indent=2))


def cmd_compare(args: argparse.Namespace) -> None:
    from dps_stages.metrics import compare

    cand, _ = _read_2d(args.candidate)
    ref, _ = _read_2d(args.reference)
    if cand.shape != ref.shape:
        raise DpsInputError(
            f"{args.candidate}: shape {cand.shape} differs from the reference "
            f"{args.reference} {ref.shape}"
        )
    out = {k: float(v) for k, v in compare(cand, ref).items()}
    out.update({"candidate": str(args.candidate), "reference": str(args.reference)})
    print(json.dumps(out, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from dps_stages.evaluate import evaluate_level

    table = evaluate_level(
        stages=[(name, Path(path), None if inp == "-" else inp) for name, path, inp in args.stage],
        truth_store=args.truth,
        level=args.level,
        n_r=args.n_r,
        n_g=args.n_g,
    )
    from dps_stages.io import atomic_path

    with atomic_path(args.output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def cmd_summarise(args: argparse.Namespace) -> None:
    from dps_stages.evaluate import summarise

    summarise(args.tables, args.output, args.summary, args.figure)


def cmd_figures(args: argparse.Namespace) -> None:
    from dps_stages.figures import stage_panel

    stage_panel(
        stages=[(name, Path(path)) for name, path in args.stage],
        truth_store=args.truth,
        level=args.level,
        output=args.output,
        n_images=args.n_images,
    )


# --------------------------------------------------------------------------------------------
# classical reconstruction


def cmd_sim_reconstruct(args: argparse.Namespace) -> None:
    """Wiener 2D-SIM reconstruction with pattern parameters estimated from the frames."""
    from dps_stages import io
    from dps_stages.sim import reconstruct_stack

    t0 = time.perf_counter()
    arr, meta = io.read_image(args.input)
    raw = np.asarray(io.as_raw_sim(arr, args.input), dtype=np.float32)
    io.check_finite(raw, args.input)
    optics = _optics(args, meta)
    wiener = args.wiener if args.wiener == "auto" else float(args.wiener)
    images, params = reconstruct_stack(
        raw,
        optics,
        wiener=wiener,
        wiener_factor=args.wiener_factor,
        otf_decay=args.otf_decay,
        local_wiener=args.local_wiener,
    )
    for i, p in enumerate(params):
        log.info("image %d: estimated %s", i, json.dumps(p.to_dict()))
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage")}
    attrs.update(
        {
            "source": str(args.input),
            "stage": args.stage or "sim_wiener",
            "pixel_size": optics.pixel_size / 2,
            "sim_parameters": [p.to_dict() for p in params],
            "optics": optics.to_dict(),
        }
    )
    _write_any(args.output, images, attrs | _provenance("sim-reconstruct", args, t0))


def _psf_for(
    args: argparse.Namespace,
    pixel_size: float | None,
    shape: tuple[int, ...],
    *,
    regrid: bool = False,
):
    """The PSF a deconvolution uses: Airy, srPSF (NA x modulation factor) or a TIFF.

    ``regrid``: a TIFF that records its pixel size is resampled to ``pixel_size``
    (:func:`~dps_stages.optics.rescale_psf`); without one it is taken as it is, with a warning.
    """
    from dps_stages.optics import airy_psf, psf_size_for, rescale_psf, sr_psf

    if args.psf not in ("airy", "sr"):
        arr, meta = _read_2d(args.psf)
        psf = np.asarray(arr, dtype=np.float64)
        if psf.min() < 0 or psf.sum() <= 0:
            raise DpsInputError(f"{args.psf}: a PSF must be non-negative with a positive sum")
        psf = (psf / psf.sum()).astype(np.float32)
        if regrid and pixel_size and meta.get("pixel_size"):
            zoom = float(meta["pixel_size"]) / float(pixel_size)
            return rescale_psf(psf, 1 / zoom, int(psf.shape[0] * zoom) | 1)
        if regrid:
            log.warning("%s: no pixel size; taken to be on the %s nm grid", args.psf, pixel_size)
        return psf
    if pixel_size is None:
        raise DpsInputError(f"{args.input}: the file gives no pixel size; pass --pixel-size")
    factor = args.modulation_factor if args.psf == "sr" else 1.0
    size = min(psf_size_for(args.wavelength, args.na * factor, pixel_size), *shape[-2:])
    size -= 1 - size % 2  # odd: centred on a pixel
    if args.psf == "sr":
        return sr_psf(size, args.wavelength, args.na, pixel_size, args.modulation_factor)
    return airy_psf(size, args.wavelength, args.na, pixel_size)


def cmd_deconvolve(args: argparse.Namespace) -> None:
    """Richardson-Lucy or sparse-Hessian deconvolution, image by image."""
    from dps_stages import io
    from dps_stages.deconvolution import richardson_lucy, sparse_hessian

    t0 = time.perf_counter()
    arr, meta = io.read_image(args.input)
    images = np.asarray(io.as_image_stack(arr, args.input), dtype=np.float32)
    io.check_finite(images, args.input)
    pixel_size = args.pixel_size or meta.get("pixel_size")
    psf = _psf_for(args, pixel_size, images.shape)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        if args.method == "rl":
            out[i] = richardson_lucy(image, psf, iterations=args.iterations or 30)
        else:
            out[i] = sparse_hessian(
                image, psf=psf, fidelity=args.fidelity, sparsity=args.sparsity,
                iterations=args.iterations or 100,
            )  # fmt: skip
        log.info("image %d/%d deconvolved (%s)", i + 1, len(images), args.method)
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage")}
    attrs.update({"source": str(args.input), "stage": args.stage or args.method,
                  "pixel_size": pixel_size, "psf": str(args.psf)})  # fmt: skip
    _write_any(args.output, out, attrs | _provenance("deconvolve", args, t0))


def cmd_export(args: argparse.Namespace) -> None:
    """Write a stage's output as OME-Zarr and ImageJ TIFF for Fiji and napari."""
    from dps_stages import io

    arr, meta = io.read_image(args.input)
    image = np.asarray(arr, dtype=np.float32)
    attrs = {k: v for k, v in meta.items() if k != "path"}
    if args.ome_zarr:
        io.write_ome_zarr(args.ome_zarr, image, meta.get("pixel_size"), attrs)
    if args.tiff:
        io.write_tiff(args.tiff, image, meta.get("pixel_size"))


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dps", description="dps: DPS-framework restoration of fluorescence microscopy images."
    )
    parser.add_argument("--version", action="version", version=f"dps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate ground truth, raw SIM frames and widefield")
    p.add_argument("output", type=Path, help="Zarr group to write")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--seed", type=int, default=20241121)
    p.add_argument("--structures", type=_names, default="microtubules,ccps,er,actin")
    p.add_argument("--n-per-structure", type=int, default=2)
    p.add_argument("--size", type=int, default=128, help="camera-grid size in pixels")
    p.add_argument("--levels", type=_floats, default="20,100,1000", help="photons, peak pixel")
    p.add_argument("--pattern-frequency", type=float, default=0.9)
    p.add_argument("--modulation", type=float, default=0.8)
    p.add_argument("--angle-error", type=float, default=0.0)
    p.add_argument("--phase-error", type=float, default=0.0)
    p.add_argument("--read-noise", type=float, default=1.5)
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--offset", type=float, default=100.0)
    p.add_argument("--bits", type=int, default=16)
    p.add_argument("--salt-pepper", type=float, default=1e-4)
    p.add_argument("--tile", type=int, default=1024)
    _add_optics(p)
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
        type=float,
        help="pixel size of this image at the sample, nm (wins "
        "over the file's own; for a SIM image that is half the camera pixel)",
    )
    p.add_argument("--widefield", type=Path, help="with --kind raw: also write the frame mean")
    p.add_argument("--tile", type=int, default=1024)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("background", help="rolling-ball background subtraction")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    p.add_argument("--radius", type=float, default=50.0, help="ball radius in pixels")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--stage", help="name recorded in the output's attributes")
    p.set_defaults(func=cmd_background)

    p = sub.add_parser("decorrelation", help="image resolution by decorrelation analysis")
    p.add_argument("image", type=Path)
    p.add_argument("--pixel-size", type=float, help="nm; default: from the file")
    p.add_argument("--n-r", type=int, default=50)
    p.add_argument("--n-g", type=int, default=10)
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
    p.add_argument("--n-r", type=int, default=50)
    p.add_argument("--n-g", type=int, default=10)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summarise", help="merge per-level metrics into one table and a figure")
    p.add_argument("output", type=Path, help="TSV: all rows of all levels")
    p.add_argument("tables", type=Path, nargs="+")
    p.add_argument("--summary", type=Path, required=True, help="TSV: mean and std per stage")
    p.add_argument("--figure", type=Path, required=True)
    p.set_defaults(func=cmd_summarise)

    p = sub.add_parser("figures", help="stage outputs side by side with the ground truth")
    p.add_argument("output", type=Path, help="PNG to write")
    p.add_argument("--stage", nargs=2, action="append", required=True, metavar=("NAME", "PATH"))
    p.add_argument("--truth", type=Path)
    p.add_argument("--level", default="input")
    p.add_argument("--n-images", type=int, default=4)
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("sim-reconstruct", help="Wiener 2D-SIM reconstruction (Gustafsson 2000)")
    p.add_argument("input", type=Path, help="raw frames: (9, y, x) or (n, 9, y, x)")
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif (2x grid)")
    p.add_argument(
        "--wiener", type=_wiener, default="auto",
        help="Wiener parameter w, or 'auto': wiener-factor x the measured noise-to-signal ratio",
    )  # fmt: skip
    p.add_argument("--wiener-factor", type=float, default=3.0)
    p.add_argument(
        "--otf-decay", type=float, default=1.0,
        help="damping a of the model OTF (a**q, fairSIM's approximate OTF; 1: ideal)",
    )  # fmt: skip
    p.add_argument(
        "--local-wiener", type=float, default=1.5,
        help="local noise suppression of the background grain (Lee 1980); 0: off",
    )  # fmt: skip
    p.add_argument("--stage", help="name recorded in the output's attributes")
    _add_optics(p)
    p.set_defaults(func=cmd_sim_reconstruct, pixel_size=None)

    p = sub.add_parser("deconvolve", help="Richardson-Lucy or sparse-Hessian deconvolution")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    p.add_argument("--method", choices=("rl", "sparse"), default="rl")
    p.add_argument(
        "--psf", default="airy",
        help="'airy' (widefield), 'sr' (SIM passband: NA x modulation factor) or a PSF TIFF",
    )  # fmt: skip
    p.add_argument("--iterations", type=int, default=None,
                   help="RL iterations (default 30) or split-Bregman iterations (100)")  # fmt: skip
    p.add_argument("--fidelity", type=float, default=150.0, help="sparse: fidelity weight")
    p.add_argument("--sparsity", type=float, default=10.0, help="sparse: L1 weight")
    p.add_argument("--stage", help="name recorded in the output's attributes")
    _add_optics(p)
    p.set_defaults(func=cmd_deconvolve, pixel_size=None)

    p = sub.add_parser("export", help="a stage's output as OME-Zarr and ImageJ TIFF")
    p.add_argument("input", type=Path)
    p.add_argument("--ome-zarr", type=Path)
    p.add_argument("--tiff", type=Path)
    p.set_defaults(func=cmd_export)

    from dps_stages.cli_nets import add_parsers

    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        args.func(args)
    except DpsInputError as exc:
        print(f"dps {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
