"""Slices: labels, binning, crossed slices, weighted shares, Kish n_eff, Wilson intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from sim_core.base.errors import DataError
from sim_core.survey.marginal import parse_slice_label, slice_label
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.slices import DEFAULT_BINS, bin_numeric, real_marginals, survey_rows

SIX_ROWS = """sex,age,q,w
F,25,Yes,1
F,40,No,2
F,70,Yes,3
M,22,Yes,1
M,50,No,1
M,35,No,2
"""


@pytest.fixture
def six(tmp_path):
    path = tmp_path / "six.csv"
    path.write_text(SIX_ROWS)
    return read_respondents_csv(path, weight="w")


def wilson(p: float, n: float, z: float = norm.ppf(0.975)) -> tuple[float, float]:
    """Wilson score interval from its textbook formula."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_labels_round_trip():
    assert slice_label({}) == "All" and parse_slice_label("All") == {}
    s = {"SEX": "Female", "INCOME": "$100,000 or more", "X": "a, b"}
    assert slice_label(s) == "SEX=Female, INCOME=$100,000 or more, X=a, b"
    assert parse_slice_label(slice_label(s)) == s


def test_bin_numeric_default_age_bands():
    values = pd.Series([18, 29, 30, 44.5, 45, 64, 65, 99, 17, None])
    bands = bin_numeric(values, DEFAULT_BINS["age"])
    assert list(bands.cat.categories) == ["18-29", "30-44", "45-64", "65+"]
    assert bands.tolist()[:8] == ["18-29", "18-29", "30-44", "30-44", "45-64", "45-64",
                                  "65+", "65+"]
    assert bands.isna().tolist()[8:] == [True, True]        # below the first edge, missing
    assert bin_numeric(pd.Series([1.5]), [0, 2.5, 5]).tolist() == ["0-2.5"]
    with pytest.raises(DataError):
        bin_numeric(values, [30, 18])


def test_weighted_shares_and_kish(six):
    female, male = real_marginals(six, "q", ["sex"], min_n_eff=0)
    assert six.questions["q"].options == ("No", "Yes")
    # F: No w=2, Yes w=1+3 -> [2/6, 4/6]; n_eff = 6^2 / (1+4+9)
    assert female.slice == {"sex": "F"} and female.n == 3
    assert np.allclose(female.shares, [2 / 6, 4 / 6])
    assert female.n_eff == pytest.approx(36 / 14)
    # M: No w=1+2, Yes w=1 -> [3/4, 1/4]; n_eff = 16 / 6
    assert np.allclose(male.shares, [0.75, 0.25]) and male.n_eff == pytest.approx(16 / 6)
    total = real_marginals(six, "q")[0]
    assert total.slice == {} and total.n == 6
    assert np.allclose(total.shares, [5 / 10, 5 / 10]) and total.n_eff == pytest.approx(100 / 20)
    assert total.too_small and not real_marginals(six, "q", min_n_eff=4)[0].too_small


def test_wilson_interval_matches_formula(six):
    female = real_marginals(six, "q", ["sex"])[0]
    for j, p in enumerate(female.shares):
        low, high = wilson(p, 36 / 14)
        assert female.ci_low[j] == pytest.approx(low) and female.ci_high[j] == pytest.approx(high)
        assert female.ci_low[j] <= p <= female.ci_high[j]


def test_custom_bins_and_crossed(six):
    marginals = real_marginals(six, "q", ["sex", "age"], bins={"age": [18, 40, 120]})
    labels = [m.label for m in marginals]
    assert labels == ["sex=F, age=18-39", "sex=F, age=40+", "sex=M, age=18-39",
                      "sex=M, age=40+"]
    assert [m.n for m in marginals] == [1, 2, 2, 1]
    assert np.allclose(marginals[1].shares, [2 / 5, 3 / 5])     # F 40 (No, 2) + F 70 (Yes, 3)


def test_three_way_crossing_matches_pandas(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.integers(18, 90, n),
                          "region": rng.choice(["N", "S", "W"], n),
                          "q": rng.choice(["a", "b", "c"], n), "wt": rng.uniform(0.2, 3, n)})
    path = tmp_path / "r.csv"
    frame.to_csv(path, index=False)
    survey = read_respondents_csv(path, weight="wt")
    marginals = real_marginals(survey, "q", ["sex", "age", "region"], min_n_eff=0)
    frame["band"] = pd.cut(frame["age"], [18, 30, 45, 65, 200], right=False,
                           labels=["18-29", "30-44", "45-64", "65+"])
    expected = {}
    for (sex, band, region), part in frame.groupby(["sex", "band", "region"], observed=True):
        w = part.groupby("q")["wt"].sum().reindex(["a", "b", "c"]).fillna(0)
        expected[f"sex={sex}, age={band}, region={region}"] = (
            (w / w.sum()).to_numpy(), len(part), part.wt.sum() ** 2 / (part.wt ** 2).sum())
    assert len(marginals) == len(expected) == 2 * 4 * 3
    for m in marginals:
        shares, count, n_eff = expected[m.label]
        assert np.allclose(m.shares, shares) and m.n == count
        assert m.n_eff == pytest.approx(n_eff)


def test_missing_codes_dropped_for_answers_and_demographics(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("sex,q\nF,1\nF,2\nM,9\n9,1\nM,2\n")
    book = tmp_path / "b.csv"
    book.write_text("column,question_text,options,missing,codes,role\n"
                    "q,Q,Agree|Disagree,9,1|2,question\n"
                    "sex,Sex,Female|Male,9,F|M,demographic\n")
    survey = read_respondents_csv(data, codebook=book)
    total = real_marginals(survey, "q")[0]
    assert total.n == 4 and np.allclose(total.shares, [0.5, 0.5])     # the 9 answer dropped
    by_sex = real_marginals(survey, "q", ["sex"])
    assert [(m.label, m.n) for m in by_sex] == [("sex=Female", 2), ("sex=Male", 1)]
    assert np.allclose(by_sex[1].shares, [0, 1])                       # sex 9 left out


def test_errors(six):
    with pytest.raises(DataError, match="unknown question"):
        real_marginals(six, "nope")
    with pytest.raises(DataError, match="unknown attribute"):
        real_marginals(six, "q", ["colour"])


def test_question_without_answers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sex,q,year\nF,Yes,2020\nM,No,2020\nF,,2022\n")
    survey = read_respondents_csv(path, wave="year")
    assert survey.waves() == ["2020", "2022"]
    with pytest.raises(DataError, match="no answers in wave 2022"):
        real_marginals(survey, "q", wave="2022")
    rows = survey_rows(survey)
    assert [(r.wave, r.slice) for r in rows] == [("2020", {"sex": "F"}), ("2020", {"sex": "M"})]


def test_survey_rows_respondents(six):
    rows = survey_rows(six)                                  # each attribute on its own
    labels = [slice_label(r.slice) for r in rows]
    assert labels == ["sex=F", "sex=M", "age=18-29", "age=30-44", "age=45-64", "age=65+"]
    assert all(r.wave == "" and r.weight == 1.0 for r in rows)
    crossed = survey_rows(six, by=["sex", "age"], min_n_eff=1.5)
    assert all(r.n_eff >= 1.5 for r in crossed) and len(crossed) < 6
    whole = survey_rows(six, by=[])
    assert len(whole) == 1 and np.allclose(whole[0].dist, [0.5, 0.5])


def test_gss_marginal_table_rules(gss_path):
    from sim_core.survey.marginal_readers import read_subpop_jsonl
    gss = read_subpop_jsonl(gss_path)
    with pytest.raises(DataError, match="cannot cross"):
        real_marginals(gss, "nataid", ["SEX", "RACE"])
    with pytest.raises(DataError, match="whole-population"):
        real_marginals(gss, "nataid")
    race = real_marginals(gss, "nataid", ["RACE"])
    assert [m.slice["RACE"] for m in race] == ["Black", "White", "Asian", "Hispanic"]
    assert all(m.n is None and m.ci_low is None and not m.too_small for m in race)
    rows = survey_rows(gss, by=["SEX"], questions=["nataid", "natspac"])
    assert [(r.question.id, r.slice["SEX"]) for r in rows] == list(
        itertools.product(["nataid", "natspac"], ["Male", "Female"]))
    assert np.allclose(rows[0].dist, real_marginals(gss, "nataid", ["SEX"])[0].shares)


def test_head_rows_first_questions_and_slices():
    from types import SimpleNamespace

    from sim_core.survey.slices import head_rows

    rows = [SimpleNamespace(question=SimpleNamespace(id=q), slice={"n": str(n)})
            for n, q in enumerate(("a", "b", "a", "c", "b", "a", "d"))]
    chosen = head_rows(rows, questions=2, per_question=2)
    # a: rows 0 and 2 (row 5 is a's third); b: rows 1 and 4; c and d are past 2 questions
    assert [r.slice["n"] for r in chosen] == ["0", "1", "2", "4"]
