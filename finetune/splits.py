"""Training splits made from a survey (not only from its rows): the one place the CLI and
the Fine-tune page turn a survey and a SplitConfig into a Split.

The respondent split holds out whole people (sim_core.evaluation.splits.respondent_split, the
split the individual-level evaluation and the model baselines use): training and validation
rows are the group shares of the training and validation respondents, the test rows those of
the held-out respondents, so an adapter never sees a held-out person's answers.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from finetune.config import SplitConfig
from finetune.rows import Split, individual_training_rows, split_rows
from sim_core.base.errors import DataError
from sim_core.evaluation.splits import require_respondents, respondent_split
from sim_core.survey.schema import Survey
from sim_core.survey.slices import SurveyRow, survey_rows


def _people(survey: Survey, index) -> Survey:
    """The survey restricted to some respondents (index labels)."""
    return dataclasses.replace(survey, respondents=survey.respondents.loc[index])


def respondent_parts(survey: Survey, info: dict, by=None, *, bins=None, wave=None,
                     questions: Sequence[str] | None = None) -> dict[str, list[SurveyRow]]:
    """Group rows of the train, val and test respondents of a respondent split's info
    (its seed and shares); info["respondents"] gets the number of people in each part."""
    require_respondents(survey, "holding out respondents")
    people = respondent_split(survey, test_fraction=info["test_fraction"],
                              val_fraction=info["val_fraction"], seed=info["seed"])
    info["respondents"] = {part: len(getattr(people, part)) for part in ("train", "val", "test")}
    out = {}
    for part in ("train", "val", "test"):
        index = getattr(people, part)
        out[part] = survey_rows(_people(survey, index), by, wave=wave, questions=questions,
                                bins=bins) if len(index) else []
    return out


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
        info = {"how": "respondent", "seed": seed, "test_fraction": config.test_fraction,
                "val_fraction": config.val_fraction}
        parts = respondent_parts(survey, info, by, bins=bins, wave=wave, questions=questions)
        if not parts["test"] or not parts["train"]:
            raise DataError("Split by respondent: too few respondents to train and test.")
        info.update(n_train=len(parts["train"]), n_val=len(parts["val"]),
                    n_test=len(parts["test"]),
                    train_questions=len({r.question.id for r in parts["train"]}),
                    test_question_count=len({r.question.id for r in parts["test"]}))
        split = Split(parts["train"], parts["val"], parts["test"], info)
    else:
        rows = survey_rows(survey, by, wave=wave, questions=questions, bins=bins)
        split = split_rows(rows, how=config.how, test_fraction=config.test_fraction,
                           val_fraction=config.val_fraction, seed=seed,
                           test_slices=config.test_slices)
    if loss == "kl+ce":
        split.train += individual_training_rows(survey, by or [], split, seed=seed, bins=bins)
    return split
