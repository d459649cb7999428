"""The OpenAI-compatible endpoint backend against a small in-test server (no vLLM needed).

Numbers are checked against hand computation from the log-probabilities the fake server
returns; failures (down, slow, wrong model, 5xx then success) against their messages and
against the cache (nothing stored from a failed call, the API key never on disk).
"""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
from fake_openai import FakeServer, FakeState

from sim_core.base.errors import Cancelled, ModelError
from sim_core.simulation.answers import letter_distribution, sample_seed
from sim_core.simulation.cache import ResultCache
from sim_core.simulation.completions import connect
from sim_core.simulation.config import SimConfig
from sim_core.simulation.openai_client import api_base, list_served, run_pool
from sim_core.simulation.prompts import build_prompt
from sim_core.simulation.simulate import simulate
from sim_core.survey.schema import Question

QUESTION = Question(id="natspac", text="Are we spending too much on space exploration?",
                    options=("Too little", "About right", "Too much"))
SLICES = [{"SEX": "Female"}, {"SEX": "Male"}]
LORA = {"id": "tiny-lora", "root": "/srv/adapters/tiny-lora", "parent": "base-model"}


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def slept(monkeypatch):
    """The waits the openai client makes between attempts, recorded instead of slept."""
    import time
    import types

    import openai._base_client as base_client

    waits: list[float] = []
    clock = types.SimpleNamespace(sleep=waits.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(base_client, "time", clock)   # the client's waits only
    return waits


@pytest.fixture
def cache_empty():
    ResultCache().clear()


def make(fake: FakeServer, tiny_model_dir, **kwargs):
    """connect() to the fake server with the tiny model's tokenizer and no real waiting."""
    kwargs.setdefault("served_model", "base-model")
    return connect(fake.url, tokenizer=str(tiny_model_dir), **kwargs)


# ---------------------------------------------------------------- parsing

def test_letter_distribution_hand_computed():
    top = {" A": math.log(0.5), "A": math.log(0.1), " B": math.log(0.2), " C": math.log(0.1),
           "\n": math.log(0.05)}
    shares, mass = letter_distribution(top, 3)
    np.testing.assert_allclose(shares, [0.6 / 0.9, 0.2 / 0.9, 0.1 / 0.9], rtol=1e-12)
    assert mass == pytest.approx(0.9)
    shares, mass = letter_distribution(top, 2)            # C is not an option here
    np.testing.assert_allclose(shares, [0.75, 0.25], rtol=1e-12)
    assert mass == pytest.approx(0.8)
    shares, mass = letter_distribution(top, 4)            # D outside the top K: 0, not guessed
    np.testing.assert_allclose(shares, [0.6 / 0.9, 0.2 / 0.9, 0.1 / 0.9, 0.0], rtol=1e-12)


def test_letter_distribution_ignores_other_spellings_and_refuses_no_letter():
    top = {"a": math.log(0.3), " (A": math.log(0.2), " B": math.log(0.1), "B": -9999.0}
    shares, mass = letter_distribution(top, 2)            # lower-case and "(A" do not count
    np.testing.assert_allclose(shares, [0.0, 1.0])
    assert mass == pytest.approx(0.1)
    with pytest.raises(ModelError, match="None of the option letters A-C"):
        letter_distribution({"\n": -0.1, "The": -2.5}, 3)


def test_api_base_normalised_and_refused():
    assert api_base("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert api_base(" http://host:8000/v1/ ") == "http://host:8000/v1"
    for bad in ("127.0.0.1:8000", "ftp://host", "http://user:pw@host:1", "", "http://h?x=1"):
        with pytest.raises(ModelError):
            api_base(bad)


# ---------------------------------------------------------------- simulate through the endpoint

def test_first_token_through_simulate_matches_hand_computation(server, tiny_model_dir):
    lm = make(server, tiny_model_dir)
    [female, male] = simulate(lm, QUESTION, SLICES, SimConfig(orders=2, use_cache=False))
    # Shown shares s = (6, 2, 1)/9 for A, B, C in both orders; reversed order shows option
    # 2-j as letter j, so the debiased shares are ((6+1), (2+2), (1+6)) / 18.
    for result in (female, male):
        np.testing.assert_allclose(result.shares, [7 / 18, 4 / 18, 7 / 18], rtol=1e-12)
        assert result.letter_mass == pytest.approx(0.9)
    prompts = [r["body"]["prompt"] for r in server.state.requests]
    expected = build_prompt(lm.tokenizer, QUESTION, SLICES[0])   # the local prompt builder
    assert female.prompt == expected and expected in prompts and len(prompts) == 4
    body = server.state.requests[0]["body"]
    assert body["model"] == "base-model" and body["max_tokens"] == 1
    assert body["temperature"] == 0 and body["logprobs"] == 20
    assert "add_special_tokens" not in body   # SmolLM2's tokenizer adds no BOS


def test_sampling_parses_answers_and_sends_seed(server, tiny_model_dir):
    server.state.texts = lambda body: [" A", "B.", " Too much", "no idea", " C"][:body["n"]]
    lm = make(server, tiny_model_dir)
    config = SimConfig(mode="sample", samples=5, temperature=0.7, seed=3, use_cache=False)
    [result] = simulate(lm, QUESTION, [{}], config)
    np.testing.assert_allclose(result.shares, [1 / 4, 1 / 4, 2 / 4])
    assert (result.n_samples, result.n_unparsed) == (5, 1)
    assert result.letter_mass == pytest.approx(4 / 5)
    body = server.state.requests[0]["body"]
    assert body["n"] == 5 and body["temperature"] == 0.7 and body["max_tokens"] == 6
    assert body["seed"] == sample_seed(config, result.prompt)


def test_sampling_refuses_fewer_completions_than_asked(server, tiny_model_dir):
    server.state.texts = lambda body: [" A"]              # a server that ignores n
    lm = make(server, tiny_model_dir)
    with pytest.raises(ModelError, match="returned 1 completions where 4"):
        simulate(lm, QUESTION, [{}], SimConfig(mode="sample", samples=4, use_cache=False))


def test_prompt_token_count_checked(server, tiny_model_dir):
    lm = make(server, tiny_model_dir)
    server.state.usage = lambda prompt: len(lm.tokenizer.encode(prompt, add_special_tokens=False))
    simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))   # same count: fine
    server.state.usage = lambda prompt: 7
    with pytest.raises(ModelError, match="read the prompt as 7 tokens"):
        simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))


def test_adapter_served_by_name(server, tiny_model_dir):
    server.state.models.append(dict(LORA))
    lm = make(server, tiny_model_dir, adapter="tiny-lora")
    assert (lm.name, lm.adapter, lm.request_model) == ("base-model", "tiny-lora", "tiny-lora")
    assert lm.label == f"base-model + tiny-lora @ {server.url.split('//')[1]}"
    simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))
    assert server.state.requests[-1]["body"]["model"] == "tiny-lora"
    named = make(server, tiny_model_dir, served_model="tiny-lora")   # the adapter's own id
    assert (named.name, named.adapter) == ("base-model", "tiny-lora")
    served = {m.id: m.parent for m in list_served(server.url)}
    assert served == {"base-model": None, "tiny-lora": "base-model"}


def test_adapter_card_orders_from_registry(server, tiny_model_dir):
    from sim_core.simulation.adapters import save_adapter

    def write(folder):
        (folder / "adapter_config.json").write_text("{}")

    save_adapter(write, "card-lora", {"inference_orders": 1}, overwrite=True)
    server.state.models.append({"id": "card-lora", "root": "/elsewhere", "parent": "base-model"})
    lm = make(server, tiny_model_dir, adapter="card-lora")
    assert lm.inference_orders == 1 and lm.adapter_path.name == "card-lora"
    simulate(lm, QUESTION, [{}], SimConfig(use_cache=False))   # orders None: the card's 1
    assert len(server.state.requests) == 1


# ---------------------------------------------------------------- failures and messages

def test_wrong_model_and_unknown_adapter_named(server, tiny_model_dir):
    server.state.models.append(dict(LORA))
    with pytest.raises(ModelError, match="does not serve 'llama-70b': it serves base-model "
                                         "and the adapters tiny-lora"):
        make(server, tiny_model_dir, served_model="llama-70b")
    with pytest.raises(ModelError, match="does not serve the adapter 'nope'"):
        make(server, tiny_model_dir, adapter="nope")
    server.state.models.append({"id": "other-base"})
    with pytest.raises(ModelError, match="sits on 'base-model', not on 'other-base'"):
        make(server, tiny_model_dir, served_model="other-base", adapter="tiny-lora")


def test_endpoint_down_is_one_clear_message(tiny_model_dir, slept):
    with socket.socket() as sock:              # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ModelError, match=r"Cannot reach the endpoint .* after 3 attempts "
                                         r"\(connection refused\)"):
        list_served(f"http://127.0.0.1:{port}", timeout=5, retries=2)
    # exponential backoff between the attempts (the openai client's, with up to 25 % jitter)
    assert len(slept) == 2 and 0.375 <= slept[0] <= 0.5 and 0.75 <= slept[1] <= 1.0
    with pytest.raises(ModelError, match="Cannot reach"):
        connect(f"http://127.0.0.1:{port}", "base-model", tokenizer=str(tiny_model_dir),
                retries=0)


def test_slow_endpoint_times_out(server, tiny_model_dir):
    lm = make(server, tiny_model_dir, timeout=0.3)
    server.state.delay = 1.0
    with pytest.raises(ModelError, match=r"did not answer within 0.3 s"):
        simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))


def test_transient_errors_retried_with_backoff(server, tiny_model_dir, slept):
    lm = make(server, tiny_model_dir)
    server.state.fail = [(503, {}), (502, {}), (429, {"Retry-After": "2"})]
    [result] = simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))
    np.testing.assert_allclose(result.shares, [6 / 9, 2 / 9, 1 / 9], rtol=1e-12)
    # 0.5 s doubling (less up to 25 % jitter), then the server's Retry-After
    assert 0.375 <= slept[0] <= 0.5 and 0.75 <= slept[1] <= 1.0 and slept[2] == 2.0
    assert len(server.state.requests) == 4


def test_final_errors_not_retried_and_name_the_reason(server, tiny_model_dir):
    lm = make(server, tiny_model_dir)
    server.state.fail = [(400, {})]
    with pytest.raises(ModelError, match="HTTP 400 .*scripted 400"):
        simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))
    assert len(server.state.requests) == 1
    server.state.fail = [(500, {})] * 5
    with pytest.raises(ModelError, match="HTTP 500 after 5 attempts"):
        simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False))


def test_nothing_cached_from_a_failed_call(server, tiny_model_dir, cache_empty):
    lm = make(server, tiny_model_dir, retries=0)
    server.state.fail = [(503, {})]
    config = SimConfig(orders=2, use_cache=True)
    with pytest.raises(ModelError):
        simulate(lm, QUESTION, SLICES, config)
    assert len(ResultCache()) == 0
    server.state.top = {"\n": -0.1, "The": -3.0}          # no letter: refused, not cached
    with pytest.raises(ModelError, match="None of the option letters"):
        simulate(lm, QUESTION, SLICES, config)
    assert len(ResultCache()) == 0
    server.state.top = dict(FakeState().top)
    first = simulate(lm, QUESTION, SLICES, config)
    assert not any(r.cached for r in first) and len(ResultCache()) == 2
    before = len(server.state.requests)
    again = simulate(lm, QUESTION, SLICES, config)
    assert all(r.cached for r in again) and len(server.state.requests) == before
    np.testing.assert_allclose(again[0].shares, first[0].shares)


def test_cache_key_covers_endpoint_model_adapter_and_k(tiny_model_dir, cache_empty):
    config = SimConfig(orders=1, use_cache=True)
    with FakeServer() as one, FakeServer() as two:
        for fake in (one, two):
            fake.state.models.append(dict(LORA))
        runs = [(one, {}), (one, {}), (two, {}), (one, {"adapter": "tiny-lora"}),
                (one, {"top_logprobs": 5})]
        cached = []
        for fake, kwargs in runs:
            [result] = simulate(make(fake, tiny_model_dir, **kwargs), QUESTION, [{}], config)
            cached.append(result.cached)
    # Only the exact repeat (same URL, model, adapter, K) is served from the cache.
    assert cached == [False, True, False, False, False]
    assert len(ResultCache()) == 4


def test_api_key_sent_but_never_stored(server, tiny_model_dir, cache_empty, monkeypatch,
                                       isolated_workspace):
    secret = "sk-test-5ecret-never-on-disk"
    monkeypatch.setenv("SIM_TEST_KEY", secret)
    lm = make(server, tiny_model_dir, api_key_env="SIM_TEST_KEY")
    simulate(lm, QUESTION, SLICES, SimConfig(orders=2, use_cache=True))
    assert server.state.requests[0]["headers"]["Authorization"] == f"Bearer {secret}"
    assert secret not in repr(lm) and secret not in str(lm.cache_identity)
    for path in isolated_workspace.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    server.state.fail = [(401, {})]
    with pytest.raises(ModelError, match="check the API key in the environment variable "
                                         "SIM_TEST_KEY") as error:
        simulate(lm, QUESTION, [{"SEX": "Other"}], SimConfig(orders=1, use_cache=False))
    assert secret not in str(error.value)


def test_concurrency_bounded_and_results_in_order(server, tiny_model_dir):
    server.state.delay = 0.05
    lm = make(server, tiny_model_dir, concurrency=3)
    slices = [{"AGE": str(age)} for age in range(12)]
    seen = []
    results = simulate(lm, QUESTION, slices, SimConfig(orders=1, use_cache=False),
                       progress=lambda done, total: seen.append((done, total)))
    assert 1 < server.state.max_in_flight <= 3
    assert [r.slice for r in results] == slices
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_should_stop_cancels():
    calls = []

    def task(index):
        calls.append(index)
        return index

    with pytest.raises(Cancelled):
        run_pool(task, 50, 2, None, lambda: True)
    assert run_pool(task, 5, 2, None, None) == [0, 1, 2, 3, 4]


def test_add_special_tokens_sent_only_when_the_tokenizer_adds_a_bos():
    from sim_core.simulation.completions import _adds_special

    class Tok:
        chat_template = "{{ messages }}"

        def __init__(self, bos):
            self.bos = bos

        def encode(self, text, add_special_tokens=True):
            return ([1] if self.bos and add_special_tokens else []) + [ord(c) for c in text]

    assert _adds_special(Tok(bos=True)) and not _adds_special(Tok(bos=False))
    plain = Tok(bos=True)
    plain.chat_template = None                 # base model: the local path adds the BOS too
    assert not _adds_special(plain)


# ---------------------------------------------------------------- command line

def test_cli_simulate_through_endpoint(server, tiny_model_dir, capsys):
    import json

    from sim_core.__main__ import main

    status = main(["simulate", "--backend", "completions", "--endpoint", server.url + "/v1",
                   "--served-model", "base-model", "--tokenizer", str(tiny_model_dir),
                   "--question", QUESTION.text, "--options", "|".join(QUESTION.options),
                   "--slice", "SEX=Female", "--no-cache", "--json"])
    assert status == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["shares"] == pytest.approx([7 / 18, 4 / 18, 7 / 18], abs=1e-6)  # 2 orders
    assert record["model"].startswith("base-model @ 127.0.0.1:")


@pytest.mark.parametrize("argv, message", [
    (["--endpoint", "http://127.0.0.1:9", "--tokenizer", "default"],
     "The endpoint, tokenizer setting(s) are for a server backend (--backend completions or "
     "chat)"),
    (["--backend", "completions", "--served-model", "x"],
     "(--endpoint URL --served-model NAME)"),
    (["--backend", "completions", "--endpoint", "http://127.0.0.1:9", "--served-model", "x",
      "--dtype", "float32"], "--model, --dtype and --device are for the local backend"),
    (["--backend", "completions", "--endpoint", "http://127.0.0.1:9", "--served-model", "x",
      "--concurrency", "0"], "concurrency = 0 is out of range: it must be 1 to 256"),
])
def test_cli_refuses_half_given_backend(argv, message, capsys):
    from sim_core.__main__ import main

    status = main(["simulate", "--question", "Q?", "--options", "a|b", *argv])
    assert status == 2 and message in capsys.readouterr().err


def test_cli_endpoint_down_exits_with_one_line(capsys):
    from sim_core.__main__ import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status = main(["compare", "--data", "gss2022", "--question", "natspac", "--by", "SEX",
                   "--backend", "completions", "--endpoint", f"http://127.0.0.1:{port}",
                   "--served-model", "m", "--tokenizer", "default"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: Cannot reach the endpoint")
    assert err.count("\n") == 1


def test_finetune_eval_through_endpoint(server, tiny_model_dir, capsys):
    import json

    from finetune.cli import main

    server.state.models.append(dict(LORA))
    status = main(["eval", "--adapter", "tiny-lora", "--data", "gss2022", "--question",
                   "natspac", "--by", "SEX", "--rows", "all", "--orders", "1", "--json",
                   "--backend", "completions", "--endpoint", server.url, "--served-model",
                   "base-model", "--tokenizer", str(tiny_model_dir)])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    host = server.url.split("//")[1]
    assert {f"base-model @ {host}", f"base-model + tiny-lora @ {host}"} <= set(summary)
    models = {r["body"]["model"] for r in server.state.requests}
    assert models == {"base-model", "tiny-lora"}


def test_finetune_eval_held_out_needs_the_served_adapters_card(server, tiny_model_dir, capsys):
    from finetune.cli import main

    server.state.models.append({"id": "far-lora", "root": "/srv/elsewhere", "parent": "base-model"})
    status = main(["eval", "--adapter", "far-lora", "--data", "gss2022", "--question", "natspac",
                   "--backend", "completions", "--endpoint", server.url, "--served-model",
                   "base-model", "--tokenizer", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert status == 2 and "'far-lora' has no card on this machine" in err and "--rows all" in err
    assert server.state.requests == []         # refused before any simulation
