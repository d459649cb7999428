"""Result cache: round trip, keys, concurrent threads, and a repeated simulation skips the model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sim_core.cache import ResultCache, cache_key
from sim_core.models import load_model
from sim_core.simulate import SimConfig, simulate
from sim_core.survey import Question

QUESTION = Question(id="q1", text="Is the economy getting better?", options=("Better", "Same", "Worse"))


def test_round_trip_and_keys(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    key = cache_key(model="m", prompts=["p"], mode="first-token", orders=[[0, 1]])
    assert key == cache_key(orders=[[0, 1]], mode="first-token", prompts=["p"], model="m")
    assert key != cache_key(model="m", prompts=["p"], mode="first-token", orders=[[1, 0]])
    assert cache.get(key) is None
    cache.put(key, {"shares": [0.25, 0.75], "letter_mass": 0.9})
    assert cache.get(key) == {"shares": [0.25, 0.75], "letter_mass": 0.9}
    assert len(cache) == 1 and cache.clear() == 1 and len(cache) == 0


def test_concurrent_threads(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    errors = []

    def work(index: int) -> None:
        try:
            for j in range(20):
                cache.put(f"{index}-{j}", {"v": j})
                assert cache.get(f"{index}-{j}") == {"v": j}
        except Exception as error:  # collected: assertion errors in threads are otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) == 80


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="float32")


def count_forwards(model) -> list[int]:
    """Attach a hook counting forward calls of the model."""
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_repeat_costs_no_model_call(tiny):
    calls = count_forwards(tiny.model)
    slices = [{"SEX": "Female"}, {"SEX": "Male"}, {}]
    config = SimConfig(orders=2, batch_size=2)
    first = simulate(tiny, QUESTION, slices, config)
    assert calls[0] == 3  # 6 prompts in batches of 2
    assert not any(r.cached for r in first)
    again = simulate(tiny, QUESTION, slices, config)
    assert calls[0] == 3 and all(r.cached for r in again)
    for a, b in zip(first, again):
        np.testing.assert_allclose(a.shares, b.shares)
        assert a.letter_mass == pytest.approx(b.letter_mass) and a.prompt == b.prompt
    simulate(tiny, QUESTION, slices, SimConfig(orders=3, batch_size=2))  # other params: miss
    assert calls[0] == 3 + 5
    simulate(tiny, QUESTION, slices[:1], SimConfig(orders=2, use_cache=False))
    assert calls[0] == 9
