"""Evaluate page, individual level: held-out respondents simulated one by one, the KL/RMSE
temperature curve per checkpoint, and saving the chosen temperature
(sim_core.evaluation.individual)."""

from __future__ import annotations

import dataclasses

import streamlit as st

from dashboard.charts import tradeoff_figure
from dashboard.cost_guard import no_served_model, on_server, show_plan
from dashboard.display import show_chart, show_error, show_table
from dashboard.loaders import load_checkpoints
from dashboard.status import status_box
from dashboard.widgets import setting_widget
from sim_core.base.errors import SimError
from sim_core.base.labels import is_baseline
from sim_core.evaluation.individual import (
    IndividualConfig,
    evaluate_individuals,
    plan_individuals,
    sweep_record,
)
from sim_core.evaluation.respondent_table import split_from_cards
from sim_core.simulation.adapters import update_card
from sim_core.simulation.config import SimConfig


def _settings(survey, page: SimConfig) -> tuple[list[str], IndividualConfig, SimConfig]:
    """Widgets -> (profile attributes, IndividualConfig, SimConfig: this section's mode with
    the page's option orders and Most requests)."""
    attributes = st.multiselect("Profile attributes (each respondent is described by all)",
                                survey.demographics, key="eval_ind_by", persist_state="session")
    cols = st.columns(3)
    values = {name: setting_widget(cols[i % 3], IndividualConfig, name,
                                   f"eval_ind_{name}", persist_state="session")
              for i, name in enumerate(("criterion", "test_fraction", "val_fraction",
                                        "split_seed", "max_respondents"))}
    text = cols[2].text_input("Temperatures (comma-separated)", key="eval_ind_temps",
                              value=",".join(f"{t:g}" for t in IndividualConfig().temperatures),
                              persist_state="session")
    mode = setting_widget(cols[0], SimConfig, "mode", "eval_ind_mode", persist_state="session")
    try:
        temperatures = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise SimError(f"Temperatures: '{text}' is not a comma-separated list of "
                       "numbers.") from None
    return attributes, IndividualConfig(**values, temperatures=temperatures), SimConfig(
        mode=mode, orders=page.orders, max_requests=page.max_requests)


def _adapters_split(config: IndividualConfig, models) -> tuple[IndividualConfig, bool]:
    """The adapters' own respondent split where their cards record one (True: it replaced
    the section's), so no adapter is scored on people it was trained on."""
    held = split_from_cards(models)
    if held and (held[0], held[1]) != (config.test_fraction, config.split_seed):
        return dataclasses.replace(config, test_fraction=held[0], split_seed=held[1]), True
    return config, False


def _run(survey, ids, checkpoints, attributes, config, sim) -> None:
    """Run the individual-level evaluation; result in eval_individual."""
    try:
        with status_box("eval_ind", "Individual level", "") as status:
            models = load_checkpoints(status, checkpoints)
            config, replaced = _adapters_split(config, models)
            if replaced:
                st.info("Holding out the adapters' own respondents: test share "
                        f"{config.test_fraction}, split seed {config.split_seed}.")
            status.step("Simulating respondents")
            result = evaluate_individuals(models, survey, attributes, questions=ids,
                                          config=config, sim=sim, progress=status.progress,
                                          should_stop=status.should_stop)
    except SimError as error:
        show_error(error)
        return
    st.session_state["eval_individual"] = result
    st.session_state["eval_individual_paths"] = {
        label: getattr(lm, "adapter_path", None) for lm, label in zip(models, result.entries)}


def _show(result) -> None:
    """Summary table, the trade-off curve and saving the chosen temperatures."""
    for note in result.notes:
        st.warning(note)
    summary = result.summary()
    st.markdown(f"**Held-out test respondents** ({result.n_scored['test']} answers; "
                f"{result.n_profiles} distinct prompts; RMSEs on the 0-1 value scale; "
                f"temperature chosen on {result.n_scored['val']} validation answers by "
                f"{result.config.criterion})")
    show_table(summary, "eval_ind_summary")
    x = "rmse" if summary["rmse"].notna().any() else "log_loss"
    curves = {label: s.curve[s.curve["part"] == "test"] for label, s in result.sweeps.items()}
    chosen = {label: s.chosen for label, s in result.sweeps.items()}
    baselines = summary[summary["entry"].map(is_baseline)]
    show_chart(lambda: tradeoff_figure(curves, chosen, baselines, x=x),
               key="eval_ind_curve")
    st.caption("Each line runs through one checkpoint's temperatures (test respondents); the "
               "star marks the temperature chosen on validation respondents. Low "
               "temperature: each virtual respondent gives their most likely answer; high: "
               "answers spread like a population's.")
    paths = st.session_state.get("eval_individual_paths", {})
    for label, path in paths.items():
        if path is not None and st.button(f"Save T = {chosen[label]:g} in the card of "
                                          f"{label}", key=f"eval_ind_save_{label}"):
            try:
                update_card(path, temperature_sweep=sweep_record(result, label))
                st.success(f"Saved in {path.name}'s card.")
            except SimError as error:
                show_error(error)


def individual_section(survey, ids: list[str], checkpoints, page: SimConfig) -> None:
    """Draw the individual-level part of the Evaluate page (the page's questions,
    checkpoints, option orders and Most requests)."""
    st.subheader("Individual level: held-out respondents")
    if survey.kind != "respondents":
        st.info("Individual-level simulation needs respondent-level data (one row per "
                "person); this survey holds marginal tables only.")
        return
    try:
        attributes, config, sim = _settings(survey, page)
    except SimError as error:
        show_error(error)
        return
    if on_server() and attributes and checkpoints and not no_served_model():
        show_plan(lambda models: plan_individuals(
            models, survey, attributes, questions=ids, sim=sim,
            config=_adapters_split(config, models)[0]), checkpoints, sim.max_requests)
    if st.button("Simulate respondents", key="eval_ind_run",
                 disabled=not attributes or not checkpoints):
        _run(survey, ids, checkpoints, attributes, config, sim)
    if st.session_state.get("eval_individual") is not None:
        _show(st.session_state["eval_individual"])
