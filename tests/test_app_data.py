"""AppTest of the Data page: upload, mapping, validation messages, saved surveys, marginals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


from sim_core import store

# 10 women (6 agree, weights 1) and 10 men (2 agree): hand-countable shares.
CSV = "gender,agegroup,wt,trust\n" + "".join(
    f"{g},{a},1,{'Agree' if i < k else 'Disagree'}\n"
    for g, k in (("Woman", 6), ("Man", 2)) for i, a in enumerate(["young", "old"] * 5))


@pytest.fixture
def app():
    """The dashboard on its first page (Data)."""
    return AppTest.from_file(APP, default_timeout=60).run()


def test_pages_render_without_loading_a_model(monkeypatch):
    """All five pages and the sidebar render; none loads a model until the user runs something."""
    import sim_core.models

    calls = []
    monkeypatch.setattr(sim_core.models, "load_model", lambda *a, **k: calls.append(a))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert at.header[0].value == "Survey data"
    assert at.sidebar.selectbox(key="side_adapter").options[0] == "(none)"
    assert "Workspace" in at.sidebar.caption[0].value
    for page, title in (("pages/simulate.py", "Simulate & compare"), ("pages/evaluate.py",
                        "Evaluate a checkpoint on a whole survey"), ("pages/fine_tune.py",
                        "Fine-tune an adapter"), ("pages/reports.py", "Reports")):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.header[0].value == title
    assert calls == []


def test_upload_map_save_and_preview(app):
    """Upload a CSV, keep the guessed mapping, save it, and read its real marginals."""
    at = app
    at.file_uploader(key="data_upload").upload("trust-2024.csv", CSV.encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "trust" in at.multiselect(key="data_questions_0").value
    at.multiselect(key="data_demographics_0").set_value(["gender", "agegroup"])
    at.selectbox(key="data_weight_0").set_value("wt")
    at.text_input(key="data_name_0").input("trust survey")
    at.run()
    at.button(key="data_save_0").click().run()
    assert any("Saved as 'trust-survey'" in s.value for s in at.success)
    info = store.read_info("trust-survey")
    assert info["mapping"]["weight"] == "wt"
    assert (store.surveys_dir() / "trust-survey" / info["file"]).read_bytes() == CSV.encode()
    assert json.loads((store.surveys_dir() / "trust-survey" / "mapping.json").read_text())
    at.selectbox(key="data_survey").set_value("trust-survey").run()
    at.multiselect(key="data_preview_by").set_value(["gender"]).run()
    table = _table_with(at, "too small").set_index("slice")
    assert table.loc["gender=Woman", "n"] == 10
    assert table.loc["gender=Woman", "Agree"].startswith("0.600")
    assert table.loc["gender=Man", "Agree"].startswith("0.200")
    assert bool(table.loc["gender=Man", "too small"])  # n_eff 10 < 30
    assert any("Too few respondents" in w.value for w in at.warning)


def test_malformed_csv_gives_a_message(app):
    """A CSV the readers refuse shows st.error with their message, nothing is saved."""
    at = app
    before = store.saved_surveys()
    at.file_uploader(key="data_upload").upload("broken.csv", b"\x00\x01garbage", "text/csv")
    at.run()
    assert not at.exception
    assert at.error and "broken.csv" in at.error[0].value
    assert store.saved_surveys() == before


def test_demo_data_one_click(app):
    """Each demo data set loads into the workspace with one click."""
    at = app
    for label in at.selectbox(key="data_demo").options:
        at.selectbox(key="data_demo").set_value(label).run()
        at.button(key="data_demo_load").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.success
    assert {"anes96", "gss2022_subpop_eval"} <= set(store.saved_surveys())
    # ANES comes with its codebook: question wording and option order from it
    at.selectbox(key="data_survey").set_value("anes96").run()
    questions = _table_with(at, "ordinal").set_index("id")
    assert questions.loc["TVnews", "text"] == "How many times per week do you watch the news on TV?"
    assert questions.loc["TVnews", "options"] == "0 | 1 | 2 | 3 | 4 | 5 | 6 | 7"
    at.selectbox(key="data_survey").set_value("gss2022_subpop_eval").run()
    assert at.multiselect(key="data_preview_by").value  # marginal table: one attribute
    assert not at.error


def _table_with(at, column: str):
    """The first st.dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)
