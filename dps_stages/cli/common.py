"""Helpers shared by the ``dps`` subcommands: option types, the optics group, the PSF choice,
provenance, progress and output writing. Imports nothing else of :mod:`dps_stages.cli`."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dps_stages import __version__, settings
from dps_stages.io_core import DpsInputError

# --------------------------------------------------------------------------------------------
# option types: a bad value is an argparse error (exit 2) naming the option


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _number(text: str, ok: Callable[[float], bool], expected: str, *, auto: bool = False):
    """``float(text)`` where ``ok`` holds for it (a text that is no number fails), else an
    argparse error ``expected <expected>``; with ``auto`` the text 'auto' passes as it is."""
    if auto and text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _wiener(text: str) -> float | str:
    """'auto' or a Wiener parameter w > 0."""
    return _number(text, lambda v: v > 0 and math.isfinite(v), "'auto' or a number > 0", auto=True)


def _otf_decay(text: str) -> float | str:
    """'auto' or an OTF damping a in (0, 1]."""
    return _number(text, lambda v: 0 < v <= 1, "'auto' or a number in (0, 1]", auto=True)


def _positive(text: str) -> float:
    """A finite number > 0."""
    return _number(text, lambda v: v > 0 and math.isfinite(v), "a number > 0")


def _non_negative(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, lambda v: v >= 0 and math.isfinite(v), "a number >= 0")


def _count(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _option(p, *flags: str, key: str, **kw: Any) -> argparse.Action:
    """An option whose default is the config key's (:func:`dps_stages.settings.default`).

    The key is kept on the action (``config_key``) so that tests/test_defaults.py can check
    the command line against the schema and config.yaml.
    """
    action = p.add_argument(*flags, default=settings.default(key), **kw)
    action.config_key = key  # type: ignore[attr-defined]
    return action


def _add_stage_name(p: argparse.ArgumentParser) -> None:
    """``--stage``: the name a stage command records in its output's attributes."""
    p.add_argument("--stage", help="name recorded in the output's attributes")


def _add_file_pixel_size(p: argparse.ArgumentParser) -> None:
    """``--pixel-size`` of a command outside the optics group: the input file's by default."""
    p.add_argument("--pixel-size", type=_positive, help="nm; default: from the file")


# --------------------------------------------------------------------------------------------
# optics and the PSF


def _add_optics(p: argparse.ArgumentParser, *, pixel_size: bool = False) -> None:
    """The optics group. ``--pixel-size`` has no default (the input's metadata gives it)
    unless ``pixel_size``: a command without an input image (simulate) takes the config's."""
    g = p.add_argument_group("optics (nm)")
    _option(g, "--wavelength", key="optics.wavelength", type=_positive,
            help="emission wavelength")  # fmt: skip
    _option(g, "--na", key="optics.na", type=_positive, help="numerical aperture")
    if pixel_size:
        _option(g, "--pixel-size", key="optics.pixel_size", type=_positive,
                help="camera pixel at the sample")  # fmt: skip
    else:
        g.add_argument("--pixel-size", type=_positive, default=None,
                       help="pixel at the sample; default: the input file's")  # fmt: skip
    _option(g, "--modulation-factor", key="optics.modulation_factor", type=_positive,
            help="SIM passband factor (srPSF: NA x this)")  # fmt: skip


def _optics(args: argparse.Namespace, meta: dict[str, Any] | None = None):
    """Optics from the options; without --pixel-size, the pixel size the file gives."""
    pixel_size = args.pixel_size or (meta or {}).get("pixel_size")
    if not pixel_size:
        raise DpsInputError(f"{args.input}: the file gives no pixel size; pass --pixel-size (nm)")
    return _optics_at(args, pixel_size)


def _optics_at(args: argparse.Namespace, pixel_size: float):
    """Optics from the optics group's options at the pixel size ``pixel_size`` (nm)."""
    from dps_stages.optics import Optics

    return Optics(
        wavelength=args.wavelength, na=args.na, pixel_size=float(pixel_size),
        modulation_factor=args.modulation_factor,
    )  # fmt: skip


def _psf_for(
    args: argparse.Namespace,
    pixel_size: float | None,
    shape: tuple[int, ...],
    *,
    regrid: bool = False,
):
    """:func:`dps_stages.optics.psf_for` of the options ``--psf`` and the optics group, on the
    grid of ``pixel_size`` (None: unknown, which only a PSF file allows)."""
    from dps_stages.optics import Optics, psf_for

    if pixel_size is None and str(args.psf) in ("airy", "sr"):
        what = getattr(args, "input", None) or getattr(args, "data", None) or "the input"
        raise DpsInputError(f"{what}: the file gives no pixel size; pass --pixel-size")
    optics = None
    if pixel_size:
        optics = Optics(wavelength=args.wavelength, na=args.na, pixel_size=float(pixel_size),
                        modulation_factor=args.modulation_factor)  # fmt: skip
    return psf_for(args.psf, optics, shape, regrid=regrid)


# --------------------------------------------------------------------------------------------
# reading, writing, provenance


def _provenance(command: str, args: argparse.Namespace) -> dict[str, Any]:
    """What made an output: command, version, parameters. The time it took goes to the log
    (:func:`dps_stages.cli.main`, once the output is written: most writes compute lazily),
    not into the data, so that the same inputs give byte-identical outputs (a resumed run
    equals an uninterrupted one)."""
    params = {k: v for k, v in vars(args).items() if k != "func"}
    return {
        "dps": {
            "command": command,
            "version": __version__,
            "parameters": params,
            "numpy": np.__version__,
        }
    }


#: seconds between two redraws of the progress bar on a terminal (dask's default 0.1 s fills
#: a rule's log with about 600 bytes a second)
PROGRESS_INTERVAL = 1.0
#: ... and into a file (a rule's log): a 46-minute job drew 2200 bars at one a second
LOG_PROGRESS_INTERVAL = 30.0


def _progress(out: Any = None):
    """A progress bar over the tiles of a dask computation, on stderr (the rule's log), shown
    for computations over 2 s and redrawn every :data:`PROGRESS_INTERVAL` seconds on a
    terminal, every :data:`LOG_PROGRESS_INTERVAL` into a file. Its timer waits on an event,
    so the bar stops as soon as the computation ends (dask's own sleeps out its interval and
    is joined: a 30 s interval made every command wait up to 30 s at its end)."""
    import threading
    from timeit import default_timer

    from dask.diagnostics import ProgressBar

    class _Bar(ProgressBar):
        def _start(self, dsk):
            self._stop = threading.Event()
            super()._start(dsk)

        def _finish(self, dsk, state, errored):
            self._stop.set()
            super()._finish(dsk, state, errored)

        def _timer_func(self):
            while not self._stop.is_set():
                elapsed = default_timer() - self._start_time
                if elapsed > self._minimum:
                    self._update_bar(elapsed)
                self._stop.wait(self._dt)

    out = sys.stderr if out is None else out
    tty = bool(getattr(out, "isatty", lambda: False)())
    return _Bar(minimum=2.0, dt=PROGRESS_INTERVAL if tty else LOG_PROGRESS_INTERVAL, out=out)


def _write_any(path: str | Path, image, attrs: dict[str, Any], *, tile: int = 1024) -> None:
    """Zarr for ``*.zarr`` (stage layout, or OME-Zarr for ``*.ome.zarr``), else ImageJ TIFF."""
    from dps_stages import io

    path = Path(path)
    name = path.name.lower()
    if name.endswith(".ome.zarr"):
        io.write_ome_zarr(path, image, attrs.get("pixel_size"), attrs)
    elif name.endswith(".zarr"):
        io.write_stage(path, image, attrs, tile=tile)
    elif name.endswith((".tif", ".tiff")):
        io.write_tiff(path, image, attrs.get("pixel_size"))
    else:
        raise DpsInputError(f"{path}: output must end in .zarr, .ome.zarr, .tif or .tiff")


def _read_2d(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    from dps_stages import io

    arr, meta = io.read_image(path)
    arr = np.asarray(arr, dtype=np.float32)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise DpsInputError(f"{path}: expected a single 2D image; got shape {arr.shape}")
    io.check_finite(arr, path)
    return arr, meta


def level_key(level: float) -> str:
    """The name of a signal level in paths and tables: 20.0 -> '20', 0.5 -> '0.5'."""
    return f"{float(level):g}"
