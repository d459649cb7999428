"""Population-level fidelity: do the simulated groups, composed into the population, give the
survey's own answer? (issue 25, sim_core.evaluation.population_evaluate)

The embedded model zero-shot (option orders averaged, no calibration), beside the uniform
guess and the population average, at two levels: the population (post-stratified cells
against the real population answer) and the groups (each cell against its real group).

* ANES 1996 (respondents, no weights): cells PID x age (7 x 4). The real answer is the
  topline with its interval. Compositions: the survey's own (those who answered each
  question); its one-attribute margins raked from independence (what a researcher with
  census margins but no joint table gets); the same margins raked from the survey's joint
  composition (should nearly give back the survey's own).
* GSS 2022 (SubPOP group marginals, no n, no topline): SEX, the one attribute whose groups
  cover everyone. The file has no group sizes, so "the survey's own composition" does not
  exist here; margins Female 0.51 / Male 0.49 (rounded US adult figures) stand in, and the
  real answer is the real groups composed with the same margins, so the score measures the
  simulated groups, not the margins.

Interval coverage (full run, GSS): the questions are split in half (seeded); the cells'
split-conformal intervals are fitted on one half's cells, population-level conformal scores
on the same half, and both are checked on the other half.

    .venv/bin/python bench/population.py            # full run (all 133 + 5 questions)
    .venv/bin/python bench/population.py --quick    # a few questions, a couple of minutes
    # with an adapter trained on the GSS question split (bench/fidelity.py --workspace DIR):
    # base and adapter on the adapter's unseen questions, composed into the population
    .venv/bin/python bench/population.py --workspace DIR --adapter fidelity-question

Writes bench/results/population.{json,md} (--quick: population-quick.{json,md}).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sim_core.base.labels import baseline_entry  # noqa: E402
from sim_core.base.writing import atomic_write  # noqa: E402
from sim_core.evaluation.population import cell_bounds, conformal_interval  # noqa: E402
from sim_core.evaluation.population_evaluate import (  # noqa: E402
    GROUPS,
    POPULATION,
    evaluate_population,
)
from sim_core.evaluation.splits import SplitInfo  # noqa: E402
from sim_core.simulation.adapter_card import read_card  # noqa: E402
from sim_core.simulation.calibration import Calibration, conformity_scores  # noqa: E402
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model  # noqa: E402
from sim_core.simulation.simulate import orders_for
from sim_core.survey.composition import survey_composition  # noqa: E402
from sim_core.survey.demo import load_demo  # noqa: E402
from sim_core.survey.margins import checked_margins  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ANES_CELLS = ["PID", "age"]
ANES_QUICK = ["selfLR", "ClinLR"]
GSS_MARGINS = {"SEX": {"Female": 0.51, "Male": 0.49}}
GSS_QUICK = 5                 # the first questions of the file
LEVEL = 0.9                   # interval level checked
SEED = 0


def anes_margins(survey) -> object:
    """The survey's own one-attribute margins (everyone, unweighted: ANES has no weights)."""
    shares = {a: survey_composition(survey, [a]).margins()[a] for a in ANES_CELLS}
    return checked_margins(shares, "anes96 margins")


def summarise(evaluation, label: str) -> dict:
    """Mean WD (or TV) per entry and level, and how many questions it averages."""
    score = evaluation.score
    table = evaluation.summary(score)
    out = {"score": score, "source": evaluation.source, "notes": evaluation.notes,
           "questions": int(table.loc[label, "questions"]), "entries": {}}
    for entry in evaluation.entries:
        out["entries"][entry] = {level: _number(table.loc[entry, level])
                                 for level in (POPULATION, GROUPS)}
    out["per_question"] = evaluation.chart_data(score).to_dict(orient="records")
    return out


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def coverage(evaluation, label: str, seed: int = SEED) -> dict:
    """Interval coverage on half the questions, fitted on the other half (see docstring)."""
    estimates = [e for e in evaluation.estimates.values()
                 if e.reference is not None and all(c is not None for c in e.real_cells)]
    if len(estimates) < 10:
        return {"skipped": f"{len(estimates)} questions with real cells: too few to split"}
    order = np.random.default_rng(seed).permutation(len(estimates))
    fit = [estimates[i] for i in order[: len(order) // 2]]
    test = [estimates[i] for i in order[len(order) // 2:]]
    cells = Calibration(residuals={"raw": sorted(np.concatenate([
        conformity_scores(e.real_cells, [r.shares for r in e.cells[label]]) for e in fit]))})
    population = evaluation.conformity(label, [e.question.id for e in fit])
    hits: dict[str, list] = {"cell bounds": [], "conformal": []}
    widths: dict[str, list] = {"cell bounds": [], "conformal": []}
    for e in test:
        lows, highs = zip(*(cells.interval(r.shares, LEVEL, calibrated=False)
                            for r in e.cells[label]))
        for method, (low, high) in (
                ("cell bounds", cell_bounds(e.composition.shares, lows, highs)),
                ("conformal", conformal_interval(e.estimates[label], population, LEVEL))):
            hits[method].extend((low <= e.reference) & (e.reference <= high))
            widths[method].extend(high - low)
    return {"level": LEVEL, "fit_questions": len(fit), "test_questions": len(test),
            **{m: {"coverage": round(float(np.mean(hits[m])), 3),
                   "mean_width": round(float(np.mean(widths[m])), 3)} for m in hits}}


def run_anes(lm, config, quick: bool) -> dict:
    survey = load_demo("anes96")
    questions = ANES_QUICK if quick else list(survey.questions)
    margins = anes_margins(survey)
    runs = {"survey composition": dict(),
            "margins raked from independence": dict(margins=margins, rake_from="independence"),
            "margins raked from the survey's joint composition": dict(margins=margins,
                                                                     rake_from="survey")}
    out = {}
    for name, kw in runs.items():
        evaluation = evaluate_population([lm], survey, ANES_CELLS, questions=questions,
                                         config=config, **kw)
        out[name] = summarise(evaluation, lm.label)
    return out


def run_gss_adapter(lm, adapted, config, margins) -> dict:
    """Base and adapter on the questions the adapter never saw (its card's split)."""
    survey = load_demo("gss2022")
    split = SplitInfo.from_dict(read_card(adapted.adapter_path).split)
    if split.how != "question":
        return {"skipped": f"the adapter's split is by {split.how or 'nothing'}, not question"}
    held = [q for q in split.test_questions if q in survey.questions]
    evaluation = evaluate_population([lm, adapted], survey, ["SEX"], margins=margins,
                                     questions=held, config=config)
    out = summarise(evaluation, lm.label)
    out["differences"] = paired_differences(out["per_question"], adapted.label,
                                            [baseline_entry("uniform"), lm.label])
    return out


def paired_differences(per_question: list[dict], entry: str, references: list[str]) -> dict:
    """Population-level score of `entry` minus each reference, question by question: the
    mean, a 95 % bootstrap interval over questions (scipy, seeded) and how many questions
    `entry` wins, so a gap within noise reads as one."""
    from scipy import stats

    scores: dict[str, dict] = {}
    for row in per_question:
        scores.setdefault(row["entry"], {})[row["question_id"]] = row["population"]
    out = {}
    for ref in references:
        both = [q for q in scores.get(entry, {}) if q in scores.get(ref, {})
                and scores[entry][q] is not None and scores[ref][q] is not None]
        if len(both) < 5:
            out[ref] = {"skipped": f"{len(both)} questions scored by both"}
            continue
        diff = np.array([scores[entry][q] - scores[ref][q] for q in both])
        ci = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=10000,
                             random_state=SEED).confidence_interval
        out[ref] = {"mean": round(float(diff.mean()), 4), "ci95": [round(float(ci.low), 4),
                                                                  round(float(ci.high), 4)],
                    "better_on": int((diff < 0).sum()), "questions": len(both)}
    return out


def run_gss(lm, config, quick: bool, adapted=None) -> dict:
    survey = load_demo("gss2022")
    questions = list(survey.questions)[:GSS_QUICK] if quick else None
    out = {"survey composition": {"skipped": "the SubPOP file has no group sizes (n) and no "
                                             "topline: the survey's composition is unknown"}}
    margins = checked_margins(GSS_MARGINS, "us adults by sex (rounded)")
    evaluation = evaluate_population([lm], survey, ["SEX"], margins=margins,
                                     questions=questions, config=config)
    out["margins (SEX)"] = summarise(evaluation, lm.label)
    out["margins (SEX)"]["coverage"] = coverage(evaluation, lm.label)
    if adapted is not None:
        out["margins (SEX), the adapter's unseen questions"] = run_gss_adapter(
            lm, adapted, config, margins)
    return out


def _git_commit() -> str:
    """The commit the benchmark ran on ('' outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cell(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(result: dict) -> str:
    """The results as a markdown table (population and group level, per composition)."""
    label = result["model"]
    entries = [label, *result.get("adapters", []), baseline_entry("uniform"),
               baseline_entry("population")]
    lines = [f"Population-level fidelity ({result['label']}; `{result['command']}`, commit "
             f"{result['commit']}, {result['machine']}, {result['wall_time_s']:.0f} s). "
             "Mean score over the questions (WD: ordinal Wasserstein; lower is better); "
             "population = post-stratified cells against the real population answer, "
             "groups = each cell against its real group. The population average uses the "
             "question's own real answers (an oracle reference line, not a contender); it is "
             "left out at the population level where it is the real topline itself. "
             f"Model loading took {result['model_load_s']:.0f} s of the wall time.", "",
             "| data | composition | questions | score | " + " | ".join(
                 f"{e} pop. | {e} groups" for e in entries) + " |",
             "|---|---|---|---|" + "---|---|" * len(entries)]
    for data, runs in result["data"].items():
        for name, run in runs.items():
            if "skipped" in run:
                lines.append(f"| {data} | {name}: *{run['skipped']}* | – | – | " + " | ".join(
                    ["–", "–"] * len(entries)) + " |")
                continue
            cells = [_cell(run["entries"].get(e, {}).get(level)) for e in entries
                     for level in ("population", "groups")]
            lines.append(f"| {data} | {name} | {run['questions']} | {run['score']} | "
                         + " | ".join(cells) + " |")
    for data, runs in result["data"].items():
        for name, run in runs.items():
            for ref, d in (run.get("differences") or {}).items():
                if "skipped" in d:
                    continue
                lines += ["", f"{data}, {name}: adapter minus {ref}, population level, "
                          f"{d['mean']:+.3f} (95 % bootstrap interval over the {d['questions']} "
                          f"questions {d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}; the adapter "
                          f"is closer on {d['better_on']} of them)."]
    for data, runs in result["data"].items():
        for name, run in runs.items():
            cover = run.get("coverage") if isinstance(run, dict) else None
            if not cover:
                continue
            if "skipped" in cover:
                lines += ["", f"Interval coverage ({data}, {name}): skipped, {cover['skipped']}."]
                continue
            lines += ["", f"Interval coverage ({data}, {name}; nominal {cover['level']:g}; "
                      f"fitted on {cover['fit_questions']} questions, checked on "
                      f"{cover['test_questions']}): " + "; ".join(
                          f"{m} {cover[m]['coverage']:.3f} (mean width "
                          f"{cover[m]['mean_width']:.3f})" for m in ("cell bounds",
                                                                      "conformal")) + "."]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{len(ANES_QUICK)} ANES and {GSS_QUICK} GSS questions")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="SIM_WORKSPACE holding the adapter (default: a fresh temporary one)")
    ap.add_argument("--adapter", default=None,
                    help="an adapter trained on the GSS question split, scored with the base "
                         "model on its unseen questions")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    """Run the benchmark; write the results; print the table."""
    args = parse_args(argv)
    if args.workspace:
        os.environ["SIM_WORKSPACE"] = str(args.workspace)
    elif "SIM_WORKSPACE" not in os.environ:        # a fresh cache: nothing read from before
        os.environ["SIM_WORKSPACE"] = tempfile.mkdtemp(prefix="population-bench-")
    torch.manual_seed(SEED)
    start = time.time()
    lm = load_model("default")
    adapted = load_model("default", args.adapter) if args.adapter else None
    load_s = time.time() - start
    config = SimConfig()                            # first-token, the model's own orders
    result = {"label": "QUICK run: a few questions; not the benchmark" if args.quick
              else "full run", "command": "python bench/population.py"
              + (" --quick" if args.quick else "")
              + (f" --workspace DIR --adapter {args.adapter}" if args.adapter else ""),
              "model": lm.label, "adapters": [adapted.label] if adapted else [],
              "model_fingerprint": lm.fingerprint, "orders": orders_for(lm, config),
              "calibrated": False,
              "gss_margins": GSS_MARGINS, "anes_cells": ANES_CELLS,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
              "commit": _git_commit(), "data": {}}
    result["data"]["ANES 1996"] = run_anes(lm, config, args.quick)
    result["data"]["GSS 2022"] = run_gss(lm, config, args.quick, adapted)
    result["wall_time_s"] = round(time.time() - start, 1)
    result["model_load_s"] = round(load_s, 1)
    table = markdown(result)
    stem = "population-quick" if args.quick else "population"
    atomic_write(args.out / f"{stem}.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic_write(args.out / f"{stem}.md", table + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
