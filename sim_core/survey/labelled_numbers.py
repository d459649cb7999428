"""Numeric variables with a few value labels: numbers, not one category per value.

SPSS and Stata files often label a numeric variable only at its top code and its missing
codes: `age` with 97 = "97 or older", 98 = "Don't know", 99 = "Refused". Read as a labelled
categorical it would give one slice per year of age, and `--bins` could not apply. The rule,
decided per column from its value labels and the values in the data:

- valid codes are the values present in the data that are neither declared missing nor
  labelled like nonresponse ("Don't know", "Refused": sim_core.survey.nonresponse);
- a column is **categorical** when at least half of its distinct valid values carry a label
  (yes/no, agree scales, regions: every value labelled);
- otherwise it is a **number** when it has more than 26 distinct valid values (more than the
  prompt can letter as options), or when every labelled valid value is its lowest or highest
  value and the label reads as a bound ("97 or older", "8 or more", "Less than 1", "90+");
- otherwise (e.g. a 0-10 scale labelled only "Not at all" ... "Completely" at its ends) it
  stays categorical: one option per value, unlabelled ones named by their code.

A number keeps its labelled top code as a number (97 falls in the top band and a note says
that 97 means "97 or older"); codes labelled like nonresponse become missing codes. A
codebook row for the column decides instead (options given: categorical; options empty: a
number), so the researcher can override either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from sim_core.base.reading import number
from sim_core.survey.nonresponse import declared_reason, nonresponse_reason
from sim_core.survey.schema import LETTERS, ColumnNote, ColumnSpec

MANY_VALUES = len(LETTERS)     # more distinct values than options can be lettered
_BOUND = re.compile(r"\bor (more|older|over|above|higher|greater|less|fewer|younger|under|"
                    r"below|later|earlier|longer|plus)\b|\band (over|above|older|up|more)\b|"
                    r"\+\s*$|^\s*(less|fewer|more|greater) than\b|"
                    r"^\s*(under|over|below|above|at least|at most|up to)\b|\btop[- ]?cod",
                    re.IGNORECASE)


@dataclass(frozen=True)
class LabelledNumber:
    """A numeric column read as a number although it carries value labels.

    Attributes:
        spec: the column's spec as a number (no options; nonresponse-labelled codes missing).
        note: what was decided and what the labelled codes mean.
    """

    spec: ColumnSpec
    note: ColumnNote


def reads_as_bound(label: str) -> bool:
    """Whether a value label names a bound ("97 or older", "8 or more", "90+")."""
    return bool(_BOUND.search(str(label)))


def labelled_number(column: str, spec: ColumnSpec, values: pd.Series) -> LabelledNumber | None:
    """The column as a number when the rule of this module says so, else None.

    Args:
        column: the column's name (for the note).
        spec: its spec from the file's metadata (options = value labels in code order).
        values: its canonical text per respondent (sim_core.survey.nonresponse.canonical).
    """
    if not spec.numeric or not spec.options or spec.codes is None:
        return None
    labels = dict(zip(spec.codes, spec.options))
    nonresponse = {c: lab for c, lab in labels.items() if nonresponse_reason(lab)}
    valid = [v for v in values.unique() if declared_reason(v, spec) is None
             and v not in nonresponse and number(v) is not None]
    if not valid:
        return None
    labelled = {v: labels[v] for v in valid if v in labels}
    if 2 * len(labelled) >= len(valid):
        return None
    numbers = [number(v) for v in valid]
    ends = {min(numbers), max(numbers)}
    bounds = all(number(c) in ends and reads_as_bound(lab) for c, lab in labelled.items())
    if len(valid) <= MANY_VALUES and not bounds:
        return None
    as_number = ColumnSpec(spec.text, [], None, True, {**spec.missing, **nonresponse},
                           list(spec.missing_ranges), spec.role, True)
    return LabelledNumber(as_number, ColumnNote(column, "numeric",
                                                _note(column, labelled, nonresponse, valid)))


def _note(column: str, labelled: dict, nonresponse: dict, valid: list) -> str:
    """"age: read as a number ... 97 means '97 or older' ..."."""
    meaning = "; ".join(f"{c} means '{lab}'" for c, lab in labelled.items())
    missing = ", ".join(f"{c} = {lab}" for c, lab in nonresponse.items())
    return (f"{column}: read as a number, not one category per value (value labels on "
            f"{len(labelled)} of its {len(valid)} values): bands like a CSV column, `--bins` "
            "applies" + (f"; {meaning} (it stays a number, in its band)" if meaning else "")
            + (f"; {missing} are missing" if missing else "")
            + ". To read it as categories, give its options in the codebook.")
