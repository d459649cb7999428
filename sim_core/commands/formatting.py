"""Plain-text and JSON formatting shared by the commands that print scores."""

from __future__ import annotations

import textwrap

import numpy as np

from sim_core.base.metrics import METRICS

SCORE_WIDTH = 12


def floats(values) -> list[float] | None:
    """Rounded floats for JSON (None stays None, NaN becomes None)."""
    if values is None:
        return None
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def score_legend(keys) -> str:
    """One line naming each score shown and which direction is better."""
    text = "scores: " + "; ".join(f"{k} = {METRICS[k].name} ({METRICS[k].direction} is better)"
                                  for k in keys)
    return textwrap.fill(text, width=100, subsequent_indent="  ")


def format_rows(options, rows: list[tuple[str, np.ndarray | None, dict]], keys,
                best: dict[str, str | None],
                intervals: dict[str, tuple[str, list[str]]] | None = None) -> str:
    """Aligned table: entry, share per option, then scores; '*' marks the best entry;
    `intervals` (entry -> row name, text per option) adds a row under that entry."""
    intervals = intervals or {}
    width = max([len("entry")] + [len(name) for name, _, _ in rows]
                + [len(name) for name, _ in intervals.values()]) + 2
    head = "entry".ljust(width) + "".join(f"{o[:11]:>{SCORE_WIDTH}}" for o in options)
    lines = [head + "".join(f"{k:>{SCORE_WIDTH}}" for k in keys)]
    for name, shares, scores in rows:
        cells = "".join(f"{'':>{SCORE_WIDTH}}" if shares is None else f"{s:>{SCORE_WIDTH}.3f}"
                        for s in (shares if shares is not None else options))
        for k in keys:
            value = scores.get(k)
            text = "-" if value is None or not np.isfinite(value) else f"{value:.4g}"
            text += "*" if best.get(k) == name else " "
            cells += f"{text:>{SCORE_WIDTH}}"
        lines.append(name.ljust(width) + cells)
        if name in intervals:
            label, texts = intervals[name]
            lines.append(label.ljust(width) + "".join(f"{x:>{SCORE_WIDTH}}" for x in texts))
    return "\n".join(line.rstrip() for line in lines)


def slice_heading(label: str, real) -> str:
    """'sex=Female (n 60, n_eff 58.2)', with a warning when the slice is small."""
    if real is None:
        return f"{label} (no real data)"
    n = "-" if real.n is None else str(real.n)
    n_eff = "-" if real.n_eff is None else f"{real.n_eff:.1f}"
    return f"{label} (n {n}, n_eff {n_eff}){'  SMALL: read with care' if real.too_small else ''}"
