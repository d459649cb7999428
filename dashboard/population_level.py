"""Evaluate page, population level: over the questions of a wave, each question's
population estimate scored against the survey's own answer, beside the group-level error
of the same cells (sim_core.evaluation.population_evaluate), as a table and a chart."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import population_levels_figure
from dashboard.display import show_chart, show_error, show_table
from dashboard.loaders import load_checkpoints
from dashboard.population_view import margins_inputs
from dashboard.status import status_box
from sim_core.base.errors import SimError
from sim_core.base.labels import baseline_entry
from sim_core.base.metrics import METRICS
from sim_core.evaluation.population_evaluate import evaluate_population


def population_level_section(survey, by: list[str] | None, wave: str | None, ids: list[str],
                             checkpoints, config) -> None:
    """Draw the population level: who makes up the population, the run, the result."""
    st.subheader("Population level: the groups composed into the whole population")
    if not by:
        st.info("Choose the slice attributes above: the population is composed of their "
                "crossed cells, each weighted by its share of the population.")
        return
    choice = margins_inputs("eval", survey, list(by), question_id=ids[0] if ids else None,
                            wave=wave)
    if choice is None:
        return
    if st.button("Evaluate the population level", key="eval_pop_run",
                 disabled=not checkpoints):
        try:
            with status_box("eval_pop", "Population level", "question x cell",
                            len(checkpoints)) as status:
                models = load_checkpoints(status, checkpoints)
                status.step(f"Simulating the cells of {len(ids)} questions")
                st.session_state["eval_population"] = evaluate_population(
                    models, survey, list(by), margins=choice.margins,
                    rake_from=choice.rake_from, wave=wave, questions=ids, config=config,
                    progress=status.progress, should_stop=status.should_stop)
        except SimError as error:
            show_error(error)
    result = st.session_state.get("eval_population")
    if result is not None:
        show_population_level(result)


def show_population_level(result) -> None:
    """The summary table (population and group level per entry) and the chart per question."""
    score = METRICS[result.score]
    st.markdown(f"**Mean {score.name} per entry** ({score.direction} is better): "
                "population = each question's estimate against the survey's own answer; "
                "groups = each cell against its real group, averaged over the cells"
                + (f" · wave {result.wave}" if result.wave else ""))
    summary = result.summary()
    summary["questions"] = summary["questions"].fillna(0).astype(int)
    # coverage and width only where some checkpoint has prediction intervals
    summary = summary.drop(columns=[c for c in ("coverage", "mean_width")
                                    if summary[c].isna().all()])
    show_table(summary, "eval_pop_summary", hide_index=False)
    st.caption("questions: how many the population level averages"
               + ("; coverage: share of the real population shares inside the checkpoint's "
                  "prediction interval, mean_width: its mean width" if "coverage" in summary
                  else "; no checkpoint has prediction intervals here (no calibration)")
               + ".")
    show_chart(lambda: population_levels_figure(result.chart_data(), score.name),
               key="eval_pop_chart")
    average = summary["population"].get(baseline_entry("population"))
    st.caption(f"Cells: {' × '.join(result.attributes)}; composition (that of the first "
               f"question): {result.source}."
               + (" The population average is no baseline at the population level: there it "
                  "is the survey's own answer." if average is not None and pd.isna(average)
                  else ""))
    for note in result.notes:
        st.caption(note)
