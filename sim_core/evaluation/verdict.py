"""The plain verdict: does a checkpoint beat the simple references on rows it never saw?

A held-out measurement (HeldOut) keeps, for every held-out question, the mean score of each
entry over its rows: the uniform guess, the population average, the zero-shot model and the
checkpoint, raw and calibrated. `verdict` turns it into numbers and one paragraph of text,
with a bootstrap interval of each difference over questions (the rows of one question are
not independent, so questions are the resampled clusters). Pages, reports and the CLI show
`Verdict.text`; nothing else words a verdict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from sim_core.base.errors import SimError
from sim_core.base.metrics import METRICS, compute, is_ordinal

UNIFORM, POPULATION = "uniform", "population"
ZERO_SHOT, ZERO_SHOT_CAL = "zero-shot", "zero-shot calibrated"
CHECKPOINT, CHECKPOINT_CAL = "checkpoint", "checkpoint calibrated"
SHORT = {"wasserstein": "WD", "tv": "TV", "kl": "KL", "js": "JS", "rmse": "RMSE"}
BETTER, WORSE, UNCLEAR, NO_BETTER = "better", "worse", "not clearly better", "no better"


@dataclass
class HeldOut:
    """Per-question mean scores of each entry on held-out rows (the verdict's evidence).

    Attributes:
        score: the metric key (sim_core.base.metrics), e.g. "wasserstein".
        what: the held-out rows in words, e.g. "27 unseen questions of gss2022 (594 rows)".
        kind: "adapter" (zero-shot = its base model) or "base" (the model itself).
        questions: held-out question ids that have the score.
        rows: rows per question (the cluster sizes; means are weighted by them).
        entries: entry key (UNIFORM, POPULATION, ZERO_SHOT, ZERO_SHOT_CAL, CHECKPOINT,
            CHECKPOINT_CAL) -> mean score per question.
        coverage: "calibrated" / "raw" -> interval_coverage's dict on the same rows.
    """

    score: str
    what: str
    kind: str = "adapter"
    questions: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    entries: dict[str, list[float]] = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeldOut:
        """Inverse of to_dict; SimError when malformed."""
        try:
            known = {f.name for f in fields(cls)}
            out = cls(**{k: v for k, v in dict(data).items() if k in known})
            out.entries = {str(k): [float(x) for x in v] for k, v in out.entries.items()}
            if any(len(v) != len(out.questions) for v in out.entries.values()) or \
                    len(out.rows) != len(out.questions):
                raise ValueError("entries and rows must have one value per question")
            return out
        except (TypeError, ValueError) as error:
            raise SimError(f"malformed held-out measurement: {error}") from error

    def mean(self, entry: str) -> float:
        """Row-weighted mean score of one entry."""
        return float(np.average(self.entries[entry], weights=self.rows))


def default_score(questions: Sequence[Any]) -> str:
    """Wasserstein when any question is ordinal, else total variation (defined everywhere)."""
    return "wasserstein" if any(is_ordinal(q.ordinal_values) for q in questions) else "tv"


def heldout_from_rows(rows: Sequence[Any], dists: dict[str, Sequence[np.ndarray]], *,
                      kind: str, unit: str, survey: str = "", score: str | None = None,
                      coverage: dict | None = None) -> HeldOut:
    """A HeldOut from held-out SurveyRows and each entry's distribution per row.

    Args:
        rows: SurveyRows (question, slice, real dist) never used for fitting.
        dists: entry key -> one distribution per row (None: the entry has no value there).
        kind: "adapter" or "base".
        unit: how the rows were held out, e.g. "unseen questions" (the survey's name is
            put after "questions").
        survey: the survey's name, for the text.
        score: metric key (default: default_score of the questions).
        coverage: interval coverage measured on the same rows.
    Returns:
        HeldOut over the questions where the score applies.
    """
    score = score or default_score([r.question for r in rows])
    by_question: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_question[row.question.id].append(i)
    questions, counts, entries = [], [], defaultdict(list)
    for qid, indices in by_question.items():
        question = rows[indices[0]].question
        if METRICS[score].ordinal_only and not is_ordinal(question.ordinal_values):
            continue
        real = np.array([rows[i].dist for i in indices])
        means = {}
        for entry, values in dists.items():
            if any(values[i] is None for i in indices):
                continue
            simulated = np.array([values[i] for i in indices])
            means[entry] = float(np.mean(compute(score, real, simulated,
                                                 ordinal_values=question.ordinal_values)))
        if len(means) < len(dists):
            continue          # an entry without a value there: keep questions comparable
        questions.append(qid)
        counts.append(len(indices))
        for entry, value in means.items():
            entries[entry].append(value)
    if len(questions) == 1:
        unit = unit.replace("questions", "question", 1)
    noun = "question" if len(questions) == 1 else "questions"
    if survey:   # "unseen questions" -> "unseen questions of gss2022"
        unit = unit.replace(noun, f"{noun} of {survey}", 1) if noun in unit \
            else f"{unit} of {survey}"
    return HeldOut(score=score, kind=kind, questions=questions, rows=counts,
                   entries=dict(entries), coverage=dict(coverage or {}),
                   what=f"{len(questions)} {unit} ({sum(counts)} rows)")


@dataclass
class Margin:
    """The checkpoint against one reference: means, difference and its bootstrap interval."""

    reference: str            # entry key
    label: str                # "a uniform guess"
    checkpoint: float         # mean score of the checkpoint
    value: float              # mean score of the reference
    difference: float         # checkpoint - reference
    ci_low: float
    ci_high: float
    outcome: str              # BETTER, WORSE, UNCLEAR or NO_BETTER


@dataclass
class Verdict:
    """The verdict in numbers and in words."""

    text: str
    margins: list[Margin]
    score: str
    n_questions: int
    n_rows: int
    calibrated: bool


def cluster_interval(diff: np.ndarray, weights: np.ndarray, level: float = 0.95, seed: int = 0,
                     n_resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the weighted mean of per-cluster differences, the
    clusters (questions) resampled; nan with fewer than two clusters."""
    if len(diff) < 2:
        return float("nan"), float("nan")
    if np.allclose(diff, diff[0]):
        return float(diff[0]), float(diff[0])   # no spread to resample

    def weighted_mean(d, w, axis=-1):
        return np.sum(d * w, axis=axis) / np.sum(w, axis=axis)

    result = bootstrap((diff, weights), weighted_mean, paired=True, vectorized=True,
                       n_resamples=n_resamples, confidence_level=level, method="percentile",
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _outcome(difference: float, low: float, high: float, direction: str) -> str:
    """BETTER / WORSE when the interval excludes 0, else UNCLEAR or NO_BETTER by the mean."""
    sign = 1.0 if direction == "lower" else -1.0     # positive = checkpoint better
    gain, worst, best = -sign * difference, -sign * high, -sign * low
    if not np.isfinite(low):
        return UNCLEAR if gain > 0 else NO_BETTER
    if min(worst, best) > 0:
        return BETTER
    if max(worst, best) < 0:
        return WORSE
    return UNCLEAR if gain > 0 else NO_BETTER


def margin(heldout: HeldOut, checkpoint: str, reference: str, label: str = "", *,
           level: float = 0.95, seed: int = 0, n_resamples: int = 2000) -> Margin:
    """One entry against another on the held-out questions: row-weighted means, the mean
    difference (checkpoint - reference) and its percentile bootstrap interval over questions.
    """
    weights = np.asarray(heldout.rows, dtype=np.float64)
    diff = np.asarray(heldout.entries[checkpoint]) - np.asarray(heldout.entries[reference])
    low, high = cluster_interval(diff, weights, level, seed, n_resamples)
    mean_diff = float(np.average(diff, weights=weights))
    return Margin(reference, label or reference, heldout.mean(checkpoint),
                  heldout.mean(reference), mean_diff, low, high,
                  _outcome(mean_diff, low, high, METRICS[heldout.score].direction))


def _references(heldout: HeldOut, checkpoint: str) -> list[tuple[str, str]]:
    """(entry key, words) of the references present, uniform first."""
    out = [(UNIFORM, "a uniform guess"), (POPULATION, "the population average")]
    calibrated = checkpoint == CHECKPOINT_CAL
    if heldout.kind == "base":
        if calibrated:
            out.append((CHECKPOINT, "the uncalibrated model"))
    elif calibrated and ZERO_SHOT_CAL in heldout.entries:
        out.append((ZERO_SHOT_CAL, "the zero-shot model (calibrated the same way)"))
    else:
        out.append((ZERO_SHOT, "the zero-shot model"))
    return [(key, words) for key, words in out if key in heldout.entries]


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _clause(margin: Margin, short: str, level: float) -> str:
    """'no better than a uniform guess (WD 0.190 vs 0.190, 95 % CI of the difference ...)'."""
    ci = ("no interval from one question" if not np.isfinite(margin.ci_low) else
          f"{level * 100:g} % CI of the difference {margin.ci_low:+.3f}..{margin.ci_high:+.3f}")
    return (f"{margin.outcome} than {margin.label} ({short} {_fmt(margin.checkpoint)} vs "
            f"{_fmt(margin.value)}, {ci})")


def verdict(heldout: HeldOut, *, calibrated: bool = True, subject: str = "this adapter",
            level: float = 0.95, seed: int = 0, n_resamples: int = 2000) -> Verdict:
    """Whether the checkpoint beats the uniform guess, the population average and the
    zero-shot model on held-out rows, with margins and bootstrap intervals over questions.

    Args:
        heldout: the measurement (card / calibration record / an evaluation).
        calibrated: judge the calibrated checkpoint (when measured), else the raw one.
        subject: how the text names the checkpoint ("this adapter", "this model").
        level: confidence level of the intervals.
        seed, n_resamples: the bootstrap's seed and size.
    Returns:
        Verdict with one Margin per reference and the text.
    """
    checkpoint = CHECKPOINT_CAL if calibrated and CHECKPOINT_CAL in heldout.entries \
        else CHECKPOINT
    if checkpoint not in heldout.entries or not heldout.questions:
        raise SimError("the held-out measurement has no scores for this checkpoint.")
    margins = [margin(heldout, checkpoint, key, words, level=level, seed=seed + i,
                      n_resamples=n_resamples)
               for i, (key, words) in enumerate(_references(heldout, checkpoint))]
    short = SHORT.get(heldout.score, METRICS[heldout.score].name)
    state = ", calibrated," if checkpoint == CHECKPOINT_CAL else ""
    clauses = [_clause(m, short, level) for m in margins]
    listed = clauses[0] if len(clauses) == 1 else \
        ", ".join(clauses[:-1]) + " and " + clauses[-1]
    text = f"On {heldout.what} {subject}{state} is {listed}."
    if margins and margins[0].reference == UNIFORM and margins[0].outcome != BETTER:
        text += (f" Read its shares as no more informative than a uniform guess "
                 f"({short}: {METRICS[heldout.score].direction} is better).")
    cover = heldout.coverage.get("calibrated" if checkpoint == CHECKPOINT_CAL else "raw")
    if cover:
        text += (f" Its {cover['level'] * 100:g} % prediction intervals held "
                 f"{cover['coverage'] * 100:.0f} % of the real shares there (mean width "
                 f"{cover['mean_width']:.2f}).")
    return Verdict(text=text, margins=margins, score=heldout.score,
                   n_questions=len(heldout.questions), n_rows=int(sum(heldout.rows)),
                   calibrated=checkpoint == CHECKPOINT_CAL)


def heldout_from_evaluation(evaluation: Any, entry: str, *, zero_shot: str | None = None,
                            unit: str = "questions") -> HeldOut:
    """A HeldOut from an Evaluation (sim_core.evaluation.evaluate): `entry` as the checkpoint, its
    baselines and optionally another entry as the zero-shot model.

    The entries keep the state they were simulated in (Evaluation.calibrated says which).
    """
    calibrated = getattr(evaluation, "calibrated", {})
    keys = {entry: CHECKPOINT_CAL if calibrated.get(entry) else CHECKPOINT}
    if zero_shot:
        keys[zero_shot] = ZERO_SHOT_CAL if calibrated.get(zero_shot) else ZERO_SHOT
    for name in (UNIFORM, POPULATION):
        keys["baseline: " + name] = name
    dists = {key: evaluation.dists[e] for e, key in keys.items() if e in evaluation.dists}
    return heldout_from_rows(evaluation.survey_rows, dists, kind="adapter", unit=unit,
                             survey=evaluation.survey_name)
