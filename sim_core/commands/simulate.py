"""`python -m sim_core simulate`: simulated answer shares of a drafted question for some slices."""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import replace

from sim_core.base.errors import SimError
from sim_core.commands import common
from sim_core.commands.formatting import floats
from sim_core.commands.population_flags import (
    add_population_args,
    format_population,
    population_from_args,
)
from sim_core.evaluation.calibration_records import calibration_for, checkpoint_verdict
from sim_core.evaluation.population import population_estimate
from sim_core.simulation.simulate import orders_for, simulate, temperature_for
from sim_core.survey.composition import composition_for
from sim_core.survey.marginal import parse_slice_label, slice_label
from sim_core.survey.schema import LETTERS, Question


def register(subparsers) -> None:
    """Add the `simulate` subcommand."""
    parser = subparsers.add_parser(
        "simulate", help="simulate a question's answer distribution for demographic slices",
        description="Simulate how slices would answer a question (first-token letter "
                    "probabilities, or sampled respondents). A checkpoint with a calibration "
                    "(an adapter's card, or a base model's most recent record) is calibrated, "
                    "gets prediction intervals, and its held-out accuracy is printed.")
    parser.add_argument("--question", required=True, help="question text")
    parser.add_argument("--options", required=True, help='answer options, "opt1|opt2|..."')
    parser.add_argument("--slice", action="append", default=[],
                        help='one slice, e.g. "SEX=Female,AGE=30-44" (crossed); repeatable; '
                             "none = the whole population")
    common.add_model_args(parser, adapters="one")
    common.add_simulation_args(parser)
    parser.add_argument("--ordinal", action="store_true", help="options are ordered (1..k)")
    parser.add_argument("--population", default=None,
                        help='who is asked, named in the prompt (default "adults in the '
                             'United States"; "" names none)')
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table "
                        '(with --population-estimate: {"cells": [...], "population": {...}})')
    add_population_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, simulate each slice, print a table or JSON."""
    options = tuple(o.strip() for o in args.options.split("|") if o.strip())
    if not 2 <= len(options) <= len(LETTERS):
        raise SimError(f"--options needs 2 to {len(LETTERS)} options separated by '|' (got "
                       f"{len(options)}).")
    if not args.question.strip():
        raise SimError("--question is empty.")
    slices = [parse_slice_label(s) for s in args.slice] or [{}]
    question = Question(id="cli", text=args.question.strip(), options=options,
                        ordinal_values=tuple(float(i + 1) for i in range(len(options)))
                        if args.ordinal else None)
    config = common.sim_config_from_args(args)
    if args.population is not None:
        config = replace(config, style=replace(config.style, population=args.population))
    composition, within = _composition(args)
    lm = common.model_from_args(args)
    common.announce_plan([lm], [common.Pair(question, s) for s in slices], config)
    record = calibration_for(lm)       # a drafted question: the checkpoint's own measurement
    bar, progress = common.tqdm_progress("simulating")
    estimate = None
    try:
        if composition is not None:
            estimate = population_estimate([lm], question, composition, config=config,
                                           within=within, progress=progress)
            results = next(iter(estimate.cells.values()))
        else:
            results = simulate(lm, question, slices, config, progress=progress,
                               calibration=record.calibration if record else None)
    finally:
        bar.close()
    applies = record is not None and config.mode == "first-token"
    text = checkpoint_verdict(record, lm.label, calibrated=applies and config.calibrate)
    if args.json:
        cells = [{"slice": r.slice, "options": list(r.options),
                  "shares": floats(r.shares), "raw_shares": floats(r.raw_shares),
                  "interval_low": floats(r.interval_low),
                  "interval_high": floats(r.interval_high),
                  "interval_level": config.interval_level if applies else None,
                  "calibrated": r.calibrated, "heldout_accuracy": text,
                  "letter_mass": round(r.letter_mass, 6), "prompt": r.prompt,
                  "n_samples": r.n_samples, "n_unparsed": r.n_unparsed,
                  "cached": r.cached, "model": lm.label} for r in results]
        output = cells if estimate is None else {"cells": cells,
                                                 "population": estimate.to_dict()}
        print(json.dumps(output, indent=2, ensure_ascii=False))
        return 0
    print_table(results, lm, config)
    if estimate is not None:
        print("\n" + format_population(estimate))
    print(textwrap.fill("held-out accuracy: " + text, width=100, subsequent_indent="  "))
    if record is not None and record.note:
        print(f"note: {record.note}")
    return 0


def _composition(args: argparse.Namespace):
    """(the composition from --margins, the subgroup) with --population-estimate, else
    (None, {}); checked before the model loads."""
    population, margins, within = population_from_args(args)
    if not args.population_estimate:
        return None, {}
    if args.slice:
        raise SimError("--population-estimate takes its cells from the margins' groups "
                       "(crossed); leave out --slice.")
    composition = composition_for(None, [], margins, rake_from=population.rake_from)
    if within:
        composition.subgroup(within)
    return composition, within


def print_table(results, lm, config) -> None:
    """Plain-text table: one row per slice, one column per option."""
    label = lm.label
    width = max(len(slice_label(r.slice)) for r in results) + 2
    print(f"model: {label}; mode: {config.mode}; "
          + (f"orders averaged: {orders_for(lm, config)}" if config.mode == "first-token"
             else f"samples: {config.samples}, temperature {temperature_for(lm, config):g}"))
    header = "slice".ljust(width) + "".join(f"{o[:18]:>20}" for o in results[0].options)
    print(header + f"{'letter mass' if config.mode == 'first-token' else 'parsed':>14}")
    for r in results:
        cells = "".join(f"{share:>20.3f}" for share in r.shares)
        print(slice_label(r.slice).ljust(width) + cells + f"{r.letter_mass:>14.3f}")
        if r.interval_low is not None:
            spans = "".join(f"{f'{lo:.2f}-{hi:.2f}':>20}"
                            for lo, hi in zip(r.interval_low, r.interval_high))
            print(f"  {config.interval_level * 100:g} % PI".ljust(width) + spans)
