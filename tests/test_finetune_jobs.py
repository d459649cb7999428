"""finetune.jobs (background process, status, cancel) and the finetune CLI."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from test_finetune_rows import make_rows

from finetune import jobs
from finetune.cli import opinion_sim as cli
from finetune.config import TrainConfig
from sim_core.base.errors import SimError
from sim_core.evaluation.splits import Split, SplitInfo
from sim_core.simulation.adapters import list_adapters

FAST = TrainConfig(max_steps=3, batch_size=4, rank=4, alpha=8, evaluate_test=False,
                   save_every=1000)


def wait(job_id: str, timeout: float = 120) -> dict:
    """Poll until the job leaves queued/running."""
    end = time.time() + timeout
    while time.time() < end:
        status = jobs.job_status(job_id)
        if status["status"] not in jobs.ACTIVE:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {status['status']}")


def test_background_job_runs_to_done(tiny_model_dir):
    split = Split(train=make_rows(3), val=make_rows(1), test=[], info=SplitInfo(how="question"))
    job_id = jobs.start_job(split, name="bg-job", base=str(tiny_model_dir), config=FAST,
                            data_info={"file": "demo.csv"})
    first = jobs.job_status(job_id)
    assert first["status"] in ("queued", "running", "done") and first["name"] == "bg-job"
    status = wait(job_id)
    assert status["status"] == "done", (jobs.job_dir(job_id) / jobs.LOG_FILE).read_text()[-2000:]
    assert status["step"] == status["total"] == 3
    assert [s for s, _ in status["loss_history"] if s is not None][-1] == 3
    assert status["result"]["adapter"] == "bg-job"
    assert any(j["id"] == job_id for j in jobs.list_jobs())
    card = next(a.card for a in list_adapters() if a.name == "bg-job")
    assert card.data == {"file": "demo.csv"} and card.split["how"] == "question"


def test_cancel_file_and_dead_process(tmp_path, monkeypatch):
    folder = jobs.jobs_dir() / "manual-job"
    folder.mkdir()
    jobs.write_json_atomic(folder / jobs.STATUS_FILE, {"id": "manual-job", "status": "running",
                                                "state": "running", "pid": 999999999})
    reporter = jobs.JobReporter(folder)
    assert not reporter.should_stop()
    jobs.cancel_job("manual-job")
    assert reporter.should_stop()
    reporter({"step": 2, "total_steps": 5, "loss": 0.5, "val": {"kl": 0.3}, "eta_s": 3.0})
    status = json.loads((folder / jobs.STATUS_FILE).read_text())
    assert status["step"] == 2 and status["val_history"] == [[2, {"kl": 0.3}]]
    # the process id is dead and the job never finished: reported as failed, not running
    assert jobs.job_status("manual-job")["status"] == "failed"
    with pytest.raises(SimError, match="No training job"):
        jobs.job_status("nope")


def test_cli_train_json_list_and_manage(tiny_model_dir, gss_path, capsys, tmp_path):
    code = cli(["train", "--data", str(gss_path), "--question", "natspac,natenvir,natheal",
                 "--name", "cli-lora", "--model", str(tiny_model_dir), "--split", "slice",
                 "--test-slices", "2", "--max-steps", "2", "--batch-size", "4", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)            # stdout is exactly one JSON object
    assert result["adapter"] == "cli-lora" and result["card"]["split"]["how"] == "slice"
    assert len(result["card"]["split"]["test_slices"]) == 2
    assert set(result["card"]["questions_seen"]) == {"natspac", "natenvir", "natheal"}
    if result["before"]:
        assert set(result["before"]) == set(result["after"]) and "kl" in result["after"]
    assert cli(["adapters", "list"]) == 0 and "cli-lora" in capsys.readouterr().out
    # by default only the rows the adapter never saw: the 2 held-out groups of natspac
    assert cli(["eval", "--adapter", "cli-lora", "--data", str(gss_path), "--question",
                 "natspac", "--model", str(tiny_model_dir), "--orders", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "scoring the 2 held-out rows (split by slice)" in captured.err
    out = json.loads(captured.out)
    table = out["summary"]                # entry -> score -> mean
    assert any("cli-lora" in entry for entry in table) and len(table) >= 3
    assert all(0 <= scores["tv"] <= 1 for scores in table.values())
    adapter = next(entry for entry in table if "cli-lora" in entry)
    # trained with validation groups: calibrated; its card's verdict covers all its held-out
    # rows (3 questions x 2 groups), the one here the 2 rows scored now
    assert out["calibrated"][adapter] is True
    assert out["verdicts"][adapter].startswith(
        f"{adapter}: On 3 questions of subpop_eval asked of 2 unseen groups (6 rows) this "
        "adapter, calibrated, is ")
    assert out["verdicts_here"][adapter].startswith(f"{adapter}: On 1 question of ")
    # the held-out groups are never SEX groups here, so --by SEX needs --rows all
    held = set(result["card"]["split"]["test_slices"])
    if not any(h.startswith("SEX=") for h in held):
        assert cli(["eval", "--adapter", "cli-lora", "--data", str(gss_path), "--question",
                     "natspac", "--by", "SEX", "--model", str(tiny_model_dir)]) == 2
        assert "--rows all" in capsys.readouterr().err
    assert cli(["eval", "--adapter", "cli-lora", "--data", str(gss_path), "--question",
                 "natspac", "--by", "SEX", "--model", str(tiny_model_dir), "--orders", "1",
                 "--rows", "all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["summary"]) >= 3
    assert cli(["adapters", "rename", "cli-lora", "cli-renamed"]) == 0
    assert cli(["adapters", "export", "cli-renamed", "--out", str(tmp_path / "a.zip")]) == 0
    assert (tmp_path / "a.zip").stat().st_size > 0
    assert cli(["adapters", "delete", "cli-renamed"]) == 0
    capsys.readouterr()
    # errors: a clear message, exit status 2, no traceback
    assert cli(["train", "--data", str(tmp_path / "missing.csv"), "--name", "x"]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert cli(["train", "--data", str(gss_path), "--name", "q", "--qlora",
                 "--model", str(tiny_model_dir), "--question", "natspac,natenvir"]) == 2
    assert "CUDA" in capsys.readouterr().err or __import__("torch").cuda.is_available()


def test_cancel_while_scoring_before_training(tiny_model_dir):
    """Cancel clicked while the base model scores the held-out rows (before any step):
    the scoring stops at its next batch, within seconds, nothing is trained or saved, and
    the job's status shows that phase with its own count."""
    from finetune.train import BEFORE, train_adapter
    from sim_core.base.errors import Cancelled

    folder = jobs.jobs_dir() / "cancel-before"
    folder.mkdir()
    jobs.write_json_atomic(folder / jobs.STATUS_FILE, {"id": "cancel-before",
                                                       "status": "running",
                                                       "state": "running", "pid": None})
    reporter = jobs.JobReporter(folder)
    split = Split(train=make_rows(3), val=make_rows(8), test=make_rows(8),
                  info=SplitInfo(how="question"))
    seen, clicked, steps = [], [], []

    def events(event: dict) -> None:
        reporter(event)
        seen.append(event)
        if event.get("phase") == BEFORE and event["done"] > 0 and not clicked:
            jobs.cancel_job("cancel-before")          # what the page's button does
            clicked.append(time.monotonic())
    config = TrainConfig(max_steps=3, batch_size=4, rank=4, alpha=8, save_every=1000,
                         eval_orders=4)
    with pytest.raises(Cancelled, match="cancelled while scoring before training"):
        train_adapter(split, name="never-saved", base=str(tiny_model_dir), config=config,
                      callback=steps.append, on_phase=events,
                      should_stop=reporter.should_stop, job_dir=folder)
    assert time.monotonic() - clicked[0] < 10
    before = [e for e in seen if e.get("phase") == BEFORE]
    total = len(split.val) + len(split.test)
    assert before[-1]["total"] == total and before[-1]["done"] < total   # stopped midway
    assert steps == []                                                   # no training step
    status = json.loads((folder / jobs.STATUS_FILE).read_text())
    assert status["phase"] == BEFORE and status["phase_total"] == total
    assert "never-saved" not in [a.name for a in list_adapters()]


def test_jobs_queue_one_at_a_time(tiny_model_dir):
    """Three jobs started at once: one runs, the others wait (no process yet); the second
    starts only after the first ends; the third, cancelled while waiting, never runs."""
    split = Split(train=make_rows(3), val=make_rows(1), test=[], info=SplitInfo(how="question"))
    ids = [jobs.start_job(split, name=f"queued-{i}", base=str(tiny_model_dir), config=FAST)
           for i in range(3)]
    states = [jobs.job_status(i) for i in ids]
    assert states[0].get("pid") and not states[1].get("pid") and not states[2].get("pid")
    assert [s["status"] for s in states[1:]] == ["queued", "queued"]
    jobs.cancel_job(ids[2])
    assert jobs.job_status(ids[2])["status"] == "cancelled"
    # newest first, and so the queue (oldest first) keeps the order they were started in,
    # though all three ids fall within one second
    assert [s["id"] for s in jobs.list_jobs() if s["id"] in ids] == ids[::-1]
    first, second = wait(ids[0]), wait(ids[1], timeout=180)
    assert first["status"] == second["status"] == "done", \
        (jobs.job_dir(ids[1]) / jobs.LOG_FILE).read_text()[-2000:]
    assert second["started"] >= first["finished"]
    third = jobs.job_status(ids[2])
    assert third["status"] == "cancelled" and not third.get("pid")
    assert "queued-2" not in [a.name for a in list_adapters()]


def test_training_prompts_name_the_surveys_population(tiny_model_dir, tmp_path, capsys):
    """A German survey trains (and is scored) with prompts naming its population, from the
    command line and through a dashboard job alike; the card records it, so simulating that
    survey needs no wording note, while the default US wording gets one."""
    from sim_core.evaluation.compare import compare
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.prompts import PromptStyle
    from sim_core.survey.readers import load_survey

    path = tmp_path / "de.csv"
    path.write_text("geschlecht,q1,q2\n" + "".join(
        f"{g},{'Stimme zu' if i % 3 else 'Lehne ab'},{'Ja' if i % 2 else 'Nein'}\n"
        for i, g in enumerate(["Frau", "Mann"] * 20)), encoding="utf-8")
    germany = "adults in Germany (2018)"
    code = cli(["train", "--data", str(path), "--demographics", "geschlecht", "--population",
                germany, "--name", "de-lora", "--model", str(tiny_model_dir), "--split",
                "random", "--max-steps", "1", "--batch-size", "4", "--json"])
    assert code == 0
    card = json.loads(capsys.readouterr().out)["card"]
    assert card["prompt_style"]["population"] == germany
    survey = load_survey(path, demographics=["geschlecht"], population=germany)
    adapter = load_model(str(tiny_model_dir), "de-lora", dtype="float32")
    config = SimConfig(orders=1, use_cache=False)
    same = compare([adapter], survey.questions["q1"], survey=survey, by=["geschlecht"],
                   config=config, baselines=("uniform",))
    assert not any("other prompt wording" in n for n in same.notes)
    assert germany in same.slices[0].simulated[same.checkpoints[0]["label"]].prompt
    us = load_survey(path, demographics=["geschlecht"])
    other = compare([adapter], us.questions["q1"], survey=us, by=["geschlecht"],
                    config=config, baselines=("uniform",))
    assert any("other prompt wording" in n for n in other.notes)
    # a dashboard job carries the same style through its job file
    split = Split(train=[], val=[], test=[], info=SplitInfo())
    style = PromptStyle().for_survey(survey)
    folder = jobs.jobs_dir() / "style-job"
    folder.mkdir(parents=True)
    jobs.write_json_atomic(folder / jobs.JOB_FILE, {"name": "x", "split": jobs.split_to_json(
        split), "style": dataclasses.asdict(style)})
    assert jobs.read_job_spec(folder)["style"] == style


@pytest.mark.slow
def test_killed_job_resumes_to_a_usable_adapter(tiny_model_dir):
    """A dashboard job killed with SIGKILL mid-training reads as failed; resume_job says what
    it keeps and loses, the job continues from its last sealed checkpoint (no step trained
    twice in its history) and ends with an adapter that loads and simulates."""
    import os
    import signal

    from finetune.checkpoints import newest_whole_checkpoint
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.simulate import simulate
    from sim_core.survey.schema import Question

    split = Split(train=make_rows(3), val=make_rows(1), test=[], info=SplitInfo(how="question"))
    config = TrainConfig(max_steps=30, batch_size=4, rank=4, alpha=8, evaluate_test=False,
                         save_every=3, eval_every=1000)
    job_id = jobs.start_job(split, name="resumed-lora", base=str(tiny_model_dir),
                            config=config)
    folder = jobs.job_dir(job_id)

    def past_a_checkpoint() -> bool:
        last = newest_whole_checkpoint(folder / "checkpoints")     # touches nothing
        status = jobs.read_status(folder)
        return status.get("status") not in jobs.ACTIVE or (
            last is not None and (status.get("step") or 0) > int(last.name.split("-")[1]))
    end = time.time() + 180
    while not past_a_checkpoint():
        assert time.time() < end, (folder / jobs.LOG_FILE).read_text()[-2000:]
        time.sleep(0.01)
    status = jobs.read_status(folder)
    assert status["status"] == "running", (folder / jobs.LOG_FILE).read_text()[-2000:]
    os.kill(status["pid"], signal.SIGKILL)
    while jobs._alive(status["pid"]):
        time.sleep(0.05)
    failed = jobs.job_status(job_id)
    assert failed["status"] == "failed" and "Resume it to continue" in failed["error"]
    step = int(newest_whole_checkpoint(folder / "checkpoints").name.split("-")[1])
    reached = failed["step"]
    assert 0 < step < reached < 30
    note = jobs.resume_job(job_id)
    assert note.startswith(f"Resuming continues from the checkpoint at step {step} of 30: "
                           f"it keeps the {step} steps trained up to it")
    lost = reached - step
    assert f"the {lost} step(s) trained after it are lost and trained again" in note
    with pytest.raises(SimError, match="only a failed job can be resumed"):
        jobs.resume_job(job_id)                             # queued or running now
    done = wait(job_id, timeout=300)
    assert done["status"] == "done", (folder / jobs.LOG_FILE).read_text()[-3000:]
    assert done["resumed_from"] == step and done["resumed"] == 1
    # one event per step: 1..step before the kill, step+1..30 after the resume
    assert [e["step"] for e in done["events"]] == list(range(1, 31))
    lm = load_model(str(tiny_model_dir), "resumed-lora", dtype="float32")
    question = Question("q", "Do you agree?", ("Yes", "No"))
    (result,) = simulate(lm, question, [{"sex": "Female"}], SimConfig(orders=1,
                                                                      use_cache=False))
    assert result.shares.sum() == pytest.approx(1.0) and (result.shares >= 0).all()


def test_resume_refuses_a_done_job_and_a_taken_name(tiny_model_dir):
    folder = jobs.jobs_dir() / "dead-job"
    folder.mkdir()
    split = Split(train=make_rows(1), val=[], test=[], info=SplitInfo())
    jobs.write_json_atomic(folder / jobs.JOB_FILE, {"name": "taken-by-now", "split":
                                                    jobs.split_to_json(split)})
    jobs.write_json_atomic(folder / jobs.STATUS_FILE, {"id": "dead-job", "status": "running",
                                                       "state": "running", "pid": 999999999,
                                                       "step": 7, "total": 10})
    assert jobs.resume_note("dead-job").startswith(
        "No checkpoint was saved before the process ended (at step 7 of 10): resuming trains "
        "from step 0 again.")
    from factories import save_random_adapter
    save_random_adapter(tiny_model_dir, "taken-by-now")     # the name was taken meanwhile
    with pytest.raises(SimError, match="'taken-by-now' already exists"):
        jobs.resume_job("dead-job")
    jobs.update_status(folder, state="done")
    with pytest.raises(SimError, match="is done: only a failed job can be resumed"):
        jobs.resume_job("dead-job")
