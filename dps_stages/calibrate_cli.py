"""``dps calibrate RAW OUT.json``: camera, pattern, OTF and haze from a dataset's raw frames.

Standalone parser and command, to be wired into the ``dps`` CLI with ``add_parser(sub)``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("dps")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``calibrate`` sub-command to ``sub`` (an ``add_subparsers()`` result)."""
    p = sub.add_parser(
        "calibrate",
        help="camera gain/offset/read noise, SIM pattern, OTF attenuation and haze from raw frames",
    )
    p.add_argument("input", type=Path, help="raw frames: (9, y, x) or (n, 9, y, x)")
    p.add_argument("output", type=Path, help="calibration JSON")
    p.add_argument("--figure", type=Path, help="PNG of the estimates and fits")
    g = p.add_argument_group("optics (nm)")
    g.add_argument("--wavelength", type=float, default=525.0, help="emission wavelength")
    g.add_argument("--na", type=float, default=1.4, help="numerical aperture")
    g.add_argument("--pixel-size", type=float, default=None, help="camera pixel at the sample")
    g.add_argument("--modulation-factor", type=float, default=1.9, help="SIM passband factor")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.set_defaults(func=cmd_calibrate)
    return p


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Calibrate from the raw frames and write the JSON (and the figure)."""
    from dps_stages import io
    from dps_stages.calibrate import calibrate, plot_calibration, write_calibration
    from dps_stages.optics import Optics

    arr, meta = io.read_image(args.input)
    raw = np.asarray(io.as_raw_sim(arr, args.input), dtype=np.float64)
    io.check_finite(raw, args.input)
    pixel_size = args.pixel_size or meta.get("pixel_size")
    if pixel_size is None:
        raise io.DpsInputError(f"{args.input}: the file gives no pixel size; pass --pixel-size")
    optics = Optics(
        wavelength=args.wavelength,
        na=args.na,
        pixel_size=float(pixel_size),
        modulation_factor=args.modulation_factor,
    )
    if raw.shape[-1] < 64 or raw.shape[-2] < 64:
        raise io.DpsInputError(f"{args.input}: calibration needs frames of at least 64 x 64")
    try:
        calib = calibrate(raw, optics, seed=args.seed)
    except ValueError as exc:
        raise io.DpsInputError(f"{args.input}: {exc}") from exc
    write_calibration(args.output, calib)
    log.info(
        "calibration of %s: gain %.3g ADU/e-, offset %.4g ADU, read noise %.3g e-, "
        "OTF attenuation %.3g, haze %.2g",
        args.input,
        calib.camera.gain,
        calib.camera.offset,
        calib.camera.read_noise,
        calib.otf.attenuation,
        calib.haze.level,
    )
    if args.figure is not None:
        plot_calibration(calib, args.figure)
