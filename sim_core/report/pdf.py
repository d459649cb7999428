"""PDF rendering of a sim_core.report.document.Report with fpdf2 and matplotlib (Agg, in memory).

Fonts are the DejaVu TTFs that ship inside matplotlib, so accents, Cyrillic and Greek
render without any system library. Tables use fpdf2's table API (headings repeated on
every page, cells wrapped), charts of many slices are split into charts of at most
CHART_SLICES slices, heatmaps into chunks of HEATMAP_ROWS questions.
"""

from __future__ import annotations

import math
import textwrap

from fpdf import FontFace
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sim_core.base.errors import SimError
from sim_core.base.labels import NOISE_FLOOR, REAL, is_baseline
from sim_core.base.metrics import best_entry
from sim_core.report import palette
from sim_core.report.document import QuestionReport, Report, SliceResult
from sim_core.report.pdf_fairness_individual import fairness_section, individual_section
from sim_core.report.pdf_kit import (
    ARROW,
    BEST,
    BOLD,
    CHART_SLICES,
    ENTRY_MM,
    HEATMAP_COLS,
    HEATMAP_ROWS,
    MONO,
    MUTED,
    N_MM,
    PAGE_COUNT,
    PAGE_SIZES,
    SCORE_MM,
    SCORES_PER_TABLE,
    SLICE_MM,
    ReportPDF,
    add_heading,
    add_image,
    add_paragraph,
    add_table,
    checked_output,
    figure_png,
    format_score,
    one_line,
    plain_rows,
    plain_text_charts,
)
from sim_core.report.pdf_population import population_section
from sim_core.survey.nonresponse import REASON_SHORT


def render_pdf(report: Report, page_size: str = "A4") -> bytes:
    """Render the report as a PDF.

    Args:
        report: the Report (sim_core.report.document).
        page_size: "A4" or "Letter" (portrait).

    Returns:
        The PDF file as bytes.
    """
    size = {p.lower(): p for p in PAGE_SIZES}.get(str(page_size).lower())
    if size is None:
        raise SimError(f"Unknown page size '{page_size}': use A4 or Letter.")
    pdf = ReportPDF(report.title, size)
    _title_page(pdf, report)
    for question in report.questions:
        _question_section(pdf, report, question)
    population_section(pdf, report.population_estimates,
                       {s.key: s.direction for s in report.scores})
    if report.evaluation is not None:
        _evaluation_section(pdf, report)
        fairness_section(pdf, report.evaluation.fairness)
    if report.individual is not None:
        individual_section(pdf, report.individual)
    _methods_page(pdf, report)
    pdf.str_alias_nb_pages = PAGE_COUNT    # substituted in the footers as the file is closed
    return checked_output(pdf)


def _card_text(card: dict) -> str:
    """A short, complete-enough summary of an adapter card (the JSON export has it all)."""
    parts = []
    for key, value in card.items():
        if isinstance(value, (list, tuple)):
            shown = ", ".join(str(v) for v in value[:5])
            value = f"{len(value)} items: {shown}{', …' if len(value) > 5 else ''}"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in list(value.items())[:12])
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


# ---------------------------------------------------------------- sections

def _title_page(pdf: ReportPDF, report: Report) -> None:
    pdf.add_page()
    pdf.ln(20)
    add_heading(pdf, report.title, 20)
    facts = [("Date", report.created), ("Survey", report.survey or "— (drafted question)"),
             ("Wave", report.wave or "all"),
             ("Simulation", f"{report.mode}, "
              + (f"{report.orders} option order(s) averaged" if report.orders >= 1
                 else "option orders per checkpoint (see methods)")),
             ("Baselines", ", ".join(report.baselines) or "none")]
    facts += [(k, v) for k, v in (("Population", report.population),
                                  ("Weighting", report.weighting),
                                  ("Intervals", report.intervals)) if v]
    add_table(pdf, None, [[(k, BOLD), (v, None)] for k, v in facts], [1, 4], size=9)
    if report.checkpoints:
        add_heading(pdf, "Checkpoints", 12)
        rows = [[c.get("label", ""), c.get("adapter") or "—", str(c.get("fingerprint") or "—"),
                 _card_text(c.get("card") or {}) or "—"] for c in report.checkpoints]
        add_table(pdf, ["Checkpoint", "Adapter", "Fingerprint", "Adapter card"],
               plain_rows(rows), [3, 2, 2, 5])
    verdicts = [c["verdict"] for c in report.checkpoints if c.get("verdict")]
    if verdicts:
        add_heading(pdf, "How far to trust these simulations (held-out rows)", 12)
        for text in verdicts:
            add_paragraph(pdf, text, 9)
    if report.questions:
        add_heading(pdf, "Questions", 12)
        rows = [[q.id, q.text, str(len(q.slices))] for q in report.questions]
        add_table(pdf, ["Question", "Wording", "Slices"], plain_rows(rows), [2, 9, 1])


def _question_section(pdf: ReportPDF, report: Report, q: QuestionReport) -> None:
    pdf.add_page()
    add_heading(pdf, f"Question {q.id}")
    add_paragraph(pdf, q.text, 10)
    options = []
    for i, option in enumerate(q.options):
        value = q.ordinal_values[i] if q.ordinal_values else None
        suffix = "" if q.ordinal_values is None else (
            " (not ordinal)" if value is None else f" (value {value:g})")
        options.append(f"{_letter(i)}. {option}{suffix}")
    add_paragraph(pdf, "Options: " + "; ".join(options), 8.5)
    if q.by:
        add_paragraph(pdf, "Slices by: " + ", ".join(q.by), 8.5)
    _nonresponse_table(pdf, q)
    entries = [e for e in q.entries() if not is_baseline(e)]
    for start in range(0, len(q.slices), CHART_SLICES):
        add_image(pdf, _bars_png(q, q.slices[start:start + CHART_SLICES], entries,
                              report.interval_level))
    if any(s.scores for s in q.slices):
        _score_summary(pdf, report, q)
        _slice_scores(pdf, report, q)
    else:
        add_paragraph(pdf, "No real data for this question: no scores.", 9, "I")


def _nonresponse_table(pdf: ReportPDF, q: QuestionReport) -> None:
    """Counts and nonresponse per slice, compactly (respondent data only)."""
    slices = [s for s in q.slices if s.n_total is not None]
    if not slices:
        return
    reasons = [r for r in REASON_SHORT if any(r in s.nonresponse for s in slices)]
    rows = [[s.label, str(s.n), str(s.n_asked), str(s.n_total)]
            + [f"{100 * s.nonresponse.get(r, 0.0):.1f} %" for r in reasons] for s in slices]
    headings = ["Slice", "n valid", "n asked", "n all"] + [REASON_SHORT[r] for r in reasons]
    widths = [SLICE_MM, N_MM, N_MM, N_MM] + [N_MM + 4] * len(reasons)
    add_table(pdf, headings, plain_rows(rows), widths, size=7, width=sum(widths))
    add_paragraph(pdf, "Nonresponse: weighted shares of each slice's respondents; never counted as "
          "an answer option.", 7.5, "I")


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"#{i + 1}"


def _score_keys(report: Report, q: QuestionReport) -> list[str]:
    present = {k for s in q.slices for v in s.scores.values() for k in v}
    return [s.key for s in report.scores if s.key in present]


def _score_heading(report: Report, key: str) -> str:
    info = report.score_info(key)
    return f"{info.name} {ARROW.get(info.direction, '')}"


def _score_cells(report: Report, values_by_entry: dict[str, dict[str, float]], entry: str,
                 keys: list[str]) -> list[tuple[str, FontFace | None]]:
    """Formatted score cells of one entry, the best entry per score in bold with a star."""
    cells = []
    for key in keys:
        best = best_entry({e: v.get(key, math.nan) for e, v in values_by_entry.items()},
                          key, direction=report.score_info(key).direction)
        text = format_score(values_by_entry[entry].get(key))
        cells.append((text + BEST, BOLD) if entry == best else (text, None))
    return cells


def _chunks(keys: list[str]) -> list[list[str]]:
    """Scores split so that every score column is wide enough for its heading words."""
    return [keys[i:i + SCORES_PER_TABLE] for i in range(0, len(keys), SCORES_PER_TABLE)] or [[]]


def _score_summary(pdf: ReportPDF, report: Report, q: QuestionReport) -> None:
    means = q.mean_scores()
    floor = q.mean_noise_floor()
    add_heading(pdf, f"Scores, mean over {len(q.slices)} slice(s)", 11)
    for keys in _chunks(_score_keys(report, q)):
        rows = [[(entry, None)] + _score_cells(report, means, entry, keys) for entry in means]
        rows.append([(NOISE_FLOOR, MUTED)]
                    + [(format_score(floor.get(k)), MUTED) for k in keys])
        add_table(pdf, ["Entry"] + [_score_heading(report, k) for k in keys], rows,
               [ENTRY_MM] + [SCORE_MM] * len(keys), width=ENTRY_MM + SCORE_MM * len(keys))
    add_paragraph(pdf, "↓ lower is better, ↑ higher is better; ★ best entry for that score; "
                  "the noise floor is what two independent real samples of the same size would "
                  "score.", 7.5, "I")


def _slice_scores(pdf: ReportPDF, report: Report, q: QuestionReport) -> None:
    chunks = _chunks(_score_keys(report, q))
    for number, keys in enumerate(chunks, 1):
        part = f" ({number}/{len(chunks)})" if len(chunks) > 1 else ""
        add_heading(pdf, f"Scores per slice{part}", 11)
        rows = []
        for s in q.slices:
            n = "—" if s.n_eff is None else f"{s.n_eff:.0f}" + (" (small)" if s.too_small else "")
            for i, entry in enumerate(s.scores):
                first = [(s.label, BOLD), (n, None)] if i == 0 else [("", None), ("", None)]
                rows.append(first + [(entry, None)] + _score_cells(report, s.scores, entry, keys))
            if s.noise_floor:
                rows.append([("", None), ("", None), (NOISE_FLOOR, MUTED)]
                            + [(format_score(s.noise_floor.get(k)), MUTED) for k in keys])
        widths = [SLICE_MM, N_MM, ENTRY_MM - 8] + [SCORE_MM] * len(keys)
        add_table(pdf, ["Slice", "n_eff", "Entry"] + [_score_heading(report, k) for k in keys],
               rows, widths, size=7, width=sum(widths))


def _evaluation_section(pdf: ReportPDF, report: Report) -> None:
    part = report.evaluation
    pdf.add_page()
    add_heading(pdf, "Evaluation")
    add_paragraph(pdf, f"Entries: {', '.join(part.entries)}. Mean of each score over every "
          "(question, slice) row.", 9)
    summary = part.summary
    keys = summary.columns[1:]
    values = {str(r[0]): dict(zip(keys, r[1:])) for r in summary.rows}
    for chunk in _chunks(list(keys)):
        rows = [[(entry, None)] + _score_cells(report, values, entry, chunk) for entry in values]
        add_table(pdf, [summary.columns[0]] + [_score_heading(report, k) for k in chunk], rows,
               [ENTRY_MM] + [SCORE_MM] * len(chunk), width=ENTRY_MM + SCORE_MM * len(chunk))
    info = report.score_info(part.score)
    for heatmap in part.heatmaps:
        add_heading(pdf, f"{info.name} ({info.direction} is better) per question and slice: "
                 f"{heatmap.entry}", 11)
        for r0 in range(0, max(len(heatmap.questions), 1), HEATMAP_ROWS):
            for c0 in range(0, max(len(heatmap.slices), 1), HEATMAP_COLS):
                add_image(pdf, _heatmap_png(heatmap, r0, c0, info.name))
    for entry, table in part.worst.items():
        add_heading(pdf, f"Worst-represented groups: {entry} ({info.name})", 11)
        rows = [[format_score(v) if isinstance(v, float) else str(v) for v in r]
                for r in table.rows]
        add_table(pdf, table.columns, plain_rows(rows), [1] * len(table.columns))


def _methods_page(pdf: ReportPDF, report: Report) -> None:
    pdf.add_page()
    add_heading(pdf, "Methods")
    for paragraph in report.methods.split("\n\n"):
        add_paragraph(pdf, paragraph, 9)
    prompt = next((q.example_prompt for q in report.questions if q.example_prompt), "")
    if prompt:
        add_heading(pdf, "Example prompt (first slice, original option order)", 11)
        add_paragraph(pdf, prompt, 7.5, family=MONO)
    if report.scores:
        add_heading(pdf, "Score definitions", 11)
        rows = [[s.name, s.formula, f"{s.direction} is better", s.range] for s in report.scores]
        add_table(pdf, ["Score", "Definition", "Better", "Range"], plain_rows(rows), [2, 6, 1.5, 1])


# ---------------------------------------------------------------- charts

def _error(values: list[float], low: list[float], high: list[float]) -> list[list[float]]:
    """Matplotlib's yerr (distances below and above) from an interval."""
    return [[max(v - lo, 0) for v, lo in zip(values, low)],
            [max(hi - v, 0) for v, hi in zip(values, high)]]


@plain_text_charts
def _bars_png(q: QuestionReport, slices: list[SliceResult], entries: list[str],
              level: float | None = None) -> tuple[bytes, float]:
    """Small multiples: per slice, bars per option for real (with 95 % CI) and each entry
    (a calibrated checkpoint with its prediction interval)."""
    series = ([REAL] if any(s.real is not None for s in slices) else []) + entries
    colors = palette.entry_colors(series)
    cols = min(3, len(slices))
    rows = math.ceil(len(slices) / cols)
    fig = Figure(figsize=(7.5, 0.5 + 2.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    width = 0.8 / max(len(series), 1)
    for ax, s in zip(axes.flat, slices):
        for j, name in enumerate(series):
            values = s.real if name == REAL else s.shares.get(name)
            if not values:
                continue
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(q.options))]
            err = None
            if name == REAL and s.ci_low is not None and s.ci_high is not None:
                err = _error(values, s.ci_low, s.ci_high)
            elif name in s.intervals:
                err = _error(values, *s.intervals[name])
            ax.bar(xs, values, width, color=colors[name], yerr=err, capsize=1.5,
                   error_kw={"elinewidth": 0.7, "ecolor": "#555555"})
        ax.set_title(textwrap.fill(one_line(s.label, 76), 38), fontsize=7)
        ax.set_xticks(range(len(q.options)), [_letter(i) for i in range(len(q.options))],
                      fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(slices):]:
        ax.set_visible(False)
    handles = [Patch(color=colors[n]) for n in series]
    with_pi = {n for s in slices for n in s.intervals}
    pi = f" ({level * 100:g} % PI)" if level else " (PI)"
    labels = [one_line(n, 40 - len(pi)) + (pi if n in with_pi else "") if n != REAL
              else "real (95 % CI)" for n in series]
    fig.legend(handles, labels, loc="upper center", ncol=min(len(series), 4), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return figure_png(fig)


@plain_text_charts
def _heatmap_png(heatmap, r0: int, c0: int, score_name: str) -> tuple[bytes, float]:
    """One chunk of a question x slice heatmap, with values written in small grids."""
    import numpy as np
    questions = heatmap.questions[r0:r0 + HEATMAP_ROWS]
    slices = heatmap.slices[c0:c0 + HEATMAP_COLS]
    grid = np.array([[math.nan if v is None else v for v in row[c0:c0 + HEATMAP_COLS]]
                     for row in heatmap.values[r0:r0 + HEATMAP_ROWS]], dtype=float)
    grid = grid.reshape(len(questions), len(slices))
    fig = Figure(figsize=(7.5, 1.8 + 0.22 * len(questions)))
    ax = fig.subplots()
    # one colour scale for every chunk, so that the same colour means the same score
    finite = [v for row in heatmap.values for v in row if v is not None and math.isfinite(v)]
    image = ax.imshow(grid, aspect="auto", cmap=palette.HEATMAP_SCALE,
                      vmin=min(finite, default=0), vmax=max(finite, default=1))
    ax.set_yticks(range(len(questions)), [one_line(q, 28) for q in questions], fontsize=6)
    ax.set_xticks(range(len(slices)), [one_line(s, 28) for s in slices], fontsize=6,
                  rotation=90)
    if grid.size <= 300:
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, label=score_name, fraction=0.03)
    fig.tight_layout()
    return figure_png(fig)
