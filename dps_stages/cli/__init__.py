"""The ``dps`` command line: one subcommand per stage, called by the workflow's rules.

Each subcommand reads its inputs, calls the science in :mod:`dps_stages`, and writes its
outputs atomically. A bad input stops with ``dps <command>: error: <file>: <problem>`` on
stderr and exit status 2, leaving no output behind. Option defaults come from
:mod:`dps_stages.settings`, the one place each is defined.

Modules: :mod:`.common` (shared helpers and option types), :mod:`.stages` (simulate, extract,
import, background, metrics, figures, export), :mod:`.reconstruct` (sim-reconstruct,
deconvolve), :mod:`.calibrate`, :mod:`.adapt`, :mod:`.nets` (train, identify-psf, restore,
the chain's network stages).
"""

from __future__ import annotations

import os

# One OpenBLAS thread, set before numpy loads it: the BLAS calls here are small (the SIM
# estimation's matrix-multiply DFTs, 11 x 512 @ 512 x 512), where a second thread costs
# more than it gives, and on a busy machine its spinning makes them 10-100x slower
# (9 x 512^2 Wiener SIM: 3.3 s -> 1.6 s beside a pipeline). FFTs and torch keep their own
# threads. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from dps_stages import __version__  # noqa: E402
from dps_stages.cli import adapt, calibrate, reconstruct, stages  # noqa: E402
from dps_stages.cli.common import level_key  # noqa: E402
from dps_stages.io_core import DpsInputError  # noqa: E402

__all__ = ["build_parser", "level_key", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``dps`` parser with every subcommand."""
    from dps_stages.cli import nets as net_commands  # imports torch only when called

    parser = argparse.ArgumentParser(
        prog="dps", description="dps: DPS-framework restoration of fluorescence microscopy images."
    )
    parser.add_argument("--version", action="version", version=f"dps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stages.add_parsers(sub)
    reconstruct.add_parsers(sub)
    calibrate.add_parsers(sub)
    adapt.add_parsers(sub)
    net_commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``dps`` command; 0 on success, 2 on a bad input (message on stderr).

    The command boundary: the arguments pass :func:`.checks.check_args` first; then any
    failure of the command on its data (a :class:`DpsInputError`, an I/O error such as an
    unwritable output or a missing file, a corrupt Zarr chunk found while streaming, a
    ``ValueError`` of the science on degenerate input, memory) ends in one line
    ``dps <command>: error: <file>: <problem>`` and exit 2, and the outputs the command had
    created are removed (each write is atomic, so a failed one leaves only its temporary,
    which :func:`dps_stages.io.atomic_path` removes). ``-v`` also logs the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from dps_stages.cli import checks  # (after the parse: `--help` needs no I/O modules)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    outputs = checks.output_paths(args)
    existed = {p for p in outputs.values() if p.exists() or p.is_symlink()}
    started = time.perf_counter()
    try:
        checks.check_args(args)
        args.func(args)
    except _FAILURES as exc:
        if args.verbose:
            logging.getLogger("dps").exception("dps %s failed", args.command)
        _remove_new_outputs(outputs.values(), existed)
        print(f"dps {args.command}: error: {_message(exc, args)}", file=sys.stderr)
        return 2
    # after the command, lazy writes included (the time a command's own log gives before
    # writing would leave out the work of a dask graph)
    logging.getLogger("dps").info("dps %s took %.1f s", args.command, time.perf_counter() - started)
    return 0


#: what a command's data can raise: bad input, I/O (unwritable, missing, disk full), corrupt
#: stores, degenerate data for the science (ValueError, ZeroDivisionError), torch's and blosc's
#: RuntimeError, a missing key of a damaged store's attributes, and an impossible allocation
_FAILURES = (
    DpsInputError, OSError, ValueError, RuntimeError, KeyError, ArithmeticError, MemoryError,
)  # fmt: skip


def _message(exc: BaseException, args: argparse.Namespace) -> str:
    """``<file>: <problem>``: the file the error names, else the command's main input."""
    if isinstance(exc, DpsInputError):
        return str(exc)
    text = str(exc) if not isinstance(exc, KeyError) else f"missing entry {exc}"
    if isinstance(exc, OSError) and exc.filename is not None:
        text = exc.strerror or text
        where = exc.filename
    else:
        from dps_stages.cli.checks import input_paths

        named = [str(p) for p in input_paths(args).values()] + [
            str(p) for p in vars(args).values() if isinstance(p, Path)
        ]
        for name in named:
            if name and text.startswith(name):  # "<file> does not exist" and the like
                return f"{name}: {text[len(name) :].lstrip(': ')}"
        for name in named:
            if name and name in text:
                return f"{name}: {type(exc).__name__}: {text}"
        where = next(iter(input_paths(args).values()), None) or "input"
    if isinstance(exc, MemoryError):
        text = f"not enough memory ({text or 'allocation failed'}); a flag too large?"
    return f"{where}: {type(exc).__name__}: {text}"


def _remove_new_outputs(outputs, existed: set[Path]) -> None:
    """Remove the outputs a failed command created (those that did not exist before it)."""
    import shutil

    for path in outputs:
        if path in existed or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
