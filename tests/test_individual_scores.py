"""sim_core.evaluation.respondent_table, sim_core.evaluation.demographic_models (boosting, svr)
and sim_core.evaluation.individual_scores: the split, the model baselines and individual-level
scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_baselines import synthetic_survey

from sim_core.base.errors import DataError
from sim_core.evaluation.demographic_models import fit_demographic, nearest_option, ordinal_scale
from sim_core.evaluation.individual_scores import score_predictions
from sim_core.evaluation.respondent_table import RespondentTable, respondent_split
from sim_core.simulation.calibration import temper
from sim_core.survey.demo import load_demo
from sim_core.survey.marginal_readers import read_marginals_csv
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.schema import Question

LIKERT = Question("q", "How much?", ("Low", "Mid", "High", "Don't know"),
                  (1.0, 2.0, 3.0, math.nan))


def ordinal_survey(n: int = 2400, seed: int = 0):
    """Answers on a 1-5 scale whose mean rises with age group; region is noise."""
    rng = np.random.default_rng(seed)
    age = rng.choice(["young", "middle", "old"], size=n)
    region = rng.choice(["North", "South"], size=n)
    centre = np.select([age == "young", age == "middle"], [1.5, 3.0], 4.5)
    answer = np.clip(np.rint(centre + rng.normal(0, 0.6, n)), 1, 5).astype(int)
    lines = ["age,region,q"] + [f"{a},{r},{v}" for a, r, v in zip(age, region, answer)]
    survey = read_respondents_csv("\n".join(lines).encode(), name="ordinal",
                                  demographics=["age", "region"], questions=["q"])
    return survey, age, answer


# ---------------------------------------------------------------- the respondent split

def test_respondent_split_is_seeded_exact_and_disjoint():
    survey, *_ = synthetic_survey(n=1000)
    split = respondent_split(survey, test_fraction=0.3, val_fraction=0.25, seed=4)
    assert (len(split.test), len(split.val), len(split.train)) == (300, 175, 525)
    parts = [set(split.test), set(split.val), set(split.train)]
    assert sum(map(len, parts)) == 1000 and len(set().union(*parts)) == 1000
    again = respondent_split(survey, test_fraction=0.3, val_fraction=0.25, seed=4)
    assert list(again.test) == list(split.test)
    assert set(respondent_split(survey, test_fraction=0.3, seed=5).test) != set(split.test)
    # the test part does not depend on the validation share: the same people are held out
    assert set(respondent_split(survey, test_fraction=0.3, seed=4).test) == set(split.test)


def test_split_and_attributes_refuse_bad_input():
    table = read_marginals_csv(b"question_id,question_text,option,share\nq,Q?,Yes,1\n", name="m")
    with pytest.raises(DataError, match="respondent-level data"):
        respondent_split(table)
    survey = read_respondents_csv(b"sex,country,q\nF,US,Yes\nM,US,No\nF,US,No\n", name="s",
                                  demographics=["sex", "country"], questions=["q"])
    with pytest.raises(DataError, match="attribute 'country' has a single group \\('US'\\)"):
        RespondentTable.build(survey, ["sex", "country"]).check_attributes(["sex", "country"])
    with pytest.raises(DataError, match="unknown attribute"):
        RespondentTable.build(survey, ["age"])
    assert RespondentTable.build(survey, ["sex"]).check_attributes(["sex"]) == ["sex"]


# ---------------------------------------------------------------- boosting and svr

def test_boosting_recovers_group_distributions_on_the_classifiers_split():
    survey, sex, _, answer = synthetic_survey()
    yes = survey.questions["q1"].options.index("Yes")
    table = RespondentTable.build(survey, survey.demographics)
    boost = fit_demographic("boosting", table, "q1", ["sex"], seed=0)
    logistic = fit_demographic("classifier", table, "q1", ["sex"], seed=0)
    assert np.array_equal(boost.test, logistic.test)            # the same held-out people
    assert boost.dists["sex=Female"][yes] == pytest.approx(0.8, abs=0.04)
    assert boost.dists["sex=Male"][yes] == pytest.approx(0.15, abs=0.04)
    assert boost.accuracy == pytest.approx(0.825, abs=0.03)     # Bayes accuracy
    assert boost.probs.shape == (len(answer), 2)


def test_svr_predicts_the_ordinal_value_and_refuses_nominal_questions():
    survey, age, answer = ordinal_survey()
    fit = fit_demographic("svr", RespondentTable.build(survey, survey.demographics), "q", ["age"],
                          seed=0, features=["age", "region"])
    assert fit.probs is None and fit.values.shape == (len(answer),)
    for group in ("young", "middle", "old"):
        predicted = 1 + 4 * fit.values[age == group].mean()    # back to the 1-5 scale
        assert predicted == pytest.approx(answer[age == group].mean(), abs=0.3)
    # per slice: each held-out respondent's nearest option, averaged
    mask = (age == "old") & fit.test
    nearest = nearest_option(fit.values[mask], ordinal_scale(fit.question))
    expected = np.bincount(nearest, minlength=fit.question.k) / mask.sum()
    np.testing.assert_allclose(fit.dists["age=old"], expected)
    nominal, *_ = synthetic_survey(n=200)
    with pytest.raises(DataError, match="svr cannot apply"):
        fit_demographic("svr", RespondentTable.build(nominal, nominal.demographics), "q1", ["sex"])


# ---------------------------------------------------------------- individual scores

def test_scores_match_hand_computation():
    # two respondents answered Low (value 0) and High (value 1) on the 0-1 scale
    answers, weights = np.array([0, 2]), np.array([1.0, 3.0])
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.6, 0.1]])
    s = score_predictions(LIKERT, answers, weights, probs=probs)
    # drawn answer: E (v - y)^2 over options with a value (renormalised)
    q2 = np.array([0.1, 0.2, 0.6]) / 0.9
    drawn = [0.5 * 0 + 0.3 * 0.25 + 0.2 * 1, q2 @ (np.array([0, 0.5, 1]) - 1) ** 2]
    assert s["rmse"] == pytest.approx(math.sqrt((drawn[0] + 3 * drawn[1]) / 4))
    means = [0.3 * 0.5 + 0.2, q2 @ np.array([0, 0.5, 1])]
    assert s["rmse_expected"] == pytest.approx(
        math.sqrt((means[0] ** 2 + 3 * (means[1] - 1) ** 2) / 4))
    assert s["log_loss"] == pytest.approx((-math.log(0.5) - 3 * math.log(0.6)) / 4, rel=1e-6)
    brier = [(0.5 - 1) ** 2 + 0.09 + 0.04, 0.01 + 0.04 + 0.16 + 0.01]
    assert s["brier"] == pytest.approx((brier[0] + 3 * brier[1]) / 4)
    assert s["accuracy"] == pytest.approx(1.0)
    mean = (probs[0] + 3 * probs[1]) / 4     # real answer shares: 0.25 Low, 0.75 High
    assert s["kl"] == pytest.approx(0.25 * math.log(0.25 / mean[0])
                                    + 0.75 * math.log(0.75 / mean[2]), rel=1e-6)


def test_point_predictions_and_nominal_questions():
    answers, weights = np.array([0, 2, 3]), np.ones(3)
    s = score_predictions(LIKERT, answers, weights, values=np.array([0.2, 0.8, 0.5]))
    # the non-substantive answer has no value: left out of the RMSEs
    assert s["rmse"] == s["rmse_expected"] == pytest.approx(math.sqrt((0.04 + 0.04) / 2))
    assert math.isnan(s["log_loss"]) and math.isnan(s["brier"])
    assert s["accuracy"] == pytest.approx(2 / 3)    # nearest options Low, High, Mid
    nominal = Question("v", "Vote?", ("A", "B"))
    s = score_predictions(nominal, np.array([0, 1]), np.ones(2),
                          probs=np.array([[0.9, 0.1], [0.4, 0.6]]))
    assert math.isnan(s["rmse"]) and s["accuracy"] == 1.0


def test_low_temperature_answers_are_the_most_likely_option():
    """At T -> 0 a virtual respondent's drawn answer is its mode: the answer RMSE becomes
    the RMSE of the modes (and the accuracy does not change: the mode is the mode)."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=50)
    question = Question("q3", "?", ("a", "b", "c"), (0.0, 1.0, 2.0))
    answers = rng.integers(0, 3, size=50)
    cold = score_predictions(question, answers, np.ones(50), probs=temper(probs, 1e-4))
    modes = probs.argmax(axis=1) / 2
    assert cold["rmse"] == pytest.approx(math.sqrt(np.mean((modes - answers / 2) ** 2)),
                                         abs=1e-3)
    warm = score_predictions(question, answers, np.ones(50), probs=probs)
    assert warm["accuracy"] == cold["accuracy"] and warm["rmse"] != cold["rmse"]


def test_anes_baselines_beat_the_population_guess_for_individuals():
    """On the real ANES demo, party id predicts where people place themselves: the model
    baselines' held-out answers are closer than one guess for everyone."""
    survey = load_demo("anes96")
    fit = fit_demographic("classifier", RespondentTable.build(survey, survey.demographics),
                          "selfLR", features=["PID"])
    population = np.bincount(fit.answers[~fit.test], minlength=7) / (~fit.test).sum()
    held = fit.test
    pop = score_predictions(fit.question, fit.answers[held], fit.weights[held],
                            probs=np.tile(population, (held.sum(), 1)))
    mine = score_predictions(fit.question, fit.answers[held], fit.weights[held],
                             probs=fit.probs[held])
    assert mine["log_loss"] < pop["log_loss"] and mine["rmse_expected"] < pop["rmse_expected"]
