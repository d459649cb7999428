"""SPSS/Stata files through pyreadstat: the shared test files (pyreadstat, haven) and files
written here with known content, checked against hand computation."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from sim_core.base.errors import DataError
from sim_core.survey.codebook import codebook_csv
from sim_core.survey.readers import columns_of, load_survey
from sim_core.survey.slices import real_marginals

FILES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "survey_files"
PYREADSTAT, HAVEN = FILES / "pyreadstat", FILES / "haven"
needs_files = pytest.mark.skipif(not FILES.exists(), reason="shared/data/survey_files absent")


def notes(survey) -> list[str]:
    """The texts of the survey's column notes."""
    return [n.text for n in survey.column_notes]


def total(survey, qid):
    return real_marginals(survey, qid, min_n_eff=0)[0]


# ---------------------------------------------------------------- shared test files

@needs_files
@pytest.mark.parametrize("name", ["sample.sav", "sample.zsav", "sample.por", "sample.dta"])
def test_four_formats_of_the_same_table(name):
    expected = pd.read_csv(PYREADSTAT / "basic" / "sample.csv", encoding="utf-8-sig")
    survey = load_survey(PYREADSTAT / "basic" / name)
    lab, ordq = (("MYLABL", "MYORD") if name.endswith(".por") else ("mylabl", "myord"))
    assert list(survey.questions) == [lab, ordq]     # chars, numbers, dates: not questions
    assert survey.questions[lab].options == ("Male", "Female")
    assert survey.questions[ordq].options == ("low", "medium", "high")
    assert survey.questions[lab].text == "labeled"
    counts = expected["mylabl"].value_counts()
    assert total(survey, lab).shares.tolist() == [counts[1] / 5, counts[2] / 5]
    counts = expected["myord"].value_counts()
    assert total(survey, ordq).shares.tolist() == [counts[1] / 5, counts[2] / 5, counts[3] / 5]
    # SPSS says myord is ordinal; Stata and .por carry no measurement level (a warning says so)
    assert survey.questions[ordq].is_ordinal == name.endswith((".sav", ".zsav"))
    assert name.endswith((".sav", ".zsav")) or "read as nominal" in " ".join(notes(survey))


@needs_files
def test_spss_declared_missing_values_and_ranges():
    survey = load_survey(PYREADSTAT / "basic" / "sample_missing.sav",
                         questions=["mylabl", "myord", "mynum"])
    lab = total(survey, "mylabl")      # 1,2,1,2,1, -1 (missing "undetermined"), sysmis
    assert lab.options == ("Male", "Female") and lab.shares.tolist() == [0.6, 0.4]
    assert (lab.n, lab.n_total, lab.n_asked) == (5, 7, 6)
    assert lab.nonresponse == {"other": 1 / 7, "not_asked": 1 / 7}
    ordq = total(survey, "myord")      # 1,2,3,1,1, -1 ("missing"), -3 (declared, no label)
    assert ordq.options == ("low", "medium", "high") and ordq.nonresponse == {"other": 2 / 7}
    num = total(survey, "mynum")       # range 2000..3000 and -1 are missing: 2500, -1
    assert num.options == ("-1000.3", "-1.4", "1.1", "1.2", "1000.3")
    assert num.n == 5 and num.nonresponse == {"other": 2 / 7}


@needs_files
def test_spss_string_missing_value():
    survey = load_survey(PYREADSTAT / "missing_data" / "missing_char.sav", questions=["mychar"])
    result = total(survey, "mychar")           # "Z" is declared missing, "a" is labelled
    assert result.options == ("labeled",) and result.nonresponse == {"other": 0.5}


@needs_files
def test_stata_tagged_missing_values():
    survey = load_survey(HAVEN / "stata" / "tagged-na-int.dta", questions=["x"])
    result = total(survey, "x")                # 1..5, then .a (apple), .h, .z (.zebra)
    assert result.options == ("1", "2", "3", "4", "5") and result.n == 5
    assert result.n_total == 8 and result.nonresponse == {"other": 3 / 8}


@needs_files
def test_options_in_code_order_not_label_order():
    survey = load_survey(PYREADSTAT / "basic" / "ordered_category.sav")
    question = survey.questions["Col1"]          # codes 1 high, 2 low, 3 medium
    assert question.options == ("high", "low", "medium") and question.is_ordinal
    assert total(survey, "Col1").shares.tolist() == [0.25, 0.5, 0.25]    # 1,2,3,2


@needs_files
def test_multiple_response_sets():
    survey = load_survey(PYREADSTAT / "multiple_response" / "simple_alltypes.sav")
    bool1 = survey.questions["bool1"]
    assert bool1.text == "My multiple response set: Response #1"
    assert bool1.options == ("Yes", "No")
    first = total(survey, "bool1")          # 1,1,0,0,sysmis,1
    assert first.shares.tolist() == [0.6, 0.4] and first.nonresponse == {"not_asked": 1 / 6}
    assert total(survey, "bool3").shares.tolist() == [0.0, 1.0]     # never chosen: share 0
    assert any("category set" in w and "ca_subvar_1" in w for w in notes(survey))
    x = total(survey, "x")      # 1,2,3 labelled; 4 and 9 unlabelled; 8 declared missing
    assert x.options == ("red", "green", "blue", "4", "9") and x.n == 5
    assert any("x: code(s) 4 (1), 9 (1) have no value label" in w for w in notes(survey))
    assert set(survey.questions) >= {"x", "bool1", "bool2", "bool3"}
    assert "y" not in survey.questions and "date" not in survey.questions      # dates


@needs_files
def test_letter_codes_compare_as_text_and_labels_decode():
    survey = load_survey(HAVEN / "spss" / "labelled-str.sav", questions=["gender"])
    assert survey.questions["gender"].options == ("Female", "Male")      # codes F < M
    assert total(survey, "gender").shares.tolist() == [0.5, 0.5]
    umlauts = load_survey(HAVEN / "spss" / "umlauts.sav")
    assert umlauts.questions["var1"].text == "This is an ä-umlaut"
    assert umlauts.questions["var1"].options == ("the ä umlaut", "the ü umlaut", "the ö umlaut")
    columns, _ = columns_of(PYREADSTAT / "basic" / "hebrews.sav")
    assert columns == ["ותק_ב"]


@needs_files
def test_user_missing_code_without_label():
    survey = load_survey(HAVEN / "spss" / "labelled-num-na.sav")
    result = total(survey, "VAR00002")         # 1 ("This is one") and 9 (missing, no label)
    assert result.options == ("This is one",) and result.nonresponse == {"other": 0.5}


# ---------------------------------------------------------------- a survey written here

N = 12
SEX = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
AGE = [25, 40, 70, 98, 33, 51, 22, 99, 45, 67, 30, 58]        # 98/99 declared missing
WT = [1, 2, 1, 1, 2, 1, 1, 1, 3, 1, 1, 2]
Q1 = [1, 2, 8, 1, 3, 9, 1, 1, 2, np.nan, 3, 8]                 # 8 DK, 9 refused: declared
Q2 = [1, 2, 7, 1, 1, 2, 2, 7, 1, 1, 2, 1]                      # 7 "Don't know (DO NOT READ)"
Q3 = [1, 2, 5, 4, 3, 5, 1, 2, 3, 4, 4, 1]                      # 5 "Don't know", undeclared


def write_survey(folder: Path, **changes) -> Path:
    """A small telephone survey with the usual SPSS furniture."""
    columns = {"id": [float(1000 + i) for i in range(N)], "sex": SEX, "age": AGE, "wt": WT,
               "q1": Q1, "q2": Q2, "q3": Q3, "c2": Q2,
               "areacode": [float(200 + 7 * i) for i in range(N)],
               "idate": [datetime.date(2004, 5, i + 1) for i in range(N)]}
    columns.update(changes.pop("columns", {}))
    df = pd.DataFrame(columns)
    labels = {"sex": {1: "Male", 2: "Female"},
              "q1": {1: "Agree", 2: "Neutral", 3: "Disagree", 8: "Don't know", 9: "Refused"},
              "q2": {1: "Yes", 2: "No", 7: "Don\u2019t know (DO NOT READ)"},
              "c2": {1: "Yes", 2: "No", 7: "Refused"},
              "q3": {1: "Never", 2: "Rarely", 3: "Often", 4: "Always", 5: "Don't know"}}
    options = dict(column_labels={"sex": "R's sex", "q1": "Do you agree?", "wt": "Weight",
                                  "q2": "Did you vote?", "q3": "How often?",
                                  "c2": "Follow-up to q2", "areacode": "Area code"},
                   variable_value_labels=labels,
                   missing_ranges={"q1": [8, 9], "age": [{"lo": 98, "hi": 99}]},
                   variable_measure={"q1": "ordinal", "q3": "ordinal"},
                   variable_format={"idate": "DATE11"})
    options.update(changes)
    path = folder / "phone2004.sav"
    pyreadstat.write_sav(df, path, **options)
    return path


@pytest.fixture
def sav(tmp_path) -> Path:
    return write_survey(tmp_path)


def test_written_survey_shares_n_and_nonresponse_by_hand(sav):
    survey = load_survey(sav, weight="wt", demographics=["sex", "age"])
    male, female = real_marginals(survey, "q1", ["sex"], min_n_eff=0)
    # men: Agree w1+w1, Neutral w2, Disagree w2; DK (w1) and refused (w1) of total w 8
    assert male.slice == {"sex": "Male"} and male.shares.tolist() == [1 / 3, 1 / 3, 1 / 3]
    assert male.n == 4 and male.n_eff == pytest.approx(36 / 10)
    assert (male.n_total, male.n_asked) == (6, 6)
    assert male.nonresponse == {"dk": 1 / 8, "refused": 1 / 8}
    # women: Agree 1+1, Neutral 3, Disagree 1; sysmis (w1) and DK (w2) of total w 9
    assert female.shares.tolist() == pytest.approx([1 / 3, 1 / 2, 1 / 6], abs=1e-15)
    assert female.n == 4 and female.n_eff == pytest.approx(36 / 12)
    assert (female.n_total, female.n_asked) == (6, 5)
    assert female.nonresponse == pytest.approx({"dk": 2 / 9, "not_asked": 1 / 9})


def test_missing_codes_of_a_demographic_never_reach_a_band(sav):
    survey = load_survey(sav, weight="wt", demographics=["sex", "age"])
    bands = {m.label: m for m in real_marginals(survey, "q2", ["age"], min_n_eff=0)}
    assert bands["age=65+"].n_total == 2           # 70 and 67; not 98 and 99
    assert sum(m.n_total for m in bands.values()) == N - 2


def test_undeclared_nonresponse_labels_are_missing_and_listed(sav):
    survey = load_survey(sav, weight="wt", demographics=["sex"])
    assert survey.questions["q2"].options == ("Yes", "No")
    q2 = total(survey, "q2")        # 7 = "Don’t know (DO NOT READ)" at rows 3 and 8 (w 1, 1)
    assert q2.nonresponse == {"dk": 2 / 17} and q2.n == 10
    assert any("q2: 'Don\u2019t know (DO NOT READ)' (2) counted as nonresponse" in w
               for w in notes(survey))
    assert total(survey, "c2").nonresponse == {"refused": 2 / 17}


def test_keep_nonresponse_keeps_the_option_without_an_ordinal_value(sav):
    survey = load_survey(sav, weight="wt", demographics=["sex"], keep_nonresponse=True)
    q3 = survey.questions["q3"]
    assert q3.options == ("Never", "Rarely", "Often", "Always", "Don't know")
    assert q3.ordinal_values[:4] == (1.0, 2.0, 3.0, 4.0) and math.isnan(q3.ordinal_values[4])
    assert total(survey, "q3").shares[4] == pytest.approx(2 / 17)   # rows 3 and 6, w 1 each
    default = load_survey(sav, weight="wt", demographics=["sex"])
    assert default.questions["q3"].options == ("Never", "Rarely", "Often", "Always")


def test_roles_ids_dates_and_many_valued_columns_are_not_questions(sav):
    survey = load_survey(sav, weight="wt")
    assert list(survey.questions) == ["q1", "q2", "q3", "c2"]        # labelled only
    assert survey.demographics == ["sex", "age"]                       # guessed, and said so
    assert any("demographics guessed" in w for w in survey.warnings)
    assert survey.labels == {"sex": "R's sex"}
    named = load_survey(sav, weight="wt", demographics=["sex"])
    assert named.demographics == ["sex"] and not any("guessed" in w for w in named.warnings)


def test_classifier_uses_only_the_named_demographics(sav):
    from sim_core.evaluation.baselines import classifier_fit

    survey = load_survey(sav, weight="wt", demographics=["sex"])
    fit = classifier_fit(survey, "q2", ["sex"], test_fraction=0.3)
    assert fit.features == ["sex"]                     # not c2, the follow-up answer


def test_weight_candidates_proposed_and_summarised(sav):
    unweighted = load_survey(sav, demographics=["sex"])
    assert unweighted.weight_candidates == ["wt"]
    assert any("look like weights but no weight was chosen" in w for w in unweighted.warnings)
    said = load_survey(sav, demographics=["sex"], unweighted=True)
    assert not any("look like weights" in w for w in said.warnings)
    summary = load_survey(sav, weight="wt", demographics=["sex"]).weight_summary()
    squares = sum(w * w for w in WT)                                  # 29
    assert summary.total == 17 and summary.deff == pytest.approx(N * squares / 17 ** 2)
    assert summary.cv == pytest.approx(math.sqrt(N * squares / 17 ** 2 - 1))
    assert summary.n_eff == pytest.approx(17 ** 2 / squares)


@pytest.mark.parametrize("bad, why", [(-1.0, "'-1.0'"), (np.nan, "blank")])
def test_negative_or_missing_weights_refused_whole(tmp_path, bad, why):
    weights = list(map(float, WT))
    weights[4] = weights[9] = bad
    path = write_survey(tmp_path, columns={"wt": weights})
    with pytest.raises(DataError, match="finite non-negative") as info:
        load_survey(path, weight="wt", demographics=["sex"])
    assert info.value.rows == [5, 10] and info.value.column == "wt"    # SPSS case numbers
    assert why in str(info.value)


def test_codebook_round_trip_and_edits(sav, tmp_path):
    survey = load_survey(sav, weight="wt", demographics=["sex"])
    text = codebook_csv(survey)
    book = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
    row = book.set_index("column").loc["q1"]
    assert row["options"] == "Agree|Neutral|Disagree" and row["codes"] == "1|2|3"
    assert row["missing"] == "8=Don't know|9=Refused" and row["ordinal"] == "true"
    assert book.set_index("column").loc["q2", "missing"] == "7=Don\u2019t know (DO NOT READ)"
    assert book.set_index("column").loc["idate", "role"] == "ignore"
    path = tmp_path / "book.csv"
    path.write_text(text, encoding="utf-8")
    again = load_survey(sav, weight="wt", codebook=path)
    assert again.questions == survey.questions and again.demographics == ["sex"]
    for qid in survey.questions:
        a, b = total(survey, qid), total(again, qid)
        assert a.shares.tolist() == b.shares.tolist() and a.nonresponse == b.nonresponse
    edited = book.set_index("column")
    edited.loc["q1", "question_text"] = "Do you agree with the plan?"
    edited.loc["q3", "ordinal"] = "false"
    edited.loc["c2", "role"] = "ignore"
    edited.reset_index().to_csv(path, index=False)
    changed = load_survey(sav, weight="wt", codebook=path)
    assert "c2" not in changed.questions and changed.demographics == ["sex"]
    assert changed.questions["q1"].text == "Do you agree with the plan?"
    assert changed.questions["q3"].ordinal_values is None


def test_persona_uses_the_variable_label_and_population_reaches_the_prompt(tmp_path):
    from sim_core.simulation.prompts import PromptStyle, build_prompt, persona_text

    path = tmp_path / "de.sav"
    pyreadstat.write_sav(pd.DataFrame({"polaf": [1.0, 2.0] * 3, "q1": [1.0, 2.0, 3.0] * 2}),
                         path, column_labels={"polaf": "R's party affiliation",
                                              "q1": "Do you agree?"},
                         variable_value_labels={"polaf": {1: "Democrat", 2: "Republican"},
                                                "q1": {1: "Agree", 2: "Neutral",
                                                       3: "Disagree"}})
    survey = load_survey(path, demographics=["polaf"], questions=["q1"], unweighted=True,
                         population="adults in Germany (2004)")
    style = PromptStyle().for_survey(survey)
    assert persona_text({"polaf": "Republican"}, style) == \
        "Your party affiliation is Republican."

    class Plain:
        chat_template = None
    prompt = build_prompt(Plain(), survey.questions["q1"], {"polaf": "Republican"}, style=style)
    assert prompt.startswith("You are taking part in a public opinion survey of adults in "
                             "Germany (2004).")
    unset = PromptStyle().for_survey(load_survey(path, demographics=["polaf"],
                                                 questions=["q1"], unweighted=True))
    prompt = build_prompt(Plain(), survey.questions["q1"], {}, style=unset)
    assert prompt.startswith("You are taking part in a public opinion survey. Answer")
    assert "United States" not in prompt


def test_long_variable_label_is_flagged(tmp_path):
    path = write_survey(tmp_path, column_labels={"q1": "x" * 300})
    survey = load_survey(path, weight="wt", demographics=["sex"])
    assert len(survey.questions["q1"].text) == 256
    assert any("may be cut" in w and "q1" in w for w in notes(survey))


def test_stata_extended_missing_with_labels(tmp_path):
    path = tmp_path / "s.dta"
    df = pd.DataFrame({"sex": [1, 1, 2, 2, 2], "q": [1, 2, "a", "b", 1]}).astype(object)
    pyreadstat.write_dta(df, path, missing_user_values={"q": ["a", "b"]},
                         variable_value_labels={"sex": {1: "Male", 2: "Female"},
                                                "q": {1: "Yes", 2: "No", "a": "Don't know",
                                                      "b": "Refused"}})
    survey = load_survey(path, demographics=["sex"], questions=["q"])
    male, female = real_marginals(survey, "q", ["sex"], min_n_eff=0)
    assert male.shares.tolist() == [0.5, 0.5] and male.nonresponse == {}
    assert female.shares.tolist() == [1.0, 0.0]
    assert female.nonresponse == {"dk": 1 / 3, "refused": 1 / 3}
    row = pd.read_csv(pd.io.common.StringIO(codebook_csv(survey))).set_index("column").loc["q"]
    assert row["missing"] == ".a=Don't know|.b=Refused"


# ---------------------------------------------------------------- bad files

def test_truncated_file_is_refused(sav, tmp_path):
    cut = tmp_path / "cut.sav"
    cut.write_bytes(sav.read_bytes()[:700])
    with pytest.raises(DataError, match="cannot be read as an SPSS .sav file") as info:
        load_survey(cut)
    assert info.value.file == "cut.sav"


def test_stata_file_renamed_sav_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "s.dta"
    pyreadstat.write_dta(pd.DataFrame({"q": [1.0, 2.0]}), path)
    renamed = tmp_path / "s.sav"
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="looks like a Stata .dta file: rename it"):
        load_survey(renamed)


def test_file_with_no_rows(tmp_path):
    path = tmp_path / "empty.sav"
    pyreadstat.write_sav(pd.DataFrame({"q": pd.Series([], dtype=float)}), path)
    with pytest.raises(DataError, match="no rows"):
        load_survey(path)


def test_label_encoding_that_does_not_decode(tmp_path):
    path = tmp_path / "enc.sav"
    pyreadstat.write_sav(pd.DataFrame({"q": [1.0, 2.0]}), path,
                         variable_value_labels={"q": {1: "Très bien", 2: "Mal"}})
    path.write_bytes(path.read_bytes().replace("Très".encode(), b"Tr\xe8ss"))
    with pytest.raises(DataError, match="encoding"):
        load_survey(path)


def test_uploaded_bytes_need_their_file_name(sav):
    survey = load_survey(sav.read_bytes(), filename="phone2004.sav", weight="wt",
                         demographics=["sex"])
    assert survey.name == "phone2004" and survey.source == "phone2004.sav"
    assert total(survey, "q1").n == 8


def test_edited_codebook_reorders_options_with_their_codes(sav, tmp_path):
    """The dashboard's question editor: new wording, options reordered (each keeping its own
    code, so every share stays with its answer), ordinal switched off; renames refused."""
    from sim_core.survey.codebook import edited_codebook

    survey = load_survey(sav, weight="wt", demographics=["sex", "age"])
    edits = {"q1": {"question_text": "Do you agree with it?",
                    "options": ["Disagree", "Neutral", "Agree"], "ordinal": False}}
    book = tmp_path / "edited.csv"
    book.write_text(edited_codebook(survey, edits), encoding="utf-8")
    again = load_survey(sav, codebook=book, weight="wt")
    q1 = again.questions["q1"]
    assert q1.text == "Do you agree with it?" and q1.options == ("Disagree", "Neutral", "Agree")
    assert q1.ordinal_values is None
    female = real_marginals(again, "q1", ["sex"], min_n_eff=0)[1]
    assert female.shares.tolist() == pytest.approx([1 / 6, 1 / 2, 1 / 3], abs=1e-15)
    assert female.nonresponse == real_marginals(survey, "q1", ["sex"], min_n_eff=0)[1].nonresponse
    with pytest.raises(DataError, match="reordered, not renamed"):
        edited_codebook(survey, {"q1": {"question_text": "", "ordinal": True,
                                        "options": ["Disagree", "Neutral", "Agreed"]}})
