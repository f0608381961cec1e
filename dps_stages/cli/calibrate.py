"""``dps calibrate RAW OUT.json``: camera, pattern, OTF and haze from a dataset's raw frames."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dps_stages.cli.common import _add_optics, _optics

log = logging.getLogger("dps")


def _note_figure(path: Path, text: str) -> None:
    """A figure that says why there is no calibration to show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Calibrate from the raw frames; write the JSON (and the figure) atomically."""
    from dps_stages import io
    from dps_stages.calibrate import calibrate, plot_calibration, undetermined, write_calibration
    from dps_stages.calibrate._util import MIN_SIZE

    if args.figure is not None and Path(args.figure).resolve() == Path(args.output).resolve():
        raise io.DpsInputError(f"{args.figure}: the figure and the JSON must differ")
    arr, meta = io.read_image(args.input)
    raw = np.asarray(io.as_raw_sim(arr, args.input), dtype=np.float64)
    io.check_image(raw, args.input, min_size=16)
    optics = _optics(args, meta)
    reason = None
    if min(raw.shape[-2:]) < MIN_SIZE:
        reason = undetermined(raw.shape, optics)["reason"]
    else:
        try:
            calib = calibrate(raw, optics, seed=args.seed)
        except ValueError as exc:  # e.g. pixels too coarse for a noise band beyond the cutoff
            reason = str(exc)
    if reason is not None:
        # not calibratable (a test image, a tiny crop, undersampled frames): say so; the
        # Wiener stage then keeps the ideal OTF, as for any undetermined attenuation
        record = undetermined(raw.shape, optics, reason)
        log.warning("%s: not calibrated: %s; the ideal OTF is used", args.input, reason)
        if args.figure is not None:
            with io.atomic_path(args.figure) as tmp:
                _note_figure(tmp, f"{args.input}: not calibrated: {reason}")
        write_calibration(args.output, record)
        return
    if args.figure is not None:
        with io.atomic_path(args.figure) as tmp:
            plot_calibration(calib, tmp)
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


def cmd_denoise_error(args: argparse.Namespace) -> None:
    """The figure of a denoised stage's error profiles (``dps infer denoise --calibration``)."""
    import json

    from dps_stages import io
    from dps_stages.optics import Optics
    from dps_stages.sure import ErrorProfile, plot_profiles

    _, meta = io.read_image(args.input, lazy=True)
    try:
        profiles = [ErrorProfile.from_dict(d) for d in meta.get("denoise_error") or []]
        optics = Optics(**json.loads(Path(args.calibration).read_text())["optics"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise io.DpsInputError(
            f"{args.input} / {args.calibration}: no error profile or no optics: {exc}"
        ) from exc
    with io.atomic_path(args.output) as tmp:
        if profiles:
            plot_profiles(profiles, float(optics.cutoff_per_pixel), tmp)
        else:
            _note_figure(tmp, f"{args.input}: no error profile (the camera was not calibrated)")


def add_parsers(sub) -> None:
    """The ``calibrate`` subcommand."""
    p = sub.add_parser(
        "calibrate",
        help="camera gain/offset/read noise, SIM pattern, OTF attenuation and haze from raw frames",
    )
    p.add_argument("input", type=Path, help="raw frames: (9, y, x) or (n, 9, y, x), in ADU")
    p.add_argument("output", type=Path, help="calibration JSON")
    p.add_argument("--figure", type=Path, help="PNG of the estimates and fits")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    _add_optics(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "denoise-error",
        help="figure of the denoiser's error per frequency (SURE, from dps infer denoise "
        "--calibration) against the raw noise",
    )
    p.add_argument("input", type=Path, help="the denoised stage (Zarr)")
    p.add_argument("calibration", type=Path, help="its acquisition's calibration (the optics)")
    p.add_argument("output", type=Path, help="the figure, .png")
    p.set_defaults(func=cmd_denoise_error)
