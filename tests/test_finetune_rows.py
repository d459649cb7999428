"""finetune.rows and finetune.loss: splits, re-weighting, option shuffling, losses."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from finetune.loss import (
    RowCollator,
    batch_loss,
    energy_distance,
    kl_per_row,
    masked_log_probs,
    normalised_ordinal,
)
from finetune.rows import (
    permute_target,
    reweight_slices,
    shuffle_order,
    split_from_json,
    split_to_json,
)
from sim_core.base.errors import DataError
from sim_core.evaluation.splits import split_rows
from sim_core.survey.marginal import slice_label
from sim_core.survey.schema import LETTERS, Question
from sim_core.survey.slices import SurveyRow

GROUPS = [{"SEX": "Female"}, {"SEX": "Male"}, {"AGE": "18-29"}, {"AGE": "30-44"},
          {"AGE": "45-64"}, {"AGE": "65+"}, {"REGION": "South"}, {"REGION": "West"}]


def make_rows(n_questions=10, groups=GROUPS, waves=("",)) -> list[SurveyRow]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_questions):
        k = 3 + i % 3
        q = Question(f"q{i}", f"Question {i}?", tuple(f"opt{i}_{j}" for j in range(k)),
                     tuple(float(j) for j in range(k)))
        for wave in waves:
            for g in groups:
                rows.append(SurveyRow(q, dict(g), rng.dirichlet(np.ones(k)), 100.0, wave=wave))
    return rows


def qids(rows):
    return {r.question.id for r in rows}


def labels(rows):
    return {slice_label(r.slice) for r in rows}


def test_question_split_disjoint_and_complete():
    rows = make_rows(20)
    split = split_rows(rows, "question", test_fraction=0.2, val_fraction=0.1, seed=0)
    assert len(qids(split.test)) == 4 and len(qids(split.val)) == 2
    assert not qids(split.train) & qids(split.test)
    assert not qids(split.train) & qids(split.val)
    assert not qids(split.val) & qids(split.test)
    assert len(split.train) + len(split.val) + len(split.test) == len(rows)
    assert sorted(split.info.test_questions) == sorted(qids(split.test))
    assert split.info.n_test == len(split.test) == 4 * len(GROUPS)


def test_split_seeded_and_independent_of_row_order():
    rows = make_rows(20)
    shuffled = list(rows)
    random.Random(5).shuffle(shuffled)
    a = split_rows(rows, "question", seed=3)
    b = split_rows(shuffled, "question", seed=3)
    assert qids(a.test) == qids(b.test) and qids(a.val) == qids(b.val)
    others = [qids(split_rows(rows, "question", seed=s).test) for s in range(6)]
    assert len({frozenset(o) for o in others}) > 1      # the seed matters


def test_slice_split_holds_out_whole_groups():
    rows = make_rows(6)
    split = split_rows(rows, "slice", test_slices=3, val_fraction=0.2, seed=1)
    test_groups = labels(split.test)
    assert len(test_groups) == 3
    assert not test_groups & labels(split.train) and not test_groups & labels(split.val)
    # every held-out group is held out for every question
    assert len(split.test) == 3 * 6
    assert set(split.info.test_slices) == test_groups
    assert len(labels(split.val)) == 1            # round(0.2 * 5 remaining groups)


def test_random_and_wave_splits():
    rows = make_rows(10, waves=("2018", "2022"))
    split = split_rows(rows, "wave", seed=0)
    assert {r.wave for r in split.test} == {"2022"}
    assert {r.wave for r in split.train + split.val} == {"2018"}
    rnd = split_rows(rows, "random", test_fraction=0.25, val_fraction=0.1, seed=0)
    assert len(rnd.test) == round(0.25 * len(rows))

    def keys(rs):
        return {(r.question.id, slice_label(r.slice), r.wave) for r in rs}

    assert not keys(rnd.test) & keys(rnd.train)
    with pytest.raises(DataError, match="two waves"):
        split_rows(make_rows(3), "wave")
    with pytest.raises(DataError, match="Unknown split"):
        split_rows(rows, "bogus")
    with pytest.raises(DataError, match="No training rows"):
        split_rows([], "question")


def test_reweight_gives_equal_total_weight_per_group():
    rows = make_rows(4, groups=GROUPS[:3])
    # make group sizes unequal: drop most rows of the first group, vary weights
    rows = [r for r in rows if not (r.slice == GROUPS[0] and r.question.id != "q0")]
    rows[1].weight = 3.0
    out = reweight_slices(rows)
    totals = {}
    for r in out:
        totals[slice_label(r.slice)] = totals.get(slice_label(r.slice), 0.0) + r.weight
    assert len(totals) == 3
    np.testing.assert_allclose(list(totals.values()), [len(rows) / 3] * 3)
    assert math.isclose(sum(r.weight for r in out), len(rows))
    # relative weights inside a group are kept: row 1 had 3x the weight of its peers
    peers = [r.weight for r in out if r.slice == out[1].slice and r is not out[1]]
    assert math.isclose(out[1].weight, 3 * peers[0])
    assert rows[1].weight == 3.0                  # the input rows are not modified


def test_shuffle_order_is_seeded_permutation():
    orders = {shuffle_order(5, 0, e, "q1|SEX=Male|") for e in range(20)}
    assert all(sorted(o) == list(range(5)) for o in orders)
    assert len(orders) > 5                         # a fresh order per epoch
    assert shuffle_order(5, 0, 3, "x") == shuffle_order(5, 0, 3, "x")
    np.testing.assert_array_equal(permute_target(np.array([.1, .2, .7]), (2, 0, 1)),
                                  [.7, .1, .2])


def test_collator_permutes_prompt_and_target_consistently(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = make_rows(3, groups=GROUPS[:2])
    collator = RowCollator(rows, tok, shuffle=True, seed=0, epoch=4)
    batch = collator([{"index": i} for i in range(len(rows))])
    assert batch["target"].shape == (len(rows), 5)
    for i, row in enumerate(rows):
        prompt, k = batch["prompts"][i], len(row.question.options)
        # the option shown at letter j carries the real share of that option
        for j in range(k):
            shown = prompt.split(f"\n{LETTERS[j]}. ", 1)[1].split("\n", 1)[0].strip()
            original = row.question.options.index(shown)
            assert math.isclose(float(batch["target"][i, j]), row.dist[original], rel_tol=1e-6)
            assert math.isclose(float(batch["ordinal"][i, j]), original / (k - 1), rel_tol=1e-6)
        assert batch["mask"][i].sum() == k
    unshuffled = RowCollator(rows, tok, shuffle=False)([{"index": 0}])
    np.testing.assert_allclose(unshuffled["target"][0, :3].numpy(), rows[0].dist, rtol=1e-6)


def test_kl_matches_scipy_and_renormalises_over_own_letters():
    p = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.9, 0.0]])
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.2, 0.2, 0.3, 0.3]]))
    logq = masked_log_probs(logits, mask)
    q1 = np.array([0.2, 0.2, 0.3]) / 0.7
    got = kl_per_row(torch.tensor(p, dtype=torch.float32), logq).numpy()
    np.testing.assert_allclose(got, [entropy(p[0], [0.4, 0.3, 0.2, 0.1]),
                                     entropy(p[1, :3], q1)], rtol=1e-5)


def test_energy_distance_zero_iff_equal_and_matches_cdf_formula():
    v = torch.tensor([[0.0, 0.5, 1.0, math.nan]])
    p = torch.tensor([[0.6, 0.3, 0.0, 0.1]])
    q = torch.tensor([[0.1, 0.2, 0.6, 0.1]])
    assert float(energy_distance(p, p, v)) == pytest.approx(0.0, abs=1e-7)
    # 1-D energy distance = 2 * integral (F_q - F_p)^2 over [0, 1]; finite options only
    pf, qf = np.array([.6, .3, 0]) / .9, np.array([.1, .2, .6]) / .9
    fp, fq = np.cumsum(pf)[:-1], np.cumsum(qf)[:-1]
    expected = 2 * np.sum((fq - fp) ** 2 * 0.5)
    assert float(energy_distance(p, q, v)) == pytest.approx(expected, rel=1e-5)
    # a nominal row (no ordinal values) gets no penalty
    assert float(energy_distance(p, q, torch.full((1, 4), math.nan))) == 0.0
    np.testing.assert_allclose(normalised_ordinal((2.0, 3.0, 1.0, math.nan), 4)[:3],
                               [0.5, 1.0, 0.0])


def test_batch_loss_variants():
    target = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0]])
    batch = {"target": target, "mask": torch.ones(2, 3, dtype=torch.bool),
             "ordinal": torch.tensor([[0.0, 0.5, 1.0]] * 2),
             "weight": torch.tensor([1.0, 3.0]), "individual": torch.tensor([False, True])}
    logits = torch.zeros(2, 3, requires_grad=True)
    kl = kl_per_row(target, masked_log_probs(logits, batch["mask"]))
    plain = batch_loss(logits, batch, "kl")
    assert float(plain) == pytest.approx(float((kl[0] + 3 * kl[1]).detach() / 4), rel=1e-6)
    ce = batch_loss(logits, batch, "kl+ce", ce_lambda=0.5)
    assert float(ce) == pytest.approx(float(kl[0] + 0.5 * kl[1]), rel=1e-6)
    # uniform model: the one-hot row costs ln 3 (its cross-entropy), the other KL(p || 1/3)
    kl0 = 0.7 * math.log(0.7 * 3) + 0.3 * math.log(0.3 * 3)
    assert float(ce) == pytest.approx(kl0 + 0.5 * math.log(3), rel=1e-6)
    ordinal = batch_loss(logits, batch, "kl+ordinal", ordinal_lambda=2.0)
    assert float(ordinal) > float(plain)
    ordinal.backward()
    assert torch.isfinite(logits.grad).all()


def test_split_json_round_trip():
    rows = make_rows(4)
    rows[0] = SurveyRow(Question("x", "X?", ("a", "b", "c"), (1.0, 2.0, math.nan)),
                        {"SEX": "Female"}, np.array([.2, .3, .5]), None, 2.0, "2022")
    split = split_rows(rows, "question", seed=0)
    back = split_from_json(split_to_json(split))
    for a, b in zip(split.train + split.val + split.test, back.train + back.val + back.test):
        assert a.question.id == b.question.id and a.slice == b.slice and a.wave == b.wave
        np.testing.assert_allclose(a.dist, b.dist)
        assert a.weight == b.weight and a.n_eff == b.n_eff
    x = next(r for r in back.train + back.val + back.test if r.question.id == "x")
    assert math.isnan(x.question.ordinal_values[2]) and x.question.is_ordinal
    with pytest.raises(DataError, match="Malformed"):
        split_from_json({"train": [{"slice": {}}], "val": [], "test": []})


def test_held_out_rows_from_card_info():
    """The held-out part is found again from the split info alone, for every kind of split."""
    import json

    from sim_core.evaluation.splits import SplitInfo, held_out_rows, row_key

    gss_rows = make_rows(waves=("2020", "2022"))

    for how in ("question", "slice", "random", "wave"):
        split = split_rows(gss_rows, how, seed=3)
        info = json.loads(json.dumps(split.info.to_dict()))  # as stored in card.json
        again = held_out_rows(list(reversed(gss_rows)), SplitInfo.from_dict(info))
        assert sorted(map(row_key, again)) == sorted(map(row_key, split.test)), how
    with pytest.raises(DataError, match="records no train/test split"):
        held_out_rows(gss_rows, SplitInfo.from_dict({}))
    held = set(split_rows(gss_rows).info.test_questions)
    other = [r for r in gss_rows if r.question.id not in held]
    with pytest.raises(DataError, match="--rows all"):
        held_out_rows(other, split_rows(gss_rows).info)


def test_slice_split_can_be_told_to_hold_out_a_group():
    """hold_out forces groups into the test part; the seeded pick fills up to test_slices."""
    rows = make_rows()
    every = sorted(labels(rows))
    forced = every[-1]
    split = split_rows(rows, "slice", test_slices=2, hold_out=[forced], seed=5)
    held = split.info.test_slices
    assert forced in held and len(held) == 2
    assert labels(split.test) == set(held) and not labels(split.train + split.val) & set(held)
    assert split_rows(list(reversed(rows)), "slice", test_slices=2, hold_out=[forced],
                      seed=5).info.test_slices == held
    with pytest.raises(DataError, match="no such group"):
        split_rows(rows, "slice", hold_out=["RELIG=Nope"])


def test_respondent_rows_use_the_slice_labels_so_held_out_groups_never_leak():
    """A numeric attribute (pid 1/2/3) is labelled as the slices label it ("pid=1"), so the
    slice split's held-out group keeps its respondents out of kl+ce training."""
    from finetune.rows import individual_training_rows
    from sim_core.survey.readers import read_respondents_csv
    from sim_core.survey.slices import survey_rows

    lines = ["pid,sex,q1"] + [f"{1 + i % 3},{'F' if i % 2 else 'M'},{'yes' if i % 5 else 'no'}"
                              for i in range(60)]
    survey = read_respondents_csv("\n".join(lines).encode(), demographics=["pid", "sex"],
                                  questions=["q1"])
    rows = survey_rows(survey, by=["pid"])
    assert labels(rows) == {"pid=1", "pid=2", "pid=3"}
    split = split_rows(rows, "slice", hold_out=["pid=1"], test_slices=1, val_fraction=0)
    individual = individual_training_rows(survey, ["pid"], split, seed=0)
    assert individual and labels(individual) == {"pid=2", "pid=3"}
    assert len(individual) == 40          # every respondent of the two training groups
