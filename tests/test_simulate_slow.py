"""The embedded SmolLM2-135M-Instruct end to end (slow: converts the GGUF once, ~30 s)."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.base.workspace import subdir
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import EMBEDDED_FOLDER, load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.schema import Question

pytestmark = pytest.mark.slow

SPACE = Question(id="natspac", text="We are faced with many problems in this country. Are we "
                 "spending too much money, too little money, or about the right amount on the "
                 "space exploration program?", options=("Too little", "About right", "Too much"))
GUNS = Question(id="gunlaw", text="Would you favor or oppose a law which would require a person "
                "to obtain a police permit before he or she could buy a gun?",
                options=("Favor", "Oppose"))
PARTIES = [{"POLPARTY": "Democrat"}, {"POLPARTY": "Republican"}]


@pytest.fixture(scope="module")
def embedded():
    lm = load_model("default")
    assert (subdir("models") / EMBEDDED_FOLDER / "config.json").exists()  # converted once
    return lm


def test_embedded_first_token(embedded):
    assert embedded.is_chat and embedded.label == "SmolLM2-135M-Instruct"
    for question in (SPACE, GUNS):
        results = simulate(embedded, question, PARTIES, SimConfig(orders=2, use_cache=False))
        for result in results:
            assert result.shares.sum() == pytest.approx(1.0, abs=1e-9)
            assert (result.shares > 0).all()
            assert result.letter_mass > 0.9  # the chat template makes it answer with a letter


def test_persona_changes_output(embedded):
    dem, rep = simulate(embedded, GUNS, PARTIES, SimConfig(orders=1, use_cache=False))
    assert "a Democrat" in dem.prompt and "a Republican" in rep.prompt
    assert 0.5 * np.abs(dem.shares - rep.shares).sum() > 0.002


def test_embedded_sampling_parses(embedded):
    config = SimConfig(mode="sample", samples=10, use_cache=False)
    [result] = simulate(embedded, SPACE, [{"SEX": "Female"}], config)
    assert result.n_samples == 10 and result.n_unparsed <= 3
    assert result.shares.sum() == pytest.approx(1.0)
