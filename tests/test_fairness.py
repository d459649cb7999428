"""Fairness: the view (sim_core.evaluation.fairness) and fairness-aware fine-tuning (the loss term,
group balancing, the respondent split, the card's before/after record)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_finetune_rows import make_rows
from test_individual_scores import ordinal_survey

from finetune.config import TrainConfig
from finetune.loss import batch_loss, group_spread, kl_per_row, masked_log_probs
from finetune.rows import balance_groups, training_split
from sim_core.base.errors import DataError, SimError
from sim_core.base.metrics import compute, noise_floor
from sim_core.evaluation.evaluate import evaluate_rows
from sim_core.evaluation.fairness import (
    FLOOR_SIMS,
    fairness_record,
    gap_changes,
    group_gaps,
    spread,
)
from sim_core.evaluation.respondent_table import respondent_split
from sim_core.evaluation.splits import SplitConfig, split_rows
from sim_core.survey.marginal import slice_label
from sim_core.survey.schema import Question
from sim_core.survey.slices import SurveyRow, survey_rows

# ---------------------------------------------------------------- the view


def test_spread_by_hand():
    out = spread([0.1, 0.3, 0.2, float("nan")])
    assert out["mean_gap"] == pytest.approx(0.2) and out["groups"] == 3
    assert out["sd"] == pytest.approx(math.sqrt((0.01 + 0.01 + 0) / 3))
    assert out["range"] == pytest.approx(0.2) and out["max_minus_mean"] == pytest.approx(0.1)
    assert spread([0.5])["sd"] == 0.0


def rows_with_sizes() -> list[SurveyRow]:
    """Two questions, a big and a small group, with known sizes."""
    q1 = Question("q1", "?", ("a", "b", "c"), (1.0, 2.0, 3.0))
    q2 = Question("q2", "?", ("yes", "no"))
    dists = {("q1", "big"): [0.6, 0.3, 0.1], ("q1", "small"): [0.2, 0.2, 0.6],
             ("q2", "big"): [0.7, 0.3], ("q2", "small"): [0.5, 0.5]}
    return [SurveyRow(q, {"G": g}, np.array(dists[(q.id, g)]), 400.0 if g == "big" else 25.0)
            for q in (q1, q2) for g in ("big", "small")]


def test_group_gaps_by_hand():
    rows = rows_with_sizes()
    evaluation = evaluate_rows([], rows, baselines=("uniform", "population"))
    gaps = group_gaps(evaluation, "baseline: uniform", "kl")
    table = gaps.table.set_index("group")
    for group in ("big", "small"):
        mine = [r for r in rows if r.slice["G"] == group]
        gap = np.mean([compute("kl", r.dist, np.full(r.question.k, 1 / r.question.k))
                       for r in mine])
        floor = np.mean([noise_floor(r.dist, r.n_eff, ordinal_values=r.question.ordinal_values,
                                     n_sims=FLOOR_SIMS)["kl"] for r in mine])
        assert table.loc[f"G={group}", "gap"] == pytest.approx(gap)
        assert table.loc[f"G={group}", "floor"] == pytest.approx(floor)
        assert table.loc[f"G={group}", "n_eff"] == mine[0].n_eff
    assert list(gaps.table["gap"]) == sorted(gaps.table["gap"], reverse=True)
    # the floor falls with n, from below the small group's size to above the big one's
    curve = gaps.curve
    assert curve["n"].min() < 25 < 400 < curve["n"].max()
    assert curve["floor"].iloc[0] > curve["floor"].iloc[-1] > 0
    assert gaps.spread["groups"] == 2


def test_gap_changes_and_card_record():
    rows = rows_with_sizes()
    evaluation = evaluate_rows([], rows, baselines=("uniform", "population"))
    before = group_gaps(evaluation, "baseline: uniform", "kl")
    after = group_gaps(evaluation, "baseline: population", "kl")
    changes = gap_changes(before, after).set_index("group")
    for group in ("G=big", "G=small"):
        change = after.table.set_index("group").loc[group, "gap"] - \
            before.table.set_index("group").loc[group, "gap"]
        assert changes.loc[group, "change"] == pytest.approx(change)
        assert changes.loc[group, "grew"] == (change > 0)
    record = fairness_record(before.to_dict(), after.to_dict())
    assert record["grew"] == [g for g in changes.index if changes.loc[g, "grew"]]
    assert record["spread_before"]["sd"] == pytest.approx(before.spread["sd"])
    assert {g["group"] for g in record["groups"]} == {"G=big", "G=small"}
    with pytest.raises(DataError, match="cannot compare"):
        gap_changes(before, group_gaps(evaluation, "baseline: population", "tv"))


# ---------------------------------------------------------------- the loss term

def test_group_spread_by_hand():
    per_row = torch.tensor([0.1, 0.3, 0.5, 0.9, 2.0])
    weight = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0])
    group = torch.tensor([0, 0, 1, 1, -1])          # the last row is a respondent row
    means = np.array([0.2, (2 * 0.5 + 0.9) / 3])
    assert float(group_spread(per_row, weight, group)) == pytest.approx(means.var())
    assert float(group_spread(per_row, weight, group, "max-mean")) == \
        pytest.approx(means.max() - means.mean())
    assert float(group_spread(per_row, weight, torch.tensor([0, 0, 0, 0, -1]))) == 0.0


def test_batch_loss_adds_the_weighted_spread_and_trains_it():
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.dirichlet(np.ones(3), size=4), dtype=torch.float32)
    batch = {"target": target, "mask": torch.ones(4, 3, dtype=torch.bool),
             "ordinal": torch.full((4, 3), math.nan), "weight": torch.ones(4),
             "individual": torch.zeros(4, dtype=torch.bool), "group": torch.tensor([0, 0, 1, 2])}
    logits = torch.zeros(4, 3, requires_grad=True)
    plain = batch_loss(logits, batch)
    fair = batch_loss(logits, batch, fairness_lambda=2.5)
    per_row = kl_per_row(target, masked_log_probs(logits, batch["mask"]))
    spread_ = group_spread(per_row, batch["weight"], batch["group"])
    assert float(fair) == pytest.approx(float(plain + 2.5 * spread_))
    assert float(spread_) > 0
    # descending the fairness term alone lowers the spread of the per-group KL
    optimiser = torch.optim.SGD([logits], lr=0.5)
    for _ in range(50):
        optimiser.zero_grad()
        term = group_spread(kl_per_row(target, masked_log_probs(logits, batch["mask"])),
                            batch["weight"], batch["group"])
        term.backward()
        optimiser.step()
    assert float(term) < 0.2 * float(spread_)


def test_a_negative_fairness_weight_is_refused():
    with pytest.raises(SimError, match="fairness_lambda = -0.5 is out of range: it must be "
                                       "0 to 100"):
        TrainConfig(fairness_lambda=-0.5)
    assert TrainConfig().fairness_lambda >= 0


def test_cli_refuses_a_negative_fairness_weight(capsys):
    from finetune.cli import main

    assert main(["train", "--data", "anes96", "--name", "x", "--fairness-lambda", "-1"]) == 2
    assert "fairness_lambda = -1.0 is out of range" in capsys.readouterr().err


# ---------------------------------------------------------------- balancing and splits

def test_balance_groups_copies_rows_of_small_groups_up_to_the_floor():
    q = Question("q", "?", ("a", "b"))
    rows = ([SurveyRow(q, {"G": "big"}, np.array([1.0, 0.0]), 1.0) for _ in range(9)]
            + [SurveyRow(q, {"G": "small"}, np.array([0.0, 1.0]), 1.0) for _ in range(2)]
            + [SurveyRow(q, {"G": "mid"}, np.array([0.5, 0.5]), 1.0) for _ in range(4)])
    assert balance_groups(rows, 0.0) == rows
    out = balance_groups(rows, 1.0, seed=0)               # floor: the mean, 5 rows
    counts = {g: sum(slice_label(r.slice) == f"G={g}" for r in out) for g in
              ("big", "small", "mid")}
    assert counts == {"big": 9, "small": 5, "mid": 5}
    assert out[:len(rows)] == rows and all(any(r is x for x in rows) for r in out)
    half = balance_groups(rows, 0.5, seed=0)              # ceil(2.5) = 3 rows
    assert sum(slice_label(r.slice) == "G=small" for r in half) == 3


def test_respondent_split_keeps_people_apart():
    survey = ordinal_survey(n=600, seed=3)[0]
    config = SplitConfig(how="respondent", test_fraction=0.25, val_fraction=0.2)
    split = training_split(survey, ["age"], config, seed=1)
    people = respondent_split(survey, test_fraction=0.25, val_fraction=0.2, seed=1)
    test_survey = survey.__class__(**{**survey.__dict__,
                                      "respondents": survey.respondents.loc[people.test]})
    expected = survey_rows(test_survey, ["age"])
    assert [slice_label(r.slice) for r in split.test] == [slice_label(r.slice) for r in expected]
    for got, want in zip(split.test, expected):
        np.testing.assert_allclose(got.dist, want.dist)
        assert got.n_eff == want.n_eff
    assert split.info.respondents == {"train": 360, "val": 90, "test": 150}
    assert sum(r.n_eff for r in split.train) == pytest.approx(360)
    with_ce = training_split(survey, ["age"], config, seed=1, loss="kl+ce")
    individual = [r for r in with_ce.train if r.n_eff == 1.0]
    assert len(individual) == 360                      # the training respondents only
    with pytest.raises(DataError, match="needs the survey"):
        split_rows(make_rows(3), how="respondent")


def test_training_with_the_fairness_term_reports_groups_before_and_after(tiny_model_dir):
    from finetune.train import train_adapter

    survey = ordinal_survey(n=400, seed=4)[0]
    split = training_split(survey, ["age"], SplitConfig(how="respondent"), seed=0)
    config = TrainConfig(max_steps=3, batch_size=4, rank=4, alpha=8, fairness_lambda=5.0,
                         fairness_spread="max-mean", balance_floor=1.0, eval_every=None,
                         save_every=1000)
    result = train_adapter(split, name="fair-tiny", base=str(tiny_model_dir), config=config)
    card = result.card
    fairness = card.fairness
    assert card.hyperparameters["fairness_lambda"] == 5.0
    assert card.split["how"] == "respondent"
    assert {g["group"] for g in fairness["groups"]} == {"age=young", "age=middle", "age=old"}
    test_groups = {slice_label(r.slice): r.n_eff for r in split.test}
    for group in fairness["groups"]:
        assert group["n_eff"] == pytest.approx(test_groups[group["group"]])
        assert group["change"] == pytest.approx(group["after"] - group["before"])
    assert fairness["spread_after"]["mean_gap"] == pytest.approx(card.after["kl"])
    assert fairness["spread_before"]["mean_gap"] == pytest.approx(card.before["kl"])
