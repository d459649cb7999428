"""`python -m sim_core individual`: simulate held-out respondents one by one from their own
profile, sweep the temperature, and score individuals (RMSE, log-loss, Brier, accuracy)
and the population (KL) beside the model baselines.

Example:
    python -m sim_core individual --data anes96 --by PID,age,educ
    python -m sim_core individual --data anes96 --by PID,age,educ --adapter anes-lora \\
        --temperatures 0.25,0.5,1,2 --criterion kl --save --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from sim_core.base import options
from sim_core.base.errors import DataError
from sim_core.commands import common
from sim_core.evaluation.individual import (
    INDIVIDUAL_BASELINES,
    IndividualConfig,
    evaluate_individuals,
    plan_individuals,
    sweep_record,
)
from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES
from sim_core.evaluation.respondent_table import split_from_cards
from sim_core.simulation.adapters import update_card


def register(subparsers) -> None:
    """Add the `individual` subcommand."""
    parser = subparsers.add_parser(
        "individual", help="simulate held-out respondents one by one; KL/RMSE temperature "
                           "sweep; individual and population scores with baselines",
        description="Every held-out respondent is simulated from their profile on the --by "
                    "attributes; the temperature is chosen on validation respondents and "
                    "every checkpoint and baseline is scored on test respondents.")
    common.add_data_args(parser, questions="all")
    common.add_model_args(parser, adapters="many")
    common.add_simulation_args(parser)
    options.add_arguments(parser, IndividualConfig)
    parser.add_argument("--temperatures", type=_temperatures, default=None,
                        help="temperatures to sweep, comma-separated (default "
                             + ",".join(f"{t:g}" for t in IndividualConfig().temperatures)
                             + ")")
    parser.add_argument("--baselines", type=_baselines, default=list(INDIVIDUAL_BASELINES),
                        help="comma-separated, from: " + ", ".join(INDIVIDUAL_BASELINES)
                             + " (default: all; svr only on ordinal questions)")
    parser.add_argument("--save", action="store_true",
                        help="store each adapter's sweep and chosen temperature in its card")
    parser.set_defaults(func=run)


def _temperatures(text: str) -> tuple[float, ...]:
    """'0.25,0.5,1' -> (0.25, 0.5, 1.0) (argparse type)."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of "
                                         "numbers, e.g. 0.25,0.5,1,2") from None


def _baselines(text: str) -> list[str]:
    """Comma-separated baseline names, checked (argparse type)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in INDIVIDUAL_BASELINES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline(s) {', '.join(unknown)}; choose "
                                         f"from {', '.join(INDIVIDUAL_BASELINES)}")
    return names


def config_from_args(args: argparse.Namespace, models) -> IndividualConfig:
    """IndividualConfig from the flags; an adapter's respondent split when none was given."""
    config = options.from_arguments(IndividualConfig, args)
    if args.temperatures is not None:
        config = IndividualConfig(**{**vars(config), "temperatures": args.temperatures})
    held = split_from_cards(models)
    if held and args.test_fraction is None and args.split_seed is None:
        config = IndividualConfig(**{**vars(config), "test_fraction": held[0],
                                     "split_seed": held[1]})
        print(f"holding out the adapters' respondents: test share {held[0]}, split seed "
              f"{held[1]}", file=sys.stderr)
    return config


def _number(value):
    """JSON-safe number (NaN as None, rounded)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def result_json(result) -> dict:
    """JSON-ready result: summary on the test respondents, every sweep, per-question rows."""
    table = result.table.astype(object).where(result.table.notna(), None)
    return {"survey": result.survey_name, "attributes": result.attributes,
            "questions": result.questions, "split": result.split, "n_scored": result.n_scored,
            "n_profiles": result.n_profiles, "mode": result.mode,
            "criterion": result.config.criterion, "notes": result.notes,
            "summary": [{k: (_number(v) if isinstance(v, float) else v)
                         for k, v in row.items()}
                        for row in result.summary().to_dict(orient="records")],
            "sweeps": {label: sweep_record(result, label) for label in result.sweeps},
            "rows": table.to_dict(orient="records")}


def format_result(result) -> str:
    """Plain text: the test summary, then each checkpoint's sweep with the chosen T."""
    keys = list(INDIVIDUAL_SCORES)
    out = [f"{result.survey_name}: {len(result.questions)} question(s), profiles on "
           f"{', '.join(result.attributes)} ({result.n_profiles} distinct prompts per "
           f"checkpoint and temperature run); {result.n_scored['val']} validation and "
           f"{result.n_scored['test']} test respondent answers; mode {result.mode}",
           "scores: " + "; ".join(f"{k} = {s.name} ({s.direction} is better)"
                                  for k, s in INDIVIDUAL_SCORES.items()),
           "RMSEs on the ordinal value scale (0 to 1); temperature chosen on validation "
           f"respondents by {result.config.criterion}", ""]
    out += [f"note: {note}" for note in result.notes]
    summary = result.summary()
    out.append("held-out test respondents (mean over questions)")
    out.append(f"{'entry':<44}{'T':>6}" + "".join(f"{k:>14}" for k in keys))
    for row in summary.to_dict(orient="records"):
        t = "" if not math.isfinite(row["temperature"]) else f"{row['temperature']:g}"
        t += "*" if row["chosen"] else ""
        out.append(f"{row['entry'][:43]:<44}{t:>6}" + "".join(
            f"{'-' if not math.isfinite(row[k]) else format(row[k], '.4f'):>14}" for k in keys))
    for label, sweep in result.sweeps.items():
        out += ["", f"temperature sweep: {label} (* = chosen on validation)",
                f"{'T':>6}{'val kl':>10}{'val rmse':>10}{'test kl':>10}{'test rmse':>10}"]
        for t in result.config.temperatures:
            val, test = sweep.at(t, "val"), sweep.at(t, "test")
            cells = [val.get("kl"), val.get("rmse"), test.get("kl"), test.get("rmse")]
            out.append(f"{t:>5g}{'*' if t == sweep.chosen else ' '}" + "".join(
                f"{'-' if v is None or not math.isfinite(v) else format(v, '.4f'):>10}"
                for v in cells))
    return "\n".join(out)


def save_sweeps(result, models) -> list[str]:
    """Store each adapter's sweep in its card; returns what was saved, in words."""
    saved = []
    for lm, label in zip(models, result.entries):
        if lm.adapter_path is None:
            continue
        update_card(lm.adapter_path, temperature_sweep=sweep_record(result, label))
        saved.append(f"{label}: temperature {result.sweeps[label].chosen:g} "
                     f"({result.mode}) saved in its card")
    return saved


def run(args: argparse.Namespace) -> int:
    """Load survey and checkpoints, simulate, score, print (and save the sweeps)."""
    sim = common.sim_config_from_args(args)
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    if not by:
        raise DataError("--by: name the attributes that describe each respondent, e.g. "
                        "--by PID,age,educ")
    models = common.models_from_args(args)
    config = config_from_args(args, models)
    if any(lm.remote for lm in models):         # the whole run, before anything is sent
        common.announce(plan_individuals(models, survey, by, questions=ids, config=config,
                                         sim=sim, wave=args.wave, bins=bins), sim)
    bar, progress = common.tqdm_progress("individual")
    try:
        result = evaluate_individuals(models, survey, by, questions=ids, config=config,
                                      sim=sim, baselines=args.baselines, wave=args.wave,
                                      bins=bins, progress=progress)
    finally:
        bar.close()
    saved = save_sweeps(result, models) if args.save else []
    if args.json:
        print(json.dumps({**result_json(result), "saved": saved}, ensure_ascii=False,
                         default=str))
    else:
        print(format_result(result))
        for line in saved:
            print(line)
    return 0
