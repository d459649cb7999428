"""Colours shared by the dashboard charts (plotly) and the PDF report (matplotlib).

One place so that "real data" or "checkpoint 2" has the same colour on screen and on paper.
Checkpoint colours are the Okabe-Ito colour-blind-safe set; real data is near-black and
baselines are greys, so the eye goes to the model bars first. All colours are "#rrggbb"
strings, which both plotly and matplotlib accept.
"""

from __future__ import annotations

from sim_core.base.labels import REAL, baseline_name, is_baseline

REAL_COLOR = "#222222"
"""Real survey data (bars, error bars, lines)."""

BASELINES: dict[str, str] = {
    "uniform": "#d0d0d0",
    "population": "#a0a0a0",
    "classifier": "#707070",
    "boosting": "#505050",
    "svr": "#8c8c8c",
}
"""Baseline name (as in sim_core.evaluation.baselines / "baseline: <name>" entries) -> colour."""

BASELINE_OTHER = "#b8b8b8"
"""Any baseline not named in BASELINES."""

CHECKPOINTS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
)
"""Up to six checkpoints, in the order they were chosen; a seventh reuses the first."""

HEATMAP_SCALE = "YlOrRd"
"""Sequential colour scale for score heatmaps (lower = lighter); a name known to both
matplotlib and plotly."""


def checkpoint_color(index: int) -> str:
    """Colour of the index-th checkpoint (0-based); cycles after six."""
    return CHECKPOINTS[index % len(CHECKPOINTS)]


def baseline_color(name: str) -> str:
    """Colour of a baseline, given "population" or "baseline: population"."""
    return BASELINES.get(baseline_name(name), BASELINE_OTHER)


def entry_colors(entries: list[str]) -> dict[str, str]:
    """Colour for every entry of a comparison.

    Args:
        entries: entry labels in display order: checkpoint labels, "baseline: <name>"
            entries, and optionally sim_core.base.labels.REAL.

    Returns:
        entry -> colour; checkpoints are numbered in the order they appear.
    """
    colors: dict[str, str] = {}
    index = 0
    for entry in entries:
        if entry == REAL:
            colors[entry] = REAL_COLOR
        elif is_baseline(entry):
            colors[entry] = baseline_color(entry)
        else:
            colors[entry] = checkpoint_color(index)
            index += 1
    return colors
