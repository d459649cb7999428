"""Evaluate page, fairness view: gap per group against group size with the noise floor,
the spread across groups, and the groups whose gap grew (sim_core.evaluation.fairness)."""

from __future__ import annotations

import streamlit as st

from dashboard.charts import fairness_figure
from dashboard.display import show_chart, show_table
from sim_core.base.labels import is_baseline
from sim_core.base.metrics import METRICS
from sim_core.evaluation.fairness import gap_changes, group_gaps


def fairness_section(evaluation, score: str) -> None:
    """Draw the fairness view of one checkpoint (and its change against another)."""
    models = [e for e in evaluation.entries if not is_baseline(e)] or evaluation.entries
    name = METRICS[score].name
    st.markdown(f"**Fairness: {name} per group against group size**")
    cols = st.columns(2)
    entry = cols[0].selectbox("Checkpoint", models, key="eval_fair_entry",
                              index=len(models) - 1)
    others = [m for m in models if m != entry]
    before = cols[1].selectbox("Compare with (before fine-tuning)", ["(none)", *others],
                               key="eval_fair_before", index=1 if others else 0)
    gaps = group_gaps(evaluation, entry, score)
    table = gaps.table
    if before != "(none)":
        changes = gap_changes(group_gaps(evaluation, before, score), gaps)
        table = table.merge(changes[["group", "before", "change", "grew", "beyond_noise"]],
                            on="group", how="left")
    spread = gaps.spread
    metrics = st.columns(4)
    metrics[0].metric("Mean gap", f"{spread['mean_gap']:.4f}")
    metrics[1].metric("SD across groups", f"{spread['sd']:.4f}")
    metrics[2].metric("Range (max - min)", f"{spread['range']:.4f}")
    metrics[3].metric("Groups", spread["groups"])
    if table["n_eff"].notna().any():
        show_chart(lambda: fairness_figure(table, gaps.curve, name),
                   key="eval_fair_chart")
        st.caption("Dotted: the noise floor, the gap a perfect simulator would still show "
                   "against a real sample of that size (mean over the questions). A small "
                   "group's gap is read against its higher floor.")
    else:
        st.caption("This survey gives no group sizes: gaps are listed without n.")
    if before != "(none)":
        grew = table[table["grew"].fillna(False).astype(bool)]
        st.markdown(f"Gap grew for **{len(grew)} of {len(table)}** groups against "
                    f"{before} ({int(grew['beyond_noise'].sum())} by more than their noise "
                    "floor).")
    show_table(table, "eval_fair_table")
