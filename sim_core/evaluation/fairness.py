"""A fairness view of any evaluation: is a checkpoint's gap to the real answers larger for
some groups than for others, and larger for small groups?

Per group (slice label) the gap is the mean score over the group's rows; it is drawn against
the group's effective sample size with the sampling-noise floor as a curve: the gap a
perfect simulator would still show against a real sample of that size
(sim_core.base.metrics.noise_floor), so a small group's larger gap is read against its larger
noise. The spread across groups says how unequal the fit is; comparing two checkpoints
(before and after fine-tuning) flags the groups whose gap grew (Suh et al. 2025 ask whether
fine-tuning amplifies bias for groups with small samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.metrics import METRICS, noise_floor

CURVE_POINTS = 25          # sizes on the noise-floor curve
CURVE_QUESTIONS = 60       # questions (seeded sample) whose mean answers shape the curve
FLOOR_SIMS = 300           # Monte Carlo draws per noise-floor value


def spread(gaps) -> dict[str, float]:
    """How unequal a set of per-group gaps is: mean, standard deviation (population), range
    (max - min) and max - mean; all 0 for one group."""
    values = np.asarray([g for g in gaps if np.isfinite(g)], dtype=np.float64)
    if values.size == 0:
        return {"mean_gap": float("nan"), "sd": float("nan"), "range": float("nan"),
                "max_minus_mean": float("nan"), "groups": 0}
    return {"mean_gap": float(values.mean()), "sd": float(values.std()),
            "range": float(values.max() - values.min()),
            "max_minus_mean": float(values.max() - values.mean()), "groups": int(values.size)}


@dataclass
class GroupGaps:
    """One entry's gap per group.

    Attributes:
        entry: the evaluation entry (checkpoint label or baseline).
        score: the score key (sim_core.base.metrics.METRICS).
        table: group, attribute, rows, n_eff (mean over its rows), gap (mean score) and
            floor (mean noise floor of its rows at their own n_eff), largest gap first.
        curve: n, floor: the noise floor as a function of the effective sample size.
    """

    entry: str
    score: str
    table: pd.DataFrame
    curve: pd.DataFrame

    @property
    def spread(self) -> dict[str, float]:
        """spread() of the per-group gaps."""
        return spread(self.table["gap"])

    def to_dict(self) -> dict:
        """JSON-ready: score, spread and every group's gap, n_eff and floor."""
        groups = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                   for k, v in row.items()} for row in self.table.to_dict(orient="records")]
        return {"entry": self.entry, "score": self.score, "spread": self.spread,
                "groups": groups}

    @classmethod
    def from_dict(cls, data: dict) -> GroupGaps:
        """Inverse of to_dict (without the curve)."""
        columns = ["group", "attribute", "rows", "n_eff", "gap", "floor"]
        table = pd.DataFrame.from_records(data.get("groups") or [], columns=columns)
        table[["n_eff", "gap", "floor"]] = table[["n_eff", "gap", "floor"]].astype(float)
        return cls(str(data.get("entry", "")), str(data.get("score", "kl")), table,
                   pd.DataFrame({"n": [], "floor": []}))


def _row_floor(row, score: str) -> float:
    """Noise floor of one survey row at its own effective n (NaN without n)."""
    values = noise_floor(row.dist, row.n_eff, ordinal_values=row.question.ordinal_values,
                         n_sims=FLOOR_SIMS)
    return values.get(score, float("nan"))


def floor_curve(survey_rows, score: str, sizes) -> pd.DataFrame:
    """Mean noise floor over questions (each at its mean real distribution) per size."""
    by_question: dict[str, list] = {}
    for row in survey_rows:
        by_question.setdefault(row.question.id, []).append(row)
    ids = sorted(by_question)
    if len(ids) > CURVE_QUESTIONS:
        ids = sorted(np.random.default_rng(0).choice(ids, CURVE_QUESTIONS, replace=False))
    means = [(by_question[q][0].question, np.mean([r.dist for r in by_question[q]], axis=0))
             for q in ids]
    floors = [np.nanmean([noise_floor(p, n, ordinal_values=q.ordinal_values,
                                      n_sims=FLOOR_SIMS).get(score, np.nan) for q, p in means])
              if means else np.nan for n in sizes]
    return pd.DataFrame({"n": list(sizes), "floor": floors})


def group_gaps(evaluation, entry: str, score: str = "kl") -> GroupGaps:
    """Gap per group of one entry of a sim_core.evaluation.evaluate.Evaluation.

    Args:
        evaluation: an Evaluation (its rows and survey_rows).
        entry: one of evaluation.entries.
        score: a score key present in the evaluation (default KL).
    Returns:
        GroupGaps (table largest gap first; curve over the range of group sizes).
    """
    if entry not in evaluation.entries:
        raise KeyError(f"unknown entry {entry!r}; known: {', '.join(evaluation.entries)}")
    if score not in METRICS or score not in evaluation.rows:
        raise DataError(f"score '{score}' is not in this evaluation.")
    rows = evaluation.rows[evaluation.rows["entry"] == entry].reset_index(drop=True)
    # an entry's rows follow evaluation.survey_rows one to one (sim_core.evaluation.evaluate)
    rows = rows.assign(floor=[_row_floor(r, score) for r in evaluation.survey_rows])
    table = (rows.groupby(["slice", "attribute"], sort=False)
             .agg(rows=(score, "size"), n_eff=("n_eff", "mean"), gap=(score, "mean"),
                  floor=("floor", "mean"))
             .reset_index().rename(columns={"slice": "group"}))
    table = table.sort_values("gap", ascending=False, kind="stable").reset_index(drop=True)
    known = table["n_eff"].dropna()
    sizes = (np.geomspace(max(2.0, known.min() / 2), known.max() * 2, CURVE_POINTS)
             if len(known) else [])
    return GroupGaps(entry, score, table, floor_curve(evaluation.survey_rows, score, sizes))


def gap_changes(before: GroupGaps, after: GroupGaps) -> pd.DataFrame:
    """Per group: gap before and after (e.g. base model and adapter), the change, and
    whether it grew; groups in both, the largest growth first.

    Returns:
        Columns group, attribute, n_eff, before, after, change (after - before), grew
        (change > 0) and beyond_noise (the growth is larger than the group's noise floor,
        the gap sampling noise alone gives at its size).
    """
    if before.score != after.score:
        raise DataError(f"cannot compare gaps in {before.score} with gaps in {after.score}.")
    merged = before.table.merge(after.table[["group", "gap"]], on="group",
                                suffixes=("_before", "_after"))
    out = pd.DataFrame({"group": merged["group"], "attribute": merged["attribute"],
                        "n_eff": merged["n_eff"], "before": merged["gap_before"],
                        "after": merged["gap_after"]})
    out["change"] = out["after"] - out["before"]
    out["grew"] = out["change"] > 0
    out["beyond_noise"] = out["grew"] & (out["change"] > merged["floor"].fillna(0))
    return out.sort_values("change", ascending=False, kind="stable").reset_index(drop=True)


def _plain(value):
    """JSON-ready scalar (numpy numbers unwrapped, NaN as None)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def fairness_record(before: dict, after: dict) -> dict:
    """What an adapter card says about fairness (finetune.train): per group its size, the
    gap before and after training and its noise floor; the spread across groups before and
    after; the groups whose gap grew.

    Args:
        before, after: GroupGaps.to_dict() of the base model and the adapter on the same
            held-out rows.
    """
    old, new = GroupGaps.from_dict(before), GroupGaps.from_dict(after)
    changes = gap_changes(old, new).merge(old.table[["group", "floor"]], on="group")
    groups = [{k: _plain(v) for k, v in row.items()}
              for row in changes.to_dict(orient="records")]
    return {"score": new.score, "rows": "held-out test rows",
            "spread_before": {k: _plain(v) for k, v in old.spread.items()},
            "spread_after": {k: _plain(v) for k, v in new.spread.items()},
            "groups": groups,
            "grew": [g["group"] for g in groups if g["grew"]],
            "grew_beyond_noise": [g["group"] for g in groups if g["beyond_noise"]]}
