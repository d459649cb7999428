"""Baselines that give a score its meaning: the uniform guess, the population average and a
classical model of answers from demographics (multinomial logistic regression)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder

from sim_core.errors import DataError
from sim_core.options import Choice, registry
from sim_core.slices import _respondent_frame, group_values, real_marginals, slice_label
from sim_core.survey import MARGINALS, Survey

BASELINES = registry(
    Choice("uniform", "Uniform guess", "every option equally likely"),
    Choice("population", "Population average",
           "the whole population's real answer shares, guessed for every group"),
    Choice("classifier", "Classifier on demographics",
           "multinomial logistic regression of the answer on the demographic attributes, "
           "trained on 70 % of the respondents (respondent-level data only)"),
)
"""Every baseline, in display order; compare() offers all, evaluate() the ROW_BASELINES."""
ROW_BASELINES = ("uniform", "population")
"""Baselines that need only (question, slice) rows, no respondents (evaluation, training)."""
MISSING_GROUP = "(missing)"    # a demographic left blank is its own one-hot category


def check_names(which: Sequence[str], allowed: Sequence[str] = tuple(BASELINES)) -> list[str]:
    """The baseline names, refused with a DataError when one is unknown (before any work)."""
    unknown = [name for name in which if name not in allowed]
    if unknown:
        raise DataError(f"unknown baseline(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(allowed)}.")
    return list(which)


def uniform(k: int) -> np.ndarray:
    """The uniform guess over k options."""
    if k < 1:
        raise ValueError("a question needs at least one option")
    return np.full(k, 1.0 / k)


def population_average(survey: Survey, question_id: str, *, wave: str | None = None) -> np.ndarray:
    """The whole-population real marginal, guessed for every slice.

    Args:
        survey: a loaded Survey.
        question_id: the question.
        wave: one wave (None: respondents pooled over waves; the only wave of a table).

    Returns:
        Distribution (k,). Marginal tables without a whole-population row: the unweighted
        mean of every group's distribution of that question (e.g. the 22 GSS groups).
    """
    if survey.kind != MARGINALS:
        return real_marginals(survey, question_id, (), wave=wave, min_n_eff=0)[0].shares
    table = survey.marginals
    present = set(table.loc[table["question_id"] == question_id, "attribute"])
    if "" in present:
        return real_marginals(survey, question_id, (), wave=wave, min_n_eff=0)[0].shares
    groups = [m.shares for attribute in sorted(present)
              for m in real_marginals(survey, question_id, [attribute], wave=wave, min_n_eff=0)]
    if not groups:
        raise DataError(f"question {question_id} has no rows in the table.")
    mean = np.mean(groups, axis=0)
    return mean / mean.sum()


@dataclass
class ClassifierFit:
    """The classifier baseline of one question, with how well it predicts individuals.

    Attributes:
        dists: slice label -> mean predicted distribution over held-out respondents.
        accuracy: share of held-out respondents whose answer is the most probable one.
        majority_accuracy: the same for always guessing the most common training answer.
        n_train, n_test: respondents used to fit and to evaluate.
        features: demographic attributes used as one-hot features.
        in_sample: slice labels without held-out respondents (predicted on training ones).
    """

    dists: dict[str, np.ndarray]
    accuracy: float
    majority_accuracy: float
    n_train: int
    n_test: int
    features: list[str]
    in_sample: list[str] = field(default_factory=list)


def _features(frame: pd.DataFrame, attributes: Sequence[str], bins) -> pd.DataFrame:
    """Group label per respondent and attribute, as text (numeric attributes binned)."""
    columns = {a: pd.Series(group_values(frame, a, bins), index=frame.index).astype(object)
               for a in attributes}
    table = pd.DataFrame(columns, index=frame.index)
    return table.where(table.notna(), MISSING_GROUP).astype(str)


def _slice_labels(groups: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """slice_label per respondent for the attributes in `by` (None where a value is missing)."""
    if not by:
        return pd.Series("All", index=groups.index)
    labels = groups[list(by)].apply(lambda r: slice_label(dict(zip(by, r))), axis=1)
    missing = (groups[list(by)] == MISSING_GROUP).any(axis=1)
    return labels.where(~missing, None)


def _fit(x_train, y_train, w_train, k: int, seed: int):
    """Fit the model; returns predict(x) -> (n, k) probabilities over all k options."""
    classes = np.unique(y_train)
    if classes.size == 1:       # one answer only: scikit-learn cannot fit, the guess is sure
        def predict_one(x):
            out = np.zeros((x.shape[0], k))
            out[:, classes[0]] = 1.0
            return out
        return predict_one
    model = LogisticRegression(max_iter=1000, random_state=seed)
    model.fit(x_train, y_train, sample_weight=w_train)

    def predict(x):
        out = np.zeros((x.shape[0], k))
        out[:, model.classes_] = model.predict_proba(x)
        return out
    return predict


def classifier_fit(survey: Survey, question_id: str, by: Sequence[str], *,
                   wave: str | None = None, bins=None, test_fraction: float = 0.3,
                   seed: int = 0) -> ClassifierFit:
    """Multinomial logistic regression of the answer on one-hot demographics.

    Args:
        survey: a respondent-level Survey (DataError for marginal tables).
        question_id: the question to predict.
        by: attributes defining the slices (all demographics are features).
        wave, bins: as in sim_core.slices.real_marginals.
        test_fraction: share of respondents held out (seeded split).
        seed: split and solver seed.

    Returns:
        ClassifierFit with per-slice mean predicted distributions (weighted like the real
        marginals) and the held-out accuracy.
    """
    if survey.kind == MARGINALS or survey.respondents is None:
        raise DataError("the classifier baseline needs respondent-level data; "
                        f"{survey.name or 'this survey'} holds marginal tables only.")
    question = survey.question(question_id)
    frame = _respondent_frame(survey, question, wave)
    if len(frame) < 4:
        raise DataError(f"question {question_id} has only {len(frame)} answers; "
                        "too few to fit the classifier baseline.")
    attributes = list(dict.fromkeys([*survey.demographics, *by]))
    groups = _features(frame, attributes, bins)
    y = pd.Categorical(frame[question.id].astype(str), categories=list(question.options)).codes
    weights = frame["_w"].to_numpy(dtype=float)
    x = OneHotEncoder(handle_unknown="ignore").fit_transform(groups)
    train, test = train_test_split(np.arange(len(frame)), test_size=test_fraction,
                                   random_state=seed)
    predict = _fit(x[train], y[train], weights[train], question.k, seed)
    probs = predict(x)
    held_out = np.zeros(len(frame), dtype=bool)
    held_out[test] = True
    majority = np.bincount(y[train], minlength=question.k).argmax()
    labels = _slice_labels(groups, list(by)).to_numpy()
    dists, in_sample = {}, []
    for label in dict.fromkeys(lab for lab in labels if lab is not None):
        mask = (labels == label) & held_out
        if not mask.any():      # tiny slice with nobody held out: fall back to training rows
            mask = labels == label
            in_sample.append(label)
        w = weights[mask] if weights[mask].sum() > 0 else np.ones(mask.sum())
        dist = (probs[mask] * w[:, None]).sum(axis=0) / w.sum()
        dists[label] = dist / dist.sum()
    return ClassifierFit(dists, float(np.mean(probs[test].argmax(axis=1) == y[test])),
                         float(np.mean(y[test] == majority)), len(train), len(test),
                         attributes, in_sample)


def classifier_baseline(survey: Survey, question_id: str, by: Sequence[str], *,
                        wave: str | None = None, bins=None, test_fraction: float = 0.3,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Per slice label, the classifier's mean predicted distribution (see classifier_fit)."""
    return classifier_fit(survey, question_id, by, wave=wave, bins=bins,
                          test_fraction=test_fraction, seed=seed).dists


def baselines_for(survey: Survey, question_id: str, by: Sequence[str], *,
                  wave: str | None = None, bins=None,
                  which: Sequence[str] = tuple(BASELINES)) -> dict[str, dict[str, np.ndarray]]:
    """Every requested baseline for every slice of a question.

    Args:
        survey, question_id, by, wave, bins: as in sim_core.slices.real_marginals.
        which: baseline names among "uniform", "population", "classifier".

    Returns:
        baseline name -> slice label -> distribution; the classifier is skipped for
        marginal tables.
    """
    check_names(which)
    question = survey.question(question_id)
    labels = [m.label for m in real_marginals(survey, question_id, by, wave=wave, bins=bins,
                                              min_n_eff=0)]
    out: dict[str, dict[str, np.ndarray]] = {}
    if "uniform" in which:
        out["uniform"] = {label: uniform(question.k) for label in labels}
    if "population" in which:
        average = population_average(survey, question_id, wave=wave)
        out["population"] = {label: average for label in labels}
    if "classifier" in which and survey.kind != MARGINALS:
        dists = classifier_baseline(survey, question_id, by, wave=wave, bins=bins)
        out["classifier"] = {label: dists[label] for label in labels if label in dists}
    return out
