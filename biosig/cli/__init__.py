"""The ``biosig`` command.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed arguments, returns an exit
code). A :class:`~biosig.BiosigError` (a user mistake) becomes one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from biosig import __version__
from biosig._checks import BiosigError

#: Sub-command modules, in the order ``biosig --help`` lists them.
COMMANDS = ("demo", "convert", "info", "replay", "streams", "record", "process", "train", "evaluate", "explain", "analyze", "selftest", "gui")

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line and exit code 2, like other user errors."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="biosig",
        description=(
            "Real-time biosignal (EMG, CTG) classification with probabilistic, explainable "
            "networks. Reads XDF, WFDB, Myo text and CSV recordings, replays them as Lab "
            "Streaming Layer streams, and runs the same streaming pipeline on live streams "
            "or files."
        ),
        epilog="Run 'biosig COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"biosig {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"biosig.cli.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except BiosigError as err:
        print(f"biosig {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"biosig {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
