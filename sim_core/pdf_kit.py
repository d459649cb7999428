"""PDF building blocks shared by the report's sections: the page (fonts, footer), headings,
paragraphs, tables and images, with fpdf2 and matplotlib (Agg, in memory).

Fonts are the DejaVu TTFs that ship inside matplotlib, so accents, Cyrillic and Greek
render without any system library. Tables use fpdf2's table API (headings repeated on
every page, cells wrapped; a cell too long for a page is cut with a note).
"""

from __future__ import annotations

import functools
import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim_core.report import is_number

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
