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

import argparse
import logging
import sys
from collections.abc import Sequence

from dps_stages import __version__
from dps_stages.cli import adapt, calibrate, reconstruct, stages
from dps_stages.cli.common import level_key
from dps_stages.io import DpsInputError

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
    """Run one ``dps`` command; 0 on success, 2 on a bad input (message on stderr)."""
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
