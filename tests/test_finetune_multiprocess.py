"""Training in two processes through accelerate (DDP, gloo on the CPU): one adapter and one
card, written by rank 0; the shared before/after evaluation gives the single-process numbers.

Note: `accelerate launch --cpu --num_processes 2` starts ONE process on a single machine
(accelerate's CPU launcher needs an MPI hostfile for more). `--multi_gpu --num_processes 2`
starts two through torchrun; `--device cpu` then makes the Trainer use gloo on the CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_core.base.labels import baseline_entry
from sim_core.evaluation.evaluate import evaluate_rows
from sim_core.evaluation.splits import SplitInfo, held_out_rows
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.prompts import PromptStyle
from sim_core.simulation.simulate import simulate_rows
from sim_core.survey.readers import load_survey
from sim_core.survey.slices import survey_rows

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = "natspac,natenvir,natheal"


def free_port() -> int:
    """A free TCP port for the process group (colleagues' runs may hold the default)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two(args: list[str], workspace: Path, tmp: Path) -> subprocess.CompletedProcess:
    """`accelerate launch` of `python -m finetune ...` in two processes on the CPU."""
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "finetune", *args]
    env = {**os.environ, "SIM_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1",
           "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.slow
def test_two_processes_write_one_adapter_that_loads(tiny_model_dir, gss_path, tmp_path):
    workspace, tmp = tmp_path / "workspace", tmp_path / "tmp"
    tmp.mkdir()
    done = launch_two(["train", "--device", "cpu", "--data", str(gss_path), "--question",
                       QUESTIONS, "--split", "question", "--model", str(tiny_model_dir),
                       "--name", "two-procs", "--max-steps", "3", "--batch-size", "4",
                       "--rank", "4", "--lr", "0.05", "--json"], workspace, tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    # rank 0 alone reports: one JSON line on stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout
    printed = json.loads(lines[0])
    # exactly one adapter folder, no temporary or half-written ones; the processes'
    # temporary training folders are gone
    registry = workspace / "adapters"
    assert sorted(p.name for p in registry.iterdir()) == ["two-procs"]
    adapter = registry / "two-procs"
    assert {"adapter_config.json", "adapter_model.safetensors", "card.json"} <= \
        {p.name for p in adapter.iterdir()}
    # (torchrun keeps its own torchelastic_* log folder there)
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchelastic")] == []
    card = json.loads((adapter / "card.json").read_text())
    assert card["processes"] == 2 and card["steps"] == 3 and printed["after"] == card["after"]
    # the two processes shared the held-out rows; their summed scores are the numbers one
    # process gets on all of them
    survey = load_survey(gss_path)
    rows = survey_rows(survey, questions=QUESTIONS.split(","))
    test_rows = held_out_rows(rows, SplitInfo.from_dict(card["split"]))
    assert len(test_rows) == card["test_rows"] >= 2
    base = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    # scored in the prompt style the card records (the survey's population and names)
    style = PromptStyle.from_dict(card["prompt_style"])
    alone = evaluate_rows([base], test_rows, config=SimConfig(use_cache=False, style=style),
                          baselines=("uniform", "population")).rows
    for entry, expected in [(base.label, card["before"]),
                            (baseline_entry("uniform"), card["baselines"]["uniform"]),
                            (baseline_entry("population"), card["baselines"]["population"])]:
        mine = alone[alone["entry"] == entry]
        for key in ("kl", "js", "wasserstein"):
            assert expected[key] == pytest.approx(float(mine[key].mean()), rel=1e-4), key
    # the adapter loads through the simulator and scores: not the base model's numbers
    tuned = load_model(str(tiny_model_dir), adapter=str(adapter), dtype="float32",
                       device="cpu")
    config = SimConfig(orders=1, use_cache=False)
    adapted = simulate_rows(tuned, test_rows[:3], config)
    plain = simulate_rows(base, test_rows[:3], config)
    assert all(abs(r.shares.sum() - 1) < 1e-9 for r in adapted)
    assert max(np.abs(a.shares - p.shares).max() for a, p in zip(adapted, plain)) > 1e-4
