"""`python -m sim_core simulate`: simulated answer shares of a drafted question for some slices."""

from __future__ import annotations

import argparse
import json
import sys

from sim_core.commands import common
from sim_core.errors import SimError


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
    parser.add_argument("--model", default="default", help="default | model folder | hub id")
    parser.add_argument("--adapter", default=None, help="adapter name or folder")
    common.add_simulation_args(parser)
    parser.add_argument("--ordinal", action="store_true", help="options are ordered (1..k)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def parse_slice(text: str) -> dict[str, str]:
    """ "SEX=Female,AGE=30-44" -> {"SEX": "Female", "AGE": "30-44"} (SimError when malformed)."""
    result = {}
    for part in text.split(","):
        attribute, sep, value = part.partition("=")
        if not sep or not attribute.strip() or not value.strip():
            raise SimError(f"--slice '{text}': write ATTR=VALUE, several joined by commas.")
        result[attribute.strip()] = value.strip()
    return result


def run(args: argparse.Namespace) -> int:
    """Load the model, simulate each slice, print a table or JSON."""
    from tqdm import tqdm

    from sim_core.models import load_model
    from sim_core.simulate import simulate
    from sim_core.survey import Question

    options = tuple(o.strip() for o in args.options.split("|") if o.strip())
    if len(options) < 2:
        raise SimError("--options needs at least two options separated by '|'.")
    if not args.question.strip():
        raise SimError("--question is empty.")
    slices = [parse_slice(s) for s in args.slice] or [{}]
    question = Question(id="cli", text=args.question.strip(), options=options,
                        ordinal_values=tuple(float(i + 1) for i in range(len(options)))
                        if args.ordinal else None)
    config = common.sim_config_from_args(args)
    lm = load_model(args.model, args.adapter, dtype=args.dtype, device=config.device)
    with tqdm(total=1, desc="simulating", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        results = simulate(lm, question, slices, config, progress=progress)
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
    from sim_core.simulate import orders_for
    from sim_core.slices import slice_label

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
