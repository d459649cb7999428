"""The population-estimate part of a report as plain data (built from a
sim_core.evaluation.population.PopulationEstimate, saved in the report's JSON and read back),
and its rows in the report's long CSV:

    population          question_id, slice (the population or subgroup), entry ("real",
                        a checkpoint, "baseline: <name>"), option, share; real: ci_low,
                        ci_high (95 %), n_eff, text = what it is; a checkpoint: pi_low,
                        pi_high (prediction interval), text = the interval's method
    population_scores   question_id, slice, entry (or "noise floor"), score, value, direction
    composition         question_id, slice = a cell, share = its population share,
                        text = where the shares come from
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim_core.base.labels import NOISE_FLOOR, REAL
from sim_core.base.metrics import METRICS


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


@dataclass
class PopulationPart:
    """One question's population (or subgroup) estimate, as plain values."""

    question_id: str
    label: str                                   # "All" or the subgroup
    options: list[str]
    entries: dict[str, list[float]]              # checkpoints, then "baseline: <name>"
    intervals: dict[str, list[list[float]]] = field(default_factory=dict)  # entry -> [lo, hi]
    interval_methods: dict[str, str] = field(default_factory=dict)
    interval_level: float | None = None
    real: list[float] | None = None              # what the scores compare with
    real_label: str = ""                         # the topline, or the real groups composed
    ci_low: list[float] | None = None            # the topline's 95 % interval
    ci_high: list[float] | None = None
    n_eff: float | None = None
    score: str = "wasserstein"                   # the score to read first
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    noise_floor: dict[str, float] = field(default_factory=dict)
    composition: list[list[Any]] = field(default_factory=list)     # [cell label, share]
    composition_source: str = ""
    notes: list[str] = field(default_factory=list)


def population_part(estimate: Any) -> PopulationPart:
    """PopulationPart from a PopulationEstimate."""
    real = estimate.real                 # when there is one, it is what was scored against
    from_topline = real is not None
    composition = estimate.composition
    return PopulationPart(
        question_id=estimate.question.id, label=estimate.label,
        options=list(estimate.question.options),
        entries={e: _floats(d) for e, d in estimate.entries().items()},
        intervals={e: [_floats(lo), _floats(hi)] for e, (lo, hi) in estimate.intervals.items()},
        interval_methods=dict(estimate.interval_methods),
        interval_level=estimate.interval_level, real=_floats(estimate.reference),
        real_label=estimate.reference_label,
        ci_low=_floats(real.ci_low) if from_topline else None,
        ci_high=_floats(real.ci_high) if from_topline else None,
        n_eff=float(real.n_eff) if from_topline and real.n_eff else None,
        score=estimate.score_key,
        scores={e: {k: float(v) for k, v in s.items()} for e, s in estimate.scores.items()},
        noise_floor={k: float(v) for k, v in estimate.noise_floor.items()},
        composition=[[label, float(share)] for label, share in
                     zip(composition.labels, composition.shares)],
        composition_source=composition.source, notes=list(estimate.notes))


def population_from_dict(data: dict) -> PopulationPart:
    """Inverse of dataclasses.asdict(PopulationPart)."""
    return PopulationPart(**data)


def population_csv_rows(parts: list[PopulationPart]) -> list[dict[str, Any]]:
    """The population, population_scores and composition rows of the long CSV."""
    rows: list[dict[str, Any]] = []
    for part in parts:
        base = dict(question_id=part.question_id, slice=part.label)
        series = ([(REAL, part.real)] if part.real is not None else []) + list(part.entries.items())
        for entry, shares in series:
            for i, option in enumerate(part.options):
                row = dict(table="population", **base, entry=entry, option=option,
                           share=shares[i])
                if entry == REAL:
                    row.update(n_eff=part.n_eff, text=part.real_label)
                    if part.ci_low is not None and part.ci_high is not None:
                        row.update(ci_low=part.ci_low[i], ci_high=part.ci_high[i])
                if entry in part.intervals:
                    row.update(pi_low=part.intervals[entry][0][i],
                               pi_high=part.intervals[entry][1][i],
                               text=part.interval_methods.get(entry))
                rows.append(row)
        scored = list(part.scores.items()) + [(NOISE_FLOOR, part.noise_floor)]
        rows += [dict(table="population_scores", **base, entry=entry, score=key, value=value,
                      direction=METRICS[key].direction if key in METRICS else None)
                 for entry, values in scored for key, value in values.items()]
        rows += [dict(table="composition", question_id=part.question_id, slice=cell,
                      share=share, text=part.composition_source)
                 for cell, share in part.composition]
    return rows
