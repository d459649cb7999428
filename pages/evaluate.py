"""Evaluate: checkpoints over all questions x slices of a survey
(sim_core.evaluation.evaluate.evaluate), the population level
(sim_core.evaluation.population_evaluate) and the individual level."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import heatmap_figure, waves_figure
from dashboard.cost_guard import (
    no_served_model,
    on_server,
    privacy_note,
    requests_limit,
    show_plan,
)
from dashboard.display import show_chart, show_error, show_table, with_score_names
from dashboard.fairness_view import fairness_section
from dashboard.individual_view import individual_section
from dashboard.loaders import load_checkpoints
from dashboard.navigation import run_page
from dashboard.population_level import population_level_section
from dashboard.results import keep_result, previous_result_note
from dashboard.status import status_box
from dashboard.widgets import checkpoint_picker, orders_widget, setting_widget, survey_picker
from sim_core.base.errors import SimError
from sim_core.base.labels import is_baseline
from sim_core.base.metrics import METRICS
from sim_core.evaluation.evaluate import evaluate, plan_evaluate
from sim_core.report.document import report_from_evaluation
from sim_core.simulation.adapter_card import read_card
from sim_core.simulation.adapters import resolve_adapter
from sim_core.simulation.config import MODES, SimConfig
from sim_core.simulation.simulate import RunPlan


def settings(survey):
    """Widgets -> (by, waves, question ids, checkpoints, orders)."""
    by = st.multiselect("Slice attributes (empty: every attribute on its own)",
                        survey.demographics, key="eval_by", persist_state="session")
    waves = survey.waves()
    picked_waves = st.multiselect("Waves (several: gap over time)", waves, default=waves[-1:],
                                  key="eval_waves", persist_state="session") \
        if len(waves) > 1 else [None]
    ids = list(survey.questions)
    limit = st.number_input(f"Questions to use (of {len(ids)}; fewer is faster)", 1, len(ids),
                            value=min(len(ids), 5), key="eval_limit", persist_state="session")
    checkpoints = checkpoint_picker("eval", "Checkpoints (two or more are compared)")
    mode = setting_widget(st, SimConfig, "mode", "eval_mode", radio=True,
                          persist_state="session")
    cols = st.columns(3)
    orders = orders_widget(cols[0], "eval_orders", mode, persist_state="session")
    calibrate = setting_widget(cols[1], SimConfig, "calibrate", "eval_calibrate",
                               persist_state="session")
    limit_requests = requests_limit(cols[2], "eval_max_requests") if on_server() else None
    warn_seen_questions([adapter for _, adapter in checkpoints if adapter], ids[: int(limit)])
    config = SimConfig(mode=mode, orders=orders, calibrate=calibrate,
                       max_requests=limit_requests)
    return by or None, picked_waves or [None], ids[: int(limit)], checkpoints, config


def warn_seen_questions(adapters: list[str], ids: list[str]) -> None:
    """Say when an adapter was trained on some of these questions: no held-out test there."""
    for name in adapters:
        try:
            seen = set(read_card(resolve_adapter(name)).questions_seen)
        except SimError:
            continue
        overlap = [q for q in ids if q in seen]
        if overlap:
            st.warning(f"Adapter '{name}' was trained on {len(overlap)} of these {len(ids)} "
                       f"questions ({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''})"
                       ": its scores there are not a held-out test. `python -m finetune eval "
                       f"--adapter {name}` scores only the rows it never saw.")


def run(survey, by, waves, ids, checkpoints, config) -> None:
    """Evaluate once per wave; results go to eval_results (wave -> Evaluation)."""

    results = {}
    try:
        with status_box("eval", "Evaluate", "question x slice",
                        len(checkpoints)) as status:
            models = load_checkpoints(status, checkpoints)
            for i, wave in enumerate(waves, start=1):
                status.step(f"Evaluating {len(ids)} questions"
                            + (f", wave {wave} ({i} of {len(waves)})" if len(waves) > 1 else ""))
                results[wave or ""] = evaluate(
                    models, survey, by=by, wave=wave, questions=ids, config=config,
                    progress=status.progress, should_stop=status.should_stop)
    except SimError as error:
        show_error(error)
        st.session_state["eval_failed"] = True
        return
    st.session_state["eval_failed"] = False
    st.session_state["eval_results"] = results
    st.session_state["eval_evaluation"] = results[next(reversed(results))]
    for wave, evaluation in results.items():
        keep_result("evaluation", lambda e=evaluation: report_from_evaluation(e),
                    f"Evaluation of {survey.name}" + (f", wave {wave}" if wave else ""))


def show(results: dict) -> None:
    """Summary, heatmap, worst groups, checkpoint comparison and waves over time."""
    evaluation = results[next(reversed(results))]
    st.caption(f"Mode: {MODES[evaluation.mode].label} · checkpoints: "
               + ", ".join(e for e in evaluation.entries if not is_baseline(e)))
    for note in evaluation.notes:
        st.warning(note)
    show_verdicts(evaluation)
    summary = evaluation.summary()
    summary["group deviation r"] = [evaluation.group_deviation_correlation(e)
                                    for e in summary.index]
    scores = [k for k in METRICS if k in summary.columns]
    st.markdown("**Mean score per entry** (baselines for context; "
                + "; ".join(f"{METRICS[k].name}: {METRICS[k].direction} is better" for k in scores)
                + ")")
    show_table(with_score_names(summary), "eval_summary", hide_index=False)
    st.caption("group deviation r: correlation of simulated and real differences between "
               "groups (1 = moves between groups exactly as people do; higher is better).")
    models = [e for e in evaluation.entries if not is_baseline(e)]
    cols = st.columns(2)
    score = cols[0].selectbox("Score", scores, key="eval_score",
                              index=scores.index("wasserstein") if "wasserstein" in scores else 0,
                              format_func=lambda k: METRICS[k].name)
    entry = cols[1].selectbox("Checkpoint", models or evaluation.entries, key="eval_entry")
    texts = wording(evaluation)
    show_chart(lambda: heatmap_figure(evaluation.heatmap(entry, score),
                                      METRICS[score].name, texts), key="eval_heatmap")
    st.markdown(f"**Worst-represented groups** ({METRICS[score].name}, {entry})")
    worst = with_wording(evaluation.worst_slices(entry, score, n=5), texts)
    show_table(with_score_names(worst), "eval_worst")
    if len(models) >= 2:
        two_checkpoints(evaluation, models, score)
    st.markdown(f"**Mean {METRICS[score].name} per slice attribute**")
    show_table(evaluation.per_attribute(score), "eval_per_attribute", hide_index=False)
    fairness_section(evaluation, score)
    if len(results) > 1:
        st.markdown(f"**Gap over time** (mean {METRICS[score].name} per wave)")
        frames = [s.assign(wave=w) for w, s in
                  ((w, r.summary().rename_axis("entry").reset_index()) for w, r in results.items())]
        over_time = pd.concat(frames, ignore_index=True)
        if score in over_time:
            show_chart(lambda: waves_figure(over_time, score, METRICS[score].name),
                       key="eval_waves_chart")


def wording(evaluation) -> dict[str, str]:
    """Question id -> full wording, for the questions evaluated."""
    return {r.question.id: r.question.text for r in evaluation.survey_rows}


def with_wording(table: pd.DataFrame, texts: dict[str, str]) -> pd.DataFrame:
    """A table keyed by question_id (column or index) with the question's wording beside it."""
    table = table.copy()
    ids = table["question_id"] if "question_id" in table.columns else table.index.to_series()
    table.insert(1 if "question_id" in table.columns else 0, "question",
                 ids.map(lambda q: texts.get(q, "")).to_numpy())
    return table


def show_verdicts(evaluation) -> None:
    """Each checkpoint's verdict on its held-out rows, and on the rows evaluated here."""
    st.markdown("**How far to trust each checkpoint** (measured on rows it never saw)")
    for text in evaluation.verdicts().values():
        st.info(text)
    models = [e for e in evaluation.entries if not is_baseline(e)]
    with st.expander("The same comparison on the rows evaluated here"):
        st.caption("These rows are held out only if the checkpoint never saw them (see the "
                   "warning above for adapters trained on some of these questions).")
        for entry in models:
            st.write(evaluation.verdict_here(entry))


def two_checkpoints(evaluation, models: list[str], score: str) -> None:
    """Two checkpoints side by side: mean score per question and the difference."""
    cols = st.columns(2)
    first = cols[0].selectbox("Compare", models, key="eval_cmp_a")
    second = cols[1].selectbox("with", [m for m in models if m != first], key="eval_cmp_b")
    table = with_wording(evaluation.compare_entries(first, second, score),
                         wording(evaluation))
    better = "lower" if METRICS[score].direction == "lower" else "higher"
    st.markdown(f"**{first} vs {second}**: mean {METRICS[score].name} per question "
                f"({better} is better; difference = second - first)")
    show_table(table, "eval_two_checkpoints", hide_index=False)


def main() -> None:
    """Draw the page."""
    st.header("Evaluate a checkpoint on a whole survey")
    _, survey = survey_picker("eval")
    if survey is None:
        return
    by, waves, ids, checkpoints, config = settings(survey)
    if on_server():
        privacy_note()
        if checkpoints and not no_served_model():
            show_plan(lambda models: sum((plan_evaluate(models, survey, by=by, wave=wave,
                                                        questions=ids, config=config)
                                          for wave in waves), RunPlan()),
                      checkpoints, config.max_requests)
    if st.button("Evaluate", type="primary", key="eval_run", disabled=not checkpoints):
        run(survey, by, waves, ids, checkpoints, config)
    if st.session_state.get("eval_results"):
        evaluation = st.session_state["eval_evaluation"]
        previous_result_note("eval", f"the evaluation of {evaluation.survey_name}")
        show(st.session_state["eval_results"])
    st.divider()
    population_level_section(survey, by, waves[-1], ids, checkpoints, config)
    st.divider()
    individual_section(survey, ids, checkpoints, config)


if __name__ == "__main__":
    run_page(main)
