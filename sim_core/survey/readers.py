"""Survey readers: respondent-level CSV (+ codebook), long marginals CSV, SubPOP JSONL,
and SPSS/Stata files (sim_core.survey.spss_stata), behind one load_survey().

Every reader validates fully before it returns, so a bad file raises one DataError naming
the file, row(s) and column, and nothing half-loads. Rows are counted as a spreadsheet user
counts them: header = row 1, first data row = row 2 (JSONL: line numbers).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import (
    MAX_FILE_BYTES,
    decimal_comma_notes,
    fingerprint,
    load_bytes,
    read_table,
    stem,
)
from sim_core.survey.codebook import read_codebook
from sim_core.survey.instructions import instruction_notes
from sim_core.survey.marginal_readers import read_marginals_csv, read_subpop_jsonl
from sim_core.survey.nonresponse import canonical
from sim_core.survey.respondents import (
    ReadOptions,
    assemble,
    make_survey,
    read_options,
    with_codebook_weight,
)
from sim_core.survey.roles import guess_columns, resolve_roles
from sim_core.survey.schema import ColumnSpec, Survey
from sim_core.survey.spreadsheets import is_spreadsheet, workbook_csv
from sim_core.survey.spss_stata import SURVEY_FILE_SUFFIXES, file_columns, read_survey_file

__all__ = ["MAX_FILE_BYTES", "read_respondents_csv", "read_marginals_csv",
           "read_subpop_jsonl", "read_survey_file", "load_survey", "guess_columns",
           "ReadOptions", "read_options", "columns_of", "is_survey_file"]


def load_survey(data, *, name: str | None = None, codebook=None, filename: str | None = None,
                **kw) -> Survey:
    """Read any supported survey file, choosing the reader by extension or content.

    One rule for files and uploads: the file name's extension decides (.sav/.zsav/.por/.dta:
    SPSS/Stata, .xlsx/.xlsm: the workbook's data sheet read as CSV, .jsonl/.json: SubPOP
    JSONL, anything else: CSV); only bytes without a name are
    sniffed (a leading `{` means JSONL). So a CSV whose header starts with `{` reads as a CSV
    everywhere.

    Args:
        data: path or uploaded bytes.
        name: display name (default: file stem).
        codebook: optional codebook CSV (respondent-level data and SPSS/Stata files).
        filename: the original file name when `data` is bytes (its extension picks the
            reader for .sav/.zsav/.por/.dta).
        **kw: ReadOptions fields (weight, wave, demographics, questions, keep_nonresponse,
            unweighted, population, strata, psu, design_effect).
    Returns:
        Survey.
    """
    is_bytes = isinstance(data, (bytes, bytearray, memoryview))
    named = filename or ("" if is_bytes else str(data))
    suffix = Path(named).suffix.lower()
    if suffix in SURVEY_FILE_SUFFIXES:
        return read_survey_file(data, name=name, codebook=codebook, filename=filename,
                                **kw)
    if is_spreadsheet(named):       # the data sheet, read as the CSV it would export
        data, name = workbook_csv(data, Path(named).name), name or Path(named).stem
        return _labelled_errors(load_survey, Path(named).name, data, name=name,
                                codebook=codebook, filename=f"{name}.csv", **kw)
    sniffed = not named and bytes(data[:64]).lstrip().startswith(b"{")
    if suffix in (".jsonl", ".json") or sniffed:
        _no_options("a SubPOP JSONL file", kw, codebook)
        return _with_population(read_subpop_jsonl(data, name=name), kw)
    table, _, _ = read_table(data)
    header = {c.lower() for c in table.columns}
    if "question_id" in header and header & {"share", "count"}:
        _no_options("a marginals table", kw, codebook)
        return _with_population(read_marginals_csv(data, name=name), kw)
    return read_respondents_csv(data, name=name, codebook=codebook, **kw)


def _labelled_errors(read, file: str, *args, **kwargs):
    """read(*args, **kwargs) with DataErrors naming `file` (bytes converted from it are
    otherwise an anonymous upload)."""
    try:
        return read(*args, **kwargs)
    except DataError as error:
        if error.file and error.file.startswith("uploaded"):
            raise DataError(error.detail, file=file, column=error.column,
                            rows=error.rows) from None
        raise


def _with_population(survey: Survey, kw: dict) -> Survey:
    """A marginal table's survey with the population the user gave."""
    survey.population = kw.get("population") or survey.population
    return survey


def _no_options(what: str, kw: dict, codebook) -> None:
    """Respondent-only options given for a marginal table are refused, not ignored."""
    given = [k for k, v in kw.items() if v not in (None, False, "", [])
             and k not in ("population",)]
    if given or codebook is not None:
        raise DataError(f"{what} holds marginals, not respondents: "
                        f"{', '.join(given or ['codebook'])} cannot apply to it.")


def read_respondents_csv(data: str | Path | bytes, *, name: str | None = None,
                         codebook: str | Path | bytes | None = None, **kw) -> Survey:
    """Read respondent-level data (one row per person) with an optional codebook.

    Args:
        data: CSV path or bytes (UTF-8/UTF-8-BOM/Latin-1; comma, semicolon or tab).
        name: display name (default: file stem).
        codebook: CSV with column, question_text, options (|-separated, in order) and
            optionally ordinal, missing, codes, role (see sim_core.survey.codebook).
        **kw: ReadOptions fields: weight (None = unweighted), wave, demographics and
            questions (default: codebook roles, else guessed: sim_core.survey.roles),
            keep_nonresponse, unweighted, population, strata, psu, design_effect.
    Returns:
        Survey of kind "respondents".
    """
    opts = read_options(**kw)
    table, file, raw = read_table(data)
    columns = list(table.columns)
    book, book_raw = {}, b""
    if codebook is not None:
        book = read_codebook(codebook, columns, file)
        book_raw = load_bytes(codebook, "codebook")[0]
        opts = with_codebook_weight(opts, book, file)
    guess = guess_columns(table)
    roles = resolve_roles(columns, book, guess, reserved=opts.reserved(),
                          demographics=opts.demographics, questions=opts.questions, file=file)
    specs = {c: book.get(c) or ColumnSpec(text=c, ordinal=True) for c in columns}
    roles.column_notes += instruction_notes(specs, roles.questions + roles.demographics)
    weights = table[opts.weight] if opts.weight else None
    parts = assemble(columns, lambda c: _canonical_column(table[c]), specs, roles, opts,
                     weights=None if weights is None else pd.to_numeric(weights, errors="coerce"),
                     raw_weights=weights, file=file, unlabelled="refuse",
                     rows=table.attrs.get("rows"))
    labels = {c: book[c].text for c in roles.demographics if c in book}
    parts.warnings += decimal_comma_notes(table)
    return make_survey(stem(data, name), parts, roles, opts,
                       source=file if codebook is None else f"{file} + codebook",
                       fingerprint=fingerprint(raw, book_raw), specs=specs, labels=labels,
                       candidates=guess["weights"])


def _canonical_column(values: pd.Series) -> pd.Series:
    """Cells compared by value ("1.0" == "1"); each distinct cell converted once."""
    return values.map({v: canonical(v) for v in values.unique()}).astype(str)


def is_survey_file(filename: str | None) -> bool:
    """True for an SPSS/Stata file name (.sav, .zsav, .por, .dta)."""
    return Path(filename or "").suffix.lower() in SURVEY_FILE_SUFFIXES


def columns_of(data, filename: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Columns of a respondent file and their variable labels ({} for CSV), cheaply:
    metadata only for SPSS/Stata (for the column-mapping screen)."""
    named = filename or ("" if isinstance(data, (bytes, bytearray)) else str(data))
    if is_survey_file(named):
        return file_columns(data, filename)
    if is_spreadsheet(named):
        data = workbook_csv(data, Path(named).name)
    return [str(c) for c in read_table(data)[0].columns], {}
