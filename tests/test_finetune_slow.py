"""Fine-tuning the embedded 135M model on real GSS rows lowers held-out KL (slow, ~2-3 min)."""

from __future__ import annotations

import pytest

from finetune.config import TrainConfig
from finetune.train import train_adapter
from sim_core.evaluation.splits import split_rows
from sim_core.survey.marginal_readers import read_subpop_jsonl
from sim_core.survey.slices import survey_rows

QUESTIONS = ["natspac", "natenvir", "natheal", "natcity", "natdrug", "nateduc",
             "natrace", "natarms"]


@pytest.mark.slow
def test_lora_lowers_heldout_kl_on_gss(gss_path):
    survey = read_subpop_jsonl(gss_path)
    rows = survey_rows(survey, questions=QUESTIONS)
    assert len(rows) == 8 * 22
    # held-out rows of seen questions (random split): what a fitted adapter must improve
    split = split_rows(rows, "random", test_fraction=0.2, val_fraction=0.1, seed=0)
    config = TrainConfig(max_steps=24, lr=2e-3, batch_size=8, eval_orders=1, save_every=1000)
    result = train_adapter(split, name="slow-gss", base="default", config=config,
                           data_info={"file": gss_path.name})
    before, after = result.before, result.after
    print("before", before, "after", after, "baselines", result.baselines)
    assert after["kl"] < 0.8 * before["kl"]
    assert after["wasserstein"] < before["wasserstein"]
    assert result.card.test_rows == len(split.test) == 35
