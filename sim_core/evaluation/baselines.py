"""Baselines that give a score its meaning: the uniform guess, the population average and
classical models of answers from demographics (sim_core.evaluation.demographic_models:
logistic regression, gradient boosting, SVR)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim_core.base.errors import DataError
from sim_core.base.options import Choice, registry
from sim_core.evaluation.demographic_models import MODEL_BASELINES, DemographicFit, fit_demographic
from sim_core.evaluation.respondent_table import RespondentTable, require_respondents
from sim_core.evaluation.splits import RESPONDENT_TEST_SHARE
from sim_core.survey.schema import MARGINALS, Survey
from sim_core.survey.slices import real_marginals

BASELINES = registry(
    Choice("uniform", "Uniform guess", "every option equally likely"),
    Choice("population", "Population average",
           "the whole population's real answer shares, guessed for every group"),
    Choice("classifier", "Classifier on demographics",
           "multinomial logistic regression of the answer on the demographic attributes, "
           "trained on 70 % of the respondents (respondent-level data only)"),
    Choice("boosting", "Gradient boosting on demographics",
           "gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier, native "
           "categorical features) on the demographic attributes, trained on the same 70 % of "
           "the respondents (respondent-level data only)"),
    Choice("svr", "SVR on the ordinal value",
           "support vector regression of the answer's ordinal value on the demographic "
           "attributes, same 70 % of the respondents; each held-out respondent's prediction "
           "rounded to the nearest option (ordinal questions of respondent-level data only)"),
)
"""Every baseline, in display order; compare() offers all, evaluate() the ROW_BASELINES."""
ROW_BASELINES = ("uniform", "population")
"""Baselines that need only (question, slice) rows, no respondents (evaluation, training)."""
DEFAULT_BASELINES = ("uniform", "population", "classifier")
"""What baselines_for computes unless told otherwise (the fitted ones cost time)."""


def check_names(which: Sequence[str], allowed: Sequence[str] = tuple(BASELINES)) -> list[str]:
    """The baseline names, refused with a DataError when one is unknown (before any work)."""
    unknown = [name for name in which if name not in allowed]
    if unknown:
        raise DataError(f"unknown baseline(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(allowed)}.")
    return list(which)


def unavailable_baselines(survey: Survey | None, question) -> dict[str, str]:
    """Baselines that cannot apply to this question, each with the reason in words (the
    dashboard offers the others; compare() would leave these out with a note).

    Args:
        survey: the real data (None: a drafted question, uniform guess only).
        question: a sim_core.survey.schema.Question.
    """
    if survey is None or question.id not in survey.questions:
        return {name: "a drafted question has no real answers to fit or average"
                for name in BASELINES if name != "uniform"}
    if survey.kind == MARGINALS:
        return {name: "the file holds answer shares only, no respondents to train on"
                for name in MODEL_BASELINES}
    if not question.is_ordinal:
        return {"svr": "the question is not ordinal (no value scale to regress on)"}
    return {}


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


def baseline_features(survey: Survey, by: Sequence[str]) -> list[str]:
    """The attributes the model baselines use as features: every demographic of the survey
    and the slice attributes of the run (a question used as a slice attribute is one of
    them, never the question predicted: sim_core.survey.attributes)."""
    return list(dict.fromkeys([*survey.demographics, *by]))


def classifier_fit(survey: Survey, question_id: str, by: Sequence[str], *,
                   wave: str | None = None, bins=None,
                   test_fraction: float = RESPONDENT_TEST_SHARE, seed: int = 0,
                   name: str = "classifier", table: RespondentTable | None = None
                   ) -> DemographicFit:
    """A model baseline of one question (sim_core.evaluation.demographic_models).

    Args:
        survey: a respondent-level Survey (DataError for marginal tables).
        question_id: the question to predict.
        by: attributes defining the slices (all demographics are features).
        wave, bins: as in sim_core.survey.slices.real_marginals.
        test_fraction: share of respondents held out (sim_core.evaluation.respondent_table).
        seed: split and solver seed.
        name: "classifier" (default), "boosting" or "svr".
        table: the respondents, when the caller built them already (else built here from
            the other arguments).
    Returns:
        DemographicFit with per-slice mean predicted distributions (weighted like the real
        marginals) and the held-out accuracy.
    """
    require_respondents(survey, f"the {name} baseline")
    features = baseline_features(survey, by)
    table = table or RespondentTable.build(survey, features, wave=wave, bins=bins,
                                           test_fraction=test_fraction, seed=seed)
    return fit_demographic(name, table, question_id, by, seed=seed,
                           features=[f for f in features if f != question_id])


def classifier_baseline(survey: Survey, question_id: str, by: Sequence[str], *,
                        wave: str | None = None, bins=None,
                        test_fraction: float = RESPONDENT_TEST_SHARE, seed: int = 0,
                        name: str = "classifier", table: RespondentTable | None = None
                        ) -> dict[str, np.ndarray]:
    """Per slice label, a model baseline's mean predicted distribution (classifier_fit)."""
    return classifier_fit(survey, question_id, by, wave=wave, bins=bins,
                          test_fraction=test_fraction, seed=seed, name=name, table=table).dists


def baselines_for(survey: Survey, question_id: str, by: Sequence[str], *,
                  wave: str | None = None, bins=None,
                  which: Sequence[str] = DEFAULT_BASELINES) -> dict[str, dict[str, np.ndarray]]:
    """Every requested baseline for every slice of a question.

    Args:
        survey, question_id, by, wave, bins: as in sim_core.survey.slices.real_marginals.
        which: baseline names among BASELINES.

    Returns:
        baseline name -> slice label -> distribution; the model baselines (classifier,
        boosting, svr) are skipped for marginal tables.
    Raises:
        DataError: svr asked for on a nominal question (no value scale to regress on).
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
    models = [n for n in MODEL_BASELINES if n in which and survey.kind != MARGINALS]
    table = RespondentTable.build(survey, baseline_features(survey, by), wave=wave,
                                  bins=bins) if models else None
    for name in models:
        dists = classifier_baseline(survey, question_id, by, name=name, table=table)
        out[name] = {label: dists[label] for label in labels if label in dists}
    return out
