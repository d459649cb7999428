"""Background training jobs for the dashboard, with their state in workspace/jobs/<id>/.

A job is a separate process (`python -m finetune train --job-dir DIR`), so the page stays
usable and every browser tab sees the same job. Jobs queue: one runs at a time per machine
(workspace), the oldest queued one starts when it ends (launch_next). Files in the job folder:

    job.json      what to train (split rows, name, base, config, data info)
    status.json   state (queued | running | done | failed | cancelled), step, total, loss and
                  validation history, eta, error message, result (adapter name, scores)
    cancel        present = cancel requested; the training side checks it every step and
                  between scoring batches (a job not started yet is cancelled at once)
    log.txt       the process's output
    checkpoints/  Trainer checkpoints (a job started again resumes from the last one)

A job whose process died (a crash, a restarted server, a reboot) reads as failed; resume_job
queues it again and its process continues from the last sealed checkpoint
(finetune.checkpoints), with the same rows, settings and adapter name; resume_note says
beforehand what resuming keeps (the steps up to that checkpoint, the base model's scores
before training) and loses (the steps after it).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.checkpoints import newest_whole_checkpoint
from finetune.config import TrainConfig
from finetune.rows import split_from_json, split_to_json
from sim_core.base.errors import SimError
from sim_core.base.reading import write_json_atomic
from sim_core.base.workspace import is_valid_name, subdir
from sim_core.base.writing import atomic_write, make_folder
from sim_core.evaluation.splits import Split
from sim_core.simulation.adapters import check_new_adapter
from sim_core.simulation.devices import resolve_device
from sim_core.simulation.prompts import PromptStyle

STATUS_FILE, JOB_FILE, CANCEL_FILE, LOG_FILE = "status.json", "job.json", "cancel", "log.txt"
QUEUE_LOCK = ".queue.lock"
ACTIVE = ("queued", "running")
MAX_EVENTS = 2000          # status.json stays small for long runs


def jobs_dir() -> Path:
    """workspace/jobs, created on demand."""
    return subdir("jobs")


def job_dir(job_id: str) -> Path:
    """Folder of one job, by its exact id (unknown ids raise SimError)."""
    folder = jobs_dir() / job_id if is_valid_name(job_id) else None
    if folder is None or not folder.is_dir():
        raise SimError(f"No training job '{job_id}'.")
    return folder


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_status(folder: Path) -> dict:
    """status.json of a job folder (an unreadable one reads as failed)."""
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError) as error:
        return {"id": folder.name, "status": "failed", "state": "failed",
                "error": f"Unreadable job status: {error}"}


def start_job(split: Split, *, name: str, base: str = "default", config: Any = None,
              data_info: dict | None = None, overwrite: bool = False,
              style: PromptStyle | None = None) -> str:
    """Start training in a separate process; returns the job id at once.

    Args:
        split: rows (finetune.rows.split_rows), written to the job folder as JSON.
        name: adapter name; base: base model; config: TrainConfig (defaults when None).
        data_info: data fingerprint / file name for the card.
        overwrite: replace an existing adapter of that name.
        style: the prompt style to train with (finetune.train.train_adapter).
    Returns:
        The job id (a folder name under workspace/jobs).
    """
    config = config or TrainConfig()
    check_new_adapter(name, overwrite)   # a bad or taken name fails here, not in the background
    gpu = _visible_gpu(config.device)
    if gpu is not None:        # the job's process sees that one GPU only, as its cuda:0
        config = replace(config, device="cuda")
    # Microseconds in the id: the queue runs jobs in id order, so two jobs queued within
    # one second must still start oldest first.
    job_id = f"{datetime.now():%Y%m%d-%H%M%S-%f}-{secrets.token_hex(3)}"
    folder = make_folder(jobs_dir() / job_id)
    write_json_atomic(folder / JOB_FILE, {"name": name, "base": base, "config": asdict(config),
                                          "data_info": data_info or {}, "overwrite": overwrite,
                                          "gpu": gpu, "split": split_to_json(split),
                                          "style": asdict(style) if style else None})
    write_json_atomic(folder / STATUS_FILE, {"id": job_id, "name": name, "base": base,
                                             "status": "queued", "state": "queued",
                                             "created": _now(), "step": 0, "total": None,
                                             "events": []})
    launch_next()
    return job_id


def _visible_gpu(device: str | None) -> str | None:
    """For device "cuda:N": the CUDA_VISIBLE_DEVICES entry of that GPU (a training process
    runs on its first visible GPU); None otherwise. The device name is checked here, so a
    bad one fails at once, not in the background."""
    text = (device or "auto").strip().lower()
    resolved = resolve_device(text)
    if not text.startswith("cuda:"):
        return None
    index = int(resolved.split(":")[1])
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
               if v.strip()]
    return visible[index] if index < len(visible) else str(index)


def read_job_spec(folder: Path) -> dict:
    """What a job trains: split, name, base, config (TrainConfig), data_info, overwrite,
    style (PromptStyle or None)."""
    try:
        spec = json.loads((folder / JOB_FILE).read_text())
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in spec.get("config", {}).items() if k in known})
        return {"split": split_from_json(spec["split"]), "name": spec["name"],
                "base": spec.get("base", "default"), "config": config,
                "data_info": spec.get("data_info", {}), "overwrite": bool(spec.get("overwrite")),
                "style": PromptStyle.from_dict(spec["style"]) if spec.get("style") else None}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SimError(f"The job in {folder} cannot be read: {error}") from error


def launch(folder: Path) -> subprocess.Popen:
    """Run `python -m finetune train --job-dir folder` detached, output to log.txt."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    gpu = json.loads((folder / JOB_FILE).read_text()).get("gpu")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "finetune", "train", "--job-dir",
                                 str(folder)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=root,
                                start_new_session=True)
    update_status(folder, pid=proc.pid)
    return proc


def update_status(folder: Path, **changes: Any) -> dict:
    """Merge changes into status.json (state is mirrored as `status` for the page)."""
    status = read_status(folder)
    status.update(changes)
    if "state" in changes:
        status["status"] = changes["state"]
    write_json_atomic(folder / STATUS_FILE, status)
    return status


def _alive(pid: int | None) -> bool:
    """Whether a process id is still running (zombies count as ended)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def job_status(job_id: str) -> dict:
    """Current status of one job; a job whose process died without a word reads as failed."""
    folder = job_dir(job_id)
    status = read_status(folder)
    if status.get("status") in ACTIVE and status.get("pid") and not _alive(status["pid"]):
        status = read_status(folder)      # it may have finished between the two reads
        if status.get("status") in ACTIVE:
            status = update_status(folder, state="failed",
                                   error="The training process ended unexpectedly; see "
                                         f"{folder / LOG_FILE}. Resume it to continue from "
                                         "its last checkpoint.")
    status["id"] = folder.name
    return status


def _job_folders() -> list[Path]:
    """Job folders, oldest first (ids start with their start time)."""
    return sorted((p for p in jobs_dir().iterdir() if (p / STATUS_FILE).exists()),
                  key=lambda p: p.name)


def list_jobs() -> list[dict]:
    """Every job's status, newest first; a queued job starts here if none runs (e.g. the
    process that should have started it died)."""
    for folder in _job_folders():
        job_status(folder.name)         # a dead process reads as failed before the queue
    launch_next()
    return [job_status(p.name) for p in reversed(_job_folders())]


@contextmanager
def _queue_lock() -> Iterator[None]:
    """One process at a time decides what runs next (an flock on jobs/.queue.lock)."""
    with open(jobs_dir() / QUEUE_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _waiting(status: dict) -> bool:
    """Queued and not handed to a process yet."""
    return status.get("status") == "queued" and not status.get("pid")


def launch_next() -> str | None:
    """Start the oldest waiting job unless one is running; returns its id (or None)."""
    with _queue_lock():
        states = [(folder, read_status(folder)) for folder in _job_folders()]
        if any(s.get("status") in ACTIVE and _alive(s.get("pid")) for _, s in states):
            return None
        for folder, status in states:
            if not _waiting(status):
                continue
            if (folder / CANCEL_FILE).exists():
                update_status(folder, state="cancelled", finished=_now(),
                              error="Cancelled before it started; nothing was trained.")
                continue
            launch(folder)
            return folder.name
    return None


def cancel_job(job_id: str) -> None:
    """Ask a job to stop: the training side sees the cancel file within one step or scoring
    batch; a job still waiting in the queue is cancelled at once."""
    folder = job_dir(job_id)
    atomic_write(folder / CANCEL_FILE, _now())
    with _queue_lock():
        if _waiting(read_status(folder)):
            update_status(folder, state="cancelled", finished=_now(),
                          error="Cancelled before it started; nothing was trained.")


def _checkpoint_step(folder: Path) -> int | None:
    """The step of the job's last whole checkpoint (None: none was sealed)."""
    last = newest_whole_checkpoint(folder / "checkpoints")
    return None if last is None else int(last.name.rsplit("-", 1)[1])


def resume_note(job_id: str) -> str:
    """What resuming a job keeps and loses (shown beside the Resume button)."""
    folder = job_dir(job_id)
    status = job_status(job_id)
    step, reached = _checkpoint_step(folder), int(status.get("step") or 0)
    total = f" of {status['total']}" if status.get("total") else ""
    kept = ["the base model's scores before training"] if (folder / "before.json").exists() \
        else []
    same = " The same rows, settings and adapter name are used."
    if step is None:
        return (f"No checkpoint was saved before the process ended (at step {reached}{total}):"
                " resuming trains from step 0 again"
                + (f", keeping {kept[0]}" if kept else "") + "." + same)
    kept.insert(0, f"the {step} steps trained up to it (weights, optimizer, learning-rate "
                   "schedule, random state)")
    lost = max(reached - step, 0)
    best = ("; the best weights by validation loss found so far are not kept (the search for "
            "the best starts again)" if status.get("val_history") else "")
    return (f"Resuming continues from the checkpoint at step {step}{total}: it keeps "
            + " and ".join(kept)
            + (f"; the {lost} step(s) trained after it are lost and trained again" if lost
               else "") + best + "." + same)


def resume_job(job_id: str) -> str:
    """Queue a failed job again; its process continues from the last sealed checkpoint.

    Returns:
        The message saying what is kept and lost (resume_note).
    Raises:
        SimError: the job is running, queued, done or cancelled, its job file cannot be
            read, or its adapter name was taken meanwhile (unless the job may overwrite).
    """
    folder = job_dir(job_id)
    status = job_status(job_id)
    if status.get("status") != "failed":
        raise SimError(f"Job '{job_id}' is {status.get('status')}: only a failed job can be "
                       "resumed.")
    spec = read_job_spec(folder)
    check_new_adapter(spec["name"], spec["overwrite"])     # taken meanwhile: say so now
    note = resume_note(job_id)
    step = _checkpoint_step(folder) or 0
    with _queue_lock():
        events = [e for e in status.get("events") or [] if (e.get("step") or 0) <= step]
        update_status(folder, state="queued", pid=None, error=None, finished=None,
                      step=step, events=events, resumed_from=step,
                      resumed=int(status.get("resumed") or 0) + 1,
                      loss_history=[[e["step"], e.get("loss")] for e in events],
                      val_history=[[e["step"], e["val"]] for e in events if e.get("val")])
    launch_next()
    return note


class JobReporter:
    """The training side of a job: status updates from progress events, cancel polling."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.events: list[dict] = list(read_status(self.folder).get("events") or [])

    def should_stop(self) -> bool:
        """True once cancel_job() wrote the cancel file."""
        return (self.folder / CANCEL_FILE).exists()

    def running(self) -> None:
        update_status(self.folder, state="running", started=_now(), pid=os.getpid(),
                      error=None)

    def __call__(self, event: dict) -> None:
        if "phase" in event:            # loading / scoring: its own count, not a step
            update_status(self.folder, phase=event["phase"], phase_done=event["done"],
                          phase_total=event["total"], phase_eta_s=event.get("eta_s"))
            return
        self.events = (self.events + [event])[-MAX_EVENTS:]
        update_status(self.folder, phase="training", step=event.get("step"),
                      total=event.get("total_steps"),
                      eta_s=event.get("eta_s"), events=self.events,
                      loss_history=[[e["step"], e.get("loss")] for e in self.events],
                      val_history=[[e["step"], e["val"]] for e in self.events if e.get("val")])

    def finish(self, state: str, *, error: str | None = None, result: dict | None = None):
        """Final state: done (with result), failed (with error) or cancelled; then the
        next queued job starts."""
        update_status(self.folder, state=state, error=error, result=result, finished=_now())
        launch_next()
