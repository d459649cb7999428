"""Real vs simulated answers for one question, per slice, with every score, the baselines
and the sampling-noise floor. The dashboard, the CLI and the report all call compare()."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError, SimError
from sim_core.base.labels import NOISE_FLOOR, REAL, Progress, baseline_entry, unique_labels
from sim_core.base.metrics import METRICS, best_entry, noise_floor, score_all
from sim_core.evaluation import baselines as base_lib
from sim_core.evaluation.calibration_fit import summary
from sim_core.evaluation.calibration_records import (
    CheckpointCalibration,
    calibration_for,
    checkpoint_verdict,
)
from sim_core.simulation.adapter_card import read_card
from sim_core.simulation.config import MODES, SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.simulate import (
    RunPlan,
    SimResult,
    check_budget,
    orders_for,
    plan_rows,
    simulate,
    style_warning,
)
from sim_core.survey.design import interval_method
from sim_core.survey.marginal import SliceMarginal, slice_label
from sim_core.survey.schema import Question, Survey
from sim_core.survey.slices import real_marginals


@dataclass
class SliceComparison:
    """One slice: real marginal, simulated results, baselines, scores, noise floor.

    Attributes:
        slice: attribute -> group ({} = everyone).
        real: the real marginal, or None for a drafted question.
        simulated: checkpoint label -> SimResult.
        baselines: baseline name ("uniform", "population", "classifier") -> distribution.
        scores: entry (checkpoint label or "baseline: <name>") -> score key -> value;
            empty without real data.
        noise_floor: score key -> expected score of a second real sample of the same size
            ({} when the real n is unknown).
    """

    slice: dict[str, str]
    real: SliceMarginal | None
    simulated: dict[str, SimResult]
    baselines: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]
    noise_floor: dict[str, float]

    @property
    def label(self) -> str:
        """slice_label of the slice."""
        return slice_label(self.slice)

    def entries(self) -> dict[str, np.ndarray]:
        """Entry name -> distribution: checkpoints first, then baselines."""
        out = {label: result.shares for label, result in self.simulated.items()}
        out.update({baseline_entry(name): dist for name, dist in self.baselines.items()})
        return out


@dataclass
class Comparison:
    """The comparison of one question (see compare())."""

    question: Question
    survey_name: str | None
    wave: str | None
    by: list[str]
    config: SimConfig
    checkpoints: list[dict]
    slices: list[SliceComparison]
    notes: list[str] = field(default_factory=list)
    survey_facts: dict[str, str] = field(default_factory=dict)   # population, weighting, intervals
    population: Any = None      # its PopulationEstimate, when asked for (evaluation.population)

    def shares_table(self) -> pd.DataFrame:
        """Long table: slice, entry, option, share, ci_low, ci_high (the real shares' 95 %
        interval), pi_low, pi_high (a checkpoint's prediction interval at
        config.interval_level, where it has a calibration)."""
        records = []
        nothing = (None, None)
        for sc in self.slices:
            parts = [(REAL, sc.real.shares, (sc.real.ci_low, sc.real.ci_high), nothing)] \
                if sc.real else []
            parts += [(entry, result.shares, nothing,
                       (result.interval_low, result.interval_high))
                      for entry, result in sc.simulated.items()]
            parts += [(baseline_entry(name), dist, nothing, nothing)
                      for name, dist in sc.baselines.items()]
            for entry, dist, ci, pi in parts:
                for i, option in enumerate(self.question.options):
                    records.append((sc.label, entry, option, float(dist[i]),
                                    *(np.nan if b is None else float(b[i]) for b in (*ci, *pi))))
        return pd.DataFrame.from_records(
            records, columns=["slice", "entry", "option", "share", "ci_low", "ci_high",
                              "pi_low", "pi_high"])

    def score_table(self) -> pd.DataFrame:
        """Scores per slice and entry, plus the noise floor of each slice.

        Columns: slice, entry, n, n_eff, one column per score present, and best_<key>
        (True for the best entry of that slice and score; the noise floor never counts).
        """
        keys = [k for k in METRICS if any(k in s for sc in self.slices for s in sc.scores.values())]
        records = []
        for sc in self.slices:
            n = sc.real.n if sc.real else None
            n_eff = sc.real.n_eff if sc.real else None
            best = {k: best_entry({e: s.get(k, np.nan) for e, s in sc.scores.items()}, k)
                    for k in keys}
            for entry, scores in sc.scores.items():
                records.append({"slice": sc.label, "entry": entry, "n": n, "n_eff": n_eff,
                                **{k: scores.get(k, np.nan) for k in keys},
                                **{f"best_{k}": best[k] == entry for k in keys}})
            if sc.noise_floor:
                records.append({"slice": sc.label, "entry": NOISE_FLOOR, "n": n, "n_eff": n_eff,
                                **{k: sc.noise_floor.get(k, np.nan) for k in keys},
                                **{f"best_{k}": False for k in keys}})
        columns = ["slice", "entry", "n", "n_eff"] + keys + [f"best_{k}" for k in keys]
        return pd.DataFrame.from_records(records, columns=columns)


# ---------------------------------------------------------------- shared helpers

def checkpoint_info(lm: ModelHandle, label: str, config: SimConfig | None = None,
                    record: CheckpointCalibration | None = None) -> dict:
    """label, name, adapter, fingerprints, option orders used, the adapter card, the endpoint
    (None for a local model), the weights' dtype and device (GPU and CPU numbers differ
    slightly), and its calibration: whether it was applied, the interval level and the
    verdict in words."""
    config = config or SimConfig()
    path = lm.adapter_path
    try:
        card = read_card(path).to_dict() if path is not None else {}
    except SimError:
        card = {}           # an unreadable card: the report says nothing about it
    if card.get("calibration") or card.get("heldout"):
        # reports show the calibration in words, not its thousand residuals
        card["calibration"] = summary(record.calibration)["text"] if record else None
        card["heldout"] = (card.get("heldout") or {}).get("what")
    applies = record is not None and config.mode == "first-token"
    return {"label": label, "name": lm.name, "adapter": lm.adapter,
            "fingerprint": lm.fingerprint,
            "adapter_fingerprint": lm.adapter_fingerprint, "card": card,
            "orders": orders_for(lm, config),
            "endpoint": lm.runtime.get("endpoint"),
            "dtype": lm.runtime.get("dtype"), "device": lm.runtime.get("device"),
            "calibrated": applies and config.calibrate,
            "calibration": summary(record.calibration) if applies else None,
            "interval_level": config.interval_level if applies else None,
            "verdict": checkpoint_verdict(record, label, calibrated=applies and config.calibrate)}


def model_progress(progress: Progress, index: int, count: int, units: int = 1000) -> Progress:
    """Map one model's (done, total) onto the whole run of `count` models, in `units` per
    model (e.g. its slices: done is then the slices' worth of prompts finished, rounded
    down, so "12 of 47" never claims work that is not done)."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        progress(int(math.floor((index + fraction) * units + 1e-9)), count * units)
    return report


def with_survey_style(config: SimConfig, survey: Survey | None) -> SimConfig:
    """The config with the survey's population and display names in its prompt style."""
    if survey is None:
        return config
    return replace(config, style=config.style.for_survey(survey))


# ---------------------------------------------------------------- compare

def _real_and_slices(question, survey, by, wave, slices, bins):
    """Real marginals (or None per slice for a drafted question) and the slices to run."""
    if survey is None or question.id not in survey.questions:
        if slices is None:
            slices = _survey_slices(survey, by, wave, bins) if survey is not None else [{}]
        return [None] * len(slices), [dict(s) for s in slices]
    reals = real_marginals(survey, question.id, by, wave=wave, bins=bins)
    if slices is not None:
        wanted = {slice_label(s) for s in slices}
        reals = [m for m in reals if m.label in wanted]
        if not reals:
            raise DataError(f"none of the chosen slices has answers to {question.id}.")
    return reals, [dict(m.slice) for m in reals]


def _survey_slices(survey: Survey, by, wave, bins) -> list[dict]:
    """Slices of a drafted question: those of the survey's first question with this `by`."""
    for qid in survey.questions:
        try:
            return [m.slice for m in real_marginals(survey, qid, by, wave=wave, bins=bins)]
        except DataError:
            continue
    return [{}]


def _baselines(survey, question, by, wave, bins, which, labels, notes) -> dict[str, dict]:
    """baseline name -> slice label -> distribution (uniform only for a drafted question)."""
    out: dict[str, dict] = {}
    if "uniform" in which:
        out["uniform"] = {label: base_lib.uniform(question.k) for label in labels}
    if survey is None or question.id not in survey.questions:
        return out
    for name in [w for w in which if w != "uniform"]:
        try:
            found = base_lib.baselines_for(survey, question.id, by, wave=wave, bins=bins,
                                           which=(name,))
        except DataError as error:
            notes.append(f"{name} baseline left out: {error}")
            continue
        if name in found:
            out[name] = found[name]
            if name in base_lib.MODEL_BASELINES:
                notes.append(f"{name} baseline features: "
                             + ", ".join(base_lib.baseline_features(survey, by)) + ".")
    return out


def _scores(question: Question, real: SliceMarginal, entries: dict[str, np.ndarray]):
    """Every score of every entry against the real shares, and the noise floor."""
    values = question.ordinal_values
    # chi-square counts: Kish n_eff, so that weights do not pretend to more certainty
    n = real.n_eff if real.n_eff else None
    scores = {entry: score_all(real.shares, dist, ordinal_values=values, n=n)
              for entry, dist in entries.items()}
    return scores, noise_floor(real.shares, real.n_eff, ordinal_values=values)


@dataclass(frozen=True)
class _Ask:
    """One (question, slice) of a comparison (the shape plan_rows reads)."""

    question: Question
    slice: dict


def plan_compare(models: list[ModelHandle], question: Question, *,
                 survey: Survey | None = None, by: Sequence[str] = (), wave: str | None = None,
                 slices: list[dict] | None = None, config: SimConfig | None = None,
                 bins=None) -> RunPlan:
    """What compare() with these arguments would send, before anything is sent: every
    checkpoint's requests and tokens (answers already in the cache left out; prompts are
    built and the cache read, nothing else).

    Args:
        models, question, survey, by, wave, slices, config, bins: as in compare().
    Returns:
        The RunPlan summed over the checkpoints (RunPlan.text() says it in one line).
    """
    config = with_survey_style(config or SimConfig(), survey)
    _, slice_list = _real_and_slices(question, survey, list(by), wave, slices, bins)
    asks = [_Ask(question, s) for s in slice_list]
    return sum((plan_rows(lm, asks, config) for lm in models), RunPlan())


def compare(models: list[ModelHandle], question: Question, *, survey: Survey | None = None,
            by: Sequence[str] = (), wave: str | None = None, slices: list[dict] | None = None,
            config: SimConfig | None = None, bins=None,
            baselines: Sequence[str] = tuple(base_lib.BASELINES),
            progress: Progress = None, should_stop=None) -> Comparison:
    """Compare checkpoints with the real answers to one question, slice by slice.

    Args:
        models: LoadedModel list (base models and/or adapters).
        question: the question (from the survey, or drafted: then no real data).
        survey: the real data (None for a drafted question).
        by: slice attributes (crossed for respondent data).
        wave: one wave of the survey.
        slices: restrict to these slices (required shape for a drafted question; default
            [{}], or the survey's groups for `by`).
        config: SimConfig (default: first-token, default orders).
        bins: band edges for numeric attributes.
        baselines: names from sim_core.evaluation.baselines.BASELINES.
        progress: (done, total) callback counting slices (total = slices x models);
            should_stop: polled, raises Cancelled.

    Returns:
        Comparison; without real data every slice has real None and no scores.
    Raises:
        SimError: the checkpoints together would send more requests than
            config.max_requests (checked before anything is sent).
    """
    config = with_survey_style(config or SimConfig(), survey)
    base_lib.check_names(baselines)
    by = list(by)
    reals, slice_list = _real_and_slices(question, survey, by, wave, slices, bins)
    if config.max_requests is not None and any(lm.remote for lm in models):
        # every checkpoint's simulate() checks its own part: the limit is for the whole run
        asks = [_Ask(question, s) for s in slice_list]
        check_budget(sum((plan_rows(lm, asks, config) for lm in models), RunPlan()),
                     config.max_requests)
    labels = unique_labels(models)
    records = [calibration_for(lm, survey) for lm in models]
    results = {label: simulate(lm, question, slice_list, config,
                               calibration=record.calibration if record else None,
                               progress=model_progress(progress, i, len(models),
                                                       units=len(slice_list)),
                               should_stop=should_stop)
               for i, (lm, label, record) in enumerate(zip(models, labels, records))}
    attributes = {a for s in slice_list for a in s}
    notes = [w for w in (style_warning(lm, config, attributes) for lm in models) if w]
    notes += [r.note for r in records if r is not None and r.note]
    if config.mode != "first-token" and any(records):
        notes.append(f"{MODES[config.mode].label}: the shares are not calibrated and carry no "
                     "prediction interval (calibrations are fitted on first-token shares).")
    for label, simulated in results.items():
        unread = [slice_label(r.slice) for r in simulated if np.isnan(r.shares).any()]
        if unread:
            notes.append(f"{label}: no readable answer for {', '.join(unread)} (unparsed "
                         "replies are counted, never replaced by a guess); not scored there.")
    slice_labels = [slice_label(s) for s in slice_list]
    base = _baselines(survey, question, by, wave, bins, baselines, slice_labels, notes)
    out = []
    for i, (slice_, real) in enumerate(zip(slice_list, reals)):
        sc = SliceComparison(slice_, real, {lab: results[lab][i] for lab in labels},
                             {name: dists[slice_labels[i]] for name, dists in base.items()
                              if slice_labels[i] in dists}, {}, {})
        if real is not None and real.usable:
            sc.scores, sc.noise_floor = _scores(question, real, sc.entries())
        elif real is not None:
            notes.append(f"{real.label}: {real.note}; not scored.")
        out.append(sc)
    return Comparison(question=question, survey_name=survey.name if survey else None,
                      wave=wave, by=by, config=config,
                      checkpoints=[checkpoint_info(lm, lab, config, record)
                                   for lm, lab, record in zip(models, labels, records)],
                      slices=out, notes=notes, survey_facts=survey_facts(survey))


def survey_facts(survey: Survey | None) -> dict[str, str]:
    """Population, weighting and interval method of a survey, in words (for reports)."""
    if survey is None:
        return {}
    weights = survey.weight_summary()
    return {"population": survey.population or "",
            "weighting": "" if weights is None else weights.text(),
            "intervals": interval_method(survey.design) if weights is not None else ""}
