"""Comparison reports: a plain data object built from a comparison, an evaluation or an
individual-level result, then rendered as PDF (sim_core.report.pdf), CSV or JSON
(sim_core.report.exports).

The Report holds only plain values (str, float, list, dict), so it can be built by hand,
saved as JSON and read back (sim_core.report.exports.report_from_json) without any model or
survey at hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from sim_core.base.errors import SimError
from sim_core.base.labels import (
    baseline_entry,
    baseline_name,
    is_baseline,
)
from sim_core.base.metrics import METRICS
from sim_core.report.fairness_individual import (
    FairnessPart,
    IndividualPart,
    fairness_parts,
    individual_part,
)
from sim_core.report.methods_text import methods_text
from sim_core.report.population_part import (
    PopulationPart,
    population_part,
)
from sim_core.survey.marginal import slice_label


@dataclass
class ScoreInfo:
    """One score's metadata, copied from sim_core.base.metrics.METRICS at build time."""
    key: str
    name: str
    formula: str
    direction: str            # "lower" | "higher" is better
    range: str = ""


@dataclass
class SliceResult:
    """Real and simulated shares and scores of one slice of one question."""
    label: str
    n_eff: float | None = None
    too_small: bool = False
    real: list[float] | None = None          # None for a drafted question
    ci_low: list[float] | None = None
    ci_high: list[float] | None = None
    shares: dict[str, list[float]] = field(default_factory=dict)   # entry -> shares
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # entry -> key -> value
    noise_floor: dict[str, float] = field(default_factory=dict)
    n: int | None = None                     # valid answers
    n_total: int | None = None               # respondents in the slice
    n_asked: int | None = None               # minus not asked / system-missing
    nonresponse: dict[str, float] = field(default_factory=dict)   # reason -> weighted share
    intervals: dict[str, list[list[float]]] = field(default_factory=dict)  # entry -> [low, high]


@dataclass
class QuestionReport:
    """One question: wording, options, and its slices."""
    id: str
    text: str
    options: list[str]
    slices: list[SliceResult]
    ordinal_values: list[float | None] | None = None
    by: list[str] = field(default_factory=list)
    example_prompt: str = ""

    def entries(self) -> list[str]:
        """Entries in display order: checkpoints first, then baselines."""
        seen: dict[str, None] = {}
        for item in self.slices:
            for entry in list(item.shares) + list(item.scores):
                seen.setdefault(entry, None)
        return sorted(seen, key=is_baseline)

    def mean_scores(self) -> dict[str, dict[str, float]]:
        """entry -> score key -> mean over the slices that have the score."""
        return {entry: _mean_dicts([s.scores.get(entry, {}) for s in self.slices])
                for entry in self.entries()}

    def mean_noise_floor(self) -> dict[str, float]:
        """score key -> mean noise floor over the slices."""
        return _mean_dicts([s.noise_floor for s in self.slices])


@dataclass
class Table:
    """A small generic table (evaluation summary, worst groups)."""
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Heatmap:
    """Score of one entry per question (rows) and slice (columns); None = no value."""
    entry: str
    score: str
    questions: list[str]
    slices: list[str]
    values: list[list[float | None]]


@dataclass
class EvaluationReport:
    """The evaluation part: summary, heatmaps, worst-represented groups, all scores."""
    entries: list[str]
    score: str                               # score of the heatmaps and worst groups
    summary: Table                           # entry, then one column per score key
    heatmaps: list[Heatmap]
    worst: dict[str, Table]                  # entry -> worst slices
    rows: Table                              # question_id, slice, entry, score keys...
    fairness: list[FairnessPart] = field(default_factory=list)   # gap per group, per model


@dataclass
class Report:
    """Everything a report shows, as plain data (see module docstring)."""
    title: str
    created: str                             # ISO date
    survey: str | None
    wave: str | None
    checkpoints: list[dict]                  # label, name, adapter, fingerprint, card,
                                             # calibrated, calibration, verdict
    baselines: list[str]
    mode: str
    orders: int
    scores: list[ScoreInfo]
    questions: list[QuestionReport] = field(default_factory=list)
    evaluation: EvaluationReport | None = None
    individual: IndividualPart | None = None
    methods: str = ""
    population: str = ""                     # who the survey speaks for
    weighting: str = ""                      # weight column, sum, CV, Kish design effect
    intervals: str = ""                      # how the 95 % intervals were computed
    interval_level: float | None = None      # prediction intervals' level (None: none)
    population_estimates: list[PopulationPart] = field(default_factory=list)

    def score_info(self, key: str) -> ScoreInfo:
        """Metadata of a score key (a bare ScoreInfo if the key is unknown)."""
        for info in self.scores:
            if info.key == key:
                return info
        return ScoreInfo(key, key, "", "lower")


def is_number(value: Any) -> bool:
    """A finite int or float (not bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of the finite values of several dicts."""
    sums: dict[str, list[float]] = {}
    for values in dicts:
        for key, value in values.items():
            if is_number(value):
                sums.setdefault(key, []).append(float(value))
    return {key: sum(v) / len(v) for key, v in sums.items()}


def _today() -> str:
    return _dt.date.today().isoformat()


# ---------------------------------------------------------------- builders

def _score_infos(keys: set[str]) -> list[ScoreInfo]:
    """ScoreInfo for the keys present, in METRICS display order."""
    return [ScoreInfo(m.key, m.name, m.formula, m.direction, m.range)
            for key, m in METRICS.items() if key in keys]


def _floats(array: Any) -> list[float] | None:
    return None if array is None else [float(x) for x in array]


def _slice_result(sc: Any) -> SliceResult:
    """SliceResult from a sim_core.evaluation.compare.SliceComparison."""
    real = sc.real
    shares = {label: _floats(result.shares) for label, result in sc.simulated.items()}
    shares.update({baseline_entry(name): _floats(dist)
                   for name, dist in sc.baselines.items()})
    intervals = {label: [_floats(r.interval_low), _floats(r.interval_high)]
                 for label, r in sc.simulated.items() if r.interval_low is not None}
    return SliceResult(
        label=slice_label(sc.slice), intervals=intervals,
        n_eff=None if real is None or real.n_eff is None else float(real.n_eff),
        too_small=bool(real.too_small) if real is not None else False,
        real=None if real is None else _floats(real.shares),
        ci_low=None if real is None else _floats(real.ci_low),
        ci_high=None if real is None else _floats(real.ci_high),
        shares=shares,
        scores={e: {k: float(v) for k, v in s.items()} for e, s in sc.scores.items()},
        noise_floor={k: float(v) for k, v in (sc.noise_floor or {}).items()},
        n=None if real is None else real.n,
        n_total=None if real is None else getattr(real, "n_total", None),
        n_asked=None if real is None else getattr(real, "n_asked", None),
        nonresponse={} if real is None else {
            k: float(v) for k, v in getattr(real, "nonresponse", {}).items()})


def _question_report(comparison: Any) -> QuestionReport:
    question = comparison.question
    prompt = next((r.prompt for sc in comparison.slices for r in sc.simulated.values()), "")
    ordinal = None if question.ordinal_values is None else [
        None if not is_number(v) else float(v) for v in question.ordinal_values]
    return QuestionReport(id=question.id, text=question.text, options=list(question.options),
                          slices=[_slice_result(sc) for sc in comparison.slices],
                          ordinal_values=ordinal, by=list(comparison.by),
                          example_prompt=prompt)


def _joined(values: list[Any]) -> str | None:
    """Distinct non-empty values joined by ", " (None when there are none)."""
    distinct = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
    return ", ".join(distinct) if distinct else None


def report_from_comparisons(comparisons: list[Any], title: str | None = None) -> Report:
    """Build a Report from one or more sim_core.evaluation.compare.Comparison (one per question).

    Args:
        comparisons: comparisons of the same checkpoints, usually one per question.
        title: report title; default "Simulated vs real: <survey>".

    Returns:
        The Report (plain data), ready for sim_core.report.pdf.render_pdf, report_csv and
        report_json.
    """
    if not comparisons:
        raise SimError("Nothing to report: no comparison was given.")
    first = comparisons[0]
    questions = [_question_report(c) for c in comparisons]
    keys = {k for q in questions for s in q.slices
            for values in list(s.scores.values()) + [s.noise_floor] for k in values}
    baselines = list(dict.fromkeys(baseline_name(e) for q in questions
                                   for e in q.entries() if is_baseline(e)))
    checkpoints = [_plain(dict(c)) for c in first.checkpoints]
    survey = _joined([c.survey_name for c in comparisons])
    report = Report(title=title or f"Simulated vs real: {survey or 'drafted question'}",
                    created=_today(), survey=survey, wave=_joined([c.wave for c in comparisons]),
                    checkpoints=checkpoints, baselines=baselines,
                    mode=str(first.config.mode), orders=int(first.config.orders or 0),
                    scores=_score_infos(keys), questions=questions,
                    interval_level=_interval_level(checkpoints),
                    population_estimates=[population_part(c.population) for c in comparisons
                                          if getattr(c, "population", None) is not None])
    facts = getattr(first, "survey_facts", {}) or {}
    report.population = facts.get("population", "")
    report.weighting = facts.get("weighting", "")
    report.intervals = facts.get("intervals", "")
    report.methods = methods_text(report)
    return report


def _interval_level(checkpoints: list[dict]) -> float | None:
    """The prediction intervals' level, when any checkpoint has them."""
    return next((c["interval_level"] for c in checkpoints if c.get("interval_level")), None)


def _plain(value: Any) -> Any:
    """JSON-safe copy of a card (numpy numbers, paths and tuples become plain values)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))


def _table(df: Any) -> Table:
    """Table from a pandas DataFrame (index kept as first column unless it is 0..n-1)."""
    if df.index.name is not None or list(df.index) != list(range(len(df))):
        df = df.reset_index()
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    return Table(columns=[str(c) for c in df.columns], rows=rows)


def _cell(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (int, float, str)) or value is None else str(value)


def _heatmap(evaluation: Any, entry: str, score: str) -> Heatmap:
    grid = evaluation.heatmap(entry, score)
    values = [[_cell(float(v)) for v in row] for row in grid.to_numpy()]
    return Heatmap(entry=entry, score=score, questions=[str(q) for q in grid.index],
                   slices=[str(s) for s in grid.columns], values=values)


def _eval_score(columns: list[str]) -> str:
    """Score shown in heatmaps: Wasserstein when available, else a bounded one."""
    return next((k for k in ("wasserstein", "js", "tv", "kl") if k in columns), columns[0])


def report_from_evaluation(evaluation: Any, title: str | None = None) -> Report:
    """Build a Report from a sim_core.evaluation.evaluate.Evaluation.

    Args:
        evaluation: scores of several entries over many (question, slice) rows.
        title: report title; default "Evaluation: <survey>".

    Returns:
        A Report with `evaluation` filled and no per-question sections.
    """
    rows = evaluation.rows
    keys = [k for k in METRICS if k in rows.columns and rows[k].notna().any()]
    score = _eval_score(keys)
    models = [e for e in evaluation.entries if not is_baseline(e)]
    long_rows = rows[[c for c in ("question_id", "slice", "entry") if c in rows.columns] + keys]
    summary = evaluation.summary()
    if "entry" in summary.columns:  # entry as a column or as the index: both accepted
        summary = summary.set_index("entry")
    summary = summary.reindex([e for e in evaluation.entries if e in summary.index])
    summary.index.name = "entry"
    part = EvaluationReport(
        entries=list(evaluation.entries), score=score,
        summary=_table(summary[[k for k in keys if k in summary.columns]]),
        heatmaps=[_heatmap(evaluation, e, score) for e in models],
        worst={e: _table(evaluation.worst_slices(e, score)) for e in models},
        rows=_table(long_rows.reset_index(drop=True)),
        fairness=fairness_parts(evaluation, score))
    baselines = [baseline_name(e) for e in evaluation.entries if is_baseline(e)]
    verdicts = evaluation.verdicts()
    report = Report(title=title or f"Evaluation: {evaluation.survey_name}", created=_today(),
                    survey=evaluation.survey_name, wave=evaluation.wave,
                    checkpoints=[{"label": e, "orders": getattr(evaluation, "entry_orders", {})
                                  .get(e), "calibrated": evaluation.calibrated.get(e, False),
                                  "verdict": verdicts.get(e)} for e in models],
                    baselines=baselines,
                    mode=str(getattr(evaluation, "mode", "first-token")),
                    orders=int(getattr(evaluation, "orders", 1)),
                    scores=_score_infos(set(keys)), evaluation=part)
    report.methods = methods_text(report)
    return report


def report_from_individual(result: Any, title: str | None = None) -> Report:
    """Build a Report from a sim_core.evaluation.individual.IndividualResult.

    Args:
        result: held-out respondents' scores, temperature sweeps and baselines.
        title: report title; default "Individual level: <survey>".
    Returns:
        A Report with `individual` filled (no per-question sections).
    """
    part = individual_part(result)
    report = Report(title=title or f"Individual level: {result.survey_name}",
                    created=_today(), survey=result.survey_name, wave=None,
                    checkpoints=[{"label": e} for e in result.entries],
                    baselines=list(result.baselines), mode=result.mode, orders=0,
                    scores=[], individual=part)
    report.methods = methods_text(report)
    return report


# ---------------------------------------------------------------- outputs


