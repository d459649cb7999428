"""Where the simulator keeps its files: models, adapters, cache, surveys, jobs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sim_core.errors import SimError

DEFAULT_WORKSPACE = "~/.opinion-sim"
SUBDIRS = ("models", "adapters", "cache", "surveys", "jobs")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def workspace_dir() -> Path:
    """The workspace folder: $SIM_WORKSPACE, default ~/.opinion-sim; created on demand."""
    folder = Path(os.environ.get("SIM_WORKSPACE") or DEFAULT_WORKSPACE).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def subdir(name: str) -> Path:
    """A named sub-folder of the workspace ("models", "adapters", "cache", ...), created on demand.

    Args:
        name: one of SUBDIRS (other names are passed through safe_name).
    Returns:
        The folder path.
    """
    folder = workspace_dir() / safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def safe_name(text: str) -> str:
    """A file-name-safe version of user text: [A-Za-z0-9._-], no leading dot, <= 64 chars.

    Args:
        text: any user-provided name.
    Returns:
        The sanitised name.
    Raises:
        SimError: when nothing usable is left (empty, only dots or symbols).
    """
    name = _UNSAFE.sub("-", str(text).strip())
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", "-", name))  # ".." never survives
    name = name.strip("-.")[:64].rstrip("-.")
    if not name or set(name) <= {".", "-", "_"}:
        raise SimError(f"'{text}' is not usable as a name: use letters, digits, '.', '_' or '-'.")
    return name
