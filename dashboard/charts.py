"""Plotly figures for the dashboard; colours from sim_core.report.palette, numbers from the core."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sim_core.base.labels import is_baseline
from sim_core.report import palette

# Bars: a fixed panel height and gap (pixels), so the figure grows with the slices instead
# of squeezing them; plotly's facet_row_spacing is a fraction of the plot height and must stay
# below 1 / (rows - 1), which a fixed fraction breaks from about 19 slices.
PANEL_HEIGHT, PANEL_GAP, BAR_MARGINS = 240, 80, 90
SLICES_PER_PAGE = 12
"""Above this many slices the page shows a slice x option heatmap or pages of bars."""


def slice_pages(shares: pd.DataFrame, per_page: int = SLICES_PER_PAGE) -> list[list[str]]:
    """The slices of a shares table cut into pages of `per_page`, in table order."""
    slices = list(dict.fromkeys(shares["slice"].astype(str)))
    return [slices[i:i + per_page] for i in range(0, len(slices), per_page)] or [[]]


def _with_errors(shares: pd.DataFrame, show_baselines: bool) -> pd.DataFrame:
    """The shares table with err_plus / err_minus (real CI, else prediction interval)."""
    df = shares.copy()
    if not show_baselines:
        df = df[~df["entry"].map(is_baseline)]
    low = df["ci_low"].fillna(df["pi_low"]) if "pi_low" in df else df["ci_low"]
    high = df["ci_high"].fillna(df["pi_high"]) if "pi_high" in df else df["ci_high"]
    df["err_plus"] = (high - df["share"]).astype(float)
    df["err_minus"] = (df["share"] - low).astype(float)
    return df


LEGEND_BELOW = 70     # px under the panels for a horizontal legend (up to three lines)


def comparison_figure(shares: pd.DataFrame, *, show_baselines: bool = True,
                      slices: list[str] | None = None) -> go.Figure:
    """Grouped bars of real vs simulated shares, one panel per slice; error bars: the real
    shares' 95 % interval and a calibrated checkpoint's prediction interval.

    Args:
        shares: Comparison.shares_table() (slice, entry, option, share, ci_low, ci_high,
            pi_low, pi_high).
        show_baselines: draw the "baseline: ..." entries too.
        slices: draw only these slices (a page of slice_pages); None: all.
    Returns:
        The figure (one trace per entry and panel); panels keep a fixed height for any
        number of slices.
    """
    df = _with_errors(shares, show_baselines)
    if slices is not None:
        df = df[df["slice"].astype(str).isin(slices)]
    entries = list(dict.fromkeys(df["entry"].astype(str)))
    n_slices = max(df["slice"].nunique(), 1)
    # long option labels are wrapped onto lines (never rotated into the panel below), each
    # panel then takes the full width, and the gap between panels grows with the lines, so
    # no label covers the next panel's title
    labels = {o: wrap_label(str(o)) for o in df["option"].unique()}
    long_labels = any("<br>" in label for label in labels.values())
    wrap = 1 if n_slices == 1 or long_labels else 2
    rows = -(-n_slices // wrap)
    df["option"] = df["option"].map(labels)
    lines = max((label.count("<br>") + 1 for label in labels.values()), default=1)
    gap = PANEL_GAP + (lines - 1) * LABEL_LINE
    plot_height = rows * PANEL_HEIGHT + (rows - 1) * gap
    fig = px.bar(df, x="option", y="share", color="entry", barmode="group",
                 facet_col="slice", facet_col_wrap=wrap, error_y="err_plus",
                 error_y_minus="err_minus", color_discrete_map=palette.entry_colors(entries),
                 category_orders={"entry": entries, "option": list(labels.values())},
                 facet_row_spacing=gap / plot_height,
                 hover_data={"err_plus": False, "err_minus": False})
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    # the legend runs along the bottom (it wraps on a narrow window instead of taking half
    # the chart's width at 800 px)
    fig.update_layout(height=plot_height + BAR_MARGINS + LEGEND_BELOW + (lines - 1) * LABEL_LINE,
                      legend_title_text="", yaxis_title="share",
                      margin=dict(t=40, b=50 + LEGEND_BELOW + (lines - 1) * LABEL_LINE),
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom",
                                  x=0, xanchor="left"))
    fig.update_yaxes(range=[0, 1], matches="y")
    fig.update_xaxes(matches=None, showticklabels=True, title_text="", tickangle=0)
    return fig


LABEL_LINE = 15     # px per line of a wrapped option label
LABEL_WIDTH = 10    # characters per line (five options fit a panel 320 px wide)


def wrap_label(text: str, width: int = LABEL_WIDTH, max_lines: int = 4) -> str:
    """An option label on lines of about `width` characters (plotly's <br>), cut with "…"
    after `max_lines` (the full wording is in the hover, the table and the prompt)."""
    import textwrap

    lines = textwrap.wrap(text, width=width, break_long_words=True) or [text]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "<br>".join(lines)


def slice_heatmap_figure(shares: pd.DataFrame, *, show_baselines: bool = True) -> go.Figure:
    """Slice x option heatmap of the shares, one panel per entry (real first), for many
    slices: every slice on one readable row, the share printed in each cell.

    Args:
        shares: Comparison.shares_table().
        show_baselines: draw the "baseline: ..." entries too.
    Returns:
        The figure (one heatmap trace per entry, slices top to bottom in table order).
    """
    df = shares if show_baselines else shares[~shares["entry"].map(is_baseline)]
    entries = list(dict.fromkeys(df["entry"].astype(str)))
    slices = list(dict.fromkeys(df["slice"].astype(str)))
    options = list(dict.fromkeys(df["option"].astype(str)))
    fig = make_subplots(rows=1, cols=len(entries), shared_yaxes=True,
                        subplot_titles=entries, horizontal_spacing=0.02)
    for col, entry in enumerate(entries, start=1):
        part = df[df["entry"].astype(str) == entry]
        grid = part.pivot_table(index="slice", columns="option", values="share",
                                aggfunc="first").reindex(index=slices, columns=options)
        z = grid.to_numpy(dtype=float)
        fig.add_trace(go.Heatmap(
            z=z, x=options, y=slices, zmin=0, zmax=1, coloraxis="coloraxis", name=entry,
            text=[[f"{v:.2f}" if v == v else "" for v in row] for row in z],
            texttemplate="%{text}", hovertemplate=f"{entry}<br>%{{y}}<br>%{{x}}: "
                                                  "%{z:.3f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    fig.update_xaxes(tickangle=-30)
    fig.update_layout(height=max(360, 22 * len(slices) + 200), margin=dict(t=50, l=10),
                      coloraxis=dict(colorscale=palette.HEATMAP_SCALE, cmin=0, cmax=1,
                                     colorbar=dict(title="share", len=0.6, thickness=14)))
    return fig


HEATMAP_ROW = 34
"""Pixels per question row of the Evaluate heatmap (the figure grows with the questions)."""


def heatmap_figure(table: pd.DataFrame, score_name: str,
                   wording: dict[str, str] | None = None) -> go.Figure:
    """Heatmap of a question x slice score table (Evaluation.heatmap): one labelled row per
    question (its wording on hover), every slice labelled, a colour bar of fixed size.

    Args:
        table: question_id index x slice columns.
        score_name: the score's display name (colour bar and hover).
        wording: question id -> full question text, shown on hover.
    """
    wording = wording or {}
    questions = [str(q) for q in table.index]
    slices = [str(c) for c in table.columns]
    z = table.to_numpy(dtype=float)
    hover = [[wording.get(q, q)[:200] for _ in slices] for q in questions]
    fig = go.Figure(go.Heatmap(
        z=z, x=slices, y=questions, customdata=hover, colorscale=palette.HEATMAP_SCALE,
        hovertemplate="%{y}: %{customdata}<br>%{x}<br>" + score_name
                      + ": %{z:.4f}<extra></extra>",
        colorbar=dict(title=dict(text=score_name, side="right"), thickness=16,
                      lenmode="pixels", len=max(120, min(300, HEATMAP_ROW * len(questions))))))
    longest = max((len(s) for s in slices), default=0)
    bottom = 40 + min(longest, 40) * 6          # room for the slanted slice labels
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=questions,
                     ticktext=questions, title_text="question")
    fig.update_xaxes(tickmode="array", tickvals=slices, ticktext=slices, tickangle=-40,
                     title_text="")
    fig.update_layout(height=max(260, HEATMAP_ROW * len(questions)) + bottom + 40,
                      margin=dict(t=30, b=bottom))
    return fig


def waves_figure(summary: pd.DataFrame, score: str, score_name: str) -> go.Figure:
    """Line chart of a summary score per wave (columns wave, entry, <score>)."""
    entries = list(dict.fromkeys(summary["entry"].astype(str)))
    fig = px.line(summary, x="wave", y=score, color="entry", markers=True,
                  color_discrete_map=palette.entry_colors(entries))
    fig.update_layout(yaxis_title=score_name, legend_title_text="")
    return fig


def loss_figure(history: pd.DataFrame) -> go.Figure:
    """Training loss (and validation score where present) per step."""
    fig = go.Figure()
    if "loss" in history:
        fig.add_trace(go.Scatter(x=history["step"], y=history["loss"], name="training loss",
                                 mode="lines", line=dict(color=palette.checkpoint_color(0))))
    if "val" in history and history["val"].notna().any():
        val = history.dropna(subset=["val"])
        fig.add_trace(go.Scatter(x=val["step"], y=val["val"], name="validation", yaxis="y2",
                                 mode="lines+markers",
                                 line=dict(color=palette.checkpoint_color(1))))
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", title="validation"))
    fig.update_layout(xaxis_title="step", yaxis_title="loss", height=320, margin=dict(t=30))
    # steps are whole numbers: ticks every n steps (about ten ticks), never at 1.2, 1.4
    last = int(history["step"].max()) if len(history) else 1
    fig.update_xaxes(tick0=0, dtick=max(1, -(-last // 10)), tickformat="d")
    return fig


def fairness_figure(table: pd.DataFrame, curve: pd.DataFrame, score_name: str) -> go.Figure:
    """Gap per group against its effective n (log scale) with the noise floor as a curve.

    Args:
        table: GroupGaps.table (group, attribute, n_eff, gap), optionally with a `grew`
            column (groups whose gap grew are drawn with a red ring).
        curve: GroupGaps.curve (n, floor).
        score_name: axis title.
    """
    df = table.dropna(subset=["n_eff"])
    fig = px.scatter(df, x="n_eff", y="gap", color="attribute", hover_name="group",
                     log_x=True, labels={"n_eff": "effective n of the group", "gap": score_name})
    if "grew" in df and df["grew"].any():
        grown = df[df["grew"]]
        fig.add_trace(go.Scatter(x=grown["n_eff"], y=grown["gap"], mode="markers",
                                 name="gap grew", hovertext=grown["group"],
                                 marker=dict(size=16, symbol="circle-open",
                                             color="#D55E00", line=dict(width=2))))
    if len(curve):
        fig.add_trace(go.Scatter(x=curve["n"], y=curve["floor"], mode="lines",
                                 name="noise floor", line=dict(color=palette.REAL_COLOR,
                                                               dash="dot")))
    fig.update_layout(height=380, margin=dict(t=30), legend_title_text="")
    return fig


def tradeoff_figure(curves: dict[str, pd.DataFrame], chosen: dict[str, float],
                    baselines: pd.DataFrame, x: str = "rmse") -> go.Figure:
    """Population KL against an individual score, one line per checkpoint through its
    temperatures (labelled), the chosen temperature starred, baselines as grey points.

    Args:
        curves: checkpoint label -> Sweep.curve rows of one part (temperature, scores).
        chosen: checkpoint label -> chosen temperature.
        baselines: rows of IndividualResult.summary() for the baselines (entry, scores).
        x: the individual score on the x axis ("rmse", or "log_loss" without ordinal
            questions).
    """
    fig = go.Figure()
    colors = palette.entry_colors(list(curves) + list(baselines["entry"]))
    for label, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve[x], y=curve["kl"], mode="lines+markers+text",
                                 name=label, text=[f"T={t:g}" for t in curve["temperature"]],
                                 textposition="top center",
                                 line=dict(color=colors[label])))
        best = curve[curve["temperature"] == chosen[label]]
        fig.add_trace(go.Scatter(x=best[x], y=best["kl"], mode="markers", showlegend=False,
                                 name=f"{label}: chosen", hoverinfo="name",
                                 marker=dict(symbol="star", size=18, color=colors[label])))
    for row in baselines.to_dict(orient="records"):
        fig.add_trace(go.Scatter(x=[row[x]], y=[row["kl"]], mode="markers+text",
                                 name=row["entry"], text=[row["entry"].split(": ")[-1]],
                                 textposition="bottom center",
                                 marker=dict(color=colors[row["entry"]], size=10)))
    fig.update_layout(height=420, margin=dict(t=30), legend_title_text="",
                      xaxis_title=f"individual {x.replace('_', '-')} (lower is better)",
                      yaxis_title="population KL (lower is better)")
    return fig


def population_levels_figure(data: pd.DataFrame, score_name: str) -> go.Figure:
    """One score per question at two levels, side by side: the population estimate against
    the real topline, and the groups against their real groups (mean over the cells).

    Args:
        data: PopulationEvaluation.chart_data() (question_id, entry, population, groups).
        score_name: the score's display name (y axis).
    """
    long = data.melt(id_vars=["question_id", "entry"], value_vars=["population", "groups"],
                     var_name="level", value_name="score")
    long["level"] = long["level"].map({"population": "population (estimate vs topline)",
                                       "groups": "groups (each cell vs its real group)"})
    entries = list(dict.fromkeys(long["entry"].astype(str)))
    fig = px.bar(long, x="question_id", y="score", color="entry", barmode="group",
                 facet_col="level", color_discrete_map=palette.entry_colors(entries),
                 category_orders={"entry": entries})
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_yaxes(title_text="", matches="y")
    fig.update_yaxes(title_text=score_name, col=1)
    fig.update_xaxes(title_text="", tickangle=-30)
    fig.update_layout(height=420, legend_title_text="", margin=dict(t=40, b=40 + LEGEND_BELOW),
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom",
                                  x=0, xanchor="left"))
    return fig
