"""AppTest of the Evaluate page: a tiny survey, the tiny model, heatmap and summary shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sim_core.base.metrics import METRICS
from sim_core.survey import workspace_surveys

APP = str(Path(__file__).resolve().parents[1] / "app.py")

# Two waves, two nominal questions (no known scale: TV scores), sex as the only demographic.
CSV = "sex,year,q1,q2\n" + "".join(
    f"{sex},{year},{'Yes' if i % 3 else 'No'},{'Left' if (i + len(sex)) % 2 else 'Right'}\n"
    for year in (2020, 2022) for sex in ("Female", "Male") for i in range(12))


def test_evaluate_two_waves(monkeypatch, tiny_model_dir):
    """The page shows the core's summary and heatmap, and one point per wave over time."""
    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    workspace_surveys.save_survey("tiny-waves", "waves.csv", CSV.encode(),
                      {"demographics": ["sex"], "questions": ["q1", "q2"], "wave": "year"},
                      overwrite=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("tiny-waves").run()
    at.multiselect(key="eval_waves").set_value(["2020", "2022"])
    at.number_input(key="eval_limit").set_value(2)
    at.selectbox(key="eval_orders").set_value(1)
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    box = at.status[0]                 # the status box under the button, finished
    assert box.label.startswith("Evaluate: done in ") and box.state == "complete"
    results = at.session_state["eval_results"]
    assert list(results) == ["2020", "2022"]
    # each wave's evaluation is saved to the workspace history as it finishes
    from sim_core.report import history

    titles = [r.title for r in history.list_results() if r.kind == "evaluation"]
    assert {"Evaluation of tiny-waves, wave 2020", "Evaluation of tiny-waves, wave 2022"} \
        <= set(titles)
    saved = next(r for r in history.list_results()
                 if r.title == "Evaluation of tiny-waves, wave 2022")
    summary = history.load_result(saved.id).evaluation.summary
    assert summary.columns[0] == "entry" and "baseline: uniform" in [r[0] for r in summary.rows]
    evaluation = results["2022"]
    shown = at.dataframe[0].value
    summary = evaluation.summary()
    # the summary's score columns carry the score table's names, never code names
    names = {k: f"{METRICS[k].name} ({METRICS[k].direction} is better)"
             for k in METRICS if k in summary.columns}
    assert names and not set(names) & set(shown.columns)
    assert shown[summary.rename(columns=names).columns].round(6).equals(
        summary.rename(columns=names).round(6))
    # the worst-fitting entry, by the core's own rows: mean over the 2 x 2 (question, slice) rows
    rows = evaluation.rows[evaluation.rows["entry"] == "baseline: uniform"]
    assert shown.loc["baseline: uniform", names["kl"]] == pytest.approx(rows["kl"].mean())
    assert shown.loc["baseline: uniform", "rows"] == 4
    heat = at.get("plotly_chart")
    assert len(heat) == 3  # heatmap + fairness view + waves line chart
    entry = at.selectbox(key="eval_entry").value
    score = at.selectbox(key="eval_score").value
    table = evaluation.heatmap(entry, score)
    assert table.shape == (2, 2)  # 2 questions x 2 slices (sex=Female, sex=Male)
    worst = next(d.value for d in at.dataframe if "question_id" in d.value.columns)
    assert len(worst) == min(5, len(evaluation.worst_slices(entry, score, n=5)))
    survey = workspace_surveys.load_saved("tiny-waves")
    texts = {qid: q.text for qid, q in survey.questions.items()}
    assert list(worst["question"]) == [texts[q] for q in worst["question_id"]]
    assert names[score] in worst.columns
    # the heatmap labels both questions and carries their wording on hover
    spec = json.loads(heat[0].proto.spec)["data"][0]
    assert spec["type"] == "heatmap" and list(spec["y"]) == list(table.index)
    assert [row[0] for row in spec["customdata"]] == [texts[q] for q in table.index]
    # the verdicts: none measured for the bare tiny model; the one on these rows in words
    (label,) = evaluation.entry_orders
    assert f"{label}: no held-out measurement" in at.info[0].value
    here = evaluation.verdict_here(label)
    assert here.startswith(f"{label}: On 2 questions of tiny-waves (4 rows) it is ")
    assert "TV" in here and here in [m.value for m in at.markdown]


def test_two_checkpoints_side_by_side(monkeypatch, tiny_model_dir):
    """Base model and a random LoRA: the per-question table is the core's rows, and the
    difference column is second minus first."""
    from factories import save_random_adapter

    from sim_core.simulation.models import load_model

    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    lm = load_model(str(tiny_model_dir))
    save_random_adapter(tiny_model_dir, "eval-random", {"base_model": str(tiny_model_dir),
                                                        "base_fingerprint": lm.fingerprint,
                                                        "questions_seen": ["q2", "q9"]},
                        dtype="auto")
    workspace_surveys.save_survey("tiny-two", "two.csv", CSV.encode(),
                      {"demographics": ["sex"], "questions": ["q1", "q2"], "wave": "year"},
                      overwrite=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("tiny-two").run()
    at.multiselect(key="eval_checkpoints").set_value(["(base model)", "eval-random"])
    at.number_input(key="eval_limit").set_value(2)     # kept from an earlier survey otherwise
    at.selectbox(key="eval_orders").set_value(1).run()
    # the card says it was trained on q2: the page says so before anyone reads the scores
    assert [w.value for w in at.warning if "eval-random" in w.value] == [
        "Adapter 'eval-random' was trained on 1 of these 2 questions (q2): its scores there "
        "are not a held-out test. `python -m finetune eval --adapter eval-random` scores only "
        "the rows it never saw."]
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    evaluation = at.session_state["eval_evaluation"]
    first, second = at.selectbox(key="eval_cmp_a").value, at.selectbox(key="eval_cmp_b").value
    assert {first, second} == set(evaluation.entries[:2]) and "eval-random" in second
    table = next(d.value for d in at.dataframe if "difference" in d.value.columns)
    score = at.selectbox(key="eval_score").value
    for qid in ("q1", "q2"):
        rows = evaluation.rows[evaluation.rows["question_id"] == qid]
        a = rows[rows["entry"] == first][score].mean()
        b = rows[rows["entry"] == second][score].mean()
        assert table.loc[qid, first] == pytest.approx(a)
        wording = workspace_surveys.load_saved("tiny-two").questions[qid].text
        assert table.loc[qid, "question"] == wording
        assert table.loc[qid, "difference"] == pytest.approx(b - a)
    assert abs(table["difference"]).max() > 0  # the random adapter changes the answers


def test_fairness_view_and_individual_level(monkeypatch, tiny_model_dir):
    """Fairness view: the core's gaps per group; individual level on held-out respondents:
    the core's summary and a trade-off curve, and the chosen temperature saved in a card."""
    from factories import save_random_adapter

    from sim_core.evaluation.fairness import group_gaps
    from sim_core.evaluation.individual import IndividualConfig
    from sim_core.simulation.adapter_card import read_card
    from sim_core.simulation.models import load_model
    from sim_core.survey.demo import demo_anes_paths

    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    lm = load_model(str(tiny_model_dir))
    folder, _ = save_random_adapter(tiny_model_dir, "ind-random", dtype="auto")
    data, book = demo_anes_paths()
    workspace_surveys.save_survey("anes-app", "anes96.csv", data.read_bytes(),
                      codebook=("codebook.csv", book.read_bytes()))
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("anes-app").run()
    at.multiselect(key="eval_by").set_value(["PID"])
    at.number_input(key="eval_limit").set_value(2)
    at.multiselect(key="eval_checkpoints").set_value(["(base model)", "ind-random"])
    at.selectbox(key="eval_orders").set_value(1).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    evaluation = at.session_state["eval_evaluation"]
    score = at.selectbox(key="eval_score").value
    entry = at.selectbox(key="eval_fair_entry").value
    table = next(d.value for d in at.dataframe if "beyond_noise" in d.value.columns)
    expected = group_gaps(evaluation, entry, score).table
    assert list(table["group"]) == list(expected["group"])
    assert table["gap"].to_numpy() == pytest.approx(expected["gap"].to_numpy())
    assert len(table) == 7            # the seven PID groups
    # individual level: few respondents, three temperatures
    at.multiselect(key="eval_ind_by").set_value(["PID", "age"])
    at.number_input(key="eval_ind_max_respondents").set_value(20)
    at.text_input(key="eval_ind_temps").set_value("0.5,1,2").run()
    at.button(key="eval_ind_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = at.session_state["eval_individual"]
    assert result.config == IndividualConfig(max_respondents=20, temperatures=(0.5, 1, 2))
    shown = next(d.value for d in at.dataframe if "log_loss" in d.value.columns)
    summary = result.summary()
    assert list(shown["entry"]) == list(summary["entry"])
    assert shown["kl"].to_numpy() == pytest.approx(summary["kl"].to_numpy(), nan_ok=True)
    assert any(c.proto.spec and "T=0.5" in c.proto.spec for c in at.get("plotly_chart"))
    label = f"{lm.label} + ind-random"
    at.button(key=f"eval_ind_save_{label}").click().run()
    sweep = read_card(folder).temperature_sweep
    assert sweep["chosen"] == result.sweeps[label].chosen and sweep["chosen_on"] == "val"


def test_population_level_beside_group_level(monkeypatch, tiny_model_dir):
    """The population level over the wave's questions: each question's estimate (1/2 each
    sex: 12 women, 12 men answered) scored against the topline counted by hand, beside the
    group level; the table is the core's summary, the chart has both levels."""
    import numpy as np

    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    workspace_surveys.save_survey("tiny-pop", "waves.csv", CSV.encode(),
                                  {"demographics": ["sex"], "questions": ["q1", "q2"],
                                   "wave": "year"}, overwrite=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_survey").set_value("tiny-pop").run()
    at.multiselect(key="eval_waves").set_value(["2022"])
    at.number_input(key="eval_limit").set_value(2)
    at.selectbox(key="eval_orders").set_value(1).run()
    assert any("Choose the slice attributes above" in i.value for i in at.info)
    at.multiselect(key="eval_by").set_value(["sex"]).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    evaluation = at.session_state["eval_evaluation"]
    (label,) = evaluation.entry_orders
    cells = {(r.question.id, r.slice["sex"]): d
             for r, d in zip(evaluation.survey_rows, evaluation.dists[label])}
    at.button(key="eval_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = at.session_state["eval_population"]
    survey = workspace_surveys.load_saved("tiny-pop")
    rows = result.rows[(result.rows["entry"] == label) & (result.rows["level"] == "population")]
    for qid, first, share in (("q1", "Yes", 8 / 12), ("q2", None, None)):
        options = list(survey.questions[qid].options)
        if qid == "q1":
            topline = np.array([share if o == first else 1 - share for o in options])
        else:        # Left when (i + len(sex)) is odd: 6 of 12 for each sex
            topline = np.array([0.5, 0.5])
        estimate = 0.5 * cells[(qid, "Female")] + 0.5 * cells[(qid, "Male")]
        tv = 0.5 * np.abs(topline - estimate).sum()
        assert rows.loc[rows["question_id"] == qid, "tv"].item() == pytest.approx(tv)
    shown = next(d.value for d in at.dataframe if "groups" in d.value.columns)
    summary = result.summary()
    np.testing.assert_allclose(shown.loc[label, ["population", "groups"]].astype(float),
                               summary.loc[label, ["population", "groups"]].astype(float))
    assert shown.loc[label, "questions"] == 2
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert {a["text"] for a in spec["layout"]["annotations"]} == {
        "population (estimate vs topline)", "groups (each cell vs its real group)"}
