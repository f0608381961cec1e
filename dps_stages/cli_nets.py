"""The network commands of ``dps``: ``train``, ``infer`` (one network as a DAG stage) and
``restore`` (the whole chain on one file). Registered by :func:`dps_stages.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages.io import DpsInputError

log = logging.getLogger("dps")

NETS = ("denoise", "sim", "artifact", "resudbpn", "oidn", "psfid")


def _threads(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def _arch(args: argparse.Namespace) -> dict[str, Any]:
    from dps_stages import nets

    arch = nets.paper_arch(args.net) if args.scale == "paper" else nets.default_arch(args.net)
    for key in ("width", "depth", "blocks"):
        value = getattr(args, key)
        if value is not None:
            # OIDN's depth is its number of residual groups
            arch["groups" if (args.net == "oidn" and key == "depth") else key] = value
    return arch


def _sim_kw(args: argparse.Namespace) -> dict[str, Any]:
    wiener = args.wiener if args.wiener == "auto" else float(args.wiener)
    return {
        "wiener": wiener,
        "wiener_factor": args.wiener_factor,
        "otf_decay": args.otf_decay,
        "local_wiener": args.local_wiener,
    }


def _dbpn_psf(args: argparse.Namespace, pixel_size: float) -> tuple[np.ndarray, dict[str, Any]]:
    """The PSF of Res-U-DBPN's data term on the OUTPUT grid (half the input's pixel)."""
    from dps_stages.cli.common import _psf_for

    out_pixel = pixel_size / 2
    # a PSF file (an identified PSF) is brought to the output grid by its pixel size
    psf = _psf_for(args, out_pixel, (10**6, 10**6), regrid=True)
    # a PSF large enough for the loss's reach, small enough to stay cheap in every step
    if psf.shape[-1] > 31:
        c, h = psf.shape[-1] // 2, 15
        psf = psf[c - h : c + h + 1, c - h : c + h + 1]
        psf = psf / psf.sum()
    info = {
        "psf": str(args.psf),
        "input_pixel_size": pixel_size,
        "output_pixel_size": out_pixel,
        "wavelength": args.wavelength,
        "na": args.na,
        "modulation_factor": args.modulation_factor,
        "size": int(psf.shape[-1]),
    }
    return psf.astype(np.float32), info


def cmd_train(args: argparse.Namespace) -> None:
    from dps_stages import losses, training
    from dps_stages.optics import Optics

    _threads(args)
    arch = _arch(args)
    settings = training.TrainSettings(
        steps=args.steps,
        batch=args.batch,
        patch=args.patch,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        device=args.device,
    )
    record: dict[str, Any] = {}
    if args.net == "psfid":
        _train_psfid(args, arch, settings)
        return
    if args.data is None:
        raise DpsInputError(f"dps train {args.net} needs --data (a simulated split or images)")
    simulated = _is_simulated(args.data)
    pixel = args.pixel_size
    if simulated:
        from dps_stages.io import read_attrs

        pixel = pixel or read_attrs(args.data)["optics"]["pixel_size"]
    optics = Optics(
        wavelength=args.wavelength,
        na=args.na,
        pixel_size=float(pixel or 1.0),
        modulation_factor=args.modulation_factor,
    )
    val = args.val
    if args.net != "resudbpn" and not simulated:
        raise DpsInputError(
            f"{args.data}: the {args.net} network trains on a simulated split with ground "
            "truth (dps simulate); only resudbpn trains on a user's own images"
        )
    if args.net == "denoise":
        pairs = training.denoise_pairs(args.data)
        vpairs = training.denoise_pairs(val) if val else None
        loss = losses.DenoiseLoss(a=args.w_ssim, b=args.w_l1, e=args.w_fft)
    elif args.net == "sim":
        pairs = training.sim_pairs(args.data, args.denoise_model)
        vpairs = training.sim_pairs(val, args.denoise_model) if val else None
        loss = losses.SIMLoss(ssim=args.w_ssim, l1=args.w_l1)
    elif args.net == "oidn":
        from dps_stages.optics import sr_psf

        pairs = training.sim_pairs(args.data, args.denoise_model)
        vpairs = training.sim_pairs(val, args.denoise_model) if val else None
        # the learned PSF starts from the theoretical srPSF on the 2x grid
        init = sr_psf(15, args.wavelength, args.na, optics.pixel_size / 2, args.modulation_factor)
        record["psf_init"] = {
            "psf": "sr",
            "pixel_size": optics.pixel_size / 2,
            "wavelength": args.wavelength,
            "na": args.na,
            "modulation_factor": args.modulation_factor,
        }
        loss = losses.OIDNLoss(
            w=args.w_oidn,
            psf_weight=args.w_psf,
            charbonnier_weight=args.w_charbonnier,
            init_psf=init,
        )
    elif args.net == "artifact":
        kw = dict(
            optics=optics,
            method=args.sim_method,
            denoise_model=args.denoise_model,
            sim_model=args.sim_model,
            background_radius=args.background_radius,
            sim_kw=_sim_kw(args),
        )
        pairs = training.artifact_pairs(args.data, **kw)
        vpairs = training.artifact_pairs(val, **kw) if val else None
        perceptual = losses.PerceptualLoss(args.vgg16_weights, seed=args.seed)
        loss = losses.ArtifactLoss(perceptual, w_perceptual=args.w_perceptual, w_ssim=args.w_ssim)
    else:
        if simulated:
            # SIM-like images on the 2x grid (srPSF) or widefield-like on the camera grid
            image_pixel = optics.pixel_size / 2 if args.psf == "sr" else optics.pixel_size
        else:
            from dps_stages.io import read_image

            image_pixel = args.pixel_size or read_image(args.data)[1].get("pixel_size")
            if not image_pixel:
                raise DpsInputError(
                    f"{args.data}: the file gives no pixel size; pass "
                    "--pixel-size (the SIM image's pixel, nm)"
                )
        psf, psf_info = _dbpn_psf(args, float(image_pixel))
        record["psf"] = psf_info
        if simulated:
            grid = "2x" if args.psf == "sr" else "1x"
            pairs = training.dbpn_pairs_simulated(
                args.data, _input_psf(args, optics, grid), args.seed, grid=grid
            )
            vpairs = (
                training.dbpn_pairs_simulated(
                    val, _input_psf(args, optics, grid), args.seed, grid=grid
                )
                if val
                else None
            )
        else:
            pairs = training.dbpn_pairs_images(args.data)
            vpairs = training.dbpn_pairs_images(val) if val else None
        loss = losses.DBPNLoss(psf, beta_hessian=args.beta_hessian, beta_l1=args.beta_l1)
    log.info(
        "%s: %d training examples%s",
        args.net,
        len(pairs),
        f", {len(vpairs)} validation" if vpairs else "",
    )
    record["command"] = "dps train " + args.net
    info = training.train(
        args.net,
        arch,
        pairs,
        vpairs,
        loss,
        args.output,
        settings,
        checkpoint=args.checkpoint,
        record=record,
    )
    log.info(
        "trained %s: %s",
        args.net,
        json.dumps(
            {k: info[k] for k in ("parameters", "seconds", "final_loss", "device", "loss_features")}
        ),
    )


def _train_psfid(args: argparse.Namespace, arch: dict[str, Any], settings) -> None:
    """PSF identification: training data drawn on the fly (random Zernike PSFs, simulated
    structures and scikit-image's natural images, the camera chain)."""
    from dps_stages import training
    from dps_stages.psf_id import PSFData, PSFIdentificationLoss

    arch = arch | {"in_channels": 3 if args.give_params else 1, "patch": settings.patch}
    kw = dict(patch=settings.patch, psf_size=arch["psf_size"], theta_max=args.theta_max,
              give_params=args.give_params)  # fmt: skip
    data = PSFData(**kw, seed=settings.seed)
    val = PSFData(**kw, seed=settings.seed + 1)
    info = training.train(
        "psfid", arch, data, val, PSFIdentificationLoss(lam=args.w_reblur), args.output,
        settings, checkpoint=args.checkpoint,
        record={"command": "dps train psfid", "give_params": args.give_params,
                "theta_max": args.theta_max},
    )  # fmt: skip
    log.info("trained psfid: %s", json.dumps({k: info[k] for k in ("parameters", "seconds")}))


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
    io.check_finite(images, args.image)
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


def _input_psf(args: argparse.Namespace, optics, grid: str) -> np.ndarray:
    """The PSF that makes simulated training images from the truth of ``grid``: the same
    Airy / srPSF / file choice as `dps deconvolve --psf`, on that grid, untruncated."""
    from dps_stages.cli.common import _psf_for

    pixel = optics.pixel_size / 2 if grid == "2x" else optics.pixel_size
    return _psf_for(args, pixel, (10**6, 10**6))


def _is_simulated(path: Path) -> bool:
    from dps_stages.io import is_zarr, open_group

    if not is_zarr(Path(path)):
        return False
    try:
        group = open_group(path)
    except DpsInputError:
        return False
    return "truth_2x" in group and "raw" in group


def cmd_infer(args: argparse.Namespace) -> None:
    """One trained network on a stage's images, tile by tile."""
    from dps_stages import io
    from dps_stages.chain import check_pixel_size, run_network
    from dps_stages.cli.common import _progress, _provenance, _write_any
    from dps_stages.inference import describe, load_model, select_device

    _threads(args)
    t0 = time.perf_counter()
    model, record = load_model(args.model, expect=args.net, device=select_device(args.device))
    arr, meta = io.read_image(args.input)
    if model.in_channels > 1:
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
    pixel = args.pixel_size or meta.get("pixel_size")
    if args.net == "resudbpn":
        check_pixel_size(record, pixel, str(args.input))
    out = run_network(model, arr, tile=args.tile, denormalise=args.net == "denoise")
    attrs = {k: v for k, v in meta.items() if k not in ("path", "dps", "stage")}
    attrs.update(
        {
            "source": str(args.input),
            "stage": args.stage or args.net,
            "pixel_size": pixel / model.scale if pixel else None,
            "network": describe(model, record),
        }
    )
    with _progress():
        _write_any(args.output, out, attrs | _provenance("infer", args, t0), tile=args.tile)


def cmd_restore(args: argparse.Namespace) -> None:
    """The DPS chain on one file, outside the workflow."""
    from dps_stages import io
    from dps_stages.chain import restore
    from dps_stages.cli.common import _provenance, _write_any
    from dps_stages.optics import Optics

    _threads(args)
    t0 = time.perf_counter()
    arr, meta = io.read_image(args.input)
    if args.kind == "raw":
        arr = io.as_raw_sim(arr, args.input)
    else:
        arr = io.as_image_stack(arr, args.input)
    image = np.asarray(arr, dtype=np.float32)
    io.check_finite(image, args.input)
    pixel = args.pixel_size or meta.get("pixel_size")
    if not pixel:
        raise DpsInputError(f"{args.input}: the file gives no pixel size; pass --pixel-size")
    optics = Optics(
        wavelength=args.wavelength,
        na=args.na,
        pixel_size=float(pixel),
        modulation_factor=args.modulation_factor,
    )
    out, info = restore(
        image,
        kind=args.kind,
        models=args.models,
        optics=optics,
        sim_method=args.sim_method,
        background_radius=args.background_radius,
        sim_kw=_sim_kw(args),
        tile=args.tile,
        device=args.device,
    )
    attrs = {"source": str(args.input), "stage": "restore", **info}
    _write_any(
        args.output, out[0] if out.shape[0] == 1 else out, attrs | _provenance("restore", args, t0)
    )


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    from dps_stages.cli.common import _option, _positive
    from dps_stages.cli.reconstruct import add_wiener_options

    g = p.add_argument_group("Wiener SIM (when the chain uses it)")
    _option(g, "--sim-method", key="networks.sim_method", choices=("wiener", "dps", "oidn"))
    add_wiener_options(g)
    _option(g, "--background-radius", key="background.radius", type=_positive,
            help="rolling-ball radius (pixels) before SIM and before Res-U-DBPN")  # fmt: skip


def _add_device(p: argparse.ArgumentParser) -> None:
    from dps_stages.cli.common import _option

    _option(p, "--device", key="networks.device",
            help="auto (GPU if visible), cpu, cuda, cuda:1")  # fmt: skip
    p.add_argument("--threads", type=int, help="CPU threads for torch")


def add_parsers(sub) -> None:
    from dps_stages.cli.common import _add_optics, _count, _option, _positive

    p = sub.add_parser("train", help="train one network of the DPS chain")
    p.add_argument("net", choices=NETS)
    p.add_argument("output", type=Path, help="model folder to write")
    p.add_argument(
        "--data",
        type=Path,
        help="simulated training split (Zarr), or for resudbpn also your SIM images",
    )
    p.add_argument("--val", type=Path, help="validation split / images")
    p.add_argument("--denoise-model", type=Path, help="sim, artifact: the trained denoiser")
    p.add_argument(
        "--sim-model", type=Path, help="artifact with --sim-method dps|oidn: that network"
    )
    p.add_argument(
        "--vgg16-weights",
        type=Path,
        help="artifact: ImageNet VGG16 state dict; default: fixed random features",
    )
    p.add_argument(
        "--psf", default="sr", help="resudbpn: 'sr' (SIM images), 'airy' (widefield) or a PSF TIFF"
    )
    g = p.add_argument_group("architecture")
    g.add_argument("--scale", choices=("small", "paper"), default="small")
    g.add_argument("--width", type=int)
    g.add_argument("--depth", type=int)
    g.add_argument("--blocks", type=int)
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=300)
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--patch", type=int, default=64, help="input patch edge, pixels")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--checkpoint", type=Path, help="checkpoint file: resumed when present")
    g.add_argument("--checkpoint-every", type=int, default=50)
    g.add_argument("--validate-every", type=int, default=25)
    g = p.add_argument_group("loss weights")
    g.add_argument("--w-ssim", type=float, default=1.0)
    g.add_argument("--w-l1", type=float, default=1.0)
    g.add_argument("--w-fft", type=float, default=0.1)
    g.add_argument("--w-perceptual", type=float, default=1.0)
    g.add_argument("--beta-hessian", type=float, default=1e-2)
    g.add_argument("--beta-l1", type=float, default=1e-2)
    g.add_argument("--w-oidn", type=float, default=0.8, help="oidn: w of w L1 + (1 - w)(1 - SSIM)")
    g.add_argument("--w-psf", type=float, default=1e-3, help="oidn: PSF prior (CE + RS)")
    g.add_argument("--w-charbonnier", type=float, default=0.01, help="oidn: FFT Charbonnier")
    g.add_argument("--w-reblur", type=float, default=1.0,
                   help="psfid: lambda of ||h_hat * x - y||_1")  # fmt: skip
    g = p.add_argument_group("PSF identification (psfid; data drawn on the fly)")
    g.add_argument("--theta-max", type=float, default=0.15,
                   help="largest Zernike coefficient, waves")  # fmt: skip
    g.add_argument("--give-params", action="store_true",
                   help="the network also reads fc and theta_max (known optics)")  # fmt: skip
    _add_sim_options(p)
    _add_device(p)
    _add_optics(p)
    p.set_defaults(func=cmd_train, pixel_size=None)

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

    p = sub.add_parser("infer", help="one trained network on a stage's images (tiled)")
    p.add_argument("net", choices=NETS)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".zarr, .ome.zarr, .tif")
    p.add_argument("--model", type=Path, required=True, help="model folder (dps train)")
    _option(p, "--tile", key="networks.tile", type=_count, help="tile edge in input pixels")
    p.add_argument("--pixel-size", type=_positive, help="nm; default: from the file")
    p.add_argument("--stage", help="name recorded in the output's attributes")
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
    _option(p, "--tile", key="networks.tile", type=_count, help="tile edge in input pixels")
    _add_sim_options(p)
    _add_device(p)
    _add_optics(p)
    p.set_defaults(func=cmd_restore)
