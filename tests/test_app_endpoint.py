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


# ---------------------------------------------------------------- chat API (issue 24)

# 20 women: 12 Yes / 8 No; 20 men: 5 Yes / 15 No (as in test_app_simulate)
YES_NO = "sex,age,q1\n" + "".join(
    f"{sex},{age},{ans}\n"
    for sex, yes in (("Female", 12), ("Male", 5))
    for i, age in enumerate(range(20, 40))
    for ans in (["Yes"] if i < yes else ["No"]))


def chat_app(url: str) -> AppTest:
    """The dashboard with the sidebar on the chat backend at `url`, on the Simulate page."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["side_backend"] = "chat"
    at.session_state["side_endpoint_url"] = url
    at.run()
    at.switch_page("pages/simulate.py").run()
    return at


def draft(at, slices: str, options: str = "Too little\nAbout right\nToo much") -> None:
    at.radio(key="sim_source").set_value("Draft a new question").run()
    at.text_area(key="sim_draft_text").input("Are we spending too much on space exploration?")
    at.text_area(key="sim_draft_options").input(options)
    at.text_area(key="sim_draft_slices").input(slices)
    at.run()


def posts(server) -> list[dict]:
    """Bodies of the simulation requests the server received (GET /v1/models is not one)."""
    return [r["body"] for r in server.state.requests]


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def test_chat_backend_three_modes_drafted_and_survey_question(server):
    """Chat backend end to end: the served model listed, the privacy note, a plan before
    anything is sent, a drafted question in first-token and verbalized mode, a survey
    question; the checkpoint is "model @ host" in the result and the history, the mode is
    shown with the result; the population estimate reuses the simulated cells (nothing
    sent)."""
    from sim_core.report import history
    from sim_core.simulation.backends import SENT_TO_SERVER
    from sim_core.survey import workspace_surveys
    from sim_core.survey.slices import survey_rows

    workspace_surveys.save_survey("chat-yes-no", "yes_no.csv", YES_NO.encode(),
                                  {"demographics": ["sex", "age"], "questions": ["q1"]},
                                  overwrite=True)
    at = chat_app(server.url + "/v1")
    assert at.selectbox(key="side_served_model").options == ["base-model"]
    assert at.selectbox(key="side_served_model").value == "base-model"
    draft(at, "SEX=Female")
    at.selectbox(key="sim_orders").set_value(1).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert SENT_TO_SERVER in [i.value for i in at.info]
    # one slice, one order, first-token: 1 request of 1 completion token; nothing sent yet
    assert "This run: 1 distributions (0 cached): 1 requests, about " in captions(at)
    assert "at most 1 completion tokens" in captions(at)
    assert posts(server) == []
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    host = server.url.split("//")[1]
    comparison = at.session_state["sim_comparison"]
    label = f"base-model @ {host}"
    [result] = [sc.simulated[label] for sc in comparison.slices]
    # the server's first token: A 0.5 + " A" 0.1 (one letter), B 0.2, C 0.1
    np.testing.assert_allclose(result.shares, [0.6 / 0.9, 0.2 / 0.9, 0.1 / 0.9], rtol=1e-9)
    assert len(posts(server)) == 1 and posts(server)[0]["logprobs"] is True
    assert "mode: First-token probabilities" in captions(at)
    saved = history.list_results()[0]
    report = history.load_result(saved.id)
    assert saved.title == comparison.question.text
    assert [c["label"] for c in report.checkpoints] == [label] and report.mode == "first-token"

    # verbalized: the percentages the server states; the plan counts the reply's tokens
    server.state.replies = lambda body: ['{"A": 20, "B": 30, "C": 50}']
    at.radio(key="sim_mode").set_value("verbalized").run()
    # at most 8 k + 24 tokens for the reply and as many for its one retry (k = 3 options)
    assert "1 requests, about " in captions(at) and "at most 96 completion tokens" in \
        captions(at)
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [result] = [sc.simulated[label] for sc in at.session_state["sim_comparison"].slices]
    np.testing.assert_allclose(result.shares, [0.2, 0.3, 0.5])
    assert "response_format" in posts(server)[-1] and len(posts(server)) == 2
    assert "mode: Verbalized distribution" in captions(at)

    # a survey question by sex, one order: 2 slices, 2 requests; A 0.6 vs B 0.2 of 2 options
    at.radio(key="sim_mode").set_value("first-token")
    at.radio(key="sim_source").set_value("From a loaded survey").run()
    at.selectbox(key="sim_survey").set_value("chat-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.multiselect(key="sim_baselines").set_value(["uniform"]).run()
    assert "This run: 2 distributions (0 cached): 2 requests" in captions(at)
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    assert len(posts(server)) == 4
    for sc in comparison.slices:
        np.testing.assert_allclose(sc.simulated[label].shares, [0.75, 0.25], rtol=1e-9)
        assert set(sc.scores) == {label, "baseline: uniform"}
    # the population estimate composes the two simulated cells: nothing is sent
    at.session_state["sim_view"] = "Population"
    at.run()
    at.button(key="sim_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(posts(server)) == 4
    estimate = comparison.population
    np.testing.assert_allclose(estimate.estimates[label], [0.75, 0.25], rtol=1e-9)
    yes = comparison.question.options.index("Yes")
    assert estimate.reference[yes] == pytest.approx(17 / 40)
    # Evaluate on the server says the same before its first run, with its own plan: the
    # survey's rows (whole sample and the 2 sex groups, one per question) x 2 option orders
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("chat-yes-no").run()
    assert not at.exception and SENT_TO_SERVER in [i.value for i in at.info]
    assert len(posts(server)) == 4
    rows = len(survey_rows(workspace_surveys.load_saved("chat-yes-no")))
    at.number_input(key="eval_max_requests").set_value(2 * rows - 1).run()
    assert f"{rows} distributions (0 cached): {2 * rows} requests" in captions(at)
    at.button(key="eval_run").click().run()
    assert len(at.error) == 1 and f"would send {2 * rows} requests" in at.error[0].value
    assert len(posts(server)) == 4                       # refused: nothing sent
    # the individual level plans its own run under the same Most requests: held-out
    # respondents share one prompt per profile, so 2 sexes x 2 option orders
    at.multiselect(key="eval_ind_by").set_value(["sex"]).run()
    assert "This run: 2 distributions (0 cached): 4 requests" in captions(at)
    at.number_input(key="eval_max_requests").set_value(3).run()
    at.button(key="eval_ind_run").click().run()
    assert [e.value for e in at.error if "would send 4 requests" in e.value]
    assert len(posts(server)) == 4
    at.number_input(key="eval_max_requests").set_value(4).run()
    at.button(key="eval_ind_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["eval_individual"].n_profiles == 2
    assert len(posts(server)) == 8                       # exactly what the plan said


def test_cost_guard_counts_requests_and_refuses_over_the_limit(server):
    """The plan counts slices x orders x checkpoints before anything is sent; over Most
    requests the run is refused with one message and nothing sent (the limit is for the
    whole run: each checkpoint alone would be under it); at the limit it runs and sends
    exactly what the plan said; then everything is cached."""
    at = chat_app(server.url + "/v1")
    draft(at, "SEX=Female\nSEX=Male")
    at.selectbox(key="sim_orders").set_value(2).run()
    assert "This run: 2 distributions (0 cached): 4 requests" in captions(at)
    at.multiselect(key="sim_checkpoints").set_value(["(base model)", "tiny-lora"]).run()
    assert "This run: 4 distributions (0 cached): 8 requests" in captions(at)
    at.number_input(key="sim_max_requests").set_value(5).run()
    assert "more than Most requests (5): it will be refused" in captions(at)
    at.button(key="sim_run").click().run()
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    assert "would send 8 requests" in at.error[0].value
    assert "nothing was sent" in at.error[0].value
    assert posts(server) == []
    at.number_input(key="sim_max_requests").set_value(8).run()
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(posts(server)) == 8
    assert {b["model"] for b in posts(server)} == {"base-model", "tiny-lora"}
    at.run()                         # the plan above the button is worked out before a click
    assert "This run: 4 distributions (4 cached): nothing to send or run" in captions(at)
