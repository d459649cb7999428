"""Simulate & compare: a question (from a survey or drafted), slices, checkpoints -> compare()."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import common
from pages.charts import comparison_figure
from sim_core.errors import SimError

BASE = "(base model)"
MODES = {"First-token probabilities": "first-token", "Sampling (synthetic respondents)": "sample"}


def draft_question():
    """The drafted question and slices from the form, or (None, None) with a message."""
    from sim_core.slices import parse_slice_label
    from sim_core.survey import Question

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
        slices = [{} if s.strip() in ("", "All") else parse_slice_label(s.strip())
                  for s in (slice_text.splitlines() or ["All"])]
    except SimError as error:
        common.show_error(error)
        return None, None
    values = tuple(float(i) for i in range(len(options))) if ordinal else None
    question = Question(id="draft", text=text.strip(), options=options, ordinal_values=values)
    return question, list({repr(sorted(s.items())): s for s in slices}.values())


def survey_question():
    """(survey, question, wave, by) picked from a stored survey, or Nones."""
    _, survey = common.survey_picker("sim")
    if survey is None:
        return None, None, None, []
    ids = list(survey.questions)
    qid = st.selectbox("Question", ids, key="sim_question",
                       format_func=lambda i: f"{i}: {survey.questions[i].text[:90]}")
    waves = survey.waves()
    wave = st.selectbox("Wave", waves, key="sim_wave") if len(waves) > 1 else None
    by = st.multiselect("Slice by (several attributes are crossed)", survey.demographics,
                        key="sim_by", max_selections=3)
    return survey, survey.questions[qid], wave, by


def settings():
    """Checkpoints and SimConfig from the widgets."""
    from sim_core.simulate import DEFAULT_ORDERS, SimConfig

    base, side_adapter = common.model_choice()
    choices = [BASE, *common.adapter_names()]
    default = [side_adapter] if side_adapter in choices else [BASE]
    picked = st.multiselect(f"Checkpoints to compare (base: {base})", choices, default=default,
                            key="sim_checkpoints")
    cols = st.columns(3)
    mode = MODES[cols[0].radio("Mode", list(MODES), key="sim_mode")]
    orders = cols[1].number_input("Option orders averaged (K, debiasing)", 1, 8,
                                  value=DEFAULT_ORDERS, key="sim_orders")
    samples = cols[2].number_input("Samples per slice (sampling mode)", 5, 500, value=20,
                                   key="sim_samples", disabled=mode != "sample")
    baselines = st.multiselect("Baselines", ["uniform", "population", "classifier"],
                               default=["uniform", "population", "classifier"],
                               key="sim_baselines")
    config = SimConfig(mode=mode, orders=int(orders), samples=int(samples))
    return [(base, None if p == BASE else p) for p in picked], config, tuple(baselines)


def run_compare(question, survey, wave, by, slices, checkpoints, config, baselines) -> None:
    """Load the chosen models (cached) and call sim_core.compare.compare."""
    from sim_core.compare import compare

    try:
        models = [common.get_model(name, adapter) for name, adapter in checkpoints]
        with common.progress_and_stop("sim", "Simulating") as (progress, should_stop):
            comparison = compare(models, question, survey=survey, by=by, wave=wave,
                                 slices=slices, config=config, baselines=baselines,
                                 progress=progress, should_stop=should_stop)
    except SimError as error:
        common.show_error(error)
        return
    st.session_state["sim_comparison"] = comparison
    history = st.session_state.setdefault("sim_history", [])
    history.append(comparison)
    del history[:-10]


def score_rows(comparison) -> pd.DataFrame:
    """Score table with the noise floor rows and a ★ on the best entry per slice and score."""
    from sim_core.metrics import METRICS, best_entry

    rows = []
    for sc in comparison.slices:
        label = sc.real.label if sc.real is not None else str(sc.slice)
        keys = [k for k in METRICS if any(k in s for s in sc.scores.values())]
        for entry, scores in sc.scores.items():
            row = {"slice": label, "entry": entry}
            for key in keys:
                value = scores.get(key)
                best = value is not None and best_entry(
                    {e: s[key] for e, s in sc.scores.items() if key in s}, key) == entry
                row[METRICS[key].name] = "" if value is None else f"{value:.4f}{' ★' if best else ''}"
            rows.append(row)
        if sc.noise_floor:
            rows.append({"slice": label, "entry": "noise floor (real sampling)",
                         **{METRICS[k].name: f"{v:.4f}" for k, v in sc.noise_floor.items()
                            if k in METRICS}})
    return pd.DataFrame(rows)


def score_legend() -> pd.DataFrame:
    """Every score's name, direction and formula (from sim_core.metrics.METRICS)."""
    from sim_core.metrics import METRICS

    return pd.DataFrame([{"score": m.name, "better": f"{m.direction} is better",
                          "range": m.range, "formula": m.formula} for m in METRICS.values()])


def show_comparison(comparison) -> None:
    """Chart, prompt, score table and legend for a Comparison."""
    st.subheader(comparison.question.text)
    has_real = any(sc.real is not None for sc in comparison.slices)
    if not has_real:
        st.info("No real data for this question: the simulated shares are shown, "
                "there is nothing to compare them with.")
    show_baselines = st.toggle("Show baselines", value=True, key="sim_show_baselines")
    st.plotly_chart(comparison_figure(comparison.shares_table(), show_baselines=show_baselines),
                    key="sim_chart")
    first = next(iter(comparison.slices[0].simulated.values()), None) if comparison.slices else None
    if first is not None:
        with st.expander("Exact prompt (first slice, original option order)"):
            st.code(first.prompt, language=None)
    if has_real:
        st.markdown("**Scores** (★ = best entry for that slice and score)")
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
        show_comparison(comparison)


if __name__ == "__main__":
    main()
