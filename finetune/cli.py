"""Command lines: `python -m finetune train|eval ...`, and the `opinion-sim` console script
with every subcommand of sim_core and finetune.

    python -m finetune train --data survey.csv --by SEX,AGE --name my-lora --split question
    python -m finetune eval --adapter my-lora --data survey.csv --by SEX
    opinion-sim compare --data gss2022 --question natspac --by SEX --adapter my-lora

SimError messages are printed without a traceback (exit 2); Ctrl-C stops cleanly (exit 130)
and saves no adapter. Works unchanged under `accelerate launch -m finetune train ...`.
"""

from __future__ import annotations

import os

from finetune.commands import FINETUNE_COMMANDS
from sim_core.commands import CORE_COMMANDS, run_main
from sim_core.commands import build_parser as _build

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_parser():
    """The parser of `python -m finetune`."""
    return _build("python -m finetune", FINETUNE_COMMANDS,
                  "Train and evaluate LoRA adapters on survey data.")


def main(argv: list[str] | None = None) -> int:
    """`python -m finetune`; returns the exit status."""
    return run_main(build_parser(), argv, interrupted="stopped; no adapter was saved")


def opinion_sim(argv: list[str] | None = None) -> int:
    """The `opinion-sim` console script: every subcommand of sim_core and finetune."""
    parser = _build("opinion-sim", CORE_COMMANDS + FINETUNE_COMMANDS,
                    "Opinion simulator: survey data, simulation, comparison, reports, "
                    "adapters and fine-tuning.")
    return run_main(parser, argv, interrupted="stopped")
