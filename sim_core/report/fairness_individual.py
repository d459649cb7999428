"""Report parts for the fairness view and the individual-level evaluation: plain data built
from sim_core.evaluation.fairness and sim_core.evaluation.individual results, read back from
JSON, and written as rows of the report's long CSV (see sim_core.report.document).

CSV rows (column `table`):
    fairness          entry, slice = group, n_eff, score, value = gap, text = attribute
    individual        entry, score, value, direction, text = "T=<t>" (and " chosen")
    individual_sweep  entry, score, value, direction, text = "T=<t>, <val|test>"
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim_core.base.labels import is_baseline
from sim_core.evaluation.fairness import gap_changes, group_gaps
from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES


@dataclass
class PartTable:
    """A small table of plain values (None = no value)."""

    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict]:
        """One dict per row."""
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass
class FairnessPart:
    """One checkpoint's gap per group (fairness view) in an evaluation report."""

    entry: str
    score: str
    spread: dict[str, float]
    groups: PartTable               # group, attribute, rows, n_eff, gap, floor[, change...]
    curve: list[list[float]]        # [n, noise floor] pairs
    compared_with: str | None = None


@dataclass
class IndividualPart:
    """The individual-level evaluation: summary on test respondents and every sweep."""

    survey: str
    attributes: list[str]
    questions: list[str]
    split: dict
    n_scored: dict[str, int]
    n_profiles: int
    mode: str
    criterion: str
    summary: PartTable              # entry, temperature, chosen, score keys
    sweeps: dict[str, dict]         # label -> {"chosen": T, "curve": PartTable}
    scores: list[dict] = field(default_factory=list)   # key, name, formula, direction
    notes: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """JSON-ready scalar: numpy unwrapped, NaN as None."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def part_table(df) -> PartTable:
    """PartTable from a DataFrame (index dropped)."""
    return PartTable([str(c) for c in df.columns],
                     [[_plain(v) for v in row] for row in df.itertuples(index=False)])


def fairness_parts(evaluation, score: str) -> list[FairnessPart]:
    """The fairness view of every checkpoint of an evaluation; adapters are compared with
    the first checkpoint (usually the base model)."""
    models = [e for e in evaluation.entries if not is_baseline(e)]
    gaps = {label: group_gaps(evaluation, label, score) for label in models}
    parts = []
    for i, label in enumerate(models):
        table = gaps[label].table
        compared = models[0] if i > 0 else None
        if compared:
            changes = gap_changes(gaps[compared], gaps[label])
            table = table.merge(changes[["group", "before", "change", "grew", "beyond_noise"]],
                                on="group", how="left")
        curve = [[_plain(n), _plain(f)] for n, f in gaps[label].curve.itertuples(index=False)]
        parts.append(FairnessPart(label, score, {k: _plain(v) for k, v in
                                                 gaps[label].spread.items()},
                                  part_table(table), curve, compared))
    return parts


def individual_part(result) -> IndividualPart:
    """IndividualPart from a sim_core.evaluation.individual.IndividualResult."""
    sweeps = {label: {"chosen": sweep.chosen, "curve": part_table(sweep.curve)}
              for label, sweep in result.sweeps.items()}
    scores = [{"key": s.key, "name": s.name, "formula": s.formula, "direction": s.direction}
              for s in INDIVIDUAL_SCORES.values()]
    return IndividualPart(result.survey_name, list(result.attributes), list(result.questions),
                          dict(result.split), dict(result.n_scored), int(result.n_profiles),
                          result.mode, result.config.criterion, part_table(result.summary()),
                          sweeps, scores, list(result.notes))


def fairness_from_dict(data: dict) -> FairnessPart:
    """FairnessPart from report JSON."""
    return FairnessPart(**{**data, "groups": PartTable(**data["groups"])})


def individual_from_dict(data: dict) -> IndividualPart:
    """IndividualPart from report JSON."""
    sweeps = {label: {"chosen": s["chosen"], "curve": PartTable(**s["curve"])}
              for label, s in data["sweeps"].items()}
    return IndividualPart(**{**data, "summary": PartTable(**data["summary"]),
                             "sweeps": sweeps})


def _t(value) -> str:
    return "" if value is None else f"T={value:g}"


def parts_csv_rows(fairness: list[FairnessPart], individual: IndividualPart | None
                   ) -> list[dict]:
    """The report CSV's rows for the fairness and individual-level parts."""
    rows = []
    for part in fairness:
        rows += [dict(table="fairness", entry=part.entry, slice=g["group"], n_eff=g["n_eff"],
                      score=part.score, value=g["gap"], text=g["attribute"])
                 for g in part.groups.records()]
    if individual is None:
        return rows
    direction = {s["key"]: s["direction"] for s in individual.scores}
    for record in individual.summary.records():
        text = _t(record["temperature"]) + (" chosen" if record["chosen"] else "")
        rows += [dict(table="individual", entry=record["entry"], score=k, value=record[k],
                      direction=direction[k], text=text.strip()) for k in direction]
    for label, sweep in individual.sweeps.items():
        for record in sweep["curve"].records():
            rows += [dict(table="individual_sweep", entry=label, score=k, value=record[k],
                          direction=direction[k],
                          text=f"{_t(record['temperature'])}, {record['part']}")
                     for k in direction]
    return rows
