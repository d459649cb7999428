"""AppTest of the Simulate & compare page with the tiny model."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sim_core.survey import workspace_surveys

APP = str(Path(__file__).resolve().parents[1] / "app.py")

# 20 women: 12 Yes / 8 No; 20 men: 5 Yes / 15 No (hand-countable real shares).
CSV = "sex,age,q1\n" + "".join(
    f"{sex},{age},{ans}\n"
    for sex, yes in (("Female", 12), ("Male", 5))
    for i, age in enumerate(range(20, 40))
    for ans in (["Yes"] if i < yes else ["No"]))


@pytest.fixture
def app(monkeypatch, tiny_model_dir):
    """The dashboard on the Simulate page with the tiny model as default."""
    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    workspace_surveys.save_survey("tiny-yes-no", "tiny.csv", CSV.encode(),
                      {"demographics": ["sex", "age"], "questions": ["q1"]},
                      overwrite=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/simulate.py").run()
    return at


def _plotly_bars(at) -> list[dict]:
    """Plotly traces of the page's first chart."""
    chart = at.get("plotly_chart")[0]
    return json.loads(chart.proto.spec)["data"]


def _values(array) -> np.ndarray:
    """A plotly JSON array: a plain list or plotly's base64 typed array."""
    if isinstance(array, dict):
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        if "shape" in array:       # 2-D arrays (heatmaps) carry "rows, cols"
            return flat.reshape([int(d) for d in str(array["shape"]).split(",")])
        return flat
    return np.asarray(array, dtype=float)


def _score(cell: str) -> float:
    return float(str(cell).replace("★", "").strip())


def test_survey_question_by_sex(app):
    """Real shares are the hand counts, the table shows sim_core.base.metrics of the shares."""
    from sim_core.base.metrics import METRICS, score_all

    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no")
    at.run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.multiselect(key="sim_baselines").set_value(["uniform"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    real = {sc.real.label: sc.real for sc in comparison.slices}
    assert set(real) == {"sex=Female", "sex=Male"}
    yes = comparison.question.options.index("Yes")
    assert real["sex=Female"].shares[yes] == pytest.approx(0.6)
    assert real["sex=Male"].shares[yes] == pytest.approx(0.25)
    table = _table_with(at, f"{METRICS['kl'].name} (lower is better)")   # every score
    for sc in comparison.slices:
        entry, sim = next(iter(sc.simulated.items()))
        expected = score_all(sc.real.shares, sim.shares,
                             ordinal_values=comparison.question.ordinal_values, n=sc.real.n)
        row = table[(table["slice"] == sc.real.label) & (table["entry"] == entry)].iloc[0]
        assert row["n"] == 20
        for key, value in expected.items():
            column = f"{METRICS[key].name} ({METRICS[key].direction} is better)"
            assert _score(row[column]) == pytest.approx(value, abs=6e-5)
    # the star marks the lower KL among model and uniform baseline, per slice
    kl = f"{METRICS['kl'].name} (lower is better)"
    for label in ("sex=Female", "sex=Male"):
        rows = table[(table["slice"] == label) & (table["entry"] != "noise floor")]
        starred = rows[rows[kl].str.endswith("★")]["entry"].tolist()
        assert starred == [rows.loc[rows[kl].map(_score).idxmin(), "entry"]]
    floor = table[table["entry"] == "noise floor"]
    assert set(floor["slice"]) == {"sex=Female", "sex=Male"}
    # real + 1 checkpoint + uniform baseline, 2 slices, 2 options each
    traces = _plotly_bars(at)
    assert sum(len(t["x"]) for t in traces) == 3 * 2 * 2
    assert {t["name"] for t in traces} >= {"real", "baseline: uniform"}
    prompt = at.code[0].value
    assert comparison.question.text in prompt and "A. " in prompt


def test_crossed_slices(app):
    """Two attributes are crossed, numeric age binned; real shares are the hand counts."""
    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex", "age"])
    at.multiselect(key="sim_baselines").set_value(["population"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    yes = comparison.question.options.index("Yes")
    real = {sc.real.label: sc.real.shares[yes] for sc in comparison.slices}
    # women aged 20-31 said Yes, men aged 20-24
    assert real == pytest.approx({"sex=Female, age=18-29": 1.0, "sex=Female, age=30-44": 0.2,
                                  "sex=Male, age=18-29": 0.5, "sex=Male, age=30-44": 0.0})
    traces = _plotly_bars(at)
    population = [t for t in traces if t["name"] == "baseline: population"]
    assert len(population) == 4  # one per slice panel, each the whole-sample share
    for trace in population:
        assert _values(trace["y"])[yes] == pytest.approx(17 / 40)


def _draft(at, text: str, options: str, slices: str) -> None:
    """Type a drafted question, its options (one a line) and its slices (one a line)."""
    at.radio(key="sim_source").set_value("Draft a new question").run()
    at.text_area(key="sim_draft_text").input(text)
    at.text_area(key="sim_draft_options").input(options)
    at.text_area(key="sim_draft_slices").input(slices)
    at.run()


def test_drafted_question_without_real_data(app):
    """A drafted question simulates per typed slice and says there is nothing to compare."""
    at = app
    _draft(at, "Do you like trains?", "Yes\nNo\nUnsure", "SEX=Female\nSEX=Male, AGE=18-29")
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    assert [sc.slice for sc in comparison.slices] == [{"SEX": "Female"},
                                                      {"SEX": "Male", "AGE": "18-29"}]
    assert all(sc.real is None for sc in comparison.slices)
    assert any("nothing to compare" in i.value for i in at.info)
    shares = next(iter(comparison.slices[0].simulated.values())).shares
    assert shares.shape == (3,) and np.isclose(shares.sum(), 1.0)
    # no score table (nothing to score against); the simulated shares as a table
    assert not any(any("is better" in c for c in d.value.columns) for d in at.dataframe)
    table = _table_with(at, "Unsure")
    assert list(table.columns) == ["slice", "entry", "Yes", "No", "Unsure"]
    assert "real" not in {t["name"] for t in _plotly_bars(at)}


def test_bad_slice_text_shows_message(app):
    """A slice line without '=' is a readable error, not a traceback."""
    at = app
    _draft(at, "Q?", "A\nB", "no equals sign here")
    assert not at.exception
    assert "not attribute=value" in at.error[0].value
    assert at.button(key="sim_run").disabled


def _table_with(at, column: str):
    """The first st.dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


@contextmanager
def listed_gpus(monkeypatch, count: int):
    """The sidebar's device list as if the NVIDIA driver listed `count` GPUs (torch, which
    resolve_device asks, still sees this machine's)."""
    from dashboard.sidebar import device_options

    with monkeypatch.context() as patched:
        patched.setattr("dashboard.sidebar.listed_gpu_count", lambda: count)
        device_options.clear()
        try:
            yield
        finally:
            device_options.clear()   # once undone, runs list this machine's devices again


def test_sidebar_device_choice(app, monkeypatch):
    """The sidebar offers auto, cpu and each listed GPU; a simulation runs on the pick."""
    from sim_core.simulation.devices import listed_gpu_count

    home = AppTest.from_file(APP, default_timeout=120).run()
    device = home.sidebar.selectbox(key="side_device")
    assert device.options == ["auto", "cpu"] + [f"cuda:{i}" for i in range(listed_gpu_count())]
    assert device.value == "auto" and "cuda:N" in device.help
    at = app
    at.sidebar.selectbox(key="side_device").set_value("cpu")
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.session_state["sim_comparison"].slices) == 2
    if listed_gpu_count() == 0 and not torch_cuda():
        # a GPU the driver lists but torch cannot use: the pick reaches load_model, and
        # CUDA on a machine without it is one clear message
        with listed_gpus(monkeypatch, 1):
            at.run()
            at.sidebar.selectbox(key="side_device").set_value("cuda:0")
            at.button(key="sim_run").click().run()
        assert not at.exception
        assert any("no CUDA GPU" in e.value for e in at.error)


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_calibrated_checkpoint_shows_verdict_and_interval_bars(app, tiny_model_dir):
    """A base model with a calibration record for this survey: calibrated shares, its
    prediction intervals as error bars, its verdict in words; a drafted question shows the
    same measured held-out accuracy next to its bars."""
    from sim_core.base.reading import folder_fingerprint
    from sim_core.evaluation.calibration_records import (
        CheckpointCalibration,
        record_path,
        save_record,
    )
    from sim_core.evaluation.verdict import CHECKPOINT, CHECKPOINT_CAL, UNIFORM, HeldOut
    from sim_core.simulation.calibration import Calibration

    survey = workspace_surveys.load_saved("tiny-yes-no")
    calibration = Calibration(2.0, 0.5, residuals={"calibrated": [0.2] * 19, "raw": [0.4] * 19})
    held = HeldOut("tv", "3 questions of tiny-yes-no held out of its calibration (6 rows)",
                   "base", ["a", "b", "c"], [2, 2, 2],
                   {UNIFORM: [0.2, 0.3, 0.25], CHECKPOINT: [0.4, 0.4, 0.5],
                    CHECKPOINT_CAL: [0.21, 0.3, 0.26]})
    record = CheckpointCalibration(calibration, held, "record", str(tiny_model_dir),
                                   folder_fingerprint(tiny_model_dir), "tiny-yes-no",
                                   survey.fingerprint, {"how": "question"}, "2030-01-01")
    path = save_record(record)
    try:
        at = app
        at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
        at.multiselect(key="sim_baselines").set_value(["uniform"])
        at.number_input(key="sim_interval_level").set_value(0.8)
        at.button(key="sim_run").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        comparison = at.session_state["sim_comparison"]
        result = next(iter(comparison.slices[0].simulated.values()))
        np.testing.assert_allclose(result.shares, calibration.apply(result.raw_shares))
        verdicts = [i.value for i in at.info if "held out of its calibration" in i.value]
        assert len(verdicts) == 1 and "this model, calibrated, is" in verdicts[0]
        model = next(t for t in _plotly_bars(at) if t["name"] == result_label(comparison))
        low, high = calibration.interval(result.shares, 0.8)
        np.testing.assert_allclose(_values(model["error_y"]["array"]), high - result.shares)
        np.testing.assert_allclose(_values(model["error_y"]["arrayminus"]),
                                   result.shares - low)
        # a drafted question: the model's most recent record gives its held-out accuracy
        at.radio(key="sim_source").set_value("Draft a new question").run()
        at.text_area(key="sim_draft_text").input("Do you like trains?")
        at.text_area(key="sim_draft_options").input("Yes\nNo")
        at.run()
        at.button(key="sim_run").click().run()
        assert not at.exception and not at.error
        assert any("held out of its calibration" in i.value for i in at.info)
        assert any("record for survey 'tiny-yes-no'" in c.value for c in at.caption)
        # switched off: raw shares, the same verdict judged raw
        at.checkbox(key="sim_calibrate").uncheck().run()
        at.button(key="sim_run").click().run()
        drafted = next(iter(at.session_state["sim_comparison"].slices[0].simulated.values()))
        assert not drafted.calibrated and drafted.interval_low is not None
        assert any("this model is" in i.value for i in at.info)
    finally:
        path.unlink()
    assert not record_path(record.model_fingerprint, "tiny-yes-no").exists()


def result_label(comparison) -> str:
    """The label of the comparison's only checkpoint."""
    return comparison.checkpoints[0]["label"]


# 47 crossed slices (6 parties x 8 education levels, one cell empty) like ANES PID x educ:
# in cell (p, e) the first (p + e) % 4 of 4 respondents say Yes.
CROSS_CELLS = [(p, e) for p in range(6) for e in range(8) if (p, e) != (5, 7)]
CROSS_CSV = "pid,educ,q1\n" + "".join(
    f"party{p},educ{e},{'Yes' if i < (p + e) % 4 else 'No'}\n"
    for p, e in CROSS_CELLS for i in range(4))


def test_47_crossed_slices_draw_heatmap_pages_and_scores(app):
    """47 slices (where plotly's facets raised before): a slice x option heatmap of every
    slice, pages of 12 bar panels, and the score table for all 47; no error, no traceback."""
    workspace_surveys.save_survey("cross-47", "cross.csv", CROSS_CSV.encode(),
                      {"demographics": ["pid", "educ"], "questions": ["q1"]}, overwrite=True)
    at = app
    at.run()
    at.selectbox(key="sim_survey").set_value("cross-47").run()
    at.multiselect(key="sim_by").set_value(["pid", "educ"])
    at.multiselect(key="sim_baselines").set_value(["uniform"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not any("chart" in w.value for w in at.warning), [w.value for w in at.warning]
    comparison = at.session_state["sim_comparison"]
    assert len(comparison.slices) == 47
    yes = comparison.question.options.index("Yes")
    # heatmap (the default above 12 slices): the real panel holds the hand counts
    traces = _plotly_bars(at)
    real = next(t for t in traces if t["name"] == "real")
    assert real["type"] == "heatmap" and len(real["y"]) == 47
    z = dict(zip(real["y"], _values(real["z"])))
    for p, e in CROSS_CELLS:
        assert z[f"pid=party{p}, educ=educ{e}"][yes] == pytest.approx((p + e) % 4 / 4)
    # the score table keeps every slice
    table = _table_with(at, "entry")
    assert table["slice"].nunique() == 47
    # bars, last page: slices 37-47, one panel each
    at.radio(key="sim_chart_view").set_value("Bars: a page of slices").run()
    at.selectbox(key="sim_chart_page").set_value(3).run()
    assert not at.exception and not at.error
    bars = [t for t in _plotly_bars(at) if t["name"] == "real"]
    assert len(bars) == 11 and all(t["type"] == "bar" for t in bars)


def test_chart_failure_keeps_the_score_table(app, monkeypatch):
    """A chart that raises becomes one warning; the score table is still drawn."""
    import dashboard.comparison_view

    def broken(*args, **kwargs):
        raise ValueError("plotly refused the layout")

    monkeypatch.setattr(dashboard.comparison_view, "comparison_figure", broken)
    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.button(key="sim_run").click().run()
    assert not at.exception
    assert any("chart could not be drawn" in w.value and "plotly refused" in w.value
               for w in at.warning)
    assert _table_with(at, "entry")["slice"].nunique() == 2


def _main_order(at) -> list[str]:
    """Types (with keys for buttons) of the page's top-level elements, in page order."""
    out = []
    for node in at.main.children.values():
        key = getattr(getattr(node, "proto", None), "id", "") if node.type == "button" else ""
        out.append(f"button:{key.split('-')[-1]}" if node.type == "button" else node.type)
    return out


def test_status_box_right_under_the_button(app):
    """The run's status box is the element right after the Run button, ends complete with
    the time taken; the core counted slices (2 of them), not prompts."""
    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error
    order = _main_order(at)
    button = next(i for i, t in enumerate(order) if t.startswith("button") and "sim_run" in t)
    assert order[button + 1] == "status", order
    box = at.status[0]
    assert box.label.startswith("Simulate and compare: done in ") and box.state == "complete"


def _with_gss_demo(at, name: str):
    """The GSS demo (marginals only) saved as `name` and picked on the page."""
    from sim_core.survey.demo import DEMO_POPULATION, demo_gss_path

    path = demo_gss_path()
    workspace_surveys.save_survey(name, path.name, path.read_bytes(),
                                  {"population": DEMO_POPULATION}, overwrite=True)
    at.run()
    at.selectbox(key="sim_survey").set_value(name).run()
    return at


def test_question_picker_tells_the_gss_nat_battery_apart(app):
    """The GSS demo's nat* questions share a long preamble: the picker shows each item's
    own words first (the preamble after, so a search finds any word of the wording) and
    the full wording under the picker."""
    at = _with_gss_demo(app, "gss-picker")
    picker = at.selectbox(key="sim_question")
    survey = workspace_surveys.load_saved("gss-picker")
    labels = dict(zip(survey.questions, picker.options))
    assert labels["natspac"].startswith("natspac: Space exploration program. · We are faced")
    assert labels["natenvir"].startswith("natenvir: Improving and protecting the environment.")
    picker.set_value("natenvir").run()
    assert survey.questions["natenvir"].text in [c.value for c in at.caption]


def test_failed_request_marks_the_old_result_as_previous(app, monkeypatch):
    """A new request that fails shows its error and says the chart below is the previous
    result; a successful run removes the note."""
    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error
    assert not any("previous result" in w.value for w in at.warning)
    with listed_gpus(monkeypatch, 100):
        at.run()
        at.sidebar.selectbox(key="side_device").set_value("cuda:99")   # no such GPU
        at.button(key="sim_run").click().run()
    assert not at.exception and at.error                                # one clear error
    assert any("previous result" in w.value for w in at.warning)
    at.sidebar.selectbox(key="side_device").set_value("cpu")
    at.button(key="sim_run").click().run()
    assert not at.error and not any("previous result" in w.value for w in at.warning)


def test_compact_scores_and_shares_table(app):
    """Up front: slice, entry, n and the headline score only (TV for a yes/no question);
    every score behind an expander; the shares behind the chart as a table in per cent."""
    from sim_core.base.metrics import METRICS

    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.multiselect(key="sim_baselines").set_value(["uniform"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    compact = at.dataframe[[d.value.columns[-1] for d in at.dataframe].index(
        f"{METRICS['tv'].name} (lower is better)")].value
    assert list(compact.columns) == ["slice", "entry", "n",
                                     f"{METRICS['tv'].name} (lower is better)"]
    assert set(compact["n"]) == {20}
    comparison = at.session_state["sim_comparison"]
    shares = _table_with(at, "Yes")
    female = shares[(shares["slice"] == "sex=Female") & (shares["entry"] == "real")].iloc[0]
    assert female["Yes"].startswith("60.0 (") and female["No"].startswith("40.0 (")
    model = next(iter(comparison.slices[0].simulated))
    row = shares[(shares["slice"] == comparison.slices[0].label)
                 & (shares["entry"] == model)].iloc[0]
    yes = comparison.question.options.index("Yes")
    assert float(row["Yes"]) == pytest.approx(
        comparison.slices[0].simulated[model].shares[yes] * 100, abs=0.05)
    assert list(shares.columns) == ["slice", "entry", *comparison.question.options]


def test_marginal_table_offers_only_baselines_that_apply(app):
    """GSS marginals (shares only, no respondents): the classifier, boosting and SVR
    baselines are not offered (and said why); no n column and no noise floor promised."""
    at = _with_gss_demo(app, "gss-marginals")
    assert at.multiselect(key="sim_baselines").options == ["Uniform guess", "Population average"]
    assert any("no respondents to train on" in c.value for c in at.caption)
    at.multiselect(key="sim_by").set_value([at.multiselect(key="sim_by").options[0]]).run()
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = _table_with(at, "entry")
    assert "n" not in table.columns and "None" not in table.to_string()
    assert "noise floor" not in set(table["entry"])
    assert any("No noise floor" in c.value for c in at.caption)


def test_why_the_simulate_button_is_greyed_out(app):
    """No checkpoint picked: the button is disabled and the page says why."""
    at = app
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_checkpoints").set_value([]).run()
    assert at.button(key="sim_run").disabled
    assert any("at least one checkpoint" in c.value for c in at.caption)


def test_long_question_heading_is_cut_and_shown_whole_below(app):
    """A 300-character drafted question: a short heading, the whole wording in a caption."""
    at = app
    at.radio(key="sim_source").set_value("Draft a new question").run()
    text = "Thinking about " + "the many different public services in your area, " * 6 + "?"
    at.text_area(key="sim_draft_text").set_value(text)
    at.text_area(key="sim_draft_options").set_value("Yes\nNo").run()
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    heading = at.subheader[-1].value
    assert heading.endswith("…") and len(heading) <= 112
    assert text.strip() in [c.value for c in at.caption]


def test_form_choices_survive_a_visit_to_another_page(app):
    """Streamlit forgets the widgets a page does not draw, except those declared with
    persist_state="session": the form's choices (radios, a drafted question's text) are back
    after a visit to Reports; a button's click is not."""
    at = app
    at.radio(key="sim_source").set_value("Draft a new question").run()
    at.text_area(key="sim_draft_text").input("Do you like trains?")
    at.radio(key="sim_mode").set_value("sample").run()
    at.switch_page("pages/reports.py").run()
    assert [h.value for h in at.header] == ["Reports"]
    at.switch_page("pages/simulate.py").run()
    assert not at.exception
    assert at.radio(key="sim_source").value == "Draft a new question"
    assert at.text_area(key="sim_draft_text").value == "Do you like trains?"
    assert at.radio(key="sim_mode").value == "sample"
    assert at.button(key="sim_run").value is False


# ---------------------------------------------------------------- population view (issue 25)

def _run_by_sex(at):
    """tiny-yes-no by sex with the uniform baseline; the comparison."""
    at.selectbox(key="sim_survey").set_value("tiny-yes-no").run()
    at.multiselect(key="sim_by").set_value(["sex"])
    at.multiselect(key="sim_baselines").set_value(["uniform"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at.session_state["sim_comparison"]


def _population_tab(at) -> None:
    """Open the result's Population tab (AppTest clicks no tab: its state is set)."""
    at.session_state["sim_view"] = "Population"
    at.run()


def _cells(comparison) -> dict[str, np.ndarray]:
    """slice label -> the checkpoint's simulated shares."""
    return {sc.label: next(iter(sc.simulated.values())).shares for sc in comparison.slices}


def _pop_traces(at) -> dict[str, dict]:
    """entry -> trace of the population chart (the last chart on the page)."""
    return {t["name"]: t for t in json.loads(at.get("plotly_chart")[-1].proto.spec)["data"]}


def test_population_view_composes_the_simulated_slices(app):
    """The survey's own composition (20 women, 20 men: 1/2 each): the checkpoint's bar is
    1/2 q_women + 1/2 q_men; the real topline (17 of 40 say Yes) with its 95 % interval; a
    subgroup is its own cell; the estimate joins the history."""
    from sim_core.report import history

    at = app
    comparison = _run_by_sex(at)
    cells = _cells(comparison)
    assert "sim_pop_run" not in [b.key for b in at.button]      # the Slices tab is open
    _population_tab(at)
    options = list(comparison.question.options)
    yes = options.index("Yes")
    assert not at.button(key="sim_pop_run").disabled
    at.button(key="sim_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    estimate = at.session_state["sim_comparison"].population
    label = result_label(comparison)
    expected = 0.5 * cells["sex=Female"] + 0.5 * cells["sex=Male"]
    traces = _pop_traces(at)
    np.testing.assert_allclose(_values(traces[label]["y"]), expected, rtol=1e-12)
    np.testing.assert_allclose(estimate.estimates[label], expected, rtol=1e-12)
    real = _values(traces["real"]["y"])
    assert real[yes] == pytest.approx(17 / 40)
    np.testing.assert_allclose(_values(traces["real"]["error_y"]["array"]),
                               estimate.real.ci_high - real)
    assert estimate.real.ci_low[yes] < 17 / 40 < estimate.real.ci_high[yes]
    np.testing.assert_allclose(_values(traces["baseline: uniform"]["y"]), [0.5, 0.5])
    assert estimate.composition.labels == ["sex=Female", "sex=Male"]
    np.testing.assert_allclose(estimate.composition.shares, [0.5, 0.5])
    cells_table = _table_with(at, "cell")
    assert list(cells_table["cell"]) == ["sex=Female", "sex=Male"]
    assert "population estimate (All)" in history.list_results()[0].title
    # the women only: their own cell, beside their real answer (12 of 20)
    at.selectbox(key="sim_pop_subgroup").set_value("sex=Female").run()
    at.button(key="sim_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    traces = _pop_traces(at)
    np.testing.assert_allclose(_values(traces[label]["y"]), cells["sex=Female"], rtol=1e-12)
    assert _values(traces["real"]["y"])[yes] == pytest.approx(0.6)


def test_population_margins_edited_checked_and_saved(app):
    """Edited shares are checked (a negative share: one message, no estimate), then raked
    into the cells (0.7 women: the bar is 0.7 q_women + 0.3 q_men); saving them never
    replaces a saved population unasked."""
    from sim_core.survey.margins import load_saved_margins, saved_margins

    at = app
    comparison = _run_by_sex(at)
    cells = _cells(comparison)
    _population_tab(at)
    table = next(d.value for d in at.data_editor)
    assert list(table["group"]) == ["Female", "Male"]
    np.testing.assert_allclose(table["share"], [0.5, 0.5])
    at.session_state["sim_pop_editor"] = {"edited_rows": {0: {"share": -0.1}},
                                          "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "row 1: share -0.1 is negative (sex=Female); shares are 0 to 1."]
    assert "sim_pop_run" not in [b.key for b in at.button]
    at.session_state["sim_pop_editor"] = {"edited_rows": {0: {"share": 0.7}, 1: {"share": 0.3}},
                                          "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="sim_pop_rake_from").value is None      # default: the survey's
    at.button(key="sim_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    estimate = at.session_state["sim_comparison"].population
    np.testing.assert_allclose(estimate.composition.shares, [0.7, 0.3], atol=1e-9)
    assert "raked" in estimate.composition.source
    np.testing.assert_allclose(_values(_pop_traces(at)[result_label(comparison)]["y"]),
                               0.7 * cells["sex=Female"] + 0.3 * cells["sex=Male"],
                               atol=1e-9)
    # save: a new name is saved; the same name again is refused unless replacing is asked
    name = "adults-70-30"
    at.text_input(key="sim_pop_save_name").set_value(name).run()
    at.button(key="sim_pop_save").click().run()
    assert not at.error and name in saved_margins()
    assert load_saved_margins(name).shares["sex"] == pytest.approx({"Female": 0.7,
                                                                     "Male": 0.3})
    at.button(key="sim_pop_save").click().run()
    assert len(at.error) == 1 and "exists already" in at.error[0].value
    at.checkbox(key="sim_pop_save_replace").check()
    at.button(key="sim_pop_save").click().run()
    assert not at.error


def test_drafted_question_with_a_margins_file(app):
    """A drafted question has no survey: its population comes from margins (a file here);
    the typed slices are its cells, so nothing new is simulated, and there is no real
    answer beside the estimate."""
    at = app
    _draft(at, "Do you like trains?", "Yes\nNo\nUnsure", "SEX=Female\nSEX=Male")
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    cells = _cells(comparison)
    _population_tab(at)
    source = at.radio(key="sim_pop_source_drafted")
    assert source.options == ["A saved population",
                              "Margins from a file (CSV: attribute, group, share)"]
    source.set_value("upload").run()
    margins = b"attribute,group,share\nSEX,Female,0.6\nSEX,Male,0.4\n"
    at.file_uploader(key="sim_pop_upload").set_value(("adults.csv", margins, "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not any("not among the slices simulated" in c.value for c in at.caption)
    at.button(key="sim_pop_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    estimate = at.session_state["sim_comparison"].population
    assert estimate.reference is None and not estimate.scores
    traces = _pop_traces(at)
    assert "real" not in traces
    np.testing.assert_allclose(_values(traces[result_label(comparison)]["y"]),
                               0.6 * cells["SEX=Female"] + 0.4 * cells["SEX=Male"],
                               rtol=1e-9)
    assert "independence" in estimate.composition.source


# ---------------------------------------------------------------- any variable slices (issue 26)

# sex, a question used to slice (transit), the question asked (q1: 4 "Don't know") and
# another question (q3: 5 "Refused", read as an agree/disagree scale): notes about q1 are
# shown, those about q3 only counted.
NOTES_CSV = "sex,transit,q1,q3\n" + "".join(
    f"{'Female' if i < 20 else 'Male'},{'Daily' if i % 2 else 'Never'},"
    f"{'Don' + chr(39) + 't know' if i % 10 == 0 else ('Yes' if i % 3 else 'No')},"
    f"{'Refused' if i % 8 == 0 else ('Agree' if i % 4 else 'Disagree')}\n" for i in range(40))
NOTES_BOOK = """column,question_text,options,ordinal,missing,role
sex,Sex of respondent,,,,demographic
transit,How often do you use public transport?,Daily|Never,,,question
q1,Should the city build more bike lanes?,,,,question
q3,Do you agree that buses should be free?,,,,question
"""


def test_a_question_slices_another_and_notes_in_use(app):
    """The attribute picker lists the survey's other questions with their wording; sliced by
    one, the persona is its wording and the real shares are counted by its answers; the
    notes about the columns in use are one box each, the others one counted line."""
    workspace_surveys.save_survey("notes-survey", "notes.csv", NOTES_CSV.encode(),
                                  codebook=("book.csv", NOTES_BOOK.encode()), overwrite=True)
    at = app
    at.run()
    at.selectbox(key="sim_survey").set_value("notes-survey").run()
    at.selectbox(key="sim_question").set_value("q1").run()
    picker = at.multiselect(key="sim_by")
    assert picker.options == ["sex", "transit: How often do you use public transport?",
                              "q3: Do you agree that buses should be free?"]
    warnings = [w.value for w in at.warning]
    assert warnings == ["q1: 'Don't know' (4) counted as nonresponse, not as options (keep "
                        "them with keep_nonresponse / --keep-nonresponse)."]
    assert "2 notes about other columns: see the table of notes on the Data page" in \
        [c.value for c in at.caption]
    picker.set_value(["transit"])
    at.multiselect(key="sim_baselines").set_value(["uniform"])
    at.button(key="sim_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    comparison = at.session_state["sim_comparison"]
    assert [sc.label for sc in comparison.slices] == ["transit=Daily", "transit=Never"]
    # by hand: of the odd rows (Daily) without "Don't know", those i % 3 != 0 say Yes
    for answer, odd in (("Daily", 1), ("Never", 0)):
        valid = [i for i in range(40) if i % 2 == odd and i % 10 != 0]
        yes = sum(1 for i in valid if i % 3) / len(valid)
        real = next(sc.real for sc in comparison.slices if sc.slice == {"transit": answer})
        assert real.shares[comparison.question.options.index("Yes")] == pytest.approx(yes)
    assert 'Asked "How often do you use public transport?", you answered: Daily.' in \
        at.code[0].value
    # the question asked cannot slice itself: not offered
    assert "q1" not in [o.split(":")[0] for o in at.multiselect(key="sim_by").options]
