"""AppTest: the sidebar's endpoint backend lists what the server serves, and the Simulate page
simulates through it (base and an adapter served by name) with the hand-computable shares."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from fake_openai import FakeServer
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LORA = {"id": "tiny-lora", "root": "/srv/adapters/tiny-lora", "parent": "base-model"}


@pytest.fixture
def server():
    with FakeServer() as fake:
        fake.state.models += [dict(LORA), {"id": "other-lora", "parent": "another-base"}]
        yield fake


def endpoint_app(url: str, tokenizer: Path) -> AppTest:
    """The dashboard with the sidebar switched to the endpoint at `url`.

    The sidebar's widgets are set through session state before the first run: in AppTest, a
    sidebar widget changed after a run in this multipage app loses the sidebar's elements.
    """
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["side_backend"] = "completions"
    at.session_state["side_endpoint_url"] = url
    at.session_state["side_endpoint_tokenizer"] = str(tokenizer)
    return at.run()


def test_sidebar_lists_served_models_and_simulates(server, tiny_model_dir):
    at = endpoint_app(server.url + "/v1", tiny_model_dir)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="side_served_model").options == ["base-model"]
    assert at.selectbox(key="side_endpoint_adapter").options == ["(none)", "tiny-lora"]
    at.switch_page("pages/simulate.py").run()
    at.radio(key="sim_source").set_value("Draft a new question").run()
    at.text_area(key="sim_draft_text").input("Are we spending too much on space exploration?")
    at.text_area(key="sim_draft_options").input("Too little\nAbout right\nToo much")
    at.text_area(key="sim_draft_slices").input("SEX=Female")
    at.run()
    assert at.multiselect(key="sim_checkpoints").options == ["(base model)", "tiny-lora"]
    at.multiselect(key="sim_checkpoints").set_value(["(base model)", "tiny-lora"])
    at.selectbox(key="sim_orders").set_value(2)
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    host = server.url.split("//")[1]
    simulated = comparison.slices[0].simulated
    assert set(simulated) == {f"base-model @ {host}", f"base-model + tiny-lora @ {host}"}
    for result in simulated.values():   # debiased over 2 orders: (6+1, 2+2, 1+6) / 18
        np.testing.assert_allclose(result.shares, [7 / 18, 4 / 18, 7 / 18], rtol=1e-9)
    assert {r["body"]["model"] for r in server.state.requests} == {"base-model", "tiny-lora"}
    assert all(c["endpoint"] == server.url + "/v1" for c in comparison.checkpoints)


def test_endpoint_down_shows_one_message(tiny_model_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    at = endpoint_app(f"http://127.0.0.1:{port}", tiny_model_dir)
    assert not at.exception
    assert len(at.error) == 1 and "Cannot reach the endpoint" in at.error[0].value
