"""The methods text of a report: how distributions were simulated, calibrated and scored,
in words a reader of the PDF can follow (sim_core.report.document builds it, report_pdf
prints it)."""

from __future__ import annotations

from typing import Any

from sim_core.evaluation.splits import RESPONDENT_TEST_SHARE
from sim_core.report.fairness_individual import IndividualPart

# Functions take a sim_core.report.document.Report (typed Any: that module imports this one).
Report = Any


def orders_sentence(report: Report) -> str:
    """How many option orders were averaged, in words (per checkpoint when they differ)."""
    def words(n: int) -> str:
        return ("the original option order only" if n <= 1 else
                f"{n} option orders (original, reversed, cyclic shifts), averaged after mapping "
                "back to the original options")

    if report.orders >= 1:
        return words(report.orders)
    per = [(c.get("label"), c.get("orders")) for c in report.checkpoints if c.get("orders")]
    if not per:
        return "each checkpoint's own number of option orders"
    if len({n for _, n in per}) == 1:
        return words(per[0][1])
    return ("each checkpoint's own number of option orders (" + "; ".join(
        f"{label}: {words(n)}" for label, n in per) + "; an adapter trained on the original "
        "option order is read in that order only)")


MODE_TEXT = {
    "first-token": "the next-token probabilities of the option letters, renormalised over "
                   "the options (through a chat API: the top log-probabilities of the reply's "
                   "first token, letters outside them counted as 0)",
    "sample": "answers sampled from the model and parsed into options; answers that could "
              "not be read are counted and left out, never replaced by a guess",
    "verbalized": "the percentages the model stated for each option when asked what share of "
                  "people like the persona would choose it, normalised to sum to 1; a reply "
                  "that could not be read was asked once more, then counted as unparsed and "
                  "left out, never replaced by a guess",
}


def methods_text(report: Report) -> str:
    """The methods paragraph: how distributions are simulated and scores defined."""
    orders = orders_sentence(report)
    mode = MODE_TEXT.get(report.mode, report.mode)
    asked = ("a percentage for every option" if report.mode == "verbalized" else
             "a letter")
    servers = sorted({c["endpoint"] for c in report.checkpoints if c.get("endpoint")})
    parts = [
        "Each slice is described to the model by a persona (one sentence per attribute), "
        "followed by the question with lettered options and an instruction to answer with "
        f"{asked}. The simulated distribution is {mode}, using {orders}."
        + (f" Served by {', '.join(servers)}: only the question, its options and the group "
           "descriptions were sent, never a respondent's row." if servers else ""),
        "Real shares are weighted shares of the survey respondents of each slice who gave a "
        "valid answer; nonresponse (don't know, refused, not asked / system-missing, other "
        "missing codes) is never an option and is reported as weighted shares of the "
        "slice's respondents. The 95 % interval: "
        + (report.intervals or "a Wilson interval using the Kish effective sample size n_eff")
        + (". Intervals reflect weighting only, not clustering or stratification."
           if report.intervals.startswith("weighting only") else ".")
        + " Slices marked 'small' have too few respondents to trust."
        + (f" Weighting: {report.weighting}." if report.weighting else "")
        + (f" Population named in the prompt: {report.population}." if report.population
           else ""),
        "Baselines: uniform = every option equally likely; population = the whole-population "
        "real distribution for every slice; classifier = multinomial logistic regression on "
        "demographics; boosting = gradient-boosted trees on demographics; svr = support vector "
        "regression of the ordinal value on demographics (the model baselines are fitted on "
        f"the same {1 - RESPONDENT_TEST_SHARE:.0%} of the respondents). The noise floor is the "
        "score two independent real samples of size n_eff would get: a model cannot "
        "meaningfully beat it.",
        calibration_text(report),
        ("Scores (p = real, q = simulated): " + "; ".join(
            f"{s.name} = {s.formula} ({s.direction} is better)" for s in report.scores) + "."
         if report.scores else "" if report.individual else
         "No scores: there is no real data to compare with."),
    ]
    if getattr(report, "population_estimates", None):
        parts.append(POPULATION_METHODS)
    if report.evaluation is not None and report.evaluation.fairness:
        parts.append(FAIRNESS_METHODS)
    if report.individual is not None:
        parts.append(individual_methods(report.individual))
    return "\n\n".join(p for p in parts if p)


def calibration_text(report: Report) -> str:
    """How calibration, prediction intervals and the verdicts were made."""
    calibrated = [c["label"] for c in report.checkpoints if c.get("calibrated")]
    state = (f"Calibrated here: {', '.join(calibrated)}." if calibrated else
             "No checkpoint here was calibrated.")
    level = f"{report.interval_level * 100:g} %" if report.interval_level else "a chosen level"
    return ("Calibration: a checkpoint's letter probabilities are raised to 1/T and mixed with "
            "a reference (uniform, or the training prior by option position) with weight w; "
            "T and w minimise the mean KL on validation rows it is never tested on (an "
            "adapter: its split's validation rows; a base model: its own seeded question "
            "split). Judged on validation questions it was not fitted on (cross-fitted over "
            "folds of questions, 95 % bootstrap interval of the KL difference over questions "
            "below 0), a fit is kept only when it beats the raw shares (otherwise the shares "
            "stay as simulated), and what is kept only when it beats the uniform guess "
            f"(otherwise the calibrated shares are the uniform guess itself). {state} "
            "Prediction intervals "
            f"({level}) are split conformal: each share "
            "q gets q ± s·(√(q(1−q)) + 0.05), s the conformal quantile of the same scaled "
            "residuals on the validation rows. Verdicts compare the checkpoint with the "
            "uniform guess, the population average and the zero-shot model on held-out "
            "rows, with 95 % bootstrap intervals of each difference over questions (seeded).")




POPULATION_METHODS = (
    "Population estimates: the share of each option in the population is the sum over "
    "cells (the crossed slices) of the cell's simulated share times the cell's population "
    "share (post-stratification, as in MRP). Cell shares come from the survey's own weighted "
    "composition (those who answered the question), or from margins the researcher gave, "
    "raked into cells by iterative proportional fitting (started from the survey's joint "
    "composition when there is one, else from independence). A subgroup is estimated from "
    "the cells that make it up. The prediction interval is the same weighted sum of the "
    "cells' calibrated interval bounds ('cell bounds': it holds whenever every cell's "
    "interval holds and is conservative in width, but its coverage is measured, not "
    "guaranteed), or split conformal over population estimates of calibration questions "
    "('conformal'). The real topline carries its own 95 % interval; where the data has no "
    "topline, the real group shares composed with the same cell shares stand in. The "
    "population-average baseline is left out where it is the topline itself.")


FAIRNESS_METHODS = (
    "Fairness view: a group's gap is its mean score over its (question, group) rows, drawn "
    "against the group's mean effective sample size. The noise floor curve is the score two "
    "independent real samples of that size would get (mean over the questions), so a small "
    "group's larger gap is read against its larger noise. Spread across groups: standard "
    "deviation and range of the gaps. A group's gap 'grew' when an adapter's gap exceeds the "
    "first checkpoint's (usually the base model); 'beyond noise' when the growth exceeds the "
    "group's noise floor.")


def individual_methods(part: IndividualPart) -> str:
    """The methods paragraph of the individual-level evaluation."""
    split = part.split
    return (
        f"Individual level: the survey's respondents were split once (seed {split.get('seed')}"
        f"): {split.get('test_fraction')} of them held out for the test, and "
        f"{split.get('val_fraction')} of the rest set aside for validation. Each validation "
        f"and test respondent is simulated from their own profile on {', '.join(part.attributes)} "
        "(identical profiles share one prompt) and scored against their own answer. A virtual "
        "respondent answers by drawing from the simulated distribution at temperature T "
        + ("(first-token mode: the letter probabilities raised to 1/T and renormalised); "
           if part.mode == "first-token" else "(sampling mode: answers sampled at T); ")
        + f"T is chosen on the validation respondents by {part.criterion} and every entry is "
        "scored on the test respondents. The model baselines (logistic regression, gradient "
        "boosting, SVR on the ordinal value) are fitted on the non-test respondents' "
        "demographics on the same attributes. RMSEs are on the ordinal value scale scaled to "
        "0-1. Scores: " + "; ".join(f"{s['name']} = {s['formula']} ({s['direction']} is "
                                    "better)" for s in part.scores) + ".")
