"""Excel workbooks (.xlsx, .xlsm) read as the CSV they would export.

The one sheet that holds data becomes CSV text, every cell as text and every sheet row one
line (empty rows too), so the CSV readers' rules and their messages apply unchanged and row
numbers match the spreadsheet. A workbook with data on several sheets is refused: which sheet
is the survey is the user's call, never a guess. Formulas are read as the values Excel saved
with them (openpyxl's data_only).
"""

from __future__ import annotations

import csv
import datetime
import io
import zipfile
from pathlib import Path

from sim_core.base.errors import DataError
from sim_core.base.reading import load_bytes

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm")


def is_spreadsheet(filename: str) -> bool:
    """Whether a file name has a workbook extension."""
    return Path(filename).suffix.lower() in SPREADSHEET_SUFFIXES


def workbook_csv(data, filename: str) -> bytes:
    """The data sheet of a workbook as UTF-8 CSV bytes.

    Args:
        data: path or bytes of the workbook.
        filename: its name, for messages.
    Raises:
        DataError: not a readable workbook, no data, or data on more than one sheet.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    raw, _ = load_bytes(data)
    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as error:
        raise DataError(f"not a readable Excel workbook ({error}).", file=filename) from None
    try:
        sheets = [(sheet.title, rows) for sheet in book.worksheets
                  if (rows := _sheet_rows(sheet))]
    finally:
        book.close()
    if not sheets:
        raise DataError("the workbook holds no data.", file=filename)
    if len(sheets) > 1:
        names = ", ".join(f"'{title}'" for title, _ in sheets)
        raise DataError(f"the workbook has data on {len(sheets)} sheets ({names}); save the "
                        "sheet with the survey as its own file (CSV, or a workbook with one "
                        "sheet).", file=filename)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(sheets[0][1])
    return buffer.getvalue().encode("utf-8")


def _sheet_rows(sheet) -> list[list[str]]:
    """Every row of a sheet as text cells, trailing empty rows and cells dropped; an empty
    row inside the data stays as an empty line (a blank row, counted but skipped)."""
    rows = [[_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        return []
    width = max(len(_trimmed(row)) for row in rows)
    return [row[:width] + [""] * (width - len(row)) if any(row) else [] for row in rows]


def _trimmed(row: list[str]) -> list[str]:
    """A row without its trailing empty cells."""
    end = len(row)
    while end and not row[end - 1]:
        end -= 1
    return row[:end]


def _text(value) -> str:
    """A cell as the text a CSV export would hold (whole numbers without '.0')."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value).strip()
