"""The population-estimate flags simulate, compare and report share (--population-estimate,
--margins, --rake-from, --subgroup), and how an estimate prints as text."""

from __future__ import annotations

import argparse

import numpy as np

from sim_core.base import options
from sim_core.base.errors import DataError
from sim_core.base.labels import NOISE_FLOOR
from sim_core.base.metrics import METRICS, best_entry
from sim_core.commands.formatting import format_rows, score_legend
from sim_core.survey.composition import PopulationConfig
from sim_core.survey.marginal import parse_slice_label
from sim_core.survey.margins import Margins, load_margins

REAL_TOPLINE = "real"
SHOWN_CELLS = 12        # cells listed in the text output; the JSON has them all


def add_population_args(parser: argparse.ArgumentParser) -> None:
    """--population-estimate and one flag per PopulationConfig setting."""
    group = parser.add_argument_group(
        "population estimate", "compose the simulated cells (crossed slices) into an estimate "
        "for the whole population: each cell weighted by its population share")
    group.add_argument("--population-estimate", action="store_true",
                       help="also print the post-stratified population estimate, with its "
                            "prediction interval and the composition used")
    options.add_arguments(group, PopulationConfig)


def population_from_args(args: argparse.Namespace
                         ) -> tuple[PopulationConfig, Margins | None, dict[str, str]]:
    """(config, the margins read, the subgroup) from the flags; checked before any model
    loads. The population flags without --population-estimate are refused (they would do
    nothing)."""
    config = options.from_arguments(PopulationConfig, args)
    given = config != PopulationConfig()
    if given and not getattr(args, "population_estimate", False):
        raise DataError("--margins, --rake-from and --subgroup shape the population estimate: "
                        "add --population-estimate.")
    margins = load_margins(config.margins) if config.margins else None
    return config, margins, parse_slice_label(config.subgroup)


def _interval_text(low, high) -> list[str]:
    return [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(low, high)]


def format_population(estimate) -> str:
    """Plain-text population estimate: real topline (95 % CI), checkpoints (prediction
    interval), baselines, noise floor, then the composition."""
    options_ = estimate.question.options
    keys = [k for k in METRICS if any(k in s for s in estimate.scores.values())]
    rows, intervals = [], {}
    if estimate.reference is not None:
        rows.append((REAL_TOPLINE, estimate.reference, {}))
        real = estimate.real
        if real is not None and real.ci_low is not None:
            intervals[REAL_TOPLINE] = ("  95 % CI", _interval_text(real.ci_low, real.ci_high))
    for entry, dist in estimate.entries().items():
        rows.append((entry, dist, estimate.scores.get(entry, {})))
    for entry, (low, high) in estimate.intervals.items():
        level = f"{estimate.interval_level * 100:g} % PI"
        intervals[entry] = (f"  {level} ({estimate.interval_methods[entry]})",
                            _interval_text(low, high))
    if estimate.noise_floor:
        rows.append((NOISE_FLOOR, None, estimate.noise_floor))
    best = {k: best_entry({e: s.get(k, np.nan) for e, s in estimate.scores.items()}, k)
            for k in keys}
    composition = estimate.composition
    cells = ", ".join(f"{label} {share:.3f}" for label, share in
                      list(zip(composition.labels, composition.shares))[:SHOWN_CELLS])
    more = len(composition.labels) - SHOWN_CELLS
    lines = [f"population estimate ({estimate.label}) of {estimate.question.id}",
             f"real: {estimate.reference_label or 'none (no real data)'}"]
    lines += [score_legend(keys)] if keys else []
    lines += [format_rows(options_, rows, keys, best, intervals=intervals),
              f"composition: {composition.source}; {len(composition.labels)} cell(s): "
              + cells + (f", ... ({more} more)" if more > 0 else "")]
    lines += [f"note: {note}" for note in estimate.notes]
    return "\n".join(lines)
