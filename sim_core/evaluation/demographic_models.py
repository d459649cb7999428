"""Classical models of answers from demographics, fitted on respondents: the baselines a
simulated population must beat (Namikoshi et al. 2024 use SVR and CatBoost).

- classifier: multinomial logistic regression on one-hot demographics;
- boosting: scikit-learn's HistGradientBoostingClassifier with native categorical features
  (CatBoost installs here, but took 18-31 s per question on our 2 cores against 1.5 s);
- svr: support vector regression of the answer's ordinal value on one-hot demographics
  (ordinal questions only; its point prediction is rounded to the nearest option when a
  distribution is needed).

Every model uses only the demographic columns, the respondent split of
sim_core.evaluation.respondent_table (the same people held out for every model and question)
and the survey weights, both in fitting and in the per-slice means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from sim_core.base.errors import DataError
from sim_core.evaluation.respondent_table import RespondentTable
from sim_core.survey.marginal import slice_label
from sim_core.survey.schema import Question

MODEL_BASELINES = ("classifier", "boosting", "svr")
"""Baselines fitted on respondents (respondent-level data only)."""


def ordinal_scale(question: Question) -> np.ndarray:
    """Option values scaled to [0, 1] over the finite ones; NaN for non-substantive options.

    DataError for a nominal question (no value scale to regress on or to score RMSE on).
    """
    if not question.is_ordinal:
        raise DataError(f"question {question.id} is nominal ({', '.join(question.options)}): "
                        "it has no ordinal value scale.")
    values = np.asarray(question.ordinal_values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return (values - finite.min()) / (finite.max() - finite.min())


def nearest_option(predicted: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Index of the option whose scaled value is nearest each prediction (ties: first)."""
    usable = np.where(np.isfinite(scale), scale, np.inf)
    return np.abs(np.asarray(predicted)[:, None] - usable[None, :]).argmin(axis=1)


@dataclass
class DemographicFit:
    """One baseline model of one question, with its predictions for every respondent.

    Attributes:
        name: "classifier", "boosting" or "svr".
        question: the question predicted.
        index: respondent labels (Survey.respondents index) of the answers used.
        answers: option index of each respondent's real answer.
        weights: survey weight of each respondent.
        test: held-out mask (the respondent split's test part).
        probs: (n, k) predicted distribution per respondent (None for svr).
        values: svr's predicted value per respondent on the [0, 1] scale (else None).
        dists: slice label -> mean predicted distribution over held-out respondents.
        accuracy: held-out share whose real answer is the most likely predicted one.
        majority_accuracy: the same for always guessing the most common training answer.
        n_train, n_test: respondents used to fit and to evaluate.
        features: demographic attributes used.
        in_sample: slice labels without held-out respondents (predicted on training ones).
    """

    name: str
    question: Question
    index: pd.Index
    answers: np.ndarray
    weights: np.ndarray
    test: np.ndarray
    probs: np.ndarray | None
    values: np.ndarray | None
    dists: dict[str, np.ndarray]
    accuracy: float
    majority_accuracy: float
    n_train: int
    n_test: int
    features: list[str]
    in_sample: list[str] = field(default_factory=list)

    def answer_dists(self) -> np.ndarray:
        """(n, k): the predicted distribution, or svr's answer (nearest option) as one-hot."""
        if self.probs is not None:
            return self.probs
        out = np.zeros((len(self.values), self.question.k))
        out[np.arange(len(self.values)), nearest_option(self.values,
                                                        ordinal_scale(self.question))] = 1.0
        return out


ClassifierFit = DemographicFit    # the name before boosting and svr joined


def _probabilities(model, x, k: int) -> np.ndarray:
    """(n, k) probabilities over all k options (classes never seen in training get 0)."""
    out = np.zeros((x.shape[0], k))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _fit_classifier(name: str, groups: pd.DataFrame, y, w, train, k: int, seed: int):
    """Fit a classifier on the training rows; (n, k) probabilities for every respondent."""
    classes = np.unique(y[train])
    if classes.size == 1:       # one answer only: scikit-learn cannot fit, the guess is sure
        out = np.zeros((len(y), k))
        out[:, classes[0]] = 1.0
        return out
    if name == "classifier":
        x = OneHotEncoder(handle_unknown="ignore").fit_transform(groups)
        model = LogisticRegression(max_iter=1000, random_state=seed)
    else:
        # codes of each group label; unseen labels become NaN, which the trees send along
        # the missing-value branch
        x = OrdinalEncoder(handle_unknown="use_encoded_value",
                           unknown_value=np.nan).fit(groups[train]).transform(groups)
        # early stopping holds out a stratified tenth: only where every answer has enough
        # training rows for that split (else scikit-learn refuses to fit)
        counts = np.bincount(y[train])
        stop_early = bool(counts[counts > 0].min() >= 10)
        model = HistGradientBoostingClassifier(categorical_features=[True] * x.shape[1],
                                               early_stopping=stop_early, random_state=seed)
    # One thread: on a busy 2-core machine OpenMP's spinning threads made a 1.5 s fit
    # take 90 s; these models are small.
    with threadpool_limits(limits=1, user_api="openmp"):
        try:
            model.fit(x[train], y[train], sample_weight=w[train])
        except ValueError as error:      # a degenerate training set: say so, never crash
            raise DataError(f"the {name} baseline could not be fitted: {error}") from error
        return _probabilities(model, x, k)


def _fit_svr(groups: pd.DataFrame, y, w, train, question: Question) -> np.ndarray:
    """SVR of the scaled ordinal value; predicted value per respondent."""
    scale = ordinal_scale(question)
    target = scale[y]
    usable = train & np.isfinite(target)      # non-substantive answers have no value
    if usable.sum() < 2:
        raise DataError(f"question {question.id}: too few answers with an ordinal value to "
                        "fit the svr baseline.")
    x = OneHotEncoder(handle_unknown="ignore").fit_transform(groups)
    model = SVR(kernel="rbf", C=1.0, epsilon=0.1)
    model.fit(x[usable], target[usable], sample_weight=w[usable])
    return np.clip(model.predict(x), 0.0, 1.0)


def _slice_dists(answer_dists, labels, weights, held_out):
    """slice label -> weighted mean predicted distribution over held-out respondents."""
    dists, in_sample = {}, []
    for label in dict.fromkeys(lab for lab in labels if lab is not None):
        mask = (labels == label) & held_out
        if not mask.any():      # tiny slice with nobody held out: fall back to training rows
            mask = labels == label
            in_sample.append(label)
        w = weights[mask]
        if not w.sum() > 0:     # every weight 0: no weighted prediction (never unweighted)
            continue
        dist = (answer_dists[mask] * w[:, None]).sum(axis=0) / w.sum()
        dists[label] = dist / dist.sum()
    return dists, in_sample


def _slice_labels(groups: pd.DataFrame, by: Sequence[str]) -> np.ndarray:
    """slice_label per respondent for the attributes in `by` (None where one is missing)."""
    if not by:
        return np.array(["All"] * len(groups), dtype=object)
    table = groups[list(by)]
    return np.array([None if any(v is None for v in row) else slice_label(dict(zip(by, row)))
                     for row in table.itertuples(index=False)], dtype=object)


def fit_demographic(name: str, table: RespondentTable, question_id: str,
                    by: Sequence[str] = (), *, features: Sequence[str] | None = None,
                    seed: int = 0) -> DemographicFit:
    """Fit one baseline model of a question's answers on the respondents' groups.

    Args:
        name: "classifier", "boosting" or "svr" (svr: ordinal questions only).
        table: the run's respondents (sim_core.evaluation.respondent_table): their groups,
            weights and split (its test part is held out; train and val are fitted on).
        question_id: the question to predict.
        by: attributes defining the slices of `dists` (in the table).
        features: attributes used as features (default: every demographic of the survey;
            all must be in the table).
        seed: the solver's seed.
    Returns:
        DemographicFit with per-respondent predictions and per-slice held-out means.
    """
    if name not in MODEL_BASELINES:
        raise DataError(f"unknown model baseline '{name}'; use one of "
                        f"{', '.join(MODEL_BASELINES)}.")
    question = table.survey.question(question_id)
    if name == "svr" and not question.is_ordinal:
        raise DataError(f"the svr baseline predicts an answer's ordinal value; question "
                        f"{question.id} is nominal ({', '.join(question.options)}), so svr "
                        "cannot apply: use classifier or boosting.")
    answered = table.answered(question)
    test = table.in_part("test")[answered]
    if test.all() or not test.any() or answered.sum() < 4:
        raise DataError(f"question {question_id} has {int(answered.sum())} answers, "
                        f"{int(test.sum())} of them held out: too few to fit and test the "
                        f"{name} baseline.")
    attributes = list(dict.fromkeys([*(features or table.survey.demographics), *by]))
    groups = table.features(attributes)[answered]
    y = table.answer_codes(question, answered)
    w = table.weights[answered]
    probs = values = None
    if name == "svr":
        values = _fit_svr(groups, y, w, ~test, question)
    else:
        probs = _fit_classifier(name, groups, y, w, ~test, question.k, seed)
    fit = DemographicFit(name, question, table.frame.index[answered], y, w, test, probs, values,
                         {}, 0.0, 0.0, int((~test).sum()), int(test.sum()), attributes)
    predicted = fit.answer_dists()
    labels = _slice_labels(table.groups.loc[answered, list(by)], by)
    fit.dists, fit.in_sample = _slice_dists(predicted, labels, w, test)
    fit.accuracy = float(np.mean(predicted[test].argmax(axis=1) == y[test]))
    majority = np.bincount(y[~test], minlength=question.k).argmax()
    fit.majority_accuracy = float(np.mean(y[test] == majority))
    return fit
