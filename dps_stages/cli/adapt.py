"""``dps adapt NET MODEL RAW OUT``: fine-tune a trained network on a user's own raw frames,
without ground truth (the denoiser by Recorrupted-to-Recorrupted, a SIM network or OIDN by
SIM physics consistency with the calibrated microscope)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages.cli.common import _add_optics, _count, _optics, _provenance

log = logging.getLogger("dps")

#: the networks that adapt, and how
ADAPTABLE = {"denoise": "r2r", "sim": "physics", "oidn": "physics"}


def _calibration(args: argparse.Namespace, raw: np.ndarray, optics: Any) -> Any:
    """The calibration of the frames: the JSON of ``--calibration``, else computed here."""
    from dps_stages import io
    from dps_stages.calibrate import calibrate

    if args.calibration is None:
        try:
            return calibrate(raw, optics, seed=args.seed)
        except ValueError as exc:
            raise io.DpsInputError(f"{args.input}: cannot calibrate the frames: {exc}") from exc
    try:
        calib = json.loads(Path(args.calibration).read_text())
    except (OSError, ValueError) as exc:
        raise io.DpsInputError(f"{args.calibration}: not a calibration JSON: {exc}") from exc
    if calib.get("determined") is False:
        raise io.DpsInputError(f"{args.calibration}: {calib.get('reason', 'not calibrated')}")
    return calib


def cmd_adapt(args: argparse.Namespace) -> None:
    """Adapt ``args.model`` to the frames of ``args.input``; write a model folder. A SIM
    network (or OIDN) adapted here reconstructs these raw frames themselves in the chain (its
    physics loss stops at the camera's noise level), not the denoiser's output."""
    import torch

    from dps_stages import io
    from dps_stages.adapt import adapt_denoiser, adapt_sim
    from dps_stages.inference import load_model, save_model

    t0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    if Path(args.output).resolve() == Path(args.model).resolve():
        raise io.DpsInputError(f"{args.output}: the adapted model must not replace its source")
    model, record = load_model(args.model, expect=args.net)
    arr, meta = io.read_image(args.input)
    raw = np.asarray(io.as_raw_sim(arr, args.input), dtype=np.float32)
    io.check_image(raw, args.input, min_size=16)
    optics = _optics(args, meta)
    calib = _calibration(args, raw, optics)
    steps = {} if args.steps is None else {"steps": args.steps}
    try:
        if args.net == "denoise":
            camera = calib["camera"] if isinstance(calib, dict) else calib
            model, history = adapt_denoiser(model, raw, camera, seed=args.seed, **steps)
        else:
            attenuation = (
                float(calib["sim_settings"]["otf_decay"]) if isinstance(calib, dict) else calib
            )
            camera = calib.get("camera") if isinstance(calib, dict) else None
            model, history = adapt_sim(
                model, raw, None, optics, attenuation, camera=camera, seed=args.seed, **steps
            )
    except (KeyError, TypeError, ValueError) as exc:
        where = args.calibration or args.input
        raise io.DpsInputError(f"{where}: cannot adapt with this calibration: {exc!r}") from exc
    record = dict(record) | {
        "adapted": {
            "method": ADAPTABLE[args.net],
            "frames": str(args.input),
            "calibration": str(args.calibration) if args.calibration else "computed",
            "source_model": str(args.model),
            "history": {k: v for k, v in history.items() if not isinstance(v, np.ndarray)},
            **_provenance("adapt", args),
        }
    }
    record = json.loads(json.dumps(record, default=str))  # plain types: weights_only loads it
    with io.atomic_path(args.output) as tmp:
        tmp.mkdir()
        save_model(tmp / "model.pt", args.net, model, record)
        (tmp / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("adapted %s on %s in %.0f s: %s", args.net, args.input, time.perf_counter() - t0,
             args.output)  # fmt: skip


def add_parsers(sub) -> None:
    """The ``adapt`` subcommand."""
    p = sub.add_parser(
        "adapt",
        help="fine-tune a trained network on your own raw frames (no ground truth needed)",
    )
    p.add_argument("net", choices=tuple(ADAPTABLE), help="denoise (R2R), sim or oidn (physics)")
    p.add_argument("model", type=Path, help="trained model folder (dps train)")
    p.add_argument("input", type=Path, help="raw frames: (9, y, x) or (n, 9, y, x), in ADU")
    p.add_argument("output", type=Path, help="model folder to write")
    p.add_argument("--calibration", type=Path,
                   help="calibration JSON of the frames (dps calibrate); default: "
                   "computed here")  # fmt: skip
    p.add_argument("--steps", type=_count, default=None,
                   help="optimiser steps (default: dps_stages.adapt's budget)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_count, default=None, help="CPU threads for torch")
    _add_optics(p)
    p.set_defaults(func=cmd_adapt)
