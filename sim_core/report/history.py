"""Results that last: every finished comparison and evaluation, stored in the workspace.

Each result is one JSON file, workspace/history/<id>.json, written atomically as it
finishes (so a browser refresh, a crash or another tab loses nothing):

    {"id", "kind": "comparison" | "evaluation", "title", "created",
     "report": <sim_core.report.exports.report_json of the result's Report>}

Plain data only (no pickles); the Reports page lists, reopens, renames, deletes and
reports from them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sim_core.base.errors import SimError
from sim_core.base.reading import write_json_atomic
from sim_core.base.workspace import is_valid_name, subdir
from sim_core.report.document import Report
from sim_core.report.exports import report_from_json, report_json
from sim_core.report.methods_text import methods_text

KINDS = ("comparison", "evaluation")


@dataclass(frozen=True)
class SavedResult:
    """One stored result as listed (the Report itself is read by load_result)."""
    id: str
    kind: str
    title: str
    created: str


def _path(result_id: str) -> Path:
    """The file of a stored result, by its exact id (unknown ids raise SimError)."""
    path = subdir("history") / f"{result_id}.json" if is_valid_name(result_id) else None
    if path is None or not path.is_file():
        raise SimError(f"No saved result '{result_id}'.")
    return path


def save_result(kind: str, report: Report, title: str | None = None) -> str:
    """Store a finished result; returns its id.

    Args:
        kind: "comparison" or "evaluation".
        report: its Report (report_from_comparisons / report_from_evaluation).
        title: shown in the list (default: the report's title).
    Returns:
        The new id (its start time and a random part: never replaces another result).
    """
    if kind not in KINDS:
        raise SimError(f"unknown result kind {kind!r}; one of: {', '.join(KINDS)}")
    now = datetime.now()
    # Microseconds in the id: the list is sorted by id, and two results saved in the
    # same second must still list newest first. The random part keeps ids unique.
    result_id = f"{now:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(3)}"
    write_json_atomic(subdir("history") / f"{result_id}.json", {
        "id": result_id, "kind": kind, "title": title or report.title,
        "created": f"{now:%Y-%m-%d %H:%M:%S}",
        "report": json.loads(report_json(report))}, ensure_ascii=False)
    return result_id


def _read(path: Path) -> dict:
    """A stored file's JSON; an unreadable one is one clear SimError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SimError(f"The saved result {path} cannot be read: {error}") from error


def list_results() -> list[SavedResult]:
    """Every stored result, newest first (unreadable files are skipped, left in place)."""
    out = []
    for path in sorted(subdir("history").glob("*.json"), reverse=True):
        try:
            data = _read(path)
            out.append(SavedResult(data["id"], data["kind"], data["title"], data["created"]))
        except (SimError, KeyError, TypeError):
            continue
    return out


def load_result(result_id: str) -> Report:
    """The Report of a stored result."""
    data = _read(_path(result_id))
    try:
        return report_from_json(json.dumps(data["report"]))
    except (KeyError, TypeError, ValueError) as error:
        raise SimError(f"The saved result '{result_id}' cannot be read: {error}") from error


def rename_result(result_id: str, title: str) -> None:
    """Give a stored result a new title (its numbers stay as they are)."""
    if not title.strip():
        raise SimError("Give the result a title.")
    path = _path(result_id)
    data = _read(path)
    data["title"] = title.strip()
    write_json_atomic(path, data, ensure_ascii=False)


def delete_result(result_id: str) -> None:
    """Remove a stored result for good."""
    _path(result_id).unlink()


def combined_report(result_ids: list[str], title: str | None = None) -> Report:
    """One Report from stored results: one evaluation as it is, or several comparisons as
    one report with a section per question (the first one's checkpoints and settings)."""
    if not result_ids:
        raise SimError("Pick at least one saved result.")
    reports = [load_result(i) for i in result_ids]
    if len(reports) == 1:
        report = reports[0]
    elif any(r.evaluation is not None or r.individual is not None for r in reports):
        raise SimError("An evaluation is reported on its own: pick it alone.")
    else:
        report = reports[0]
        report.questions = [q for r in reports for q in r.questions]
        scores = {s.key: s for r in reports for s in r.scores}
        report.scores = list(scores.values())
        report.baselines = list(dict.fromkeys(b for r in reports for b in r.baselines))
        surveys = list(dict.fromkeys(r.survey for r in reports if r.survey))
        report.survey = ", ".join(surveys) or None
        report.methods = methods_text(report)
    if title:
        report.title = title
    return report
