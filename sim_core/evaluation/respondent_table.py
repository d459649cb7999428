"""The people of a respondent-level survey as one run sees them: who is held out, their
weights and their groups, built once (RespondentTable) and passed to every consumer — the
model baselines, the individual-level evaluation and its population-average guess.

One split for everything: the respondents of a survey are permuted once with a seed and the
first share is held out for testing, so the same person is held out for every question, by
every baseline and by every checkpoint (a model scored on held-out respondents never saw
their answers, whichever question it is). Groups come from sim_core.survey.slices.group_values
on the wave's respondents, the code that labels the slices, so a respondent's group equals
the label of the slice they belong to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import unique_labels
from sim_core.evaluation.splits import RESPONDENT_TEST_SHARE, SplitInfo
from sim_core.simulation.adapter_card import read_card
from sim_core.simulation.handle import ModelHandle
from sim_core.survey.schema import MARGINALS, Question, Survey
from sim_core.survey.slices import SurveyRow, survey_rows, wave_respondents, weighted_groups

MISSING_GROUP = "(missing)"    # a demographic left blank is its own one-hot category
PARTS = ("train", "val", "test")


@dataclass
class RespondentSplit:
    """Respondents (index labels of Survey.respondents) for training, validation and test.

    Attributes:
        train: respondents models may learn from.
        val: respondents for choices made before testing (e.g. the temperature); a part of
            what is not test, so baselines may train on train + val.
        test: held-out respondents, scored only.
        info: how it was made (seed, shares, people per part), for cards and reports.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: SplitInfo

    def people(self, name: str) -> np.ndarray:
        """The respondents of part `name` ("train", "val" or "test")."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def part(self, index: pd.Index, name: str) -> np.ndarray:
        """Boolean mask over `index`: which of these respondents are in part `name`."""
        return np.asarray(index.isin(self.people(name)))


def require_respondents(survey: Survey, what: str) -> pd.DataFrame:
    """The respondents table, or a DataError saying `what` needs respondent-level data."""
    if survey.kind == MARGINALS or survey.respondents is None:
        raise DataError(f"{what} needs respondent-level data (one row per person); "
                        f"'{survey.name or 'this survey'}' holds marginal tables only.")
    return survey.respondents


def respondent_split(survey: Survey, *, test_fraction: float = RESPONDENT_TEST_SHARE,
                     val_fraction: float = 0.0, seed: int = 0) -> RespondentSplit:
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
    info = SplitInfo(how="respondent", seed=seed, test_fraction=test_fraction,
                     val_fraction=val_fraction, n_train=len(train), n_val=len(val),
                     n_test=len(test),
                     respondents={"train": len(train), "val": len(val), "test": len(test)})
    return RespondentSplit(train, val, test, info)


@dataclass
class RespondentTable:
    """One run's respondents: built once (RespondentTable.build), then passed on.

    Attributes:
        survey: the respondent-level survey.
        frame: the wave's respondents (answered or not), as read.
        weights: each respondent's survey weight (1 without a weight column), frame's order.
        groups: attribute -> group label per respondent (None where missing), frame's index.
        split: who is held out (the same people for every question and model).
        wave: the wave (None: every wave pooled).
    """

    survey: Survey
    frame: pd.DataFrame
    weights: np.ndarray
    groups: pd.DataFrame
    split: RespondentSplit
    wave: str | None = None

    @classmethod
    def build(cls, survey: Survey, attributes: Sequence[str], *, wave: str | None = None,
              bins=None, split: RespondentSplit | None = None,
              test_fraction: float = RESPONDENT_TEST_SHARE, seed: int = 0
              ) -> RespondentTable:
        """The table for these attributes (DataError for marginal tables or an attribute
        the survey does not have); `split` default: respondent_split(test_fraction, seed)."""
        require_respondents(survey, "describing respondents by their groups")
        unknown = [a for a in attributes if a not in survey.demographics]
        if unknown:
            raise DataError(f"unknown attribute(s) {', '.join(unknown)}; the survey's "
                            f"demographics are: {', '.join(survey.demographics)}.")
        split = split or respondent_split(survey, test_fraction=test_fraction, seed=seed)
        frame = wave_respondents(survey, wave)
        labelled = weighted_groups(survey, list(dict.fromkeys(attributes)), wave=wave, bins=bins)
        groups = labelled.drop(columns="weight").astype(object)
        groups = groups.where(groups.notna(), None)      # None where the value is missing
        return cls(survey, frame, labelled["weight"].to_numpy(), groups, split, wave)

    def answered(self, question: Question) -> np.ndarray:
        """Mask over frame: who answered the question (nonresponse is no answer)."""
        return self.frame[question.id].notna().to_numpy()

    def answer_codes(self, question: Question, where: np.ndarray) -> np.ndarray:
        """Option index of the answer of each respondent `where` picks (a mask over frame,
        or positions in it)."""
        answers = self.frame[question.id].iloc[where].astype(str)
        return np.asarray(pd.Categorical(answers, categories=list(question.options)).codes)

    def in_part(self, name: str) -> np.ndarray:
        """Mask over frame: who is in part `name` of the split."""
        return self.split.part(self.frame.index, name)

    def features(self, attributes: Sequence[str]) -> pd.DataFrame:
        """Groups of these attributes with a missing value as its own category (features)."""
        return self.groups[list(attributes)].fillna(MISSING_GROUP).astype(str)

    def check_attributes(self, attributes: Sequence[str]) -> list[str]:
        """The attributes (deduplicated), refused when none is given or one has a single
        group among these respondents (nothing to tell people apart by)."""
        attributes = list(dict.fromkeys(attributes))
        if not attributes:
            raise DataError("choose at least one attribute to describe respondents by.")
        for attribute in attributes:
            present = self.groups[attribute].dropna().unique()
            if len(present) < 2:
                only = f" ('{present[0]}')" if len(present) else ""
                raise DataError(f"attribute '{attribute}' has a single group{only}: it cannot "
                                "tell groups apart; choose another attribute.")
        return attributes


def respondent_parts(survey: Survey, split: RespondentSplit, by=None, *, bins=None, wave=None,
                     questions: Sequence[str] | None = None) -> dict[str, list[SurveyRow]]:
    """Group rows (sim_core.survey.slices.survey_rows) of each part's respondents."""
    out = {}
    for part in PARTS:
        index = split.people(part)
        people = dataclasses.replace(survey, respondents=survey.respondents.loc[index])
        out[part] = survey_rows(people, by, wave=wave, questions=questions,
                                bins=bins) if len(index) else []
    return out


def adapter_splits(models: Sequence[ModelHandle]) -> dict[str, SplitInfo]:
    """Checkpoint label -> the split its adapter card records (base models: none)."""
    return {label: SplitInfo.from_dict(read_card(lm.adapter_path).split)
            for lm, label in zip(models, unique_labels(models)) if lm.adapter_path is not None}


def split_from_cards(models: Sequence[ModelHandle]) -> tuple[float, int] | None:
    """(test share, seed) of the adapters' respondent split, when they hold one out; the
    individual evaluation must hold out the same people (DataError when adapters differ)."""
    found = {(s.test_fraction, s.seed) for s in adapter_splits(models).values()
             if s.how == "respondent"}
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
        if split.how == "respondent":
            if (split.test_fraction, split.seed) != (test_fraction, seed):
                raise DataError(
                    f"{label} held out respondents with test share {split.test_fraction} "
                    f"and seed {split.seed}; score it on the same people (test share "
                    f"{split.test_fraction}, split seed {split.seed}), or it is scored "
                    "on people it was trained on.")
        else:
            how = f"with a {split.how} split" if split.how else "without a recorded split"
            notes.append(f"{label} was trained {how}: its training rows may include these "
                         "respondents' answers (as group shares), so its individual scores "
                         "are not a held-out test; train with the respondent split for one.")
