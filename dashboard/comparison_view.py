"""Simulate & compare, the slices of a result: the question and how it was asked, each
checkpoint's verdict, the shares chart (bars, or a heatmap for many slices), the shares and
score tables, the exact prompt (sim_core.evaluation.compare.Comparison)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import SLICES_PER_PAGE, comparison_figure, slice_heatmap_figure, slice_pages
from dashboard.display import score_header, show_chart
from sim_core.base.metrics import METRICS
from sim_core.evaluation.verdict import default_score
from sim_core.simulation.config import MODES


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


def shares_rows(long: pd.DataFrame, options: list[str]) -> pd.DataFrame:
    """The shares behind a chart (a shares_table: Comparison's or PopulationEstimate's): one
    row per slice and entry, one column per option, in per cent; an interval (real: 95 %
    CI; a checkpoint: prediction interval) follows in brackets."""
    long = long.copy()

    def cell(row) -> str:
        low, high = (row.ci_low, row.ci_high) if pd.notna(row.ci_low) else (row.pi_low,
                                                                            row.pi_high)
        text = f"{row.share * 100:.1f}"
        return text if pd.isna(low) else f"{text} ({low * 100:.1f}–{high * 100:.1f})"

    long["cell"] = [cell(row) for row in long.itertuples()]
    wide = long.pivot_table(index=["slice", "entry"], columns="option", values="cell",
                            aggfunc="first", sort=False)
    return wide.reindex(columns=list(options)).reset_index()


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


def settings_text(comparison) -> str:
    """The checkpoints and how they were asked (mode, option orders or samples), in a line."""
    config = comparison.config
    parts = [f"Checkpoints: {', '.join(c['label'] for c in comparison.checkpoints)}",
             f"mode: {MODES[config.mode].label}"]
    if config.mode == "sample":
        parts.append(f"{config.samples} samples per slice")
    else:
        parts.append("option orders averaged: " + ", ".join(
            f"{c['label']} {c['orders']}" for c in comparison.checkpoints))
    if comparison.wave:
        parts.append(f"wave {comparison.wave}")
    return " · ".join(parts)


def show_comparison_header(comparison) -> None:
    """The question, the checkpoints and mode, the notes and each checkpoint's verdict."""
    show_question_heading(comparison.question.text)
    if not any(sc.real is not None for sc in comparison.slices):
        st.info("No real data for this question: the simulated shares are shown, "
                "there is nothing to compare them with.")
    st.caption(settings_text(comparison))
    for note in comparison.notes:
        st.caption(note)
    st.markdown("**How far to trust these bars** (each checkpoint measured on rows it never "
                "saw)")
    for checkpoint in comparison.checkpoints:
        st.info(checkpoint["verdict"])


def show_slices(comparison) -> None:
    """Chart, shares table, prompt and score tables of a Comparison's slices."""
    config = comparison.config
    show_shares_chart(comparison)
    st.caption("Error bars: the real shares' 95 % interval; a calibrated checkpoint's "
               f"{config.interval_level * 100:g} % prediction interval (split conformal on "
               "its validation residuals).")
    with st.expander("Shares as a table (per cent; intervals in brackets)"):
        st.dataframe(shares_rows(comparison.shares_table(), comparison.question.options),
                     hide_index=True, key="sim_shares")
    first = next(iter(comparison.slices[0].simulated.values()), None) if comparison.slices else None
    if first is not None:
        with st.expander("Exact prompt (first slice, original option order)"):
            st.code(first.prompt, language=None)
    if any(sc.real is not None for sc in comparison.slices):
        show_scores(comparison)
