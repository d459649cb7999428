"""`python -m sim_core simulate`: simulated answer shares of a drafted question for some slices."""

from __future__ import annotations

import argparse
import json

from sim_core.commands import common
from sim_core.errors import SimError
from sim_core.simulate import orders_for, simulate
from sim_core.slices import parse_slice_label, slice_label
from sim_core.survey import Question


def register(subparsers) -> None:
    """Add the `simulate` subcommand."""
    parser = subparsers.add_parser(
        "simulate", help="simulate a question's answer distribution for demographic slices",
        description="Simulate how slices would answer a question (first-token letter "
                    "probabilities, or sampled respondents).")
    parser.add_argument("--question", required=True, help="question text")
    parser.add_argument("--options", required=True, help='answer options, "opt1|opt2|..."')
    parser.add_argument("--slice", action="append", default=[],
                        help='one slice, e.g. "SEX=Female,AGE=30-44" (crossed); repeatable; '
                             "none = the whole population")
    common.add_model_args(parser, adapters="one")
    common.add_simulation_args(parser)
    parser.add_argument("--ordinal", action="store_true", help="options are ordered (1..k)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, simulate each slice, print a table or JSON."""
    options = tuple(o.strip() for o in args.options.split("|") if o.strip())
    if len(options) < 2:
        raise SimError("--options needs at least two options separated by '|'.")
    if not args.question.strip():
        raise SimError("--question is empty.")
    slices = [parse_slice_label(s) for s in args.slice] or [{}]
    question = Question(id="cli", text=args.question.strip(), options=options,
                        ordinal_values=tuple(float(i + 1) for i in range(len(options)))
                        if args.ordinal else None)
    config = common.sim_config_from_args(args)
    lm = common.model_from_args(args)
    bar, progress = common.tqdm_progress("simulating")
    try:
        results = simulate(lm, question, slices, config, progress=progress)
    finally:
        bar.close()
    if args.json:
        print(json.dumps([{"slice": r.slice, "options": list(r.options),
                           "shares": [round(float(s), 6) for s in r.shares],
                           "letter_mass": round(r.letter_mass, 6), "prompt": r.prompt,
                           "n_samples": r.n_samples, "n_unparsed": r.n_unparsed,
                           "cached": r.cached, "model": lm.label} for r in results],
                         indent=2, ensure_ascii=False))
        return 0
    print_table(results, lm, config)
    return 0


def print_table(results, lm, config) -> None:
    """Plain-text table: one row per slice, one column per option."""
    label = lm.label
    width = max(len(slice_label(r.slice)) for r in results) + 2
    print(f"model: {label}; mode: {config.mode}; "
          + (f"orders averaged: {orders_for(lm, config)}" if config.mode == "first-token"
             else f"samples: {config.samples}, temperature {config.temperature}"))
    header = "slice".ljust(width) + "".join(f"{o[:18]:>20}" for o in results[0].options)
    print(header + f"{'letter mass' if config.mode == 'first-token' else 'parsed':>14}")
    for r in results:
        cells = "".join(f"{share:>20.3f}" for share in r.shares)
        print(slice_label(r.slice).ljust(width) + cells + f"{r.letter_mass:>14.3f}")
