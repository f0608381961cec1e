"""The network commands of ``dps``: ``train``, ``infer`` (one network as a DAG stage) and
``restore`` (the whole chain on one file). Registered by :func:`dps_stages.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages.io_core import DpsInputError

log = logging.getLogger("dps")


def _names() -> tuple[str, ...]:
    from dps_stages.nets.registry import NAMES

    return NAMES


#: every registered network (:mod:`dps_stages.nets.registry`)
NETS = _names()


def _threads(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def _arch(args: argparse.Namespace) -> dict[str, Any]:
    """The spec's preset of ``--scale``, with ``--width``, ``--depth``, ``--blocks`` put in
    (``--depth`` sets the spec's ``depth_key``) and completed by its ``adapt_arch``."""
    from dps_stages.nets.registry import get

    spec = get(args.net)
    arch = spec.arch(args.scale)
    for key in ("width", "depth", "blocks"):
        value = getattr(args, key)
        if value is not None:
            arch[spec.depth_key if key == "depth" else key] = value
    return spec.adapt_arch(args, arch) if spec.adapt_arch else arch


def _sim_kw(args: argparse.Namespace) -> dict[str, Any]:
    wiener = args.wiener if args.wiener == "auto" else float(args.wiener)
    return {
        "wiener": wiener,
        "wiener_factor": args.wiener_factor,
        "otf_decay": args.otf_decay,
        "local_wiener": args.local_wiener,
    }


def cmd_train(args: argparse.Namespace) -> None:
    """``dps train <net>``: the network's spec builds its data and its loss; one loop trains."""
    from dps_stages import training
    from dps_stages.cli.common import _optics_at
    from dps_stages.inference import restore_with
    from dps_stages.nets.registry import SIM_NETWORKS, get
    from dps_stages.nets.spec import TrainContext

    _threads(args)
    spec = get(args.net)
    arch = _arch(args)
    # every training setting is the flag of the same name
    fields = dataclasses.fields(training.TrainSettings)
    settings = training.TrainSettings(**{f.name: getattr(args, f.name) for f in fields})
    simulated, optics = False, None
    if spec.data != "generated":
        if args.data is None:
            raise DpsInputError(f"dps train {args.net} needs --data (a simulated split or images)")
        simulated = _is_simulated(args.data)
        if spec.data == "simulated" and not simulated:
            raise DpsInputError(
                f"{args.data}: the {args.net} network trains on a simulated split with ground "
                "truth (dps simulate); only a self-supervised network "
                f"({', '.join(_self_supervised())}) trains on a user's own images"
            )
        pixel = args.pixel_size
        if simulated:
            from dps_stages.io import read_attrs

            pixel = pixel or read_attrs(args.data)["optics"]["pixel_size"]
        elif pixel is None:
            from dps_stages.io import read_image

            pixel = read_image(args.data)[1].get("pixel_size")
        if not pixel:
            raise DpsInputError(f"{args.data}: the images carry no pixel size; pass --pixel-size")
        optics = _optics_at(args, pixel)

    def psf_for(pixel: float, regrid: bool) -> np.ndarray:
        # the same Airy / srPSF / file choice as `dps deconvolve --psf`, on a grid of `pixel`
        from dps_stages.cli.common import _psf_for

        return _psf_for(args, pixel, (10**6, 10**6), regrid=regrid)

    ctx = TrainContext(
        args=args,
        optics=optics,
        simulated=simulated,
        weights={t.key: getattr(args, _dest(t.flag)) for t in spec.loss_terms},
        psf_for=psf_for,
        arch=arch,
        sim_kw=_sim_kw(args) if "sim_options" in spec.inputs else None,
        restore=restore_with,
        sim_networks=SIM_NETWORKS,
    )
    if spec.data == "generated":
        pairs, vpairs = spec.pairs(ctx, None, False), spec.pairs(ctx, None, True)
    else:
        pairs = spec.pairs(ctx, args.data, False)
        vpairs = spec.pairs(ctx, args.val, True) if args.val else None
    loss = spec.loss(ctx)
    log.info(
        "%s: %d training examples%s",
        args.net,
        len(pairs),
        f", {len(vpairs)} validation" if vpairs else "",
    )
    ctx.record["command"] = "dps train " + args.net
    info = training.train(
        args.net,
        arch,
        pairs,
        vpairs,
        loss,
        args.output,
        settings,
        checkpoint=args.checkpoint,
        record=ctx.record,
    )
    log.info(
        "trained %s: %s",
        args.net,
        json.dumps(
            {k: info[k] for k in ("parameters", "seconds", "final_loss", "device", "loss_features")}
        ),
    )


def _dest(flag: str) -> str:
    """The argparse destination of a long flag: ``--w-ssim`` -> ``w_ssim``."""
    return flag.lstrip("-").replace("-", "_")


def _self_supervised() -> list[str]:
    from dps_stages.nets.registry import REGISTRY

    return [n for n, s in REGISTRY.items() if s.self_supervised]


def cmd_identify_psf(args: argparse.Namespace) -> None:
    """The PSF of an image, identified by the network; optionally its srPSF on the SIM grid."""
    from dps_stages.inference import load_model, select_device
    from dps_stages.io import atomic_path, write_tiff
    from dps_stages.optics import rescale_psf
    from dps_stages.psf_id import identify

    _threads(args)
    from dps_stages import io

    arr, meta = io.read_image(args.image)
    images = np.asarray(io.as_image_stack(arr, args.image), dtype=np.float32)
    io.check_image(images, args.image, min_size=16)
    model, record = load_model(args.model, expect="psfid", device=select_device(args.device))
    pixel = args.pixel_size or meta.get("pixel_size")
    fc = theta = None
    if model.in_channels == 3:  # a network told the pupil radius and the aberration level
        if not pixel:
            raise DpsInputError(f"{args.image}: the file gives no pixel size; pass --pixel-size")
        fc, theta = args.na * float(pixel) / args.wavelength, args.theta_max
    # one microscope, one PSF: the mean of the PSFs identified in each image of a stack
    dev = next(model.parameters()).device
    psf = np.mean([identify(model, im, fc=fc, theta_max=theta, device=dev) for im in images], 0)
    psf = (psf / psf.sum()).astype(np.float32)
    write_tiff(args.output, psf, float(pixel) if pixel else None)
    if args.sr:
        # the srPSF on the SIM grid: the identified PSF narrowed by modulation factor / 2
        write_tiff(args.sr, rescale_psf(psf, args.modulation_factor / 2),
                   float(pixel) / 2 if pixel else None)  # fmt: skip
    if args.figure:
        with atomic_path(args.figure) as tmp:
            _psf_figure(psf, args, float(pixel) if pixel else None, tmp)
    log.info("identified the PSF of %s with %s", args.image, record.get("model_file"))


def _psf_figure(psf: np.ndarray, args: argparse.Namespace, pixel: float | None, path) -> None:
    """The identified PSF beside the theoretical Airy pattern of the optics, and profiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dps_stages.optics import airy_psf

    panels = [("identified", psf)]
    if pixel:
        panels.append((f"Airy {args.wavelength:g} nm, NA {args.na:g}",
                       airy_psf(psf.shape[0], args.wavelength, args.na, pixel)))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.3 * (len(panels) + 1), 3.2), dpi=110)
    c = psf.shape[0] // 2
    for ax, (name, img) in zip(axes, panels, strict=False):
        ax.imshow(img, cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        axes[-1].plot(np.arange(psf.shape[0]) - c, img[c], "o-", ms=3, label=f"{name}, row")
    axes[-1].plot(np.arange(psf.shape[0]) - c, psf[:, c], "x:", ms=3, label="identified, column")
    axes[-1].set_xlabel("pixel")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _is_simulated(path: Path) -> bool:
    from dps_stages.io import is_zarr, open_group

    if not is_zarr(Path(path)):
        return False
    try:
        group = open_group(path)
    except DpsInputError:
        return False
    return "truth_2x" in group and "raw" in group


def _denoise_error(args: argparse.Namespace, model, arr, trained: dict) -> list[dict] | None:
    """Per image, the denoiser's error profile by SURE (:mod:`dps_stages.sure`) under the
    camera of ``--calibration``; None (with a warning) when that calibration could not
    determine the camera (frames too small or too coarse: it records why). Warns when the
    calibrated signal lies outside the photon range the denoiser was trained on."""
    from dps_stages.inference import denoiser_error
    from dps_stages.noise import NoiseModel

    if args.net != "denoise":
        raise DpsInputError(f"--calibration is for the denoiser only; got {args.net!r}")
    try:
        record = json.loads(Path(args.calibration).read_text())
        if not isinstance(record, dict) or not ("camera" in record or "determined" in record):
            raise ValueError("no 'camera' and no 'determined' key")
    except (OSError, ValueError) as exc:
        raise DpsInputError(
            f"{args.calibration}: not a calibration (dps calibrate writes one): {exc}"
        ) from exc
    try:
        noise = NoiseModel.from_calibration(record)
    except ValueError as exc:
        log.warning(
            "%s: no camera noise model (%s); the Wiener stage of these frames measures the "
            "noise beyond the OTF cutoff instead", args.calibration, record.get("reason") or exc,
        )  # fmt: skip
        return None
    _check_training_range(args.calibration, record, trained)
    rng = np.random.default_rng(args.seed)
    out = []
    for i in range(arr.shape[0]):
        profile = denoiser_error(model, arr[i], noise, rng)
        log.info("image %d: SURE of the denoiser, raw noise variance %.4g ADU^2", i,
                 profile.raw_variance)  # fmt: skip
        out.append(profile.to_dict())
    return out


def _check_training_range(path: Any, calibration: dict, trained: dict) -> None:
    """Warn when an acquisition's calibrated signal (``camera.photons``) lies outside the
    photon range of the denoiser's training data (its record's ``data.photons``)."""
    span = (trained.get("data") or {}).get("photons")
    counts = (calibration.get("camera") or {}).get("photons") or []
    if not span or not counts:
        return
    lo, hi = float(span[0]), float(span[1])
    outside = [float(p) for p in counts if not lo <= float(p) <= hi]
    if outside:
        log.warning(
            "%s: the acquisition's signal (%s photo-electrons at its brightest pixels) lies "
            "outside the %.4g-%.4g the denoiser was trained on: its output there extrapolates "
            "(simulate.training_levels: data trains on the data's own range)", path,
            ", ".join(f"{p:.3g}" for p in outside), lo, hi,
        )  # fmt: skip


def cmd_infer(args: argparse.Namespace) -> None:
    """One trained network on a stage's images, tile by tile."""
    from dps_stages import io
    from dps_stages.chain import check_pixel_size, run_network
    from dps_stages.cli.common import _progress, _provenance, _write_any
    from dps_stages.inference import describe, load_model, select_device

    _threads(args)
    model, record = load_model(
        args.model, expect=args.net, device=select_device(args.device), precision=args.precision
    )
    arr, meta = io.read_image(args.input, lazy=True)
    if model.in_channels > 1:
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
    arr = io.check_image(arr, args.input, min_size=16 if model.in_channels > 1 else 8)
    pixel = args.pixel_size or meta.get("pixel_size")
    if args.net == "resudbpn":
        check_pixel_size(record, pixel, str(args.input))
    out = run_network(
        model, arr, tile=args.tile, batch=args.batch, denormalise=args.net == "denoise"
    )
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage", "denoise_error")}
    if args.calibration is not None and (profiles := _denoise_error(args, model, arr, record)):
        attrs["denoise_error"] = profiles
    attrs.update(
        {
            "source": str(args.input),
            "stage": args.stage or args.net,
            "pixel_size": pixel / model.scale if pixel else None,
            "network": describe(model, record),
        }
    )
    with _progress():
        _write_any(args.output, out, attrs | _provenance("infer", args), tile=args.tile)


def cmd_restore(args: argparse.Namespace) -> None:
    """The DPS chain on one file, outside the workflow."""
    from dps_stages import io
    from dps_stages.chain import restore
    from dps_stages.cli.common import _optics, _provenance, _write_any

    _threads(args)
    arr, meta = io.read_image(args.input)
    if args.kind == "raw":
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
    image = np.asarray(arr, dtype=np.float32)
    io.check_image(image, args.input, min_size=16 if args.kind == "raw" else 8)
    from dps_stages.cli.checks import check_radius

    check_radius(args.background_radius, image.shape, args.input, "--background-radius")
    optics = _optics(args, meta)
    out, info = restore(
        image,
        kind=args.kind,
        models=args.models,
        optics=optics,
        sim_method=args.sim_method,
        background_radius=args.background_radius,
        sim_kw=_sim_kw(args),
        tile=args.tile,
        batch=args.batch,
        precision=args.precision,
        device=args.device,
    )
    attrs = {"source": str(args.input), "stage": "restore", **info}
    _write_any(
        args.output, out[0] if out.shape[0] == 1 else out, attrs | _provenance("restore", args)
    )


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    from dps_stages.cli.common import _option, _positive
    from dps_stages.cli.reconstruct import add_wiener_options

    g = p.add_argument_group("Wiener SIM (when the chain uses it)")
    _option(g, "--sim-method", key="networks.sim_method", choices=("wiener", "dps", "oidn"))
    add_wiener_options(g)
    _option(g, "--background-radius", key="background.radius", type=_positive,
            help="rolling-ball radius (pixels) before SIM and before Res-U-DBPN")  # fmt: skip


def _add_inference_tiling(p: argparse.ArgumentParser) -> None:
    """How a network runs over an image: tile edge, tiles per forward pass, precision."""
    from dps_stages.cli.common import _count, _option
    from dps_stages.settings import PRECISIONS

    _option(p, "--tile", key="networks.tile", type=_count, help="tile edge in input pixels")
    _option(p, "--batch", key="networks.batch", type=_count,
            help="tiles per forward pass (tiles of one row, of equal shape)")  # fmt: skip
    _option(p, "--precision", key="networks.precision", choices=PRECISIONS,
            help="auto: bf16 autocast with channels_last where the device computes bf16 "
            "natively, else float32; fp32: the exact float32 path")  # fmt: skip


def _add_device(p: argparse.ArgumentParser) -> None:
    from dps_stages.cli.common import _option

    _option(p, "--device", key="networks.device",
            help="auto (GPU if visible), cpu, cuda, cuda:1")  # fmt: skip
    p.add_argument("--threads", type=int, help="CPU threads for torch")


def cmd_export_model(args: argparse.Namespace) -> None:
    """`dps export-model NET MODEL_DIR OUT.zip` (:func:`dps_stages.modelzoo.export_model`)."""
    try:
        import bioimageio.spec  # noqa: F401

        from dps_stages.modelzoo import export_model
    except ImportError as exc:
        raise DpsInputError(
            f"export-model needs bioimageio.spec and bioimageio.core ({exc}); install the "
            "extra: pip install -e '.[modelzoo]'"
        ) from exc
    if not args.output.name.endswith(".zip"):
        raise DpsInputError(f"{args.output}: a bioimage.io package is a .zip file")
    export_model(args.net, args.model, args.output, pixel_size=args.pixel_size,
                 test_size=args.test_size, seed=args.seed)  # fmt: skip
    print(f"wrote {args.output}")


def add_parsers(sub) -> None:
    from dps_stages.cli.common import (
        _add_file_pixel_size,
        _add_optics,
        _add_stage_name,
        _count,
        _positive,
    )

    _add_train_parser(sub, _add_optics)

    p = sub.add_parser("identify-psf", help="identify an image's PSF (blind mode)")
    p.add_argument("image", type=Path, help="a widefield image, or a stack: their mean PSF")
    p.add_argument("output", type=Path, help="the identified PSF, TIFF")
    p.add_argument("--model", type=Path, required=True, help="model folder (dps train psfid)")
    p.add_argument("--sr", type=Path, help="also the srPSF on the SIM grid (TIFF)")
    p.add_argument("--figure", type=Path, help="PNG: identified against the theoretical PSF")
    p.add_argument(
        "--theta-max", type=float, default=0.15,
        help="for a --give-params model: the aberration level of this image (largest |Zernike "
        "coefficient|, waves); the model reads it as the level, not as a bound",
    )  # fmt: skip
    _add_device(p)
    _add_optics(p)
    p.set_defaults(func=cmd_identify_psf)

    p = sub.add_parser(
        "export-model",
        help="a trained network as a BioImage Model Zoo package (bioimage.io spec 0.5, zip)",
    )
    p.add_argument("net", help="denoise, sim, artifact, resudbpn, oidn or psfid")
    p.add_argument("model", type=Path, help="model folder (dps train)")
    p.add_argument("output", type=Path, help="the package, .zip")
    p.add_argument(
        "--pixel-size", type=_positive,
        help="nm per pixel of the network's input (camera grid; SIM grid for artifact)",
    )  # fmt: skip
    p.add_argument("--test-size", type=_count, default=32, help="test image edge, pixels")
    p.add_argument("--seed", type=int, default=0, help="seed of the test image")
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("infer", help="one trained network on a stage's images (tiled)")
    p.add_argument("net", choices=NETS)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    p.add_argument("--model", type=Path, required=True, help="model folder (dps train)")
    p.add_argument(
        "--calibration", type=Path,
        help="denoise only: a calibration JSON (dps calibrate) whose camera noise model "
        "measures the denoiser's error without ground truth (SURE), written to the output's "
        "attributes for the Wiener SIM stage",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the SURE probe")
    _add_inference_tiling(p)
    _add_file_pixel_size(p)
    _add_stage_name(p)
    _add_device(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("restore", help="the DPS chain on one file (raw, SIM or widefield)")
    p.add_argument("input", type=Path, help="TIFF, folder of per-frame TIFFs or Zarr")
    p.add_argument("output", type=Path, help="TIFF or Zarr")
    p.add_argument("--from", dest="kind", choices=("raw", "sim", "widefield"), default="raw")
    p.add_argument(
        "--models",
        type=Path,
        default=Path("results/models"),
        help="folder with denoise/, sim/, artifact/, resudbpn/ (dps train)",
    )
    _add_inference_tiling(p)
    _add_sim_options(p)
    _add_device(p)
    _add_optics(p)
    p.set_defaults(func=cmd_restore)


def _add_train_parser(sub, add_optics) -> None:
    """``dps train <net> OUTPUT ...``: one sub-command per registered network, its flags made
    from the spec (its inputs, its training defaults, its own loss weights and settings)."""
    from dps_stages.cli.common import _count, _positive
    from dps_stages.nets.registry import REGISTRY

    p = sub.add_parser("train", help="train one network (dps train NET --help: its options)")
    nets = p.add_subparsers(dest="net", metavar="NET", required=True)
    for spec in REGISTRY.values():
        q = nets.add_parser(spec.name, help=spec.summary, description=spec.summary)
        q.add_argument("output", type=Path, help="model folder to write")
        if spec.data != "generated":
            q.add_argument("--data", type=Path, help="simulated training split (Zarr)"
                           + (", or your own images" if spec.self_supervised else ""))  # fmt: skip
            q.add_argument("--val", type=Path, help="validation split / images")
        if "denoise_model" in spec.inputs:
            q.add_argument("--denoise-model", type=Path, help="the trained denoiser")
        if "sim_model" in spec.inputs:
            q.add_argument("--sim-model", type=Path,
                           help="with --sim-method dps|oidn: that network")  # fmt: skip
        if "vgg16_weights" in spec.inputs:
            q.add_argument("--vgg16-weights", type=Path,
                           help="ImageNet VGG16 state dict; default: random features")  # fmt: skip
        if "psf" in spec.inputs:
            q.add_argument("--psf", default="sr",
                           help="'sr' (SIM images), 'airy' (widefield) or a PSF TIFF")  # fmt: skip
        g = q.add_argument_group("architecture")
        g.add_argument("--scale", choices=("small", "paper"), default="small")
        g.add_argument("--width", type=_count)
        g.add_argument("--depth", type=_count,
                       help=f"sets {spec.depth_key!r} of the architecture")  # fmt: skip
        g.add_argument("--blocks", type=_count)
        d = spec.defaults
        g = q.add_argument_group("training")
        g.add_argument("--steps", type=_count, default=d.steps)
        g.add_argument("--batch", type=_count, default=d.batch)
        g.add_argument("--patch", type=_count, default=d.patch,
                       help="input patch edge, pixels")  # fmt: skip
        g.add_argument("--lr", type=_positive, default=d.lr)
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("--checkpoint", type=Path, help="checkpoint file: resumed when present")
        g.add_argument("--checkpoint-every", type=_count, default=50)
        g.add_argument("--validate-every", type=_count, default=25)
        g = q.add_argument_group(f"loss weights of {spec.name}")
        for t in spec.loss_terms:
            g.add_argument(t.flag, type=_weight_up_to(t.maximum), default=t.default, help=t.help)
        for s in spec.settings:
            if s.choices:
                g.add_argument(s.flag, choices=s.choices, default=s.default, help=s.help)
            else:
                g.add_argument(s.flag, type=_positive, default=s.default, help=s.help)
        if spec.cli_flags:
            spec.cli_flags(q)
        if "sim_options" in spec.inputs:
            _add_sim_options(q)
        _add_device(q)
        add_optics(q)
        q.set_defaults(func=cmd_train, pixel_size=None, data=None, val=None)


def _weight_up_to(maximum: float | None):
    """A loss weight's type: ``>= 0`` and, when ``maximum`` is given, ``<= maximum``."""
    from dps_stages.cli.common import _non_negative

    if maximum is None:
        return _non_negative

    def weight(text: str) -> float:
        value = _non_negative(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a weight <= {maximum:g}; got {text!r}")
        return value

    return weight
