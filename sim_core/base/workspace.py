"""Where the simulator keeps its files: models, adapters, cache, surveys, jobs; and the rule
for the names under which the user stores things there."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sim_core.base.errors import SimError
from sim_core.base.writing import make_folder

DEFAULT_WORKSPACE = "~/.opinion-sim"
SUBDIRS = ("models", "adapters", "cache", "surveys", "jobs", "history", "populations")
MAX_NAME = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def workspace_dir() -> Path:
    """The workspace folder: $SIM_WORKSPACE, default ~/.opinion-sim; created on demand.

    Raises:
        SimError: the path is a file, or the folder cannot be created (read-only, denied).
    """
    configured = os.environ.get("SIM_WORKSPACE")
    folder = Path(configured or DEFAULT_WORKSPACE).expanduser()
    try:
        return make_folder(folder)
    except SimError as error:
        source = "SIM_WORKSPACE" if configured else "the default workspace"
        raise SimError(f"The workspace ({source}: {folder}) is unusable. {error} Point "
                       "SIM_WORKSPACE at a writable folder.") from None


def subdir(name: str) -> Path:
    """A named sub-folder of the workspace ("models", "adapters", "cache", ...), created on demand.

    Args:
        name: one of SUBDIRS (other names must pass check_name).
    Returns:
        The folder path.
    """
    return make_folder(workspace_dir() / check_name(name, "folder"))


def safe_name(text: str) -> str:
    """A file-name-safe version of user text: [A-Za-z0-9._-], no leading dot, <= 64 chars.

    Used to suggest a name and for names the tool derives itself (an uploaded file's name
    inside a survey folder, a download); never to look up or store what the user named
    (check_name).

    Args:
        text: any user-provided name.
    Returns:
        The sanitised name.
    Raises:
        SimError: when nothing usable is left (empty, only dots or symbols).
    """
    name = _UNSAFE.sub("-", str(text).strip())
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", "-", name))  # ".." never survives
    name = name.strip("-.")[:MAX_NAME].rstrip("-.")
    if not name or set(name) <= {".", "-", "_"}:
        raise SimError(f"'{_shown(text)}' is not usable as a name: use letters, digits, '.', "
                       "'_' or '-'.")
    return name


def is_valid_name(text: object) -> bool:
    """Whether text can be stored as it is (safe_name would not change it)."""
    if not isinstance(text, str) or not text or len(text) > MAX_NAME:
        return False
    try:
        return safe_name(text) == text
    except SimError:
        return False


def check_name(text: str, what: str = "name") -> str:
    """The name unchanged when it can be stored as it is; otherwise SimError with a
    suggestion. Names are never rewritten silently: "My survey" and "My/survey" would both
    become "My-survey", so neither is taken as typed.

    Args:
        text: the name the user gave.
        what: what is being named, for the message ("survey name", "adapter name").
    Returns:
        text itself.
    """
    if is_valid_name(text):
        return text
    rule = (f"use only letters, digits, '.', '_' and '-' (at most {MAX_NAME} characters, "
            "not starting with '.' or ending with '.' or '-', no '..')")
    try:
        suggestion = f"; for example '{safe_name(text)}'"
    except SimError:
        suggestion = ""
    length = f" (it has {len(str(text))} characters)" if len(str(text)) > MAX_NAME else ""
    raise SimError(f"'{_shown(text)}' is not usable as the {what}{length}: {rule}{suggestion}.")


def _shown(text: object) -> str:
    """User text for a message, shortened so that a 5,000-character name stays readable."""
    text = str(text)
    return text if len(text) <= 80 else text[:77] + "..."
