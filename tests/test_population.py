"""Post-stratified population estimates: the composition (survey counts, raking), the
estimate and its interval, bad margins. No model: simulated cells are given as SimResults."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim_core.base.errors import DataError, SimError
from sim_core.evaluation.population import (
    COMPOSED,
    TOPLINE,
    cell_bounds,
    conformal_interval,
    estimate_from_results,
    population_scores,
    post_stratify,
)
from sim_core.simulation.calibration import Calibration, conformity_scores
from sim_core.simulation.simulate import SimResult
from sim_core.survey.composition import (
    Composition,
    composition_from_margins,
    rake,
    survey_composition,
)
from sim_core.survey.marginal_readers import read_marginals_csv
from sim_core.survey.margins import (
    checked_margins,
    delete_margins,
    load_margins,
    read_margins,
    save_margins,
    saved_margins,
)
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.schema import Question
from sim_core.survey.slices import real_marginals

QUESTION = Question("q", "Agree?", ("Yes", "No"))

# (sex, age, answer, weight): the weighted counts per cell are written out in the test
PEOPLE = [("F", "young", "Yes", 1.0), ("F", "young", "No", 2.0), ("F", "old", "Yes", 1.5),
          ("M", "young", "No", 0.5), ("M", "young", "No", 1.0), ("M", "old", "Yes", 2.0),
          ("M", "old", "No", 1.0), ("F", "old", "", 3.0), ("", "old", "Yes", 1.0)]


def people_survey(rows=PEOPLE):
    lines = ["sex,age,q,w"] + [",".join(map(str, r)) for r in rows]
    book = b"column,question_text,options,ordinal\nq,Agree?,Yes|No,false\n"
    return read_respondents_csv("\n".join(lines).encode(), name="people", codebook=book,
                                demographics=["sex", "age"], questions=["q"], weight="w")


def result(cell, shares, low=None, high=None):
    return SimResult(slice=dict(cell), options=QUESTION.options, shares=np.asarray(shares),
                     letter_mass=1.0, prompt="", interval_low=low, interval_high=high)


# ---------------------------------------------------------------- post-stratification

def test_post_stratification_by_hand_on_a_2x2_example():
    cells = [{"sex": s, "age": a} for s, a in itertools.product("FM", ("young", "old"))]
    weights = np.array([0.3, 0.2, 0.25, 0.25])
    sims = [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]]
    composition = Composition(["sex", "age"], cells, weights, "by hand")
    estimate = estimate_from_results(QUESTION, composition,
                                     {"m": [result(c, s) for c, s in zip(cells, sims)]})
    # 0.3*1 + 0.2*0.5 + 0.25*0 + 0.25*0.2 = 0.45
    np.testing.assert_allclose(estimate.estimates["m"], [0.45, 0.55])
    women = composition.subgroup({"sex": "F"})
    np.testing.assert_allclose(women.shares, [0.6, 0.4])
    # women: 0.6*1 + 0.4*0.5 = 0.8
    np.testing.assert_allclose(post_stratify(sims[:2], women.shares), [0.8, 0.2])
    assert estimate.reference is None and estimate.scores == {}     # a drafted question
    with pytest.raises(DataError, match="no cell is in the subgroup sex=X"):
        composition.subgroup({"sex": "X"})
    with pytest.raises(DataError, match="not among the composition's attributes"):
        composition.subgroup({"region": "North"})


def test_survey_composition_equals_the_weighted_counts():
    survey = people_survey()
    everyone = survey_composition(survey, ["sex", "age"])
    # weights of F-young 1+2, F-old 1.5+3, M-young 0.5+1, M-old 2+1 (sex unknown: 1)
    assert everyone.labels == ["sex=F, age=old", "sex=F, age=young", "sex=M, age=old",
                               "sex=M, age=young"]
    np.testing.assert_allclose(everyone.shares, np.array([4.5, 3.0, 3.0, 1.5]) / 12.0)
    assert "7.7 % of the weight" in everyone.notes[0]                 # 1 of 13
    answered = survey_composition(survey, ["sex", "age"], question_id="q")
    np.testing.assert_allclose(answered.shares, np.array([1.5, 3.0, 3.0, 1.5]) / 9.0)
    assert answered.margins()["sex"] == pytest.approx({"F": 0.5, "M": 0.5})


def test_composing_real_cells_with_the_survey_composition_gives_the_topline():
    rows = [r for r in PEOPLE if r[0]]              # everyone has a group
    survey = people_survey(rows)
    composition = survey_composition(survey, ["sex", "age"], question_id="q")
    cells = [result(c, [0.5, 0.5]) for c in composition.cells]
    estimate = estimate_from_results(QUESTION, composition, {"m": cells}, survey=survey)
    topline = real_marginals(survey, "q")[0]
    assert estimate.reference_label == TOPLINE
    np.testing.assert_allclose(estimate.reference, topline.shares)
    np.testing.assert_allclose(estimate.composed_real, topline.shares)
    # weighted Yes: 1 + 1.5 + 2 = 4.5 of 9
    np.testing.assert_allclose(topline.shares, [0.5, 0.5])
    assert estimate.scores["m"]["tv"] == pytest.approx(0.0)
    assert "population" not in estimate.baselines          # it would be the topline itself
    assert estimate.real.ci_low is not None                 # the topline's own 95 % interval


def test_a_marginal_table_composes_its_groups_by_their_n():
    table = ("question_id,option,share,attribute,group,n\n"
             "q,Yes,0.8,sex,F,30\nq,No,0.2,sex,F,30\nq,Yes,0.4,sex,M,10\nq,No,0.6,sex,M,10\n")
    survey = read_marginals_csv(table.encode(), name="table")
    composition = survey_composition(survey, ["sex"], question_id="q")
    np.testing.assert_allclose(composition.shares, [0.75, 0.25])        # 30 and 10 answers
    cells = [result(c, [0.5, 0.5]) for c in composition.cells]
    estimate = estimate_from_results(QUESTION, composition, {"m": cells}, survey=survey)
    # no whole-population row: the real groups composed stand in, 0.75*0.8 + 0.25*0.4 = 0.7
    assert estimate.reference_label == COMPOSED and estimate.real is None
    np.testing.assert_allclose(estimate.reference, [0.7, 0.3])
    assert estimate.noise_floor == {}                    # no n for a composed reference
    np.testing.assert_allclose(estimate.baselines["population"], [0.6, 0.4])  # group mean
    no_n = read_marginals_csv(table.replace(",30\n", ",\n").replace(",10\n", ",\n").encode())
    with pytest.raises(DataError, match="no group sizes .n. for sex in q"):
        survey_composition(no_n, ["sex"], question_id="q")
    with pytest.raises(DataError, match="an attribute is named twice"):
        survey_composition(survey, ["sex", "sex"], question_id="q")


# ---------------------------------------------------------------- raking

def ipf(seed: np.ndarray, rows: np.ndarray, cols: np.ndarray, sweeps: int = 2000):
    """Textbook IPF on a two-way table: scale rows, then columns, until they hold."""
    table = seed.astype(float).copy()
    for _ in range(sweeps):
        table *= (rows / table.sum(axis=1))[:, None]
        table *= (cols / table.sum(axis=0))[None, :]
    return table


def test_raking_reproduces_margins_and_matches_an_independent_ipf():
    # a 4 x 4 seed table with row and column totals that differ from the seed's own
    seed = np.array([[40, 30, 20, 10], [35, 50, 100, 75], [30, 80, 70, 120],
                     [20, 30, 40, 50]], dtype=float)
    rows = np.array([150, 300, 400, 150]) / 1000
    cols = np.array([200, 300, 400, 100]) / 1000
    cells = [{"r": f"r{i}", "c": f"c{j}"} for i in range(4) for j in range(4)]
    targets = {"r": {f"r{i}": rows[i] for i in range(4)},
               "c": {f"c{j}": cols[j] for j in range(4)}}
    shares, max_error = rake(cells, seed.ravel(), targets)
    table = shares.reshape(4, 4)
    np.testing.assert_allclose(table.sum(axis=1), rows, atol=1e-8)
    np.testing.assert_allclose(table.sum(axis=0), cols, atol=1e-8)
    assert max_error < 1e-8
    np.testing.assert_allclose(table, ipf(seed, rows, cols), atol=1e-8)


def test_raking_from_independence_gives_the_product_of_the_margins():
    margins = checked_margins({"sex": {"F": 0.6, "M": 0.4},
                               "age": {"young": 0.3, "old": 0.7}}, "census")
    composition = composition_from_margins(margins)
    assert composition.labels == ["sex=F, age=young", "sex=F, age=old", "sex=M, age=young",
                                  "sex=M, age=old"]
    np.testing.assert_allclose(composition.shares, [0.18, 0.42, 0.12, 0.28], atol=1e-10)
    assert "independence" in composition.source


def test_raking_from_the_survey_keeps_its_associations():
    survey = people_survey()
    margins = checked_margins({"sex": {"F": 0.6, "M": 0.4},
                               "age": {"young": 0.3, "old": 0.7}}, "census")
    raked = composition_from_margins(margins, survey=survey, question_id="q")
    seed = survey_composition(survey, ["sex", "age"], question_id="q")
    assert raked.labels == seed.labels
    rows, cols = np.array([0.6, 0.4]), np.array([0.7, 0.3])      # (F, M) x (old, young)
    expected = ipf(seed.shares.reshape(2, 2), rows, cols)
    np.testing.assert_allclose(raked.shares, expected.ravel(), atol=1e-8)
    assert raked.margins()["age"] == pytest.approx({"old": 0.7, "young": 0.3}, abs=1e-8)


# ---------------------------------------------------------------- intervals

def test_cell_bounds_are_the_weighted_bounds():
    low, high = cell_bounds([0.25, 0.75], [[0.1, 0.5], [0.3, 0.2]], [[0.2, 0.7], [0.5, 0.4]])
    np.testing.assert_allclose(low, [0.25, 0.275])
    np.testing.assert_allclose(high, [0.425, 0.475])


def synthetic_questions(n: int, seed: int = 0):
    """Truth and simulation of 3 cells x 3 options per question: a question-wide error the
    cells share (a model misreads the question) plus each cell's own."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    truth = rng.dirichlet([2, 2, 2], size=(n, 3))
    shared = rng.normal(0, 0.4, size=(n, 1, 3))
    own = rng.normal(0, 0.3, size=(n, 3, 3))
    logits = np.log(truth) + shared + own
    sims = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return weights, truth, sims


def test_interval_coverage_measured_on_calibration_questions():
    level = 0.9
    weights, truth, sims = synthetic_questions(600)
    cal = slice(0, 300)                  # questions 300-599 are the test questions
    cells = [{"cell": str(c)} for c in range(3)]
    composition = Composition(["cell"], cells, weights, "synthetic")
    # cell-level split conformal, fitted on the calibration questions' cells
    calibration = Calibration(residuals={"raw": sorted(conformity_scores(
        truth[cal].reshape(-1, 3), sims[cal].reshape(-1, 3)))})
    # population-level scores on the calibration questions
    pop_truth = np.einsum("c,qck->qk", weights, truth)
    pop_sim = np.einsum("c,qck->qk", weights, sims)
    residuals = population_scores(pop_truth[cal], pop_sim[cal])
    covered = {"cell bounds": [], "conformal": []}
    for q in range(300, 600):
        results = []
        for c, cell in enumerate(cells):
            low, high = calibration.interval(sims[q, c], level, calibrated=False)
            results.append(result(cell, sims[q, c], low, high))
        for method, extra in (("cell bounds", None), ("conformal", {"m": residuals})):
            estimate = estimate_from_results(Question("s", "?", ("a", "b", "c")), composition,
                                             {"m": results}, residuals=extra, level=level)
            assert estimate.interval_methods["m"] == method
            np.testing.assert_allclose(estimate.estimates["m"], pop_sim[q])
            low, high = estimate.intervals["m"]
            covered[method].extend((low <= pop_truth[q]) & (pop_truth[q] <= high))
    # split conformal: about the nominal level on exchangeable questions
    assert 0.86 <= np.mean(covered["conformal"]) <= 0.95
    # the weighted cell bounds: at least the nominal level (wider, as documented)
    assert np.mean(covered["cell bounds"]) >= level


def test_conformal_interval_by_hand():
    low, high = conformal_interval([0.5, 0.5], [0.1, 0.2, 0.3, 0.4], 0.5)
    # rank ceil(5 * 0.5) = 3 -> 0.3; scale sqrt(0.25) + 0.05 = 0.55 -> half 0.165
    np.testing.assert_allclose(low, [0.335, 0.335])
    np.testing.assert_allclose(high, [0.665, 0.665])


# ---------------------------------------------------------------- bad input

def margins_csv(rows: str) -> bytes:
    return ("attribute,group,share\n" + rows).encode()


def test_margins_that_do_not_sum_to_one():
    with pytest.raises(DataError, match="sum to 0.9, not 1: is a group missing"):
        read_margins(margins_csv("sex,F,0.5\nsex,M,0.4\n"))
    with pytest.raises(DataError, match="look like percentages"):
        read_margins(margins_csv("sex,F,51\nsex,M,49\n"))
    rounded = read_margins(margins_csv("sex,F,0.505\nsex,M,0.5\n"))
    assert rounded.shares["sex"] == pytest.approx({"F": 0.505 / 1.005, "M": 0.5 / 1.005})
    assert rounded.warnings == ["shares of 'sex' summed to 1.005; normalised to 1."]


def test_negative_and_malformed_shares_are_refused_with_their_row():
    with pytest.raises(DataError, match="row 3: share -0.1 is negative"):
        read_margins(margins_csv("sex,F,1.1\nsex,M,-0.1\n"))
    with pytest.raises(DataError, match="row 2: share 'half' is not a number"):
        read_margins(margins_csv("sex,F,half\nsex,M,0.5\n"))
    with pytest.raises(DataError, match="row 3: sex=F appears twice"):
        read_margins(margins_csv("sex,F,0.5\nsex,F,0.5\n"))
    with pytest.raises(DataError, match="exactly the columns attribute, group, share"):
        read_margins(b"attribute,group,percent\nsex,F,50\n")


def test_margins_that_do_not_fit_the_survey():
    survey = people_survey()
    extra = checked_margins({"sex": {"F": 0.5, "M": 0.4, "X": 0.1}}, "census")
    with pytest.raises(DataError, match="sex group.s. X that the survey does not have; "
                                        "its groups: F, M"):
        composition_from_margins(extra, survey=survey)
    lacking = checked_margins({"sex": {"F": 1.0}}, "census")
    with pytest.raises(DataError, match="no share for sex group.s. M, which the survey has"):
        composition_from_margins(lacking, survey=survey)
    no_age = checked_margins({"sex": {"F": 0.5, "M": 0.5}}, "census")
    with pytest.raises(DataError, match="give no shares for age .they have: sex."):
        composition_from_margins(no_age, ["sex", "age"], survey=survey)


def test_a_cell_with_no_respondents():
    survey = people_survey([r for r in PEOPLE if (r[0], r[1]) != ("M", "old")])
    margins = checked_margins({"sex": {"F": 0.5, "M": 0.5},
                               "age": {"young": 0.5, "old": 0.5}}, "census")
    with pytest.raises(DataError, match=r"1 cell\(s\) have no respondents \(sex=M, age=old\)"):
        composition_from_margins(margins, survey=survey)
    independent = composition_from_margins(margins, survey=survey, rake_from="independence")
    np.testing.assert_allclose(independent.shares, [0.25] * 4)


def test_margins_that_contradict_each_other():
    cells = [{"a": a, "b": b} for a, b in itertools.product("xy", "uv")]
    with pytest.raises(DataError, match="the margins contradict each other"):
        rake(cells, np.array([0.0, 0.5, 0.5, 0.0]),
             {"a": {"x": 0.6, "y": 0.4}, "b": {"u": 0.7, "v": 0.3}})


# ---------------------------------------------------------------- saved populations

def test_saved_populations_round_trip_and_are_never_replaced_unasked():
    data = margins_csv("SEX,Female,0.51\nSEX,Male,0.49\n")
    save_margins("us-adults", data)
    assert "us-adults" in saved_margins()
    assert load_margins("us-adults").shares == {"SEX": {"Female": 0.51, "Male": 0.49}}
    with pytest.raises(SimError, match="exists already"):
        save_margins("us-adults", margins_csv("SEX,Female,0.5\nSEX,Male,0.5\n"))
    assert load_margins("us-adults").shares["SEX"]["Female"] == 0.51
    with pytest.raises(SimError, match="not usable as the population name"):
        save_margins("../evil", data)
    with pytest.raises(DataError, match="sum to 0.9"):
        save_margins("bad", margins_csv("SEX,Female,0.5\nSEX,Male,0.4\n"))
    assert "bad" not in saved_margins()
    delete_margins("us-adults")
    assert "us-adults" not in saved_margins()
    with pytest.raises(DataError, match="no saved population named 'us-adults'"):
        delete_margins("us-adults")
