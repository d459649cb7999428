"""A Report as CSV (one tidy long table) and as JSON (read back with report_from_json).

CSV design (report_csv): the column `table` says what a row is:
    question   question_id, option, value = option index, text = question wording
    shares     question_id, slice, entry ("real", a checkpoint, "baseline: <name>"),
               option, share, ci_low, ci_high (real only: 95 % interval), pi_low, pi_high
               (a calibrated checkpoint: prediction interval at the report's level), n_eff
    scores     question_id, slice, entry (or "noise floor"), score, value, direction
    counts     question_id, slice, score ("n" valid answers, "n_asked", "n_total"), value
    nonresponse  question_id, slice, option = reason ("dk", "refused", "not_asked",
               "other"), share = weighted share of the slice's respondents, text = meaning
    eval_summary  entry, score, value (mean over question x slice), direction
    eval_scores   question_id, slice, entry, score, value, direction
    verdict    entry (a checkpoint), text = its verdict on held-out rows
    population, population_scores, composition: the population estimates
               (sim_core.report.population_part)
Read it back with pandas.read_csv(..., keep_default_na=False, na_values=[""]) so that a
group called "None" or "NA" stays text. Text cells starting with = + - @ tab or CR get a
leading single quote (spreadsheet formula injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import Any

from sim_core.base.labels import NOISE_FLOOR, REAL
from sim_core.report.document import (
    EvaluationReport,
    Heatmap,
    QuestionReport,
    Report,
    ScoreInfo,
    SliceResult,
    Table,
)
from sim_core.report.fairness_individual import (
    fairness_from_dict,
    individual_from_dict,
    parts_csv_rows,
)
from sim_core.report.population_part import population_csv_rows, population_from_dict
from sim_core.survey.nonresponse import REASONS

CSV_COLUMNS = ("table", "question_id", "slice", "entry", "option", "share", "ci_low",
               "ci_high", "pi_low", "pi_high", "n_eff", "score", "value", "direction", "text")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula with a single quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_rows(report: Report) -> list[dict[str, Any]]:
    """All rows of the long CSV (see module docstring)."""
    rows: list[dict[str, Any]] = []
    direction = {s.key: s.direction for s in report.scores}
    for q in report.questions:
        rows += [dict(table="question", question_id=q.id, option=o, value=i, text=q.text)
                 for i, o in enumerate(q.options)]
        for s in q.slices:
            series = ([(REAL, s.real)] if s.real is not None else []) + list(s.shares.items())
            for entry, shares in series:
                for i, option in enumerate(q.options):
                    row = dict(table="shares", question_id=q.id, slice=s.label, entry=entry,
                               option=option, share=shares[i] if shares else None,
                               n_eff=s.n_eff if entry == REAL else None)
                    if entry == REAL and s.ci_low is not None and s.ci_high is not None:
                        row.update(ci_low=s.ci_low[i], ci_high=s.ci_high[i])
                    if entry in s.intervals:
                        row.update(pi_low=s.intervals[entry][0][i],
                                   pi_high=s.intervals[entry][1][i])
                    rows.append(row)
            rows += _nonresponse_rows(q.id, s)
            scored = list(s.scores.items()) + [(NOISE_FLOOR, s.noise_floor)]
            rows += [dict(table="scores", question_id=q.id, slice=s.label, entry=entry,
                          score=key, value=value, direction=direction.get(key))
                     for entry, values in scored for key, value in values.items()]
    if report.evaluation is not None:
        rows += _eval_csv_rows(report.evaluation, direction)
    rows += [dict(table="verdict", entry=c.get("label"), text=c["verdict"])
             for c in report.checkpoints if c.get("verdict")]
    rows += parts_csv_rows(report.evaluation.fairness if report.evaluation else [],
                           report.individual)
    rows += population_csv_rows(report.population_estimates)
    return rows


def _nonresponse_rows(question_id: str, s: SliceResult) -> list[dict[str, Any]]:
    """counts and nonresponse rows of one slice (respondent data only)."""
    rows = [dict(table="counts", question_id=question_id, slice=s.label, score=key, value=value)
            for key, value in (("n", s.n), ("n_asked", s.n_asked), ("n_total", s.n_total))
            if value is not None]
    rows += [dict(table="nonresponse", question_id=question_id, slice=s.label, option=reason,
                  share=share, text=REASONS.get(reason, reason))
             for reason, share in s.nonresponse.items()]
    return rows


def _eval_csv_rows(part: EvaluationReport, direction: dict[str, str]) -> list[dict]:
    rows = []
    for values in part.summary.rows:
        record = dict(zip(part.summary.columns, values))
        entry = record.pop(part.summary.columns[0])
        rows += [dict(table="eval_summary", entry=entry, score=k, value=v,
                      direction=direction.get(k)) for k, v in record.items()]
    for values in part.rows.rows:
        record = dict(zip(part.rows.columns, values))
        base = {c: record.pop(c, None) for c in ("question_id", "slice", "entry")}
        rows += [dict(table="eval_scores", **base, score=k, value=v,
                      direction=direction.get(k)) for k, v in record.items()]
    return rows


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return neutralise(value)


def report_csv(report: Report) -> str:
    """The report's shares and scores as one long CSV (see module docstring).

    Args:
        report: the Report.

    Returns:
        CSV text with columns CSV_COLUMNS; formula-like text cells neutralised.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in _csv_rows(report):
        writer.writerow({c: _csv_value(row.get(c)) for c in CSV_COLUMNS})
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    """NaN/inf become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def report_json(report: Report) -> str:
    """The whole Report as JSON text (UTF-8 friendly; read back with report_from_json)."""
    return json.dumps(_json_safe(asdict(report)), ensure_ascii=False, indent=1)


def report_from_json(text: str) -> Report:
    """Inverse of report_json."""
    data = json.loads(text)
    data["scores"] = [ScoreInfo(**s) for s in data["scores"]]
    data["questions"] = [QuestionReport(**{**q, "slices": [SliceResult(**s) for s in q["slices"]]})
                         for q in data["questions"]]
    part = data.get("evaluation")
    if part is not None:
        data["evaluation"] = EvaluationReport(
            entries=part["entries"], score=part["score"], summary=Table(**part["summary"]),
            heatmaps=[Heatmap(**h) for h in part["heatmaps"]],
            worst={k: Table(**t) for k, t in part["worst"].items()}, rows=Table(**part["rows"]),
            fairness=[fairness_from_dict(f) for f in part.get("fairness") or []])
    if data.get("individual") is not None:
        data["individual"] = individual_from_dict(data["individual"])
    data["population_estimates"] = [population_from_dict(p) for p in
                                    data.get("population_estimates") or []]
    return Report(**data)
