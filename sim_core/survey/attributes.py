"""Slice attributes: the survey's demographics, or any categorical question for one run.

Cross-tabulating one question by another variable is everyday survey analysis, so a
question of respondent data (party affiliation asked as a question, `polaf`) can be a slice
attribute: with_slice_attributes returns the survey for that run with the question turned
into an attribute (its groups are its options, in order; its persona sentence comes from its
wording: sim_core.simulation.prompts.persona_template). It is then no longer a question of
that run, so it is never predicted from itself nor scored sliced by itself: asking the same
question sliced by its own answers is refused (each slice would hold 100 % of one answer).

Band edges (`bins`) apply only to numeric attributes in use: check_bins refuses them, with
the reason, for an unknown or categorical attribute, for one not sliced by in the run, and
for marginal tables (whose groups are fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from sim_core.base.errors import DataError
from sim_core.survey.schema import MARGINALS, Survey


def slice_attribute_choices(survey: Survey, question_id: str | None = None) -> list[str]:
    """What a run may slice by: the demographics, then (respondent data) every other
    question (the dashboard's attribute picker)."""
    if survey.kind == MARGINALS:
        return list(survey.demographics)
    return list(survey.demographics) + [q for q in survey.questions if q != question_id]


def _resolve(survey: Survey, name: str) -> str | None:
    """The attribute or question a name means (exact, else case-insensitive)."""
    known = list(survey.demographics) + list(survey.questions)
    if name in known:
        return name
    folded = [k for k in known if k.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def with_slice_attributes(survey: Survey, names: Sequence[str],
                          questions: Sequence[str] = ()) -> tuple[Survey, list[str]]:
    """The survey of a run sliced by `names`, and the names as the survey spells them.

    Args:
        survey: the survey as read.
        names: slice attributes: demographics, or questions of respondent data.
        questions: the questions the run asks (one of them cannot also be a slice attribute).
    Returns:
        (survey, attributes): the same survey when every name is a demographic; otherwise a
        copy where the named questions are attributes (no longer questions).
    Raises:
        DataError: an unknown name, a question of a marginal table, a question asked and
            sliced by at once.
    """
    resolved = []
    for name in names:
        found = _resolve(survey, name)
        if found is None and name in survey.codebook:      # read, but left out of the roles
            raise DataError(f"'{name}' is not read as a question or demographic (it is "
                            "left out, e.g. as a design variable); name it as a demographic "
                            "(--demographics, the column mapping or the codebook's role) to "
                            "slice by it.")
        if found is None:
            raise DataError(f"unknown attribute '{name}'; slice by a demographic ("
                            f"{', '.join(survey.demographics) or 'none'}) or by a question of "
                            "the survey.")
        resolved.append(found)
    asked = [q for q in resolved if q in questions]
    if asked:
        raise DataError(f"'{asked[0]}' is the question asked: sliced by its own answers, each "
                        "slice would hold 100 % of one answer; slice it by another variable.")
    extra = [a for a in resolved if a not in survey.demographics]
    if not extra:
        return survey, resolved
    if survey.kind == MARGINALS:
        raise DataError(f"'{extra[0]}' is a question of a marginal table: the table holds each "
                        "question's shares per group, not answers crossed with another "
                        f"question; slice by one of {', '.join(survey.demographics)}.")
    return _as_attributes(survey, extra), resolved


def _as_attributes(survey: Survey, columns: list[str]) -> Survey:
    """A copy of the survey with these questions as demographics (groups = options)."""
    frame = survey.respondents.copy()
    labels = dict(survey.labels)
    for column in columns:
        question = survey.questions[column]
        frame[column] = pd.Categorical(frame[column], categories=list(question.options),
                                       ordered=True)
        labels[column] = question.text
    questions = {q: v for q, v in survey.questions.items() if q not in columns}
    return replace(survey, questions=questions, respondents=frame, labels=labels,
                   demographics=list(survey.demographics) + columns)


def check_bins(survey: Survey, bins: dict | None, by: Sequence[str] | None = None) -> None:
    """Refuse band edges that cannot apply, with the reason (never ignore them).

    Args:
        survey: the survey of the run (after with_slice_attributes).
        bins: attribute -> edges (None or {} = none).
        by: the run's slice attributes; None = any demographic may be sliced by.
    """
    if not bins:
        return
    if survey.kind == MARGINALS:
        raise DataError("bins cannot apply to a marginal table: its groups are fixed by the "
                        "table.")
    for name in bins:
        found = _resolve(survey, name)
        if found is None:
            raise DataError(f"bins for '{name}' cannot apply: the survey has no such "
                            f"attribute (demographics: {', '.join(survey.demographics)}).")
        if found not in survey.demographics or not _numeric(survey.respondents[found]):
            groups = (survey.questions[found].options if found in survey.questions else
                      survey.groups(found))
            raise DataError(f"bins for '{found}' cannot apply: it is categorical (its groups "
                            f"are {', '.join(map(str, list(groups)[:8]))}"
                            f"{'...' if len(groups) > 8 else ''}); bins band numbers.")
        if by is not None and found not in by:
            raise DataError(f"bins for '{found}' cannot apply: the run is not sliced by it "
                            f"(by: {', '.join(by) or 'nothing'}).")


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and \
        not isinstance(column.dtype, pd.CategoricalDtype)
