"""Readers for marginal tables: the long marginals CSV and the SubPOP JSONL (GSS 2022)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from jsonschema import Draft202012Validator

from sim_core.base.errors import DataError
from sim_core.base.reading import (
    SHARE_TOLERANCE,
    decimal_comma_notes,
    decode,
    fingerprint,
    load_bytes,
    number,
    read_table,
    stem,
)
from sim_core.survey.nonresponse import canonical
from sim_core.survey.schema import MARGINAL_COLUMNS, MARGINALS, Question, Survey

# Vote choice between candidates has no order, although the SubPOP file codes Clinton 1 and
# Trump 2 (its README lists both questions as nominal).
SUBPOP_NOMINAL = frozenset({"pres16", "if16who"})


# ---------------------------------------------------------------- SubPOP JSONL

_SUBPOP_KEYS = ("qkey", "attribute", "group", "question", "options", "ordinal", "responses")
_TEXT = {"type": "string", "minLength": 1, "maxLength": 500}
_MAX_OPTIONS = 27           # 26 letters, plus the trailing "Refused" the file carries
SUBPOP_SCHEMA = {
    "type": "object",
    "required": list(_SUBPOP_KEYS),
    "properties": {
        "qkey": _TEXT, "attribute": _TEXT, "group": _TEXT,
        "question": {"type": "string", "minLength": 1, "maxLength": 20000},
        "options": {"type": "array", "minItems": 1, "maxItems": _MAX_OPTIONS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 1000}},
        "ordinal": {"anyOf": [{"type": "null"},
                              {"type": "array", "maxItems": _MAX_OPTIONS,
                               "items": {"type": "number"}}]},
        "responses": {"type": "array", "minItems": 1, "maxItems": _MAX_OPTIONS,
                      "items": {"type": "number", "minimum": 0}},
        "refusal_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
}


def _parse_lines(text: str, file: str) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line, each checked against SUBPOP_SCHEMA.

    Every bad line is collected (the refusal lists up to 20); JSON nested too deeply to
    parse is a bad line like any other, never a RecursionError.
    """
    validator = Draft202012Validator(SUBPOP_SCHEMA)
    items, bad, first = [], [], None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_constant=_no_constant)
            problem = None if isinstance(item, dict) else "each line must be a JSON object"
        except json.JSONDecodeError as error:
            problem = f"not valid JSON ({error.msg})"
        except ValueError as error:
            problem = str(error)
        except RecursionError:
            problem = "JSON nested too deeply"
        if problem is None:
            error = next(iter(sorted(validator.iter_errors(item), key=lambda e: e.path)), None)
            if error is not None:
                where = ".".join(str(p) for p in error.absolute_path) or "line"
                problem = f"`{where}`: {_short(error.message)}"
        if problem is not None:
            bad.append(line_no)
            first = first or (problem, _column(problem))
            continue
        items.append((line_no, item))
    if bad:
        raise DataError(f"{first[0]} (expected per line: " + ", ".join(_SUBPOP_KEYS)
                        + ", optionally refusal_rate).", file=file, rows=bad, column=first[1])
    return items


def _no_constant(name: str):
    """NaN and Infinity are not JSON (Python's json accepts them by default)."""
    raise ValueError(f"{name} is not a valid JSON number")


def _short(message: str) -> str:
    """A schema message without a huge echoed value."""
    return message if len(message) <= 160 else message[:157] + "..."


def _column(problem: str) -> str | None:
    """The JSON key a schema problem is about (for the DataError column)."""
    if problem.startswith("`"):
        key = problem[1:].split("`", 1)[0].split(".")[0]
        if key in SUBPOP_SCHEMA["properties"]:
            return key
    for key in _SUBPOP_KEYS:
        if f"'{key}' is a required property" in problem:
            return key
    return None


def read_subpop_jsonl(data, *, name: str | None = None) -> Survey:
    """Read the SubPOP JSONL shape (GSS 2022 subgroup marginals) as a marginal survey.

    Every line is checked against SUBPOP_SCHEMA (types, lengths; nothing nested) before
    anything is used. The trailing "Refused" option (not in `responses`) is dropped;
    ordinal value -1 marks a non-substantive option (nan); all-tied ordinal values make the
    question nominal.

    Args:
        data: path or bytes.
        name: display name (default: file stem).
    Returns:
        Survey of kind "marginals".
    """
    raw, file = load_bytes(data)
    text = decode(raw, file)
    questions: dict[str, Question] = {}
    records, warnings, seen = [], [], set()
    renormalised = 0
    for line_no, item in _parse_lines(text, file):
        question = _subpop_question(item, file, line_no)
        qid = question.id
        if qid in questions and questions[qid].options != question.options:
            raise DataError(f"options differ from the first row of question {qid}.",
                            file=file, row=line_no, column="options")
        questions.setdefault(qid, question)
        key = (qid, item["attribute"], item["group"])
        if key in seen:
            raise DataError(f"duplicate row for {qid} / {key[1]}={key[2]}.", file=file,
                            row=line_no)
        seen.add(key)
        shares, fixed = _normalise(item["responses"], file, line_no, "responses")
        renormalised += fixed
        for option, share in zip(question.options, shares):
            records.append((qid, key[1], key[2], "", option, share, np.nan))
    if not records:
        raise DataError("the file has no rows.", file=file)
    if renormalised:
        warnings.append(f"shares renormalised in {renormalised} rows (sum off by > "
                        f"{SHARE_TOLERANCE}).")
    table = pd.DataFrame.from_records(records, columns=list(MARGINAL_COLUMNS))
    return Survey(name=stem(data, name, "gss"), kind=MARGINALS, questions=questions,
                  demographics=list(dict.fromkeys(table["attribute"])), marginals=table,
                  source=file, fingerprint=fingerprint(raw), warnings=warnings)


def _subpop_question(item: dict, file: str, row: int) -> Question:
    """Question of one SubPOP line, after dropping "Refused" and fixing ordinal codes."""
    options = list(item["options"])
    responses = item["responses"]
    if len(set(options)) != len(options):
        raise DataError("an option appears twice.", file=file, row=row, column="options")
    if len(options) == len(responses) + 1 and options[-1].strip().lower() == "refused":
        options = options[:-1]
    if len(options) != len(responses):
        raise DataError(f"{len(options)} options but {len(responses)} responses.",
                        file=file, row=row, column="responses")
    ordinal = item["ordinal"]
    values = None
    if ordinal is not None:
        if len(ordinal) != len(options):
            raise DataError(f"{len(ordinal)} ordinal values for {len(options)} options.",
                            file=file, row=row, column="ordinal")
        values = tuple(math.nan if float(v) == -1 else float(v) for v in ordinal)
        if not all(math.isfinite(v) for v in values if not math.isnan(v)):
            raise DataError("ordinal values must be finite numbers.", file=file, row=row,
                            column="ordinal")
        if len({v for v in values if not math.isnan(v)}) < 2 or item["qkey"] in SUBPOP_NOMINAL:
            values = None                       # all tied, or candidate choice: nominal
    return Question(id=item["qkey"], text=item["question"], options=tuple(options),
                    ordinal_values=values)


def _normalise(values, file: str, row: int, column: str) -> tuple[np.ndarray, bool]:
    """Shares summing to 1: renormalised (flag True) when off by more than the tolerance."""
    try:
        shares = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError("shares must be numbers.", file=file, row=row, column=column) from None
    if shares.ndim != 1 or not np.all(np.isfinite(shares)):
        raise DataError("shares must be finite numbers.", file=file, row=row, column=column)
    if np.any(shares < 0):
        raise DataError("shares must not be negative.", file=file, row=row, column=column)
    total = shares.sum()
    if total <= 0:
        raise DataError("shares are all zero.", file=file, row=row, column=column)
    return shares / total, bool(abs(total - 1) > SHARE_TOLERANCE)





# ---------------------------------------------------------------- marginals CSV

MARGINAL_REQUIRED = ("question_id", "option")
MARGINAL_OPTIONAL = ("question_text", "share", "count", "option_index", "ordinal_value",
                     "attribute", "group", "n", "wave")


def read_marginals_csv(data, *, name: str | None = None) -> Survey:
    """Read a long marginals table: one row per (question, slice, wave, option).

    Columns: question_id, option, and share or count; optionally question_text,
    option_index, ordinal_value, attribute, group, n, wave. Rows with blank
    attribute/group are the whole population. Shares off 1 by more than 0.01 are
    renormalised with a warning; counts become shares (n = their total unless given).

    Args:
        data: path or bytes.
        name: display name (default: file stem).
    Returns:
        Survey of kind "marginals".
    """
    table, file, raw = read_table(data)
    rows = table.attrs["rows"]
    table = table.rename(columns={c: c.lower() for c in table.columns})
    _check_columns(table, file)
    for column in MARGINAL_OPTIONAL:
        if column not in table.columns:
            table[column] = ""
    table["_row"] = rows                     # spreadsheet rows (blank lines counted)
    value_col = "share" if (table["share"] != "").any() or not (table["count"] != "").any() \
        else "count"
    _check_cells(table, file, value_col)
    questions = _marginal_questions(table, file)
    records, renormalised = [], 0
    keys = ["question_id", "attribute", "group", "wave"]
    for (qid, attribute, group, wave), rows in table.groupby(keys, sort=False):
        question = questions[qid]
        values = rows.set_index("option")["_value"].reindex(question.options).fillna(0.0)
        first = int(rows["_row"].iloc[0])
        shares, fixed = _normalise(values.to_numpy(), file, first, value_col)
        renormalised += fixed and value_col == "share"
        n_values = rows["_n"].dropna()
        n = float(n_values.iloc[0]) if len(n_values) else (
            float(values.sum()) if value_col == "count" else np.nan)
        for option, share in zip(question.options, shares):
            records.append((qid, attribute, group, wave, option, share, n))
    warnings = decimal_comma_notes(table)
    if renormalised:
        warnings.append(f"shares renormalised in {renormalised} slices (sum off 1 by more "
                        f"than {SHARE_TOLERANCE}).")
    marginals = pd.DataFrame.from_records(records, columns=list(MARGINAL_COLUMNS))
    attributes = [a for a in dict.fromkeys(marginals["attribute"]) if a]
    return Survey(name=stem(data, name), kind=MARGINALS, questions=questions,
                  demographics=attributes, marginals=marginals, source=file,
                  fingerprint=fingerprint(raw), warnings=warnings)


def _check_columns(table: pd.DataFrame, file: str) -> None:
    """Required columns present, nothing unknown, share or count given."""
    expected = ", ".join(MARGINAL_REQUIRED) + ", share or count; optionally " + \
        ", ".join(c for c in MARGINAL_OPTIONAL if c not in ("share", "count"))
    for column in MARGINAL_REQUIRED:
        if column not in table.columns:
            raise DataError(f"missing column; expected {expected}.", file=file, row=1,
                            column=column)
    unknown = [c for c in table.columns if c not in MARGINAL_REQUIRED + MARGINAL_OPTIONAL]
    if unknown:
        raise DataError(f"unknown column; expected {expected}.", file=file, row=1,
                        column=unknown[0])
    if "share" not in table.columns and "count" not in table.columns:
        raise DataError(f"needs a share or a count column; expected {expected}.", file=file,
                        row=1, column="share")


def _cell_numbers(table, column, file, *, required, minimum=0.0, strict=False):
    """Numbers of one column; DataError listing every bad cell."""
    out, bad, first = [], [], ""
    for text, row in zip(table[column], table["_row"]):
        if text == "" and not required:
            out.append(np.nan)
            continue
        value = number(text)
        if value is None or value < minimum or (strict and value <= minimum):
            bad.append(int(row))
            first = first or ("blank" if text == "" else f"'{text}'")
            value = np.nan
        out.append(value)
    if bad:
        rule = "a positive number" if strict else "a non-negative number"
        raise DataError(f"{first} is not {rule}.", file=file, column=column, rows=bad)
    return np.array(out, dtype=float)


def _check_cells(table: pd.DataFrame, file: str, value_col: str) -> None:
    """Per-row checks: ids, options, numbers, attribute/group pairs, duplicates."""
    for column in ("question_id", "option"):
        blank = table[column] == ""
        if blank.any():
            raise DataError("blank cell.", file=file, column=column,
                            rows=[int(r) for r in table["_row"][blank]])
    table["wave"] = [canonical(w) for w in table["wave"]]     # 2020 and 2020.0: one wave
    table["_value"] = _cell_numbers(table, value_col, file, required=True)
    table["_n"] = _cell_numbers(table, "n", file, required=False, strict=True)
    half = (table["attribute"] == "") != (table["group"] == "")
    if half.any():
        row = table[half].iloc[0]
        column = "group" if row["group"] == "" else "attribute"
        raise DataError("attribute and group go together (both blank = whole population).",
                        file=file, column=column, rows=[int(r) for r in table["_row"][half]])
    keys = ["question_id", "attribute", "group", "wave", "option"]
    duplicated = table.duplicated(keys)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        first = table[(table[keys] == row[keys]).all(axis=1)]["_row"].iloc[0]
        raise DataError(f"duplicate of row {first} (same question, attribute, group, wave "
                        "and option).", file=file, column="option",
                        rows=[int(r) for r in table["_row"][duplicated]])


def _marginal_questions(table: pd.DataFrame, file: str) -> dict[str, Question]:
    """Questions with options ordered by option_index (else first appearance)."""
    questions = {}
    for qid, rows in table.groupby("question_id", sort=False):
        index = _cell_numbers(rows, "option_index", file, required=False)
        rows = rows.assign(_index=index).drop_duplicates("option")
        if not np.isnan(index).all():
            rows = rows.sort_values("_index", kind="stable")
        options = tuple(rows["option"])
        values = None
        if (rows["ordinal_value"] != "").any():
            values = tuple(math.nan if number(v) is None or number(v) == -1 else number(v)
                           for v in rows["ordinal_value"])
            if len({v for v in values if not math.isnan(v)}) < 2:
                values = None
        text = next((t for t in rows["question_text"] if t), qid)
        questions[qid] = Question(qid, text, options, values)
    return questions
