"""Reading notes that concern the columns in use, and a table of all the others.

A survey file with 192 columns gives notes about most of them (nonresponse labels,
unlabelled codes, design variables, interviewer instructions). A command or page about one
question shows the survey-wide warnings (no weight chosen, demographics guessed), the notes
about the columns it uses (the question(s), the slice attributes, the weight, wave and
design columns) and one line counting the rest, which the codebook (notes column) and the
Data page's table (notes_table) list in full.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from sim_core.survey.schema import Survey

NOTES_TABLE_COLUMNS = ("column", "kind", "note")


def columns_in_use(survey: Survey, questions: Iterable[str] = (),
                   by: Iterable[str] = ()) -> list[str]:
    """The questions, slice attributes, weight, wave and design columns of a run."""
    design = survey.design
    extra = [survey.weight, survey.wave, *(() if design is None else (design.strata, design.psu))]
    return list(dict.fromkeys([*questions, *by, *(c for c in extra if c)]))


def notes_for(survey: Survey, columns: Iterable[str]) -> list[str]:
    """The texts of the notes about these columns, in reading order."""
    wanted = set(columns)
    return [n.text for n in survey.column_notes if n.column in wanted]


def other_notes(survey: Survey, columns: Iterable[str]) -> int:
    """How many notes concern other columns."""
    wanted = set(columns)
    return sum(n.column not in wanted for n in survey.column_notes)


def warning_lines(survey: Survey, columns: Iterable[str], where: str) -> list[str]:
    """Survey-wide warnings, the notes about the columns in use, and one line counting the
    notes about the other columns.

    Args:
        survey: the survey as read.
        columns: the columns in use (columns_in_use).
        where: where the other notes can be read, e.g. "see the codebook (`python -m
            sim_core codebook --data FILE`)".
    """
    columns = list(columns)
    lines = list(survey.warnings) + notes_for(survey, columns)
    others = other_notes(survey, columns)
    if others:
        lines.append(f"{others} note{'s' if others != 1 else ''} about other columns: {where}")
    return lines


def notes_table(survey: Survey) -> pd.DataFrame:
    """Every column note as a table: column, kind, note (the Data page's collapsed table)."""
    return pd.DataFrame([(n.column, n.kind, n.text) for n in survey.column_notes],
                        columns=list(NOTES_TABLE_COLUMNS))
