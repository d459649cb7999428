"""The model handle is the whole contract between the simulator and a backend: a new backend
that implements ModelHandle (and nothing else) gets option orders, debiasing, the cache,
calibration, the run plan and every mode, with shares checked by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sim_core.simulation.calibration import Calibration
from sim_core.simulation.chat import ChatModel
from sim_core.simulation.completions import EndpointModel
from sim_core.simulation.config import SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.models import LoadedModel
from sim_core.simulation.simulate import plan_rows, simulate
from sim_core.survey.schema import Question

QUESTION = Question(id="q", text="Agree?", options=("Yes", "Maybe", "No"))
SHOWN = np.array([0.5, 0.3, 0.2])          # what the scripted model says for letters A, B, C


@dataclass
class Scripted(ModelHandle):
    """A backend in a dozen lines: the same letter shares for every prompt."""

    name: str = "scripted"
    fingerprint: str = "scripted#1"
    label: str = "scripted model"
    adapter: str | None = None
    adapter_path: Path | None = None
    adapter_fingerprint: str | None = None
    inference_orders: int | None = None
    prompt_style: dict | None = None
    calibration: Calibration | None = None
    sampling_temperature: float | None = None

    @property
    def cache_identity(self) -> dict:
        return {"backend": "scripted"}

    def prompt(self, question, slice_, *, order=None, style=None, mode="first-token"):
        return f"{question.id}|{sorted(slice_.items())}|{list(order)}|{mode}"

    def first_token(self, prompts, ks, config, *, progress=None, should_stop=None):
        return [(SHOWN[:k] / SHOWN[:k].sum(), 0.8) for k in ks]

    def sample(self, prompts, options, config, *, progress=None, should_stop=None):
        return [(np.array([0.25, 0.25, 0.5]), 4, 0) for _ in prompts]

    def verbalized(self, prompts, ks, config, *, progress=None, should_stop=None):
        return [None if "None" in p else SHOWN[:k] for p, k in zip(prompts, ks)]


def test_a_new_backend_plugs_in_through_the_handle_alone():
    lm = Scripted()
    [result] = simulate(lm, QUESTION, [{}], SimConfig(orders=2, use_cache=False))
    # order (0, 1, 2) shows (.5, .3, .2); reversed shows option 2-j as letter j: (.2, .3, .5)
    np.testing.assert_allclose(result.shares, [0.35, 0.3, 0.35])
    assert result.letter_mass == pytest.approx(0.8) and result.prompt.endswith("first-token")
    [sampled] = simulate(lm, QUESTION, [{}], SimConfig(mode="sample", use_cache=False))
    np.testing.assert_allclose(sampled.shares, [0.25, 0.25, 0.5])
    [told] = simulate(lm, QUESTION, [{"SEX": "F"}], SimConfig(mode="verbalized",
                                                               use_cache=False))
    np.testing.assert_allclose(told.shares, SHOWN)
    [unread] = simulate(lm, QUESTION, [{"SEX": "None"}], SimConfig(mode="verbalized",
                                                                    use_cache=False))
    assert np.isnan(unread.shares).all() and unread.n_unparsed == 1
    shrink = Calibration(temperature=1.0, shrink=1.0)           # all the way to uniform
    [calibrated] = simulate(lm, QUESTION, [{}], SimConfig(orders=1, use_cache=False),
                            calibration=shrink)
    np.testing.assert_allclose(calibrated.shares, [1 / 3] * 3)
    np.testing.assert_allclose(calibrated.raw_shares, SHOWN)
    rows = [type("Row", (), {"question": QUESTION, "slice": {}})()]
    plan = plan_rows(lm, rows, SimConfig(orders=2, use_cache=False))
    assert (plan.prompts, plan.requests) == (2, 0)              # runs here: nothing is sent


def test_every_backend_implements_the_whole_contract():
    for backend in (LoadedModel, EndpointModel, ChatModel):
        assert issubclass(backend, ModelHandle) and not backend.__abstractmethods__, backend
    with pytest.raises(TypeError):                               # a half backend cannot exist
        type("Half", (ModelHandle,), {"cache_identity": property(lambda self: {})})()
