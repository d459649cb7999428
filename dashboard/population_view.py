"""Population estimates on the dashboard: who makes up the population (the survey's own
weighted composition, or margins: a saved population, a file, the shares edited here,
raked into cells: sim_core.survey.composition), and Simulate's Population view, the
slices of a comparison composed into an estimate for the whole population or a subgroup
(sim_core.evaluation.population). The Evaluate page's population level uses the same
inputs (dashboard.population_level)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.charts import comparison_figure
from dashboard.comparison_view import shares_rows
from dashboard.display import show_chart, show_error, show_table, with_score_names
from dashboard.loaders import load_checkpoints
from dashboard.results import keep_result
from dashboard.status import status_box
from dashboard.widgets import setting_widget
from sim_core.base.errors import DataError, SimError
from sim_core.base.labels import NOISE_FLOOR
from sim_core.evaluation.population import INTERVAL_METHODS, population_for_comparison
from sim_core.report.document import report_from_comparisons
from sim_core.survey.composition import Composition, PopulationConfig, composition_for
from sim_core.survey.marginal import parse_slice_label, slice_label
from sim_core.survey.margins import (
    COLUMNS,
    Margins,
    load_saved_margins,
    margins_from_rows,
    read_margins,
    save_margins,
    saved_margins,
)

SOURCES = {"survey": "The survey's own composition",
           "saved": "A saved population",
           "upload": "Margins from a file (CSV: attribute, group, share)"}


@dataclass
class PopulationChoice:
    """What the inputs chose: margins (None: the survey's own composition), where raking
    starts, and the survey's own composition when it is used unedited."""

    margins: Margins | None
    rake_from: str | None
    own: Composition | None = None


def margins_table(shares: dict[str, dict[str, float]]) -> pd.DataFrame:
    """attribute -> group -> share as the rows of a margins file."""
    return pd.DataFrame([(a, g, s) for a, groups in shares.items() for g, s in groups.items()],
                        columns=list(COLUMNS))


def _base(prefix: str, source: str, survey, attributes: list[str], question_id, wave):
    """(the survey's own composition or None, the margins to start the editor from), or
    (None, None) with a hint when there is nothing yet."""
    if source == "survey":
        if not attributes:
            st.info("Slice by at least one attribute: the survey's own composition is that of "
                    "the slices' cells. Or give the population's margins.")
            return None, None
        try:
            own = composition_for(survey, attributes, wave=wave, question_id=question_id)
        except DataError as error:     # not the user's doing: say what to give instead
            st.info(f"The survey's own composition is not known here: {error.detail} "
                    "Choose a saved population or a margins file above.")
            return None, None
        return own, Margins(f"{survey.name} (its own composition)", own.margins())
    if source == "saved":
        names = saved_margins()
        if not names:
            st.info("No saved population yet: load margins from a file, edit them here if "
                    "needed, and save them.")
            return None, None
        name = st.selectbox("Population", names, key=f"{prefix}_pop_saved",
                            persist_state="session")
        return None, load_saved_margins(name)
    upload = st.file_uploader("Margins file: one row per attribute and group; each "
                              "attribute's shares sum to 1", type=["csv", "txt"],
                              key=f"{prefix}_pop_upload")
    if upload is None:
        return None, None
    return None, read_margins(upload.getvalue(), name=Path(upload.name).stem)


def _edited(prefix: str, base: Margins) -> tuple[Margins, bool]:
    """The margins as edited in the table (checked: sim_core.survey.margins.margins_from_rows),
    and whether anything was edited. The edits start afresh when other margins are shown."""
    key, seen = f"{prefix}_pop_editor", f"{prefix}_pop_editor_base"
    table = margins_table(base.shares)
    signature = (base.name, tuple(map(tuple, table.to_numpy().tolist())))
    if st.session_state.get(seen) not in (None, signature) and key in st.session_state:
        del st.session_state[key]
    st.session_state[seen] = signature
    edited = st.data_editor(table, key=key, num_rows="dynamic", hide_index=True,
                            column_config={"share": st.column_config.NumberColumn(
                                "share", format="%.4f")})
    state = st.session_state.get(key) or {}
    changed = any(state.get(part) for part in ("edited_rows", "added_rows", "deleted_rows"))
    name = f"{base.name} (edited)" if changed else base.name
    return margins_from_rows(edited.itertuples(index=False), name), changed


def save_form(prefix: str, margins: Margins) -> None:
    """Save the margins under a name (an existing one is replaced only when asked)."""
    with st.expander("Save these margins as a population (reusable here and with "
                     "`--margins NAME`)"):
        cols = st.columns([2, 1, 1], vertical_alignment="bottom")
        name = cols[0].text_input("Name", key=f"{prefix}_pop_save_name").strip()
        replace = cols[1].checkbox("Replace a saved one of that name",
                                   key=f"{prefix}_pop_save_replace")
        if cols[2].button("Save", key=f"{prefix}_pop_save", disabled=not name):
            try:
                save_margins(name, margins, overwrite=replace)
            except SimError as error:
                show_error(error)
                return
            st.success(f"Saved as population '{name}'.")


def margins_inputs(prefix: str, survey, attributes: list[str], *,
                   question_id: str | None = None,
                   wave: str | None = None) -> PopulationChoice | None:
    """Who makes up the population: the source, the margins as an editable table, where
    raking starts (margins only) and saving them; None (with a message) until usable."""
    offered = [k for k in SOURCES if k != "survey" or survey is not None]
    # a drafted question (no survey) keeps its own choice: the survey's default stays
    source = st.radio("Who makes up the population", offered,
                      key=f"{prefix}_pop_source" + ("" if survey is not None else "_drafted"),
                      format_func=SOURCES.get, horizontal=True, persist_state="session")
    try:
        own, base = _base(prefix, source, survey, attributes, question_id, wave)
        if base is None:
            return None
        st.caption("The population's share of each group (edit a share, add or delete rows; "
                   "edited margins are raked into the cells).")
        margins, changed = _edited(prefix, base)
    except SimError as error:
        show_error(error)
        return None
    if own is not None and not changed:
        return PopulationChoice(None, None, own)
    rake_from = setting_widget(st, PopulationConfig, "rake_from", f"{prefix}_pop_rake_from",
                               persist_state="session")
    save_form(prefix, margins)
    return PopulationChoice(margins, rake_from)


def show_cells(composition: Composition, key: str) -> None:
    """Where the cell shares come from, and every cell with its share."""
    st.caption(f"Composition: {composition.source}"
               + ("" if composition.max_error is None else
                  f" (largest margin error left: {composition.max_error:.1e})") + ".")
    for note in composition.notes:
        st.caption(note)
    with st.expander(f"The {len(composition.cells)} cells and their population shares"):
        show_table(pd.DataFrame({"cell": composition.labels, "share": composition.shares}),
                   key)


def subgroup_picker(composition: Composition) -> dict[str, str]:
    """The whole population, or one group of one attribute (estimated from its cells)."""
    margins = composition.margins()
    groups = ["All", *(slice_label({a: g}) for a in composition.attributes for g in margins[a])]
    picked = st.selectbox("Estimate for", groups, key="sim_pop_subgroup",
                          format_func=lambda g: "the whole population" if g == "All" else g)
    return parse_slice_label(picked)


def population_section(comparison, survey, checkpoints) -> None:
    """The Population view of a comparison: inputs, the estimate button, the estimate.

    Args:
        comparison: the Comparison shown; survey: the survey it ran on (None: drafted);
        checkpoints: the (base model, adapter) pairs it ran with.
    """
    st.markdown("**The whole population**: the slices' simulated shares, each cell weighted "
                "by its share of the population (post-stratification).")
    question = comparison.question
    asked = survey is not None and question.id in survey.questions
    choice = margins_inputs("sim", survey, list(comparison.by),
                            question_id=question.id if asked else None, wave=comparison.wave)
    if choice is None:
        return
    try:
        composition = choice.own or composition_for(
            survey, list(comparison.by), choice.margins, rake_from=choice.rake_from,
            wave=comparison.wave, question_id=question.id if asked else None)
    except SimError as error:
        show_error(error)
        return
    show_cells(composition, "sim_pop_cells")
    within = subgroup_picker(composition)
    simulated = {sc.label for sc in comparison.slices}
    new = [label for label in composition.labels if label not in simulated]
    if new:
        st.caption(f"{len(new)} of the {len(composition.cells)} cells are not among the "
                   "slices simulated: the estimate simulates them first, with the run's "
                   "settings.")
    if st.button("Estimate the population", key="sim_pop_run", type="primary"):
        estimate_population(comparison, survey, checkpoints, composition, within)
    if comparison.population is not None:
        show_estimate(comparison.population)


def estimate_population(comparison, survey, checkpoints, composition, within) -> None:
    """population_for_comparison; the estimate joins the comparison (reports) and is saved
    to the workspace history."""
    try:
        with status_box("sim_pop", "Population estimate", "", len(checkpoints)) as status:
            models = load_checkpoints(status, checkpoints)
            status.step("Composing the cells")
            estimate = population_for_comparison(models, comparison, composition,
                                                 survey=survey, within=within or None)
    except SimError as error:
        show_error(error)
        return
    comparison.population = estimate
    keep_result("comparison", lambda: report_from_comparisons([comparison]),
                f"{comparison.question.text[:100]} · population estimate ({estimate.label})")


def show_estimate(estimate) -> None:
    """Bars with their intervals beside the real answer and the baselines, the numbers, the
    scores, the composition used and the notes."""
    who = "the whole population" if not estimate.within else estimate.label
    real = estimate.reference_label or "no real answer (nothing to compare with)"
    st.markdown(f"**Estimate for {who}**, beside {real}")
    shares = estimate.shares_table()
    show_chart(lambda: comparison_figure(shares), key="sim_pop_chart")
    methods = sorted({INTERVAL_METHODS[m].label.lower()
                      for m in estimate.interval_methods.values()})
    st.caption(("Error bars: the real answer's 95 % interval"
                if estimate.real is not None and estimate.reference is estimate.real.shares
                else "Error bars") +
               (f"; the checkpoints' {estimate.interval_level * 100:g} % prediction "
                f"interval ({', '.join(methods)})" if methods else
                "; no prediction interval (no checkpoint has a calibration for these "
                "cells)") + ".")
    with st.expander("Shares as a table (per cent; intervals in brackets)"):
        st.dataframe(shares_rows(shares, estimate.question.options), hide_index=True,
                     key="sim_pop_shares")
    if estimate.scores:
        scores = pd.DataFrame(estimate.scores).T
        if estimate.noise_floor:
            scores.loc[NOISE_FLOOR] = pd.Series(estimate.noise_floor)
        st.markdown(f"**How close to {estimate.reference_label}**")
        show_table(with_score_names(scores.rename_axis("entry")), "sim_pop_scores",
                   hide_index=False)
    st.caption(f"Composition used: {estimate.composition.source}.")
    for note in estimate.notes:
        st.caption(note)
