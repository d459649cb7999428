"""Simulate & compare: a question (from a survey or drafted), slices, checkpoints -> compare()."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import SLICES_PER_PAGE, comparison_figure, slice_heatmap_figure, slice_pages
from dashboard.display import score_header, show_chart, show_error
from dashboard.loaders import load_checkpoints
from dashboard.navigation import run_page
from dashboard.results import keep_result, previous_result_note
from dashboard.status import status_box
from dashboard.widgets import checkpoint_picker, orders_widget, setting_widget, survey_picker
from sim_core.base.errors import SimError
from sim_core.base.labels import question_choice_labels
from sim_core.base.metrics import METRICS
from sim_core.evaluation.baselines import BASELINES, unavailable_baselines
from sim_core.evaluation.compare import compare
from sim_core.evaluation.verdict import default_score
from sim_core.report.document import report_from_comparisons
from sim_core.simulation.config import MODES, SimConfig
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
    """(survey, question, wave, by) picked from a stored survey, or Nones."""
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
    by = st.multiselect("Slice by (several attributes are crossed)", survey.demographics,
                        key="sim_by", persist_state="session", max_selections=3)
    return survey, survey.questions[qid], wave, by


def settings(survey, question):
    """Checkpoints and SimConfig from the widgets; only the baselines that can apply to
    this question are offered (the others are named with the reason)."""
    checkpoints = checkpoint_picker("sim", "Checkpoints to compare")
    cols = st.columns(3)
    mode = cols[0].radio("Mode", list(MODES), key="sim_mode", persist_state="session",
                         format_func=lambda k: MODES[k].label,
                         help="; ".join(f"{c.label}: {c.help}" for c in MODES.values()))
    orders = orders_widget(cols[1], "sim_orders", persist_state="session")
    samples = setting_widget(cols[2], SimConfig, "samples", "sim_samples", persist_state="session",
                             disabled=mode != "sample")
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
                       interval_level=level)
    return checkpoints, config, tuple(baselines)


def run_compare(question, survey, wave, by, slices, checkpoints, config, baselines) -> None:
    """Load the chosen models (cached) and call sim_core.evaluation.compare.compare."""
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
    history = st.session_state.setdefault("sim_history", [])
    history.append(comparison)
    del history[:-10]
    keep_result("comparison", lambda: report_from_comparisons([comparison]),
                comparison.question.text[:120])


def score_rows(comparison, keys: list[str] | None = None,
               counts: tuple[str, ...] = ("n", "n_eff")) -> pd.DataFrame:
    """Comparison.score_table() for display: ★ on the best entry per slice and score,
    the noise-floor rows kept, every heading with its direction. `keys`: the scores shown
    (default all); `counts` (n, n_eff) only where the data has respondent counts."""
    table = comparison.score_table()
    keys = [k for k in (keys or METRICS) if k in table.columns]
    counts = [c for c in counts if table[c].notna().any()]
    shown = table[["slice", "entry", *counts]].copy()
    if "n_eff" in counts:
        shown["n_eff"] = shown["n_eff"].astype(float).round(1)
    for key in keys:
        shown[score_header(key)] = [
            "" if pd.isna(v) else f"{v:.4f}{' ★' if best else ''}"
            for v, best in zip(table[key], table[f"best_{key}"])]
    return shown


def shares_rows(comparison) -> pd.DataFrame:
    """The shares behind the chart: one row per slice and entry, one column per option, in
    per cent; an interval (real: 95 % CI; calibrated checkpoint: prediction interval)
    follows in brackets."""
    long = comparison.shares_table()
    options = list(comparison.question.options)

    def cell(row) -> str:
        low, high = (row.ci_low, row.ci_high) if pd.notna(row.ci_low) else (row.pi_low,
                                                                            row.pi_high)
        text = f"{row.share * 100:.1f}"
        return text if pd.isna(low) else f"{text} ({low * 100:.1f}–{high * 100:.1f})"

    long["cell"] = [cell(row) for row in long.itertuples()]
    wide = long.pivot_table(index=["slice", "entry"], columns="option", values="cell",
                            aggfunc="first", sort=False)
    return wide.reindex(columns=options).reset_index()


def score_legend() -> pd.DataFrame:
    """Every score's name, direction and formula (from sim_core.base.metrics.METRICS)."""
    return pd.DataFrame([{"score": m.name, "better": f"{m.direction} is better",
                          "range": m.range, "formula": m.formula} for m in METRICS.values()])


HEATMAP_VIEW, BARS_VIEW = "Heatmap: all slices", "Bars: a page of slices"


def show_shares_chart(comparison) -> None:
    """Bars per slice; above charts.SLICES_PER_PAGE slices, a slice x option heatmap or
    pages of bars (the user's pick). Never raises: a chart failure is one warning."""
    shares = comparison.shares_table()
    show_baselines = st.toggle("Show baselines", value=True, key="sim_show_baselines",
                               persist_state="session")
    pages = slice_pages(shares)
    if len(pages) == 1:
        show_chart(lambda: comparison_figure(shares, show_baselines=show_baselines),
                   key="sim_chart")
        return
    cols = st.columns([2, 1])
    view = cols[0].radio(f"{sum(map(len, pages))} slices", [HEATMAP_VIEW, BARS_VIEW],
                         horizontal=True, key="sim_chart_view", persist_state="session")
    if view == HEATMAP_VIEW:
        show_chart(lambda: slice_heatmap_figure(shares, show_baselines=show_baselines),
                   key="sim_heatmap")
        return
    page = cols[1].selectbox("Slices", range(len(pages)), key="sim_chart_page",
                             format_func=lambda i: f"{i * SLICES_PER_PAGE + 1}–"
                                                   f"{i * SLICES_PER_PAGE + len(pages[i])}")
    page = min(page or 0, len(pages) - 1)
    show_chart(lambda: comparison_figure(shares, show_baselines=show_baselines,
                                         slices=pages[page]), key="sim_chart")


HEADING_CHARS = 110


def show_question_heading(text: str) -> None:
    """The question as the heading; a long one is cut there and shown whole below."""
    if len(text) <= HEADING_CHARS:
        st.subheader(text)
        return
    st.subheader(text[:HEADING_CHARS].rsplit(" ", 1)[0] + " …")
    st.caption(text)


def show_scores(comparison) -> None:
    """A compact table first (slice, entry, n, the headline score), every score and what it
    means behind an expander; the noise floor and too-small slices explained."""
    headline = default_score([comparison.question])
    floors = any(sc.noise_floor for sc in comparison.slices)
    st.markdown(f"**How close to the real answers** ({METRICS[headline].name}; ★ = best entry "
                "for that slice"
                + ("; 'noise floor' = the score two independent real samples of this size "
                   "would get)" if floors else ")"))
    st.dataframe(score_rows(comparison, [headline], counts=("n",)), hide_index=True,
                 key="sim_scores_headline")
    if not floors:
        st.caption("No noise floor: the data gives no respondent counts for these slices "
                   "(answer shares only), so sampling noise cannot be estimated.")
    too_small = [sc.real.label for sc in comparison.slices
                 if sc.real is not None and sc.real.too_small]
    if too_small:
        st.warning("Too few respondents to trust: " + ", ".join(too_small))
    with st.expander("Every score, and what each one measures"):
        st.dataframe(score_rows(comparison), hide_index=True, key="sim_scores")
        st.dataframe(score_legend(), hide_index=True, key="sim_legend")


def show_comparison(comparison) -> None:
    """Chart, prompt, shares and score tables for a Comparison."""
    show_question_heading(comparison.question.text)
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
    with st.expander("Shares as a table (per cent; intervals in brackets)"):
        st.dataframe(shares_rows(comparison), hide_index=True, key="sim_shares")
    first = next(iter(comparison.slices[0].simulated.values()), None) if comparison.slices else None
    if first is not None:
        with st.expander("Exact prompt (first slice, original option order)"):
            st.code(first.prompt, language=None)
    if has_real:
        show_scores(comparison)


def not_ready_reason(question, checkpoints) -> str | None:
    """Why the Simulate button is greyed out, in words (None when it can run)."""
    if question is None:
        return "Pick or draft a question first."
    if not checkpoints:
        return "Pick at least one checkpoint to simulate with."
    return None


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
    checkpoints, config, baselines = settings(survey, question)
    why_not = not_ready_reason(question, checkpoints)
    if st.button("Simulate and compare", type="primary", key="sim_run",
                 disabled=why_not is not None, help=why_not):
        run_compare(question, survey, wave, by, slices, checkpoints, config, baselines)
    elif why_not:
        st.caption(why_not)
    comparison = st.session_state.get("sim_comparison")
    if comparison is not None:
        previous_result_note("sim", comparison.question.text)
        show_comparison(comparison)


if __name__ == "__main__":
    run_page(main)
