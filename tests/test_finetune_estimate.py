"""finetune.estimate: planned steps as the Trainer plans them, durations from a measured step."""

from __future__ import annotations

import math

import pytest
from test_finetune_rows import make_rows

from finetune.config import TrainConfig
from finetune.estimate import estimate_duration, planned_steps
from finetune.train import train_adapter
from sim_core.evaluation.splits import Split, SplitInfo
from sim_core.simulation.adapters import list_adapters

FAST = dict(evaluate_test=False, save_every=1000, rank=4, alpha=8, eval_every=None)


def test_planned_steps_by_hand():
    """138 rows in batches of 8 make 18 steps an epoch."""
    assert planned_steps(138, TrainConfig(batch_size=8, epochs=1.0)) == 18
    assert planned_steps(138, TrainConfig(batch_size=8, epochs=1.5)) == 27
    assert planned_steps(138, TrainConfig(batch_size=8, max_steps=5)) == 5
    assert planned_steps(0, TrainConfig(batch_size=8)) == 0


def test_no_measurement_no_duration(tmp_path):
    """No adapter from this base model yet: steps only, and the text says why."""
    split = Split(train=make_rows(10), val=[], test=[], info=SplitInfo(how="question"))
    estimate = estimate_duration(split, TrainConfig(batch_size=4), str(tmp_path / "unseen"))
    assert estimate.steps == math.ceil(len(split.train) / 4) and estimate.seconds is None
    assert "no measured step time" in estimate.text()


def test_steps_match_the_trainer_and_duration_scales_from_the_card(tiny_model_dir, tmp_path,
                                                                    monkeypatch):
    """The Trainer plans the steps estimate_duration says; the adapter's card keeps the
    measured time per step; a job with twice the rows per step and twice the held-out rows
    is estimated from that card by hand."""
    # a workspace of its own: an adapter another test trained from the same tiny model in
    # the same second (cards are dated to the second) would tie with this one
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    rows = make_rows(2)
    config = TrainConfig(batch_size=3, epochs=1.0, **FAST)
    split = Split(train=rows, val=[], test=rows[:4], info=SplitInfo(how="question"))
    expected = planned_steps(len(rows), config)
    assert expected == math.ceil(len(rows) / 3)
    events = []
    train_adapter(split, name="timed", base=str(tiny_model_dir), config=config,
                  callback=events.append)
    assert events[0]["total_steps"] == expected
    card = next(a.card for a in list_adapters() if a.name == "timed")
    assert card.steps == expected
    assert 0 < card.step_seconds <= card.train_seconds / card.steps

    bigger = TrainConfig(batch_size=6, epochs=2.0, **FAST)
    split2 = Split(train=make_rows(3), val=[], test=rows[:8], info=SplitInfo(how="question"))
    estimate = estimate_duration(split2, bigger, str(tiny_model_dir), "cpu")
    steps = math.ceil(2.0 * math.ceil(len(split2.train) / 6))
    step = card.step_seconds * 6 / 3
    outside = card.train_seconds - card.steps * card.step_seconds
    assert estimate.steps == steps and estimate.measured_on == "timed"
    assert estimate.step_seconds == pytest.approx(step)
    assert estimate.seconds == pytest.approx(steps * step + outside * 8 / 4)
    assert "measured when 'timed' was trained" in estimate.text()
    # another base model, or GPU training, has no measurement from this card
    assert estimate_duration(split2, bigger, "other-base", "cpu").seconds is None
    assert estimate_duration(split2, bigger, str(tiny_model_dir), "cuda:0").seconds is None
