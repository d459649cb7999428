"""The command line: one module per subcommand, each with `register(subparsers)` (adds its
parser and sets `func=run`) and `run(args) -> int` (the exit status).

`python -m sim_core` offers the core's subcommands, `python -m finetune` the training ones,
and the `opinion-sim` console script all of them (finetune.cli). SimError messages print
without a traceback and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sim_core.base.errors import SimError
from sim_core.base.writing import failure_message

CORE_COMMANDS = tuple(f"sim_core.commands.{name}" for name in
                      ("marginals", "baselines", "simulate", "compare", "individual", "report",
                       "calibrate", "codebook", "adapters", "surveys", "populations"))


def build_parser(prog: str, modules: Sequence[str], description: str) -> argparse.ArgumentParser:
    """The parser with one subcommand per module (each module registers its own)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run_main(parser: argparse.ArgumentParser, argv: list[str] | None = None,
             interrupted: str = "stopped") -> int:
    """Parse and run one command; user errors print one line (status 2), no traceback."""
    args = parser.parse_args(argv)
    _print_warnings()
    try:
        return int(args.func(args) or 0)
    except SimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:     # the environment, not the program: one line, no traceback
        print(f"error: {failure_message(error, error.filename or 'a file', 'use')}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def _print_warnings() -> None:
    """Warnings of sim_core and finetune (a rebuilt cache, a skipped checkpoint) as
    'warning: ...' lines on stderr."""
    for name in ("sim_core", "finetune"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("warning: %(message)s"))
            logger.addHandler(handler)
            logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever sys.stderr is when a line is written (not when it was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass
