"""Typed survey model: questions with ordered options, and a survey holding either
respondent-level data or marginal tables (see docs/API.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from sim_core.survey.weights import WeightSummary, weight_summary

RESPONDENTS = "respondents"
MARGINALS = "marginals"
MARGINAL_COLUMNS = ("question_id", "attribute", "group", "wave", "option", "share", "n")
ROLES = ("question", "demographic", "weight", "ignore")
# Options are shown lettered A-Z (sim_core.simulation.prompts), so a question has at most 26.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class ColumnSpec:
    """How to read one column: from a codebook row or from a file's own metadata.

    Attributes:
        text: question wording (questions) or display name (demographics).
        options: option labels in order; [] = take the options from the data.
        codes: stored code of each option (canonical text), or None when the labels
            themselves are stored (CSV without codes).
        ordinal: whether the options are ordered.
        missing: declared missing code (canonical text) -> its label ("" if none).
        missing_ranges: declared missing ranges (lo, hi, label), inclusive, numbers;
            -inf / inf for open ends.
        role: "question", "demographic" or "ignore".
        numeric: stored codes are numbers (compare 1 == 1.0); False = compare as text.
    """

    text: str
    options: list[str] = field(default_factory=list)
    codes: list[str] | None = None
    ordinal: bool = False
    missing: dict[str, str] = field(default_factory=dict)
    missing_ranges: list[tuple[float, float, str]] = field(default_factory=list)
    role: str = "question"
    numeric: bool = True


@dataclass(frozen=True)
class ColumnNote:
    """A note from reading about one column (shown where that column is in use, and in the
    codebook and the Data page's table of notes).

    Attributes:
        column: the column it is about.
        kind: what it is about: "nonresponse", "unlabelled", "missing codes", "scale",
            "no answers", "numeric", "design", "instructions", "label", "nominal",
            "multiple response".
        text: the message, starting with the column's name.
    """

    column: str
    kind: str
    text: str


@dataclass(frozen=True)
class Design:
    """Survey design for intervals beyond weighting.

    Attributes:
        strata: stratum column, or None.
        psu: primary sampling unit (cluster) column, or None.
        design_effect: a known design-effect factor (>= 1) that divides the effective n
            when strata/PSU are not available; None = none.
    """

    strata: str | None = None
    psu: str | None = None
    design_effect: float | None = None

    @property
    def taylor(self) -> bool:
        """True when strata or PSU columns give design-based (linearised) intervals."""
        return bool(self.strata or self.psu)


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
        warnings: non-fatal notes from reading about the survey as a whole (no weight
            chosen, demographics guessed, renormalised shares).
        column_notes: notes about single columns (sim_core.survey.notes shows those of the
            columns in use and counts the rest).
        labels: column -> display name (variable label or codebook text), for personas.
        population: who the survey speaks for ("adults in Germany, 2018"); "" = not set.
        nonresponse: respondents only: question id -> reason per respondent ("dk",
            "refused", "not_asked", "other"; <NA> where the answer is valid).
        design: strata/PSU columns or a design-effect factor (None = weighting only).
        codebook: column -> ColumnSpec as read (exported with sim_core.survey.codebook).
        weight_candidates: columns that look like weights (by name or label).
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
    column_notes: list[ColumnNote] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    population: str = ""
    nonresponse: pd.DataFrame | None = None
    design: Design | None = None
    codebook: dict[str, ColumnSpec] = field(default_factory=dict)
    weight_candidates: list[str] = field(default_factory=list)

    def weight_summary(self) -> WeightSummary | None:
        """Weight sum, CV and Kish design effect of the respondents (None for tables)."""
        if self.kind != RESPONDENTS or self.respondents is None:
            return None
        values = self.respondents[self.weight] if self.weight else None
        return weight_summary(values, len(self.respondents), self.weight)

    def waves(self) -> list[str]:
        """Distinct waves as strings, sorted; [] when the survey has a single wave."""
        if self.kind == RESPONDENTS:
            if self.wave is None or self.respondents is None:
                return []
            values = self.respondents[self.wave].dropna().unique()
            return [value_text(v) for v in sorted(values, key=_wave_key)]
        if self.marginals is None:
            return []
        return sorted(w for w in self.marginals["wave"].unique() if w != "")

    def groups(self, attribute: str) -> list[str]:
        """Group labels of one attribute (for respondents: distinct raw values as text).

        Numeric respondent attributes are returned as their distinct values; use
        sim_core.survey.slices.bin_numeric for bands.
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


def _wave_key(value):
    """Waves in numeric order when they are numbers ("999" before "1000")."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _sort_key(value):
    """Sort numbers numerically and before text."""
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))
