"""Scores of several checkpoints and baselines over many (question, slice) rows.

The one code path behind the Evaluate page, `python -m finetune eval` and bench/fidelity.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import Progress, baseline_entry, unique_labels
from sim_core.base.metrics import METRICS, compute, is_ordinal
from sim_core.evaluation.baselines import ROW_BASELINES, check_names, population_average, uniform
from sim_core.evaluation.calibration_records import calibration_for, checkpoint_verdict
from sim_core.evaluation.compare import model_progress, with_survey_style
from sim_core.evaluation.verdict import heldout_from_evaluation, verdict
from sim_core.simulation.config import SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.simulate import (
    RunPlan,
    check_budget,
    orders_for,
    plan_rows,
    simulate_rows,
    style_warning,
)
from sim_core.survey.marginal import slice_label
from sim_core.survey.schema import Survey
from sim_core.survey.slices import SurveyRow, survey_rows


@dataclass
class Evaluation:
    """Per-row scores of every entry.

    Attributes:
        survey_name: where the rows came from.
        wave: the wave evaluated (None: all).
        entries: checkpoint labels, then "baseline: <name>".
        rows: one row per (question, slice, entry): question_id, slice, attribute, group,
            wave, n_eff, entry and one column per score (NaN where it does not apply).
        mode, orders: simulation settings used (orders 0: each checkpoint's own).
        entry_orders: checkpoint label -> option orders it was simulated with.
        dists: entry -> predicted distribution per survey row (row order of `survey_rows`).
        survey_rows: the SurveyRows evaluated.
        notes: what the reader should know (e.g. an adapter trained with other wording).
        calibrated: checkpoint label -> whether its shares were calibrated.
        raw_dists: checkpoint label -> its uncalibrated distributions (calibrated ones only).
        records: checkpoint label -> its CheckpointCalibration (None: none), for verdicts.
        zero_shot_of: adapter label -> label of its base model when that was evaluated too.
    """

    survey_name: str
    wave: str | None
    entries: list[str]
    rows: pd.DataFrame
    mode: str = "first-token"
    orders: int = 1
    entry_orders: dict[str, int] = field(default_factory=dict)
    dists: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    survey_rows: list[SurveyRow] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    calibrated: dict[str, bool] = field(default_factory=dict)
    raw_dists: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    records: dict[str, Any] = field(default_factory=dict, repr=False)
    zero_shot_of: dict[str, str] = field(default_factory=dict)

    def score_keys(self) -> list[str]:
        """Score columns with at least one value, in METRICS order."""
        return [k for k in METRICS if k in self.rows and self.rows[k].notna().any()]

    def summary(self) -> pd.DataFrame:
        """Entry x score: mean over rows (index: entry, in entry order; plus a rows count)."""
        keys = self.score_keys()
        table = self.rows.groupby("entry", sort=False)[keys].mean()
        table["rows"] = self.rows.groupby("entry", sort=False).size()
        return table.reindex(self.entries)

    def heatmap(self, entry: str, score: str = "wasserstein") -> pd.DataFrame:
        """Question x slice table of one entry's score (NaN where it does not apply)."""
        sub = self._entry(entry)
        return sub.pivot_table(index="question_id", columns="slice", values=score,
                               aggfunc="mean", sort=False, dropna=False)

    def worst_slices(self, entry: str, score: str = "wasserstein", n: int = 5) -> pd.DataFrame:
        """The n (question, slice) rows where the entry scores worst."""
        sub = self._entry(entry).dropna(subset=[score])
        ascending = METRICS[score].direction == "higher"
        sub = sub.sort_values(score, ascending=ascending, kind="stable").head(n)
        return sub[["question_id", "slice", score]].reset_index(drop=True)

    def per_attribute(self, score: str = "wasserstein") -> pd.DataFrame:
        """Attribute x entry: mean score over the rows of each attribute's groups."""
        table = self.rows.pivot_table(index="attribute", columns="entry", values=score,
                                      aggfunc="mean", sort=False)
        return table[[e for e in self.entries if e in table.columns]]

    def compare_entries(self, first: str, second: str, score: str = "wasserstein"
                        ) -> pd.DataFrame:
        """Two entries side by side: mean score per question and the difference.

        Returns:
            Index question_id; columns first, second and difference (second - first).
        """
        self._entry(first), self._entry(second)        # KeyError for unknown entries
        rows = self.rows[self.rows["entry"].isin([first, second])]
        table = rows.pivot_table(index="question_id", columns="entry", values=score,
                                 aggfunc="mean", sort=False)[[first, second]]
        table["difference"] = table[second] - table[first]
        return table

    def group_deviation_correlation(self, entry: str) -> float:
        """Pearson correlation of simulated and real deviations from each question's mean.

        For every question, the mean distribution over its rows is taken away from each row
        (real and simulated separately); the correlation runs over all (row, option)
        pairs. 1: the entry moves between groups exactly as people do; 0: not at all.
        """
        if entry not in self.dists:
            raise KeyError(f"unknown entry {entry!r}; known: {', '.join(self.entries)}")
        real, sim = [], []
        for indices in _by_question(self.survey_rows).values():
            p = np.array([self.survey_rows[i].dist for i in indices])
            q = np.array([self.dists[entry][i] for i in indices])
            real.append((p - p.mean(axis=0)).ravel())
            sim.append((q - q.mean(axis=0)).ravel())
        real_all, sim_all = np.concatenate(real), np.concatenate(sim)
        if np.abs(real_all).max() < 1e-12 or np.abs(sim_all).max() < 1e-12:
            return float("nan")     # no deviation at all (e.g. a constant baseline)
        return float(np.corrcoef(real_all, sim_all)[0, 1])

    def verdicts(self) -> dict[str, str]:
        """Checkpoint label -> its verdict from its held-out measurement (card or record),
        judged as it was simulated here (calibrated or raw)."""
        return {label: checkpoint_verdict(self.records.get(label), label,
                                          calibrated=self.calibrated.get(label, False))
                for label in self.entry_orders}

    def verdict_here(self, entry: str) -> str:
        """The verdict on the rows evaluated here (they are held out only if the checkpoint
        never saw them): the entry against its baselines and, for an adapter whose base
        model was evaluated too, against that zero-shot model."""
        held = heldout_from_evaluation(self, entry, zero_shot=self.zero_shot_of.get(entry))
        if not held.questions:
            return f"{entry}: no question here has the score the verdict uses."
        return f"{entry}: " + verdict(held, subject="it").text

    def _entry(self, entry: str) -> pd.DataFrame:
        if entry not in self.entries:
            raise KeyError(f"unknown entry {entry!r}; known: {', '.join(self.entries)}")
        return self.rows[self.rows["entry"] == entry]


def _by_question(rows: Sequence[SurveyRow]) -> dict[str, list[int]]:
    """question id -> indices of its rows (in row order)."""
    out: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        out.setdefault(row.question.id, []).append(i)
    return out


def _population(rows, reference, population) -> list[np.ndarray | None]:
    """Population guess per row: given, else mean of the reference rows of its question."""
    groups: dict[tuple[str, str], list] = {}
    for r in reference:
        groups.setdefault((r.question.id, r.wave), []).append(r.dist)
        groups.setdefault((r.question.id, "*"), []).append(r.dist)
    means = {key: np.mean(dists, axis=0) for key, dists in groups.items()}
    out = []
    for row in rows:
        if population is not None and row.question.id in population:
            out.append(np.asarray(population[row.question.id], dtype=float))
        else:
            out.append(means.get((row.question.id, row.wave), means.get((row.question.id, "*"))))
    return out


def _score_frame(rows: list[SurveyRow], entry: str, dists: list) -> pd.DataFrame:
    """Every score of one entry on every row, vectorised per question."""
    keys = list(METRICS)
    values = np.full((len(rows), len(keys)), np.nan)
    for indices in _by_question(rows).values():
        indices = [i for i in indices if dists[i] is not None]
        if not indices:
            continue
        question = rows[indices[0]].question
        p = np.array([rows[i].dist for i in indices])
        q = np.array([dists[i] for i in indices])
        n = np.array([np.nan if rows[i].n_eff is None else rows[i].n_eff for i in indices])
        for j, key in enumerate(keys):
            metric = METRICS[key]
            if metric.ordinal_only and not is_ordinal(question.ordinal_values):
                continue
            if metric.needs_n:
                has_n = np.isfinite(n) & (n > 0)
                if has_n.any():
                    values[np.array(indices)[has_n], j] = compute(key, p[has_n], q[has_n],
                                                                  n=n[has_n])
                continue
            values[indices, j] = compute(key, p, q, ordinal_values=question.ordinal_values)
    frame = pd.DataFrame(values, columns=keys)
    frame.insert(0, "entry", entry)
    return frame


def uncalibrated(evaluation: Evaluation) -> Evaluation:
    """The same evaluation scored on every checkpoint's raw (uncalibrated) shares."""
    if not evaluation.raw_dists:
        return evaluation
    dists = {**evaluation.dists, **evaluation.raw_dists}
    rows, info = evaluation.survey_rows, _row_info(evaluation.survey_rows)
    table = pd.concat([pd.concat([info, _score_frame(rows, entry, d)], axis=1)
                       for entry, d in dists.items()], ignore_index=True)
    return replace(evaluation, rows=table, dists=dists, raw_dists={},
                   calibrated={label: False for label in evaluation.calibrated})


def mean_scores(rows: list[SurveyRow], dists: list) -> dict[str, float]:
    """Mean of every score over the rows (NaN-aware; scores that never apply left out)."""
    frame = _score_frame(rows, "", dists)
    return {k: float(frame[k].mean()) for k in METRICS if frame[k].notna().any()}


def _row_info(rows: list[SurveyRow]) -> pd.DataFrame:
    """question_id, slice, attribute, group, wave, n_eff of each row."""
    return pd.DataFrame({
        "question_id": [r.question.id for r in rows],
        "slice": [slice_label(r.slice) for r in rows],
        "attribute": [", ".join(r.slice) or "All" for r in rows],
        "group": [", ".join(r.slice.values()) or "All" for r in rows],
        "wave": [r.wave for r in rows],
        "n_eff": [np.nan if r.n_eff is None else float(r.n_eff) for r in rows]})


def evaluate_rows(models: list[ModelHandle], rows: list[SurveyRow], *,
                  config: SimConfig | None = None,
                  reference_rows: list[SurveyRow] | None = None,
                  baselines: Sequence[str] = ROW_BASELINES,
                  population: dict[str, np.ndarray] | None = None, survey_name: str = "",
                  wave: str | None = None, calibrations: Sequence[Any] | None = None,
                  records: Sequence[Any] | None = None, progress: Progress = None,
                  should_stop=None) -> Evaluation:
    """Simulate every row with every model (batched) and score it with the baselines.

    Args:
        models: LoadedModel list.
        rows: the (question, slice) rows with their real distributions.
        config: SimConfig (default: first-token, default orders).
        reference_rows: rows whose per-question mean is the population baseline
            (default: `rows`; e.g. the training groups for a split by slice).
        baselines: among sim_core.evaluation.baselines.ROW_BASELINES.
        population: question id -> population distribution, overriding reference_rows.
        survey_name, wave: labels for the result.
        calibrations: one sim_core.evaluation.calibration_fit.Calibration (or None) per
            model, applied when config.calibrate (given: exactly these, e.g. while training).
        records: one CheckpointCalibration (or None) per model, for the calibrations and
            the verdicts (default: sim_core.evaluation.calibration_records.calibration_for
            each model: an adapter's card; a base model's record for `survey_name`, if one is
            given).
        progress: (done, total) callback counting rows (total = rows x models);
            should_stop: polled, raises Cancelled.

    Returns:
        Evaluation with one scored row per (row, entry).
    """
    if not rows:
        raise DataError("nothing to evaluate: no (question, slice) rows.")
    check_names(baselines, ROW_BASELINES)
    config = config or SimConfig()
    dists: dict[str, list] = {}
    raw: dict[str, list] = {}
    calibrated: dict[str, bool] = {}
    entry_orders: dict[str, int] = {}
    if records is None:
        records = [None] * len(models) if calibrations is not None else [
            calibration_for(lm, survey_name or None)
            if survey_name or lm.adapter_path is not None else None
            for lm in models]
    if calibrations is None:
        calibrations = [r.calibration if r is not None else None for r in records]
    # the whole run against Most requests (each checkpoint's part alone could fit)
    check_budget(sum((plan_rows(lm, rows, config) for lm in models), RunPlan()),
                 config.max_requests)
    for i, (lm, label) in enumerate(zip(models, unique_labels(models))):
        entry_orders[label] = orders_for(lm, config)
        results = simulate_rows(lm, rows, config, calibration=calibrations[i],
                                should_stop=should_stop,
                                progress=model_progress(progress, i, len(models),
                                                        units=len(rows)))
        dists[label] = [r.shares for r in results]
        calibrated[label] = bool(results) and all(r.calibrated for r in results)
        if calibrated[label]:
            raw[label] = [r.raw_shares for r in results]
    rows, unread = _readable(rows, dists, raw)
    if "uniform" in baselines:
        dists[baseline_entry("uniform")] = [uniform(r.question.k) for r in rows]
    if "population" in baselines:
        dists[baseline_entry("population")] = _population(rows, reference_rows or rows,
                                                            population)
    info = _row_info(rows)
    attributes = {a for r in rows for a in r.slice}
    frames = [pd.concat([info, _score_frame(rows, entry, d)], axis=1) for entry, d in dists.items()]
    table = pd.concat(frames, ignore_index=True)
    notes = [w for w in (style_warning(lm, config, attributes) for lm in models) if w]
    labels = unique_labels(models)
    keys = [(lm.fingerprint, lm.adapter) for lm in models]
    bases = {fp: label for (fp, adapter), label in zip(keys, labels) if not adapter}
    zero_shot_of = {label: bases[fp] for (fp, adapter), label in zip(keys, labels)
                    if adapter and fp in bases}
    return Evaluation(survey_name=survey_name, wave=wave, entries=list(dists), rows=table,
                      mode=config.mode, entry_orders=entry_orders,
                      orders=(config.orders or 0) if config.mode == "first-token" else 1,
                      dists=dists, survey_rows=list(rows), calibrated=calibrated,
                      raw_dists=raw, records=dict(zip(labels, records)),
                      zero_shot_of=zero_shot_of,
                      notes=notes + unread
                      + [r.note for r in records if r is not None and r.note])


def _readable(rows: list[SurveyRow], dists: dict[str, list], raw: dict[str, list]
              ) -> tuple[list[SurveyRow], list[str]]:
    """The rows every checkpoint answered readably (dists and raw cut to them in place), and
    a note per checkpoint whose answers to some rows could not be read: those rows leave the
    evaluation for every entry, so all entries are scored on the same rows."""
    missing = {label: [i for i, d in enumerate(values) if np.isnan(d).any()]
               for label, values in dists.items()}
    dropped = sorted({i for indices in missing.values() for i in indices})
    if not dropped:
        return rows, []
    keep = [i for i in range(len(rows)) if i not in set(dropped)]
    if not keep:
        raise DataError("no (question, slice) row has a readable simulated answer from every "
                        "checkpoint (unparsed replies are never replaced by a guess); try "
                        "another mode or model.")
    for table in (dists, raw):
        for label in table:
            table[label] = [table[label][i] for i in keep]
    notes = [f"{label}: {len(indices)} of {len(rows)} rows had no readable answer (unparsed "
             "replies, never replaced by a guess); those rows are left out for every entry."
             for label, indices in missing.items() if indices]
    return [rows[i] for i in keep], notes


def evaluate(models: list[ModelHandle], survey: Survey, *, by: Sequence[str] | None = None,
             wave: str | None = None, questions: Sequence[str] | None = None,
             config: SimConfig | None = None, bins=None, min_n_eff: float = 0,
             baselines: Sequence[str] = ROW_BASELINES, calibrations: Sequence | None = None,
             progress: Progress = None, should_stop=None) -> Evaluation:
    """Evaluate checkpoints on a whole survey (rows from sim_core.survey.slices.survey_rows).

    Args:
        models: LoadedModel list.
        survey: the real data.
        by: None = every attribute on its own; a list = those attributes crossed.
        wave, questions, bins, min_n_eff: as in survey_rows.
        calibrations: as in evaluate_rows; default: each checkpoint's own
            (calibration_for: adapter card, or the base model's record for this survey,
            matched by the data's fingerprint), kept in Evaluation.records for the verdicts.
        config, baselines, progress, should_stop: as in evaluate_rows.

    Returns:
        Evaluation; the population baseline is the survey's whole-population marginal
        (respondent data) or the mean of each question's groups (marginal tables).
    """
    config = with_survey_style(config or SimConfig(), survey)
    rows = survey_rows(survey, by, wave=wave, questions=questions, bins=bins,
                       min_n_eff=min_n_eff)
    population = None
    if "population" in baselines and survey.kind == "respondents":
        population = {qid: population_average(survey, qid, wave=wave)
                      for qid in dict.fromkeys(r.question.id for r in rows)}
    records = [calibration_for(lm, survey) for lm in models] if calibrations is None else None
    return evaluate_rows(models, rows, config=config, baselines=baselines,
                         population=population, survey_name=survey.name, wave=wave,
                         calibrations=calibrations, records=records, progress=progress,
                         should_stop=should_stop)


def plan_evaluate(models: list[ModelHandle], survey: Survey, *,
                  by: Sequence[str] | None = None, wave: str | None = None,
                  questions: Sequence[str] | None = None, config: SimConfig | None = None,
                  bins=None, min_n_eff: float = 0) -> RunPlan:
    """What evaluate() with these arguments would send, before anything is sent: every
    checkpoint's requests and tokens (answers already in the cache left out).

    Returns:
        The RunPlan summed over the checkpoints (RunPlan.text() says it in one line).
    """
    config = with_survey_style(config or SimConfig(), survey)
    rows = survey_rows(survey, by, wave=wave, questions=questions, bins=bins,
                       min_n_eff=min_n_eff)
    return sum((plan_rows(lm, rows, config) for lm in models), RunPlan())


def group_deviation_correlation(source: Any, rows: list[SurveyRow] | None = None, *,
                                config: SimConfig | None = None, entry: str | None = None) -> float:
    """Correlation of simulated and real group deviations (see Evaluation's method).

    Args:
        source: an Evaluation, or a LoadedModel to evaluate on `rows` first.
        rows: the rows (with a LoadedModel).
        config: SimConfig for the simulation (with a LoadedModel).
        entry: which entry of an Evaluation (default: its first).
    """
    if isinstance(source, Evaluation):
        return source.group_deviation_correlation(entry or source.entries[0])
    if not rows:
        raise DataError("group_deviation_correlation needs rows to simulate.")
    evaluation = evaluate_rows([source], rows, config=config, baselines=())
    return evaluation.group_deviation_correlation(evaluation.entries[0])
