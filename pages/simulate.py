"""Simulate & compare: a question (from a survey or drafted), slices, checkpoints -> compare()."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import common
from pages.charts import (SLICES_PER_PAGE, comparison_figure, slice_heatmap_figure,
                          slice_pages)
from sim_core.baselines import BASELINES
from sim_core.compare import compare
from sim_core.errors import SimError
from sim_core.labels import question_choice_labels
from sim_core.report import report_from_comparisons
from sim_core.metrics import METRICS
from sim_core.simulate import MODES, SimConfig
from sim_core.slices import parse_slices
from sim_core.survey import Question


def draft_question():
    """The drafted question and slices from the form, or (None, None) with a message."""
    text = st.text_area("Question wording", key="sim_draft_text",
                        placeholder="Should the government spend more on public transport?")
    lines = st.text_area("Options, in order, one per line", key="sim_draft_options",
                         placeholder="Much more\nSomewhat more\nThe same\nLess")
    ordinal = st.checkbox("Ordinal (options are in a meaningful order)", value=True,
                          key="sim_draft_ordinal")
    slice_text = st.text_area("Slices, one per line as attribute=value (comma for crossed); "
                              "an empty line or 'All' is the whole population",
                              key="sim_draft_slices", value="All",
                              placeholder="SEX=Female\nSEX=Male, AGE=18-29")
    options = tuple(o.strip() for o in lines.splitlines() if o.strip())
    if not text.strip() or len(options) < 2:
        st.info("Type the wording and at least two options.")
        return None, None
    try:
        slices = parse_slices(slice_text)
    except SimError as error:
        common.show_error(error)
        return None, None
    values = tuple(float(i) for i in range(len(options))) if ordinal else None
    return Question(id="draft", text=text.strip(), options=options, ordinal_values=values), slices


def survey_question():
    """(survey, question, wave, by) picked from a stored survey, or Nones."""
    _, survey = common.survey_picker("sim")
    if survey is None:
        return None, None, None, []
    ids = list(survey.questions)
    labels = question_choice_labels({i: q.text for i, q in survey.questions.items()})
    qid = st.selectbox("Question (type to search its wording)", ids, key="sim_question",
                       format_func=labels.get)
    st.caption(survey.questions[qid].text)
    waves = survey.waves()
    wave = st.selectbox("Wave", waves, key="sim_wave") if len(waves) > 1 else None
    by = st.multiselect("Slice by (several attributes are crossed)", survey.demographics,
                        key="sim_by", max_selections=3)
    return survey, survey.questions[qid], wave, by


def settings():
    """Checkpoints and SimConfig from the widgets."""
    checkpoints = common.checkpoint_picker("sim", "Checkpoints to compare")
    cols = st.columns(3)
    mode = cols[0].radio("Mode", list(MODES), key="sim_mode",
                         format_func=lambda k: MODES[k].label,
                         help="; ".join(f"{c.label}: {c.help}" for c in MODES.values()))
    orders = common.orders_widget(cols[1], "sim_orders")
    samples = common.setting_widget(cols[2], SimConfig, "samples", "sim_samples",
                                    disabled=mode != "sample")
    baselines = st.multiselect("Baselines", list(BASELINES), default=list(BASELINES),
                               key="sim_baselines", format_func=lambda k: BASELINES[k].label,
                               help="; ".join(f"{c.label}: {c.help}" for c in BASELINES.values()))
    cols = st.columns(2)
    calibrate = common.setting_widget(cols[0], SimConfig, "calibrate", "sim_calibrate")
    level = common.setting_widget(cols[1], SimConfig, "interval_level", "sim_interval_level")
    config = SimConfig(mode=mode, orders=orders, samples=int(samples), calibrate=calibrate,
                       interval_level=level)
    return checkpoints, config, tuple(baselines)


def run_compare(question, survey, wave, by, slices, checkpoints, config, baselines) -> None:
    """Load the chosen models (cached) and call sim_core.compare.compare."""
    try:
        with common.status_box("sim", "Simulate and compare", "slice",
                               len(checkpoints)) as status:
            models = common.load_checkpoints(status, checkpoints)
            status.step("Simulating")
            comparison = compare(models, question, survey=survey, by=by, wave=wave,
                                 slices=slices, config=config, baselines=baselines,
                                 progress=status.progress, should_stop=status.should_stop)
    except SimError as error:
        common.show_error(error)
        st.session_state["sim_failed"] = True
        return
    st.session_state["sim_failed"] = False
    st.session_state["sim_comparison"] = comparison
    history = st.session_state.setdefault("sim_history", [])
    history.append(comparison)
    del history[:-10]
    common.keep_result("comparison", lambda: report_from_comparisons([comparison]),
                       comparison.question.text[:120])


def score_rows(comparison) -> pd.DataFrame:
    """Comparison.score_table() for display: ★ on the best entry per slice and score,
    the noise-floor rows kept, every heading with its direction."""
    table = comparison.score_table()
    keys = [k for k in METRICS if k in table.columns]
    shown = table[["slice", "entry", "n", "n_eff"]].copy()
    shown["n_eff"] = shown["n_eff"].astype(float).round(1)
    for key in keys:
        shown[common.score_header(key)] = [
            "" if pd.isna(v) else f"{v:.4f}{' ★' if best else ''}"
            for v, best in zip(table[key], table[f"best_{key}"])]
    return shown


def score_legend() -> pd.DataFrame:
    """Every score's name, direction and formula (from sim_core.metrics.METRICS)."""
    return pd.DataFrame([{"score": m.name, "better": f"{m.direction} is better",
                          "range": m.range, "formula": m.formula} for m in METRICS.values()])


HEATMAP_VIEW, BARS_VIEW = "Heatmap: all slices", "Bars: a page of slices"


def show_shares_chart(comparison) -> None:
    """Bars per slice; above charts.SLICES_PER_PAGE slices, a slice x option heatmap or
    pages of bars (the user's pick). Never raises: a chart failure is one warning."""
    shares = comparison.shares_table()
    show_baselines = st.toggle("Show baselines", value=True, key="sim_show_baselines")
    pages = slice_pages(shares)
    if len(pages) == 1:
        common.show_chart(lambda: comparison_figure(shares, show_baselines=show_baselines),
                          key="sim_chart")
        return
    cols = st.columns([2, 1])
    view = cols[0].radio(f"{sum(map(len, pages))} slices", [HEATMAP_VIEW, BARS_VIEW],
                         horizontal=True, key="sim_chart_view")
    if view == HEATMAP_VIEW:
        common.show_chart(lambda: slice_heatmap_figure(shares, show_baselines=show_baselines),
                          key="sim_heatmap")
        return
    page = cols[1].selectbox("Slices", range(len(pages)), key="sim_chart_page",
                             format_func=lambda i: f"{i * SLICES_PER_PAGE + 1}–"
                                                   f"{i * SLICES_PER_PAGE + len(pages[i])}")
    page = min(page or 0, len(pages) - 1)
    common.show_chart(lambda: comparison_figure(shares, show_baselines=show_baselines,
                                                slices=pages[page]), key="sim_chart")


def show_comparison(comparison) -> None:
    """Chart, prompt, score table and legend for a Comparison."""
    st.subheader(comparison.question.text)
    has_real = any(sc.real is not None for sc in comparison.slices)
    if not has_real:
        st.info("No real data for this question: the simulated shares are shown, "
                "there is nothing to compare them with.")
    config = comparison.config
    st.caption(f"Checkpoints: {', '.join(c['label'] for c in comparison.checkpoints)} · "
               f"mode {config.mode}"
               + ("" if config.mode != "first-token" else " · option orders averaged: "
                  + ", ".join(f"{c['label']} {c['orders']}" for c in comparison.checkpoints))
               + (f" · wave {comparison.wave}" if comparison.wave else ""))
    for note in comparison.notes:
        st.caption(note)
    st.markdown("**How far to trust these bars** (each checkpoint measured on rows it never "
                "saw)")
    for checkpoint in comparison.checkpoints:
        st.info(checkpoint["verdict"])
    show_shares_chart(comparison)
    st.caption("Error bars: the real shares' 95 % interval; a calibrated checkpoint's "
               f"{config.interval_level * 100:g} % prediction interval (split conformal on "
               "its validation residuals).")
    first = next(iter(comparison.slices[0].simulated.values()), None) if comparison.slices else None
    if first is not None:
        with st.expander("Exact prompt (first slice, original option order)"):
            st.code(first.prompt, language=None)
    if has_real:
        st.markdown("**Scores** (★ = best entry for that slice and score; 'noise floor' = "
                    "the score two independent real samples of this size would get)")
        st.dataframe(score_rows(comparison), hide_index=True, key="sim_scores")
        too_small = [sc.real.label for sc in comparison.slices
                     if sc.real is not None and sc.real.too_small]
        if too_small:
            st.warning("Too few respondents to trust: " + ", ".join(too_small))
        st.dataframe(score_legend(), hide_index=True, key="sim_legend")


def main() -> None:
    """Draw the page."""
    st.header("Simulate & compare")
    source = st.radio("Question", ["From a loaded survey", "Draft a new question"],
                      horizontal=True, key="sim_source")
    survey, wave, by, slices = None, None, [], None
    if source == "Draft a new question":
        question, slices = draft_question()
    else:
        survey, question, wave, by = survey_question()
    checkpoints, config, baselines = settings()
    ready = question is not None and bool(checkpoints)
    if st.button("Simulate and compare", type="primary", key="sim_run", disabled=not ready):
        run_compare(question, survey, wave, by, slices, checkpoints, config, baselines)
    comparison = st.session_state.get("sim_comparison")
    if comparison is not None:
        common.previous_result_note("sim", comparison.question.text)
        show_comparison(comparison)


if __name__ == "__main__":
    main()
