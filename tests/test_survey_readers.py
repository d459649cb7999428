"""Readers: encodings, delimiters, codebooks, marginal tables, the GSS file, validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim_core.base import reading
from sim_core.base.errors import DataError
from sim_core.survey.marginal_readers import read_marginals_csv, read_subpop_jsonl
from sim_core.survey.readers import load_survey, read_respondents_csv
from sim_core.survey.roles import guess_columns
from sim_core.survey.slices import real_marginals, survey_rows

ROWS = [("sex", "region", "q1", "wt"), ("Female", "Nord", "Café", "1"),
        ("Male", "Süd", "Tea", "2"), ("Female", "Süd", "Café", "1.5")]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def csv_text(rows, sep=",") -> str:
    return "\n".join(sep.join(row) for row in rows) + "\n"


def raises(fn, *args, row=None, column=None, match=None, **kwargs) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert info.value.row == row
    assert info.value.column == column
    return info.value


# ---------------------------------------------------------------- encodings, delimiters

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_encodings_and_delimiters_read_the_same(tmp_path, encoding, sep):
    path = write(tmp_path, "s.csv", csv_text(ROWS, sep), encoding)
    survey = read_respondents_csv(path, weight="wt", questions=["q1"],
                                  demographics=["sex", "region"])
    assert list(survey.respondents.columns) == ["sex", "region", "q1", "wt"]
    assert survey.questions["q1"].options == ("Café", "Tea")
    assert list(survey.respondents["region"]) == ["Nord", "Süd", "Süd"]
    assert survey.respondents["wt"].tolist() == [1.0, 2.0, 1.5]
    assert survey.name == "s"


def test_bytes_input_and_fingerprint(tmp_path):
    data = csv_text(ROWS).encode("utf-8")
    from_bytes = read_respondents_csv(data, weight="wt", name="upload-1")
    from_path = read_respondents_csv(write(tmp_path, "a.csv", csv_text(ROWS)), weight="wt")
    assert from_bytes.name == "upload-1"
    assert from_bytes.fingerprint == from_path.fingerprint and len(from_path.fingerprint) == 16
    other = read_respondents_csv(data.replace(b"Tea", b"Tee"), weight="wt")
    assert other.fingerprint != from_bytes.fingerprint


# ---------------------------------------------------------------- codebooks

def test_codebook_codes_missing_and_ordinal(tmp_path):
    data = write(tmp_path, "d.csv", "id,age,q1,q2\n1,25,1,a\n2,99,2,b\n3,40,8,a\n4,61,3,\n")
    book = write(tmp_path, "b.csv",
                 "column,question_text,options,ordinal,missing,codes\n"
                 "q1,How satisfied?,Low|Mid|High,true,8|9,1|2|3\n"
                 "age,Age,,,98|99,\n")
    survey = read_respondents_csv(data, codebook=book, questions=["q1", "q2"])
    q1 = survey.questions["q1"]
    assert q1.text == "How satisfied?" and q1.options == ("Low", "Mid", "High")
    assert q1.ordinal_values == (1.0, 2.0, 3.0) and q1.is_ordinal
    answers = survey.respondents["q1"]
    assert answers.iloc[:2].tolist() == ["Low", "Mid"] and pd.isna(answers.iloc[2])
    assert survey.respondents["age"].iloc[1] != survey.respondents["age"].iloc[1]  # 99 -> NaN
    q2 = survey.questions["q2"]
    assert q2.options == ("a", "b") and q2.ordinal_values is None
    assert survey.demographics == ["age"]            # id column ignored
    shares = real_marginals(survey, "q1", min_n_eff=0)[0]
    assert shares.n == 3 and np.allclose(shares.shares, [1 / 3, 1 / 3, 1 / 3])


def test_codebook_roles_and_defaults(tmp_path):
    data = write(tmp_path, "d.csv", "educ,x,q1\nHS,1,Yes\nBA,2,No\nHS,3,Yes\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,role\n"
                 "educ,Education,HS|BA,demographic\nq1,Question one,Yes|No,\n")
    survey = read_respondents_csv(data, codebook=book)
    assert list(survey.questions) == ["q1"]
    assert survey.demographics == ["educ"]   # named in the codebook; never "the rest"
    assert survey.groups("educ") == ["HS", "BA"]     # codebook order, not alphabetical
    assert survey.questions["q1"].ordinal_values is None


def test_without_codebook_numbers_are_sorted_and_ordinal(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,10\nM,2\nF,2.0\nM,\nF,NA\n")
    survey = read_respondents_csv(data)
    q1 = survey.questions["q1"]
    assert q1.options == ("2", "10") and q1.ordinal_values == (2.0, 10.0)
    assert survey.respondents["q1"].isna().sum() == 2


# ---------------------------------------------------------------- validation

def test_codebook_names_absent_column(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,Yes\n")
    book = write(tmp_path, "book.csv", "column,question_text,options\nq1,Q,Yes|No\nq9,Q9,A|B\n")
    error = raises(read_respondents_csv, data, codebook=book, row=3, column="column")
    assert error.file == "book.csv" and "q9" in str(error)


def test_answer_missing_from_codebook(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,Yes\nM,No\nF,Maybe\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,missing\nq1,Q,Yes|No,DK\n")
    error = raises(read_respondents_csv, data, codebook=book, row=4, column="q1")
    assert "Maybe" in str(error) and error.file == "d.csv"


@pytest.mark.parametrize("bad, why", [("-1", "'-1'"), ("", "blank"), ("abc", "'abc'")])
def test_bad_weights(tmp_path, bad, why):
    data = write(tmp_path, "d.csv", f"sex,q1,wt\nF,Yes,1\nM,No,2\nF,Yes,{bad}\n")
    error = raises(read_respondents_csv, data, weight="wt", row=4, column="wt")
    assert why in str(error)


def test_unknown_weight_column(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,Yes\n")
    raises(read_respondents_csv, data, weight="weight", row=1, column="weight")


def test_codebook_codes_length_mismatch(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,1\n")
    book = write(tmp_path, "b.csv", "column,question_text,options,codes\nq1,Q,Yes|No,1\n")
    raises(read_respondents_csv, data, codebook=book, row=2, column="codes")


def test_codebook_missing_columns(tmp_path):
    data = write(tmp_path, "d.csv", "sex,q1\nF,1\n")
    book = write(tmp_path, "b.csv", "column,question_text\nq1,Q\n")
    raises(read_respondents_csv, data, codebook=book, row=1, column="options")


def test_undecodable_bytes_name_the_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"sex,q1\nF,Yes\nM,N\x81o\n")     # 0x81: neither UTF-8 nor Latin-1/cp1252
    raises(read_respondents_csv, path, row=3, column=None, match="not valid UTF-8")


def test_binary_file_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("sex,q1\nF,Yes\n".encode("utf-16"))
    raises(read_respondents_csv, path, match="NUL bytes")


def test_empty_and_header_only(tmp_path):
    raises(read_respondents_csv, write(tmp_path, "e.csv", "  \n"), match="empty")
    raises(read_marginals_csv, write(tmp_path, "h.csv", "question_id,option,share\n"),
           match="no data rows")


def test_ragged_row(tmp_path):
    path = write(tmp_path, "d.csv", "sex,q1\nF,Yes\nM,No,extra\n")
    raises(read_respondents_csv, path, row=3, match="header has 2 fields but these rows have 3")


def test_size_checked_before_reading(tmp_path, monkeypatch):
    path = write(tmp_path, "big.csv", "sex,q1\n" + "F,Yes\n" * 100)
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 100)

    def no_read(self):
        raise AssertionError("read before the size check")
    monkeypatch.setattr(Path, "read_bytes", no_read)
    error = raises(read_respondents_csv, path, match="over the limit")
    assert error.file == "big.csv"
    raises(read_respondents_csv, b"sex,q1\n" + b"F,Yes\n" * 100, match="over the limit")


# ---------------------------------------------------------------- marginals CSV

MARGINALS = ("question_id,question_text,option,{value},attribute,group,n,ordinal_value\n"
             "q1,Do you agree?,Agree,{a},,,,1\nq1,Do you agree?,Disagree,{b},,,,2\n"
             "q1,Do you agree?,Agree,{c},sex,Female,{n},1\n"
             "q1,Do you agree?,Disagree,{d},sex,Female,{n},2\n")


def test_marginals_with_shares(tmp_path):
    path = write(tmp_path, "m.csv", MARGINALS.format(value="share", a="0.6", b="0.4", c="0.3",
                                                     d="0.3", n="80"))
    survey = read_marginals_csv(path)
    assert survey.kind == "marginals" and survey.demographics == ["sex"]
    assert survey.questions["q1"].options == ("Agree", "Disagree")
    assert survey.questions["q1"].is_ordinal
    total, female = real_marginals(survey, "q1", ["sex"], include_total=True)
    assert total.slice == {} and np.allclose(total.shares, [0.6, 0.4]) and total.n is None
    assert female.n == 80 and female.n_eff == 80.0 and np.allclose(female.shares, [0.5, 0.5])
    assert survey.warnings and "renormalised in 1" in survey.warnings[0]   # 0.3 + 0.3


def test_marginals_with_counts(tmp_path):
    path = write(tmp_path, "m.csv", MARGINALS.format(value="count", a="30", b="10", c="5",
                                                     d="15", n=""))
    survey = load_survey(path)
    assert survey.kind == "marginals" and not survey.warnings
    total, female = real_marginals(survey, "q1", ["sex"], include_total=True)
    assert np.allclose(total.shares, [0.75, 0.25]) and total.n == 40
    assert np.allclose(female.shares, [0.25, 0.75]) and female.n == 20
    assert female.too_small   # 20 < 30


def test_marginals_option_index_orders_options(tmp_path):
    path = write(tmp_path, "m.csv", "question_id,option,share,option_index\n"
                 "q,High,0.2,3\nq,Low,0.5,1\nq,Mid,0.3,2\n")
    survey = read_marginals_csv(path)
    assert survey.questions["q"].options == ("Low", "Mid", "High")
    assert np.allclose(real_marginals(survey, "q")[0].shares, [0.5, 0.3, 0.2])


@pytest.mark.parametrize("text, row, column, match", [
    ("question_id,option\nq,A\n", 1, "share", "share or count"),
    ("question_id,option,share,colour\nq,A,1,red\n", 1, "colour", "unknown column"),
    ("question_id,share\nq,1\n", 1, "option", "missing column"),
    ("question_id,option,count\nq,A,3\nq,B,-1\n", 3, "count", "non-negative"),
    ("question_id,option,share\nq,A,0\nq,B,0\n", 2, "share", "all zero"),
    ("question_id,option,share\nq,A,0.5\nq,B,0.5\nq,A,0.5\n", 4, "option", "duplicate of row 2"),
    ("question_id,option,share,attribute,group\nq,A,1,sex,\n", 2, "group", "go together"),
    ("question_id,option,share\nq,A,lots\n", 2, "share", "not a non-negative"),
    ("question_id,option,share\nq,,1\n", 2, "option", "blank"),
])
def test_marginals_validation(tmp_path, text, row, column, match):
    error = raises(read_marginals_csv, write(tmp_path, "m.csv", text), row=row, column=column,
                   match=match)
    assert error.file == "m.csv"


# ---------------------------------------------------------------- GSS SubPOP JSONL

@pytest.fixture(scope="module")
def gss(gss_path):
    return read_subpop_jsonl(gss_path)


def test_gss_shape(gss):
    assert len(gss.questions) == 133
    assert gss.demographics == ["CREGION", "EDUCATION", "SEX", "POLIDEOLOGY", "INCOME",
                                "POLPARTY", "RACE", "RELIG"]
    assert sum(len(gss.groups(a)) for a in gss.demographics) == 22
    rows = survey_rows(gss)
    assert len(rows) == 2926 == 133 * 22
    assert all(abs(r.dist.sum() - 1) < 1e-9 and len(r.dist) == r.question.k for r in rows)


def test_gss_quirks(gss, gss_path):
    assert all("Refused" not in q.options for q in gss.questions.values())
    assert gss.questions["nataid"].ordinal_values == (2.0, 3.0, 1.0)
    assert gss.questions["pres16"].ordinal_values is None and not gss.questions["pres16"].is_ordinal
    assert gss.questions["if16who"].ordinal_values is None
    sexeduc = gss.questions["sexeduc"].ordinal_values
    assert sexeduc[:2] == (1.0, 2.0) and math.isnan(sexeduc[2])
    with_nan = [q for q in gss.questions.values()
                if q.ordinal_values and any(math.isnan(v) for v in q.ordinal_values)]
    assert len(with_nan) == 12         # 14 with -1 in the file, minus the nominal pres16/if16who
    first = pd.read_json(gss_path, lines=True).iloc[0]
    row = real_marginals(gss, first["qkey"], [first["attribute"]])[0]
    assert row.slice == {first["attribute"]: first["group"]}
    assert np.allclose(row.shares, first["responses"])


def test_guess_columns():
    df = pd.DataFrame(columns=["id", "Age", "sex_r", "region", "WTSSALL", "year", "q1",
                               "trust_gov", "partyid", "religion"])
    guess = guess_columns(df)
    assert guess["weight"] == "WTSSALL" and guess["wave"] == "year"
    assert guess["demographics"] == ["Age", "sex_r", "region", "partyid", "religion"]
    assert guess["questions"] == ["q1", "trust_gov"] and guess["ignored"] == ["id"]


def test_load_survey_dispatch(gss_path, tmp_path):
    assert load_survey(gss_path).kind == "marginals"
    assert load_survey(gss_path.read_bytes()[:5000].rsplit(b"\n", 1)[0]).kind == "marginals"
    assert load_survey(write(tmp_path, "r.csv", csv_text(ROWS)), weight="wt").kind == "respondents"


def test_anes_demo_matches_statsmodels():
    from statsmodels.datasets import anes96

    from sim_core.survey.demo import DEMOS, load_demo
    raw = anes96.load_pandas().data
    survey = load_demo("anes96")
    assert set(DEMOS) == {"gss2022", "anes96"} and len(survey.respondents) == len(raw) == 944
    strong_dem = raw[raw["PID"] == 0]
    expected_dole = (strong_dem["vote"] == 1).mean()
    marginals = {m.label: m for m in real_marginals(survey, "vote", ["PID"])}
    assert marginals["PID=Strong Democrat"].n == len(strong_dem)
    assert marginals["PID=Strong Democrat"].shares[1] == pytest.approx(expected_dole)
    self_lr = real_marginals(survey, "selfLR")[0].shares
    assert np.allclose(self_lr, raw["selfLR"].value_counts(normalize=True).sort_index())


def test_ids_dates_and_many_valued_columns_are_not_offered_as_questions(tmp_path):
    rows = "".join(f"{1000 + i},2004-05-{i % 28 + 1:02d},{200 + 7 * i},{'FM'[i % 2]},"
                   f"{'Yes' if i % 3 else 'No'}\n" for i in range(60))
    path = write(tmp_path, "d.csv", "respid,interview,zip,sex,q1\n" + rows)
    guess = guess_columns(pd.read_csv(path, dtype=str))
    assert guess["why"] == {"respid": "id", "interview": "date", "zip": "id"}
    survey = read_respondents_csv(path)
    assert list(survey.questions) == ["q1"] and survey.demographics == ["sex"]


@pytest.mark.parametrize("name, label, expected", [
    ("weight", "", True), ("wt2", "", True), ("pspwght", "", True), ("dweight", "", True),
    ("a_indpxub_xw", "", True), ("w", "", True), ("wtssall", "", True),
    ("v2", "Design weight", True), ("income", "", False), ("width", "", False),
    ("q12", "How much weight do you give to the views of experts?", False),
])
def test_weight_candidates_by_name_and_label(name, label, expected):
    from sim_core.survey.weights import weight_candidates
    assert (weight_candidates([name], {name: label}) == [name]) is expected


@pytest.mark.parametrize("name, label, expected", [
    ("agea", "", True), ("sex_r", "", True), ("partyid", "", True), ("income4", "", True),
    ("v6", "Age of respondent", True), ("v5", "Highest level of education", True),
    ("q1", "Statement 1", False), ("agenda", "", False), ("statement", "", False),
    ("racism", "", False), ("q7", "How old do you think the president's age is?", False),
])
def test_demographic_names_and_short_labels(name, label, expected):
    from sim_core.survey.roles import looks_demographic
    assert looks_demographic(name, label) is expected


def test_a_named_demographic_is_not_also_guessed_as_a_question(tmp_path):
    """'geschlecht' is no known demographic name, so the guess offers it as a question; once
    the user names it a demographic, it is one (named > guessed), not a clash."""
    path = tmp_path / "de.csv"
    path.write_text("geschlecht,q1\nFrau,Ja\nMann,Nein\nFrau,Ja\n", encoding="utf-8")
    survey = load_survey(path, demographics=["geschlecht"])
    assert survey.demographics == ["geschlecht"] and list(survey.questions) == ["q1"]
    with pytest.raises(DataError, match="both a question and a demographic"):
        load_survey(path, demographics=["geschlecht"], questions=["geschlecht", "q1"])
