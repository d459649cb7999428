"""sim_core.evaluation.verdict: per-question evidence, bootstrap margins and the verdict's words,
checked against hand computation and an independent normal approximation."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.base.errors import SimError
from sim_core.evaluation.verdict import (
    BETTER,
    CHECKPOINT,
    CHECKPOINT_CAL,
    NO_BETTER,
    POPULATION,
    UNCLEAR,
    UNIFORM,
    WORSE,
    ZERO_SHOT,
    ZERO_SHOT_CAL,
    HeldOut,
    heldout_from_rows,
    verdict,
)
from sim_core.survey.schema import Question
from sim_core.survey.slices import SurveyRow

YES_NO = dict(options=("Yes", "No"), ordinal_values=(0.0, 1.0))


def two_option_rows():
    """Two ordinal yes/no questions (WD = |p_yes - q_yes|) and one nominal question."""
    q1, q2 = Question("q1", "?", **YES_NO), Question("q2", "?", **YES_NO)
    q3 = Question("q3", "?", options=("a", "b", "c"))
    rows = [SurveyRow(q1, {"S": "a"}, np.array([0.8, 0.2]), 100.0),
            SurveyRow(q1, {"S": "b"}, np.array([0.6, 0.4]), 100.0),
            SurveyRow(q2, {"S": "a"}, np.array([0.3, 0.7]), 100.0),
            SurveyRow(q3, {"S": "a"}, np.array([0.2, 0.3, 0.5]), 100.0)]
    return rows


def test_heldout_from_rows_by_hand():
    rows = two_option_rows()
    half = [np.array([0.5, 0.5])] * 3 + [np.full(3, 1 / 3)]
    model = [np.array([0.7, 0.3]), np.array([0.7, 0.3]), np.array([0.1, 0.9]),
             np.array([0.2, 0.3, 0.5])]
    held = heldout_from_rows(rows, {UNIFORM: half, CHECKPOINT: model}, kind="adapter",
                             unit="unseen questions", survey="demo")
    assert held.score == "wasserstein"            # ordinal questions present
    assert held.questions == ["q1", "q2"]         # the nominal question has no WD
    assert held.rows == [2, 1]
    assert held.entries[UNIFORM] == pytest.approx([(0.3 + 0.1) / 2, 0.2])
    assert held.entries[CHECKPOINT] == pytest.approx([(0.1 + 0.1) / 2, 0.2])
    assert held.what == "2 unseen questions of demo (3 rows)"
    # the row-weighted mean equals the mean over rows
    assert held.mean(UNIFORM) == pytest.approx((0.3 + 0.1 + 0.2) / 3)
    nominal = heldout_from_rows(rows[3:], {UNIFORM: half[3:]}, kind="base", unit="questions")
    assert nominal.score == "tv" and nominal.questions == ["q3"]


def test_heldout_skips_questions_where_an_entry_has_no_value():
    rows = two_option_rows()[:3]
    half = [np.array([0.5, 0.5])] * 3
    held = heldout_from_rows(rows, {UNIFORM: half, POPULATION: [None, None, half[2]]},
                             kind="adapter", unit="questions")
    assert held.questions == ["q2"]


def heldout(entries: dict, rows=None, kind="adapter") -> HeldOut:
    n = len(next(iter(entries.values())))
    return HeldOut(score="wasserstein", what=f"{n} unseen questions of gss (x rows)",
                   kind=kind, questions=[f"q{i}" for i in range(n)],
                   rows=rows or [22] * n, entries=entries)


def test_margins_against_a_normal_approximation():
    """Equal cluster sizes: the percentile bootstrap of the mean difference is close to
    mean +- 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, size=60)
    model = base - 0.02 + rng.normal(0, 0.03, size=60)
    got = verdict(heldout({UNIFORM: list(base), CHECKPOINT: list(model)}), n_resamples=9999)
    margin = got.margins[0]
    diff = model - base
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert margin.difference == pytest.approx(diff.mean())
    assert margin.ci_low == pytest.approx(diff.mean() - 1.96 * se, abs=0.25 * se)
    assert margin.ci_high == pytest.approx(diff.mean() + 1.96 * se, abs=0.25 * se)
    assert margin.outcome == BETTER                # the interval lies below 0 (WD: lower)
    again = verdict(heldout({UNIFORM: list(base), CHECKPOINT: list(model)}), n_resamples=9999)
    assert (again.margins[0].ci_low, again.margins[0].ci_high) == (margin.ci_low,
                                                                    margin.ci_high)  # seeded


def test_weights_are_the_rows_per_question():
    held = heldout({UNIFORM: [0.2, 0.4], CHECKPOINT: [0.1, 0.1]}, rows=[3, 1])
    margin = verdict(held).margins[0]
    assert margin.value == pytest.approx((3 * 0.2 + 0.4) / 4)
    assert margin.difference == pytest.approx((3 * -0.1 + -0.3) / 4)


def test_outcomes_and_words():
    same = [0.19, 0.2, 0.18, 0.21]
    held = heldout({UNIFORM: same, POPULATION: [0.05, 0.06, 0.07, 0.05],
                    ZERO_SHOT: [0.3, 0.32, 0.29, 0.35], CHECKPOINT: same})
    got = verdict(held)
    outcomes = {m.reference: m.outcome for m in got.margins}
    assert outcomes == {UNIFORM: NO_BETTER, POPULATION: WORSE, ZERO_SHOT: BETTER}
    uniform = got.margins[0]
    assert (uniform.ci_low, uniform.ci_high) == (0.0, 0.0)   # identical: no spread
    assert got.text.startswith("On 4 unseen questions of gss (x rows) this adapter is no "
                               "better than a uniform guess (WD 0.195 vs 0.195, 95 % CI of "
                               "the difference +0.000..+0.000), worse than the population "
                               "average (WD 0.195 vs 0.058")
    assert "better than the zero-shot model (WD 0.195 vs 0.315" in got.text
    assert "no more informative than a uniform guess" in got.text
    assert got.n_questions == 4 and got.n_rows == 88 and not got.calibrated


def test_unclear_when_the_interval_spans_zero():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.3, 30)
    model = base - 0.002 + rng.normal(0, 0.05, 30)
    margin = verdict(heldout({UNIFORM: list(base), CHECKPOINT: list(model)})).margins[0]
    assert margin.ci_low < 0 < margin.ci_high
    assert margin.outcome == (UNCLEAR if margin.difference < 0 else NO_BETTER)


def test_calibrated_and_raw_and_base_references():
    entries = {UNIFORM: [0.2, 0.2], ZERO_SHOT: [0.3, 0.3], ZERO_SHOT_CAL: [0.21, 0.2],
               CHECKPOINT: [0.25, 0.26], CHECKPOINT_CAL: [0.19, 0.2]}
    calibrated = verdict(heldout(entries))
    assert calibrated.calibrated and ", calibrated," in calibrated.text
    assert [m.reference for m in calibrated.margins] == [UNIFORM, ZERO_SHOT_CAL]
    assert calibrated.margins[0].checkpoint == pytest.approx(0.195)
    raw = verdict(heldout(entries), calibrated=False)
    assert [m.reference for m in raw.margins] == [UNIFORM, ZERO_SHOT]
    assert raw.margins[0].checkpoint == pytest.approx(0.255)
    base = heldout({UNIFORM: [0.2, 0.2], CHECKPOINT: [0.3, 0.3], CHECKPOINT_CAL: [0.2, 0.21]},
                   kind="base")
    assert [m.label for m in verdict(base, subject="this model").margins] == [
        "a uniform guess", "the uncalibrated model"]
    assert [m.reference for m in verdict(base, calibrated=False).margins] == [UNIFORM]


def test_single_question_has_no_interval_and_coverage_is_reported():
    held = heldout({UNIFORM: [0.2], CHECKPOINT_CAL: [0.1]})
    held.coverage = {"calibrated": {"level": 0.9, "coverage": 0.874, "mean_width": 0.31}}
    got = verdict(held)
    assert "no interval from one question" in got.text
    assert got.margins[0].outcome == UNCLEAR
    assert "90 % prediction intervals held 87 % of the real shares there (mean width 0.31)" \
        in got.text


def test_round_trip_and_errors():
    held = heldout({UNIFORM: [0.2, 0.3], CHECKPOINT: [0.1, 0.2]})
    assert HeldOut.from_dict(held.to_dict()) == held
    with pytest.raises(SimError, match="one value per question"):
        HeldOut.from_dict({**held.to_dict(), "rows": [1]})
    with pytest.raises(SimError, match="no scores for this checkpoint"):
        verdict(heldout({UNIFORM: [0.2, 0.3]}))
