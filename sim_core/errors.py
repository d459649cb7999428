"""Errors that carry a message fit to show a user (no traceback needed)."""

from __future__ import annotations


class SimError(Exception):
    """Base class: the message is complete and readable on its own."""


class DataError(SimError):
    """Bad survey input; names the file, row and column where known.

    Rows are 1-based data rows as a spreadsheet user counts them (header = row 1).
    """

    def __init__(self, message: str, file: str | None = None, row: int | None = None,
                 column: str | None = None):
        self.detail, self.file, self.row, self.column = message, file, row, column
        where = [part for part in (
            file,
            f"row {row}" if row is not None else None,
            f"column '{column}'" if column is not None else None,
        ) if part]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ModelError(SimError):
    """A model could not be found, loaded or used."""


class AdapterError(SimError):
    """An adapter is missing, broken, or does not fit the chosen base model."""


class Cancelled(SimError):
    """Long work stopped because the user asked it to."""
