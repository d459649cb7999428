"""Simulate & compare: a question (from a survey or drafted), slices, checkpoints, mode ->
compare(); with a server backend what leaves the machine and what the run will send first;
the result's slices and the population they compose."""

from __future__ import annotations

import streamlit as st

from dashboard.comparison_view import show_comparison_header, show_slices
from dashboard.cost_guard import (
    no_served_model,
    on_server,
    privacy_note,
    requests_limit,
    show_plan,
)
from dashboard.display import show_error, show_survey_notes
from dashboard.loaders import load_checkpoints
from dashboard.navigation import run_page
from dashboard.population_view import population_section
from dashboard.results import keep_result, previous_result_note
from dashboard.status import status_box
from dashboard.widgets import (
    attribute_picker,
    checkpoint_picker,
    orders_widget,
    setting_widget,
    survey_picker,
)
from sim_core.base.errors import SimError
from sim_core.base.labels import question_choice_labels
from sim_core.evaluation.baselines import BASELINES, unavailable_baselines
from sim_core.evaluation.compare import compare, plan_compare
from sim_core.report.document import report_from_comparisons
from sim_core.simulation.config import SimConfig
from sim_core.survey.attributes import with_slice_attributes
from sim_core.survey.marginal import parse_slices
from sim_core.survey.schema import Question


def draft_question():
    """The drafted question and slices from the form, or (None, None) with a message."""
    text = st.text_area("Question wording", key="sim_draft_text", persist_state="session",
                        placeholder="Should the government spend more on public transport?")
    lines = st.text_area("Options, in order, one per line", key="sim_draft_options",
                         placeholder="Much more\nSomewhat more\nThe same\nLess",
                         persist_state="session")
    ordinal = st.checkbox("Ordinal (options are in a meaningful order)", value=True,
                          key="sim_draft_ordinal", persist_state="session")
    slice_text = st.text_area("Slices, one per line as attribute=value (comma for crossed); "
                              "an empty line or 'All' is the whole population",
                              key="sim_draft_slices", persist_state="session", value="All",
                              placeholder="SEX=Female\nSEX=Male, AGE=18-29")
    options = tuple(o.strip() for o in lines.splitlines() if o.strip())
    if not text.strip() or len(options) < 2:
        st.info("Type the wording and at least two options.")
        return None, None
    try:
        slices = parse_slices(slice_text)
    except SimError as error:
        show_error(error)
        return None, None
    values = tuple(float(i) for i in range(len(options))) if ordinal else None
    return Question(id="draft", text=text.strip(), options=options, ordinal_values=values), slices


def survey_question():
    """(survey, question, wave, by) picked from a stored survey, or Nones. Any categorical
    variable can slice (sim_core.survey.attributes.slice_attribute_choices)."""
    _, survey = survey_picker("sim")
    if survey is None:
        return None, None, None, []
    ids = list(survey.questions)
    labels = question_choice_labels({i: q.text for i, q in survey.questions.items()})
    qid = st.selectbox("Question (type to search its wording)", ids, key="sim_question",
                       format_func=labels.get, persist_state="session")
    st.caption(survey.questions[qid].text)
    waves = survey.waves()
    wave = st.selectbox("Wave", waves, key="sim_wave", persist_state="session") \
        if len(waves) > 1 else None
    by = attribute_picker(survey, qid, "Slice by (several are crossed; a question of the "
                          "survey can be one)", key="sim_by", persist_state="session",
                          max_selections=3)
    return survey, survey.questions[qid], wave, by


def run_survey(survey, question, by):
    """The survey of this run, with the questions sliced by turned into attributes
    (with_slice_attributes), and the notes about the columns in use; the question is None
    (with the message) when it cannot run so."""
    try:
        survey, by = with_slice_attributes(survey, by, [question.id])
    except SimError as error:
        show_error(error)
        return survey, by, None
    show_survey_notes(survey, [question.id], by)
    return survey, by, question


def settings(survey, question):
    """Checkpoints and SimConfig from the widgets (SimConfig's own fields); only the
    baselines that can apply to this question are offered (the others are named with the
    reason); Most requests only with a server backend."""
    checkpoints = checkpoint_picker("sim", "Checkpoints to compare")
    mode = setting_widget(st, SimConfig, "mode", "sim_mode", radio=True,
                          persist_state="session")
    cols = st.columns(3)
    orders = orders_widget(cols[0], "sim_orders", mode, persist_state="session")
    samples = setting_widget(cols[1], SimConfig, "samples", "sim_samples", persist_state="session",
                             disabled=mode != "sample")
    limit = requests_limit(cols[2], "sim_max_requests") if on_server() else None
    missing = unavailable_baselines(survey, question) if question is not None else {}
    offered = [name for name in BASELINES if name not in missing]
    baselines = st.multiselect("Baselines", offered, default=offered, key="sim_baselines",
                               persist_state="session",
                               format_func=lambda k: BASELINES[k].label,
                               help="; ".join(f"{BASELINES[k].label}: {BASELINES[k].help}"
                                              for k in offered))
    if missing:
        st.caption("Not offered here: " + "; ".join(
            f"{BASELINES[name].label.lower()} ({why})" for name, why in missing.items()) + ".")
    cols = st.columns(2)
    calibrate = setting_widget(cols[0], SimConfig, "calibrate", "sim_calibrate",
                               persist_state="session")
    level = setting_widget(cols[1], SimConfig, "interval_level", "sim_interval_level",
                           persist_state="session")
    config = SimConfig(mode=mode, orders=orders, samples=int(samples), calibrate=calibrate,
                       interval_level=level, max_requests=limit)
    return checkpoints, config, tuple(baselines)


def run_compare(question, survey, wave, by, slices, checkpoints, config, baselines) -> None:
    """Load the chosen models (cached) and call sim_core.evaluation.compare.compare (which
    refuses, before sending anything, a run over Most requests)."""
    try:
        with status_box("sim", "Simulate and compare", "slice",
                        len(checkpoints)) as status:
            models = load_checkpoints(status, checkpoints)
            status.step("Simulating")
            comparison = compare(models, question, survey=survey, by=by, wave=wave,
                                 slices=slices, config=config, baselines=baselines,
                                 progress=status.progress, should_stop=status.should_stop)
    except SimError as error:
        show_error(error)
        st.session_state["sim_failed"] = True
        return
    st.session_state["sim_failed"] = False
    st.session_state["sim_comparison"] = comparison
    st.session_state["sim_run_inputs"] = {"survey": survey, "checkpoints": list(checkpoints)}
    history = st.session_state.setdefault("sim_history", [])
    history.append(comparison)
    del history[:-10]
    keep_result("comparison", lambda: report_from_comparisons([comparison]),
                comparison.question.text[:120])


def not_ready_reason(question, checkpoints) -> str | None:
    """Why the Simulate button is greyed out, in words (None when it can run)."""
    if question is None:
        return "Pick or draft a question first."
    if no_served_model():
        return "Give the server's URL in the sidebar and pick a model it serves."
    if not checkpoints:
        return "Pick at least one checkpoint to simulate with."
    return None


def show_result(comparison) -> None:
    """The comparison: its slices, and the population they compose (two tabs)."""
    previous_result_note("sim", comparison.question.text)
    show_comparison_header(comparison)
    # keyed, state-tracking tabs: a click inside a tab keeps it open, and only the open
    # tab's content runs
    slices_tab, population_tab = st.tabs(["Slices", "Population"], key="sim_view",
                                         on_change="rerun")
    if slices_tab.open:
        with slices_tab:
            show_slices(comparison)
    if population_tab.open:
        with population_tab:
            run = st.session_state.get("sim_run_inputs") or {}
            population_section(comparison, run.get("survey"), run.get("checkpoints") or [])


def main() -> None:
    """Draw the page."""
    st.header("Simulate & compare")
    source = st.radio("Question", ["From a loaded survey", "Draft a new question"],
                      horizontal=True, key="sim_source", persist_state="session")
    survey, wave, by, slices = None, None, [], None
    if source == "Draft a new question":
        question, slices = draft_question()
    else:
        survey, question, wave, by = survey_question()
        if question is not None:
            survey, by, question = run_survey(survey, question, by)
    checkpoints, config, baselines = settings(survey, question)
    why_not = not_ready_reason(question, checkpoints)
    if on_server():
        privacy_note()
        if why_not is None:
            show_plan(lambda models: plan_compare(models, question, survey=survey, by=by,
                                                  wave=wave, slices=slices, config=config),
                      checkpoints, config.max_requests)
    if st.button("Simulate and compare", type="primary", key="sim_run",
                 disabled=why_not is not None, help=why_not):
        run_compare(question, survey, wave, by, slices, checkpoints, config, baselines)
    elif why_not:
        st.caption(why_not)
    comparison = st.session_state.get("sim_comparison")
    if comparison is not None:
        show_result(comparison)


if __name__ == "__main__":
    run_page(main)
