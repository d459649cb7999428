"""sim_core.evaluation.evaluate with the tiny model on real GSS rows and a small respondent
survey."""

from __future__ import annotations

import numpy as np
import pytest
from test_compare import small_survey

from sim_core.base import metrics
from sim_core.base.errors import Cancelled, DataError
from sim_core.base.labels import BASELINE_PREFIX
from sim_core.evaluation.baselines import population_average
from sim_core.evaluation.evaluate import evaluate, evaluate_rows, group_deviation_correlation
from sim_core.simulation.config import SimConfig
from sim_core.simulation.simulate import simulate_rows
from sim_core.survey.marginal import slice_label
from sim_core.survey.slices import survey_rows

CONFIG = SimConfig(orders=1)    # cached in the session workspace: repeats are free
QUESTIONS = ["nataid", "pres16"]    # ordinal with unsorted values [2, 3, 1]; nominal
UNIFORM, POPULATION = BASELINE_PREFIX + "uniform", BASELINE_PREFIX + "population"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from sim_core.simulation.models import load_model
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def gss_rows(gss_path):
    from sim_core.survey.marginal_readers import read_subpop_jsonl
    return survey_rows(read_subpop_jsonl(gss_path), questions=QUESTIONS)


@pytest.fixture(scope="module")
def evaluation(tiny, gss_rows):
    return evaluate_rows([tiny], gss_rows, config=CONFIG, survey_name="gss")


def _expected_scores(rows, dists):
    """score_all per row, from the metrics module directly."""
    return [metrics.score_all(r.dist, d, ordinal_values=r.question.ordinal_values)
            for r, d in zip(rows, dists)]


def test_rows_and_summary(tiny, gss_rows, evaluation):
    assert len(gss_rows) == 2 * 22
    assert evaluation.entries == [tiny.label, UNIFORM, POPULATION]
    assert len(evaluation.rows) == 3 * 44
    sims = [r.shares for r in simulate_rows(tiny, gss_rows, CONFIG)]
    means = {q: np.mean([r.dist for r in gss_rows if r.question.id == q], axis=0)
             for q in QUESTIONS}
    candidates = {tiny.label: sims,
                  UNIFORM: [np.full(r.question.k, 1 / r.question.k) for r in gss_rows],
                  POPULATION: [means[r.question.id] for r in gss_rows]}
    summary = evaluation.summary()
    for entry, dists in candidates.items():
        expected = _expected_scores(gss_rows, dists)
        got = evaluation.rows[evaluation.rows["entry"] == entry].reset_index(drop=True)
        assert list(got["slice"]) == [slice_label(r.slice) for r in gss_rows]
        for i, scores in enumerate(expected):
            for key, value in scores.items():
                assert got.loc[i, key] == pytest.approx(value, abs=1e-6)
        # pres16 is nominal: no Wasserstein on its rows; the mean runs over the others
        assert got[got["question_id"] == "pres16"]["wasserstein"].isna().all()
        for key in ("wasserstein", "js", "kl", "tv", "cosine", "jaccard", "rmse"):
            values = [s[key] for s in expected if key in s]
            assert summary.loc[entry, key] == pytest.approx(np.mean(values), abs=1e-6)
        assert summary.loc[entry, "rows"] == 44
    assert "chi2" not in summary.columns          # the GSS file has no n
    assert list(evaluation.rows["attribute"].unique())[:2] == ["CREGION", "EDUCATION"]


def test_heatmap_worst_and_attributes(evaluation, tiny):
    heat = evaluation.heatmap(tiny.label)
    assert heat.shape == (2, 22)
    assert heat.loc["pres16"].isna().all() and heat.loc["nataid"].notna().all()
    rows = evaluation.rows[evaluation.rows["entry"] == tiny.label]
    worst = evaluation.worst_slices(tiny.label, "wasserstein", n=4)
    assert len(worst) == 4 and worst["wasserstein"].is_monotonic_decreasing
    assert worst["wasserstein"].iloc[0] == pytest.approx(rows["wasserstein"].max())
    best_cos = evaluation.worst_slices(tiny.label, "cosine", n=1)   # higher is better
    assert best_cos["cosine"].iloc[0] == pytest.approx(rows["cosine"].min())
    per_attr = evaluation.per_attribute("tv")
    assert len(per_attr) == 8 and list(per_attr.columns) == evaluation.entries
    sex = rows[rows["attribute"] == "SEX"]["tv"].mean()
    assert per_attr.loc["SEX", tiny.label] == pytest.approx(sex)
    with pytest.raises(KeyError):
        evaluation.heatmap("no such entry")


def test_group_deviation_correlation(evaluation, gss_rows, tiny):
    real = [r.dist for r in gss_rows]
    evaluation.dists["perfect"] = real
    means = {q: np.mean([r.dist for r in gss_rows if r.question.id == q], axis=0)
             for q in QUESTIONS}
    evaluation.dists["half"] = [means[r.question.id] + 0.5 * (r.dist - means[r.question.id])
                                for r in gss_rows]
    evaluation.dists["opposite"] = [means[r.question.id] - 0.2 * (r.dist - means[r.question.id])
                                    for r in gss_rows]
    assert evaluation.group_deviation_correlation("perfect") == pytest.approx(1.0)
    assert evaluation.group_deviation_correlation("half") == pytest.approx(1.0)
    assert evaluation.group_deviation_correlation("opposite") == pytest.approx(-1.0)
    assert np.isnan(evaluation.group_deviation_correlation(POPULATION))
    # independent computation for the model entry
    sims = evaluation.dists[tiny.label]
    d_real = np.concatenate([np.ravel(r.dist - means[r.question.id]) for r in gss_rows])
    d_sim = np.concatenate([np.ravel(s - np.mean([t for t, r2 in zip(sims, gss_rows)
                                                   if r2.question.id == r.question.id], axis=0))
                            for s, r in zip(sims, gss_rows)])
    expected = np.corrcoef(d_real, d_sim)[0, 1]
    assert evaluation.group_deviation_correlation(tiny.label) == pytest.approx(expected)
    assert group_deviation_correlation(tiny, gss_rows, config=CONFIG) == pytest.approx(expected)
    for name in ("perfect", "half", "opposite"):
        del evaluation.dists[name]


def test_reference_rows_set_population(tiny, gss_rows):
    train = [r for r in gss_rows if r.slice.get("SEX") is None]
    test = [r for r in gss_rows if r.slice.get("SEX") is not None]
    ev = evaluate_rows([], test, reference_rows=train, baselines=("population",))
    assert ev.entries == [POPULATION]
    for qid in QUESTIONS:
        expected = np.mean([r.dist for r in train if r.question.id == qid], axis=0)
        row = next(i for i, r in enumerate(test) if r.question.id == qid)
        np.testing.assert_allclose(ev.dists[POPULATION][row], expected)


def test_evaluate_on_respondents(tiny):
    survey = small_survey()
    ev = evaluate([tiny], survey, by=["sex"], config=CONFIG)
    assert set(ev.rows["question_id"]) == {"spend", "vote"}
    pop = ev.rows[ev.rows["entry"] == POPULATION]
    rows = survey_rows(survey, ["sex"])
    for i, row in enumerate(rows):
        expected = population_average(survey, row.question.id)
        np.testing.assert_allclose(ev.dists[POPULATION][i], expected)
        assert pop.iloc[i]["chi2"] == pytest.approx(metrics.compute(
            "chi2", row.dist, expected, n=row.n_eff))
    assert ev.summary().loc[tiny.label, "rows"] == 4


def test_errors_and_cancel(tiny, gss_rows):
    with pytest.raises(DataError):
        evaluate_rows([tiny], [], config=CONFIG)
    with pytest.raises(DataError, match="classifier"):
        evaluate_rows([tiny], gss_rows, config=CONFIG, baselines=("classifier",))
    with pytest.raises(Cancelled):
        evaluate_rows([tiny], gss_rows, config=SimConfig(orders=1, use_cache=False),
                      should_stop=lambda: True)
