"""PDF building blocks shared by the report's sections: the page (fonts, footer), headings,
paragraphs, tables and images, with fpdf2 and matplotlib (Agg, in memory).

Fonts are the DejaVu TTFs that ship inside matplotlib, so accents, Cyrillic and Greek
render without any system library; Chinese, Japanese and Korean come from a system CJK font
(Debian's fonts-wqy-microhei, which `make install` adds) as a fallback, embedded as a subset
like the others. A character no font can draw makes render fail with one message instead of
vanishing from the page (fpdf2 itself only logs it). Tables use fpdf2's table API (headings
repeated on every page, cells wrapped; a cell too long for a page is cut with a note).
"""

from __future__ import annotations

import functools
import io
import logging
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim_core.base.errors import SimError
from sim_core.report.document import is_number

PAGE_SIZES = ("A4", "Letter")
CHART_SLICES = 12          # slices per bar chart (small multiples, 3 per row)
HEATMAP_ROWS = 40          # questions per heatmap image
HEATMAP_COLS = 30          # slices per heatmap image
SCORES_PER_TABLE = 5       # score columns per table: 20 mm each fits "Wasserstein" in bold
SCORE_MM, ENTRY_MM, SLICE_MM, N_MM = 20.0, 40.0, 34.0, 14.0
PAGE_COUNT = "{nb}"        # fpdf2's page-count alias (footer only; see ReportPDF)
CELL_LINES = 40            # a table cell never grows past this many lines (a page fits ~80)
FONT = "DejaVu"
MONO = "DejaVuMono"
ARROW = {"lower": "↓", "higher": "↑"}
BEST = " ★"
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
CJK = "CJK"
# Fonts with CJK glyphs, the first one present is used (Debian packages).
CJK_FONT_FILES = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
                  Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                  Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"))
_MISSING_GLYPHS = "is missing the following glyphs"
_HEADINGS = FontFace(emphasis="BOLD", fill_color=(228, 228, 228))
BOLD = FontFace(emphasis="BOLD")
MUTED = FontFace(emphasis="ITALICS", color=(100, 100, 100))


class ReportPDF(FPDF):
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
        cjk = cjk_font_file()
        if cjk is not None:     # glyphs DejaVu lacks come from it, in any style
            extra = {"collection_font_number": 0} if cjk.suffix == ".ttc" else {}
            self.add_font(CJK, "", str(cjk), **extra)
            self.set_fallback_fonts([CJK], exact_match=False)
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


def cjk_font_file() -> Path | None:
    """The first CJK font of CJK_FONT_FILES on this machine, else None."""
    return next((path for path in CJK_FONT_FILES if path.is_file()), None)


class _GlyphLog(logging.Handler):
    """Collects fpdf2's "missing glyphs" warnings (it drops those characters)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.missing: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if _MISSING_GLYPHS in message:
            self.missing.append(message.split(_MISSING_GLYPHS, 1)[1].strip(" :"))


def checked_output(pdf: FPDF) -> bytes:
    """The document's bytes; SimError when a character could not be drawn by any font."""
    logger = logging.getLogger("fpdf.output")
    handler, level = _GlyphLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        data = bytes(pdf.output())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if handler.missing:
        raise SimError("The PDF cannot draw some characters of this report ("
                       + "; ".join(handler.missing)[:300] + "); install a font that covers "
                       "them (Debian: fonts-wqy-microhei for Chinese, Japanese and Korean; "
                       "`make install` adds it) and render again. The CSV and JSON exports "
                       "hold every character.")
    return data


def format_score(value: Any) -> str:
    """How scores are printed in the PDF tables: 3 decimals, scientific when tiny or huge."""
    if not is_number(value):
        return "–"
    value = float(value)
    if value == 0 or 0.001 <= abs(value) < 10000:
        return f"{value:.3f}"
    return f"{value:.2e}"


def add_heading(pdf: FPDF, text: str, size: float = 14) -> None:
    if pdf.get_y() > pdf.page_break_trigger - 30:  # keep a heading with what follows
        pdf.add_page()
    pdf.set_font(FONT, "B", size)
    pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def add_paragraph(pdf: FPDF, text: str, size: float = 9, style: str = "",
                  family: str = FONT) -> None:
    pdf.set_font(family, style, size)
    pdf.multi_cell(0, size * 0.45, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def add_table(pdf: FPDF, headings: list[str] | None, rows: list[list[tuple[str, FontFace | None]]],
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


def plain_rows(rows: list[list[str]]) -> list[list[tuple[str, None]]]:
    return [[(text, None) for text in row] for row in rows]


def add_image(pdf: FPDF, png: tuple[bytes, float]) -> None:
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


def plain_text_charts(draw: Callable) -> Callable:
    """Run a chart function with matplotlib's math parser off: survey text such as
    "income=$3,000-$4,999" keeps its dollar signs, and a malformed "$\\foo{$" cannot crash;
    CJK labels drawn with the CJK font as a fallback."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False,
                                    "font.family": _chart_fonts()}):
            return draw(*args, **kwargs)
    return wrapper


@functools.cache
def _chart_fonts() -> list[str]:
    """matplotlib's font family list: DejaVu Sans, then the CJK font when there is one."""
    from matplotlib import font_manager

    cjk = cjk_font_file()
    if cjk is None:
        return ["DejaVu Sans"]
    font_manager.fontManager.addfont(str(cjk))
    return ["DejaVu Sans", font_manager.FontProperties(fname=str(cjk)).get_name()]


def one_line(text: str, width: int) -> str:
    """One line of at most `width` characters: cut at a word, or inside one long word."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = textwrap.shorten(text, width, placeholder=" …")
    return cut if cut != "…" and len(cut) > width // 2 else text[:width - 1] + "…"


def figure_png(fig: Figure) -> tuple[bytes, float]:
    """PNG bytes and height/width ratio of a figure."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=130)
    width, height = fig.get_size_inches()
    return buffer.getvalue(), height / width
