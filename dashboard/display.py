"""Drawing helpers: a core error as one message, tables with their score headings and a
fixed number of decimals, and charts whose failure costs one warning, not the page."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
import streamlit as st

from sim_core.base.metrics import METRICS
from sim_core.survey.notes import columns_in_use, other_notes, warning_lines

NOTES_WHERE = "see the table of notes on the Data page"


def show_error(error: BaseException) -> None:
    """Show a core error as one readable message (never a traceback)."""
    st.error(str(error))


def score_header(key: str) -> str:
    """Score column heading with its direction, e.g. 'KL divergence (lower is better)'."""
    return f"{METRICS[key].name} ({METRICS[key].direction} is better)"


def with_score_names(table: pd.DataFrame) -> pd.DataFrame:
    """A table whose score columns (sim_core.base.metrics keys) get their display headings."""
    return table.rename(columns={k: score_header(k) for k in METRICS if k in table.columns})


def show_table(table: pd.DataFrame, key: str, *, hide_index: bool = True,
               digits: int = 4) -> None:
    """st.dataframe with every float column shown to `digits` decimals (a score of 1e-15
    reads 0.0000, not 0.000000000000001); the values themselves stay exact (download,
    sorting)."""
    floats = {c: st.column_config.NumberColumn(str(c), format=f"%.{digits}f")
              for c in table.columns if pd.api.types.is_float_dtype(table[c])}
    st.dataframe(table, hide_index=hide_index, key=key, column_config=floats)


def show_chart(build: Callable[[], object], key: str) -> bool:
    """Build a plotly figure and draw it; a failure becomes one warning (the traceback goes
    to the server log), so the tables drawn after it stay. Returns whether it was drawn."""
    try:
        st.plotly_chart(build(), key=key)
    except Exception as error:   # any plotting bug: the page and its numbers must survive
        logging.getLogger(__name__).exception("chart %s failed", key)
        st.warning(f"The chart could not be drawn ({type(error).__name__}: {error}). "
                   "The numbers below are not affected.")
        return False
    return True


def show_survey_notes(survey, questions: list[str], by: list[str]) -> None:
    """The survey-wide warnings and the notes about the columns in use, one box each; the
    line counting the notes about other columns as a caption (sim_core.survey.notes)."""
    columns = columns_in_use(survey, questions, by)
    lines = warning_lines(survey, columns, NOTES_WHERE)
    counted = other_notes(survey, columns) > 0          # then the last line is the count
    for line in lines[:-1] if counted else lines:
        st.warning(line)
    if counted:
        st.caption(lines[-1])
