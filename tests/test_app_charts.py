"""Dashboard charts (pages/charts.py): bars, error bars and colours from the palette."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pages.charts import comparison_figure, loss_figure
from sim_core import palette


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
