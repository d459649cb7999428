"""The PDF section of the population estimates (sim_core.report.population_part): per
question, bars of the estimate with its prediction interval beside the real topline with its
95 % interval and the baselines, the scores, and the composition used."""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sim_core.base.labels import NOISE_FLOOR, REAL
from sim_core.base.metrics import best_entry
from sim_core.report import palette
from sim_core.report.pdf_kit import (
    BEST,
    BOLD,
    ENTRY_MM,
    MUTED,
    SCORE_MM,
    SCORES_PER_TABLE,
    add_heading,
    add_image,
    add_paragraph,
    add_table,
    figure_png,
    format_score,
    one_line,
    plain_rows,
    plain_text_charts,
)
from sim_core.report.population_part import PopulationPart

COMPOSITION_ROWS = 40       # cells listed per question (the CSV and JSON have them all)


def _letters(k: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"#{i + 1}" for i in range(k)]


@plain_text_charts
def population_png(part: PopulationPart) -> tuple[bytes, float]:
    """Bars per option: real (95 % CI), each checkpoint (prediction interval), baselines."""
    series = ([REAL] if part.real is not None else []) + list(part.entries)
    colors = palette.entry_colors(series)
    fig = Figure(figsize=(7.5, 2.6))
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    for j, name in enumerate(series):
        values = part.real if name == REAL else part.entries[name]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(part.options))]
        bounds = ((part.ci_low, part.ci_high) if name == REAL and part.ci_low is not None
                  else part.intervals.get(name))
        err = None if not bounds else [[max(v - lo, 0) for v, lo in zip(values, bounds[0])],
                                       [max(hi - v, 0) for v, hi in zip(values, bounds[1])]]
        ax.bar(xs, values, width, color=colors[name], yerr=err, capsize=1.5,
               error_kw={"elinewidth": 0.7, "ecolor": "#555555"})
    ax.set_xticks(range(len(part.options)), _letters(len(part.options)), fontsize=7)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_ylim(0, 1)
    ax.set_title(textwrap.fill(one_line(f"{part.question_id}: {part.label}", 90), 60),
                 fontsize=8)
    level = f" ({part.interval_level * 100:g} % PI)" if part.interval_level else ""
    labels = ["real (95 % CI)" if n == REAL else one_line(n, 34) +
              (level if n in part.intervals else "") for n in series]
    fig.legend([Patch(color=colors[n]) for n in series], labels, loc="upper right",
               fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.72, 1))
    return figure_png(fig)


def _scores_table(pdf, part: PopulationPart, direction: dict[str, str]) -> None:
    keys = [k for k in direction if any(k in s for s in part.scores.values())]
    keys = ([part.score] if part.score in keys else []) + [k for k in keys if k != part.score]
    for start in range(0, len(keys), SCORES_PER_TABLE):
        chunk = keys[start:start + SCORES_PER_TABLE]
        rows = []
        for entry, values in part.scores.items():
            cells = [(entry, None)]
            for key in chunk:
                best = best_entry({e: v.get(key, float("nan")) for e, v in part.scores.items()},
                                  key, direction=direction[key])
                text = format_score(values.get(key))
                cells.append((text + BEST, BOLD) if entry == best else (text, None))
            rows.append(cells)
        if part.noise_floor:
            rows.append([(NOISE_FLOOR, MUTED)] + [(format_score(part.noise_floor.get(k)), MUTED)
                                                  for k in chunk])
        add_table(pdf, ["Entry"] + chunk, rows, [ENTRY_MM] + [SCORE_MM] * len(chunk),
                  width=ENTRY_MM + SCORE_MM * len(chunk))


def population_section(pdf, parts: list[PopulationPart], direction: dict[str, str]) -> None:
    """One page per estimate: chart, intervals, scores, composition and notes.

    Args:
        direction: score key -> "lower" / "higher" (from the report's score list).
    """
    for part in parts:
        pdf.add_page()
        add_heading(pdf, f"Population estimate: {part.question_id} ({part.label})")
        add_paragraph(pdf, "Options: " + "; ".join(
            f"{letter}. {option}" for letter, option in zip(_letters(len(part.options)),
                                                             part.options)), 8.5)
        add_image(pdf, population_png(part))
        rows = [[REAL, part.real_label or "—"]] if part.real is not None else []
        rows += [[e, f"{part.interval_methods.get(e, '')}: " + ", ".join(
            f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(*part.intervals[e]))]
            for e in part.intervals]
        if rows:
            add_table(pdf, ["Entry", "What it is / prediction interval per option"],
                      plain_rows(rows), [1, 4], size=7.5)
        if part.scores:
            _scores_table(pdf, part, direction)
        else:
            add_paragraph(pdf, "No real answer to compare with: no scores.", 9, "I")
        add_heading(pdf, f"Composition: {part.composition_source}", 10)
        cells = [[label, f"{share:.4f}"] for label, share in part.composition[:COMPOSITION_ROWS]]
        add_table(pdf, ["Cell", "Population share"], plain_rows(cells), [4, 1], size=7)
        left = len(part.composition) - COMPOSITION_ROWS
        notes = ([f"{left} more cells in the CSV and JSON exports."] if left > 0 else []) \
            + part.notes
        for note in notes:
            add_paragraph(pdf, note, 7.5, "I")
