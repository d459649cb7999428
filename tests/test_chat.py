"""The chat-API backend against the in-test OpenAI-compatible server (tests/fake_openai.py):
the three modes with shares computed by hand from what the server returns, every provider
quirk as one message, the cost guard, the cache as answers arrive, and the CLI."""

from __future__ import annotations

import json
import math
import time
import types

import numpy as np
import pytest
from fake_openai import FakeServer

from sim_core.base.errors import ModelError, SimError
from sim_core.simulation import simulate as simulate_module
from sim_core.simulation.answers import parse_percentages, sample_seed
from sim_core.simulation.cache import ResultCache
from sim_core.simulation.chat import connect_chat
from sim_core.simulation.config import SimConfig
from sim_core.simulation.prompts import chat_messages, prompt_text
from sim_core.simulation.simulate import plan_rows, simulate
from sim_core.survey.schema import Question

QUESTION = Question(id="natspac", text="Are we spending too much on space exploration?",
                    options=("Too little", "About right", "Too much"))
ONE_ORDER = SimConfig(orders=1, use_cache=False)


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def slept(monkeypatch):
    """The openai client's waits between attempts, recorded instead of slept."""
    import openai._base_client as base_client

    waits: list[float] = []
    clock = types.SimpleNamespace(sleep=waits.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(base_client, "time", clock)
    return waits


def chat(fake: FakeServer, **kwargs):
    return connect_chat(fake.url, kwargs.pop("served_model", "base-model"), **kwargs)


def bodies(fake: FakeServer) -> list[dict]:
    return [r["body"] for r in fake.state.requests]


# ---------------------------------------------------------------- first-token

def test_first_token_hand_computed_and_debiased(server):
    lm = chat(server)
    assert lm.remote and lm.label.startswith("base-model @ 127.0.0.1:")
    [female] = simulate(lm, QUESTION, [{"SEX": "Female"}], SimConfig(orders=2, use_cache=False))
    # The server's top tokens: "A" 0.5 and " A" 0.1 (one letter, merged), B 0.2, C 0.1: shown
    # shares (6, 2, 1)/9 in both orders; the reversed order shows option 2-j as letter j.
    np.testing.assert_allclose(female.shares, [7 / 18, 4 / 18, 7 / 18], rtol=1e-12)
    assert female.letter_mass == pytest.approx(0.9)
    [body] = [b for b in bodies(server)
              if b["messages"] == chat_messages(QUESTION, {"SEX": "Female"})]  # order 1
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["model"] == "base-model"
    assert "add_special_tokens" not in body and "prompt" not in body   # no local tokenizer
    assert json.loads(female.prompt) == body["messages"]               # the prompt as sent


def test_top_k_and_duplicate_spellings(server):
    server.state.chat_top = [("B", math.log(0.3)), ("B", math.log(0.2)), ("A", math.log(0.25)),
                             ("\n", math.log(0.1))]
    [result] = simulate(chat(server), QUESTION, [{}], ONE_ORDER)
    np.testing.assert_allclose(result.shares, [0.25 / 0.75, 0.5 / 0.75, 0.0], rtol=1e-12)
    assert result.letter_mass == pytest.approx(0.75)
    [two] = simulate(chat(server, top_logprobs=2), QUESTION, [{}], ONE_ORDER)  # B only
    np.testing.assert_allclose(two.shares, [0.0, 1.0, 0.0])
    assert bodies(server)[-1]["top_logprobs"] == 2


def test_no_option_letter_in_the_top_k_names_the_prompt(server):
    server.state.chat_top = [("The", -0.2), ("I", -1.9)]
    with pytest.raises(ModelError, match=r"None of the option letters A-C .* Prompt 1 ends"):
        simulate(chat(server), QUESTION, [{}], ONE_ORDER)


def test_logprobs_refused_names_the_modes_that_work(server):
    server.state.refuse_logprobs = True
    with pytest.raises(ModelError, match="refuses log-probabilities .*--mode sample and "
                                         "--mode verbalized work"):
        simulate(chat(server), QUESTION, [{}], ONE_ORDER)
    assert len(server.state.requests) == 1          # not retried: a 400 is final


def test_cap_on_top_logprobs(server):
    server.state.top_cap = 5
    with pytest.raises(ModelError, match="allows at most 5 top log-probabilities, not 20 .*"
                                         "--top-logprobs 5"):
        simulate(chat(server), QUESTION, [{}], ONE_ORDER)
    [result] = simulate(chat(server, top_logprobs=5), QUESTION, [{}], ONE_ORDER)
    np.testing.assert_allclose(result.shares, [6 / 9, 2 / 9, 1 / 9], rtol=1e-12)


# ---------------------------------------------------------------- sample

def test_sampling_with_n_parses_and_seeds(server):
    server.state.replies = lambda body: ["A", "B.", "Too much", "no idea", "C"][:body["n"]]
    config = SimConfig(mode="sample", samples=5, temperature=0.7, seed=3, use_cache=False)
    [result] = simulate(chat(server), QUESTION, [{}], config)
    np.testing.assert_allclose(result.shares, [1 / 4, 1 / 4, 2 / 4])
    assert (result.n_samples, result.n_unparsed) == (5, 1)
    [body] = bodies(server)
    assert body["n"] == 5 and body["temperature"] == 0.7 and body["max_tokens"] == 6
    assert body["seed"] == sample_seed(config, chat_messages(QUESTION, {}, mode="sample"))


def test_sampling_without_n_sends_seeded_requests(server):
    server.state.refuse_n = True
    answers = iter(["A", "A", "C", "B", "C", "A", "A", "A"])
    server.state.replies = lambda body: [next(answers)]
    lm = chat(server, concurrency=1)        # one request at a time: a countable sequence
    config = SimConfig(mode="sample", samples=4, seed=1, use_cache=False)
    [first, second] = simulate(lm, QUESTION, [{}, {"SEX": "Male"}], config)
    sent = bodies(server)
    assert sent[0]["n"] == 4 and not lm.accepts_n      # refused once, then never asked again
    assert [b["n"] for b in sent[1:]] == [1] * 8
    seed = sample_seed(config, chat_messages(QUESTION, {}, mode="sample"))
    assert [b["seed"] for b in sent[1:5]] == [seed, seed + 1, seed + 2, seed + 3]
    np.testing.assert_allclose(first.shares, [2 / 4, 1 / 4, 1 / 4])     # A, A, C, B
    np.testing.assert_allclose(second.shares, [3 / 4, 0, 1 / 4])        # C, A, A, A
    assert plan_rows(lm, [types.SimpleNamespace(question=QUESTION, slice={})],
                     config).requests == 4


def test_refusals_and_filters_are_unparsed_never_a_guess(server):
    server.state.replies = lambda body: [{"refusal": "I can't help with that."},
                                         {"filter": True}, "B"][:body["n"]]
    config = SimConfig(mode="sample", samples=3, use_cache=False)
    [result] = simulate(chat(server), QUESTION, [{}], config)
    np.testing.assert_allclose(result.shares, [0, 1, 0])
    assert result.n_unparsed == 2
    server.state.replies = lambda body: [{"refusal": "No."}] * body["n"]
    [none] = simulate(chat(server), QUESTION, [{}], config)
    assert np.isnan(none.shares).all() and none.letter_mass == 0


# ---------------------------------------------------------------- verbalized

def test_verbalized_structured_output(server):
    server.state.replies = lambda body: ['{"A": 20, "B": 30, "C": 50}']
    config = SimConfig(mode="verbalized", use_cache=False)
    [result] = simulate(chat(server), QUESTION, [{"SEX": "Female"}], config)
    np.testing.assert_allclose(result.shares, [0.2, 0.3, 0.5])
    assert result.letter_mass == 1.0 and result.n_unparsed == 0
    [body] = bodies(server)
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["A", "B", "C"] and body["temperature"] == 0
    user = body["messages"][1]["content"]
    assert "What percentage of people like you would choose each option?" in user
    assert "Your sex is Female." in user and "C. Too much" in user


def test_verbalized_whole_population_and_option_orders(server):
    """The whole population is a slice like any other; two orders map back and average."""
    server.state.replies = lambda body: ["A: 10%\nB: 30%\nC: 60%"]
    config = SimConfig(mode="verbalized", orders=2, use_cache=False)
    [result] = simulate(chat(server), QUESTION, [{}], config)
    # original order gives (.1, .3, .6); reversed shows C, B, A as A, B, C: (.6, .3, .1)
    np.testing.assert_allclose(result.shares, [0.35, 0.3, 0.35])
    user = bodies(server)[0]["messages"][1]["content"]
    assert "What percentage of adults in the United States would choose" in user
    assert "expert on public opinion among adults in the United States" in \
        bodies(server)[0]["messages"][0]["content"]


def test_structured_output_refused_falls_back_to_lines(server):
    server.state.refuse_schema = True
    server.state.replies = lambda body: ["Sure.\nA: 10%\nB: 30%\nC: 60%"]
    lm = chat(server)
    config = SimConfig(mode="verbalized", use_cache=False)
    [result] = simulate(lm, QUESTION, [{}, {"SEX": "Male"}][:1], config)
    np.testing.assert_allclose(result.shares, [0.1, 0.3, 0.6])
    sent = bodies(server)
    assert "response_format" in sent[0] and "response_format" not in sent[1]
    assert not lm.structured


def test_unreadable_reply_is_asked_once_more_then_unparsed(server):
    replies = iter(["Most people would pick B.", "A: 25%\nB: 25%\nC: 50%"])
    server.state.replies = lambda body: [next(replies)]
    config = SimConfig(mode="verbalized", seed=2, use_cache=False)
    [result] = simulate(chat(server), QUESTION, [{}], config)
    np.testing.assert_allclose(result.shares, [0.25, 0.25, 0.5])
    first, retry = bodies(server)
    assert first["temperature"] == 0 and retry["temperature"] == 1.0
    assert retry["seed"] == sample_seed(config, chat_messages(QUESTION, {}, mode="verbalized"))
    server.state.replies = lambda body: ['{"A": 50, "B": 50}']     # C missing: not readable
    [unread] = simulate(chat(server), QUESTION, [{}], config)
    assert np.isnan(unread.shares).all() and unread.n_unparsed == 1
    assert unread.letter_mass == 0 and len(server.state.requests) == 4


def test_parse_percentages_hand_cases():
    np.testing.assert_allclose(parse_percentages("A: 45%\nB: 30%\nC: 25%", 3), [.45, .3, .25])
    np.testing.assert_allclose(parse_percentages("**A** - 40 %\nB) 60%", 2), [.4, .6])
    np.testing.assert_allclose(parse_percentages('{"A": "45%", "B": 55}', 2), [.45, .55])
    np.testing.assert_allclose(parse_percentages("A: 47%\nB: 48%", 2), [47 / 95, 48 / 95])
    for bad in ("A: 40%\nA: 60%", "A: 40%\nB: 60%\nC: 0%", "A: 0%\nB: 0%", "", None,
                '{"A": -5, "B": 105}', "I cannot answer that."):
        assert parse_percentages(bad, 2) is None, bad


# ---------------------------------------------------------------- provider errors

def test_key_variable_named_never_its_value(server, monkeypatch):
    secret = "sk-chat-5ecret"
    monkeypatch.setenv("SIM_CHAT_KEY", secret)
    lm = chat(server, api_key_env="SIM_CHAT_KEY")
    simulate(lm, QUESTION, [{}], ONE_ORDER)
    assert server.state.requests[0]["headers"]["Authorization"] == f"Bearer {secret}"
    server.state.fail = [(401, {})]
    with pytest.raises(ModelError, match="HTTP 401.*environment variable SIM_CHAT_KEY") as error:
        simulate(lm, QUESTION, [{"SEX": "x"}], ONE_ORDER)
    assert secret not in str(error.value) and secret not in repr(lm)
    monkeypatch.delenv("SIM_CHAT_KEY")
    before = len(server.state.requests)
    with pytest.raises(ModelError, match="SIM_CHAT_KEY .* is not set.*Nothing was sent"):
        chat(server, api_key_env="SIM_CHAT_KEY")
    assert len(server.state.requests) == before


def test_no_key_sends_no_authorization(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    simulate(chat(server), QUESTION, [{}], ONE_ORDER)
    assert "Authorization" not in server.state.requests[0]["headers"]


def test_rate_limit_waits_for_retry_after(server, slept):
    lm = chat(server)
    server.state.fail = [(429, {"Retry-After": "3"}), (503, {})]
    [result] = simulate(lm, QUESTION, [{}], ONE_ORDER)
    np.testing.assert_allclose(result.shares, [6 / 9, 2 / 9, 1 / 9], rtol=1e-12)
    assert slept[0] == 3.0 and 0.75 <= slept[1] <= 1.0 and len(server.state.requests) == 3
    lm = chat(server, retries=2)
    server.state.fail = [(429, {})] * 3
    with pytest.raises(ModelError, match="HTTP 429 after 3 attempts"):
        simulate(lm, QUESTION, [{"SEX": "x"}], ONE_ORDER)


def test_unknown_model_lists_the_served_ones(server):
    with pytest.raises(ModelError, match="does not serve 'gpt-9': it serves base-model"):
        chat(server, served_model="gpt-9")
    lm = chat(server)
    server.state.check_model = True
    server.state.models = [{"id": "other-model"}]        # the server changed under us
    with pytest.raises(ModelError, match="does not serve 'base-model' .*it serves other-model"):
        simulate(lm, QUESTION, [{}], ONE_ORDER)


def test_a_body_that_is_not_json(server):
    lm = chat(server)
    server.state.garbage = True
    with pytest.raises(ModelError, match="not OpenAI-compatible JSON"):
        simulate(lm, QUESTION, [{}], ONE_ORDER)


def test_bad_input_sends_nothing(server):
    for url in ("api.openai.com/v1", "ftp://host", ""):
        with pytest.raises(ModelError, match="is not a URL"):
            connect_chat(url, "base-model")
    with pytest.raises(SimError, match="max_requests = 0 is out of range"):
        SimConfig(max_requests=0)
    many = Question(id="many", text="Pick one", options=tuple(f"o{i}" for i in range(27)))
    lm = chat(server)
    with pytest.raises(SimError, match="27 options; at most 26"):
        simulate(lm, many, [{}], SimConfig(mode="verbalized", use_cache=False))
    assert server.state.requests == []


# ---------------------------------------------------------------- cost guard and cache

def test_cost_guard_refuses_before_sending(server):
    lm = chat(server)
    rows = [types.SimpleNamespace(question=QUESTION, slice={"SEX": s}) for s in ("F", "M")]
    plan = plan_rows(lm, rows, SimConfig(orders=2, use_cache=False))
    assert (plan.requests, plan.prompts, plan.completion_tokens) == (4, 4, 4)
    text = prompt_text(chat_messages(QUESTION, {"SEX": "F"}))
    assert plan.prompt_tokens >= 2 * round(len(text) / 4) and not plan.exact
    with pytest.raises(SimError, match="would send 4 requests .*--max-requests 3.*nothing "
                                       "was sent"):
        simulate(lm, QUESTION, [{"SEX": "F"}, {"SEX": "M"}],
                 SimConfig(orders=2, use_cache=False, max_requests=3))
    assert server.state.requests == []
    simulate(lm, QUESTION, [{"SEX": "F"}, {"SEX": "M"}],
             SimConfig(orders=2, use_cache=False, max_requests=4))
    assert len(server.state.requests) == 4


def test_individual_level_plan_and_whole_run_guard(server, tmp_path, capsys):
    """Held-out respondents share one prompt per distinct profile: 3 age groups, so 3
    prompts per option order for first-token (tempered afterwards, no new requests) and 3
    per temperature when sampling (one request of n answers each). The whole run is checked
    against Most requests before anything is sent, in the API and the CLI."""
    from dataclasses import replace

    from test_individual_scores import ordinal_survey

    from sim_core.__main__ import main
    from sim_core.evaluation.individual import (
        IndividualConfig,
        evaluate_individuals,
        plan_individuals,
    )

    survey = replace(ordinal_survey(n=300, seed=2)[0], population="adults in Ohio, 2024")
    assert sorted(survey.respondents["age"].unique()) == ["middle", "old", "young"]
    lm = chat(server)
    config = IndividualConfig(temperatures=(0.5, 1.0, 2.0))
    first = SimConfig(orders=2, use_cache=False)
    assert plan_individuals([lm], survey, ["age"], config=config, sim=first).requests == 3 * 2
    sample = SimConfig(mode="sample", samples=4, orders=1, use_cache=False)
    assert plan_individuals([lm], survey, ["age"], config=config, sim=sample).requests == 3 * 3
    assert plan_individuals([lm, lm], survey, ["age"], config=config,
                            sim=first).requests == 2 * 3 * 2
    # each sampling run (3 requests) would fit under 8; the whole run (9) does not
    with pytest.raises(SimError, match="would send 9 requests .*--max-requests 8.*nothing "
                                       "was sent"):
        evaluate_individuals([lm], survey, ["age"], config=config,
                             sim=replace(sample, max_requests=8), baselines=())
    assert server.state.requests == []
    evaluate_individuals([lm], survey, ["age"], config=config,
                         sim=replace(first, max_requests=6), baselines=())
    assert len(server.state.requests) == 6
    # the survey's population reaches the persona, as in compare and evaluate
    assert all("adults in Ohio, 2024" in b["messages"][0]["content"] for b in bodies(server))
    # the command prints the whole run's plan first, and refuses it over --max-requests
    path = tmp_path / "ordinal.csv"
    path.write_text(survey.respondents[["age", "region", "q"]].to_csv(index=False))
    argv = ["individual", "--data", str(path), "--by", "age", "--questions", "q",
            "--backend", "chat", "--endpoint", server.url, "--served-model", "base-model",
            "--orders", "2", "--no-cache", "--baselines", "population"]
    capsys.readouterr()
    assert main([*argv, "--max-requests", "5"]) == 2
    err = capsys.readouterr().err
    assert "plan: 3 distributions (0 cached): 6 requests" in err
    assert "would send 6 requests" in err and len(server.state.requests) == 6
    assert main([*argv, "--max-requests", "6"]) == 0
    assert len(server.state.requests) == 12


def test_answers_cached_as_they_arrive(server, monkeypatch, isolated_workspace):
    ResultCache().clear()
    monkeypatch.setattr(simulate_module, "REMOTE_CHUNK", 1)      # a cache write per slice
    lm = chat(server, concurrency=1, retries=0)
    config = SimConfig(orders=1, use_cache=True)
    slices = [{"SEX": "F"}, {"SEX": "M"}, {"SEX": "X"}]
    calls = {"n": 0}
    real = lm.first_token

    def dying(prompts, ks, config, **kwargs):          # the run dies at the third slice
        calls["n"] += 1
        if calls["n"] == 3:
            raise ModelError("connection lost")
        return real(prompts, ks, config, **kwargs)

    monkeypatch.setattr(lm, "first_token", dying)
    with pytest.raises(ModelError, match="connection lost"):
        simulate(lm, QUESTION, slices, config)
    assert len(ResultCache()) == 2 and len(server.state.requests) == 2
    plan = plan_rows(lm, [types.SimpleNamespace(question=QUESTION, slice=s) for s in slices],
                     config)
    assert (plan.cached, plan.requests) == (2, 1)
    monkeypatch.setattr(lm, "first_token", real)
    results = simulate(lm, QUESTION, slices, config)        # resumes: pays for one only
    assert [r.cached for r in results] == [True, True, False]
    assert len(server.state.requests) == 3


def test_cache_identity_tells_chat_from_completions(server):
    identity = chat(server).cache_identity
    assert identity["backend"] == "chat" and identity["model"] == "base-model"


# ---------------------------------------------------------------- command line

def test_cli_simulate_verbalized_through_chat(server, capsys):
    from sim_core.__main__ import main

    server.state.replies = lambda body: ['{"A": 20, "B": 30, "C": 50}']
    status = main(["simulate", "--backend", "chat", "--endpoint", server.url,
                   "--served-model", "base-model", "--mode", "verbalized",
                   "--question", QUESTION.text, "--options", "|".join(QUESTION.options),
                   "--slice", "SEX=Female", "--no-cache", "--json"])
    captured = capsys.readouterr()
    assert status == 0
    [record] = json.loads(captured.out)
    assert record["shares"] == pytest.approx([0.2, 0.3, 0.5])
    assert "plan: 1 distributions (0 cached): 1 requests, about" in captured.err
    assert "never a respondent's row" not in captured.out


@pytest.mark.parametrize("argv, message", [
    (["--backend", "chat", "--endpoint", "http://127.0.0.1:9", "--served-model", "m",
      "--tokenizer", "default"], "--tokenizer is for the completions backend"),
    (["--backend", "chat", "--served-model", "m"], "(--endpoint URL --served-model NAME)"),
    (["--backend", "chat", "--endpoint", "http://127.0.0.1:9", "--served-model", "m",
      "--max-requests", "0"], "max_requests = 0 is out of range"),
    (["--backend", "chat", "--endpoint", "http://127.0.0.1:9", "--served-model", "m",
      "--api-key-env", "SIM_SURELY_UNSET"], "SIM_SURELY_UNSET (--api-key-env) is not set"),
])
def test_cli_bad_input_is_one_message(argv, message, capsys):
    from sim_core.__main__ import main

    status = main(["simulate", "--question", "Q?", "--options", "a|b", *argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1
