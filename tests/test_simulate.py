"""First-token and sampling simulation on the tiny model, against independent computations
(on the CPU: the hand computations use CPU tensors; tests/test_devices.py covers CUDA)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from factories import biased_head

from sim_core.base.errors import Cancelled, SimError
from sim_core.simulation.answers import parse_answer
from sim_core.simulation.config import SimConfig
from sim_core.simulation.local import letter_logits, letter_token_ids
from sim_core.simulation.models import load_model
from sim_core.simulation.prompts import build_prompt
from sim_core.simulation.simulate import simulate, simulate_rows
from sim_core.survey.schema import Question

QUESTION = Question(id="natspac", text="Are we spending too much on space exploration?",
                    options=("Too little", "About right", "Too much"))
NO_CACHE = SimConfig(orders=1, use_cache=False)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="float32", device="cpu")


def manual_shares(lm, prompt: str, k: int) -> tuple[np.ndarray, float]:
    """Softmax over the full vocabulary of one unpadded prompt, summed per letter spelling."""
    ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0, -1].double()
    probs = torch.softmax(logits, dim=-1)
    letters = []
    for letter in "ABCDEFGH"[:k]:
        token_ids = lm.tokenizer.convert_tokens_to_ids(["Ġ" + letter, letter])
        letters.append(float(probs[token_ids].sum()))
    letters = np.array(letters)
    return letters / letters.sum(), float(letters.sum())


def test_letter_token_ids_both_spellings(tiny):
    assert letter_token_ids(tiny.tokenizer, 3) == [[330, 49], [389, 50], [340, 51]]


def test_shares_match_manual_softmax_and_padding(tiny):
    slices = [{}, {"SEX": "Female", "EDUCATION": "Less than high school"}, {"RACE": "Asian"}]
    results = simulate(tiny, QUESTION, slices, SimConfig(orders=1, batch_size=3, use_cache=False))
    for result, slice_ in zip(results, slices):
        expected, mass = manual_shares(tiny, build_prompt(tiny.tokenizer, QUESTION, slice_), 3)
        assert result.shares.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(result.shares, expected, atol=1e-5)  # left padding is harmless
        assert result.letter_mass == pytest.approx(mass, rel=1e-4)
        assert 0 < result.letter_mass <= 1


def test_letter_logits_differentiable(tiny):
    prompts = [build_prompt(tiny.tokenizer, QUESTION, {"SEX": s}) for s in ("Male", "Female")]
    logp = letter_logits(tiny.model, tiny.tokenizer, prompts, 3)
    assert logp.shape == (2, 3)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2))
    logp[:, 0].sum().backward()
    grad = tiny.model.model.embed_tokens.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny.model.zero_grad(set_to_none=True)


def test_half_precision_letters_are_projected_in_float32(tiny_model_dir):
    """A bf16 head rounds logits (once: Democrat and Republican got identical shares); the letter
    logits must equal the float32 projection of the model's own last hidden state."""
    lm = load_model(str(tiny_model_dir), dtype="bfloat16")
    prompts = [build_prompt(lm.tokenizer, QUESTION, {"SEX": s}) for s in ("Male", "Female")]
    ids = letter_token_ids(lm.tokenizer, 3)
    with torch.no_grad():
        got = letter_logits(lm.model, lm.tokenizer, prompts, 3)
        encoded = lm.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                               add_special_tokens=False)
        out = lm.model(**encoded, output_hidden_states=True)
    hidden = out.hidden_states[-1][:, -1].float()
    exact = hidden @ lm.model.lm_head.weight.float().T
    rounded = out.logits[:, -1].float()

    def renormalised(logits):
        letters = torch.stack([torch.logsumexp(logits[:, t], -1) for t in ids], -1)
        return letters - torch.logsumexp(letters, -1, keepdim=True)

    torch.testing.assert_close(got, renormalised(exact), atol=1e-5, rtol=0)
    assert (renormalised(rounded) - renormalised(exact)).abs().max() > 1e-4  # the test has teeth


def test_letter_mass_hand_computed(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    b = 5.0
    biased_head(lm, {330: b, 49: b})  # " A" and "A" both raised
    [result] = simulate(lm, QUESTION, [{}], NO_CACHE)
    vocab = lm.model.config.vocab_size
    denominator = 2 * math.exp(b) + vocab - 2
    assert result.letter_mass == pytest.approx((2 * math.exp(b) + 4) / denominator, rel=1e-5)
    share_a = 2 * math.exp(b) / (2 * math.exp(b) + 4)
    np.testing.assert_allclose(result.shares, [share_a, (1 - share_a) / 2, (1 - share_a) / 2],
                               rtol=1e-5)


def test_debiasing_maps_back_to_original_options(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    biased_head(lm, {330: 3.0})  # the model always prefers letter A, whatever it shows
    [one] = simulate(lm, QUESTION, [{}], NO_CACHE)
    [two] = simulate(lm, QUESTION, [{}], SimConfig(orders=2, use_cache=False))
    e = math.exp(3.0) + 1  # " A" and "A" are both letter A; letter mass ties the rest at 1+1
    a, rest = e / (e + 4), 2 / (e + 4)
    np.testing.assert_allclose(one.shares, [a, rest, rest], rtol=1e-5)
    # original order shows "Too little" as A, reversed order shows "Too much" as A
    np.testing.assert_allclose(two.shares, [(a + rest) / 2, rest, (a + rest) / 2], rtol=1e-5)


def test_full_debiasing_is_permutation_equivariant(tiny):
    shift = (1, 2, 0)  # a rotation: the six dihedral orders are closed under it
    permuted = Question(id="p", text=QUESTION.text,
                        options=tuple(QUESTION.options[i] for i in shift))
    config = SimConfig(orders=6, use_cache=False)
    [base] = simulate(tiny, QUESTION, [{"SEX": "Male"}], config)
    [other] = simulate(tiny, permuted, [{"SEX": "Male"}], config)
    np.testing.assert_allclose(other.shares, base.shares[list(shift)], atol=1e-6)
    assert other.letter_mass == pytest.approx(base.letter_mass, abs=1e-6)


def test_simulate_rows_mixed_questions_and_progress(tiny):
    four = Question(id="q4", text="How much do you trust science?",
                    options=("A great deal", "Some", "Hardly any", "None"))

    class Row:
        def __init__(self, question, slice_):
            self.question, self.slice = question, slice_

    rows = [Row(QUESTION, {"SEX": "Male"}), Row(four, {"RACE": "Black"}), Row(QUESTION, {})]
    seen = []
    results = simulate_rows(tiny, rows, SimConfig(orders=2, use_cache=False),
                            progress=lambda done, total: seen.append((done, total)))
    assert [len(r.shares) for r in results] == [3, 4, 3]
    assert seen[-1] == (6, 6)
    [alone] = simulate(tiny, four, [{"RACE": "Black"}], SimConfig(orders=2, use_cache=False))
    np.testing.assert_allclose(results[1].shares, alone.shares, atol=1e-5)


def test_should_stop_cancels(tiny):
    with pytest.raises(Cancelled):
        simulate(tiny, QUESTION, [{}], NO_CACHE, should_stop=lambda: True)


@pytest.mark.parametrize("text,expected", [
    (" B", 1), ("C. Too much", 2), ("(a)", None), ("Too much, I think", 2), (" about right", 1),
    (" D", None), ("I don't know", None), ("", None), ("A", 0)])
def test_parse_answer(text, expected):
    assert parse_answer(text, QUESTION.options) == expected


def test_parse_prefers_longest_option_text():
    assert parse_answer("Strongly agree", ("Agree", "Strongly agree")) == 1


def test_sampling_counts(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    biased_head(lm, {389: 15.0, 330: 15.0, 104: 15.0})  # " B", " A", "x" (unparseable)
    config = SimConfig(mode="sample", samples=15, temperature=1.0, seed=3, use_cache=False)
    [result] = simulate(lm, QUESTION, [{"SEX": "Female"}], config)
    assert result.n_samples == 15
    parsed = result.n_samples - result.n_unparsed
    counts = result.shares * parsed
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # shares are counts / parsed
    assert counts[2] == 0 and 0 < result.n_unparsed < 15 and counts[0] > 0 and counts[1] > 0
    assert result.letter_mass == pytest.approx(parsed / 15)
    [again] = simulate(lm, QUESTION, [{"SEX": "Female"}], config)
    np.testing.assert_array_equal(again.shares, result.shares)  # seeded


def test_sampling_all_unparsed_is_no_answer_and_reported(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    biased_head(lm, {104: 30.0})
    config = SimConfig(mode="sample", samples=5, use_cache=False)
    [result] = simulate(lm, QUESTION, [{}], config)
    assert result.n_unparsed == 5 and result.letter_mass == 0
    assert np.isnan(result.shares).all()     # no answer read: missing, never a uniform guess


def run_cli(argv: list[str]) -> int:
    """Parse with only the simulate subcommand registered (others may not exist yet) and run."""
    import argparse

    from sim_core.commands import simulate as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_json(tiny_model_dir, capsys):
    status = run_cli(["simulate", "--question", "Spending on space?", "--options",
                      "Too little|About right|Too much", "--slice", "SEX=Female,AGE=30-44",
                      "--slice", "SEX=Male", "--model", str(tiny_model_dir), "--orders", "2",
                      "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert [item["slice"] for item in out] == [{"SEX": "Female", "AGE": "30-44"}, {"SEX": "Male"}]
    for item in out:
        assert item["options"] == ["Too little", "About right", "Too much"]
        assert sum(item["shares"]) == pytest.approx(1.0)
        assert 0 < item["letter_mass"] <= 1 and "Question: Spending on space?" in item["prompt"]


def test_cli_bad_input(tiny_model_dir):
    with pytest.raises(SimError, match="2 to 26 options"):
        run_cli(["simulate", "--question", "Q?", "--options", "only one",
                 "--model", str(tiny_model_dir)])
    with pytest.raises(SimError, match="ATTR=VALUE"):
        run_cli(["simulate", "--question", "Q?", "--options", "a|b", "--slice", "SEX",
                 "--model", str(tiny_model_dir)])
