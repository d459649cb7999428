"""Fitting a checkpoint's calibration on validation rows and measuring it on held-out ones.

finetune.train uses `fit_on_rows` and `heldout_measurement` for an adapter (its split's
validation and test rows); `calibrate_base` does the same for a base model on a survey with
its own seeded question split, stored in the record, so the verdict is never measured on
rows the calibration was fitted on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_core.base.errors import DataError
from sim_core.base.labels import Progress, ShouldStop, baseline_entry
from sim_core.base.options import Choice, check, registry, setting
from sim_core.base.seeded import holdout_count, pick
from sim_core.evaluation.baselines import ROW_BASELINES
from sim_core.evaluation.calibration_fit import (
    fit_calibration,
    interval_coverage,
    position_prior,
    prior_skill,
)
from sim_core.evaluation.calibration_records import CheckpointCalibration, now, save_record
from sim_core.evaluation.evaluate import evaluate
from sim_core.evaluation.splits import SplitInfo
from sim_core.evaluation.verdict import (
    CHECKPOINT,
    CHECKPOINT_CAL,
    POPULATION,
    UNIFORM,
    ZERO_SHOT,
    ZERO_SHOT_CAL,
    HeldOut,
    heldout_from_rows,
)
from sim_core.simulation.calibration import REFERENCES, Calibration
from sim_core.simulation.config import SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.simulate import orders_for, simulate_rows
from sim_core.survey.slices import SurveyRow, survey_rows

FIT_REFERENCES = registry(*REFERENCES.values(), Choice(
    "auto", "Whichever fits better", "the prior is tried only when, left out one question at "
    "a time, it beats the uniform guess on the questions it is built from; then both are "
    "fitted and the one with the lower mean KL on the fitting rows is kept"))


@dataclass
class CalibrateConfig:
    """How a base model is calibrated on a survey (every field a setting: CLI flags)."""

    fit_fraction: float = setting(0.5, min=0.1, max=0.9, label="Share of questions to fit on",
                                  help="share of the survey's questions the calibration is "
                                       "fitted on; the others are held out for its verdict "
                                       "and interval coverage")
    seed: int = setting(0, min=0, label="Seed", help="seeds which questions are held out")
    reference: str = setting("auto", choices=FIT_REFERENCES, label="Shrink toward",
                             help="the reference the calibration shrinks toward")

    def __post_init__(self) -> None:
        check(self)


def fit_on_rows(lm: ModelHandle, rows: Sequence[SurveyRow], config: SimConfig | None = None, *,
                reference: str = "auto", prior_rows: Sequence[SurveyRow] = (),
                fitted_on: dict | None = None, progress: Progress = None,
                should_stop: ShouldStop = None) -> Calibration:
    """Simulate the rows raw with `lm` and fit its calibration on them.

    Args:
        lm: the checkpoint (LoadedModel or an in-memory equivalent).
        rows: validation rows, never test rows.
        config: simulation settings (orders, batch size); calibration is switched off here.
        reference: "uniform", "prior" or "auto"
            (sim_core.evaluation.calibration_fit.fit_calibration); with "auto" the prior is a
            candidate only when prior_skill shows it beats the uniform guess on the prior
            rows' own questions, left out one at a time.
        prior_rows: rows whose mean by option position is the "prior" reference (training
            rows; default: `rows`).
        fitted_on: facts to keep (split, survey).
    Returns:
        The Calibration with its conformal residuals.
    """
    if not rows:
        raise DataError("calibration needs validation rows; there are none.")
    config = dataclasses.replace(config or SimConfig(), calibrate=False)
    results = simulate_rows(lm, list(rows), config, progress=progress, should_stop=should_stop)
    source = list(prior_rows or rows)
    prior = position_prior([r.dist for r in source])
    facts = {"mode": config.mode, "orders": orders_for(lm, config),
             "questions": len({r.question.id for r in rows}), **(fitted_on or {})}
    if reference == "auto":
        # the prior competes only when it beats uniform on questions it was not built from
        facts["prior_check"] = prior_skill([r.dist for r in source],
                                           [r.question.id for r in source])
        if not facts["prior_check"]["shown"]:
            reference = "uniform"
    return fit_calibration([r.dist for r in rows], [r.shares for r in results],
                           reference=reference, prior=prior, fitted_on=facts,
                           units=[r.question.id for r in rows])


def heldout_measurement(rows: Sequence[SurveyRow], raw: Sequence[np.ndarray],
                        calibration: Calibration | None, baselines: dict[str, list], *,
                        kind: str, unit: str, survey: str = "", level: float = 0.9,
                        zero_shot: Sequence[np.ndarray] | None = None,
                        zero_shot_calibration: Calibration | None = None) -> HeldOut:
    """The verdict's evidence: every entry's scores per held-out question, and coverage.

    Args:
        rows: the held-out rows.
        raw: the checkpoint's raw distribution per row.
        calibration: its calibration (None: raw only).
        baselines: "uniform" / "population" -> distribution per row.
        kind: "adapter" or "base"; unit, survey: words for the text.
        level: the nominal level at which interval coverage is measured.
        zero_shot, zero_shot_calibration: the base model's raw distributions on the rows and
            its own calibration (an adapter's comparison).
    """
    dists: dict[str, list] = {UNIFORM: baselines.get("uniform"),
                              POPULATION: baselines.get("population"), CHECKPOINT: list(raw)}
    real = [r.dist for r in rows]
    coverage = {}
    if calibration is not None:
        dists[CHECKPOINT_CAL] = [calibration.apply(q) for q in raw]
        if calibration.residuals:
            coverage = {"calibrated": interval_coverage(calibration, real, raw, level),
                        "raw": interval_coverage(calibration, real, raw, level,
                                                 calibrated=False)}
    if zero_shot is not None:
        dists[ZERO_SHOT] = list(zero_shot)
        if zero_shot_calibration is not None:
            dists[ZERO_SHOT_CAL] = [zero_shot_calibration.apply(q) for q in zero_shot]
    dists = {k: v for k, v in dists.items() if v is not None}
    return heldout_from_rows(rows, dists, kind=kind, unit=unit, survey=survey,
                             coverage=coverage)


def heldout_unit(info: SplitInfo) -> str:
    """The held-out part of a split in words ("unseen questions", ...)."""
    how = info.how
    if how == "slice":
        groups = info.test_slices
        return f"questions asked of {len(groups)} unseen group{'s' if len(groups) != 1 else ''}"
    if how == "wave":
        return "questions of the unseen wave " + ", ".join(map(str, info.test_waves))
    if how == "random":
        return "questions with held-out rows"
    return "unseen questions"


def _split_questions(rows: list[SurveyRow], settings: CalibrateConfig) -> tuple[list, list, dict]:
    """Fit rows, held-out rows and the split's description (seeded, by question)."""
    ids = sorted({r.question.id for r in rows})
    held = pick(ids, holdout_count(len(ids), 1 - settings.fit_fraction), settings.seed)
    if not held:
        raise DataError("calibration needs at least two questions: one to fit on and one to "
                        "hold out for its verdict.")
    fit = [r for r in rows if r.question.id not in held]
    test = [r for r in rows if r.question.id in held]
    info = {"how": "question", "seed": settings.seed, "fit_fraction": settings.fit_fraction,
            "fit_questions": sorted(set(ids) - held), "test_questions": sorted(held),
            "n_fit": len(fit), "n_test": len(test)}
    return fit, test, info


def calibrate_base(lm: ModelHandle, survey: Any, *, by: Sequence[str] | None = None,
                   wave: str | None = None, questions: Sequence[str] | None = None,
                   settings: CalibrateConfig | None = None, config: SimConfig | None = None,
                   bins=None, progress: Progress = None,
                   should_stop: ShouldStop = None) -> CheckpointCalibration:
    """Calibrate a base model on a survey, measure it on held-out questions, save the record.

    Args:
        lm: a base model (any backend) without adapter.
        survey: the Survey; by, wave, questions, bins: which rows (as survey_rows).
        settings: CalibrateConfig (fit share, seed, reference).
        config: simulation settings (orders, batch size; interval_level sets the level at
            which coverage is measured).
        progress: (done, total) over both parts; should_stop: polled, raises Cancelled.
    Returns:
        The saved CheckpointCalibration (workspace/calibrations/...).
    """
    if lm.adapter:
        raise DataError("an adapter is calibrated when it is trained (its card holds its "
                        "calibration); calibrate the base model without --adapter.")
    settings = settings or CalibrateConfig()
    config = dataclasses.replace(config or SimConfig(), calibrate=False)
    rows = survey_rows(survey, by, wave=wave, questions=questions, bins=bins)
    fit, _, info = _split_questions(rows, settings)
    half = (lambda done, total: progress(done, 2 * total)) if progress else None
    rest = (lambda done, total: progress(total + done, 2 * total)) if progress else None
    calibration = fit_on_rows(lm, fit, config, reference=settings.reference,
                              fitted_on={"survey": survey.name, "split": "fit questions"},
                              progress=half, should_stop=should_stop)
    test_ids = info["test_questions"]
    ev = evaluate([lm], survey, by=by, wave=wave, questions=test_ids, config=config, bins=bins,
                  calibrations=[None], progress=rest, should_stop=should_stop)
    label = ev.entries[0]
    baselines = {b: ev.dists.get(baseline_entry(b)) for b in ROW_BASELINES}
    heldout = heldout_measurement(ev.survey_rows, ev.dists[label], calibration, baselines,
                                  kind="base", unit="questions held out of its calibration",
                                  survey=survey.name, level=config.interval_level)
    record = CheckpointCalibration(
        calibration=calibration, heldout=heldout, source="record", model=lm.name,
        model_fingerprint=lm.fingerprint, survey=survey.name,
        survey_fingerprint=survey.fingerprint, split=info, created=now())
    save_record(record)
    return record
