"""Issue 17, class 1: readers refuse bad input instead of returning plausible wrong numbers.

One test (or more) per defect found: mixed encodings, ragged rows, codebook codes, empty
labels, wave spellings, huge and zero weights, JSONL schema and nesting, q1 vs q1.1, and
refusals that list up to 20 bad rows.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from sim_core.base.errors import MAX_LISTED_ROWS, DataError
from sim_core.evaluation.baselines import classifier_fit
from sim_core.survey.marginal_readers import read_marginals_csv, read_subpop_jsonl
from sim_core.survey.readers import load_survey, read_respondents_csv
from sim_core.survey.slices import real_marginals, survey_rows


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------- one encoding per file

def test_utf8_file_with_one_latin1_byte_is_refused_naming_the_row(tmp_path):
    text = "sex,q1\nF,Café\nM,Thé\nF,Crème\n".encode()
    mixed = text.replace("Crème".encode(), "Crème".encode("latin-1"))   # row 4
    with pytest.raises(DataError, match="mixes encodings") as info:
        read_respondents_csv(write(tmp_path, "m.csv", mixed))
    assert info.value.row == 4 and info.value.rows == [4]
    assert "UTF-8" in str(info.value) and "0xe8" in str(info.value)


def test_pure_cp1252_file_is_still_read(tmp_path):
    path = write(tmp_path, "w.csv", "sex,q1\nF,Café\nM,Thé\nF,Café 5 €\n".encode("cp1252"))
    survey = read_respondents_csv(path, questions=["q1"], demographics=["sex"])
    assert survey.questions["q1"].options == ("Café", "Café 5 €", "Thé")


# ---------------------------------------------------------------- exact field counts

@pytest.mark.parametrize("row", ["F", "F,Yes,extra"])
def test_short_or_long_row_is_refused(tmp_path, row):
    path = write(tmp_path, "d.csv", f"sex,q1\nF,Yes\n{row}\nM,No\n")
    with pytest.raises(DataError, match="header has 2 fields") as info:
        read_respondents_csv(path)
    assert info.value.rows == [3]


def test_refusal_lists_up_to_20_bad_rows(tmp_path):
    body = "".join("F\n" if i % 2 else "F,Yes\n" for i in range(50))   # 25 short rows
    with pytest.raises(DataError) as info:
        read_respondents_csv(write(tmp_path, "d.csv", "sex,q1\n" + body))
    error = info.value
    assert error.rows == list(range(3, 52, 2)) and len(error.rows) == 25
    listed = str(error).split("rows ", 1)[1].split(":", 1)[0]
    assert listed.startswith("3, 5, 7") and listed.endswith("and 5 more")
    assert listed.count(",") == MAX_LISTED_ROWS - 1


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1\nF,Yes\n\nM\n")
    with pytest.raises(DataError) as info:
        read_respondents_csv(path)
    assert info.value.rows == [4]          # the spreadsheet row, blank line counted
    path = write(tmp_path, "w.csv", "sex,q1,w\n\nF,Yes,1\n\n\nM,No,-2\n")
    with pytest.raises(DataError) as info:
        read_respondents_csv(path, weight="w", questions=["q1"])
    assert info.value.rows == [6]
    data = write(tmp_path, "d2.csv", "sex,q1\nF,Yes\n\nM,Maybe\n")
    book = write(tmp_path, "b.csv", "column,question_text,options\n\nq1,Q,Yes|No\n")
    with pytest.raises(DataError, match="Maybe") as info:
        read_respondents_csv(data, codebook=book)
    assert info.value.rows == [4]
    bad_book = write(tmp_path, "b2.csv", "column,question_text,options\n\nq1,Q,Yes||No\n")
    with pytest.raises(DataError, match="empty") as info:
        read_respondents_csv(data, codebook=bad_book)
    assert info.value.rows == [3] and info.value.file == "b2.csv"
    marginals = write(tmp_path, "m.csv", "question_id,option,share\n\nq,A,0.5\nq,B,x\n")
    with pytest.raises(DataError) as info:
        read_marginals_csv(marginals)
    assert info.value.rows == [4]


# ---------------------------------------------------------------- header names

def test_q1_and_q1_dot_1_are_two_columns(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1,q1.1\nF,Yes,No\nM,No,No\n")
    survey = read_respondents_csv(path, questions=["q1", "q1.1"], demographics=["sex"])
    assert list(survey.questions) == ["q1", "q1.1"]
    assert real_marginals(survey, "q1.1")[0].shares.tolist() == [1.0]


def test_true_duplicate_header_is_refused(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1,q1\nF,Yes,No\n")
    with pytest.raises(DataError, match="columns 2 and 3") as info:
        read_respondents_csv(path)
    assert info.value.column == "q1" and info.value.row == 1


# ---------------------------------------------------------------- codebooks

@pytest.mark.parametrize("row, column, match", [
    ("q1,Q,A|B|C|D,,,1|1|2|3", "codes", "code 1 is given to two options"),
    ("q1,Q,A|B|C,,,1|1.0|2", "codes", "code 1 is given to two options"),
    ("q1,Q,A|B|C,,3,1|2|3", "missing", "code 3 is both an option and a missing code"),
    ("q1,Q,A|B|C,,2..9,1|2|3", "missing", "code 2 is both an option and a missing code"),
    ("q1,Q,A||C,,,", "options", "option label is empty"),
    ("q1,Q,A|B,,,1|", "codes", "code is empty"),
    ("q1,Q,A|A,,,", "options", "appears twice"),
])
def test_codebook_codes_unique_disjoint_and_labelled(tmp_path, row, column, match):
    data = write(tmp_path, "d.csv", "sex,q1\nF,1\nM,2\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,ordinal,missing,codes\n"
                 + row + "\n")
    with pytest.raises(DataError, match=match) as info:
        read_respondents_csv(data, codebook=book)
    assert info.value.file == "b.csv" and info.value.row == 2 and info.value.column == column


# ---------------------------------------------------------------- waves as numbers

def test_respondent_waves_compare_as_numbers(tmp_path):
    path = write(tmp_path, "d.csv", "year,sex,q1\n2020,F,Yes\n2020.0,M,No\n2022,F,No\n")
    survey = read_respondents_csv(path, wave="year", questions=["q1"], demographics=["sex"])
    assert survey.waves() == ["2020", "2022"]
    only_2020 = real_marginals(survey, "q1", wave="2020.0")[0]
    assert only_2020.n == 2 and only_2020.shares.tolist() == [0.5, 0.5]


def test_marginal_table_waves_compare_as_numbers(tmp_path):
    path = write(tmp_path, "m.csv", "question_id,option,share,wave\nq,A,0.25,2020\n"
                 "q,B,0.75,2020.0\nq,A,0.5,2022\nq,B,0.5,2022\n")
    survey = read_marginals_csv(path)
    assert survey.waves() == ["2020", "2022"]
    assert real_marginals(survey, "q", wave="2020")[0].shares.tolist() == [0.25, 0.75]
    assert real_marginals(survey, "q", wave=2020.0)[0].shares.tolist() == [0.25, 0.75]


# ---------------------------------------------------------------- weights

def test_weights_whose_sum_overflows_are_refused(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1,w\nF,Yes,1e308\nM,No,1e308\nF,No,1e308\n")
    with pytest.raises(DataError, match="sum overflows") as info:
        read_respondents_csv(path, weight="w", questions=["q1"])
    assert info.value.column == "w"


def test_one_huge_weight_gives_exact_finite_shares(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1,w\nF,Yes,1e308\nM,No,1\nF,No,1\n")
    survey = read_respondents_csv(path, weight="w", questions=["q1"], demographics=["sex"])
    total = real_marginals(survey, "q1", min_n_eff=0)[0]
    big = Fraction(10) ** 308
    assert np.all(np.isfinite(total.shares))
    assert total.shares.tolist() == [float(2 / (big + 2)), float(big / (big + 2))]  # No, Yes
    assert total.n_eff == pytest.approx(float((big + 2) ** 2 / (big ** 2 + 2)))
    female = real_marginals(survey, "q1", ["sex"], min_n_eff=0)[0]
    assert female.shares.tolist() == [float(1 / (big + 1)), float(big / (big + 1))]


@pytest.mark.parametrize("bad", ["inf", "nan", "-0.5", ""])
def test_non_finite_or_negative_weights_are_refused(tmp_path, bad):
    path = write(tmp_path, "d.csv", f"sex,q1,w\nF,Yes,1\nM,No,{bad}\nF,No,{bad}\n")
    with pytest.raises(DataError, match="finite non-negative") as info:
        read_respondents_csv(path, weight="w", questions=["q1"])
    assert info.value.rows == [3, 4] and info.value.column == "w"


def test_slice_with_all_weights_zero_is_flagged_never_unweighted(tmp_path):
    rows = "".join(f"{s},{a},{w}\n" for s, a, w in [("F", "Yes", 1), ("F", "No", 3),
                                                  ("M", "Yes", 0), ("M", "No", 0),
                                                  ("M", "No", 0)])
    survey = read_respondents_csv(write(tmp_path, "d.csv", "sex,q1,w\n" + rows), weight="w",
                                  questions=["q1"], demographics=["sex"])
    female, male = real_marginals(survey, "q1", ["sex"], min_n_eff=0)
    assert female.shares.tolist() == [0.75, 0.25] and female.usable
    assert not male.usable and np.isnan(male.shares).all()     # not 2/3 "No" unweighted
    assert male.n == 3 and male.n_eff == 0.0 and male.too_small and "every weight" in male.note
    assert male.ci_low is None
    assert [r.slice for r in survey_rows(survey, ["sex"])] == [{"sex": "F"}]
    fit = classifier_fit(survey, "q1", ["sex"], test_fraction=0.4)
    assert "sex=M" not in fit.dists


# ---------------------------------------------------------------- JSONL schema

GOOD = {"qkey": "q", "attribute": "SEX", "group": "Male", "question": "Agree?",
        "options": ["Yes", "No", "Refused"], "ordinal": [1.0, 2.0],
        "responses": [0.4, 0.6], "refusal_rate": 0.0}


def jsonl(tmp_path: Path, *lines: str) -> Path:
    return write(tmp_path, "s.jsonl", "\n".join(lines) + "\n")


@pytest.mark.parametrize("change, column", [
    ({"ordinal": 5}, "ordinal"),
    ({"options": "YN"}, "options"),
    ({"responses": [True, False]}, "responses"),
    ({"qkey": None}, "qkey"),
    ({"group": None}, "group"),
    ({"options": ["Yes", ["No"]]}, "options"),
    ({"question": ""}, "question"),
    ({"responses": [0.4, -0.6]}, "responses"),
    ({"qkey": "q" * 501}, "qkey"),
])
def test_jsonl_schema_refuses_wrong_types(tmp_path, change, column):
    path = jsonl(tmp_path, json.dumps(GOOD), json.dumps({**GOOD, "group": "Female", **change}))
    with pytest.raises(DataError) as info:
        read_subpop_jsonl(path)
    assert info.value.rows == [2] and info.value.column == column


def test_jsonl_missing_key_names_it(tmp_path):
    item = {k: v for k, v in GOOD.items() if k != "responses"}
    with pytest.raises(DataError, match="required") as info:
        read_subpop_jsonl(jsonl(tmp_path, json.dumps(item)))
    assert info.value.column == "responses"


def test_jsonl_deeply_nested_line_is_one_clear_error(tmp_path):
    deep = '{"qkey": ' + "[" * 200000 + "]" * 200000 + "}"
    with pytest.raises(DataError, match="nested too deeply") as info:
        read_subpop_jsonl(jsonl(tmp_path, json.dumps(GOOD), deep))
    assert info.value.rows == [2]


def test_jsonl_nan_constant_and_bad_lines_listed(tmp_path):
    lines = [json.dumps(GOOD)] + ['{"qkey": NaN}'] + ["not json"] * 3
    with pytest.raises(DataError, match="NaN is not a valid JSON number") as info:
        read_subpop_jsonl(jsonl(tmp_path, *lines))
    assert info.value.rows == [2, 3, 4, 5]


def test_jsonl_good_file_still_reads(tmp_path):
    survey = read_subpop_jsonl(jsonl(tmp_path, json.dumps(GOOD)))
    assert survey.questions["q"].options == ("Yes", "No")


def test_bytes_starting_with_brace_but_named_csv_are_csv(tmp_path):
    survey = load_survey(b"{x},q1\na,Yes\nb,No\n", filename="odd.csv", questions=["q1"],
                         demographics=["{x}"])
    assert survey.kind == "respondents" and list(survey.respondents.columns) == ["{x}", "q1"]


def test_decimal_commas_of_a_semicolon_export(tmp_path):
    """A European spreadsheet export: ';' between fields, ',' before decimals. Weights and
    shares are read as numbers (said in a warning); a column mixing 1,5 with text, or a
    comma file, is left alone."""
    from sim_core.survey.readers import load_survey
    from sim_core.survey.slices import real_marginals

    path = tmp_path / "de.csv"
    path.write_text("geschlecht;gewicht;q1\nFrau;1,5;Ja\nFrau;0,5;Nein\nMann;2;Ja\n",
                    encoding="utf-8")
    survey = load_survey(path, weight="gewicht", demographics=["geschlecht"])
    assert survey.respondents["gewicht"].tolist() == [1.5, 0.5, 2.0]
    assert any("decimal commas" in w and "gewicht" in w for w in survey.warnings)
    frau = real_marginals(survey, "q1", ["geschlecht"], min_n_eff=0)[0]
    assert frau.shares.tolist() == [0.75, 0.25]          # Ja 1.5 of 2.0 (options Ja, Nein)
    marginals = tmp_path / "m.csv"
    marginals.write_text("question_id;question_text;option;share\nq;Q?;Ja;0,6\nq;Q?;Nein;0,4\n",
                         encoding="utf-8")
    table = load_survey(marginals)
    assert real_marginals(table, "q", [], min_n_eff=0)[0].shares.tolist() == [0.6, 0.4]
    assert any("decimal commas" in w for w in table.warnings)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("sex;q1\nF;1,5\nM;viel\n", encoding="utf-8")
    assert load_survey(mixed, demographics=["sex"]).questions["q1"].options == ("1,5", "viel")
