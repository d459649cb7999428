"""Respondent-level helpers shared by the baselines, the individual-level evaluation and
training: which respondents are held out, and each respondent's groups (their profile).

One split for everything: the respondents of a survey are permuted once with a seed and the
first share is held out for testing, so the same person is held out for every question, by
every baseline and by every checkpoint (a model scored on held-out respondents never saw
their answers, whichever question it is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import unique_labels
from sim_core.simulation.adapters import read_card
from sim_core.simulation.handle import ModelHandle
from sim_core.survey.schema import MARGINALS, Survey
from sim_core.survey.slices import group_values

MISSING_GROUP = "(missing)"    # a demographic left blank is its own one-hot category


@dataclass
class RespondentSplit:
    """Respondents (index labels of Survey.respondents) for training, validation and test.

    Attributes:
        train: respondents models may learn from.
        val: respondents for choices made before testing (e.g. the temperature); a part of
            what is not test, so baselines may train on train + val.
        test: held-out respondents, scored only.
        info: how it was made (seed, fractions, counts), for cards and reports.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)

    def part(self, index: pd.Index, name: str) -> np.ndarray:
        """Boolean mask over `index`: which of these respondents are in part `name`."""
        return np.asarray(index.isin(getattr(self, name)))


def require_respondents(survey: Survey, what: str) -> pd.DataFrame:
    """The respondents table, or a DataError saying `what` needs respondent-level data."""
    if survey.kind == MARGINALS or survey.respondents is None:
        raise DataError(f"{what} needs respondent-level data (one row per person); "
                        f"'{survey.name or 'this survey'}' holds marginal tables only.")
    return survey.respondents


def respondent_split(survey: Survey, *, test_fraction: float = 0.3, val_fraction: float = 0.0,
                     seed: int = 0) -> RespondentSplit:
    """Hold out a seeded share of a survey's respondents.

    Args:
        survey: a respondent-level Survey (DataError for marginal tables).
        test_fraction: share of all respondents held out for testing (0 < f < 1).
        val_fraction: share of the remaining respondents set aside for validation.
        seed: seeds the permutation (the same seed gives the same people).
    Returns:
        RespondentSplit; train + val + test are all respondents, disjoint.
    """
    frame = require_respondents(survey, "holding out respondents")
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise DataError(f"test share {test_fraction} must be above 0 and below 1, validation "
                        f"share {val_fraction} at least 0 and below 1.")
    order = frame.index.to_numpy()[np.random.default_rng(seed).permutation(len(frame))]
    n_test = int(round(test_fraction * len(order)))
    n_val = int(round(val_fraction * (len(order) - n_test)))
    if n_test < 1 or len(order) - n_test - n_val < 1:
        raise DataError(f"'{survey.name}' has {len(order)} respondents: too few to hold out "
                        f"{test_fraction:.0%} and still train on the rest.")
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    info = {"how": "respondent", "seed": seed, "test_fraction": test_fraction,
            "val_fraction": val_fraction, "n_train": len(train), "n_val": len(val),
            "n_test": len(test), "n_respondents": len(order)}
    return RespondentSplit(train, val, test, info)


def respondent_groups(frame: pd.DataFrame, attributes: Sequence[str], bins=None
                      ) -> pd.DataFrame:
    """Group label per respondent and attribute, as text; None where the value is missing.

    Labels come from sim_core.survey.slices.group_values (numbers binned), the code that labels
    the slices, so a respondent's group equals the label of the slice they belong to.
    """
    columns = {}
    for attribute in attributes:
        values = pd.Series(group_values(frame, attribute, bins), index=frame.index)
        columns[attribute] = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
    return pd.DataFrame(columns, index=frame.index)


def feature_table(frame: pd.DataFrame, attributes: Sequence[str], bins=None) -> pd.DataFrame:
    """respondent_groups with missing values as their own category (model features)."""
    return respondent_groups(frame, attributes, bins).fillna(MISSING_GROUP).astype(str)


def check_attributes(survey: Survey, attributes: Sequence[str], bins=None) -> list[str]:
    """The attributes, refused when unknown or when one has a single group (nothing to
    tell people apart by)."""
    frame = require_respondents(survey, "describing respondents by their groups")
    attributes = list(dict.fromkeys(attributes))
    if not attributes:
        raise DataError("choose at least one attribute to describe respondents by.")
    unknown = [a for a in attributes if a not in survey.demographics]
    if unknown:
        raise DataError(f"unknown attribute(s) {', '.join(unknown)}; the survey's "
                        f"demographics are: {', '.join(survey.demographics)}.")
    groups = respondent_groups(frame, attributes, bins)
    for attribute in attributes:
        present = groups[attribute].dropna().unique()
        if len(present) < 2:
            only = f" ('{present[0]}')" if len(present) else ""
            raise DataError(f"attribute '{attribute}' has a single group{only}: it cannot "
                            "tell groups apart; choose another attribute.")
    return attributes


def adapter_splits(models: Sequence[ModelHandle]) -> dict[str, dict]:
    """Checkpoint label -> the split its adapter card records (base models: none)."""
    out = {}
    for lm, label in zip(models, unique_labels(models)):
        if lm.adapter_path is not None:
            out[label] = read_card(lm.adapter_path).split or {}
    return out


def split_from_cards(models: Sequence[ModelHandle]) -> tuple[float, int] | None:
    """(test share, seed) of the adapters' respondent split, when they hold one out; the
    individual evaluation must hold out the same people (DataError when adapters differ)."""
    found = {(s["test_fraction"], s["seed"]) for s in adapter_splits(models).values()
             if s.get("how") == "respondent"}
    if len(found) > 1:
        raise DataError("these adapters held out different respondents "
                        f"({sorted(found)}); evaluate them separately.")
    return next(iter(found), None)


def check_adapter_splits(models: Sequence[ModelHandle], test_fraction: float, seed: int,
                         notes: list[str]) -> None:
    """Refuse an adapter trained on people that a split with this test share and seed holds
    out; note adapters trained on other splits (their training rows may include these
    respondents' answers)."""
    for label, split in adapter_splits(models).items():
        if split.get("how") == "respondent":
            if (split["test_fraction"], split["seed"]) != (test_fraction, seed):
                raise DataError(
                    f"{label} held out respondents with test share {split['test_fraction']} "
                    f"and seed {split['seed']}; score it on the same people (test share "
                    f"{split['test_fraction']}, split seed {split['seed']}), or it is scored "
                    "on people it was trained on.")
        else:
            how = f"with a {split['how']} split" if split.get("how") else "without a recorded split"
            notes.append(f"{label} was trained {how}: its training rows may include these "
                         "respondents' answers (as group shares), so its individual scores "
                         "are not a held-out test; train with the respondent split for one.")
