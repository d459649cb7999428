"""Training rows for adapters: seeded splits, slice re-weighting, option-order shuffling.

A training row is a `sim_core.survey.slices.SurveyRow` (question, slice, real distribution,
weight) from any survey the data core reads (respondent-level, marginals, GSS SubPOP).
Splits are decided by a seeded hash of the question id / group label / row key, so the
same seed gives the same split whatever order the rows come in.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from finetune.config import SPLITS
from sim_core.base.errors import DataError
from sim_core.base.seeded import holdout_count, pick, rank
from sim_core.evaluation.splits import respondent_split
from sim_core.survey.schema import Question, value_text
from sim_core.survey.slices import SurveyRow, group_values, slice_label


@dataclass
class Split:
    """Rows for training, validation (early stopping) and held-out testing.

    `info` describes how the split was made (stored in the adapter card).
    """

    train: list[SurveyRow]
    val: list[SurveyRow]
    test: list[SurveyRow]
    info: dict = field(default_factory=dict)


def row_key(row: SurveyRow) -> str:
    """Unique key of a row: question, slice and wave."""
    return f"{row.question.id}|{slice_label(row.slice)}|{row.wave}"


def _divide(rows: list[SurveyRow], unit: Callable[[SurveyRow], str], count: int,
            seed: int) -> tuple[list[SurveyRow], list[SurveyRow], list[str]]:
    """Split rows into (kept, held out) by holding out `count` whole units."""
    held = pick([unit(r) for r in rows], count, seed)
    kept = [r for r in rows if unit(r) not in held]
    out = [r for r in rows if unit(r) in held]
    return kept, out, sorted(held)


def _by_question(row: SurveyRow) -> str:
    return row.question.id


def _by_slice(row: SurveyRow) -> str:
    return slice_label(row.slice)


def split_rows(rows: Sequence[SurveyRow], how: str = "question", *, test_fraction: float = 0.2,
               val_fraction: float = 0.1, seed: int = 0, test_slices: int = 4,
               hold_out: Sequence[str] = ()) -> Split:
    """Split survey rows into train / validation / test.

    Args:
        rows: SurveyRows (e.g. from sim_core.survey.slices.survey_rows).
        how: "question" (test questions never seen in training), "slice" (`test_slices`
            whole groups held out, e.g. "SEX=Female" for every question), "wave" (the latest
            wave held out; rows need distinct `wave` values) or "random" (rows at random).
        test_fraction: share of questions (question) or rows (random) held out for testing.
        val_fraction: share of the remaining units carved out for validation (early
            stopping); by question for the question split, by group for the slice split,
            by row otherwise.
        seed: seeds the hash that picks the held-out units (row order does not matter).
        test_slices: groups held out by the slice split.
        hold_out: slice labels (e.g. "RELIG=Jewish") the slice split must hold out; the
            seeded pick adds groups until there are `test_slices`.
    Returns:
        Split with `info` describing it.
    Raises:
        DataError: unknown `how`, no rows, or too few units to hold any out.
    """
    rows = list(rows)
    if how not in SPLITS:
        raise DataError(f"Unknown split '{how}': use one of {', '.join(SPLITS)}.")
    if how == "respondent":
        raise DataError("Holding out respondents needs the survey, not its rows: use "
                        "finetune.splits.training_split.")
    if not rows:
        raise DataError("No training rows: the survey gave no (question, slice) rows.")
    info: dict = {"how": how, "seed": seed, "val_fraction": val_fraction}
    if how == "question":
        n_q = len({r.question.id for r in rows})
        train, test, held = _divide(rows, _by_question, holdout_count(n_q, test_fraction), seed)
        info.update(test_fraction=test_fraction, test_questions=held)
        val_unit = _by_question
    elif how == "slice":
        groups = {_by_slice(r) for r in rows}
        forced = set(hold_out)
        if forced - groups:
            raise DataError(f"Cannot hold out {', '.join(sorted(forced - groups))}: no such "
                            "group in these rows.")
        count = min(test_slices, max(len(groups) - 1, 0))
        held_set = forced | pick(sorted(groups - forced), max(0, count - len(forced)), seed)
        train = [r for r in rows if _by_slice(r) not in held_set]
        test = [r for r in rows if _by_slice(r) in held_set]
        held = sorted(held_set)
        info.update(test_slices=held)
        val_unit = _by_slice
    elif how == "wave":
        waves = sorted({r.wave for r in rows})
        if len(waves) < 2:
            raise DataError("Split by wave needs rows from at least two waves; "
                            f"found {len(waves)} ({', '.join(map(repr, waves))}).")
        # Train on earlier waves, test on the latest: the longitudinal question (Lin 2024).
        train = [r for r in rows if r.wave != waves[-1]]
        test = [r for r in rows if r.wave == waves[-1]]
        info.update(test_waves=[waves[-1]], train_waves=waves[:-1])
        val_unit = row_key
    else:
        train, test, _ = _divide(rows, row_key, holdout_count(len(rows), test_fraction), seed)
        info.update(test_fraction=test_fraction)
        val_unit = row_key
    if not test:
        raise DataError(f"Split by {how}: too few {how}s to hold any out for testing.")
    n_units = len({val_unit(r) for r in train})
    train, val, val_held = _divide(train, val_unit, holdout_count(n_units, val_fraction) if
                                   val_fraction > 0 else 0, seed + 1)
    if how in ("question", "slice"):
        info["val_units"] = val_held
    info.update(n_train=len(train), n_val=len(val), n_test=len(test),
                train_questions=len({r.question.id for r in train}),
                test_question_count=len({r.question.id for r in test}))
    return Split(train=train, val=val, test=test, info=info)


def held_out_rows(rows: Sequence[SurveyRow], info: dict) -> list[SurveyRow]:
    """The rows an adapter never saw, given the split `info` stored in its card.

    Question, slice and wave splits are matched by their held-out units (so the rows may
    come from a fresh read of the survey); a random split is recomputed with its seed.

    Raises:
        DataError: the card has no split, or none of `rows` belongs to its held-out part.
    """
    how = (info or {}).get("how")
    if how == "question":
        held = set(info.get("test_questions", []))
        out = [r for r in rows if r.question.id in held]
    elif how == "slice":
        held = set(info.get("test_slices", []))
        out = [r for r in rows if _by_slice(r) in held]
    elif how == "wave":
        held = {str(w) for w in info.get("test_waves", [])}
        out = [r for r in rows if str(r.wave) in held]
    elif how == "random":
        out = split_rows(rows, "random", test_fraction=info.get("test_fraction", 0.2),
                         val_fraction=info.get("val_fraction", 0.1),
                         seed=info.get("seed", 0)).test
    else:
        raise DataError("The adapter's card records no train/test split; "
                        "score it on all rows instead (--rows all).")
    if not out:
        raise DataError(f"None of these rows is in the adapter's held-out part (split by "
                        f"{how}); is this the survey it was trained on? Use --rows all to "
                        "score every row.")
    return out


def held_out_with_reference(rows: Sequence[SurveyRow], info: dict
                            ) -> tuple[list[SurveyRow], list[SurveyRow]]:
    """The held-out rows (held_out_rows) and the rows their population baseline may use:
    all rows, except for a slice split, where only the groups the adapter saw count."""
    held = held_out_rows(rows, info)
    if (info or {}).get("how") != "slice":
        return held, list(rows)
    held_ids = {id(r) for r in held}
    return held, [r for r in rows if id(r) not in held_ids]


def reweight_slices(rows: Sequence[SurveyRow]) -> list[SurveyRow]:
    """Give every group (slice label) the same total weight, so small groups count.

    Lin 2024's balancing of minority groups, done with weights rather than synthetic rows.
    Weights are scaled so that their mean stays 1 (the learning rate keeps its meaning).

    Args:
        rows: SurveyRows with their own weights (kept as relative weights within a group).
    Returns:
        New SurveyRows (copies) whose weights sum to len(rows) / n_groups per group.
    """
    rows = list(rows)
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[slice_label(row.slice)] += float(row.weight)
    if not rows:
        return []
    share = len(rows) / len(totals)
    out = []
    for row in rows:
        total = totals[slice_label(row.slice)]
        weight = share * float(row.weight) / total if total > 0 else 0.0
        out.append(replace(row, weight=weight))
    return out


def balance_groups(rows: Sequence[SurveyRow], floor: float, seed: int = 0) -> list[SurveyRow]:
    """Oversample small groups: repeat their rows until each group (slice label) has at
    least `floor` x the mean number of rows per group.

    Whole copies first, then a seeded choice of rows for the remainder. Copies, never
    synthetic rows: SMOTE-style interpolation between two respondents' prompts has no
    meaning for text (Lin 2024 balanced tabular features).

    Args:
        rows: training rows (aggregate or respondent rows).
        floor: 0 (nothing changes) to 1 (no group below the mean).
        seed: seeds which rows fill the remainder.
    Returns:
        The rows followed by the added copies.
    """
    rows = list(rows)
    if floor <= 0 or not rows:
        return rows
    groups: dict[str, list[SurveyRow]] = defaultdict(list)
    for row in rows:
        groups[slice_label(row.slice)].append(row)
    target = int(np.ceil(floor * len(rows) / len(groups)))
    added = []
    for label, members in groups.items():
        missing = target - len(members)
        if missing <= 0:
            continue
        whole, rest = divmod(missing, len(members))
        added += members * whole
        ranked = sorted(members, key=lambda r: rank(seed, f"{label}|{row_key(r)}"))
        added += ranked[:rest]
    return rows + added


def shuffle_order(k: int, seed: int, epoch: int, key: str) -> tuple[int, ...]:
    """A random option order for one row in one epoch (seeded, so runs repeat and resume).

    Returns `order` with order[j] = index of the original option shown at letter j,
    the convention of sim_core.simulation.prompts.build_prompt.
    """
    digest = hashlib.sha256(f"{seed}\x00{epoch}\x00{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return tuple(int(i) for i in rng.permutation(k))


def permute_target(dist: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """The real distribution in letter order: letter j carries the share of option order[j]."""
    return np.asarray(dist, dtype=np.float64)[list(order)]


def describe_rows(rows: Sequence[SurveyRow]) -> dict:
    """Questions and slices a set of rows covers (for the adapter card)."""
    return {"questions": sorted({r.question.id for r in rows}),
            "slices": sorted({slice_label(r.slice) for r in rows}),
            "n_rows": len(rows)}


def respondent_rows(survey, by: Sequence[str], *, questions: Sequence[str] | None = None,
                    max_per_question: int = 2000, seed: int = 0,
                    bins: dict[str, list[float]] | None = None,
                    respondents: Sequence | None = None) -> list[SurveyRow]:
    """One row per respondent and question: slice = their groups, target = their answer.

    For the "kl+ce" loss: KL against a one-hot target is the cross-entropy of that person's
    answer (Namikoshi et al. 2024, individual answers). Rows are marked by n_eff == 1.
    Groups come from sim_core.survey.slices.group_values, the code that labels the slices, so a
    respondent's slice equals the label of the group rows they belong to.

    Args:
        survey: a respondent-level Survey.
        by: demographic attributes forming each respondent's slice (numbers binned).
        questions: question ids (default: all).
        max_per_question: seeded subsample per question, to keep training time bounded.
        seed: seeds the subsample.
        bins: band edges for numeric attributes (as for the slices).
        respondents: only these respondents (index labels; default: everyone).
    Returns:
        SurveyRows with one-hot `dist`, `n_eff` 1 and the respondent's survey weight.
    Raises:
        DataError: the survey has no respondents or an attribute is unknown.
    """
    df = survey.respondents
    if survey.kind != "respondents" or df is None:
        raise DataError("Cross-entropy on individual respondents needs respondent-level data "
                        f"('{survey.name}' holds marginals only); use --loss kl.")
    missing = [a for a in by if a not in df.columns]
    if missing:
        raise DataError(f"Unknown attribute(s) {', '.join(missing)} in '{survey.name}'.")
    if respondents is not None:
        df = df.loc[df.index.isin(respondents)]
    groups = {a: pd.Series(group_values(df, a, bins), index=df.index).astype(object)
              for a in by}
    weights = df[survey.weight].astype(float) if survey.weight else None
    out: list[SurveyRow] = []
    for qid in questions or list(survey.questions):
        q = survey.questions[qid]
        answers = df[qid]
        idx = [i for i in df.index[answers.notna()]
               if all(not pd.isna(groups[a].loc[i]) for a in by)]
        idx = sorted(idx, key=lambda i: rank(seed, f"{qid}|{i}"))[:max_per_question]
        for i in idx:
            dist = np.zeros(len(q.options))
            dist[q.options.index(str(answers.loc[i]))] = 1.0
            weight = float(weights.loc[i]) if weights is not None else 1.0
            wave = value_text(df.loc[i, survey.wave]) if survey.wave else ""
            out.append(SurveyRow(question=q, slice={a: str(groups[a].loc[i]) for a in by},
                                 dist=dist, n_eff=1.0, weight=weight, wave=wave))
    return out


def individual_training_rows(survey, by: Sequence[str], split: Split, *, seed: int = 0,
                             bins: dict[str, list[float]] | None = None) -> list[SurveyRow]:
    """Respondent rows for the kl+ce loss, kept out of held-out questions and groups.

    Args:
        survey: a respondent-level Survey.
        by: the attributes describing each respondent (the slices of the split's rows).
        split: the aggregate split; only its training questions are used, with a slice
            split no respondent of a held-out (test or validation) group, and with a
            respondent split only the training respondents.
        seed: seeds the per-question subsample.
        bins: band edges for numeric attributes (as for the split's rows).
    Raises:
        DataError: no attributes given, or the survey has no respondents.
    """
    if not by:
        raise DataError("--loss kl+ce needs --by (the attributes describing each respondent).")
    train_q = {r.question.id for r in split.train}
    held = [r.slice for r in split.test + split.val if r.slice] \
        if split.info.get("how") == "slice" else []
    people = None
    if split.info.get("how") == "respondent":       # only the training respondents
        people = respondent_split(survey, test_fraction=split.info["test_fraction"],
                                  val_fraction=split.info["val_fraction"],
                                  seed=split.info["seed"]).train
    rows = respondent_rows(survey, by, questions=sorted(train_q), seed=seed, bins=bins,
                           respondents=people)
    return [r for r in rows if not any(h.items() <= r.slice.items() for h in held)]


def _num(value: float) -> float | None:
    """JSON-safe float (nan -> None)."""
    return None if value is None or np.isnan(value) else float(value)


def split_to_json(split: Split) -> dict:
    """A Split as plain JSON data (for background jobs; no pickles)."""
    def row(r: SurveyRow) -> dict:
        q = r.question
        return {"question": {"id": q.id, "text": q.text, "options": list(q.options),
                             "ordinal_values": None if q.ordinal_values is None
                             else [_num(v) for v in q.ordinal_values]},
                "slice": dict(r.slice), "dist": [float(x) for x in r.dist],
                "n_eff": _num(r.n_eff) if r.n_eff is not None else None,
                "weight": float(r.weight), "wave": r.wave}
    return {"train": [row(r) for r in split.train], "val": [row(r) for r in split.val],
            "test": [row(r) for r in split.test], "info": split.info}


def split_from_json(data: dict) -> Split:
    """Inverse of split_to_json; DataError when the data is malformed."""
    questions: dict[str, Question] = {}

    def row(d: dict) -> SurveyRow:
        qd = d["question"]
        values = qd["ordinal_values"]
        q = questions.setdefault(qd["id"], Question(
            id=qd["id"], text=qd["text"], options=tuple(qd["options"]),
            ordinal_values=None if values is None else
            tuple(float("nan") if v is None else float(v) for v in values)))
        return SurveyRow(question=q, slice={str(k): str(v) for k, v in d["slice"].items()},
                         dist=np.asarray(d["dist"], dtype=np.float64), n_eff=d.get("n_eff"),
                         weight=float(d.get("weight", 1.0)), wave=str(d.get("wave", "")))
    try:
        return Split(train=[row(d) for d in data["train"]], val=[row(d) for d in data["val"]],
                     test=[row(d) for d in data["test"]], info=dict(data.get("info", {})))
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"Malformed training rows file: {error}") from error
