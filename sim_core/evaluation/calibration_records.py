"""Where a checkpoint's calibration lives, and the one lookup the simulator's callers use.

An adapter carries its calibration in its card (`AdapterCard.calibration`, fitted by
finetune.train on the split's validation rows, and `AdapterCard.heldout`, the measurement
behind its verdict). A base model gets one record per survey in the workspace:
`workspace/calibrations/<model fingerprint>/<safe survey name>.json`, written atomically by
sim_core.evaluation.calibration_runs.calibrate_base (`python -m sim_core calibrate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim_core.base.errors import SimError
from sim_core.base.reading import write_json_atomic
from sim_core.base.workspace import safe_name, subdir
from sim_core.evaluation.verdict import HeldOut, verdict
from sim_core.simulation.adapter_card import AdapterCard, read_card
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.handle import ModelHandle

FOLDER = "calibrations"
SOURCES = ("adapter card", "record")


@dataclass
class CheckpointCalibration:
    """A checkpoint's calibration with what it was fitted and measured on.

    Attributes:
        calibration: the fitted Calibration (with conformal residuals).
        heldout: the held-out measurement for the verdict (None: not measured).
        source: "adapter card" or "record" (a base model's workspace record).
        model, model_fingerprint: the base model (name as given to load_model).
        survey, survey_fingerprint: the survey it was fitted on.
        split: which questions were fitted on and which held out (seed, fractions).
        created: ISO 8601 time of the fit.
        note: why this one applies, when that is not obvious (not stored).
    """

    calibration: Calibration
    heldout: HeldOut | None = None
    source: str = "record"
    model: str = ""
    model_fingerprint: str = ""
    survey: str = ""
    survey_fingerprint: str = ""
    split: dict = field(default_factory=dict)
    created: str = ""
    note: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        """JSON-ready (the note is not stored)."""
        return {"calibration": self.calibration.to_dict(),
                "heldout": None if self.heldout is None else self.heldout.to_dict(),
                "source": self.source, "model": self.model,
                "model_fingerprint": self.model_fingerprint, "survey": self.survey,
                "survey_fingerprint": self.survey_fingerprint, "split": self.split,
                "created": self.created}

    @classmethod
    def from_dict(cls, data: dict) -> CheckpointCalibration:
        """Inverse of to_dict; SimError when malformed."""
        try:
            held = data.get("heldout")
            return cls(calibration=Calibration.from_dict(data["calibration"]),
                       heldout=None if not held else HeldOut.from_dict(held),
                       source=str(data.get("source", "record")),
                       model=str(data.get("model", "")),
                       model_fingerprint=str(data.get("model_fingerprint", "")),
                       survey=str(data.get("survey", "")),
                       survey_fingerprint=str(data.get("survey_fingerprint", "")),
                       split=dict(data.get("split") or {}), created=str(data.get("created", "")))
        except (KeyError, TypeError, AttributeError) as error:
            raise SimError(f"malformed calibration record: {error}") from error


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def calibrations_dir() -> Path:
    """workspace/calibrations, created on demand."""
    return subdir(FOLDER)


def record_path(model_fingerprint: str, survey: str) -> Path:
    """workspace/calibrations/<model fingerprint>/<safe survey name>.json."""
    return calibrations_dir() / safe_name(model_fingerprint) / f"{safe_name(survey)}.json"


def save_record(record: CheckpointCalibration) -> Path:
    """Write a base model's record atomically (replacing the one for the same survey)."""
    if not record.model_fingerprint or not record.survey:
        raise SimError("a calibration record needs the model fingerprint and the survey name.")
    path = record_path(record.model_fingerprint, record.survey)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record.to_dict())
    return path


def _read(path: Path) -> CheckpointCalibration:
    """One record file; SimError naming the file when it is unreadable."""
    try:
        return CheckpointCalibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, SimError) as error:
        raise SimError(f"The calibration record {path} is unreadable ({error}); delete it "
                       "and run `python -m sim_core calibrate` again.") from error


def read_record(model_fingerprint: str, survey: str) -> CheckpointCalibration | None:
    """The record of a base model for a survey (None when there is none)."""
    path = record_path(model_fingerprint, survey)
    return _read(path) if path.exists() else None


def model_records(model_fingerprint: str) -> list[CheckpointCalibration]:
    """Every record of a base model, newest first (unreadable files skipped)."""
    folder = calibrations_dir() / safe_name(model_fingerprint)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(_read(path))
        except SimError:
            continue
    return sorted(found, key=lambda r: r.created, reverse=True)


def card_calibration(card: AdapterCard) -> CheckpointCalibration | None:
    """The calibration an adapter's card holds (None when it has none)."""
    if not card.calibration:
        return None
    return CheckpointCalibration(
        calibration=Calibration.from_dict(card.calibration),
        heldout=HeldOut.from_dict(card.heldout) if card.heldout else None,
        source="adapter card", model=card.base_model or "",
        model_fingerprint=card.base_fingerprint or "", survey=str(card.data.get("survey", "")),
        survey_fingerprint=str(card.data.get("fingerprint", "")), split=card.split,
        created=card.date or "")


def _survey_record(lm: ModelHandle, survey: Any) -> CheckpointCalibration | None:
    """The base model's record for this survey: same data (fingerprint) under any name,
    else the same name (then fitted on other data: the note says so)."""
    name = str(getattr(survey, "name", survey) or "")
    fingerprint = getattr(survey, "fingerprint", "")
    records = model_records(lm.fingerprint)
    same_data = [r for r in records if fingerprint and r.survey_fingerprint == fingerprint]
    if same_data:
        return same_data[0]
    same_name = [r for r in records if name and r.survey == name]
    if not same_name:
        return None
    record = same_name[0]
    if fingerprint and record.survey_fingerprint:
        record.note = (f"{lm.label}'s calibration was fitted on another version of '{name}' "
                       "(the data changed since); refit it with `python -m sim_core "
                       "calibrate`.")
    return record


def calibration_for(lm: ModelHandle, survey: Any = None) -> CheckpointCalibration | None:
    """The calibration the simulator applies to this checkpoint (None: none).

    Args:
        lm: the checkpoint (any backend).
        survey: the Survey (or its name) being simulated; None for a drafted question.
    Returns:
        An adapter: its card's. A base model: its record for that survey (matched by the
        data's fingerprint, else by name); for a drafted question its most recent record
        (the note names the survey). None otherwise.
    Raises:
        SimError: an adapter card whose calibration cannot be read.
    """
    if lm.adapter_path is not None:
        return card_calibration(read_card(lm.adapter_path))
    if survey is not None and str(getattr(survey, "name", survey) or ""):
        return _survey_record(lm, survey)
    records = model_records(lm.fingerprint)
    if records:
        records[0].note = (f"{lm.label} is calibrated with its record for survey "
                           f"'{records[0].survey}' (the most recent one).")
        return records[0]
    return None


def checkpoint_verdict(record: CheckpointCalibration | None, label: str, *,
                       calibrated: bool = True, subject: str | None = None) -> str:
    """The verdict text for one checkpoint, or the sentence saying why there is none.

    Args:
        record: calibration_for's answer.
        label: the checkpoint's display label.
        calibrated: judge it as simulated with (True) or without its calibration.
        subject: how the text names it (default "this adapter" / "this model").
    """
    if record is None:
        return (f"{label}: no held-out measurement, so its shares are not calibrated and carry "
                "no prediction interval. Calibrate a base model on a survey with `python -m "
                "sim_core calibrate --data SURVEY --model MODEL`; an adapter gets one when it "
                "is trained with validation rows.")
    if record.heldout is None:
        return (f"{label}: calibrated on validation rows of '{record.survey}', but its held-out "
                "rows were not scored, so there is no verdict.")
    subject = subject or ("this adapter" if record.source == "adapter card" else "this model")
    text = verdict(record.heldout, calibrated=calibrated, subject=subject).text
    fallback = record.calibration.fitted_on.get("fallback")
    if calibrated and fallback == "uniform":
        text += (" Its calibration found no skill on the validation rows, so its calibrated "
                 "shares are the uniform guess; switch calibration off to see the raw shares.")
    elif calibrated and fallback == "raw":
        text += (" Its calibration did not improve on the raw shares on validation questions "
                 "it was not fitted on, so it leaves them as simulated (its intervals still "
                 "apply).")
    return f"{label}: {text}" + (f" {record.note}" if record.note else "")
