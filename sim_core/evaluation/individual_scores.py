"""Scores of individual answers: how well predictions for each respondent match that
respondent's own answer, with the population KL of the same predictions beside them
(Namikoshi et al. 2024: individual fit by RMSE, population fit by KL).

A prediction for a respondent is a distribution q over the options (a simulated virtual
respondent, a classifier) or a point value on the ordinal scale (SVR). A virtual respondent
*answers* by drawing from q, so the answer RMSE is the expected error of that draw,
computed exactly; at a temperature near 0 the draw is the most likely option, at higher
temperatures answers spread out. Ordinal values are scaled to [0, 1] over the question's
finite values (multiply by v_max - v_min for the question's own units); respondents who gave
a non-substantive answer (no value) are left out of the RMSEs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_core.base.metrics import compute
from sim_core.evaluation.demographic_models import nearest_option, ordinal_scale


@dataclass(frozen=True)
class IndividualScore:
    """Metadata of one individual-level score (what the UI, CLI and report print)."""

    key: str
    name: str
    formula: str
    direction: str          # "lower" | "higher" is better
    ordinal_only: bool = False
    needs_probabilities: bool = False


INDIVIDUAL_SCORES: dict[str, IndividualScore] = {s.key: s for s in (
    IndividualScore("rmse", "RMSE (answer)",
                    "sqrt(mean over respondents of E_{a~q} (v_a - v_y)^2): the error of an "
                    "answer drawn from the prediction q, values scaled to [0, 1]; SVR: its "
                    "point prediction", "lower", ordinal_only=True),
    IndividualScore("rmse_expected", "RMSE (expected value)",
                    "sqrt(mean (sum_a q_a v_a - v_y)^2): the error of the prediction's mean "
                    "value, scaled to [0, 1]", "lower", ordinal_only=True),
    IndividualScore("log_loss", "Log-loss", "mean -ln q_y (q smoothed with 1e-8 as for KL)",
                    "lower", needs_probabilities=True),
    IndividualScore("brier", "Brier score", "mean sum_a (q_a - [a = y])^2", "lower",
                    needs_probabilities=True),
    IndividualScore("accuracy", "Accuracy", "share of respondents whose answer is the most "
                    "likely predicted one (SVR: the option nearest its prediction)", "higher"),
    IndividualScore("kl", "Population KL",
                    "KL(real answer shares || mean predicted distribution) over the same "
                    "respondents (SVR: shares of its nearest options)", "lower"),
)}
"""Every individual-level score, in display order."""


def _mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean over finite values (NaN when none)."""
    keep = np.isfinite(values) & (weights > 0)
    if not keep.any():
        return float("nan")
    return float(np.average(values[keep], weights=weights[keep]))


def _rmse(probs, values, answers, weights, scale) -> tuple[float, float]:
    """(answer RMSE, expected-value RMSE) on the [0, 1] value scale."""
    truth = scale[answers]
    if values is not None:
        error = (values - truth) ** 2
        rmse = np.sqrt(_mean(error, weights))
        return rmse, rmse
    finite = np.isfinite(scale)
    mass = probs[:, finite]
    total = mass.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = mass / total            # answers restricted to options with a value
    v = scale[finite]
    drawn = (q * (v[None, :] - truth[:, None]) ** 2).sum(axis=1)
    expected = ((q * v[None, :]).sum(axis=1) - truth) ** 2
    return float(np.sqrt(_mean(drawn, weights))), float(np.sqrt(_mean(expected, weights)))


def score_predictions(question, answers, weights, *, probs=None, values=None
                      ) -> dict[str, float]:
    """Every individual-level score of one question's predictions.

    Args:
        question: sim_core.survey.schema.Question.
        answers: (n,) option index of each respondent's real answer.
        weights: (n,) survey weights.
        probs: (n, k) predicted distribution per respondent, or
        values: (n,) predicted value on the [0, 1] ordinal scale (SVR).
    Returns:
        score key -> value (NaN where a score does not apply: RMSEs for nominal questions,
        log-loss and Brier for point predictions).
    """
    answers = np.asarray(answers, dtype=int)
    weights = np.asarray(weights, dtype=np.float64)
    k = question.k
    scale = ordinal_scale(question) if question.is_ordinal else None
    if probs is None:
        chosen = nearest_option(values, scale)
        answer_dists = np.eye(k)[chosen]
    else:
        probs = np.asarray(probs, dtype=np.float64)
        chosen = probs.argmax(axis=1)
        answer_dists = probs
    out = dict.fromkeys(INDIVIDUAL_SCORES, float("nan"))
    if scale is not None:
        out["rmse"], out["rmse_expected"] = _rmse(probs, values, answers, weights, scale)
    onehot = np.eye(k)[answers]
    if probs is not None:
        out["log_loss"] = _mean(np.asarray(compute("kl", onehot, probs)), weights)
        out["brier"] = _mean(((probs - onehot) ** 2).sum(axis=1), weights)
    out["accuracy"] = _mean((chosen == answers).astype(float), weights)
    real = np.bincount(answers, weights=weights, minlength=k)
    predicted = (answer_dists * weights[:, None]).sum(axis=0)
    out["kl"] = float(compute("kl", real / real.sum(), predicted / predicted.sum()))
    return out
