"""PDF rendering of a sim_core.report.Report with fpdf2 and matplotlib (Agg, in memory).

Fonts are the DejaVu TTFs that ship inside matplotlib, so accents, Cyrillic and Greek
render without any system library. Tables use fpdf2's table API (headings repeated on
every page, cells wrapped), charts of many slices are split into charts of at most
CHART_SLICES slices, heatmaps into chunks of HEATMAP_ROWS questions.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sim_core import palette
from sim_core.errors import SimError
from sim_core.labels import NOISE_FLOOR, REAL, is_baseline
from sim_core.metrics import best_entry
from sim_core.nonresponse import REASON_SHORT
from sim_core.report import QuestionReport, Report, SliceResult, is_number

PAGE_SIZES = ("A4", "Letter")
CHART_SLICES = 12          # slices per bar chart (small multiples, 3 per row)
HEATMAP_ROWS = 40          # questions per heatmap image
HEATMAP_COLS = 30          # slices per heatmap image
SCORES_PER_TABLE = 5       # score columns per table: 20 mm each fits "Wasserstein" in bold
SCORE_MM, ENTRY_MM, SLICE_MM, N_MM = 20.0, 40.0, 34.0, 14.0
PAGE_COUNT = "{nb}"        # fpdf2's page-count alias (footer only; see _PDF)
CELL_LINES = 40            # a table cell never grows past this many lines (a page fits ~80)
FONT = "DejaVu"
MONO = "DejaVuMono"
ARROW = {"lower": "↓", "higher": "↑"}
BEST = " ★"
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_HEADINGS = FontFace(emphasis="BOLD", fill_color=(228, 228, 228))
_BOLD = FontFace(emphasis="BOLD")
_MUTED = FontFace(emphasis="ITALICS", color=(100, 100, 100))


class _PDF(FPDF):
    """FPDF with page numbers in the footer.

    fpdf2 replaces its page-count alias in *any* text it is given, so survey text holding a
    literal "{nb}" would print as the page count. The alias is therefore switched on only
    while the footer is drawn and when the document is closed (render_pdf).
    """

    def __init__(self, title: str, page_size: str):
        super().__init__(orientation="portrait", unit="mm", format=page_size)
        self.alias_nb_pages(None)
        self.report_title = title
        for style, name in (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf"),
                            ("I", "DejaVuSans-Oblique.ttf"), ("BI", "DejaVuSans-BoldOblique.ttf")):
            self.add_font(FONT, style, str(_FONT_DIR / name))
        self.add_font(MONO, "", str(_FONT_DIR / "DejaVuSansMono.ttf"))
        self.set_auto_page_break(auto=True, margin=16)
        self.set_margins(15, 15, 15)
        self.set_title(title)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(110, 110, 110)
        previous, self.str_alias_nb_pages = self.str_alias_nb_pages, PAGE_COUNT
        self.cell(0, 5, f"Page {self.page_no()} / {PAGE_COUNT}", align="C")
        self.str_alias_nb_pages = previous
        self.set_text_color(0, 0, 0)


def render_pdf(report: Report, page_size: str = "A4") -> bytes:
    """Render the report as a PDF.

    Args:
        report: the Report (sim_core.report).
        page_size: "A4" or "Letter" (portrait).

    Returns:
        The PDF file as bytes.
    """
    size = {p.lower(): p for p in PAGE_SIZES}.get(str(page_size).lower())
    if size is None:
        raise SimError(f"Unknown page size '{page_size}': use A4 or Letter.")
    pdf = _PDF(report.title, size)
    _title_page(pdf, report)
    for question in report.questions:
        _question_section(pdf, report, question)
    if report.evaluation is not None:
        _evaluation_section(pdf, report)
    _methods_page(pdf, report)
    pdf.str_alias_nb_pages = PAGE_COUNT    # substituted in the footers as the file is closed
    return bytes(pdf.output())


# ---------------------------------------------------------------- text helpers

def format_score(value: Any) -> str:
    """How scores are printed in the PDF tables: 3 decimals, scientific when tiny or huge."""
    if not is_number(value):
        return "–"
    value = float(value)
    if value == 0 or 0.001 <= abs(value) < 10000:
        return f"{value:.3f}"
    return f"{value:.2e}"



def _heading(pdf: FPDF, text: str, size: float = 14) -> None:
    if pdf.get_y() > pdf.page_break_trigger - 30:  # keep a heading with what follows
        pdf.add_page()
    pdf.set_font(FONT, "B", size)
    pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _para(pdf: FPDF, text: str, size: float = 9, style: str = "", family: str = FONT) -> None:
    pdf.set_font(family, style, size)
    pdf.multi_cell(0, size * 0.45, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _table(pdf: FPDF, headings: list[str] | None, rows: list[list[tuple[str, FontFace | None]]],
           widths: list[float], size: float = 7.5, width: float | None = None) -> None:
    """A table whose headings repeat on every page; cells wrap, nothing is cut.

    widths are relative; width (mm, default the full text width) is the table's width. A
    cell's text is cut (with a note) where it would not fit on one page: fpdf2 cannot split
    a table row across pages, and the CSV/JSON exports keep every text whole.
    """
    pdf.set_font(FONT, "", size)
    table_mm = min(width or pdf.epw, pdf.epw)
    limits = [_cell_chars(table_mm * w / sum(widths), size) for w in widths]
    rows = [[(_clip(text, limit), style) for (text, style), limit in zip(cells, limits)]
            for cells in rows]
    headings = None if headings is None else [_clip(h, n) for h, n in zip(headings, limits)]
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=size * 0.45,
                   headings_style=_HEADINGS, repeat_headings=1, padding=0.8,
                   first_row_as_headings=headings is not None,
                   cell_fill_mode=TableCellFillMode.NONE, align="LEFT",
                   width=min(width or pdf.epw, pdf.epw)) as table:
        if headings is not None:
            head = table.row()
            for text in headings:
                head.cell(text)
        for cells in rows:
            row = table.row()
            for text, style in cells:
                row.cell(text, style=style)
    pdf.ln(3)


def _cell_chars(width_mm: float, size: float) -> int:
    """How many characters fit in CELL_LINES lines of a cell (wide glyphs assumed)."""
    glyph_mm = 0.95 * size * 25.4 / 72          # an upper bound on a DejaVu glyph's width
    return max(20, int(CELL_LINES * max(width_mm - 2, 1) / glyph_mm))


def _clip(text: str, limit: int) -> str:
    """text, or its start with a note of how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    note = f"… [{len(text):,} characters; full text in the JSON export]"
    return text[:max(limit - len(note), 1)] + note


def _plain_rows(rows: list[list[str]]) -> list[list[tuple[str, None]]]:
    return [[(text, None) for text in row] for row in rows]


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

def _title_page(pdf: _PDF, report: Report) -> None:
    pdf.add_page()
    pdf.ln(20)
    _heading(pdf, report.title, 20)
    facts = [("Date", report.created), ("Survey", report.survey or "— (drafted question)"),
             ("Wave", report.wave or "all"),
             ("Simulation", f"{report.mode}, " + (f"{report.orders} option order(s) averaged"
                            if report.orders >= 1 else "option orders per checkpoint (see methods)")),
             ("Baselines", ", ".join(report.baselines) or "none")]
    facts += [(k, v) for k, v in (("Population", report.population),
                                  ("Weighting", report.weighting),
                                  ("Intervals", report.intervals)) if v]
    _table(pdf, None, [[(k, _BOLD), (v, None)] for k, v in facts], [1, 4], size=9)
    if report.checkpoints:
        _heading(pdf, "Checkpoints", 12)
        rows = [[c.get("label", ""), c.get("adapter") or "—", str(c.get("fingerprint") or "—"),
                 _card_text(c.get("card") or {}) or "—"] for c in report.checkpoints]
        _table(pdf, ["Checkpoint", "Adapter", "Fingerprint", "Adapter card"],
               _plain_rows(rows), [3, 2, 2, 5])
    verdicts = [c["verdict"] for c in report.checkpoints if c.get("verdict")]
    if verdicts:
        _heading(pdf, "How far to trust these simulations (held-out rows)", 12)
        for text in verdicts:
            _para(pdf, text, 9)
    if report.questions:
        _heading(pdf, "Questions", 12)
        rows = [[q.id, q.text, str(len(q.slices))] for q in report.questions]
        _table(pdf, ["Question", "Wording", "Slices"], _plain_rows(rows), [2, 9, 1])


def _question_section(pdf: _PDF, report: Report, q: QuestionReport) -> None:
    pdf.add_page()
    _heading(pdf, f"Question {q.id}")
    _para(pdf, q.text, 10)
    options = []
    for i, option in enumerate(q.options):
        value = q.ordinal_values[i] if q.ordinal_values else None
        suffix = "" if q.ordinal_values is None else (
            " (not ordinal)" if value is None else f" (value {value:g})")
        options.append(f"{_letter(i)}. {option}{suffix}")
    _para(pdf, "Options: " + "; ".join(options), 8.5)
    if q.by:
        _para(pdf, "Slices by: " + ", ".join(q.by), 8.5)
    _nonresponse_table(pdf, q)
    entries = [e for e in q.entries() if not is_baseline(e)]
    for start in range(0, len(q.slices), CHART_SLICES):
        _image(pdf, _bars_png(q, q.slices[start:start + CHART_SLICES], entries,
                              report.interval_level))
    if any(s.scores for s in q.slices):
        _score_summary(pdf, report, q)
        _slice_scores(pdf, report, q)
    else:
        _para(pdf, "No real data for this question: no scores.", 9, "I")


def _nonresponse_table(pdf: _PDF, q: QuestionReport) -> None:
    """Counts and nonresponse per slice, compactly (respondent data only)."""
    slices = [s for s in q.slices if s.n_total is not None]
    if not slices:
        return
    reasons = [r for r in REASON_SHORT if any(r in s.nonresponse for s in slices)]
    rows = [[s.label, str(s.n), str(s.n_asked), str(s.n_total)]
            + [f"{100 * s.nonresponse.get(r, 0.0):.1f} %" for r in reasons] for s in slices]
    headings = ["Slice", "n valid", "n asked", "n all"] + [REASON_SHORT[r] for r in reasons]
    widths = [SLICE_MM, N_MM, N_MM, N_MM] + [N_MM + 4] * len(reasons)
    _table(pdf, headings, _plain_rows(rows), widths, size=7, width=sum(widths))
    _para(pdf, "Nonresponse: weighted shares of each slice's respondents; never counted as "
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
        cells.append((text + BEST, _BOLD) if entry == best else (text, None))
    return cells


def _chunks(keys: list[str]) -> list[list[str]]:
    """Scores split so that every score column is wide enough for its heading words."""
    return [keys[i:i + SCORES_PER_TABLE] for i in range(0, len(keys), SCORES_PER_TABLE)] or [[]]


def _score_summary(pdf: _PDF, report: Report, q: QuestionReport) -> None:
    means = q.mean_scores()
    floor = q.mean_noise_floor()
    _heading(pdf, f"Scores, mean over {len(q.slices)} slice(s)", 11)
    for keys in _chunks(_score_keys(report, q)):
        rows = [[(entry, None)] + _score_cells(report, means, entry, keys) for entry in means]
        rows.append([(NOISE_FLOOR, _MUTED)]
                    + [(format_score(floor.get(k)), _MUTED) for k in keys])
        _table(pdf, ["Entry"] + [_score_heading(report, k) for k in keys], rows,
               [ENTRY_MM] + [SCORE_MM] * len(keys), width=ENTRY_MM + SCORE_MM * len(keys))
    _para(pdf, "↓ lower is better, ↑ higher is better; ★ best entry for that score; the noise "
          "floor is what two independent real samples of the same size would score.", 7.5, "I")


def _slice_scores(pdf: _PDF, report: Report, q: QuestionReport) -> None:
    chunks = _chunks(_score_keys(report, q))
    for number, keys in enumerate(chunks, 1):
        part = f" ({number}/{len(chunks)})" if len(chunks) > 1 else ""
        _heading(pdf, f"Scores per slice{part}", 11)
        rows = []
        for s in q.slices:
            n = "—" if s.n_eff is None else f"{s.n_eff:.0f}" + (" (small)" if s.too_small else "")
            for i, entry in enumerate(s.scores):
                first = [(s.label, _BOLD), (n, None)] if i == 0 else [("", None), ("", None)]
                rows.append(first + [(entry, None)] + _score_cells(report, s.scores, entry, keys))
            if s.noise_floor:
                rows.append([("", None), ("", None), (NOISE_FLOOR, _MUTED)]
                            + [(format_score(s.noise_floor.get(k)), _MUTED) for k in keys])
        widths = [SLICE_MM, N_MM, ENTRY_MM - 8] + [SCORE_MM] * len(keys)
        _table(pdf, ["Slice", "n_eff", "Entry"] + [_score_heading(report, k) for k in keys],
               rows, widths, size=7, width=sum(widths))


def _evaluation_section(pdf: _PDF, report: Report) -> None:
    part = report.evaluation
    pdf.add_page()
    _heading(pdf, "Evaluation")
    _para(pdf, f"Entries: {', '.join(part.entries)}. Mean of each score over every "
          "(question, slice) row.", 9)
    summary = part.summary
    keys = summary.columns[1:]
    values = {str(r[0]): dict(zip(keys, r[1:])) for r in summary.rows}
    for chunk in _chunks(list(keys)):
        rows = [[(entry, None)] + _score_cells(report, values, entry, chunk) for entry in values]
        _table(pdf, [summary.columns[0]] + [_score_heading(report, k) for k in chunk], rows,
               [ENTRY_MM] + [SCORE_MM] * len(chunk), width=ENTRY_MM + SCORE_MM * len(chunk))
    info = report.score_info(part.score)
    for heatmap in part.heatmaps:
        _heading(pdf, f"{info.name} ({info.direction} is better) per question and slice: "
                 f"{heatmap.entry}", 11)
        for r0 in range(0, max(len(heatmap.questions), 1), HEATMAP_ROWS):
            for c0 in range(0, max(len(heatmap.slices), 1), HEATMAP_COLS):
                _image(pdf, _heatmap_png(heatmap, r0, c0, info.name))
    for entry, table in part.worst.items():
        _heading(pdf, f"Worst-represented groups: {entry} ({info.name})", 11)
        rows = [[format_score(v) if isinstance(v, float) else str(v) for v in r]
                for r in table.rows]
        _table(pdf, table.columns, _plain_rows(rows), [1] * len(table.columns))


def _methods_page(pdf: _PDF, report: Report) -> None:
    pdf.add_page()
    _heading(pdf, "Methods")
    for paragraph in report.methods.split("\n\n"):
        _para(pdf, paragraph, 9)
    prompt = next((q.example_prompt for q in report.questions if q.example_prompt), "")
    if prompt:
        _heading(pdf, "Example prompt (first slice, original option order)", 11)
        _para(pdf, prompt, 7.5, family=MONO)
    if report.scores:
        _heading(pdf, "Score definitions", 11)
        rows = [[s.name, s.formula, f"{s.direction} is better", s.range] for s in report.scores]
        _table(pdf, ["Score", "Definition", "Better", "Range"], _plain_rows(rows), [2, 6, 1.5, 1])


# ---------------------------------------------------------------- charts

def _image(pdf: FPDF, png: tuple[bytes, float]) -> None:
    """Place a chart at full text width (scaled down to fit a page); new page if needed."""
    data, aspect = png
    width = pdf.epw
    usable = pdf.eph - 4
    if width * aspect > usable:
        width = usable / aspect
    if pdf.get_y() + width * aspect > pdf.page_break_trigger:
        pdf.add_page()
    pdf.image(io.BytesIO(data), x=pdf.l_margin + (pdf.epw - width) / 2, w=width)
    pdf.ln(2)


def _plain_text(draw: Callable) -> Callable:
    """Run a chart function with matplotlib's math parser off: survey text such as
    "income=$3,000-$4,999" keeps its dollar signs, and a malformed "$\\foo{$" cannot crash."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)
    return wrapper


def _short(text: str, width: int) -> str:
    """One line of at most `width` characters: cut at a word, or inside one long word."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = textwrap.shorten(text, width, placeholder=" …")
    return cut if cut != "…" and len(cut) > width // 2 else text[:width - 1] + "…"


def _png(fig: Figure) -> tuple[bytes, float]:
    """PNG bytes and height/width ratio of a figure."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=130)
    width, height = fig.get_size_inches()
    return buffer.getvalue(), height / width


def _error(values: list[float], low: list[float], high: list[float]) -> list[list[float]]:
    """Matplotlib's yerr (distances below and above) from an interval."""
    return [[max(v - lo, 0) for v, lo in zip(values, low)],
            [max(hi - v, 0) for v, hi in zip(values, high)]]


@_plain_text
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
        ax.set_title(textwrap.fill(_short(s.label, 76), 38), fontsize=7)
        ax.set_xticks(range(len(q.options)), [_letter(i) for i in range(len(q.options))],
                      fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(slices):]:
        ax.set_visible(False)
    handles = [Patch(color=colors[n]) for n in series]
    with_pi = {n for s in slices for n in s.intervals}
    pi = f" ({level * 100:g} % PI)" if level else " (PI)"
    labels = [_short(n, 40 - len(pi)) + (pi if n in with_pi else "") if n != REAL
              else "real (95 % CI)" for n in series]
    fig.legend(handles, labels, loc="upper center", ncol=min(len(series), 4), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return _png(fig)


@_plain_text
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
    ax.set_yticks(range(len(questions)), [_short(q, 28) for q in questions], fontsize=6)
    ax.set_xticks(range(len(slices)), [_short(s, 28) for s in slices], fontsize=6,
                  rotation=90)
    if grid.size <= 300:
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, label=score_name, fraction=0.03)
    fig.tight_layout()
    return _png(fig)
