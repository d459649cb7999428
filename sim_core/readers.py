"""Survey readers: respondent-level CSV (+ codebook), long marginals CSV, SubPOP JSONL.

Every reader validates fully before it returns, so a bad file raises one DataError naming
the file, row and column, and nothing half-loads. Rows are counted as a spreadsheet user
counts them: header = row 1, first data row = row 2 (JSONL: line numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim_core.errors import DataError
from sim_core.fileio import (
    MAX_FILE_BYTES,
    MISSING_TOKENS,
    fingerprint,
    number,
    number_text,
    read_table,
    stem,
)
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
                      "country", "language", "citizen", "popul")


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





# ---------------------------------------------------------------- codebook

CODEBOOK_REQUIRED = ("column", "question_text", "options")
CODEBOOK_OPTIONAL = ("ordinal", "missing", "codes", "role")
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


@dataclass
class CodebookEntry:
    """One codebook row: how to read one column of the data."""

    text: str
    options: list[str]
    ordinal: bool
    missing: set[str]
    codes: list[str] | None
    role: str                  # "question" or "demographic"


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split("|")] if cell.strip() else []


def _lower_columns(table: pd.DataFrame, file: str, required, optional) -> pd.DataFrame:
    """Header names lower-cased and checked: required present, nothing unknown."""
    table = table.rename(columns={c: c.lower() for c in table.columns})
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; expected "
                        f"{', '.join(required)} and optionally {', '.join(optional)}.",
                        file=file, row=1, column=missing[0])
    unknown = [c for c in table.columns if c not in required + optional]
    if unknown:
        raise DataError(f"unknown column; expected {', '.join(required)} and optionally "
                        f"{', '.join(optional)}.", file=file, row=1, column=unknown[0])
    return table


def read_codebook(codebook, data_columns: list[str], data_file: str
                  ) -> dict[str, CodebookEntry]:
    """Parse and check a codebook CSV against the data's columns.

    Returns:
        column -> CodebookEntry, in codebook order.
    """
    table, file, _ = read_table(codebook, "codebook")
    table = _lower_columns(table, file, CODEBOOK_REQUIRED, CODEBOOK_OPTIONAL)
    entries: dict[str, CodebookEntry] = {}
    for i, rec in enumerate(table.to_dict("records")):
        row = i + 2
        column = rec["column"]
        if column not in data_columns:
            raise DataError(f"names column '{column}', which is not in {data_file}.",
                            file=file, row=row, column="column")
        if column in entries:
            raise DataError(f"column '{column}' is described twice.", file=file, row=row,
                            column="column")
        options = _split(rec["options"])
        if len(set(options)) != len(options):
            raise DataError("an option appears twice.", file=file, row=row, column="options")
        flag = rec.get("ordinal", "").lower()
        if flag not in _TRUE | _FALSE:
            raise DataError(f"'{rec['ordinal']}' is not true/false.", file=file, row=row,
                            column="ordinal")
        codes = _split(rec.get("codes", "")) or None
        if codes is not None and len(codes) != len(options):
            raise DataError(f"{len(codes)} codes for {len(options)} options.", file=file,
                            row=row, column="codes")
        role = rec.get("role", "").lower() or "question"
        if role not in ("question", "demographic"):
            raise DataError(f"role must be question or demographic, not '{role}'.",
                            file=file, row=row, column="role")
        entries[column] = CodebookEntry(rec["question_text"] or column, options,
                                        flag in _TRUE, set(_split(rec.get("missing", ""))),
                                        codes, role)
    return entries


# ---------------------------------------------------------------- respondent CSV

def _canon(text: str) -> str:
    """Numbers compared by value ("1.0" == "1"), other text as is."""
    value = number(text)
    return number_text(value) if value is not None else text


def _recode(values: pd.Series, mapping) -> pd.Series:
    """Apply a function to each distinct value once (columns repeat a few values a lot)."""
    return values.map({value: mapping(value) for value in values.unique()})


def _bad_value(values: pd.Series, ok: set[str], file: str, column: str, why: str):
    """Raise a DataError at the first value outside `ok`."""
    bad = ~_recode(values, lambda v: _canon(v) in ok)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise DataError(f"value '{values.iloc[i]}' {why}", file=file, row=i + 2, column=column)


def _coded_column(values: pd.Series, entry: CodebookEntry, file: str, column: str):
    """Map stored values to option labels with the codebook; missing codes -> <NA>."""
    missing = {_canon(m) for m in entry.missing} | set(MISSING_TOKENS)
    keys = entry.codes if entry.codes is not None else entry.options
    lookup = {_canon(k): label for k, label in zip(keys, entry.options)}
    _bad_value(values, set(lookup) | missing, file, column,
               "is neither an option nor a missing code in the codebook.")
    return _recode(values, lambda v: pd.NA if _canon(v) in missing else lookup[_canon(v)])


def _inferred(values: pd.Series, missing: set[str]):
    """Options from the data: numbers ascending (ordinal), else text sorted."""
    present = [v for v in values.unique() if v not in missing]
    numbers = [number(v) for v in present]
    if present and all(x is not None for x in numbers):
        ordered = sorted(set(numbers))
        labels = _recode(values, lambda v: pd.NA if v in missing else number_text(number(v)))
        return [number_text(v) for v in ordered], tuple(ordered), labels
    labels = _recode(values, lambda v: pd.NA if v in missing else v)
    return sorted(set(present)), None, labels


def _question(values, column, entry, file) -> tuple[Question, pd.Series]:
    """Question and its answer labels (<NA> for missing) for one answer column."""
    if entry is not None and entry.options:
        labels = _coded_column(values, entry, file, column)
        ordinal = tuple(float(i + 1) for i in range(len(entry.options))) if entry.ordinal else None
        options = entry.options
    else:
        missing = set(MISSING_TOKENS) | (entry.missing if entry else set())
        options, ordinal, labels = _inferred(values, missing)
        if entry is not None and not entry.ordinal:
            ordinal = None
    text = entry.text if entry else column
    return Question(column, text, tuple(options), ordinal), labels.astype("string")


def _demographic(values: pd.Series, column, entry, file) -> pd.Series:
    """A demographic column: codebook labels (ordered categories), numbers, or text."""
    if entry is not None and entry.options:
        labels = _coded_column(values, entry, file, column)
        return pd.Series(pd.Categorical(labels, categories=entry.options, ordered=True),
                         index=values.index)
    missing = set(MISSING_TOKENS) | (entry.missing if entry else set())
    kept = values.mask(values.isin(missing))
    numbers = pd.to_numeric(kept, errors="coerce")
    if kept.notna().any() and numbers.notna().sum() == kept.notna().sum():
        return numbers.astype(float)
    return kept.astype("string")


def _weights(values: pd.Series, file: str, column: str) -> pd.Series:
    """Numeric, non-negative, non-blank weights with a positive total."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | np.isinf(numbers)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        what = "blank" if not values.iloc[i] else f"'{values.iloc[i]}'"
        raise DataError(f"weight is {what}; weights must be non-negative numbers.",
                        file=file, row=i + 2, column=column)
    if numbers.sum() <= 0:
        raise DataError("all weights are zero.", file=file, column=column)
    return numbers.astype(float)


def _roles(table, book, weight, wave, demographics, questions, file):
    """Question and demographic columns: explicit lists, else codebook, else name guesses."""
    columns = list(table.columns)
    for role, names in (("weight", [weight]), ("wave", [wave]),
                        ("demographic", demographics or []), ("question", questions or [])):
        for column in names:
            if column is not None and column not in columns:
                raise DataError(f"the {role} column is not in the file; it has: "
                                + ", ".join(columns), file=file, row=1, column=column)
    guess = guess_columns(table)
    reserved = {weight, wave, guess["weight"], guess["wave"], *guess["ignored"]} - {None}
    if questions is None:
        if book:
            questions = [c for c, e in book.items() if e.role == "question"]
        else:
            questions = [c for c in guess["questions"] if c not in reserved]
    if demographics is None:
        if book:
            demographics = [c for c in columns if c not in reserved and c not in questions]
        else:
            demographics = [c for c in guess["demographics"] if c not in reserved]
    both = set(questions) & set(demographics)
    if both:
        raise DataError("a column cannot be both a question and a demographic.", file=file,
                        row=1, column=sorted(both)[0])
    for column in (weight, wave):
        if column is not None and column in set(questions) | set(demographics):
            raise DataError("the weight/wave column cannot also be a question or "
                            "demographic.", file=file, row=1, column=column)
    if not questions:
        raise DataError("no question columns found; pick them in the column mapping or "
                        "give a codebook.", file=file)
    return list(questions), list(demographics)


def read_respondents_csv(data: str | Path | bytes, *, name: str | None = None,
                         codebook: str | Path | bytes | None = None,
                         weight: str | None = None, wave: str | None = None,
                         demographics: list[str] | None = None,
                         questions: list[str] | None = None) -> Survey:
    """Read respondent-level data (one row per person) with an optional codebook.

    Args:
        data: CSV path or bytes (UTF-8/UTF-8-BOM/Latin-1; comma, semicolon or tab).
        name: display name (default: file stem).
        codebook: CSV with column, question_text, options (|-separated, in order) and
            optionally ordinal, missing (codes to drop), codes (stored code per option),
            role (question | demographic).
        weight: weight column (non-negative numbers, no blanks); None = unweighted.
        wave: wave/year column; None = a single wave.
        demographics, questions: column lists (default: codebook roles, else guessed
            from the column names with guess_columns).
    Returns:
        Survey of kind "respondents".
    """
    table, file, raw = read_table(data)
    book, book_raw = {}, b""
    if codebook is not None:
        book = read_codebook(codebook, list(table.columns), file)
        book_raw = codebook if isinstance(codebook, bytes) else Path(codebook).read_bytes()
    questions, demographics = _roles(table, book, weight, wave, demographics, questions, file)
    out, parsed, warnings = {}, {}, []
    for column in table.columns:
        values, entry = table[column], book.get(column)
        if column in questions:
            question, labels = _question(values, column, entry, file)
            if not question.options:
                warnings.append(f"question '{column}' has no answers and was left out.")
                continue
            parsed[column], out[column] = question, labels
        elif column in demographics:
            out[column] = _demographic(values, column, entry, file)
        elif column == weight:
            out[column] = _weights(values, file, column)
        elif column == wave:
            _bad_value(values, set(_recode(values, _canon)) - set(MISSING_TOKENS), file, column,
                       "is not a wave; every respondent needs one.")
            out[column] = _demographic(values, column, None, file)
    guess = guess_columns(table)
    if weight is None and guess["weight"]:
        warnings.append(f"column '{guess['weight']}' looks like a weight but no weight was "
                        "chosen: shares are unweighted.")
    if not parsed:
        raise DataError("none of the question columns has an answer.", file=file)
    return Survey(name=stem(data, name), kind=RESPONDENTS, questions=parsed,
                  demographics=demographics, respondents=pd.DataFrame(out), weight=weight,
                  wave=wave, source=file if codebook is None else f"{file} + codebook",
                  fingerprint=fingerprint(raw, book_raw), warnings=warnings)
