"""AppTest of the Reports page: build from the last comparison, download PDF / CSV / JSON."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")



@pytest.fixture
def comparison(tiny_model_dir):
    """A real comparison of a drafted question on the tiny model."""
    from sim_core.evaluation.compare import compare
    from sim_core.simulation.models import load_model
    from sim_core.survey.schema import Question

    question = Question("draft", "Trains or buses?", ("Trains", "Buses"))
    return compare([load_model(str(tiny_model_dir))], question, slices=[{"SEX": "Female"}])


def test_nothing_to_report_yet(monkeypatch, tmp_path):
    """Without a comparison or evaluation (none saved either) the page says what to do."""
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/reports.py").run()
    assert not at.exception
    assert "Nothing to report yet" in at.info[0].value


def test_report_from_comparison(comparison):
    """The PDF has the title and the question; CSV and JSON carry the simulated shares."""
    from pypdf import PdfReader

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.session_state["sim_history"] = [comparison]
    at.switch_page("pages/reports.py").run()
    at.text_input(key="rep_title").input("Transport check").run()
    at.button(key="rep_build").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    files = at.session_state["rep_files"]
    assert files["pdf"].startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(files["pdf"])).pages)
    assert "Transport check" in text and "Trains or buses?" in text
    model_name, simulated = next(iter(comparison.slices[0].simulated.items()))
    table = pd.read_csv(io.StringIO(files["csv"]))
    shares = table[(table["table"] == "shares") & (table["entry"] == model_name)]
    assert list(shares["option"]) == ["Trains", "Buses"]
    assert list(shares["share"]) == pytest.approx(list(simulated.shares), abs=1e-6)
    assert "Trains or buses?" in files["json"]
    assert {b.key for b in at.download_button} == {"rep_pdf", "rep_csv", "rep_json"}


def test_report_from_individual_level_run(tiny_model_dir):
    """An individual-level run becomes a report: its section in the PDF, its summary in the
    CSV (same numbers as the core's)."""
    from pypdf import PdfReader

    from sim_core.evaluation.individual import IndividualConfig, evaluate_individuals
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.survey.demo import load_demo

    result = evaluate_individuals(
        [load_model(str(tiny_model_dir))], load_demo("anes96"), ["PID"], questions=["selfLR"],
        config=IndividualConfig(max_respondents=15, temperatures=(0.5, 1.0)),
        sim=SimConfig(orders=1), baselines=("population", "svr"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.session_state["eval_individual"] = result
    at.switch_page("pages/reports.py").run()
    at.radio(key="rep_source").set_value("Last individual-level run").run()
    at.button(key="rep_build").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    files = at.session_state["rep_files"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(files["pdf"])).pages)
    assert "Individual level: held-out respondents" in text and "Temperature sweep" in text
    table = pd.read_csv(io.StringIO(files["csv"]))
    rows = table[(table["table"] == "individual") & (table["score"] == "rmse")]
    summary = result.summary()
    assert list(rows["entry"]) == list(summary["entry"])
    assert list(rows["value"]) == pytest.approx(list(summary["rmse"]))


def test_results_survive_a_refresh(monkeypatch, tmp_path, tiny_model_dir):
    """A comparison run on Simulate is saved as it finishes; a new browser session (what a
    refresh is) finds it on Reports, builds the report from it, renames and deletes it."""
    from test_app_simulate import CSV

    from sim_core.report import history
    from sim_core.survey import workspace_surveys

    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    workspace_surveys.save_survey("tiny-yes-no", "tiny.csv", CSV.encode(),
                      {"demographics": ["sex", "age"], "questions": ["q1"]})
    first = AppTest.from_file(APP, default_timeout=120).run()
    first.switch_page("pages/simulate.py").run()
    first.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    first.multiselect(key="sim_by").set_value(["sex"])
    first.button(key="sim_run").click().run()
    assert not first.exception and not first.error, [e.value for e in first.error]
    comparison = first.session_state["sim_comparison"]
    (saved,) = history.list_results()
    assert saved.kind == "comparison" and saved.title == comparison.question.text

    at = AppTest.from_file(APP, default_timeout=60).run()       # a fresh session
    at.switch_page("pages/reports.py").run()
    assert at.radio(key="rep_source").options == ["Saved results (workspace history)"]
    assert at.multiselect(key="rep_saved").value == [saved.id]
    at.button(key="rep_build").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    files = at.session_state["rep_files"]
    table = pd.read_csv(io.StringIO(files["csv"]))
    real = table[(table["table"] == "shares") & (table["entry"] == "real")]
    female = real[real["slice"] == "sex=Female"].set_index("option")["share"]
    assert female["Yes"] == pytest.approx(0.6)        # 12 of 20 women, as compared
    at.text_input(key="rep_saved_title").input("Yes/no by sex").run()
    at.button(key="rep_saved_rename").click().run()
    assert [r.title for r in history.list_results()] == ["Yes/no by sex"]
    assert at.button(key="rep_saved_delete").disabled          # asks first
    at.checkbox(key="rep_saved_sure").check().run()
    at.button(key="rep_saved_delete").click().run()
    assert history.list_results() == [] and not at.exception
