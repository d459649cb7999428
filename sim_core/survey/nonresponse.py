"""One home for the missing-value rules of every survey format.

A stored value is either a valid answer (an option) or nonresponse with a reason:

    dk         don't know
    refused    refused / no answer
    not_asked  not asked, inapplicable, skipped, system-missing (blank cell, SPSS sysmis)
    other      a declared missing code whose label names none of the above

Declared missing values (codebook `missing`, SPSS discrete values and ranges, SPSS string
missing values, Stata `.a`-`.z`) are never options. Options whose *label* reads as
nonresponse ("Don't know", "Refused", "No answer", "Not asked", "IAP", "(DO NOT READ)"...,
any case, either apostrophe) are missing too unless the caller keeps them
(keep_nonresponse); a kept one gets no ordinal value (left out of the Wasserstein distance).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import MISSING_TOKENS, number, number_text, rows_at
from sim_core.survey.scales import known_order
from sim_core.survey.schema import ColumnNote, ColumnSpec

REASONS: dict[str, str] = {
    "dk": "don't know",
    "refused": "refused / no answer",
    "not_asked": "not asked / system-missing",
    "other": "other missing code",
}
SYSTEM_MISSING = "not_asked"
REASON_SHORT = {"dk": "DK", "refused": "refused", "not_asked": "not asked", "other": "other"}

_PATTERNS = [
    ("dk", re.compile(r"\bdon'?t know\b|\bdo not know\b|\bdont know\b|^dk\b|\bdk/|\bd\.k\.|"
                      r"\bno opinion\b|\bcan'?t choose\b|\bcannot choose\b")),
    ("refused", re.compile(r"\brefused\b|\brefusal\b|^rf\b|\bno answer\b|^n/?a$|\bno response\b")),
    ("not_asked", re.compile(r"\bnot asked\b|^iap\b|\binapplicable\b|\bnot applicable\b|"
                             r"\bskipped\b|\blegitimate skip\b|\bsystem missing\b|\bsysmis\b")),
    ("other", re.compile(r"\(do not read\)|\bdo not read\b|^missing\b|\bmissing value\b")),
]


def nonresponse_reason(label: str | None) -> str | None:
    """The nonresponse reason a label reads as, or None for a substantive label."""
    if not label:
        return None
    text = str(label).lower().replace("\u2019", "'").replace("\u2018", "'").strip(" .:-*[]")
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    return None


def canonical(value, numeric: bool = True) -> str:
    """Stored value as comparable text: numbers by value ("1.0" == "1"), "" for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number_text(float(value))
    text = str(value).strip()
    if not numeric:
        return text
    found = number(text)
    return number_text(found) if found is not None else text


@dataclass
class Coded:
    """One column read with its spec.

    Attributes:
        labels: option label per respondent, <NA> for nonresponse.
        reasons: nonresponse reason per respondent, <NA> for a valid answer.
        options: the options in order (the spec's, plus codes found unlabelled).
        ordinal_values: one per option (nan = non-substantive kept option), or None.
        treated_missing: undeclared nonresponse labels made missing -> count.
        kept: nonresponse-like option labels kept as options (keep_nonresponse).
        unlabelled: codes present in the data but without a label -> count.
        scale: name of the known scale (sim_core.survey.scales) whose order the options were put
            in, when they were read without labels; None otherwise.
    """

    labels: pd.Series
    reasons: pd.Series
    options: list[str]
    ordinal_values: tuple[float, ...] | None
    treated_missing: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    unlabelled: dict[str, int] = field(default_factory=dict)
    scale: str | None = None


def declared_reason(code: str, spec: ColumnSpec, missing: dict[str, str] | None = None
                    ) -> str | None:
    """The reason of a declared missing code (discrete value or range), else None.

    `missing` is spec.missing with canonical keys (computed once per column by callers).
    """
    if code in MISSING_TOKENS:
        return SYSTEM_MISSING
    if missing is None:
        missing = {canonical(k, spec.numeric): v for k, v in spec.missing.items()}
    if code in missing:
        return nonresponse_reason(missing[code]) or "other"
    value = number(code) if spec.missing_ranges else None
    if value is not None:
        for low, high, label in spec.missing_ranges:
            if low <= value <= high:
                return nonresponse_reason(label) or "other"
    return None


def code_column(values: pd.Series, spec: ColumnSpec, *, keep_nonresponse: bool = False,
                unlabelled: str = "refuse", file: str = "", column: str = "",
                rows=None) -> Coded:
    """Map canonical stored values to option labels and nonresponse reasons.

    Args:
        values: canonical text per respondent (see canonical(); "" = system-missing).
        spec: the column's spec (options [] = infer the options from the data).
        keep_nonresponse: keep options whose label reads as nonresponse.
        unlabelled: for a labelled column, a code with no label: "refuse" (DataError, the
            CSV codebook rule) or "warn" (kept as an option named by its code: SPSS/Stata).
        file, column, rows: for error messages (rows: row number per position, see
            fileio.rows_at).
    Returns:
        Coded.
    """
    distinct = list(values.unique())
    missing = {canonical(k, spec.numeric): v for k, v in spec.missing.items()}
    declared = {v: declared_reason(v, spec, missing) for v in distinct}
    if spec.options:
        lookup, options, extra = _labelled(distinct, declared, spec, unlabelled, values,
                                           (file, column, rows))
    else:
        lookup, options, extra = _inferred(distinct, declared, spec.numeric), None, {}
        options = list(dict.fromkeys(lookup.values()))
    mapping, reasons_of, treated, kept = {}, {}, {}, []
    for value in distinct:
        if declared[value] is not None:
            reasons_of[value] = declared[value]
            continue
        label = lookup[value]
        reason = nonresponse_reason(label)
        if reason is not None and not keep_nonresponse:
            reasons_of[value] = reason
            treated[label] = treated.get(label, 0)
        else:
            mapping[value] = label
    counts = values.value_counts()
    for label in treated:
        treated[label] = int(sum(counts[v] for v in distinct if lookup.get(v) == label
                                 and declared[v] is None))
    options = [o for o in options if o not in treated]
    kept = [o for o in options if nonresponse_reason(o) is not None]
    labels = values.map(mapping).astype("string")
    reasons = values.map(reasons_of).astype("string")
    ordinal = _ordinal(options, spec, kept, values, mapping)
    known = None if spec.options or ordinal is not None else \
        known_order([o for o in options if o not in kept])
    if known is not None:      # text answers of a known scale: its order, not the alphabet's
        ordered, scale = known
        options = ordered + [o for o in options if o in kept]
        ordinal = tuple(float(i + 1) for i in range(len(ordered))) + (math.nan,) * len(kept)
    return Coded(labels, reasons, options, ordinal, treated, kept,
                 {k: int(counts[v]) for v, k in extra.items()},
                 None if known is None else known[1].name)


def _labelled(distinct, declared, spec, unlabelled, values, where):
    """code -> label for a labelled column; extra (unlabelled) codes appended in code order."""
    keys = spec.codes if spec.codes is not None else spec.options
    lookup = {canonical(k, spec.numeric): label for k, label in zip(keys, spec.options)}
    strays = [v for v in distinct if declared[v] is None and v not in lookup]
    if strays and unlabelled == "refuse":
        file, column, rows = where
        bad = values.isin(strays).to_numpy().nonzero()[0]
        raise DataError(f"value '{values.iloc[bad[0]]}' is neither an option nor a missing "
                        "code in the codebook.", file=file, column=column,
                        rows=rows_at(bad, rows))
    extra = {v: v for v in strays}
    options = list(spec.options)
    if strays:
        codes = [canonical(k, spec.numeric) for k in keys] + strays
        order = sorted(range(len(codes)), key=lambda i: _code_key(codes[i], spec.numeric))
        labels = options + strays
        options = [labels[i] for i in order]
        lookup.update(extra)
    return lookup, options, extra


def _code_key(code: str, numeric: bool):
    """Sort codes by value (numbers) or as text."""
    value = number(code) if numeric else None
    return (0, value, "") if value is not None else (1, 0.0, code)


def _inferred(distinct, declared, numeric: bool) -> dict[str, str]:
    """value -> option label for a column without labels: numbers ascending, else text sorted."""
    present = [v for v in distinct if declared[v] is None]
    if numeric and present and all(number(v) is not None for v in present):
        return {v: v for v in sorted(present, key=lambda v: number(v))}
    return {v: v for v in sorted(present)}


def _ordinal(options, spec, kept, values, mapping) -> tuple[float, ...] | None:
    """Ordinal values: positions for a labelled ordinal column, numbers for inferred numeric
    options; a kept nonresponse option gets nan."""
    if not options:
        return None
    if spec.options:
        if not spec.ordinal:
            return None
        out = [float(i + 1) for i in range(len(options))]
    else:
        numbers = [number(o) for o in options]
        if not spec.numeric or any(x is None for x in numbers) or not spec.ordinal:
            return None
        out = list(numbers)
    return tuple(math.nan if o in kept else v for o, v in zip(options, out))


def describe_treated(column: str, coded: Coded) -> list[ColumnNote]:
    """Notes about undeclared nonresponse, kept nonresponse, a known scale's order and
    unlabelled codes of a column."""
    notes = []
    if coded.treated_missing:
        listed = ", ".join(f"'{label}' ({n})" for label, n in coded.treated_missing.items())
        notes.append(ColumnNote(column, "nonresponse", f"{column}: {listed} counted as "
                                "nonresponse, not as options (keep them with "
                                "keep_nonresponse / --keep-nonresponse)."))
    if coded.kept:
        notes.append(ColumnNote(column, "nonresponse", f"{column}: nonresponse option(s) "
                                f"{', '.join(coded.kept)} kept as options; they carry no "
                                "ordinal value."))
    if coded.scale:
        notes.append(ColumnNote(column, "scale", f"{column}: options put in the order of a "
                                f"known {coded.scale} scale ({' < '.join(coded.options)}) and "
                                "read as ordinal; if that is wrong, give the order in a "
                                "codebook (download it, edit, upload it again)."))
    if coded.unlabelled:
        listed = ", ".join(f"{code} ({n})" for code, n in coded.unlabelled.items())
        notes.append(ColumnNote(column, "unlabelled", f"{column}: code(s) {listed} have no "
                                "value label; kept as options named by their code."))
    return notes


SUSPECT_CODES = frozenset({-9, -8, -7, -6, -5, -4, -3, -2, -1, 8, 9, 97, 98, 99, 997, 998,
                           999, 9997, 9998, 9999})


def suspect_missing_codes(numbers: list[float]) -> list[float]:
    """Codes that look like undeclared missing codes: a typical code (9, 98, 99, -1...)
    at the edge of the values, apart from the rest. Used for a warning only."""
    values = sorted(set(numbers))
    normal = [v for v in values if v not in SUSPECT_CODES]
    if not normal or len(values) < 3:
        return []
    top, bottom = max(normal), min(normal)
    return [v for v in values if v in SUSPECT_CODES
            and ((v > top + 1 and v > 0) or (v < bottom and v < 0))]


def nonresponse_text(shares: dict[str, float]) -> str:
    """"DK 4.2 %, refused 1.0 %" ("-" when there is none), weighted shares of a slice."""
    parts = [f"{REASON_SHORT.get(r, r)} {100 * v:.1f} %" for r, v in shares.items()
             if v == v and v > 0]
    return ", ".join(parts) or "-"
