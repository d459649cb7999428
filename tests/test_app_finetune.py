"""AppTest of the Fine-tune page: defaults from TrainConfig, a tiny background job to the end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sim_core.survey import workspace_surveys

APP = str(Path(__file__).resolve().parents[1] / "app.py")

CSV = "sex,q1,q2,q3\n" + "".join(
    f"{sex},{'Yes' if i % 3 else 'No'},{'A' if i % 2 else 'B'},{'Up' if i % 4 else 'Down'}\n"
    for sex in ("Female", "Male") for i in range(10))


def test_defaults_train_and_adapter_card(monkeypatch, tiny_model_dir, tmp_path):
    """Widgets start at TrainConfig's defaults; a 2-step job finishes and its adapter is listed."""
    from finetune.config import TrainConfig

    # a workspace of its own, so adapters saved by other tests do not show up in the lists
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))

    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    workspace_surveys.save_survey("tiny-train", "train.csv", CSV.encode(),
                      {"demographics": ["sex"], "questions": ["q1", "q2", "q3"]},
                      overwrite=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/fine_tune.py").run()
    at.selectbox(key="ft_survey").set_value("tiny-train").run()
    defaults = TrainConfig()
    assert at.number_input(key="ft_cfg_rank").value == defaults.rank
    assert at.number_input(key="ft_cfg_lr").value == pytest.approx(defaults.lr)
    # the name follows the survey; no step time measured yet, so steps only
    assert at.text_input(key="ft_name").value == "tiny-train-lora"
    workspace_surveys.save_survey("tiny-other", "other.csv", CSV.encode(),
                      {"demographics": ["sex"], "questions": ["q1", "q2", "q3"]},
                      overwrite=True)
    at.run()
    at.selectbox(key="ft_survey").set_value("tiny-other").run()
    assert at.text_input(key="ft_name").value == "tiny-other-lora"
    at.selectbox(key="ft_survey").set_value("tiny-train").run()
    assert at.text_input(key="ft_name").value == "tiny-train-lora"
    assert any("no measured step time" in c.value for c in at.caption)
    at.number_input(key="ft_cfg_max_steps").set_value(2)
    at.text_input(key="ft_name").input("tiny-ft")
    at.run()
    at.button(key="ft_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    deadline = time.time() + 300          # the shared CI machine can be slow
    while time.time() < deadline:
        at.run()
        # the adapter is saved a moment before the job's status says done: wait for both
        if any(s.key == "ft_adapter" and "tiny-ft" in s.options for s in at.selectbox) \
                and any("'tiny-ft': done" in h.value for h in at.subheader):
            break
        time.sleep(1)
    assert "tiny-ft" in at.selectbox(key="ft_adapter").options
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("'tiny-ft': done" in h.value for h in at.subheader)
    # the table shows the job's own before/after held-out scores, raw and calibrated
    from finetune import jobs
    from sim_core.base.metrics import METRICS

    result = jobs.list_jobs()[0]["result"]
    table = _table_with(at, "before (raw)").set_index("score")
    for key, value in result["after"].items():
        assert table.loc[METRICS[key].name, "after (raw)"] == pytest.approx(value)
        assert table.loc[METRICS[key].name, "before (raw)"] == pytest.approx(
            result["before"][key])
        assert table.loc[METRICS[key].name, "after (calibrated)"] == pytest.approx(
            result["after_calibrated"][key])
    # and the adapter's verdict, the same sentence the job reported
    assert result["verdict"] in [i.value for i in at.info]
    assert "this adapter, calibrated, is" in result["verdict"]
    assert "step 2/2" in at.get("progress")[0].proto.text
    # the next job's duration is estimated from this one's measured step time
    assert any("2 steps" in c.value and "measured when 'tiny-ft' was trained" in c.value
               for c in at.caption), [c.value for c in at.caption]
    # rename, then delete, through the page
    at.selectbox(key="ft_adapter").set_value("tiny-ft")
    at.text_input(key="ft_new_name").input("tiny-ft-2").run()
    at.button(key="ft_rename").click().run()
    assert at.selectbox(key="ft_adapter").options == ["tiny-ft-2"]
    from sim_core.simulation.adapters import list_adapters

    assert [a.name for a in list_adapters()] == ["tiny-ft-2"]
    at.button(key="ft_delete").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "No adapter yet." in [c.value for c in at.caption]


def _table_with(at, column: str):
    """The first st.dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_running_and_queued_jobs_all_listed(monkeypatch, tmp_path):
    """One job scoring before training (its own bar with rows and time left), one waiting
    in the queue: both drawn, the waiting one can be removed at once, all in the table."""
    import os

    from finetune import jobs

    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    states = {"20260101-000000-aaaaaa": {"name": "first", "status": "running",
                                         "state": "running", "pid": os.getpid(),
                                         "phase": "scoring before training",
                                         "phase_done": 40, "phase_total": 120,
                                         "phase_eta_s": 30.0, "events": []},
              "20260101-000001-bbbbbb": {"name": "second", "status": "queued",
                                         "state": "queued", "events": []}}
    for job_id, state in states.items():
        folder = jobs.jobs_dir() / job_id
        folder.mkdir(parents=True)
        jobs.write_json_atomic(folder / jobs.STATUS_FILE, {"id": job_id, **state})
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/fine_tune.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    headers = [h.value for h in at.subheader]
    assert "Job 'first': running" in headers
    assert "Job 'second': waiting (number 1 in the queue)" in headers
    bars = [p.proto.text for p in at.get("progress")]
    assert "Scoring before training: 40 of 120 rows, about 30 s left" in bars
    table = next(d.value for d in at.dataframe if "adapter" in d.value.columns)
    assert list(table["adapter"]) == ["second", "first"]            # newest first
    at.button(key="ft_cancel_20260101-000001-bbbbbb").click().run()
    assert jobs.job_status("20260101-000001-bbbbbb")["status"] == "cancelled"
    assert jobs.job_status("20260101-000000-aaaaaa")["status"] == "running"


def _write_job(job_id: str, state: dict) -> None:
    """A job folder holding only its status (what the page reads)."""
    from finetune import jobs

    folder = jobs.jobs_dir() / job_id
    folder.mkdir(parents=True)
    jobs.write_json_atomic(folder / jobs.STATUS_FILE, {"id": job_id, **state})


@pytest.mark.parametrize("status, pid", [("done", None), ("running", "self"),
                                         ("cancelled", None), ("running", "dead")])
def test_only_a_job_whose_process_died_can_be_resumed(monkeypatch, tmp_path, status, pid):
    """Done, running and cancelled jobs have no Resume button; a job whose process is gone
    reads as failed and shows what resuming keeps and loses beside the button. Its job file
    is missing here: resuming it is one message, not a traceback."""
    import os

    from finetune import jobs

    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    job_id = "20260101-000000-aaaaaa"
    _write_job(job_id, {"name": "job", "status": status, "state": status, "step": 7,
                        "total": 30, "events": [], "error": "Cancelled." if status ==
                        "cancelled" else None,
                        "pid": {"self": os.getpid(), "dead": 999999999}.get(pid)})
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/fine_tune.py").run()
    assert not at.exception
    resume = [b for b in at.button if b.key == f"ft_resume_{job_id}"]
    if pid != "dead":
        assert not resume and not at.error
        assert any(h.value == f"Job 'job': {status}" for h in at.subheader)
        return
    assert any(h.value == "Job 'job': failed" for h in at.subheader)
    assert any("ended unexpectedly" in e.value and "Resume it" in e.value for e in at.error)
    assert ("No checkpoint was saved before the process ended (at step 7 of 30): resuming "
            "trains from step 0 again. The same rows, settings and adapter name are used."
            ) in [c.value for c in at.caption]
    resume[0].click().run()
    assert not at.exception
    assert any("cannot be read" in e.value for e in at.error)
    assert jobs.job_status(job_id)["status"] == "failed"


@pytest.mark.slow
def test_killed_job_resumed_from_the_page(monkeypatch, tmp_path, tiny_model_dir):
    """A training job killed with SIGKILL mid-training: the page says what resuming keeps
    and loses; its Resume button continues from the last sealed checkpoint to an adapter
    that loads and simulates."""
    import os
    import signal

    from test_finetune_rows import make_rows

    from finetune import jobs
    from finetune.checkpoints import newest_whole_checkpoint
    from finetune.config import TrainConfig
    from sim_core.evaluation.splits import Split, SplitInfo
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.simulate import simulate
    from sim_core.survey.schema import Question

    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("SIM_DEFAULT_MODEL", str(tiny_model_dir))
    split = Split(train=make_rows(3), val=make_rows(1), test=[], info=SplitInfo(how="question"))
    config = TrainConfig(max_steps=30, batch_size=4, rank=4, alpha=8, evaluate_test=False,
                         save_every=3, eval_every=1000)
    job_id = jobs.start_job(split, name="page-resumed", base=str(tiny_model_dir), config=config)
    folder = jobs.job_dir(job_id)

    def checkpoint_step() -> int | None:
        last = newest_whole_checkpoint(folder / "checkpoints")
        return None if last is None else int(last.name.split("-")[1])

    deadline = time.time() + 180
    while True:           # past a sealed checkpoint, before the end
        status = jobs.read_status(folder)
        step = checkpoint_step()
        if status.get("status") not in jobs.ACTIVE or (step and (status.get("step") or 0) > step):
            break
        assert time.time() < deadline, (folder / jobs.LOG_FILE).read_text()[-2000:]
        time.sleep(0.01)
    assert status["status"] == "running", (folder / jobs.LOG_FILE).read_text()[-2000:]
    os.kill(status["pid"], signal.SIGKILL)
    while jobs.job_status(job_id)["status"] != "failed":       # read once the process is gone
        assert time.time() < deadline
        time.sleep(0.05)
    step, reached = checkpoint_step(), jobs.read_status(folder)["step"]
    assert 0 < step < reached < 30
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/fine_tune.py").run()
    assert not at.exception
    assert any(h.value == "Job 'page-resumed': failed" for h in at.subheader)
    note = next(c.value for c in at.caption if c.value.startswith("Resuming continues"))
    assert note.startswith(f"Resuming continues from the checkpoint at step {step} of 30: it "
                           f"keeps the {step} steps trained up to it")
    assert f"the {reached - step} step(s) trained after it are lost and trained again" in note
    at.button(key=f"ft_resume_{job_id}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [b for b in at.button if b.key == f"ft_resume_{job_id}"]    # queued or running
    deadline = time.time() + 300
    while time.time() < deadline:
        at.run()
        if any(s.key == "ft_adapter" and "page-resumed" in s.options for s in at.selectbox) \
                and any(h.value == "Job 'page-resumed': done" for h in at.subheader):
            break
        time.sleep(1)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(h.value == "Job 'page-resumed': done" for h in at.subheader)
    assert not [b for b in at.button if b.key == f"ft_resume_{job_id}"]
    done = jobs.job_status(job_id)
    assert done["resumed_from"] == step and done["resumed"] == 1
    assert [e["step"] for e in done["events"]] == list(range(1, 31))
    lm = load_model(str(tiny_model_dir), "page-resumed", dtype="float32")
    (result,) = simulate(lm, Question("q", "Do you agree?", ("Yes", "No")),
                         [{"sex": "Female"}], SimConfig(orders=1, use_cache=False))
    assert result.shares.sum() == pytest.approx(1.0) and (result.shares >= 0).all()
