"""Dashboard charts (dashboard/charts.py): bars, error bars and colours from the palette."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.charts import (
    PANEL_HEIGHT,
    comparison_figure,
    heatmap_figure,
    loss_figure,
    slice_heatmap_figure,
    slice_pages,
)
from sim_core.report import palette


def test_comparison_figure_hides_baselines():
    """The chart keeps one bar per (entry, slice, option) and drops baselines on request."""
    rows = []
    for sl in ("A", "B"):
        for entry in ("real", "model", "baseline: uniform"):
            for opt in ("x", "y", "z"):
                real = entry == "real"
                rows.append({"slice": sl, "entry": entry, "option": opt, "share": 1 / 3,
                             "ci_low": 0.2 if real else np.nan, "ci_high": 0.5 if real else np.nan})
    shares = pd.DataFrame(rows)
    fig = comparison_figure(shares)
    assert sum(len(t.x) for t in fig.data) == 2 * 3 * 3
    fig = comparison_figure(shares, show_baselines=False)
    assert sum(len(t.x) for t in fig.data) == 2 * 2 * 3
    real = [t for t in fig.data if t.name == "real"][0]
    assert real.error_y.array[0] == pytest.approx(0.5 - 1 / 3)
    assert real.marker.color == palette.REAL_COLOR
    model = [t for t in fig.data if t.name == "model"][0]
    assert model.marker.color == palette.checkpoint_color(0)


def test_comparison_figure_draws_prediction_intervals_on_simulated_bars():
    """A calibrated checkpoint's prediction interval becomes its error bars; entries
    without one get none."""
    rows = []
    for entry in ("real", "model", "baseline: uniform"):
        for opt, share in (("x", 0.6), ("y", 0.4)):
            rows.append({"slice": "All", "entry": entry, "option": opt, "share": share,
                         "ci_low": share - 0.05 if entry == "real" else np.nan,
                         "ci_high": share + 0.05 if entry == "real" else np.nan,
                         "pi_low": share - 0.2 if entry == "model" else np.nan,
                         "pi_high": min(share + 0.3, 1.0) if entry == "model" else np.nan})
    fig = comparison_figure(pd.DataFrame(rows))
    model = [t for t in fig.data if t.name == "model"][0]
    assert list(model.error_y.array) == pytest.approx([0.3, 0.3])
    assert list(model.error_y.arrayminus) == pytest.approx([0.2, 0.2])
    real = [t for t in fig.data if t.name == "real"][0]
    assert list(real.error_y.array) == pytest.approx([0.05, 0.05])
    uniform = [t for t in fig.data if t.name == "baseline: uniform"][0]
    assert all(np.isnan(v) for v in uniform.error_y.array)


def test_loss_figure_has_validation_axis():
    """Loss per step and the validation points on a second axis."""
    history = pd.DataFrame({"step": [1, 2, 3], "loss": [0.9, 0.7, 0.6], "val": [None, 0.3, None]})
    fig = loss_figure(history)
    assert [t.name for t in fig.data] == ["training loss", "validation"]
    assert list(fig.data[1].x) == [2] and fig.data[1].yaxis == "y2"


def _many_slices(n: int) -> pd.DataFrame:
    """A shares table with n slices, entries real + model, options x/y (x share = i/100)."""
    rows = []
    for i in range(n):
        for entry in ("real", "model"):
            for opt, share in (("x", i / 100), ("y", 1 - i / 100)):
                rows.append({"slice": f"s{i:02d}", "entry": entry, "option": opt,
                             "share": share, "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", [1, 19, 20, 47, 120])
def test_comparison_figure_scales_to_many_slices(n):
    """Plotly refused a fixed facet_row_spacing from ~19 slices; any count now draws, each
    panel keeps its height (the figure grows by rows of two panels)."""
    fig = comparison_figure(_many_slices(n))
    panels = {t.xaxis for t in fig.data}
    assert len(panels) == n
    rows = -(-n // (1 if n == 1 else 2))
    assert fig.layout.height >= rows * PANEL_HEIGHT


def test_slice_pages_cut_in_order():
    """47 slices: pages of 12, 12, 12, 11, in table order; a page draws only its slices."""
    shares = _many_slices(47)
    pages = slice_pages(shares)
    assert [len(p) for p in pages] == [12, 12, 12, 11]
    assert pages[3][0] == "s36" and pages[3][-1] == "s46"
    fig = comparison_figure(shares, slices=pages[3])
    titles = {a.text for a in fig.layout.annotations}
    assert titles == set(pages[3])


def test_slice_heatmap_holds_every_share():
    """Slice x option heatmap: one panel per entry, every slice a row, cells = the shares."""
    shares = _many_slices(47)
    shares.loc[shares["entry"] == "model", "share"] = 0.5
    fig = slice_heatmap_figure(shares)
    assert [t.name for t in fig.data] == ["real", "model"]
    real = fig.data[0]
    assert list(real.y) == [f"s{i:02d}" for i in range(47)] and list(real.x) == ["x", "y"]
    z = np.asarray(real.z, dtype=float)
    assert z[:, 0] == pytest.approx(np.arange(47) / 100)
    assert z[:, 1] == pytest.approx(1 - np.arange(47) / 100)
    assert np.asarray(fig.data[1].z, dtype=float) == pytest.approx(np.full((47, 2), 0.5))
    assert fig.layout.height >= 22 * 47     # a readable row per slice
    with_baseline = pd.concat([shares, shares[shares["entry"] == "model"].assign(
        entry="baseline: uniform")])
    assert len(slice_heatmap_figure(with_baseline, show_baselines=False).data) == 2


def test_evaluate_heatmap_labels_every_question_and_grows():
    """Five questions: every question and slice labelled, wording on hover, a row height
    that does not shrink, a colour bar of at least 120 px; more questions, a taller chart."""
    table = pd.DataFrame(np.arange(15, dtype=float).reshape(5, 3) / 15,
                         index=[f"q{i}" for i in range(5)],
                         columns=["sex=Female", "sex=Male", "age=18-29"])
    wording = {f"q{i}": f"Full wording of question {i}?" for i in range(5)}
    fig = heatmap_figure(table, "Wasserstein distance", wording)
    (trace,) = fig.data
    assert list(fig.layout.yaxis.tickvals) == list(table.index)
    assert list(fig.layout.xaxis.tickvals) == list(table.columns)
    assert [row[0] for row in trace.customdata] == [wording[q] for q in table.index]
    assert np.asarray(trace.z, dtype=float) == pytest.approx(table.to_numpy())
    assert trace.colorbar.lenmode == "pixels" and trace.colorbar.len >= 120
    plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert plot / 5 >= 30                                  # ~34 px a question row
    tall = pd.concat([table] * 4, ignore_index=False)
    tall.index = [f"q{i}" for i in range(20)]
    assert heatmap_figure(tall, "x").layout.height > fig.layout.height


def test_loss_chart_ticks_whole_steps():
    """Three steps: a tick every step, shown as integers (no 1.2, 1.4); 100 steps: every 10."""
    import pandas as pd

    from dashboard.charts import loss_figure

    short = loss_figure(pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.5, 0.3]}))
    assert short.layout.xaxis.dtick == 1 and short.layout.xaxis.tickformat == "d"
    long = loss_figure(pd.DataFrame({"step": range(1, 101), "loss": [1.0] * 100}))
    assert long.layout.xaxis.dtick == 10


def test_long_option_labels_wrap_and_leave_room_under_each_panel():
    """"Somewhat more than now" and the like: wrapped on lines of about ten characters,
    never rotated, one panel per row, and the gap under a panel holds the label lines plus
    the next title (they overlapped the next panel's title before)."""
    from dashboard.charts import LABEL_LINE, PANEL_GAP, wrap_label

    options = ["Much more than now", "Somewhat more than now", "About the same as now"]
    rows = [{"slice": s, "entry": "model", "option": o, "share": 1 / 3, "ci_low": np.nan,
             "ci_high": np.nan} for s in ("SEX=Female", "SEX=Male", "AGE=18-29")
            for o in options]
    fig = comparison_figure(pd.DataFrame(rows))
    assert wrap_label("Somewhat more than now") == "Somewhat<br>more than<br>now"
    assert fig.layout.xaxis.tickangle == 0
    assert set(fig.data[0].x) <= {wrap_label(o) for o in options}
    domains = sorted({tuple(fig.layout[k].domain) for k in fig.layout
                      if k.startswith("yaxis")}, reverse=True)
    assert len(domains) == 3                       # one panel per row
    plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    gaps_px = [(upper[0] - lower[1]) * plot for upper, lower in zip(domains, domains[1:])]
    assert all(gap >= PANEL_GAP + 2 * LABEL_LINE - 1 for gap in gaps_px)
    # short labels: unchanged, two panels per row
    short = comparison_figure(_many_slices(4))
    assert len({tuple(short.layout[k].domain) for k in short.layout
                if k.startswith("yaxis")}) == 2
