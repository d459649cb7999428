"""Errors that carry a message fit to show a user (no traceback needed)."""

from __future__ import annotations


class SimError(Exception):
    """Base class: the message is complete and readable on its own."""


MAX_LISTED_ROWS = 20     # a refusal lists this many bad rows, then counts the rest


class DataError(SimError):
    """Bad survey input; names the file, row(s) and column where known.

    Rows are 1-based data rows as a spreadsheet user counts them (header = row 1).
    `rows` lists every bad row found (the message shows the first MAX_LISTED_ROWS and
    counts the rest); `row` is the first of them.
    """

    def __init__(self, message: str, file: str | None = None, row: int | None = None,
                 column: str | None = None, rows: list[int] | None = None):
        rows = list(rows or ([] if row is None else [row]))
        row = rows[0] if rows else None
        self.detail, self.file, self.row, self.column = message, file, row, column
        self.rows = rows
        where = [part for part in (file, _rows_text(rows),
                                   f"column '{column}'" if column is not None else None) if part]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def _rows_text(rows: list[int]) -> str | None:
    """"row 3", "rows 3, 5, 9" or "rows 3, 5, ... (45 rows)" for the location part."""
    if not rows:
        return None
    if len(rows) == 1:
        return f"row {rows[0]}"
    listed = ", ".join(str(r) for r in rows[:MAX_LISTED_ROWS])
    more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
    return f"rows {listed}{more}"


class ModelError(SimError):
    """A model could not be found, loaded or used."""


class AdapterError(SimError):
    """An adapter is missing, broken, or does not fit the chosen base model."""


class Cancelled(SimError):
    """Long work stopped because the user asked it to."""
