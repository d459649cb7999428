"""Population estimates from slice simulations (post-stratification), with a prediction
interval, beside the survey's own weighted answer and the baselines.

The population share of option j is the sum over cells c (crossed slices, from
sim_core.survey.composition) of the cell's population share w_c times its simulated share:

    P_j = sum_c w_c q_cj

A subgroup ("women") is estimated the same way from the cells that make it up.

Prediction intervals (INTERVAL_METHODS):
- "cell bounds" (default): the same weighted sum of the cells' calibrated interval bounds,
  sum_c w_c low_cj <= P_j <= sum_c w_c high_cj. When every cell's interval holds, this one
  holds: the population truth is the same weighted sum of the cells' truths. It is
  conservative in width (errors of different sign cancel in the estimate, while the bounds
  add up), but it is not a theorem at the nominal level: the union bound only promises
  1 - C (1 - level) over C cells. Its coverage is measured, not assumed (evaluate_population,
  bench/population.py).
- "conformal": split conformal at the population level. Conformity scores
  |real - estimate| / share_scale(estimate) of population estimates on calibration
  questions (population_scores) give q, the ceil((n + 1) level)-th smallest; the interval is
  P_j +- q share_scale(P_j). Valid at the nominal level when the questions are exchangeable
  with the calibration questions; needs calibration questions with a real topline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import REAL, Progress, baseline_entry, unique_labels
from sim_core.base.metrics import noise_floor, score_all
from sim_core.base.options import Choice, registry
from sim_core.evaluation.baselines import population_average, uniform
from sim_core.evaluation.calibration_records import calibration_for
from sim_core.evaluation.compare import model_progress, with_survey_style
from sim_core.evaluation.verdict import default_score
from sim_core.simulation.calibration import conformal_quantile, conformity_scores, share_scale
from sim_core.simulation.config import SimConfig
from sim_core.simulation.simulate import SimResult, simulate
from sim_core.survey.composition import Composition
from sim_core.survey.marginal import SliceMarginal, slice_label
from sim_core.survey.schema import Question, Survey
from sim_core.survey.slices import real_marginals

INTERVAL_METHODS = registry(
    Choice("cell bounds", "Weighted cell bounds",
           "the cells' calibrated interval bounds summed with the cells' population shares: "
           "holds whenever every cell's interval holds; conservative in width"),
    Choice("conformal", "Population-level split conformal",
           "conformity scores of population estimates on calibration questions with a real "
           "topline; valid at the nominal level for exchangeable questions"),
)
POPULATION_BASELINES = ("uniform", "population")
TOPLINE = "the survey's weighted topline"
COMPOSED = "the real group shares composed with the same cell shares"


def post_stratify(cell_shares, weights) -> np.ndarray:
    """sum_c w_c q_c: the population distribution from cell distributions (C, k) and the
    cells' population shares (C,), which must sum to 1."""
    q = np.asarray(cell_shares, dtype=float)
    w = np.asarray(weights, dtype=float)
    if q.ndim != 2 or w.shape != (q.shape[0],):
        raise ValueError(f"{q.shape[0] if q.ndim == 2 else '?'} cells but {w.size} weights")
    if np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError("cell weights must be non-negative and sum to 1")
    return w @ q


def cell_bounds(weights, lows, highs) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of the cells' interval bounds (see the module docstring)."""
    return post_stratify(lows, weights), post_stratify(highs, weights)


def population_scores(real, estimates) -> np.ndarray:
    """Conformity scores |real - estimate| / share_scale(estimate), every option of every
    question (rows of real and estimated population distributions)."""
    return conformity_scores(real, estimates)


def conformal_interval(shares, scores: Sequence[float], level: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal interval at the population level, clipped to [0, 1]."""
    q = np.asarray(shares, dtype=float)
    half = conformal_quantile(scores, level) * share_scale(q)
    return np.clip(q - half, 0.0, 1.0), np.clip(q + half, 0.0, 1.0)


@dataclass
class PopulationEstimate:
    """A population (or subgroup) estimate of one question.

    Attributes:
        question: the question.
        composition: the cells and their population shares used.
        within: the subgroup ({} = the whole population).
        estimates: checkpoint label -> estimated shares.
        intervals: checkpoint label -> (low, high) prediction interval per option.
        interval_methods: checkpoint label -> key of INTERVAL_METHODS.
        interval_level: the intervals' nominal level (None: no interval).
        real: the survey's real answer for the population / subgroup, with its
            design-based 95 % interval (None: a drafted question or no such row).
        reference: what the scores compare with (real.shares or the composed real shares).
        reference_label: TOPLINE (a subgroup: the survey's weighted answer of it) or
            COMPOSED ("" without real data).
        composed_real: the real cell shares composed with the cell shares (None where a
            cell has no real data).
        baselines: baseline name -> distribution.
        score_key: the score to read first (Wasserstein for ordinal questions, else TV).
        scores: entry -> score key -> value; noise_floor: score key -> value.
        cells: checkpoint label -> the cells' SimResults, in composition order.
        real_cells: each cell's real shares (None where it has no real data).
        notes: what the reader should know.
    """

    question: Question
    composition: Composition
    within: dict[str, str]
    estimates: dict[str, np.ndarray]
    intervals: dict[str, tuple[np.ndarray, np.ndarray]]
    interval_methods: dict[str, str]
    interval_level: float | None
    real: SliceMarginal | None
    reference: np.ndarray | None
    reference_label: str
    composed_real: np.ndarray | None
    baselines: dict[str, np.ndarray]
    score_key: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    noise_floor: dict[str, float] = field(default_factory=dict)
    cells: dict[str, list[SimResult]] = field(default_factory=dict, repr=False)
    real_cells: list[np.ndarray | None] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """slice_label of the subgroup ("All" for the whole population)."""
        return slice_label(self.within)

    def entries(self) -> dict[str, np.ndarray]:
        """Entry -> distribution: checkpoints, then "baseline: <name>"."""
        out = dict(self.estimates)
        out.update({baseline_entry(n): d for n, d in self.baselines.items()})
        return out

    def shares_table(self) -> pd.DataFrame:
        """Long table in Comparison.shares_table()'s shape (one slice: the population or
        subgroup): the real answer (REAL, with its 95 % interval when it is the survey's
        own), each checkpoint (with its prediction interval), the baselines."""
        nothing = (None, None)
        parts = []
        if self.reference is not None:
            real = self.real
            ci = (real.ci_low, real.ci_high) if real is not None and \
                self.reference is real.shares else nothing
            parts.append((REAL, self.reference, ci, nothing))
        parts += [(entry, dist, nothing, self.intervals.get(entry, nothing))
                  for entry, dist in self.estimates.items()]
        parts += [(baseline_entry(name), dist, nothing, nothing)
                  for name, dist in self.baselines.items()]
        records = [(self.label, entry, option, float(dist[i]),
                    *(np.nan if b is None else float(b[i]) for b in (*ci, *pi)))
                   for entry, dist, ci, pi in parts
                   for i, option in enumerate(self.question.options)]
        return pd.DataFrame.from_records(records, columns=[
            "slice", "entry", "option", "share", "ci_low", "ci_high", "pi_low", "pi_high"])

    def to_dict(self) -> dict:
        """JSON-ready: the estimate, its interval, the real answer and the composition."""
        def floats(values):
            return None if values is None else [round(float(v), 6) for v in values]
        real = self.real
        return {
            "question": self.question.id, "within": dict(self.within), "label": self.label,
            "options": list(self.question.options),
            "estimates": {e: floats(d) for e, d in self.estimates.items()},
            "intervals": {e: {"low": floats(lo), "high": floats(hi),
                              "method": self.interval_methods[e]}
                          for e, (lo, hi) in self.intervals.items()},
            "interval_level": self.interval_level,
            "real": None if real is None else {
                "shares": floats(real.shares), "ci_low": floats(real.ci_low),
                "ci_high": floats(real.ci_high), "n": real.n,
                "n_eff": None if real.n_eff is None else round(float(real.n_eff), 3),
                "interval": real.interval},
            "reference": floats(self.reference), "reference_label": self.reference_label,
            "real_composed": floats(self.composed_real),
            "baselines": {n: floats(d) for n, d in self.baselines.items()},
            "score": self.score_key,
            "scores": {e: {k: round(v, 6) for k, v in s.items() if np.isfinite(v)}
                       for e, s in self.scores.items()},
            "noise_floor": {k: round(v, 6) for k, v in self.noise_floor.items()},
            "composition": self.composition.to_dict(), "notes": list(self.notes)}


def _real_for(survey, question, within, wave, bins) -> SliceMarginal | None:
    """The survey's real answer of the population / subgroup (None where it has none)."""
    try:
        found = real_marginals(survey, question.id, list(within), wave=wave, bins=bins,
                               min_n_eff=0)
    except DataError:
        return None         # e.g. a table without a whole-population row
    wanted = slice_label(within)
    return next((m for m in found if m.label == wanted and m.usable), None)


def _real_cells(survey, question, composition, wave, bins) -> list[np.ndarray | None]:
    """The real shares of each cell (None where the cell has no real data)."""
    try:
        found = real_marginals(survey, question.id, composition.attributes, wave=wave,
                               bins=bins, min_n_eff=0)
    except DataError:
        return [None] * len(composition.cells)      # e.g. a table cannot cross attributes
    real = {m.label: m.shares for m in found if m.usable}
    return [real.get(label) for label in composition.labels]


def _composed(cells: list[np.ndarray | None], weights) -> np.ndarray | None:
    """sum_c w_c p_c over the real cell shares (None where a cell has no real data)."""
    if not cells or any(c is None for c in cells):
        return None
    return post_stratify(cells, weights)


def _interval(results: list[SimResult], weights, estimate, residuals, level):
    """(method, (low, high)) of one checkpoint's estimate, or None without one."""
    if residuals is not None and len(residuals):
        return "conformal", conformal_interval(estimate, residuals, level)
    if results and all(r.interval_low is not None for r in results):
        return "cell bounds", cell_bounds(weights, [r.interval_low for r in results],
                                          [r.interval_high for r in results])
    return None


def estimate_from_results(question: Question, composition: Composition,
                          results: dict[str, list[SimResult]], *,
                          survey: Survey | None = None, wave: str | None = None, bins=None,
                          within: dict[str, str] | None = None,
                          baselines: Sequence[str] = POPULATION_BASELINES,
                          residuals: dict[str, Sequence[float]] | None = None,
                          level: float | None = None) -> PopulationEstimate:
    """Post-stratify simulated cells into a population estimate and score it.

    Args:
        question: the question.
        composition: the cells (already narrowed to `within`, see population_estimate).
        results: checkpoint label -> one SimResult per composition cell, in order.
        survey, wave, bins: the real data (None: a drafted question, no scores).
        within: the subgroup the composition covers ({} = the whole population).
        baselines: among POPULATION_BASELINES.
        residuals: checkpoint label -> population-level conformity scores (the "conformal"
            interval); without them, "cell bounds" where the cells have intervals.
        level: the intervals' nominal level (the cells' interval level; default SimConfig's).
    Returns:
        PopulationEstimate.
    """
    within = dict(within or {})
    level = SimConfig().interval_level if level is None else level
    weights = composition.shares
    estimates, intervals, methods = {}, {}, {}
    for label, cells in results.items():
        if len(cells) != len(weights):
            raise ValueError(f"{label}: {len(cells)} results for {len(weights)} cells")
        estimates[label] = post_stratify([r.shares for r in cells], weights)
        found = _interval(cells, weights, estimates[label], (residuals or {}).get(label),
                          level)
        if found is not None:
            methods[label], intervals[label] = found[0], found[1]
    real, real_cells = None, [None] * len(weights)
    notes = list(composition.notes)
    if survey is not None and question.id in survey.questions:
        real = _real_for(survey, question, within, wave, bins)
        real_cells = _real_cells(survey, question, composition, wave, bins)
    composed = _composed(real_cells, weights)
    topline = TOPLINE if not within else f"the survey's weighted answer of {slice_label(within)}"
    reference, label = (real.shares, topline) if real is not None else (
        (composed, COMPOSED) if composed is not None else (None, ""))
    if survey is not None and question.id in survey.questions and reference is None:
        notes.append("no real answer to compare with: the data has no row for this "
                     "population and not every cell has real data.")
    base = _baselines(survey, question, wave, baselines, real is not None and not within,
                      notes)
    estimate = PopulationEstimate(
        question, composition, within, estimates, intervals, methods,
        level if intervals else None, real, reference, label, composed, base,
        default_score([question]), cells=dict(results), real_cells=real_cells, notes=notes)
    if reference is not None:
        n = real.n_eff if real is not None and real.n_eff else None
        estimate.scores = {entry: score_all(reference, dist,
                                            ordinal_values=question.ordinal_values, n=n)
                           for entry, dist in estimate.entries().items()}
        estimate.noise_floor = noise_floor(reference, n, ordinal_values=question.ordinal_values)
    return estimate


def _baselines(survey, question, wave, which, is_topline, notes) -> dict[str, np.ndarray]:
    """The uniform guess and the population average (left out where it is the very answer
    being scored: a respondent survey's topline, or a table's whole-population row)."""
    out = {}
    if "uniform" in which:
        out["uniform"] = uniform(question.k)
    if "population" in which and survey is not None and question.id in survey.questions:
        if is_topline:
            notes.append("the population-average baseline is left out: for the whole "
                         "population it is the real topline itself.")
        else:
            out["population"] = population_average(survey, question.id, wave=wave)
    return out


def simulate_cells(models: list[Any], question: Question, cells: list[dict[str, str]], *,
                   survey: Survey | None = None, config: SimConfig | None = None,
                   known: dict[str, dict[str, SimResult]] | None = None,
                   progress: Progress = None, should_stop=None) -> dict[str, list[SimResult]]:
    """Every checkpoint's SimResult for every cell (calibrated like compare() does).

    Args:
        known: checkpoint label -> cell label -> a result already simulated (e.g. by
            compare()); only the other cells are simulated.
    Returns:
        checkpoint label -> one SimResult per cell, in the cells' order.
    """
    config = with_survey_style(config or SimConfig(), survey)
    labels = [slice_label(c) for c in cells]
    out = {}
    for i, (lm, label) in enumerate(zip(models, unique_labels(models))):
        have = dict((known or {}).get(label, {}))
        missing = [c for c, lab in zip(cells, labels) if lab not in have]
        if missing:
            record = calibration_for(lm, survey)
            fresh = simulate(lm, question, missing, config,
                             calibration=record.calibration if record else None,
                             progress=model_progress(progress, i, len(models),
                                                     units=len(missing)),
                             should_stop=should_stop)
            have.update({slice_label(r.slice): r for r in fresh})
        out[label] = [have[lab] for lab in labels]
    return out


def population_estimate(models: list[Any], question: Question, composition: Composition, *,
                        survey: Survey | None = None, wave: str | None = None, bins=None,
                        config: SimConfig | None = None, within: dict[str, str] | None = None,
                        baselines: Sequence[str] = POPULATION_BASELINES,
                        residuals: dict[str, Sequence[float]] | None = None,
                        known: dict[str, dict[str, SimResult]] | None = None,
                        progress: Progress = None, should_stop=None) -> PopulationEstimate:
    """Simulate the cells of a composition and post-stratify them.

    Args:
        models: LoadedModel list.
        question: a survey question, or a drafted one (then no real data, no scores).
        composition: sim_core.survey.composition's survey_composition or
            composition_from_margins.
        survey, wave, bins: the real data (None for a drafted question without a survey).
        config: SimConfig (its interval_level is the intervals' level).
        within: a subgroup, e.g. {"SEX": "Female"}: estimated from its cells.
        baselines, residuals: as in estimate_from_results.
        known: results already simulated (simulate_cells).
        progress, should_stop: as in compare().
    Returns:
        PopulationEstimate.
    """
    config = config or SimConfig()
    part = composition.subgroup(within) if within else composition
    results = simulate_cells(models, question, part.cells, survey=survey, config=config,
                             known=known, progress=progress, should_stop=should_stop)
    return estimate_from_results(question, part, results, survey=survey, wave=wave, bins=bins,
                                 within=within, baselines=baselines, residuals=residuals,
                                 level=config.interval_level)


def population_for_comparison(models: list[Any], comparison: Any, composition: Composition, *,
                              survey: Survey | None = None, bins=None,
                              within: dict[str, str] | None = None,
                              residuals: dict[str, Sequence[float]] | None = None
                              ) -> PopulationEstimate:
    """The population estimate of a compare() result, reusing its simulated slices (cells
    it lacks are simulated with the same settings)."""
    known = {label: {sc.label: sc.simulated[label] for sc in comparison.slices
                     if label in sc.simulated}
             for label in unique_labels(models)}
    return population_estimate(models, comparison.question, composition, survey=survey,
                               wave=comparison.wave, bins=bins, config=comparison.config,
                               within=within, residuals=residuals, known=known)
