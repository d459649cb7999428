"""Command line: `python -m sim_core SUBCOMMAND ...` (see README, section CLI).

Each subcommand lives in sim_core/commands/<name>.py and defines
`register(subparsers)`, which adds its parser and sets `func=run` on it.
`run(args) -> int` returns the exit status. SimError messages are printed without a
traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sim_core.errors import SimError

SUBCOMMANDS = ("marginals", "baselines", "simulate", "compare", "report", "codebook")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim_core",
                                     description="Opinion simulator: survey data, simulation, comparison.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"sim_core.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
