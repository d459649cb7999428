"""`python -m sim_core compare`: real vs simulated answers per slice, with every score, the
baselines and the sampling-noise floor.

Example:
    python -m sim_core compare --data gss2022 --question natspac --by SEX
    python -m sim_core compare --data survey.csv --codebook book.csv --question q1 \\
        --by sex,age --adapter my-adapter --orders 2 --json
"""

from __future__ import annotations

import argparse
import json
import textwrap

import numpy as np

from sim_core.base.labels import NOISE_FLOOR, REAL
from sim_core.base.metrics import METRICS, best_entry
from sim_core.commands import common
from sim_core.commands.formatting import floats, format_rows, score_legend, slice_heading
from sim_core.commands.population_flags import (
    add_population_args,
    format_population,
    population_from_args,
)
from sim_core.evaluation.compare import compare, with_survey_style
from sim_core.evaluation.population import population_for_comparison
from sim_core.survey.composition import composition_for
from sim_core.survey.slices import real_marginals


def register(subparsers) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser(
        "compare", help="real vs simulated answers per slice, with scores and baselines",
        description="Simulate a survey question for every slice and score the simulated "
                    "shares against the real ones, next to the baselines and the noise floor.")
    common.add_data_args(parser)
    common.add_model_args(parser, adapters="many")
    common.add_simulation_args(parser)
    common.add_baselines_arg(parser)
    add_population_args(parser)
    parser.set_defaults(func=run)


def comparison_json(comp) -> dict:
    """JSON-ready comparison of one question (with "population" when it was estimated)."""
    out = _comparison_json(comp)
    if comp.population is not None:
        out["population"] = comp.population.to_dict()
    return out


def _comparison_json(comp) -> dict:
    return {"question": comp.question.id, "text": comp.question.text,
            "options": list(comp.question.options), "survey": comp.survey_name,
            "by": comp.by, "mode": comp.config.mode,
            "orders": {c["label"]: c["orders"] for c in comp.checkpoints},
            "checkpoints": [{k: v for k, v in c.items()} for c in comp.checkpoints],
            "notes": comp.notes, "interval_level": comp.config.interval_level,
            "verdicts": {c["label"]: c["verdict"] for c in comp.checkpoints},
            "slices": [{"slice": sc.slice, "label": sc.label,
                        "n": None if sc.real is None else sc.real.n,
                        "n_asked": None if sc.real is None else sc.real.n_asked,
                        "n_total": None if sc.real is None else sc.real.n_total,
                        "nonresponse": None if sc.real is None else sc.real.nonresponse,
                        "n_eff": None if sc.real is None or sc.real.n_eff is None
                        else round(sc.real.n_eff, 3),
                        "real": None if sc.real is None else floats(sc.real.shares),
                        "ci_low": None if sc.real is None else floats(sc.real.ci_low),
                        "ci_high": None if sc.real is None else floats(sc.real.ci_high),
                        "entries": {e: floats(d) for e, d in sc.entries().items()},
                        "letter_mass": {e: round(r.letter_mass, 6)
                                        for e, r in sc.simulated.items()},
                        "intervals": intervals_json(sc),
                        "scores": {e: {k: None if not np.isfinite(v) else round(v, 6)
                                       for k, v in s.items()} for e, s in sc.scores.items()},
                        "noise_floor": {k: round(v, 6) for k, v in sc.noise_floor.items()}}
                       for sc in comp.slices]}


def intervals_json(sc) -> dict:
    """Checkpoint label -> {"low": [...], "high": [...]} prediction interval per option."""
    return {label: {"low": floats(r.interval_low), "high": floats(r.interval_high)}
            for label, r in sc.simulated.items() if r.interval_low is not None}


def interval_rows(sc, level: float) -> dict[str, tuple[str, list[str]]]:
    """Checkpoint label -> (row name, "low-high" per option) of its prediction interval."""
    return {label: (f"  {level * 100:g} % PI", [f"{lo:.2f}-{hi:.2f}" for lo, hi in
                                                zip(r.interval_low, r.interval_high)])
            for label, r in sc.simulated.items() if r.interval_low is not None}


def format_comparison(comp) -> str:
    """Plain-text comparison: one table per slice."""
    keys = [k for k in METRICS if any(k in s for sc in comp.slices for s in sc.scores.values())]
    out = [f"{comp.question.id}: {comp.question.text}",
           "checkpoints: " + ", ".join(c["label"] for c in comp.checkpoints)
           + f"; mode {comp.config.mode}"
           + ("; option orders averaged: " + ", ".join(f"{c['label']} {c['orders']}"
                                                       for c in comp.checkpoints)
              if comp.config.mode == "first-token" else ""),
           score_legend(keys) + "; * = best entry; noise floor = score of a second real "
           "sample of the same size"]
    out += [f"note: {note}" for note in comp.notes]
    out += [textwrap.fill(c["verdict"], width=100, subsequent_indent="  ")
            for c in comp.checkpoints]
    for sc in comp.slices:
        rows = [(REAL, sc.real.shares, {})] if sc.real is not None else []
        rows += [(e, d, sc.scores.get(e, {})) for e, d in sc.entries().items()]
        if sc.noise_floor:
            rows.append((NOISE_FLOOR, None, sc.noise_floor))
        best = {k: best_entry({e: s.get(k, np.nan) for e, s in sc.scores.items()}, k)
                for k in keys}
        out += ["", slice_heading(sc.label, sc.real),
                format_rows(comp.question.options, rows, keys, best,
                            intervals=interval_rows(sc, comp.config.interval_level))]
    if comp.population is not None:
        out += ["", format_population(comp.population)]
    return "\n".join(out)


def comparisons_from_args(args: argparse.Namespace) -> tuple:
    """(survey, one Comparison per --question) from the data, model, simulation and
    population flags (every flag is checked before a model loads); a progress bar per
    question. With --population-estimate each Comparison carries its population estimate."""
    config = common.sim_config_from_args(args)
    population, margins, within = population_from_args(args)
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    common.print_warnings(survey, args, ids + by)
    compositions = {}
    if getattr(args, "population_estimate", False):      # checked before a model loads
        for qid in ids:
            compositions[qid] = composition_for(survey, by, margins, wave=args.wave,
                                                question_id=qid, bins=bins,
                                                rake_from=population.rake_from)
            if within:
                compositions[qid].subgroup(within)
    models = common.models_from_args(args)
    pairs = [common.Pair(survey.questions[qid], m.slice) for qid in ids
             for m in real_marginals(survey, qid, by, wave=args.wave, bins=bins)]
    common.announce_plan(models, pairs, with_survey_style(config, survey))
    comparisons = []
    for qid in ids:
        bar, progress = common.tqdm_progress(qid)
        try:
            comparison = compare(models, survey.questions[qid], survey=survey, by=by,
                                 wave=args.wave, bins=bins, config=config,
                                 baselines=args.baselines, progress=progress)
        finally:
            bar.close()
        if qid in compositions:
            comparison.population = population_for_comparison(
                models, comparison, compositions[qid], survey=survey, bins=bins,
                within=within)
        comparisons.append(comparison)
    return survey, comparisons


def run(args: argparse.Namespace) -> int:
    """Load survey and models, compare each question, print tables or JSON."""
    survey, comparisons = comparisons_from_args(args)
    if args.json:
        print(json.dumps([comparison_json(c) for c in comparisons], indent=1,
                         ensure_ascii=False, default=str))
    else:
        print("\n\n".join(format_comparison(c) for c in comparisons))
    return 0
