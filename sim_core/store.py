"""Saved surveys: files the user loaded, kept in workspace/surveys/ for every page and the
CLI (`--data NAME`, `python -m sim_core surveys`).

Each survey is a folder named with safe_name holding the original file bytes and a
mapping.json (reader arguments: columns chosen for weight, wave, demographics, questions).
Never pickles: the survey is re-read through sim_core.readers from the original bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sim_core.readers import load_survey
from sim_core.workspace import safe_name, subdir

MAPPING_FILE = "mapping.json"
MAPPING_KEYS = ("weight", "wave", "demographics", "questions")


def surveys_dir() -> Path:
    """workspace/surveys/ (created on demand)."""
    return subdir("surveys")


def save_survey(name: str, filename: str, data: bytes, mapping: dict | None = None,
                codebook: tuple[str, bytes] | None = None) -> str:
    """Store an uploaded file (and optional codebook) with its column mapping.

    Args:
        name: display name; the folder name is safe_name(name).
        filename: the uploaded file's name (its extension picks the reader).
        data: the file's bytes, stored unchanged.
        mapping: reader keyword arguments (weight, wave, demographics, questions).
        codebook: optional (filename, bytes) of a codebook CSV.
    Returns:
        The stored survey's name (folder name).
    """
    key = safe_name(name)
    folder = surveys_dir() / key
    folder.mkdir(parents=True, exist_ok=True)
    data_name = safe_name(filename)
    (folder / data_name).write_bytes(data)
    info = {"name": key, "file": data_name, "codebook": None,
            "mapping": {k: v for k, v in (mapping or {}).items() if k in MAPPING_KEYS}}
    if codebook is not None:
        info["codebook"] = "codebook-" + safe_name(codebook[0])
        (folder / info["codebook"]).write_bytes(codebook[1])
    (folder / MAPPING_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return key


def saved_surveys() -> list[str]:
    """Names of the stored surveys, sorted."""
    return sorted(p.parent.name for p in surveys_dir().glob(f"*/{MAPPING_FILE}"))


def read_info(name: str) -> dict:
    """The stored mapping.json of a survey."""
    path = surveys_dir() / safe_name(name) / MAPPING_FILE
    return json.loads(path.read_text(encoding="utf-8"))


def stamp(name: str) -> float:
    """Modification time of a stored survey (cache key: changes when re-saved)."""
    return (surveys_dir() / safe_name(name) / MAPPING_FILE).stat().st_mtime


def load_saved(name: str):
    """Re-read a stored survey through sim_core.readers.load_survey."""
    info = read_info(name)
    folder = surveys_dir() / safe_name(name)
    codebook = folder / info["codebook"] if info.get("codebook") else None
    kwargs = {k: v for k, v in info.get("mapping", {}).items() if v}
    return load_survey(folder / info["file"], name=info["name"], codebook=codebook, **kwargs)


def delete_saved(name: str) -> None:
    """Remove a stored survey folder."""
    shutil.rmtree(surveys_dir() / safe_name(name), ignore_errors=True)
