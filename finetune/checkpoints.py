"""Training checkpoints that are whole or ignored, so that a kill -9 never breaks a resume.

The transformers Trainer writes a checkpoint folder file by file (weights, optimizer,
scheduler, RNG state, trainer_state.json); a process killed in the middle leaves a folder
that looks like the newest checkpoint but cannot be loaded. So every checkpoint is sealed
once the Trainer has finished it: `SealCheckpoints.on_save` syncs its files to disk and
writes a manifest (every file with its size) atomically. A checkpoint counts only when its
manifest is there and every file it lists has that size; `last_whole_checkpoint` resumes
from the newest such one and removes the incomplete rest (a folder half-deleted by the
Trainer's rotation of old checkpoints fails the same check).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from sim_core.base.writing import atomic_write

MANIFEST = "checkpoint-complete.json"
STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
log = logging.getLogger(__name__)


def seal(folder: Path, step: int) -> None:
    """Mark a finished checkpoint whole: files synced to disk, then the manifest written."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        files[path.relative_to(folder).as_posix()] = path.stat().st_size
    atomic_write(folder / MANIFEST, json.dumps({"step": step, "files": files}, indent=1))


def is_whole(folder: Path) -> bool:
    """Whether a checkpoint folder was sealed and still holds every file it was sealed with."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        files = manifest["files"]
        if state.get("global_step") != manifest["step"] or STATE_FILE not in files:
            return False
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def newest_whole_checkpoint(folder: Path) -> Path | None:
    """The newest whole checkpoint under `folder`, touching nothing (safe while a training
    process may be writing one: it is then not whole yet)."""
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if p.is_dir() and (m := _CHECKPOINT.match(p.name)))
    return next((p for _, p in reversed(found) if is_whole(p)), None)


def last_whole_checkpoint(folder: Path) -> Path | None:
    """The newest whole checkpoint under `folder` (None when there is none); checkpoint
    folders that are not whole are removed, so the Trainer never writes into one again."""
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if p.is_dir() and (m := _CHECKPOINT.match(p.name)))
    last = None
    for _, path in found:
        if is_whole(path):
            last = path
        else:
            log.warning("Skipping the incomplete training checkpoint %s (interrupted while "
                        "it was written); it is removed.", path)
            shutil.rmtree(path, ignore_errors=True)
    return last


class SealCheckpoints(TrainerCallback):
    """Seals every checkpoint right after the Trainer has written it (see `seal`)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                seal(folder, state.global_step)
        return control
