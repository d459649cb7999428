"""`python -m sim_core baselines`: what the uniform guess, the population average and a
classical model of answers from demographics score against the real marginals.

Example:
    python -m sim_core baselines --data gss2022 --question natspac --by SEX
    python -m sim_core baselines --data survey.csv --weight wt --question q1 --by sex,age --json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sim_core.base import options
from sim_core.base.errors import DataError
from sim_core.base.labels import NOISE_FLOOR, REAL
from sim_core.base.metrics import METRICS, best_entry, noise_floor, score_all
from sim_core.base.options import MAX_SEED
from sim_core.commands import common
from sim_core.commands.formatting import floats, format_rows, score_legend, slice_heading
from sim_core.evaluation import baselines as B
from sim_core.evaluation.baselines import ROW_BASELINES
from sim_core.evaluation.demographic_models import MODEL_BASELINES
from sim_core.evaluation.splits import RESPONDENT_TEST_SHARE
from sim_core.survey.slices import real_marginals


def register(subparsers) -> None:
    """Add the `baselines` subcommand."""
    parser = subparsers.add_parser(
        "baselines", help="baseline distributions and their scores per slice",
        description="Score the uniform guess, the population average and models of answers "
                    "from demographics (logistic regression, gradient boosting, SVR) against "
                    "the real marginals.")
    common.add_data_args(parser)
    common.add_baselines_arg(parser)
    options.add_flag(parser, "--test-fraction", RESPONDENT_TEST_SHARE, above=0, max=0.9,
                     help="share of respondents held out from the model baselines")
    options.add_flag(parser, "--seed", 0, kind=int, min=0, max=MAX_SEED,
                     help="seed of the held-out respondents and the models")
    parser.set_defaults(func=run)


def question_baselines(survey, qid: str, by, *, wave=None, bins=None,
                       test_fraction=RESPONDENT_TEST_SHARE,
                       seed=0, which=B.DEFAULT_BASELINES) -> dict:
    """Real marginals, baselines, scores and noise floor of one question.

    Returns:
        {"question", "marginals", "baselines": name -> label -> dist, "fits": model
        baseline name -> DemographicFit, "notes": baselines left out and why, "scores":
        label -> name -> scores, "noise_floor": label -> scores}.
    """
    question = survey.questions[qid]
    marginals = real_marginals(survey, qid, by, wave=wave, bins=bins)
    dists = B.baselines_for(survey, qid, by, wave=wave, bins=bins,
                            which=[n for n in which if n in ROW_BASELINES])
    fits, notes = {}, []
    for name in [n for n in which if n in MODEL_BASELINES]:
        if survey.kind != "respondents":
            notes.append(f"{name} left out: it needs respondent-level data.")
            continue
        try:
            fits[name] = B.classifier_fit(survey, qid, by, wave=wave, bins=bins,
                                          test_fraction=test_fraction, seed=seed, name=name)
        except DataError as error:
            notes.append(f"{name} left out: {error}")
            continue
        dists[name] = fits[name].dists
    scores, floors = {}, {}
    for m in marginals:
        scores[m.label] = {name: score_all(m.shares, d[m.label], n=m.n_eff or None,
                                           ordinal_values=question.ordinal_values)
                           for name, d in dists.items() if m.label in d}
        floors[m.label] = noise_floor(m.shares, m.n_eff, ordinal_values=question.ordinal_values)
    return {"question": question, "marginals": marginals, "baselines": dists, "fits": fits,
            "notes": notes, "scores": scores, "noise_floor": floors}


def fit_json(fit) -> dict:
    """How well a model baseline predicts individuals (held-out accuracy), JSON-ready."""
    return {"accuracy": round(fit.accuracy, 4),
            "majority_accuracy": round(fit.majority_accuracy, 4), "n_train": fit.n_train,
            "n_test": fit.n_test, "features": fit.features, "in_sample_slices": fit.in_sample}


def result_json(result: dict) -> dict:
    """JSON-ready form of question_baselines() ("classifier" kept for older readers)."""
    fits = result["fits"]
    q = result["question"]
    return {"question": q.id, "text": q.text, "options": list(q.options),
            "classifier": fit_json(fits["classifier"]) if "classifier" in fits else None,
            "models": {name: fit_json(fit) for name, fit in fits.items()},
            "notes": result["notes"],
            "slices": [{"slice": m.slice, "label": m.label, "n": m.n, "n_asked": m.n_asked,
                        "n_total": m.n_total, "nonresponse": m.nonresponse,
                        "n_eff": None if m.n_eff is None else round(m.n_eff, 3),
                        "real": floats(m.shares),
                        "baselines": {name: floats(d[m.label])
                                      for name, d in result["baselines"].items() if m.label in d},
                        "scores": {name: {k: None if not np.isfinite(v) else round(v, 6)
                                          for k, v in s.items()}
                                   for name, s in result["scores"][m.label].items()},
                        "noise_floor": {k: round(v, 6)
                                        for k, v in result["noise_floor"][m.label].items()}}
                       for m in result["marginals"]]}


def format_result(result: dict) -> str:
    """Plain-text tables: one per slice."""
    q = result["question"]
    keys = [k for k in METRICS if any(k in s for per in result["scores"].values()
                                      for s in per.values())]
    out = [f"{q.id}: {q.text}", score_legend(keys) + "; * = best baseline"]
    for name, fit in result["fits"].items():
        out.append(f"{name} ({B.BASELINES[name].label.lower()}: {', '.join(fit.features)}): "
                   f"held-out accuracy {fit.accuracy:.3f} (majority guess "
                   f"{fit.majority_accuracy:.3f}; {fit.n_train} train / {fit.n_test} held out)")
    out += [f"note: {note}" for note in result["notes"]]
    for m in result["marginals"]:
        scores = result["scores"][m.label]
        rows = [(REAL, m.shares, {})]
        rows += [(name, d[m.label], scores[name]) for name, d in result["baselines"].items()
                 if m.label in d]
        if result["noise_floor"][m.label]:
            rows.append((NOISE_FLOOR, None, result["noise_floor"][m.label]))
        best = {k: best_entry({e: s.get(k, np.nan) for e, s in scores.items()}, k) for k in keys}
        out += ["", slice_heading(m.label, m), format_rows(q.options, rows, keys, best)]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Load the survey, compute the baselines per question, print tables or JSON."""
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    bar, progress = common.tqdm_progress("baselines", unit="question")
    results = []
    try:
        for i, qid in enumerate(ids):
            results.append(question_baselines(survey, qid, by, wave=args.wave, bins=bins,
                                              test_fraction=args.test_fraction, seed=args.seed,
                                              which=args.baselines))
            progress(i + 1, len(ids))
    finally:
        bar.close()
    common.print_warnings(survey, args, ids + by)
    if args.json:
        print(json.dumps([result_json(r) for r in results], indent=1, ensure_ascii=False))
    else:
        print("\n\n".join(format_result(r) for r in results))
    return 0
