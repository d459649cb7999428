"""SPSS (.sav, .zsav, .por) and Stata (.dta) files through pyreadstat.

Metadata first (variable and value labels, declared missing values, measurement levels,
formats, multiple-response sets), then only the needed columns. Each column becomes a
ColumnSpec (options = value labels in code order; declared missing values, SPSS ranges and
Stata `.a`-`.z` never options) and goes through the same builder as the CSV reader
(sim_core.survey.respondents), so both formats follow one set of missing-value rules.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import checked_path, file_fingerprint, fingerprint, load_bytes, stem
from sim_core.survey.codebook import read_codebook
from sim_core.survey.instructions import instruction_notes
from sim_core.survey.labelled_numbers import labelled_number
from sim_core.survey.nonresponse import canonical, declared_reason
from sim_core.survey.respondents import (
    assemble,
    make_survey,
    read_options,
    with_codebook_weight,
)
from sim_core.survey.roles import (
    MAX_OPTIONS,
    WAVE_NAMES,
    design_variable,
    id_or_date_name,
    looks_demographic,
    resolve_roles,
)
from sim_core.survey.schema import ColumnNote, ColumnSpec, Survey
from sim_core.survey.weights import weight_candidates

SURVEY_FILE_SUFFIXES = (".sav", ".zsav", ".por", ".dta")
LABEL_LIMIT = 255                  # SPSS cuts variable labels here
_DATE_FORMAT = re.compile(r"^(%-?t|%d)|DATE|TIME|^(QYR|MOYR|WKYR|WKDAY|MONTH|DTIME)",
                          re.IGNORECASE)
_STATA_LETTERS = [f".{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
_FORMAT_NAMES = {".sav": "an SPSS .sav", ".zsav": "an SPSS .zsav", ".por": "an SPSS .por",
                 ".dta": "a Stata .dta"}


def _pyreadstat_reader(suffix: str):
    import pyreadstat

    return {".sav": pyreadstat.read_sav, ".zsav": pyreadstat.read_sav,
            ".por": pyreadstat.read_por, ".dta": pyreadstat.read_dta}[suffix]


def _sniff(raw: bytes) -> str | None:
    """The format the bytes look like, whatever the file is called."""
    if raw[:4] in (b"$FL2", b"$FL3"):
        return ".zsav" if raw[:4] == b"$FL3" else ".sav"
    if raw.startswith(b"<stata_dta>") or (len(raw) > 2 and raw[0] in range(0x69, 0x78)
                                          and raw[1] in (1, 2)):
        return ".dta"
    if b"SPSSPORT" in raw[:600]:
        return ".por"
    return None


@dataclass
class _Source:
    """Where pyreadstat reads from: a path (never copied into memory) or uploaded bytes."""

    path: Path | None
    raw: bytes | None
    file: str
    fingerprint: str

    def open(self):
        return str(self.path) if self.path is not None else io.BytesIO(self.raw)

    def head(self) -> bytes:
        if self.raw is not None:
            return self.raw[:1024]
        with open(self.path, "rb") as handle:
            return handle.read(1024)


def _source(data, filename: str | None) -> _Source:
    """The file to read, with its size checked first and its fingerprint."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw, file = load_bytes(data)
        return _Source(None, raw, filename or file, fingerprint(raw))
    path, file = checked_path(data)
    return _Source(path, None, filename or file, file_fingerprint(path))


def _read(source: _Source, suffix: str, **kw):
    """pyreadstat on the source; any failure is one DataError naming the format."""
    options = dict(kw)
    if suffix != ".por":
        options["user_missing"] = True      # keep declared missing codes, with their reason
    try:
        return _pyreadstat_reader(suffix)(source.open(), **options)
    except Exception as error:       # readstat's C errors come in several types
        looks = _sniff(source.head())
        hint = ""
        if looks and looks != suffix and not {looks, suffix} <= {".sav", ".zsav"}:
            hint = f" Its content looks like {_FORMAT_NAMES[looks]} file: rename it."
        elif looks is None:
            hint = " It does not start like any SPSS or Stata file."
        raise DataError(f"cannot be read as {_FORMAT_NAMES[suffix]} file ({error}); it may "
                        f"be truncated, damaged or of another format.{hint}",
                        file=source.file) from None


def _bound(value: float) -> float:
    """SPSS LOWEST/HIGHEST come as +-1.8e308: make them infinite."""
    return math.copysign(math.inf, value) if abs(value) >= 1e300 else float(value)


def _missing(meta, column: str, numeric: bool, labels: dict) -> tuple[dict, list]:
    """Declared missing values of a column: ({code: label}, [(lo, hi, label)])."""
    discrete, ranges = {}, []
    for item in (meta.missing_ranges or {}).get(column, []):
        lo, hi = item["lo"], item["hi"]
        if not numeric or lo == hi:
            code = canonical(lo, numeric)
            discrete[code] = labels.get(code, "")
            continue
        lo, hi = _bound(lo), _bound(hi)
        ranges.append((lo, hi, ""))
        discrete.update({c: lab for c, lab in labels.items()     # labelled codes in the range
                         if _is_number(c) and lo <= float(c) <= hi})
    for value in (meta.missing_user_values or {}).get(column, []):
        discrete[canonical(value, numeric)] = labels.get(canonical(value, numeric), "")
    return discrete, ranges


def spec_from_metadata(meta, column: str, stata: bool) -> ColumnSpec:
    """A column's ColumnSpec from the file's own metadata."""
    numeric = meta.readstat_variable_types.get(column) != "string"
    raw_labels = (meta.variable_value_labels or {}).get(column, {})
    labels = {}
    for code, label in raw_labels.items():
        if stata and numeric and isinstance(code, str):
            code = "." + code                       # Stata extended missing .a-.z
        labels[canonical(code, numeric)] = str(label)
    discrete, ranges = _missing(meta, column, numeric, labels)
    if stata and numeric:
        discrete.update({letter: labels.get(letter, "") for letter in _STATA_LETTERS})
    codes = sorted((c for c in labels if c not in discrete),
                   key=lambda c: (0, float(c), "") if numeric and _is_number(c) else (1, 0, c))
    measure = (meta.variable_measure or {}).get(column, "unknown")
    ordinal = measure == "ordinal" if codes else measure != "nominal"
    text = (meta.column_names_to_labels or {}).get(column) or column
    return ColumnSpec(str(text), [labels[c] for c in codes], codes if codes else None, ordinal,
                      discrete, ranges, "question", numeric)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _merge(meta_spec: ColumnSpec, book_spec: ColumnSpec) -> ColumnSpec:
    """A codebook row over the file's metadata: the codebook decides wording, options,
    codes, ordinal and role; the file's declared missing values stay missing unless the
    codebook makes them options."""
    keys = book_spec.codes if book_spec.codes is not None else book_spec.options
    options = {canonical(k, meta_spec.numeric) for k in keys}
    missing = {k: v for k, v in meta_spec.missing.items() if k not in options}
    missing.update({canonical(k, meta_spec.numeric): v for k, v in book_spec.missing.items()})
    numbers = [float(k) for k in options if _is_number(k)]
    ranges = [r for r in meta_spec.missing_ranges if not any(r[0] <= x <= r[1] for x in numbers)]
    return ColumnSpec(book_spec.text, book_spec.options, book_spec.codes, book_spec.ordinal,
                      missing, ranges + book_spec.missing_ranges, book_spec.role,
                      meta_spec.numeric)


# ---------------------------------------------------------------- roles from metadata

def _mr_items(meta, specs: dict[str, ColumnSpec], labels: dict
              ) -> tuple[dict, list[ColumnNote]]:
    """Multiple-response sets: yes/no sets become one yes/no question per item.

    Returns:
        (item column -> counted value (canonical), notes about category sets' items).
    """
    items, notes = {}, []
    for name, mr in (getattr(meta, "mr_sets", None) or {}).items():
        members = [v for v in mr.get("variable_list", []) if v in specs]
        if mr.get("type") == "D" and mr.get("counted_value") is not None:
            set_label = mr.get("label") or name
            for column in members:
                spec = specs[column]
                counted = canonical(mr["counted_value"], spec.numeric)
                items[column] = counted
                item = labels.get(column) or column
                specs[column] = ColumnSpec(f"{set_label}: {item}", ["Yes", "No"], ["1", "0"],
                                           False, spec.missing, spec.missing_ranges, "question",
                                           True)
        else:
            notes += [ColumnNote(c, "multiple response", f"{c}: an item of the multiple-"
                                 f"response category set '{name}' ({', '.join(members)}); "
                                 "read as a separate question, not as one multiple-choice "
                                 "question.") for c in members]
    return items, notes


def guess_from_metadata(meta, specs: dict[str, ColumnSpec], labels: dict[str, str],
                        mr_items: dict) -> dict:
    """Propose roles from metadata alone (no data read): the shape of roles.guess_columns."""
    columns = list(meta.column_names)
    formats = meta.original_variable_types or {}
    candidates = weight_candidates(columns, labels)
    wave = next((c for c in columns if c.strip().lower() in WAVE_NAMES), None)
    out = {"demographics": [], "questions": [], "weight": candidates[0] if candidates else None,
           "weights": candidates, "wave": wave, "ignored": [], "why": {}}
    for column in columns:
        spec, why = specs[column], None
        if column in candidates or column == wave:
            why = "weight" if column in candidates else "wave"
        elif _DATE_FORMAT.search(formats.get(column) or ""):
            why = "date"
        elif design_variable(column, labels.get(column, ""), spec.options):
            why = "design"
        elif looks_demographic(column, labels.get(column, "")):
            out["demographics"].append(column)
            continue
        elif id_or_date_name(column):
            why = id_or_date_name(column)
        elif column in mr_items or (spec.options and len(spec.options) <= MAX_OPTIONS):
            out["questions"].append(column)
            continue
        else:
            why = "many values" if spec.options else (
                "text" if not spec.numeric else "no value labels")
        out["why"][column] = why
        if why not in ("weight", "wave"):
            out["ignored"].append(column)
    return out


def _column_values(df: pd.DataFrame, column: str, spec: ColumnSpec, stata: bool,
                   counted: str | None) -> pd.Series:
    """Canonical text of one column (Stata letters as ".a"; MR items as "1"/"0")."""
    values = df[column]
    if stata and spec.numeric and values.dtype == object:
        values = values.map(lambda v: "." + v if isinstance(v, str) else v)
    mapping = {v: canonical(v, spec.numeric) for v in pd.unique(values)}
    text = values.map(mapping).astype(str)
    if counted is not None:
        keep = {v: v if declared_reason(v, spec) else ("1" if v == counted else "0")
                for v in text.unique()}
        text = text.map(keep)
    return text.reset_index(drop=True)


def _weights(df: pd.DataFrame, column: str | None):
    if column is None:
        return None, None
    raw = df[column].reset_index(drop=True)
    numbers = pd.to_numeric(raw.map(lambda v: np.nan if isinstance(v, str) else v),
                            errors="coerce")
    return numbers, raw


# ---------------------------------------------------------------- reader

def _suffix(data, filename: str | None) -> str:
    name = filename or ("" if isinstance(data, (bytes, bytearray, memoryview)) else str(data))
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SURVEY_FILE_SUFFIXES:
        raise DataError("an SPSS/Stata file needs its extension (.sav, .zsav, .por or .dta) "
                        "to be read.", file=name or None)
    return suffix


def _specs(meta, suffix: str, codebook, file: str, notes: list[ColumnNote]):
    """Column specs from metadata, overridden by a codebook; labels; MR items; the book."""
    columns = list(meta.column_names)
    stata = suffix == ".dta"
    specs = {c: spec_from_metadata(meta, c, stata) for c in columns}
    labels = {c: str(t) for c, t in (meta.column_names_to_labels or {}).items() if t}
    notes += [ColumnNote(c, "label", f"{c}: the variable label is {LABEL_LIMIT}+ characters "
                         "long and may be cut; check the wording in the codebook.")
              for c, t in labels.items() if len(t) >= LABEL_LIMIT]
    mr_items, mr_notes = _mr_items(meta, specs, labels)
    notes += mr_notes
    book = read_codebook(codebook, columns, file) if codebook is not None else {}
    for column, entry in book.items():
        specs[column] = _merge(specs[column], entry)
        labels[column] = entry.text
    return specs, labels, mr_items, book


def read_survey_file(data, *, name: str | None = None, codebook=None,
                     filename: str | None = None, **kw) -> Survey:
    """Read an SPSS (.sav, .zsav, .por) or Stata (.dta) file as respondent data.

    Args:
        data: path or bytes (then `filename` gives the extension).
        name: display name (default: file stem).
        codebook: optional codebook CSV overriding wording, options, ordinal and roles
            (export one with sim_core.survey.codebook.codebook_csv and edit it).
        filename: original file name for bytes.
        **kw: ReadOptions fields (weight, wave, demographics, questions, keep_nonresponse,
            unweighted, population, strata, psu, design_effect).
    Returns:
        Survey of kind "respondents".
    """
    opts = read_options(**kw)
    suffix = _suffix(data, filename)
    source = _source(data, filename)
    file = source.file
    _, meta = _read(source, suffix, metadataonly=True)
    if not meta.number_rows and suffix != ".por":
        raise DataError("the file has no rows.", file=file)
    notes: list[ColumnNote] = []
    specs, labels, mr_items, book = _specs(meta, suffix, codebook, file, notes)
    opts = with_codebook_weight(opts, book, file)
    notes += _numbers(source, suffix, specs, [c for c in specs if c not in book
                                              and c not in mr_items])
    guess = guess_from_metadata(meta, specs, labels, mr_items)
    columns = list(meta.column_names)
    roles = resolve_roles(columns, book, guess, reserved=opts.reserved(),
                          demographics=opts.demographics, questions=opts.questions, file=file)
    roles.column_notes = (notes + roles.column_notes
                          + _nominal_notes(suffix, specs, roles.questions, book)
                          + instruction_notes(specs, roles.questions + roles.demographics))
    used = [c for c in columns if c in set(roles.questions) | set(roles.demographics)
            | {c for c in opts.reserved() if c}]
    df, _ = _read(source, suffix, usecols=used, disable_datetime_conversion=True)
    if df.empty:
        raise DataError("the file has no rows.", file=file)
    stata = suffix == ".dta"
    weights, raw_weights = _weights(df, opts.weight)
    parts = assemble(used, lambda c: _column_values(df, c, specs[c], stata, mr_items.get(c)),
                     specs, roles, opts, weights=weights, raw_weights=raw_weights, file=file,
                     unlabelled="warn", rows=list(range(1, len(df) + 1)))   # case numbers
    book_raw = load_bytes(codebook, "codebook")[0] if codebook is not None else b""
    display = {c: labels[c] for c in roles.demographics if c in labels}
    return make_survey(stem(file if filename else data, name), parts, roles, opts,
                       source=file if codebook is None else f"{file} + codebook",
                       fingerprint=fingerprint(source.fingerprint.encode(), book_raw)
                       if book_raw else source.fingerprint, specs=specs, labels=display,
                       candidates=guess["weights"])


def _nominal_notes(suffix: str, specs, questions: list[str], book) -> list[ColumnNote]:
    """Stata and .por files carry no measurement level: say that labelled questions are
    read as nominal unless the codebook says otherwise."""
    if suffix not in (".dta", ".por"):
        return []
    return [ColumnNote(q, "nominal", f"{q}: read as nominal: {suffix} files carry no "
                       "measurement level; if its options are ordered, mark it ordinal "
                       "(ordinal=true) in the codebook.")
            for q in questions if specs[q].options and q not in book]


def _numbers(source: _Source, suffix: str, specs: dict[str, ColumnSpec],
             columns: list[str]) -> list[ColumnNote]:
    """Numeric columns with a few value labels read as numbers (sim_core.survey.
    labelled_numbers): their specs replaced in `specs`; one note each."""
    candidates = [c for c in columns if specs[c].numeric and specs[c].codes]
    if not candidates:
        return []
    df, _ = _read(source, suffix, usecols=candidates, disable_datetime_conversion=True)
    notes = []
    for column in candidates:
        values = _column_values(df, column, specs[column], suffix == ".dta", None)
        found = labelled_number(column, specs[column], values)
        if found is not None:
            specs[column] = found.spec
            notes.append(found.note)
    return notes


def file_columns(data, filename: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Columns and variable labels of an SPSS/Stata file (metadata only)."""
    suffix = _suffix(data, filename)
    _, meta = _read(_source(data, filename), suffix, metadataonly=True)
    labels = {c: str(t) for c, t in (meta.column_names_to_labels or {}).items() if t}
    return list(meta.column_names), labels
