"""Survey readers: respondent-level CSV (+ codebook), long marginals CSV, SubPOP JSONL.

Every reader validates fully before it returns, so a bad file raises one DataError naming
the file, row and column, and nothing half-loads. Rows are counted as a spreadsheet user
counts them: header = row 1, first data row = row 2 (JSONL: line numbers).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from sim_core.errors import DataError
from sim_core.fileio import (MAX_FILE_BYTES, MISSING_TOKENS, fingerprint, number,
                             number_text, read_table, stem)
from sim_core.marginal_files import read_marginals_csv, read_subpop_jsonl
from sim_core.survey import RESPONDENTS, Question, Survey

__all__ = ["MAX_FILE_BYTES", "read_respondents_csv", "read_marginals_csv",
           "read_subpop_jsonl", "load_survey", "guess_columns"]

_WEIGHT_RE = re.compile(r"^(weight.*|.*_?weights?|wt.*|.*wgt.*|w|pweight|wtssall|wtssnrps)$")
_WAVE_NAMES = {"wave", "year", "round", "survey_year", "wave_id", "panel_wave"}
_ID_NAMES = {"id", "respid", "caseid", "respondent_id", "respondent", "case_id", "rid"}
_DEMOGRAPHIC_STEMS = ("age", "sex", "gender", "race", "ethnic", "hispanic", "income",
                      "educ", "degree", "region", "cregion", "state", "party", "pid",
                      "polparty", "ideolog", "polideology", "relig", "marital", "married",
                      "employ", "occup", "urban", "rural", "children", "kids", "household",
                      "country", "language", "citizen", "born")


# ---------------------------------------------------------------- column guessing

def guess_columns(df: pd.DataFrame) -> dict:
    """Guess the role of every column from its name (for the column-mapping screen).

    Returns:
        {"demographics": [...], "questions": [...], "weight": str | None,
         "wave": str | None, "ignored": [...]} (id columns are ignored).
    """
    weight = wave = None
    demographics, questions, ignored = [], [], []
    for column in df.columns:
        low = str(column).strip().lower()
        tokens = [t for t in re.split(r"[^a-z0-9]+", low) if t]
        if weight is None and _WEIGHT_RE.match(low):
            weight = column
        elif wave is None and low in _WAVE_NAMES:
            wave = column
        elif low in _ID_NAMES:
            ignored.append(column)
        elif any(t.startswith(_DEMOGRAPHIC_STEMS) for t in tokens or [low]):
            demographics.append(column)
        else:
            questions.append(column)
    return {"demographics": demographics, "questions": questions, "weight": weight,
            "wave": wave, "ignored": ignored}


# ---------------------------------------------------------------- dispatch

def load_survey(data, *, name: str | None = None, codebook=None, **kw) -> Survey:
    """Read any supported survey file, choosing the reader by extension or header.

    Args:
        data: path or uploaded bytes.
        name: display name (default: file stem).
        codebook: optional codebook CSV (respondent-level data only).
        **kw: passed to read_respondents_csv (weight, wave, demographics, questions).
    Returns:
        Survey.
    """
    is_bytes = isinstance(data, (bytes, bytearray, memoryview))
    suffix = "" if is_bytes else Path(data).suffix.lower()
    if suffix in (".jsonl", ".json") or (is_bytes and bytes(data[:64]).lstrip().startswith(b"{")):
        return read_subpop_jsonl(data, name=name)
    table, _, _ = read_table(data)
    header = {c.lower() for c in table.columns}
    if "question_id" in header and header & {"share", "count"}:
        return read_marginals_csv(data, name=name)
    return read_respondents_csv(data, name=name, codebook=codebook, **kw)




def read_respondents_csv(data, *, name=None, codebook=None, weight=None, wave=None,
                         demographics=None, questions=None) -> Survey:
    """Respondent-level CSV (work in progress)."""
    raise NotImplementedError("read_respondents_csv lands in the next commit")
