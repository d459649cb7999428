"""Population-level error over the questions of a wave, next to the group-level errors of
the same cells: does composing the simulated groups give the survey's own answer?

For each question the cells of the composition are simulated (all questions batched), the
population estimate is scored against the survey's weighted topline (or the real groups
composed, where the data has no topline: sim_core.evaluation.population), and each cell
against its real group. Both levels sit in one long table, with the uniform guess and the
population average beside the checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import Progress, baseline_entry, unique_labels
from sim_core.base.metrics import METRICS, score_all
from sim_core.evaluation.baselines import population_average, uniform
from sim_core.evaluation.calibration_records import calibration_for
from sim_core.evaluation.compare import model_progress, with_survey_style
from sim_core.evaluation.population import (
    PopulationEstimate,
    estimate_from_results,
    population_scores,
)
from sim_core.evaluation.verdict import default_score
from sim_core.simulation.config import SimConfig
from sim_core.simulation.simulate import simulate_rows
from sim_core.survey.composition import (
    Composition,
    composition_from_margins,
    survey_composition,
)
from sim_core.survey.margins import Margins
from sim_core.survey.schema import Question, Survey

POPULATION, GROUPS = "population", "groups"


@dataclass
class _Cell:
    """One (question, slice) to simulate (what simulate_rows reads)."""

    question: Question
    slice: dict[str, str]


@dataclass
class PopulationEvaluation:
    """Population- and group-level scores of every entry over the questions of a wave.

    Attributes:
        survey_name, wave: where the questions come from.
        attributes: the crossed attributes of the cells.
        source: the composition used, in words (the first question's).
        entries: checkpoint labels, then "baseline: <name>".
        rows: one row per (question, entry, level): question_id, entry, level (POPULATION
            or GROUPS), cells (how many cells the group level averages), reference (what
            the population level is scored against) and one column per score.
        estimates: question id -> its PopulationEstimate.
        notes: what the reader should know (questions left out and why).
    """

    survey_name: str
    wave: str | None
    attributes: list[str]
    source: str
    entries: list[str]
    rows: pd.DataFrame
    estimates: dict[str, PopulationEstimate] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> str:
        """The score to read first: Wasserstein when any question is ordinal, else TV."""
        return default_score([e.question for e in self.estimates.values()])

    def summary(self, score: str | None = None) -> pd.DataFrame:
        """Entry x (population, groups): the mean score over the questions, the number of
        questions it averages, and the intervals' coverage and mean width where the
        checkpoint has intervals (index: entry, in entry order)."""
        score = score or self.score
        table = self.rows.pivot_table(index="entry", columns="level", values=score,
                                      aggfunc="mean", sort=False)
        table = table.reindex(index=self.entries, columns=[POPULATION, GROUPS])
        population = self.rows[self.rows["level"] == POPULATION]
        table["questions"] = population.groupby("entry")[score].count().reindex(self.entries)
        cover = self.coverage()
        table["coverage"] = [cover.get(e, (np.nan, np.nan))[0] for e in self.entries]
        table["mean_width"] = [cover.get(e, (np.nan, np.nan))[1] for e in self.entries]
        return table

    def chart_data(self, score: str | None = None) -> pd.DataFrame:
        """question_id, entry, population, groups: one score per question and level (a
        chart of the population-level error beside the group-level one)."""
        score = score or self.score
        table = self.rows.pivot_table(index=["question_id", "entry"], columns="level",
                                      values=score, aggfunc="mean", sort=False)
        return table.reindex(columns=[POPULATION, GROUPS]).reset_index()

    def coverage(self) -> dict[str, tuple[float, float]]:
        """Checkpoint -> (share of real population shares inside its prediction interval,
        the intervals' mean width), over the questions with a real answer."""
        out = {}
        for entry in self.entries:
            hits, widths = [], []
            for estimate in self.estimates.values():
                if entry in estimate.intervals and estimate.reference is not None:
                    low, high = estimate.intervals[entry]
                    ref = estimate.reference
                    hits.extend((low - 1e-12 <= ref) & (ref <= high + 1e-12))
                    widths.extend(high - low)
            if hits:
                out[entry] = (float(np.mean(hits)), float(np.mean(widths)))
        return out

    def conformity(self, entry: str, questions: Sequence[str] | None = None) -> np.ndarray:
        """Population-level conformity scores of an entry on these questions (default: all
        with a real answer): residuals for the "conformal" interval of other questions."""
        chosen = [self.estimates[q] for q in (questions or self.estimates)
                  if self.estimates[q].reference is not None]
        if not chosen:
            return np.array([])
        return population_scores([e.reference for e in chosen],
                                 [e.entries()[entry] for e in chosen])


def _compositions(survey, attributes, questions, margins, rake_from, wave, bins, notes):
    """question id -> Composition; questions without one are left out with a note."""
    out: dict[str, Composition] = {}
    shared = None
    for qid in questions:
        try:
            if margins is None:
                out[qid] = survey_composition(survey, attributes, wave=wave, question_id=qid,
                                              bins=bins)
            elif rake_from == "independence":
                shared = shared or composition_from_margins(
                    margins, attributes, survey=survey, wave=wave, bins=bins,
                    rake_from="independence")
                out[qid] = shared
            else:
                out[qid] = composition_from_margins(margins, attributes, survey=survey,
                                                    wave=wave, question_id=qid, bins=bins,
                                                    rake_from=rake_from)
        except DataError as error:
            notes.append(f"{qid} left out: {error}")
    if not out:
        raise DataError("no question has a composition: " + "; ".join(notes[-3:]))
    return out


def _group_rows(survey, estimate: PopulationEstimate, wave) -> list[dict]:
    """Group-level rows of one question: each entry's mean score over its real cells."""
    question = estimate.question
    index = [i for i, real in enumerate(estimate.real_cells) if real is not None]
    if not index:
        return []
    average = population_average(survey, question.id, wave=wave)
    entries = {label: [results[i].shares for i in index]
               for label, results in estimate.cells.items()}
    entries[baseline_entry("uniform")] = [uniform(question.k)] * len(index)
    entries[baseline_entry("population")] = [average] * len(index)
    rows = []
    for entry, dists in entries.items():
        scores = [score_all(estimate.real_cells[i], d, ordinal_values=question.ordinal_values)
                  for i, d in zip(index, dists)]
        keys = [k for k in METRICS if any(k in s for s in scores)]
        rows.append({"question_id": question.id, "entry": entry, "level": GROUPS,
                     "cells": len(index), "reference": "real groups",
                     **{k: float(np.mean([s[k] for s in scores if k in s])) for k in keys}})
    return rows


def evaluate_population(models: list[Any], survey: Survey, attributes: Sequence[str], *,
                        margins: Margins | None = None, rake_from: str | None = None,
                        wave: str | None = None, questions: Sequence[str] | None = None,
                        config: SimConfig | None = None, bins=None,
                        residuals: dict[str, Sequence[float]] | None = None,
                        progress: Progress = None, should_stop=None) -> PopulationEvaluation:
    """Population- and group-level errors over the questions of a survey (one wave).

    Args:
        models: LoadedModel list.
        survey: the real data.
        attributes: the attributes crossed into cells.
        margins: the population's margins (None: the survey's own composition, per
            question: those who answered it).
        rake_from: raking seed with margins ("survey" / "independence"; see
            sim_core.survey.composition.RAKE_FROM).
        wave, questions, bins: which answers (default: every question).
        config: SimConfig; residuals: as in sim_core.evaluation.population.
        progress: (done, total) over every (question, cell) of every model.
    Returns:
        PopulationEvaluation.
    """
    config = with_survey_style(config or SimConfig(), survey)
    questions = list(questions or survey.questions)
    notes: list[str] = []
    compositions = _compositions(survey, list(attributes), questions, margins, rake_from,
                                 wave, bins, notes)
    pairs = [_Cell(survey.questions[q], cell) for q, c in compositions.items() for cell in c.cells]
    labels = unique_labels(models)
    flat = {}
    for i, (lm, label) in enumerate(zip(models, labels)):
        record = calibration_for(lm, survey)
        flat[label] = simulate_rows(lm, pairs, config,
                                    calibration=record.calibration if record else None,
                                    progress=model_progress(progress, i, len(models),
                                                            units=len(pairs)),
                                    should_stop=should_stop)
        if record is not None and record.note:
            notes.append(record.note)
    estimates, rows, at = {}, [], 0
    for qid, composition in compositions.items():
        question = survey.questions[qid]
        cells = {label: flat[label][at:at + len(composition.cells)] for label in labels}
        at += len(composition.cells)
        estimate = estimate_from_results(question, composition, cells, survey=survey,
                                         wave=wave, bins=bins, residuals=residuals,
                                         level=config.interval_level)
        estimates[qid] = estimate
        rows += [{"question_id": qid, "entry": entry, "level": POPULATION,
                  "cells": len(composition.cells), "reference": estimate.reference_label,
                  **scores} for entry, scores in estimate.scores.items()]
        rows += _group_rows(survey, estimate, wave)
    entries = labels + [baseline_entry(n) for n in ("uniform", "population")]
    first = next(iter(compositions.values()))
    return PopulationEvaluation(survey.name, wave, list(attributes), first.source, entries,
                                pd.DataFrame.from_records(rows), estimates, notes)
