"""Training checkpoints survive kill -9: a checkpoint that was being written when the process
died is skipped (and removed), resume takes the last whole one and finishes the run; a full
disk while checkpointing is one clear message."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
from test_finetune_rows import make_rows

from finetune import jobs
from finetune.checkpoints import MANIFEST, is_whole, last_whole_checkpoint
from finetune.config import TrainConfig
from finetune.train import train_adapter
from sim_core.base.errors import Cancelled, SimError
from sim_core.evaluation.splits import Split, SplitInfo
from sim_core.simulation.adapter_card import read_card
from sim_core.simulation.adapters import list_adapters

FAST = {"evaluate_test": False, "batch_size": 4, "rank": 4, "alpha": 8, "eval_every": None}


def _split() -> Split:
    return Split(train=make_rows(4), val=[], test=[], info=SplitInfo())


def _steps(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("checkpoint-*"))


def test_resume_skips_incomplete_checkpoints(tiny_model_dir, tmp_path):
    """The newest checkpoint folders are damaged the ways a kill leaves them (no
    trainer_state.json, a truncated weights file, no manifest): resume starts from the last
    whole one and the run completes with the right step count."""
    split, config = _split(), TrainConfig(max_steps=8, save_every=1, **FAST)
    seen = []
    with pytest.raises(Cancelled):
        train_adapter(split, name="ckpt-skip", base=str(tiny_model_dir), config=config,
                      job_dir=tmp_path, callback=lambda e: seen.append(e["step"]),
                      should_stop=lambda: len(seen) >= 3)
    folder = tmp_path / "checkpoints"
    assert _steps(folder) == [3, 4] and all(is_whole(folder / f"checkpoint-{s}") for s in (3, 4))
    # step 5: killed before trainer_state.json was written
    shutil.copytree(folder / "checkpoint-4", folder / "checkpoint-5")
    (folder / "checkpoint-5" / "trainer_state.json").unlink()
    # step 6: sealed, then a file lost bytes (e.g. a half-finished rotation or copy)
    shutil.copytree(folder / "checkpoint-4", folder / "checkpoint-6")
    manifest = json.loads((folder / "checkpoint-6" / MANIFEST).read_text())
    (folder / "checkpoint-6" / MANIFEST).write_text(json.dumps({**manifest, "step": 6}))
    state = json.loads((folder / "checkpoint-6" / "trainer_state.json").read_text())
    (folder / "checkpoint-6" / "trainer_state.json").write_text(
        json.dumps({**state, "global_step": 6}))
    weights = folder / "checkpoint-6" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    # step 4 lost its manifest too (killed before it was sealed): the last whole one is 3
    (folder / "checkpoint-4" / MANIFEST).unlink()
    assert [is_whole(folder / f"checkpoint-{s}") for s in (3, 4, 5, 6)] == [True] + [False] * 3
    later = []
    result = train_adapter(split, name="ckpt-skip", base=str(tiny_model_dir), config=config,
                           job_dir=tmp_path, callback=lambda e: later.append(e["step"]))
    assert later == [4, 5, 6, 7, 8]                 # resumed after step 3
    assert result.card.steps == 8 and read_card(result.adapter_path).steps == 8
    assert all(is_whole(folder / f"checkpoint-{s}") for s in _steps(folder))


def test_no_whole_checkpoint_starts_afresh(tmp_path):
    (tmp_path / "checkpoint-7").mkdir()
    (tmp_path / "checkpoint-7" / "trainer_state.json").write_text("{not json")
    assert last_whole_checkpoint(tmp_path) is None and not (tmp_path / "checkpoint-7").exists()
    assert last_whole_checkpoint(tmp_path / "missing") is None


def test_disk_full_while_checkpointing_is_one_message(tiny_model_dir, tmp_path, monkeypatch):
    """torch.save failing with ENOSPC (as on a full disk) ends training with a SimError that
    says so; no adapter is saved and the earlier whole checkpoint is kept."""
    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if "checkpoint-2" in str(f):     # the first checkpoint is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, "save", save)
    config = TrainConfig(max_steps=4, save_every=1, **FAST)
    with pytest.raises(SimError, match="the disk is full.*resume; no adapter was saved"):
        train_adapter(_split(), name="ckpt-full", base=str(tiny_model_dir), config=config,
                      job_dir=tmp_path)
    assert "ckpt-full" not in {a.name for a in list_adapters()}
    assert last_whole_checkpoint(tmp_path / "checkpoints").name == "checkpoint-1"


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while not predicate():
        if time.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _kill_during_training(folder: Path, rng: random.Random, mid_write: bool) -> bool:
    """Start the job's process, wait for it to checkpoint, kill -9 it; True when the kill
    left a checkpoint folder that is not whole (it landed while one was being written)."""
    checkpoints = folder / "checkpoints"
    before = set(_steps(checkpoints)) if checkpoints.is_dir() else set()
    process = jobs.launch(folder)
    def newer() -> bool:
        return checkpoints.is_dir() and bool(set(_steps(checkpoints)) - before)
    _wait(lambda: newer() or process.poll() is not None, 120, "a checkpoint")
    assert process.poll() is None, (folder / jobs.LOG_FILE).read_text()[-2000:]
    if mid_write:      # the moment a new checkpoint folder appears without its manifest
        _wait(lambda: any(not (checkpoints / f"checkpoint-{s}" / MANIFEST).exists()
                          for s in _steps(checkpoints)) or process.poll() is not None,
              60, "a checkpoint being written")
    else:
        time.sleep(rng.uniform(0.0, 0.6))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return any(not is_whole(p) for p in checkpoints.glob("checkpoint-*"))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tiny_model_dir):
    """A real training process is killed with SIGKILL four times (random moments, seeded;
    one right as a checkpoint folder appears), then the same job resumes and finishes."""
    split = _split()
    config = TrainConfig(max_steps=400, save_every=1, **FAST)
    job_id = jobs.start_job(split, name="killed-lora", base=str(tiny_model_dir),
                            config=config)
    folder = jobs.job_dir(job_id)
    os.kill(jobs.read_status(folder)["pid"], signal.SIGKILL)      # the first start: killed too
    rng, torn = random.Random(17), 0
    for mid_write in (False, True, False, True):
        torn += _kill_during_training(folder, rng, mid_write)
    assert "killed-lora" not in {a.name for a in list_adapters()}
    resumed_from = last_whole_checkpoint(folder / "checkpoints")
    assert resumed_from is not None
    start = int(resumed_from.name.split("-")[1])
    steps = []
    spec = jobs.read_job_spec(folder)
    small = dataclasses.replace(spec["config"], max_steps=start + 3)
    result = train_adapter(spec["split"], name="killed-lora", base=spec["base"], config=small,
                           job_dir=folder, callback=lambda e: steps.append(e["step"]))
    assert steps == [start + 1, start + 2, start + 3]
    assert result.card.steps == start + 3 and "killed-lora" in {a.name for a in list_adapters()}
    print(f"kills that left a torn checkpoint: {torn} of 4; resumed from step {start}")
