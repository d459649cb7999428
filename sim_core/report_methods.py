"""The methods paragraphs of a report: how shares were simulated, calibrated and scored."""

from __future__ import annotations

from typing import Any

# Functions take a sim_core.report.Report (typed Any: that module imports this one).
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


def methods_text(report: Report) -> str:
    """The methods paragraph: how distributions are simulated and scores defined."""
    orders = orders_sentence(report)
    mode = ("the next-token probabilities of the option letters, renormalised over the "
            "options" if report.mode == "first-token" else
            "answers sampled from the model and parsed into options")
    parts = [
        "Each slice is described to the model by a persona (one sentence per attribute), "
        "followed by the question with lettered options and an instruction to answer with "
        f"a letter. The simulated distribution is {mode}, using {orders}.",
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
        "demographics. The noise floor is the score two independent real samples of size "
        "n_eff would get: a model cannot meaningfully beat it.",
        calibration_text(report),
        ("Scores (p = real, q = simulated): " + "; ".join(
            f"{s.name} = {s.formula} ({s.direction} is better)" for s in report.scores) + "."
         if report.scores else "No scores: there is no real data to compare with."),
    ]
    return "\n\n".join(parts)


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
            f"split). {state} Prediction intervals ({level}) are split conformal: each share "
            "q gets q ± s·(√(q(1−q)) + 0.05), s the conformal quantile of the same scaled "
            "residuals on the validation rows. Verdicts compare the checkpoint with the "
            "uniform guess, the population average and the zero-shot model on held-out "
            "rows, with 95 % bootstrap intervals of each difference over questions (seeded).")
