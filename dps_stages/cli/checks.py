"""Checks at the edge of every ``dps`` command, after argparse and before any work.

Argparse's option types (:mod:`dps_stages.cli.common`) refuse a value that makes no sense on
its own (0, negatives, NaN); these refuse what makes no sense physically or together with the
other arguments: a numerical aperture above what any immersion medium allows, an emission
wavelength outside the optical range, repeated signal levels, and an output path that is one
of the inputs. Every failure is a :class:`~dps_stages.io.DpsInputError`, which
:func:`dps_stages.cli.main` prints as ``dps <command>: error: <file>: <problem>`` (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dps_stages.io_core import DpsInputError

#: the highest numerical aperture of any objective: NA = n sin(theta) <= n of the immersion,
#: and the highest-index immersion objectives (n = 1.78 fluids) reach NA 1.7
NA_MAX = 1.7
#: emission wavelengths of fluorescence microscopy, nm (near UV to near infrared)
WAVELENGTH_RANGE = (200.0, 2000.0)
#: the smallest simulated field of view, camera pixels (2D-SIM needs 16 x 16 frames)
SIMULATE_MIN_SIZE = 16

#: the arguments (argparse destinations) that name files a command only reads
INPUT_ARGS = (
    "input", "image", "store", "candidate", "reference", "model", "models", "data", "val",
    "calibration", "truth", "tables", "denoise_model", "sim_model", "vgg16_weights", "metrics",
)  # fmt: skip
#: the arguments that name files a command writes (``widefield`` and ``raw`` are outputs of
#: ``import`` and ``extract``, the only commands that have them)
OUTPUT_ARGS = ("output", "raw", "widefield", "ome_zarr", "tiff", "sr", "figure", "summary",
               "summary_html")  # fmt: skip


def _paths(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Path]:
    """``{argument: path}`` of the path-valued arguments ``names`` that are set."""
    out: dict[str, Path] = {}
    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                if isinstance(v, Path):
                    out[f"{name}[{i}]"] = v
        elif isinstance(value, Path):
            out[name] = value
    return out


def input_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Every file or folder the command reads, by argument (stage paths and a PSF file too)."""
    paths = _paths(args, INPUT_ARGS)
    for i, stage in enumerate(getattr(args, "stage", None) or []):
        if isinstance(stage, (list, tuple)) and len(stage) >= 2:
            paths[f"stage[{i}]"] = Path(stage[1])
    psf = getattr(args, "psf", None)
    if psf is not None and str(psf) not in ("airy", "sr"):
        paths["psf"] = Path(psf)
    return paths


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Every file or folder the command writes, by argument."""
    return _paths(args, OUTPUT_ARGS)


def check_args(args: argparse.Namespace) -> None:
    """The cross-argument and physical checks of one parsed command line; raises
    :class:`DpsInputError` naming the option or the file."""
    na = getattr(args, "na", None)
    if na is not None and na > NA_MAX:
        raise DpsInputError(
            f"--na {na:g}: a numerical aperture n sin(theta) cannot exceed the refractive index "
            f"of the immersion medium; objectives reach at most {NA_MAX:g} (oil: 1.4-1.49)"
        )
    wavelength = getattr(args, "wavelength", None)
    low, high = WAVELENGTH_RANGE
    if wavelength is not None and not low <= wavelength <= high:
        raise DpsInputError(
            f"--wavelength {wavelength:g}: expected an emission wavelength in nm, "
            f"{low:g} to {high:g}"
        )
    if args.command == "simulate":
        _check_simulate(args)
    from dps_stages.io import check_distinct

    check_distinct(input_paths(args), output_paths(args))


def _check_simulate(args: argparse.Namespace) -> None:
    from dps_stages.cli.common import level_key

    if args.size < SIMULATE_MIN_SIZE:
        raise DpsInputError(
            f"--size {args.size}: the simulated images need at least {SIMULATE_MIN_SIZE} "
            "camera pixels a side (a 2D-SIM reconstruction needs 16 x 16 frames)"
        )
    levels: list[Any] = list(args.levels)
    if not levels:
        raise DpsInputError("--levels: give at least one signal level (photons, peak pixel)")
    bad = [v for v in levels if not (v > 0 and v < float("inf"))]
    if bad:
        raise DpsInputError(f"--levels {bad}: signal levels are photon counts, finite and > 0")
    keys = [level_key(v) for v in levels]
    if len(set(keys)) != len(keys):
        raise DpsInputError(
            f"--levels {levels}: levels {sorted(k for k in set(keys) if keys.count(k) > 1)} "
            "repeat (results are named by level, so two with one name would merge)"
        )


def check_radius(radius: float, shape: tuple[int, ...], path: Any, flag: str = "--radius") -> None:
    """A rolling-ball radius at most the image's larger side (or the configured default,
    which the workflow uses on images of any size): a larger ball fits under every pixel alike
    (the background is then one plane) while its kernel grows as radius^2 (1e6 pixels would
    need 466 GiB)."""
    from dps_stages import settings

    side = max(shape[-2:])
    if radius > max(side, settings.default("background.radius")):
        raise DpsInputError(
            f"{path}: {flag} {radius:g} pixels is larger than the image ({shape[-2]} x "
            f"{shape[-1]}); use a radius larger than the objects but smaller than the image"
        )
