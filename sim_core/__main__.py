"""`python -m sim_core SUBCOMMAND ...`: survey data, simulation, comparison, reports,
adapters and saved surveys (see docs/cli.md and sim_core/commands)."""

from __future__ import annotations

import sys

from sim_core.commands import CORE_COMMANDS, run_main
from sim_core.commands import build_parser as _build

SUBCOMMANDS = tuple(name.rsplit(".", 1)[1] for name in CORE_COMMANDS)


def build_parser():
    """The parser of `python -m sim_core`."""
    return _build("python -m sim_core", CORE_COMMANDS,
                  "Opinion simulator: survey data, simulation, comparison.")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return run_main(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
