"""Survey text in reports is printed as written: a literal {nb} is not the page count, dollar
signs are not math, a malformed one cannot crash, a 20,000-character word wraps or is cut
with a note; report files are written whole and never replace a file unasked."""

from __future__ import annotations

import errno
import os
import re

import pytest
from matplotlib.text import Text
from test_report import _pdf_text, _question, _report, _squash

from sim_core.base import writing
from sim_core.commands import report as report_command
from sim_core.report import pdf
from sim_core.report.exports import report_csv, report_json
from sim_core.report.pdf import render_pdf


@pytest.fixture
def figures(monkeypatch):
    """Every chart figure the PDF draws (after it was drawn, so tick labels exist)."""
    drawn, real = [], pdf.figure_png

    def keep(fig):
        png = real(fig)
        drawn.append(fig)
        return png
    monkeypatch.setattr(pdf, "figure_png", keep)
    return drawn


def _texts(figures) -> list[Text]:
    return [t for fig in figures for t in fig.findobj(Text) if t.get_text()]


def test_literal_page_alias_prints_as_written():
    question = _question("q{nb}", "Asked in wave {nb} of the panel?", ["REGION={nb}"],
                         options=("Yes {nb}", "No", "Unsure"))
    reader, text = _pdf_text(render_pdf(_report([question], title="Panel {nb} report")))
    pages = len(reader.pages)
    assert "Panel {nb} report" in text and "wave {nb} of the panel" in text
    assert "Yes {nb}" in text and "REGION={nb}" in text
    assert f"Page 1 / {pages}" in text and f"Page {pages} / {pages}" in text
    assert f"Panel {pages} report" not in text


def test_dollar_signs_are_text_not_math(figures):
    label = "INCOME=$3,000-$4,999"
    question = _question("income", "Household income=$3,000-$4,999 a month?", [label],
                         options=("$3,000-$4,999", "$x^2$", "Other"))
    _, text = _pdf_text(render_pdf(_report([question])))
    assert "income=$3,000-$4,999 a month" in text and "$x^2$" in text
    titles = [t for t in _texts(figures) if "$" in t.get_text()]
    assert any(t.get_text() == label for t in titles)
    # what the renderer draws: the text itself, not math (the math parser drops the $ signs)
    assert all(t._preprocess_math(t.get_text()) == (t.get_text(), False) for t in titles)


@pytest.mark.parametrize("bad", ["$\\foo{$", "X=$^$", "$", "a $ b $$ c", "\\$5 and $\\frac{"])
def test_malformed_dollar_text_never_crashes(bad):
    question = _question("q1", bad, [f"REGION={bad}"], options=(bad, "B", "C"))
    _, text = _pdf_text(render_pdf(_report([question], title=bad)))
    assert _squash(bad) in _squash(text)


def test_a_20000_character_word_wraps_or_is_cut_with_a_note():
    word = "x" * 20_000
    question = _question("q1", word, ["REGION=" + "y" * 20_000], options=("z" * 20_000, "B", "C"))
    report = _report([question], title="t" + "w" * 20_000)
    report.checkpoints[0]["card"] = {"note": "v" * 20_000}
    reader, text = _pdf_text(render_pdf(report))
    flat = re.sub(r"Page\d+/\d+", "", _squash(text))      # footers inside a long word
    assert word in flat                            # the wording paragraph wraps it whole
    assert "20,000characters;fulltextintheJSONexport" in flat   # table cells: cut, said so
    assert len(reader.pages) < 60
    assert word in report_json(report) and word in report_csv(report)


# ---------------------------------------------------------------- report files

def _cli(argv):
    import argparse

    parser = argparse.ArgumentParser()
    report_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", "--data", "x.csv", "--question", "q1"] + argv)
    return args.func(args)


@pytest.fixture
def fake_run(monkeypatch):
    """The report command with its comparisons replaced by a hand-built report (the writing
    is what is tested here); fails if anything tries to load data or a model first."""
    monkeypatch.setattr(report_command, "comparisons_from_args", lambda args: (None, []))
    monkeypatch.setattr(report_command, "report_from_comparisons",
                        lambda comparisons, title=None: _report(
                            [_question("q1", "Wording?", ["REGION=North"])]))


def test_report_outputs_checked_before_work(tmp_path, monkeypatch, capsys):
    def refuse(args):
        raise AssertionError("work started before the outputs were checked")
    monkeypatch.setattr(report_command, "comparisons_from_args", refuse)
    with pytest.raises(SystemExit):
        _cli(["--pdf", str(tmp_path)])
    assert "it is a folder" in capsys.readouterr().err
    (tmp_path / "old.csv").write_text("the user's own data")
    with pytest.raises(writing.SimError, match="old.csv exists already"):
        _cli(["--pdf", str(tmp_path / "r.pdf"), "--csv", str(tmp_path / "old.csv")])
    with pytest.raises(writing.SimError, match="different files"):
        _cli(["--pdf", str(tmp_path / "r.pdf"), "--json", str(tmp_path / "r.pdf")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]


def test_report_files_written_whole(tmp_path, fake_run, monkeypatch):
    out = tmp_path / "new-folder"
    argv = ["--pdf", str(out / "r.pdf"), "--csv", str(out / "r.csv"), "--json",
            str(out / "r.json")]
    assert _cli(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.json", "r.pdf"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)
    monkeypatch.setattr(writing.os, "replace", replace)
    with pytest.raises(writing.SimError, match="r.csv: the disk is full"):
        _cli(argv + ["--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.json", "r.pdf"]
    assert (out / "r.csv").read_bytes() == before["r.csv"]     # no half file, no .part


def test_ctrl_c_while_writing_leaves_no_partial_file(tmp_path, fake_run, monkeypatch, capsys):
    """Ctrl-C while the report is being written: exit 130, no report, no temporary file."""
    from sim_core.__main__ import main

    real_write = writing.atomic_file

    def interrupted(path, **kwargs):
        with real_write(path, **kwargs) as stream:
            stream.write(b"%PDF-1.4 half a file")
            raise KeyboardInterrupt
    monkeypatch.setattr(writing, "atomic_file", interrupted)
    assert main(["report", "--data", "x.csv", "--question", "q1",
                 "--pdf", str(tmp_path / "r.pdf")]) == 130
    assert list(tmp_path.iterdir()) == [] and "stopped" in capsys.readouterr().err
