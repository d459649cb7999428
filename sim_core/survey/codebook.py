"""Codebook CSV: read it strictly, and write one from a loaded survey (to edit and re-import).

Columns: column, question_text, options (|-separated, in order), and optionally ordinal
(true/false), missing (|-separated codes, each `code`, `code=label`, or a range `lo..hi`
with an open end allowed: `..-1`, `96..`), codes (stored code per option), role (question,
demographic, weight or ignore; one column at most is the weight, used unless a weight or
"unweighted" is chosen when reading).

An exported codebook also carries three information columns, never read back: notes (what
reading found about the column: nonresponse, unlabelled codes, interviewer instructions...),
proposed_question_text and proposed_options (a wording cleaned of interviewer instructions,
sim_core.survey.instructions: copy it into question_text / options, or edit it, to accept it).
"""

from __future__ import annotations

import csv
import io
import math
import re

import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import number, number_text, read_table
from sim_core.survey.instructions import Proposal, survey_proposals
from sim_core.survey.nonresponse import canonical
from sim_core.survey.schema import ROLES, ColumnSpec, Survey

CODEBOOK_REQUIRED = ("column", "question_text", "options")
CODEBOOK_OPTIONAL = ("ordinal", "missing", "codes", "role")
CODEBOOK_INFO = ("notes", "proposed_question_text", "proposed_options")   # never read back
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}
_STATA_LETTER = re.compile(r"^\.[a-z]$")
_RANGE = re.compile(r"(-?[0-9][0-9.eE+-]*)?\s*\.\.\s*(-?[0-9][0-9.eE+-]*)?")


def split_cell(cell: str) -> list[str]:
    """"a | b|c" -> ["a", "b", "c"]; "" -> []."""
    return [part.strip() for part in cell.split("|")] if cell.strip() else []


def lower_columns(table: pd.DataFrame, file: str, required, optional) -> pd.DataFrame:
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


def parse_missing(cell: str, file: str, row: int):
    """The `missing` cell -> ({code: label}, [(lo, hi, label)])."""
    discrete, ranges = {}, []
    for item in split_cell(cell):
        code, _, label = item.partition("=")
        code, label = code.strip(), label.strip()
        if not code:
            raise DataError(f"missing code '{item}' has no code.", file=file, row=row,
                            column="missing")
        bounds = _RANGE.fullmatch(code)
        if bounds and (bounds.group(1) or bounds.group(2)):
            low, high = bounds.groups()
            lo = -math.inf if not low else number(low)
            hi = math.inf if not high else number(high)
            if lo is None or hi is None or lo > hi:
                raise DataError(f"missing range '{code}' should look like 97..99, ..-1 or "
                                "96..", file=file, row=row, column="missing")
            ranges.append((lo, hi, label))
        else:
            discrete[code] = label
    return discrete, ranges


def _check_codes(options, codes, discrete, ranges, file, row) -> None:
    """Labels non-empty and unique; codes unique and disjoint from the missing codes."""
    if any(not o for o in options):
        raise DataError("an option label is empty.", file=file, row=row, column="options")
    if len(set(options)) != len(options):
        raise DataError("an option appears twice.", file=file, row=row, column="options")
    keys = [canonical(c) for c in (codes if codes is not None else options)]
    where = "codes" if codes is not None else "options"
    if codes is not None and any(not c for c in codes):
        raise DataError("a code is empty.", file=file, row=row, column="codes")
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise DataError(f"code {twice[0]} is given to two options.", file=file, row=row,
                        column=where)
    declared = {canonical(k) for k in discrete}
    clash = [k for k in keys if k in declared or any(
        number(k) is not None and lo <= number(k) <= hi for lo, hi, _ in ranges)]
    if clash:
        raise DataError(f"code {clash[0]} is both an option and a missing code.", file=file,
                        row=row, column="missing")


def _entry(rec: dict, file: str, row: int) -> ColumnSpec:
    """One codebook row, checked."""
    options = split_cell(rec["options"])
    if rec["options"].strip() and not options:
        raise DataError("options are blank.", file=file, row=row, column="options")
    flag = rec.get("ordinal", "").lower()
    if flag not in _TRUE | _FALSE:
        raise DataError(f"'{rec['ordinal']}' is not true/false.", file=file, row=row,
                        column="ordinal")
    codes = split_cell(rec.get("codes", "")) or None
    if codes is not None and len(codes) != len(options):
        raise DataError(f"{len(codes)} codes for {len(options)} options.", file=file,
                        row=row, column="codes")
    discrete, ranges = parse_missing(rec.get("missing", ""), file, row)
    _check_codes(options, codes, discrete, ranges, file, row)
    role = rec.get("role", "").lower() or "question"
    if role not in ROLES:
        raise DataError(f"role must be one of {', '.join(ROLES)}, not '{role}'.",
                        file=file, row=row, column="role")
    return ColumnSpec(rec["question_text"] or rec["column"], options, codes, flag in _TRUE,
                      discrete, ranges, role)


def read_codebook(codebook, data_columns: list[str], data_file: str) -> dict[str, ColumnSpec]:
    """Parse and check a codebook CSV against the data's columns.

    Returns:
        column -> ColumnSpec, in codebook order.
    """
    table, file, _ = read_table(codebook, "codebook")
    rows = table.attrs["rows"]
    table = lower_columns(table, file, CODEBOOK_REQUIRED, CODEBOOK_OPTIONAL + CODEBOOK_INFO)
    entries: dict[str, ColumnSpec] = {}
    for row, rec in zip(rows, table.to_dict("records")):
        column = rec["column"]
        if column not in data_columns:
            raise DataError(f"names column '{column}', which is not in {data_file}.",
                            file=file, row=row, column="column")
        if column in entries:
            raise DataError(f"column '{column}' is described twice.", file=file, row=row,
                            column="column")
        entries[column] = _entry(rec, file, row)
    return entries


# ---------------------------------------------------------------- export

def _range_text(low: float, high: float) -> str:
    lo = "" if math.isinf(low) else number_text(low)
    hi = "" if math.isinf(high) else number_text(high)
    return lo if lo == hi and lo else f"{lo}..{hi}"


def _missing_cell(spec: ColumnSpec, extra: dict[str, str]) -> str:
    items = [f"{code}={label}" if label else code
             for code, label in {**spec.missing, **extra}.items()
             if label or not _STATA_LETTER.match(code)]    # .a-.z are always missing
    items += [f"{_range_text(lo, hi)}={label}" if label else _range_text(lo, hi)
              for lo, hi, label in spec.missing_ranges]
    return "|".join(items)


def _question_cells(spec: ColumnSpec, question) -> dict[str, str]:
    """Options, codes and extra missing codes of a question as it was read: unlabelled
    codes kept as options, options read as nonresponse written as missing codes."""
    keys = spec.codes if spec.codes is not None else spec.options
    code_of = {label: code for code, label in zip(keys, spec.options)}
    options = list(question.options)
    codes = [code_of.get(o, o) for o in options]
    extra = {code_of[o]: o for o in spec.options if o not in options}
    return {"options": "|".join(options),
            "codes": "|".join(codes) if spec.codes is not None else "",
            "ordinal": "true" if question.ordinal_values is not None else "false",
            "_extra": extra}


def codebook_rows(survey: Survey) -> list[dict[str, str]]:
    """One codebook row per column the survey read: role, wording, options in order, codes,
    missing codes (declared ones and options read as nonresponse), ordinal; and the
    information columns (notes, proposed cleaned wording)."""
    rows = []
    proposals = {p.column: p for p in survey_proposals(survey)}
    for column, spec in survey.codebook.items():
        role = ("question" if column in survey.questions else
                "demographic" if column in survey.demographics else
                "weight" if spec.role == "weight" else "ignore")
        question = survey.questions.get(column)
        cells = {"options": "|".join(spec.options),
                 "codes": "|".join(spec.codes) if spec.codes is not None else "",
                 "ordinal": "true" if spec.ordinal else "false", "_extra": {}}
        if question is not None:
            cells = _question_cells(spec, question)
        extra = cells.pop("_extra")
        rows.append({"column": column,
                     "question_text": question.text if question is not None else spec.text,
                     **cells, "missing": _missing_cell(spec, extra), "role": role,
                     **_info(survey, column, proposals.get(column))})
    return rows


def _info(survey: Survey, column: str, proposal: Proposal | None) -> dict[str, str]:
    """The information columns of one row."""
    notes = [n.text for n in survey.column_notes if n.column == column]
    return {"notes": " / ".join(notes),
            "proposed_question_text": proposal.cleaned_text if proposal else "",
            "proposed_options": "|".join(proposal.cleaned_options) if proposal else ""}


def codebook_csv(survey: Survey) -> str:
    """The survey's codebook as CSV text: edit wording, options, ordinal, roles, and load
    it again with the same data file (`codebook=`)."""
    return _rows_csv(codebook_rows(survey))


def edited_codebook(survey: Survey, edits: dict[str, dict]) -> str:
    """The survey's codebook CSV with the wording, option order and ordinal flag of some
    columns changed (the dashboard's question editor).

    Args:
        survey: the survey as read.
        edits: column -> {"question_text": str, "options": labels in the new order,
            "ordinal": bool}.
    Returns:
        Codebook CSV text; each option keeps its own code when the column has codes.
    Raises:
        DataError: an edited option list is not a reordering of the column's options (a
            renamed or dropped option would no longer match the data).
    """
    rows = codebook_rows(survey)
    for row in rows:
        edit = edits.get(row["column"])
        if not edit:
            continue
        old = row["options"].split("|") if row["options"] else []
        new = [str(option).strip() for option in edit["options"]]
        if sorted(new) != sorted(old):
            raise DataError(f"the options of '{row['column']}' can be reordered, not renamed, "
                            f"added or dropped: expected {', '.join(old)}; got "
                            f"{', '.join(new)}.", column=row["column"])
        if row["codes"]:
            code_of = dict(zip(old, row["codes"].split("|")))
            row["codes"] = "|".join(code_of[option] for option in new)
        row.update(question_text=str(edit["question_text"]).strip() or row["question_text"],
                   options="|".join(new), ordinal="true" if edit["ordinal"] else "false")
    return _rows_csv(rows)


def reworded_codebook(survey: Survey, edits: dict[str, dict]) -> str:
    """The survey's codebook CSV with the wording and option labels of some columns
    replaced (accepting or editing a cleaned wording: sim_core.survey.instructions).

    Args:
        survey: the survey as read.
        edits: column -> {"question_text": str, "options": new labels, one per current
            option in the same order (a rename: each keeps its code)}.
    Returns:
        Codebook CSV text; renamed options keep their stored codes (labels stored as text
        get codes = the old labels), so every answer stays with its option.
    Raises:
        DataError: an unknown column, or an option list of another length, with an empty
            or a repeated label.
    """
    rows = {row["column"]: row for row in codebook_rows(survey)}
    for column, edit in edits.items():
        if column not in rows:
            raise DataError(f"'{column}' is not a column of the codebook.", column=column)
        row = rows[column]
        old = row["options"].split("|") if row["options"] else []
        new = [str(option).strip() for option in edit.get("options", old)]
        if len(new) != len(old) or any(not o for o in new) or len(set(new)) != len(new):
            raise DataError(f"the options of '{column}' are renamed one by one, in order: "
                            f"{len(old)} distinct non-empty labels for {' | '.join(old)}; got "
                            f"{' | '.join(new) or 'none'}.", column=column)
        if new != old and not row["codes"]:
            row["codes"] = "|".join(old)
        text = str(edit.get("question_text", "")).strip() or row["question_text"]
        row.update(question_text=text, options="|".join(new), proposed_question_text="",
                   proposed_options="")
    return _rows_csv(list(rows.values()))


def cleaned_codebook(survey: Survey) -> tuple[str, list[str]]:
    """The codebook with every proposed cleaned wording accepted as proposed, and the
    columns it changed (`python -m sim_core codebook --accept-cleaned-wording`)."""
    proposals = survey_proposals(survey)
    edits = {p.column: {"question_text": p.cleaned_text, "options": list(p.cleaned_options)}
             for p in proposals}
    return reworded_codebook(survey, edits), [p.column for p in proposals]


def _rows_csv(rows: list[dict[str, str]]) -> str:
    """Codebook rows as CSV text (the codebook's columns, in order)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, lineterminator="\n",
                            fieldnames=CODEBOOK_REQUIRED + CODEBOOK_OPTIONAL + CODEBOOK_INFO)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
