"""Result cache: round trip, keys, concurrent threads, and a repeated simulation skips the model."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from sim_core.simulation.cache import ResultCache, cache_key
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.schema import Question

QUESTION = Question(id="q1", text="Is the economy getting better?",
                    options=("Better", "Same", "Worse"))


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


def _writer(path: str, index: int) -> None:
    """One process writing its own keys (run by multiprocessing)."""
    cache = ResultCache(Path(path))
    for j in range(25):
        cache.put_many({f"{index}-{j}-{k}": {"v": [index, j, k]} for k in range(4)})


def test_concurrent_processes(tmp_path):
    """Four processes write at once: every value arrives, none is lost or mixed up."""
    path = tmp_path / "c.sqlite"
    ResultCache(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * 4
    cache = ResultCache(path)
    assert len(cache) == 4 * 25 * 4
    assert cache.get("3-24-1") == {"v": [3, 24, 1]}


def test_damaged_cache_is_moved_aside_and_rebuilt(tmp_path, caplog):
    """A cache file that is not a database (a real one, overwritten with junk) no longer
    blocks every simulation: it is moved aside, a fresh one starts, a warning says so."""
    path = tmp_path / "results.sqlite"
    ResultCache(path).put("k", {"v": 1})
    path.write_bytes(b"this is not an SQLite database at all, " * 200)
    with caplog.at_level(logging.WARNING, logger="sim_core"):
        cache = ResultCache(path)
    assert cache.get("k") is None and len(cache) == 0
    cache.put("k", {"v": 2})
    assert cache.get("k") == {"v": 2}
    aside = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not an SQLite")
    assert any("was damaged" in r.getMessage() and "moved aside" in r.getMessage()
               for r in caplog.records)


def test_simulation_survives_a_damaged_or_full_cache(tiny, monkeypatch, caplog):
    """Simulating with a damaged cache file rebuilds it; a cache that cannot be written
    (disk full) or opened (read-only workspace) only warns: the results are the same."""
    from sim_core.simulation import cache as cache_module

    expected = simulate(tiny, QUESTION, [{"SEX": "Female"}], SimConfig(orders=1,
                                                                        use_cache=False))
    path = cache_module.cache_path()
    path.write_bytes(b"\x00junk" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="sim_core"):
        [rebuilt] = simulate(tiny, QUESTION, [{"SEX": "Female"}], SimConfig(orders=1))
    np.testing.assert_allclose(rebuilt.shares, expected[0].shares)
    assert any("was damaged" in r.getMessage() for r in caplog.records)

    def full(self, items):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(ResultCache, "put_many", full)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sim_core"):
        [result] = simulate(tiny, QUESTION, [{"SEX": "Male"}], SimConfig(orders=1))
    assert not result.cached and any("the disk is full" in r.getMessage()
                                     for r in caplog.records)

    def unopenable(self):
        raise sqlite3.OperationalError("unable to open database file")
    monkeypatch.setattr(ResultCache, "_create", unopenable)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sim_core"):
        [again] = simulate(tiny, QUESTION, [{"SEX": "Male"}], SimConfig(orders=1))
    np.testing.assert_allclose(again.shares, result.shares)
    assert any("Simulating without the cache" in r.getMessage() for r in caplog.records)
