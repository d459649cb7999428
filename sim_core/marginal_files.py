"""Readers for marginal tables: the long marginals CSV and the SubPOP JSONL (GSS 2022)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from sim_core.errors import DataError
from sim_core.fileio import (SHARE_TOLERANCE, decode, fingerprint, load_bytes, number,
                             read_table, stem)
from sim_core.survey import MARGINAL_COLUMNS, MARGINALS, Question, Survey

# Vote choice between candidates has no order, although the SubPOP file codes Clinton 1 and
# Trump 2 (its README lists both questions as nominal).
SUBPOP_NOMINAL = frozenset({"pres16", "if16who"})


# ---------------------------------------------------------------- SubPOP JSONL

_SUBPOP_KEYS = ("qkey", "attribute", "group", "question", "options", "ordinal", "responses")


def read_subpop_jsonl(data, *, name: str | None = None) -> Survey:
    """Read the SubPOP JSONL shape (GSS 2022 subgroup marginals) as a marginal survey.

    The trailing "Refused" option (not in `responses`) is dropped; ordinal value -1 marks
    a non-substantive option (nan); all-tied ordinal values make the question nominal.

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
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"not valid JSON ({error.msg}).", file=file, row=line_no) from None
        if not isinstance(item, dict):
            raise DataError("each line must be a JSON object.", file=file, row=line_no)
        missing = [key for key in _SUBPOP_KEYS if key not in item]
        if missing:
            raise DataError("missing field(s) " + ", ".join(missing) + ".", file=file,
                            row=line_no, column=missing[0])
        question = _subpop_question(item, file, line_no)
        qid = question.id
        if qid in questions and questions[qid].options != question.options:
            raise DataError(f"options differ from the first row of question {qid}.",
                            file=file, row=line_no, column="options")
        questions.setdefault(qid, question)
        key = (qid, str(item["attribute"]), str(item["group"]))
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
    options = [str(o) for o in item["options"]]
    responses = item["responses"]
    if not isinstance(responses, list) or not responses:
        raise DataError("`responses` must be a non-empty list.", file=file, row=row,
                        column="responses")
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
        if len({v for v in values if not math.isnan(v)}) < 2 or item["qkey"] in SUBPOP_NOMINAL:
            values = None                       # all tied, or candidate choice: nominal
    return Question(id=str(item["qkey"]), text=str(item["question"]), options=tuple(options),
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




def read_marginals_csv(data, *, name: str | None = None) -> Survey:
    """Long marginals CSV (work in progress)."""
    raise NotImplementedError("read_marginals_csv lands in the next commit")
