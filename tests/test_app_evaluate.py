"""AppTest of the Evaluate page: a tiny survey, the tiny model, heatmap and summary shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


from pages import store

# Two waves, two questions, sex as the only demographic.
CSV = "sex,year,q1,q2\n" + "".join(
    f"{sex},{year},{'Yes' if i % 3 else 'No'},{'Agree' if (i + len(sex)) % 2 else 'Disagree'}\n"
    for year in (2020, 2022) for sex in ("Female", "Male") for i in range(12))


def test_evaluate_two_waves(monkeypatch, tiny_model_dir):
    """The page shows the core's summary and heatmap, and one point per wave over time."""
    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    store.save_survey("tiny-waves", "waves.csv", CSV.encode(),
                      {"demographics": ["sex"], "questions": ["q1", "q2"], "wave": "year"})
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("tiny-waves").run()
    at.multiselect(key="eval_waves").set_value(["2020", "2022"])
    at.number_input(key="eval_limit").set_value(2)
    at.number_input(key="eval_orders").set_value(1)
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    results = at.session_state["eval_results"]
    assert list(results) == ["2020", "2022"]
    evaluation = results["2022"]
    shown = at.dataframe[0].value
    assert shown.round(6).equals(evaluation.summary().round(6))
    heat = at.get("plotly_chart")
    assert len(heat) == 2  # heatmap + waves line chart
    entry = at.selectbox(key="eval_entry").value
    score = at.selectbox(key="eval_score").value
    table = evaluation.heatmap(entry, score)
    assert table.shape == (2, 2)  # 2 questions x 2 slices (sex=Female, sex=Male)
    worst = at.dataframe[1].value
    assert len(worst) == min(5, len(evaluation.worst_slices(entry, score, n=5)))
