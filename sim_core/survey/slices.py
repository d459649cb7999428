"""Slices (demographic groups, crossed) and their real answer distributions.

From respondent data: weighted shares, raw n, Kish effective n and a Wilson 95 % interval
per share; from marginal tables: the stored shares, with n when the table gives one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.survey.attributes import check_bins
from sim_core.survey.marginal import (
    SliceData,
    SliceMarginal,
    make_marginal,
    respondent_reasons,
)
from sim_core.survey.nonresponse import canonical
from sim_core.survey.schema import MARGINALS, Question, Survey

DEFAULT_BINS: dict[str, list[float]] = {"age": [18, 30, 45, 65, 200]}   # lower-case keys
AUTO_BINS_ABOVE = 12        # numeric attributes with more distinct values get quartile bands


def _edge_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Band labels for half-open bins [lo, hi): "18-29" for integers, "65+" for an open top."""
    labels = []
    integer = all(float(e).is_integer() or math.isinf(e) for e in edges)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if math.isinf(hi) or (hi >= 120 and lo < 120 and integer and hi == edges[-1]):
            labels.append(f"{_edge_text(lo)}+")
        elif integer:
            labels.append(f"{_edge_text(lo)}-{_edge_text(hi - 1)}")
        else:
            labels.append(f"{_edge_text(lo)}-{_edge_text(hi)}")
    return labels


def bin_numeric(values: pd.Series, edges: list[float]) -> pd.Series:
    """Bin numbers into bands [lo, hi); values outside the edges become <NA>.

    Args:
        values: numeric series (non-numbers count as missing).
        edges: increasing band edges, e.g. [18, 30, 45, 65, 200].
    Returns:
        Ordered categorical of labels like "30-44" ("65+" for the open top band).
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(not b > a for a, b in zip(edges, edges[1:])):   # NaN fails too
        raise DataError(f"bin edges must increase and have at least two values: {edges}")
    numbers = pd.to_numeric(values, errors="coerce")
    return pd.cut(numbers, bins=edges, right=False, labels=bin_labels(edges), ordered=True)


def _auto_edges(numbers: pd.Series) -> list[float]:
    """Quartile edges for a numeric attribute without configured bins."""
    qs = np.unique(np.quantile(numbers.dropna(), [0, 0.25, 0.5, 0.75]))
    return [float(q) for q in qs] + [float(numbers.max()) + 1]


def group_values(frame: pd.DataFrame, attribute: str,
                 bins: dict[str, list[float]] | None = None) -> pd.Series:
    """Group label per respondent for one attribute (<NA> = left out of slices).

    Numeric attributes are binned with `bins` / DEFAULT_BINS (case-insensitive names), or
    quartile bands when they have many distinct values; others keep their values.
    """
    if attribute not in frame.columns:
        raise DataError(f"unknown attribute {attribute!r}; columns: "
                        + ", ".join(map(str, frame.columns)))
    column = frame[attribute]
    lookup = {k.lower(): v for k, v in {**DEFAULT_BINS, **(bins or {})}.items()}
    if pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype):
        edges = lookup.get(attribute.lower())
        if edges is None and column.nunique() > AUTO_BINS_ABOVE:
            edges = _auto_edges(column)
        if edges is not None:
            return bin_numeric(column, edges)
        categories = [_edge_text(v) for v in sorted(column.dropna().unique())]
        text = column.map(lambda v: pd.NA if pd.isna(v) else _edge_text(v))
        return pd.Categorical(text, categories=categories, ordered=True)
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column               # codebook labels, already in codebook order
    return column.astype("string")


def wave_respondents(survey: Survey, wave: str | None = None) -> pd.DataFrame:
    """The respondents of one wave (every respondent when wave is None or "")."""
    frame = survey.respondents
    if wave not in (None, ""):
        if survey.wave is None:
            raise DataError(f"the survey has no wave column; cannot select wave {wave!r}.")
        frame = frame[frame[survey.wave].map(canonical) == canonical(wave)]
    return frame


def weights_of(survey: Survey, frame: pd.DataFrame) -> np.ndarray:
    """The survey weight of each respondent in `frame` (1 without a weight column)."""
    if not survey.weight:
        return np.ones(len(frame))
    return frame[survey.weight].to_numpy(dtype=float)


def _respondent_marginals(survey, question, by, wave, bins, min_n_eff, include_total):
    frame = wave_respondents(survey, wave)
    answers = pd.Categorical(frame[question.id], categories=list(question.options))
    codes = np.asarray(answers.codes)
    if not (codes >= 0).any():
        where = f" in wave {wave}" if wave else ""
        raise DataError(f"question {question.id} has no answers{where}.")
    design = survey.design
    columns = [None if design is None else getattr(design, c) for c in ("strata", "psu")]
    strata, psu = (None if c is None else frame[c].to_numpy() for c in columns)
    data = SliceData(question, codes, weights_of(survey, frame),
                      respondent_reasons(survey, question, frame), design, strata, psu, min_n_eff)
    slices = []
    if include_total or not by:
        slices.append(({}, np.ones(len(frame), dtype=bool)))
    if by:
        groups = {attr: pd.Categorical(group_values(frame, attr, bins)) for attr in by}
        for combo in itertools.product(*(groups[a].categories for a in by)):
            mask = np.ones(len(frame), dtype=bool)
            for attr, value in zip(by, combo):
                mask &= np.asarray(groups[attr] == value)
            if (mask & (codes >= 0)).any():
                slices.append((dict(zip(by, map(str, combo))), mask))
    return data.summaries(slices)


def _table_marginals(survey, question, by, wave, min_n_eff, include_total, table=None):
    if table is None:
        table = survey.marginals
        table = table[table["question_id"] == question.id]
    if table.empty:
        raise DataError(f"question {question.id} has no rows in the table.")
    table = table[table["wave"] == _pick_wave(survey, table, wave)]
    if len(by) > 1:
        raise DataError("a marginal table cannot cross attributes; choose one attribute "
                        f"(asked for {', '.join(by)}).")
    wanted = [""] if not by else ([""] if include_total else []) + [by[0]]
    if by and by[0] not in set(table["attribute"]):
        raise DataError(f"attribute {by[0]!r} is not in the table for question "
                        f"{question.id}; it has: {', '.join(survey.demographics)}")
    results = []
    for attribute in wanted:
        part = table[table["attribute"] == attribute]
        if attribute == "" and part.empty:
            if not by:
                raise DataError(f"the table has no whole-population row for {question.id}; "
                                "choose an attribute.")
            continue
        for group, rows in part.groupby("group", sort=False):
            shares = rows.set_index("option")["share"].reindex(question.options).fillna(0.0)
            n = rows["n"].iloc[0]
            n = None if pd.isna(n) else int(round(n))
            slice_ = {attribute: str(group)} if attribute else {}
            results.append(make_marginal(slice_, question.options, shares.to_numpy(float), n,
                                 None if n is None else float(n), min_n_eff))
    return results


def _pick_wave(survey: Survey, table: pd.DataFrame, wave: str | None) -> str:
    """The wave to read from a marginal table (the only one when wave is None)."""
    waves = list(dict.fromkeys(table["wave"]))
    if wave not in (None, ""):
        if canonical(wave) not in waves:     # table waves are canonical: 2020.0 -> "2020"
            raise DataError(f"wave {wave!r} not in the table; it has: {', '.join(waves)}")
        return canonical(wave)
    if len(waves) > 1:
        raise DataError(f"the table has several waves ({', '.join(waves)}); choose one.")
    return waves[0]


def real_marginals(survey: Survey, question_id: str, by: Sequence[str] = (), *,
                   wave: str | None = None, bins: dict[str, list[float]] | None = None,
                   min_n_eff: float = 30, include_total: bool = False) -> list[SliceMarginal]:
    """Real answer distribution per slice.

    Args:
        survey: a loaded Survey.
        question_id: question to summarise.
        by: attributes to cross (respondents) or at most one attribute (marginal tables);
            () = the whole population.
        wave: wave to use (None: all waves pooled for respondents; the only wave of a table).
        bins: attribute -> band edges for numeric attributes (overrides DEFAULT_BINS).
        min_n_eff: slices with a smaller effective n are flagged too_small.
        include_total: also return the whole population ({}) first.
    Returns:
        One SliceMarginal per non-empty slice, in group order.
    """
    if question_id not in survey.questions:
        raise DataError(f"unknown question {question_id!r}; the survey has: "
                        + ", ".join(list(survey.questions)[:20]))
    question = survey.questions[question_id]
    by = list(by)
    for attribute in by:
        if attribute not in survey.demographics:
            raise DataError(f"unknown attribute {attribute!r}; the survey has: "
                            + ", ".join(survey.demographics))
    check_bins(survey, bins)
    if survey.kind == MARGINALS:
        return _table_marginals(survey, question, by, wave, min_n_eff, include_total)
    return _respondent_marginals(survey, question, by, wave, bins, min_n_eff, include_total)


def weighted_groups(survey: Survey, by: Sequence[str], *, wave: str | None = None,
                    question_id: str | None = None, bins=None) -> pd.DataFrame:
    """Group of each respondent on each attribute, with the weight: the one labelling of
    respondents by slice (compositions, the respondent table of sim_core.evaluation).

    Args:
        survey: a respondent-level Survey.
        by: attributes (group labels and order as in real_marginals' slices).
        wave: one wave (None: every wave pooled).
        question_id: only those who gave a valid answer to it (None: everyone in the wave).
        bins: band edges for numeric attributes.
    Returns:
        One categorical column per attribute (<NA> = no group) and "weight".
    """
    if survey.kind == MARGINALS:
        raise DataError("a marginal table has no respondents to count.")
    if question_id and question_id not in survey.questions:
        raise DataError(f"unknown question {question_id!r}.")
    frame = wave_respondents(survey, wave)
    if question_id:
        frame = frame[frame[question_id].notna()]
    columns = {attr: pd.Categorical(group_values(frame, attr, bins)) for attr in by}
    columns = {attr: values.rename_categories([str(c) for c in values.categories])
               for attr, values in columns.items()}
    return pd.DataFrame({**columns, "weight": weights_of(survey, frame)}, index=frame.index)


@dataclass
class SurveyRow:
    """One (question, slice) with its real distribution, for training and evaluation."""

    question: Question
    slice: dict[str, str]
    dist: np.ndarray
    n_eff: float | None
    weight: float = 1.0
    wave: str = ""


def survey_rows(survey: Survey, by: Sequence[str] | None = None, *, wave: str | None = None,
                questions: Sequence[str] | None = None, bins=None,
                min_n_eff: float = 0) -> list[SurveyRow]:
    """All (question, slice) rows of a survey.

    Args:
        survey: a loaded Survey.
        by: None = every demographic attribute on its own; a list = those attributes
            crossed (respondents) / one attribute (tables); [] = whole population.
        wave: one wave; None = every wave separately (or "" when the survey has none).
        questions: question ids (default: all).
        bins: band edges for numeric attributes.
        min_n_eff: leave out slices with a known effective n below this.
    Returns:
        SurveyRow list in question, attribute, group order.
    """
    waves = [wave] if wave not in (None, "") else (survey.waves() or [""])
    if survey.kind == MARGINALS:
        return _table_rows(survey, by, waves, questions, min_n_eff)
    groupings = [[a] for a in survey.demographics] if by is None else [list(by)]
    rows = []
    unknown = [qid for qid in questions or () if qid not in survey.questions]
    if unknown:
        raise DataError(f"unknown question(s) {', '.join(unknown)}.")
    for qid in questions or list(survey.questions):
        for wave_ in waves:
            for grouping in groupings:
                try:
                    marginals = real_marginals(survey, qid, grouping, wave=wave_ or None,
                                               bins=bins, min_n_eff=min_n_eff)
                except DataError:
                    continue        # no answers in this wave, or attribute absent for qid
                rows.extend(SurveyRow(survey.questions[qid], m.slice, m.shares, m.n_eff,
                                      wave=wave_) for m in marginals
                            if m.usable and (m.n_eff is None or m.n_eff >= min_n_eff))
    return rows


def _table_rows(survey: Survey, by, waves, questions, min_n_eff) -> list[SurveyRow]:
    """survey_rows for marginal tables in one pass over the long table (fast for GSS)."""
    table = survey.marginals
    if by is not None and len(by) > 1:
        raise DataError("a marginal table cannot cross attributes; choose one attribute.")
    keys = ["question_id", "wave", "attribute", "group"]
    blocks = table.groupby(keys, sort=False).indices       # key -> row positions
    options, shares, ns = (table[c].to_numpy() for c in ("option", "share", "n"))
    order = {qid: i for i, qid in enumerate(questions or survey.questions)}
    wave_rank = {w: i for i, w in enumerate(waves)}
    chosen = [(key, pos) for key, pos in blocks.items()
              if key[0] in order and key[1] in wave_rank
              and (key[2] != "" if by is None else key[2] == (by[0] if by else ""))]
    chosen.sort(key=lambda item: (order[item[0][0]], wave_rank[item[0][1]], item[1].min()))
    rows = []
    for (qid, wave_, attribute, group), pos in chosen:
        question = survey.questions[qid]
        index = {option: i for i, option in enumerate(question.options)}
        dist = np.zeros(question.k)
        for option, share in zip(options[pos], shares[pos]):
            dist[index[option]] += share
        n = ns[pos[0]]
        n_eff = None if pd.isna(n) else float(n)
        if n_eff is not None and n_eff < min_n_eff:
            continue
        slice_ = {attribute: str(group)} if attribute else {}
        rows.append(SurveyRow(question, slice_, dist / dist.sum(), n_eff, wave=wave_))
    return rows


def head_rows(rows: Sequence[SurveyRow], questions: int, per_question: int) -> list[SurveyRow]:
    """The first `questions` questions of the rows, each with its first `per_question` rows.

    A fixed, small workload (benchmarks and engine checks use 8 x 6 GSS rows).
    """
    chosen: list[SurveyRow] = []
    counts: dict[str, int] = {}
    for row in rows:
        qid = row.question.id
        if qid not in counts and len(counts) >= questions:
            continue
        counts.setdefault(qid, 0)
        if counts[qid] < per_question:
            counts[qid] += 1
            chosen.append(row)
    return chosen
