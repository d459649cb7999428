"""Excel workbooks read as the CSV they would export (sim_core.survey.spreadsheets)."""

from __future__ import annotations

import datetime
import io

import pytest
from openpyxl import Workbook

from sim_core.base.errors import DataError
from sim_core.survey.readers import columns_of, load_survey
from sim_core.survey.slices import real_marginals

ROWS = [["sex", "wt", "q1", "interviewed"],
        ["F", 1.5, "Agree", datetime.datetime(2024, 3, 1)],
        ["F", 0.5, "Disagree", datetime.datetime(2024, 3, 2)],
        [None, None, None, None],                    # a blank row inside the data
        ["M", 2, "Agree", datetime.datetime(2024, 3, 3)]]


def workbook(*sheets: list[list]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for i, rows in enumerate(sheets):
        sheet = book.create_sheet(f"Sheet{i + 1}")
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_workbook_reads_like_its_csv(tmp_path):
    path = tmp_path / "survey.xlsx"
    path.write_bytes(workbook(ROWS, []))                    # an empty second sheet is fine
    survey = load_survey(path, weight="wt", demographics=["sex"], questions=["q1"])
    assert survey.name == "survey" and list(survey.questions) == ["q1"]
    women = real_marginals(survey, "q1", ["sex"], min_n_eff=0)[0]
    assert women.slice == {"sex": "F"} and women.shares.tolist() == [0.75, 0.25]
    assert columns_of(path.read_bytes(), "survey.xlsx")[0] == ROWS[0]
    uploaded = load_survey(path.read_bytes(), filename="survey.xlsx", weight="wt",
                           demographics=["sex"], questions=["q1"])
    assert uploaded.fingerprint == survey.fingerprint


def test_row_numbers_are_the_spreadsheets(tmp_path):
    rows = [r[:] for r in ROWS]
    rows[4][1] = -1                                          # sheet row 5 (blank row 4)
    path = tmp_path / "bad.xlsx"
    path.write_bytes(workbook(rows))
    with pytest.raises(DataError) as info:
        load_survey(path, weight="wt", demographics=["sex"], questions=["q1"])
    assert info.value.file == "bad.xlsx" and info.value.rows == [5]


def test_ambiguous_or_broken_workbooks_are_refused(tmp_path):
    two = tmp_path / "two.xlsx"
    two.write_bytes(workbook(ROWS, [["a", "b"], [1, 2]]))
    with pytest.raises(DataError, match="data on 2 sheets .'Sheet1', 'Sheet2'."):
        load_survey(two)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("sex,q1\nF,Agree\n")
    with pytest.raises(DataError, match="not a readable Excel workbook"):
        load_survey(fake)
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(workbook([]))
    with pytest.raises(DataError, match="holds no data"):
        load_survey(empty)
