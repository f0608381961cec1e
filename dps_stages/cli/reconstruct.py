"""The classical reconstructions of ``dps``: Wiener 2D-SIM (``sim-reconstruct``) and
Richardson-Lucy or sparse-Hessian deconvolution (``deconvolve``)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages import settings
from dps_stages.cli.common import (
    _add_optics,
    _add_stage_name,
    _count,
    _non_negative,
    _optics,
    _option,
    _otf_decay,
    _positive,
    _provenance,
    _psf_for,
    _wiener,
    _write_any,
)

log = logging.getLogger("dps")


def wiener_kw(args: argparse.Namespace) -> dict[str, Any]:
    """The Wiener SIM settings of the options (the fields of :class:`settings.SIMDefaults`)."""
    return {key: getattr(args, key) for key in asdict(settings.DEFAULTS.sim)}


def add_wiener_options(p) -> None:
    """The Wiener 2D-SIM options (config ``sim``); defaults from :mod:`dps_stages.settings`."""
    _option(p, "--wiener", key="sim.wiener", type=_wiener,
            help="Wiener parameter w, or 'auto': wiener-factor x the measured noise-to-signal "
            "ratio")  # fmt: skip
    _option(p, "--wiener-factor", key="sim.wiener_factor", type=_positive)
    _option(p, "--otf-decay", key="sim.otf_decay", type=_otf_decay,
            help="damping a of the model OTF (a**q, fairSIM's; 1: ideal); 'auto': fitted to "
            "the frames (dps calibrate), or taken from --calibration")  # fmt: skip
    _option(p, "--local-wiener", key="sim.local_wiener", type=_non_negative,
            help="local noise suppression of the background grain (Lee 1980); 0: off")  # fmt: skip
    _option(p, "--pupil", key="sim.pupil", choices=("ideal", "calibrated"),
            help="detection pupil: ideal, or the calibration's aberrations (with --otf-decay "
            "auto)")  # fmt: skip


def _noise_variances(meta: dict, n: int, optics, source) -> list[float | None]:
    """Per image, the frames' noise variance for the Wiener stage: the mid band of the
    denoiser's error profile (``denoise_error``, written by ``dps infer denoise
    --calibration``; :mod:`dps_stages.sure`), or None (raw frames: measured beyond the OTF)."""
    from dps_stages.io import DpsInputError
    from dps_stages.sure import ErrorProfile

    profiles = meta.get("denoise_error")
    if not profiles:
        return [None] * n
    try:
        if len(profiles) != n:
            raise ValueError(f"{len(profiles)} profiles for {n} images")
        out = [ErrorProfile.from_dict(d).band(float(optics.cutoff_per_pixel)) for d in profiles]
    except (ValueError, KeyError, TypeError) as exc:
        raise DpsInputError(f"{source}: attribute denoise_error unusable: {exc}") from exc
    for i, v in enumerate(out):
        if not v > 0:
            log.warning(
                "%s image %d: the denoiser's error reads %.4g (not > 0); the Wiener stage "
                "measures the noise beyond the OTF instead", source, i, v,
            )  # fmt: skip
            out[i] = None
    return out


def cmd_sim_reconstruct(args: argparse.Namespace) -> None:
    """Wiener 2D-SIM reconstruction with pattern parameters estimated from the frames."""
    import dask
    import dask.array as da

    from dps_stages import io
    from dps_stages.cli.common import _progress
    from dps_stages.sim.reconstruction import reconstruct_tiled

    arr, meta = io.read_image(args.input, lazy=True, tile=args.tile)
    raw = da.asarray(io.as_raw_sim(arr, args.input)).astype(np.float32)
    raw = io.check_image(raw, args.input, min_size=16)  # checked as it streams
    optics = _optics(args, meta)
    kw = wiener_kw(args)
    pupil_mode = kw.pop("pupil")
    if pupil_mode == "calibrated" and kw["otf_decay"] != "auto":
        raise io.DpsInputError(
            f"--pupil calibrated needs --otf-decay auto (the calibrated OTF); got --otf-decay "
            f"{kw['otf_decay']}"
        )
    if kw["otf_decay"] == "auto":
        from dps_stages.calibrate import resolve_sim_settings

        # fitted on the central tile (the whole frames when they fit one tile)
        ny, nx = raw.shape[-2:]
        cy, cx = min(args.tile, ny), min(args.tile, nx)
        y0, x0 = (ny - cy) // 2, (nx - cx) // 2
        centre = np.asarray(raw[..., y0 : y0 + cy, x0 : x0 + cx])
        try:
            kw = resolve_sim_settings(kw, centre, optics, calibration=args.calibration,
                                      pupil=pupil_mode == "calibrated")  # fmt: skip
        except (OSError, KeyError, ValueError, TypeError) as exc:
            where = args.calibration or args.input
            raise io.DpsInputError(f"{where}: no OTF attenuation: {exc}") from exc
        log.info("OTF attenuation a = %.4g, pupil %s (%s)", kw["otf_decay"],
                 kw.get("pupil") or "ideal", args.calibration or "fitted")  # fmt: skip
        del centre
    noise = _noise_variances(meta, raw.shape[0], optics, args.input)
    images, params, wieners = [], [], []
    for i in range(raw.shape[0]):
        image, p, wiener = reconstruct_tiled(raw[i], optics, tile=args.tile,
                                             noise_variance=noise[i], **kw)  # fmt: skip
        images.append(image)
        params.append(p)
        wieners.append(float(wiener))
        log.info("image %d: estimated %s, Wiener %.4g, noise variance %s", i,
                 json.dumps(p.to_dict()), wiener, noise[i])  # fmt: skip
    images = da.stack(images)
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage")}
    attrs.update(
        {
            "source": str(args.input),
            "stage": args.stage or "sim_wiener",
            "pixel_size": optics.pixel_size / 2,
            "sim_parameters": [p.to_dict() for p in params],
            "sim_settings": kw,
            "noise_variance": noise,
            "wiener": wieners,
            "optics": optics.to_dict(),
        }
    )
    # One tile at a time: a SIM tile holds about a dozen complex arrays on the 2x grid, and
    # its FFTs already use every core (workers=-1), so parallel tiles only add memory.
    with _progress(), dask.config.set(scheduler="synchronous"):
        _write_any(args.output, images, attrs | _provenance("sim-reconstruct", args),
                   tile=args.tile)  # fmt: skip


def cmd_deconvolve(args: argparse.Namespace) -> None:
    """Richardson-Lucy or sparse-Hessian deconvolution, image by image."""
    from dps_stages import io
    from dps_stages.cli.common import _progress
    from dps_stages.deconvolution import deconvolution_halo, deconvolve_tiled

    arr, meta = io.read_image(args.input, lazy=True, tile=args.tile)
    images = io.as_image_stack(arr, args.input)
    images = io.check_image(images, args.input)  # a lazy stack is checked as it streams
    pixel_size = args.pixel_size or meta.get("pixel_size")
    psf = _psf_for(args, pixel_size, images.shape)
    iterations = args.iterations or settings.default(f"deconvolution.{args.method}.iterations")
    kw = {} if args.method == "rl" else {"fidelity": args.fidelity, "sparsity": args.sparsity}
    halo = deconvolution_halo(psf, args.method)
    out = deconvolve_tiled(images, psf, method=args.method, tile=args.tile, halo=halo,
                           iterations=iterations, **kw)  # fmt: skip
    log.info("%d images, %s, tiles of %d pixels with a halo of %d", images.shape[0],
             args.method, args.tile, halo)  # fmt: skip
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage")}
    attrs.update({"source": str(args.input), "stage": args.stage or args.method,
                  "pixel_size": pixel_size, "psf": str(args.psf)})  # fmt: skip
    with _progress():
        _write_any(args.output, out, attrs | _provenance("deconvolve", args),
                   tile=args.tile)  # fmt: skip


def add_parsers(sub) -> None:
    """The subcommands of this module."""
    p = sub.add_parser("sim-reconstruct", help="Wiener 2D-SIM reconstruction (Gustafsson 2000)")
    p.add_argument("input", type=Path, help="raw frames: (9, y, x) or (n, 9, y, x)")
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif (2x grid)")
    add_wiener_options(p)
    p.add_argument("--calibration", type=Path,
                   help="calibration JSON (dps calibrate) giving the OTF attenuation when "
                   "--otf-decay is auto; default: fitted to the input frames")  # fmt: skip
    _option(p, "--tile", key="tile", type=_count,
            help="tile side (camera pixels), each reconstructed with a halo")  # fmt: skip
    _add_stage_name(p)
    _add_optics(p)
    p.set_defaults(func=cmd_sim_reconstruct)

    rl = settings.DEFAULTS.deconvolution.rl.iterations
    sparse = settings.DEFAULTS.deconvolution.sparse.iterations
    p = sub.add_parser("deconvolve", help="Richardson-Lucy or sparse-Hessian deconvolution")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    p.add_argument("--method", choices=("rl", "sparse"), default="rl")
    p.add_argument(
        "--psf", default="airy",
        help="'airy' (widefield), 'sr' (SIM passband: NA x modulation factor) or a PSF TIFF",
    )  # fmt: skip
    p.add_argument("--iterations", type=_count, default=None,
                   help=f"RL iterations (default {rl}) or split-Bregman ({sparse})")  # fmt: skip
    _option(p, "--fidelity", key="deconvolution.sparse.fidelity", type=_positive,
            help="sparse: fidelity weight")  # fmt: skip
    _option(p, "--sparsity", key="deconvolution.sparse.sparsity", type=_non_negative,
            help="sparse: L1 weight")  # fmt: skip
    _option(p, "--tile", key="tile", type=_count,
            help="tile side (pixels), each deconvolved with a halo sized from the PSF")  # fmt: skip
    _add_stage_name(p)
    _add_optics(p)
    p.set_defaults(func=cmd_deconvolve)
