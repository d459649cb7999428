"""sim_core.evaluation.baselines: uniform, population average, classifier, baselines_for."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.base.errors import DataError
from sim_core.evaluation import baselines as B
from sim_core.survey.marginal_readers import read_marginals_csv
from sim_core.survey.readers import read_respondents_csv

SMALL_CSV = b"""sex,region,w,q1
Female,North,1.0,Yes
Female,South,2.0,No
Male,North,0.5,Yes
Male,South,3.0,Maybe
Female,North,1.5,Maybe
Male,North,2.0,No
"""

MARGINALS_CSV = b"""question_id,question_text,option,share,attribute,group
q1,Do you agree?,Yes,0.6,sex,Female
q1,Do you agree?,No,0.4,sex,Female
q1,Do you agree?,Yes,0.2,sex,Male
q1,Do you agree?,No,0.8,sex,Male
q1,Do you agree?,Yes,0.5,region,North
q1,Do you agree?,No,0.5,region,North
"""


def small_survey():
    return read_respondents_csv(SMALL_CSV, name="small", weight="w",
                                demographics=["sex", "region"], questions=["q1"])


def synthetic_survey(n: int = 3000, seed: int = 0):
    """Answers depend on sex (and a little on region) with known probabilities."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], size=n)
    region = rng.choice(["North", "South", "West"], size=n)
    p_yes = np.where(sex == "Female", 0.8, 0.15)
    answer = np.where(rng.random(n) < p_yes, "Yes", "No")
    lines = ["sex,region,q1"] + [f"{s},{r},{a}" for s, r, a in zip(sex, region, answer)]
    survey = read_respondents_csv("\n".join(lines).encode(), name="synthetic",
                                  demographics=["sex", "region"], questions=["q1"])
    return survey, sex, region, answer


def test_uniform():
    np.testing.assert_allclose(B.uniform(4), [0.25] * 4)
    with pytest.raises(ValueError):
        B.uniform(0)


def test_population_average_is_weighted_mean():
    survey = small_survey()
    options = survey.questions["q1"].options
    # hand-computed: Yes 1.0 + 0.5, No 2.0 + 2.0, Maybe 3.0 + 1.5; total 10
    expected = {"Yes": 1.5 / 10, "No": 4.0 / 10, "Maybe": 4.5 / 10}
    got = B.population_average(survey, "q1")
    np.testing.assert_allclose(got, [expected[o] for o in options])


def test_population_average_of_marginal_table_is_mean_of_groups():
    survey = read_marginals_csv(MARGINALS_CSV, name="m")
    options = survey.questions["q1"].options
    expected = {"Yes": (0.6 + 0.2 + 0.5) / 3, "No": (0.4 + 0.8 + 0.5) / 3}
    np.testing.assert_allclose(B.population_average(survey, "q1"), [expected[o] for o in options])


def test_classifier_recovers_group_distributions():
    survey, sex, _, answer = synthetic_survey()
    fit = B.classifier_fit(survey, "q1", ["sex"], seed=0)
    yes = survey.questions["q1"].options.index("Yes")
    assert set(fit.dists) == {"sex=Female", "sex=Male"}
    assert fit.dists["sex=Female"][yes] == pytest.approx(0.8, abs=0.04)
    assert fit.dists["sex=Male"][yes] == pytest.approx(0.15, abs=0.04)
    for dist in fit.dists.values():
        assert dist.sum() == pytest.approx(1.0)
    assert fit.n_train + fit.n_test == len(answer)
    assert fit.n_test == pytest.approx(0.3 * len(answer), abs=1)
    # Bayes accuracy here is 0.5 * 0.8 + 0.5 * 0.85 = 0.825; majority guess ~ 0.5
    assert fit.accuracy == pytest.approx(0.825, abs=0.03)
    assert fit.majority_accuracy < fit.accuracy - 0.2
    # seeded: the same split and numbers again
    again = B.classifier_baseline(survey, "q1", ["sex"], seed=0)
    np.testing.assert_allclose(again["sex=Female"], fit.dists["sex=Female"])


def test_classifier_crossed_slices_and_whole_population():
    survey, sex, region, answer = synthetic_survey(seed=1)
    dists = B.classifier_baseline(survey, "q1", ["sex", "region"])
    assert len(dists) == 6 and "sex=Male, region=West" in dists
    whole = B.classifier_baseline(survey, "q1", [])
    yes = survey.questions["q1"].options.index("Yes")
    assert list(whole) == ["All"]
    assert whole["All"][yes] == pytest.approx(np.mean(answer == "Yes"), abs=0.03)


def test_classifier_refuses_marginal_tables():
    survey = read_marginals_csv(MARGINALS_CSV, name="m")
    with pytest.raises(DataError, match="respondent-level"):
        B.classifier_baseline(survey, "q1", ["sex"])


def test_baselines_for():
    survey, *_ = synthetic_survey(n=600)
    out = B.baselines_for(survey, "q1", ["sex"])
    assert list(out) == ["uniform", "population", "classifier"]
    assert set(out["uniform"]) == set(out["classifier"]) == {"sex=Female", "sex=Male"}
    np.testing.assert_allclose(out["population"]["sex=Male"], B.population_average(survey, "q1"))
    np.testing.assert_allclose(out["classifier"]["sex=Male"],
                               B.classifier_baseline(survey, "q1", ["sex"])["sex=Male"])
    table = read_marginals_csv(MARGINALS_CSV, name="m")
    out = B.baselines_for(table, "q1", ["sex"])
    assert list(out) == ["uniform", "population"]       # no classifier on marginal tables
    assert set(out["uniform"]) == {"sex=Female", "sex=Male"}
    with pytest.raises(DataError, match="oracle"):
        B.baselines_for(table, "q1", ["sex"], which=("oracle",))


def test_cli_baselines_json_matches_library(tmp_path, capsys):
    import json

    from sim_core.__main__ import main
    from sim_core.base.metrics import score_all
    from sim_core.survey.slices import real_marginals

    survey, sex, region, answer = synthetic_survey(n=400, seed=3)
    path = tmp_path / "synthetic.csv"
    path.write_text("sex,region,q1\n" + "\n".join(
        f"{s},{r},{a}" for s, r, a in zip(sex, region, answer)) + "\n", encoding="utf-8")
    assert main(["baselines", "--data", str(path), "--question", "q1", "--by", "sex",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 1 and out[0]["question"] == "q1"
    assert 0.5 < out[0]["classifier"]["accuracy"] <= 1
    reals = {m.label: m for m in real_marginals(survey, "q1", ["sex"])}
    fit = B.classifier_fit(survey, "q1", ["sex"])
    for item in out[0]["slices"]:
        real = reals[item["label"]]
        np.testing.assert_allclose(item["real"], real.shares, atol=1e-6)
        np.testing.assert_allclose(item["baselines"]["classifier"], fit.dists[item["label"]],
                                   atol=1e-6)
        expected = score_all(real.shares, B.population_average(survey, "q1"), n=real.n_eff)
        for key, value in expected.items():
            assert item["scores"]["population"][key] == pytest.approx(value, abs=1e-5)
        assert item["n"] == real.n and item["noise_floor"]["tv"] > 0
    # the plain-text table names every baseline and marks the best one
    assert main(["baselines", "--data", str(path), "--question", "q1", "--by", "sex"]) == 0
    text = capsys.readouterr().out
    assert "classifier" in text and "population" in text and "*" in text
    # bad input: clear message, exit status 2
    assert main(["baselines", "--data", str(path), "--question", "nope", "--by", "sex"]) == 2
    assert "unknown question" in capsys.readouterr().err


def test_unavailable_baselines_say_why():
    """Respondent data, nominal question: only SVR is out (no value scale); marginal table:
    every fitted baseline is out (no respondents); drafted question: all but uniform."""
    from sim_core.survey.schema import Question

    respondents = small_survey()
    q1 = respondents.question("q1")
    assert not q1.is_ordinal
    assert set(B.unavailable_baselines(respondents, q1)) == {"svr"}
    ordinal = Question(id="q1", text="How much?", options=("Little", "Much"),
                       ordinal_values=(0.0, 1.0))
    assert B.unavailable_baselines(respondents, ordinal) == {}
    marginals = read_marginals_csv(MARGINALS_CSV, name="m")
    out = B.unavailable_baselines(marginals, marginals.question("q1"))
    assert set(out) == {"classifier", "boosting", "svr"}
    assert all("no respondents" in why for why in out.values())
    drafted = Question(id="draft", text="New?", options=("Yes", "No"))
    assert set(B.unavailable_baselines(None, drafted)) == set(B.BASELINES) - {"uniform"}
