"""Missing-value rules on CSV input (the same module serves SPSS/Stata): nonresponse labels,
declared missing codes with reasons and ranges, suspect codes, roles and the classifier."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.evaluation.baselines import classifier_fit
from sim_core.survey.nonresponse import nonresponse_reason, nonresponse_text, suspect_missing_codes
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.slices import real_marginals


def notes(survey) -> list[str]:
    """The texts of the survey's column notes."""
    return [n.text for n in survey.column_notes]


@pytest.mark.parametrize("label, reason", [
    ("Don't know", "dk"), ("DON\u2019T KNOW", "dk"), ("dont know", "dk"), ("DK", "dk"),
    ("Don't know/Refused", "dk"), ("Refused", "refused"), ("No answer", "refused"),
    ("NA", "refused"), ("Not asked", "not_asked"), ("IAP", "not_asked"),
    ("Inapplicable", "not_asked"), ("Other (DO NOT READ)", "other"),
    ("Agree", None), ("Strongly disagree", None), ("Knowledgeable", None), ("Nadia", None),
])
def test_nonresponse_labels(label, reason):
    assert nonresponse_reason(label) == reason


def test_nonresponse_text():
    assert nonresponse_text({"dk": 0.042, "refused": 0.01}) == "DK 4.2 %, refused 1.0 %"
    assert nonresponse_text({}) == "-"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_text_answers_labelled_as_nonresponse_are_missing(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,Yes\nF,Don't know\nM,No\nM,Refused\nM,Yes\n")
    survey = read_respondents_csv(data, questions=["q1"], demographics=["sex"])
    assert survey.questions["q1"].options == ("No", "Yes")
    result = real_marginals(survey, "q1", min_n_eff=0)[0]
    assert result.n == 3 and result.nonresponse == {"dk": 0.2, "refused": 0.2}
    assert any("'Don't know' (1)" in w and "'Refused' (1)" in w for w in notes(survey))
    kept = read_respondents_csv(data, questions=["q1"], demographics=["sex"],
                                keep_nonresponse=True)
    assert kept.questions["q1"].options == ("Don't know", "No", "Refused", "Yes")


def test_csv_codebook_missing_codes_with_labels_and_ranges(tmp_path):
    data = write(tmp_path, "d.csv", "sex,age,q1\nF,25,1\nF,98,2\nM,40,8\nM,99,9\nF,70,97\n"
                 "M,-1,3\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,ordinal,missing,codes,role\n"
                 "q1,Q,Low|Mid|High,true,8=Don't know|9=Refused|97..=Not asked,1|2|3,question\n"
                 "age,Age,,,..-1|98..99,,demographic\n")
    survey = read_respondents_csv(data, codebook=book)
    result = real_marginals(survey, "q1", min_n_eff=0)[0]
    assert result.shares.tolist() == [1 / 3, 1 / 3, 1 / 3]
    assert result.nonresponse == {"dk": 1 / 6, "refused": 1 / 6, "not_asked": 1 / 6}
    assert result.n_asked == 5
    ages = survey.respondents["age"]
    assert ages.tolist()[:1] == [25.0] and ages.isna().tolist() == [False, True, False, True,
                                                                   False, True]


def test_undeclared_missing_looking_codes_warn(tmp_path):
    data = write(tmp_path, "d.csv", "sex,age,c1\n" + "".join(
        f"{s},{a},{c}\n" for s, a, c in [("F", 30, 1), ("M", 45, 2), ("F", 52, 3), ("M", 98, 4),
                                         ("F", 99, 5), ("M", 61, 9)]))
    survey = read_respondents_csv(data, questions=["c1"], demographics=["sex", "age"])
    assert any("c1: value(s) 9 look like missing-value codes" in w for w in notes(survey))
    assert any("age: value(s) 98, 99 look like missing-value codes" in w
               for w in notes(survey))
    assert suspect_missing_codes([1, 2, 3, 4, 5]) == []
    assert suspect_missing_codes([-9, 1, 2, 3]) == [-9]


def test_csv_codebook_without_demographic_roles_never_makes_the_rest_demographics(tmp_path):
    """The issue's case: follow-ups c2, c3 to the vote question c1 are not features."""
    rng = np.random.default_rng(0)
    n = 200
    sex = rng.choice(["F", "M"], n)
    c1 = np.where(rng.random(n) < np.where(sex == "F", 0.6, 0.4), "1", "2")
    c2 = c1.copy()                                  # the answer, asked again
    c3 = np.where(c1 == "1", "A", "B")
    rows = "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in zip(sex, c1, c2, c3))
    data = write(tmp_path, "d.csv", "sex,c1,c2,c3\n" + rows)
    book = write(tmp_path, "b.csv", "column,question_text,options,codes\n"
                 "c1,Vote?,Kerry|Bush,1|2\n")
    survey = read_respondents_csv(data, codebook=book)
    assert list(survey.questions) == ["c1"]
    assert survey.demographics == ["sex"]           # guessed by name, not c2 / c3
    fit = classifier_fit(survey, "c1", ["sex"])
    assert fit.features == ["sex"] and fit.accuracy < 0.8
    leaky = read_respondents_csv(data, codebook=book, demographics=["sex", "c2", "c3"])
    assert classifier_fit(leaky, "c1", ["sex"]).accuracy == 1.0     # what "the rest" did


def test_demographic_labels_read_as_nonresponse_are_left_out_of_slices(tmp_path):
    data = write(tmp_path, "d.csv", "income,q1\nLow,Yes\nHigh,No\nRefused,Yes\nLow,No\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,role\n"
                 "income,Income,Low|High|Refused,demographic\nq1,Q,Yes|No,question\n")
    survey = read_respondents_csv(data, codebook=book)
    assert survey.groups("income") == ["Low", "High"]
    slices = real_marginals(survey, "q1", ["income"], min_n_eff=0)
    assert [m.label for m in slices] == ["income=Low", "income=High"]
    assert sum(m.n_total for m in slices) == 3
