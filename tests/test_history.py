"""sim_core.report.history: finished results stored in the workspace as JSON, read back exactly."""

from __future__ import annotations

import json

import pytest
from test_report import _question, _report

from sim_core.base.errors import SimError
from sim_core.base.workspace import subdir
from sim_core.report import history
from sim_core.report.exports import report_json


def test_saved_result_reads_back_exactly_as_plain_json():
    """The stored file is plain JSON holding the report's JSON form; the Report read back
    renders to the same JSON; listing shows it newest first."""
    report = _report([_question("q1", "Trains, ä/ö 中文?", ["North", "South"])])
    first = history.save_result("comparison", report, "Trains")
    later = [history.save_result("comparison", report, f"Trains {i}") for i in range(6)]
    listed = [r.id for r in history.list_results()]
    # saved within the same second: still newest first (an id of seconds only
    # ordered these by its random part)
    saved = [first, *later]
    assert [i for i in listed if i in saved] == saved[::-1]
    raw = json.loads((subdir("history") / f"{first}.json").read_text(encoding="utf-8"))
    assert raw["kind"] == "comparison" and raw["title"] == "Trains"
    assert raw["report"] == json.loads(report_json(report))
    assert report_json(history.load_result(first)) == report_json(report)


def test_rename_delete_and_clear_errors():
    report = _report([_question("q1", "Q?", ["North"])])
    result_id = history.save_result("comparison", report)
    history.rename_result(result_id, "  New title ")
    assert next(r for r in history.list_results() if r.id == result_id).title == "New title"
    assert report_json(history.load_result(result_id)) == report_json(report)  # numbers kept
    history.delete_result(result_id)
    assert result_id not in [r.id for r in history.list_results()]
    with pytest.raises(SimError, match="No saved result"):
        history.load_result(result_id)
    with pytest.raises(SimError, match="No saved result"):
        history.load_result("../../etc/passwd")
    with pytest.raises(SimError, match="unknown result kind"):
        history.save_result("pickle", report)


def test_unreadable_file_is_skipped_in_the_list_and_named_when_opened():
    bad = subdir("history") / "20990101-000000-bad.json"
    bad.write_text("{not json", encoding="utf-8")
    try:
        assert "20990101-000000-bad" not in [r.id for r in history.list_results()]
        with pytest.raises(SimError, match="cannot be read"):
            history.load_result("20990101-000000-bad")
        assert bad.exists()                 # never deleted behind the user's back
    finally:
        bad.unlink()


def test_several_comparisons_combine_into_one_report():
    """Two stored comparisons: one report with both questions, in the order picked."""
    a = history.save_result("comparison", _report([_question("q1", "First?", ["North"])]))
    b = history.save_result("comparison", _report([_question("q2", "Second?", ["South"])]))
    report = history.combined_report([b, a], title="Both")
    assert [q.id for q in report.questions] == ["q2", "q1"] and report.title == "Both"
    with pytest.raises(SimError, match="at least one"):
        history.combined_report([])
