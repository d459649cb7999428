"""Known answer scales: text options read without a codebook keep their scale's order."""

from __future__ import annotations

import math

import pytest

from sim_core.survey import scales
from sim_core.survey.readers import load_survey
from sim_core.survey.scales import Scale, known_order


def notes(survey) -> list[str]:
    """The texts of the survey's column notes."""
    return [n.text for n in survey.column_notes]


@pytest.mark.parametrize("given,expected", [
    (["Lehne eher ab", "Lehne völlig ab", "Stimme eher zu", "Stimme voll zu"],
     ["Stimme voll zu", "Stimme eher zu", "Lehne eher ab", "Lehne völlig ab"]),
    (["Conservative", "Extremely conservative", "Extremely liberal", "Liberal", "Moderate"],
     ["Extremely liberal", "Liberal", "Moderate", "Conservative", "Extremely conservative"]),
    (["Disagree", "Agree", "Strongly agree", "Strongly disagree", "Neither agree nor disagree"],
     ["Strongly agree", "Agree", "Neither agree nor disagree", "Disagree",
      "Strongly disagree"]),
    (["too much", "Too little", "About right"], ["Too little", "About right", "too much"]),
    (["Somewhat oppose", "Strongly favor", "Strongly oppose"],
     ["Strongly favor", "Somewhat oppose", "Strongly oppose"]),
    (["不同意", "非常同意", "同意"], ["非常同意", "同意", "不同意"]),
])
def test_known_scales_are_ordered(given, expected):
    ordered, _ = known_order(given)
    assert ordered == expected


@pytest.mark.parametrize("given", [["Yes", "No"], ["Agree", "Banana"], ["Agree"],
                                   ["Agree", "agree"]])
def test_options_outside_one_scale_are_left_alone(given):
    assert known_order(given) is None


def test_two_scales_that_disagree_give_no_order(monkeypatch):
    monkeypatch.setattr(scales, "SCALES", (Scale("up", ("low", "high")),
                                           Scale("down", ("high", "low"))))
    assert known_order(["high", "low"]) is None
    monkeypatch.setattr(scales, "SCALES", (Scale("up", ("low", "mid", "high")),
                                           Scale("same", ("low", "high"))))
    assert known_order(["high", "low"])[0] == ["low", "high"]   # both agree: no ambiguity


def test_csv_without_codebook_reads_a_likert_scale_in_order(tmp_path):
    path = tmp_path / "likert.csv"
    path.write_text("sex,q1\nF,Agree\nM,Strongly disagree\nF,Strongly agree\nM,Don't know\n"
                    "F,Disagree\nM,Agree\n", encoding="utf-8")
    survey = load_survey(path, demographics=["sex"])
    q1 = survey.questions["q1"]
    assert q1.options == ("Strongly agree", "Agree", "Disagree", "Strongly disagree")
    assert q1.ordinal_values == (1.0, 2.0, 3.0, 4.0)
    assert any("known agree/disagree scale" in w for w in notes(survey))
    kept = load_survey(path, demographics=["sex"], keep_nonresponse=True).questions["q1"]
    assert kept.options[:4] == q1.options and kept.options[4] == "Don't know"
    assert kept.ordinal_values[:4] == (1.0, 2.0, 3.0, 4.0) and math.isnan(kept.ordinal_values[4])


def test_a_codebook_order_wins(tmp_path):
    data = tmp_path / "likert.csv"
    data.write_text("sex,q1\nF,Agree\nM,Disagree\nF,Agree\n", encoding="utf-8")
    book = tmp_path / "book.csv"
    book.write_text("column,question_text,options,ordinal,role\n"
                    "q1,Do you agree?,Disagree|Agree,true,question\n"
                    "sex,Sex,,false,demographic\n", encoding="utf-8")
    survey = load_survey(data, codebook=book)
    assert survey.questions["q1"].options == ("Disagree", "Agree")
    assert not any("known" in w for w in notes(survey))
