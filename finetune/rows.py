"""Training rows for adapters: the training split of a survey, slice re-weighting and
balancing, option-order shuffling, respondent rows for the kl+ce loss.

A training row is a `sim_core.survey.slices.SurveyRow` (question, slice, real distribution,
weight) from any survey the data core reads (respondent-level, marginals, GSS SubPOP). How
rows and people are held out is sim_core's (sim_core.evaluation.splits and
respondent_table), so training and evaluation hold out the same things.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.seeded import rank
from sim_core.evaluation.respondent_table import respondent_parts, respondent_split
from sim_core.evaluation.splits import Split, SplitConfig, SplitInfo, counted, row_key, split_rows
from sim_core.survey.marginal import slice_label
from sim_core.survey.schema import Question, Survey, value_text
from sim_core.survey.slices import SurveyRow, group_values, survey_rows


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
        if split.info.how == "slice" else []
    people = None
    if split.info.how == "respondent":       # only the training respondents
        people = respondent_split(survey, test_fraction=split.info.test_fraction,
                                  val_fraction=split.info.val_fraction,
                                  seed=split.info.seed).train
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
            "test": [row(r) for r in split.test], "info": split.info.to_dict()}


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
                     test=[row(d) for d in data["test"]],
                     info=SplitInfo.from_dict(data.get("info")))
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"Malformed training rows file: {error}") from error


def training_split(survey: Survey, by: Sequence[str] | None, config: SplitConfig, *,
                   seed: int = 0, loss: str = "kl", bins=None, wave=None,
                   questions: Sequence[str] | None = None) -> Split:
    """Split a survey's (question, group) rows for training.

    Args:
        survey: the survey.
        by: slice attributes (None: every attribute on its own).
        config: how (question, slice, wave, random, respondent) and the shares.
        seed: seeds the split (TrainConfig.seed).
        loss: with "kl+ce", respondent rows of the training part are added.
        bins, wave, questions: as in sim_core.survey.slices.survey_rows.
    Returns:
        The Split (info describes it, for the adapter card).
    """
    if config.how == "respondent":
        people = respondent_split(survey, test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction, seed=seed)
        parts = respondent_parts(survey, people, by, bins=bins, wave=wave, questions=questions)
        if not parts["test"] or not parts["train"]:
            raise DataError("Split by respondent: too few respondents to train and test.")
        info = counted(people.info, parts["train"], parts["val"], parts["test"])
        split = Split(parts["train"], parts["val"], parts["test"], info)
    else:
        rows = survey_rows(survey, by, wave=wave, questions=questions, bins=bins)
        split = split_rows(rows, how=config.how, test_fraction=config.test_fraction,
                           val_fraction=config.val_fraction, seed=seed,
                           test_slices=config.test_slices)
    if loss == "kl+ce":
        split.train += individual_training_rows(survey, by or [], split, seed=seed, bins=bins)
    return split
