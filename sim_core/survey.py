"""Typed survey model: questions with ordered options, and a survey holding either
respondent-level data or marginal tables (see docs/API.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

RESPONDENTS = "respondents"
MARGINALS = "marginals"
MARGINAL_COLUMNS = ("question_id", "attribute", "group", "wave", "option", "share", "n")


@dataclass(frozen=True)
class Question:
    """One survey question.

    Attributes:
        id: question id (column name or GSS variable name).
        text: question wording shown to people and to the model.
        options: answer options in their original order.
        ordinal_values: one value per option, or None for a nominal question;
            math.nan marks a non-substantive option (e.g. "Depends"), which every score
            keeps except the ordinal Wasserstein distance. Values need not increase with
            the position (GSS `nataid` is [2, 3, 1]): sort by value, not by position.
    """

    id: str
    text: str
    options: tuple[str, ...]
    ordinal_values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.ordinal_values is not None and len(self.ordinal_values) != len(self.options):
            raise ValueError(f"question {self.id}: {len(self.ordinal_values)} ordinal values "
                             f"for {len(self.options)} options")

    @property
    def k(self) -> int:
        """Number of options."""
        return len(self.options)

    @property
    def is_ordinal(self) -> bool:
        """True when at least two distinct finite ordinal values exist."""
        if self.ordinal_values is None:
            return False
        finite = {v for v in self.ordinal_values if not math.isnan(v)}
        return len(finite) >= 2


@dataclass
class Survey:
    """A loaded survey: questions plus respondent rows or a long marginal table.

    Attributes:
        name: display name (file stem).
        kind: "respondents" or "marginals".
        questions: question id -> Question, in file order.
        demographics: attributes usable in slices.
        respondents: one row per person (kind "respondents"); answer columns hold the
            option label or <NA>; demographic columns as read.
        weight: weight column of respondents, or None (every weight 1).
        wave: wave/year column of respondents, or None.
        marginals: long table (kind "marginals") with columns question_id, attribute,
            group, wave, option, share, n ("" attribute/group = whole population,
            "" wave = none, n NaN when unknown).
        source: file name(s).
        fingerprint: first 16 hex digits of the sha256 of the input bytes.
        warnings: non-fatal notes from reading (e.g. renormalised shares).
    """

    name: str
    kind: str
    questions: dict[str, Question]
    demographics: list[str]
    respondents: pd.DataFrame | None = None
    weight: str | None = None
    wave: str | None = None
    marginals: pd.DataFrame | None = None
    source: str = ""
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)

    def waves(self) -> list[str]:
        """Distinct waves as strings, sorted; [] when the survey has a single wave."""
        if self.kind == RESPONDENTS:
            if self.wave is None or self.respondents is None:
                return []
            values = self.respondents[self.wave].dropna().unique()
            return [value_text(v) for v in sorted(values)]
        if self.marginals is None:
            return []
        return sorted(w for w in self.marginals["wave"].unique() if w != "")

    def groups(self, attribute: str) -> list[str]:
        """Group labels of one attribute (for respondents: distinct raw values as text).

        Numeric respondent attributes are returned as their distinct values; use
        sim_core.slices.bin_numeric for bands.
        """
        if self.kind == RESPONDENTS:
            if self.respondents is None or attribute not in self.respondents.columns:
                return []
            column = self.respondents[attribute]
            if isinstance(column.dtype, pd.CategoricalDtype):     # codebook order
                present = set(column.dropna())
                return [str(c) for c in column.cat.categories if c in present]
            return [value_text(v) for v in sorted(column.dropna().unique(), key=_sort_key)]
        if self.marginals is None:
            return []
        table = self.marginals[self.marginals["attribute"] == attribute]
        return list(dict.fromkeys(table["group"]))

    def question(self, question_id: str) -> Question:
        """The question with this id; KeyError with the known ids otherwise."""
        try:
            return self.questions[question_id]
        except KeyError:
            known = ", ".join(list(self.questions)[:20])
            raise KeyError(f"unknown question {question_id!r}; known: {known}") from None


def value_text(value) -> str:
    """A wave or group value as text, the one rendering everywhere (2022.0 -> "2022")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _sort_key(value):
    """Sort numbers numerically and before text."""
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))
