"""Every CLI input checked at the edge: bounds with a message before any model loads, names
stored as typed, nothing replaced without --overwrite, outputs written whole, special files
refused, question ids holding a comma selectable."""

from __future__ import annotations

import errno
import json
import os
import signal
import zipfile
from contextlib import contextmanager

import pytest
from factories import save_random_adapter

from finetune.cli import opinion_sim
from sim_core.base import writing
from sim_core.simulation import models
from sim_core.simulation.adapters import list_adapters
from sim_core.survey import workspace_surveys

CSV = "sex,q1,q2\nF,Yes,A\nM,No,B\nF,No,A\nM,Yes,B\n"


@pytest.fixture
def survey_file(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text(CSV)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if any model loads: every check must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr("sim_core.commands.common.load_model", refuse)
    monkeypatch.setattr("finetune.base.load_base", refuse)


@contextmanager
def deadline(seconds: int):
    """A command that would hang (a FIFO) fails the test instead of blocking it."""
    def expire(*_):
        raise TimeoutError(f"no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def usage_error(argv, capsys) -> str:
    """argparse refusal: exit status 2 and its message."""
    with pytest.raises(SystemExit) as stop:
        opinion_sim(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def error(argv, capsys) -> str:
    """A SimError: exit status 2 and one 'error:' line, no traceback."""
    assert opinion_sim(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert errors and errors[0].startswith("error: ") and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- bounds

@pytest.mark.parametrize("argv,expected", [
    (["baselines", "--test-fraction", "1.5"],
     "--test-fraction = 1.5 is out of range: it must be above 0 and at most 0.9"),
    (["baselines", "--test-fraction", "nan"], "out of range"),
    (["baselines", "--seed", "-1"], "--seed = -1 is out of range"),
    (["baselines", "--seed", "1.5"], "'1.5' is not a whole number"),
    (["marginals", "--min-n-eff", "-3"], "--min-n-eff = -3.0 is out of range"),
    (["marginals", "--min-n-eff", "inf"], "out of range"),
])
def test_bounds_refused_by_the_parser(argv, expected, survey_file, capsys, no_model):
    err = usage_error(argv + ["--data", str(survey_file), "--question", "q1"], capsys)
    assert expected in err


def test_bounds_in_the_help(capsys):
    with pytest.raises(SystemExit):
        opinion_sim(["baselines", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default 0.3; above 0 and at most 0.9" in text
    assert "default 0; 0 to 4.29497e+09" in text


@pytest.mark.parametrize("argv,expected", [
    (["simulate", "--question", "Q?", "--options", "|".join(f"o{i}" for i in range(27))],
     "2 to 26 options"),
    (["simulate", "--question", "Q?", "--options", "a|b", "--temperature", "-1",
      "--mode", "sample"], "temperature = -1.0 is out of range"),
    (["simulate", "--question", "Q?", "--options", "a|b", "--batch-size", "0"],
     "batch_size = 0 is out of range"),
    (["simulate", "--question", "Q?", "--options", "a|b", "--samples", "100000"],
     "samples = 100000 is out of range"),
])
def test_simulation_arguments_refused_before_the_model(argv, expected, capsys, no_model):
    assert expected in error(argv, capsys)


def test_unknown_baseline_refused_before_the_model(survey_file, capsys, no_model):
    err = usage_error(["compare", "--data", str(survey_file), "--question", "q1",
                       "--baselines", "uniform,oracle"], capsys)
    assert "oracle" in err and "uniform" in err


def test_training_arguments_refused_before_the_model(survey_file, capsys, no_model, tmp_path):
    base = ["train", "--data", str(survey_file), "--by", "sex"]
    err = usage_error(base + ["--name", "x" * 5000], capsys)
    assert "(it has 5000 characters)" in err and "x" * 100 not in err   # not echoed back
    assert "for example 'my-lora'" in usage_error(base + ["--name", "my lora"], capsys)
    assert "epochs = 0.0 is out of range" in error(
        base + ["--name", "untrained", "--epochs", "0", "--max-steps", "0"], capsys)
    assert "max_steps = 0 is out of range" in error(
        base + ["--name", "untrained", "--max-steps", "0"], capsys)
    assert "test_fraction = 1.5 is out of range" in error(
        base + ["--name", "untrained", "--test-fraction", "1.5"], capsys)
    assert "lr = nan is out of range" in error(base + ["--name", "u", "--lr", "nan"], capsys)
    assert "seed = 4294967296 is out of range" in error(
        base + ["--name", "u", "--seed", str(2**32)], capsys)
    (tmp_path / "job-file").write_text("x")
    assert "is a file, not a folder" in error(
        base + ["--name", "u", "--job-dir", str(tmp_path / "job-file")], capsys)
    assert "untrained" not in {a.name for a in list_adapters()}


def test_existing_adapter_needs_overwrite_before_any_work(tiny_model_dir, survey_file,
                                                          capsys, monkeypatch):
    save_random_adapter(tiny_model_dir, "taken-name")
    capsys.readouterr()
    monkeypatch.setattr("sim_core.commands.common.load_survey",
                        lambda *a, **k: pytest.fail("the data was read first"))
    err = error(["train", "--data", str(survey_file), "--name", "taken-name"], capsys)
    assert "already exists" in err and "--overwrite" in err


# ---------------------------------------------------------------- special files

@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_files_refused_everywhere(kind, tmp_path, capsys, no_model):
    if kind == "fifo":
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)
    else:
        path = "/dev/zero" if kind == "device" else tmp_path
    with deadline(60):
        for argv in (["marginals", "--data", str(path), "--question", "q1"],
                     ["train", "--data", str(path), "--name", "from-pipe"],
                     ["surveys", "save", "--data", str(path), "--name", "from-pipe"],
                     ["marginals", "--data", str(path), "--question", "q1", "--codebook",
                      str(path)]):
            err = error(argv, capsys)
            assert ("not a regular file" in err or "is a folder" in err
                    or "no such codebook" in err), err
    assert "from-pipe" not in workspace_surveys.saved_surveys()


# ---------------------------------------------------------------- question ids

def test_question_id_with_a_comma(tmp_path, capsys):
    path = tmp_path / "commas.csv"
    path.write_text('sex,"q1,a",q1,a\nF,Yes,x,u\nM,No,y,v\nF,No,x,u\n')
    for value in ('"q1,a"',):         # quoted: the one question
        assert opinion_sim(["marginals", "--data", str(path), "--question", value,
                            "--by", "sex", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["marginals"]
        assert {r["question"] for r in rows} == {"q1,a"}
    # unquoted it could be the one id or the two ids q1 and a: refused, never guessed
    assert "is a question id and also a list" in error(
        ["marginals", "--data", str(path), "--question", "q1,a"], capsys)
    assert opinion_sim(["marginals", "--data", str(path), "--question", "q1",
                        "--question", '"q1,a",a', "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["marginals"]
    assert [r["question"] for r in rows] == ["q1", "q1,a", "a"]
    other = tmp_path / "one.csv"
    other.write_text('sex,"x,y"\nF,Yes\nM,No\n')
    assert opinion_sim(["marginals", "--data", str(other), "--question", "x,y", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["marginals"]
    assert {r["question"] for r in rows} == {"x,y"}


# ---------------------------------------------------------------- saved surveys

def test_surveys_save_refuses_rewritten_or_taken_names(survey_file, capsys):
    assert "for example 'My-survey'" in usage_error(
        ["surveys", "save", "--data", str(survey_file), "--name", "My survey"], capsys)
    assert opinion_sim(["surveys", "save", "--data", str(survey_file), "--name",
                        "cli-kept"]) == 0
    capsys.readouterr()
    changed = survey_file.with_name("changed.csv")
    changed.write_text(CSV.replace("Yes", "Maybe"))
    assert "exists already" in error(["surveys", "save", "--data", str(changed), "--name",
                                      "cli-kept"], capsys)
    assert "Maybe" not in workspace_surveys.load_saved("cli-kept").questions["q1"].options
    assert opinion_sim(["surveys", "save", "--data", str(changed), "--name", "cli-kept",
                        "--overwrite"]) == 0
    assert "Maybe" in workspace_surveys.load_saved("cli-kept").questions["q1"].options
    assert "no saved survey named 'cli kept'" in error(["surveys", "delete", "cli kept"],
                                                       capsys)


# ---------------------------------------------------------------- adapter export

def test_adapter_export_is_whole_and_never_replaces_unasked(tiny_model_dir, tmp_path,
                                                            capsys, monkeypatch):
    save_random_adapter(tiny_model_dir, "export-me")
    capsys.readouterr()
    out = tmp_path / "missing" / "folder" / "a.zip"
    assert opinion_sim(["adapters", "export", "export-me", "--out", str(out)]) == 0
    assert "export-me/adapter_config.json" in zipfile.ZipFile(out).namelist()
    capsys.readouterr()
    assert "exists already" in error(["adapters", "export", "export-me", "--out", str(out)],
                                     capsys)
    assert "it is a folder" in usage_error(["adapters", "export", "export-me", "--out",
                                            str(tmp_path)], capsys)
    assert "not in the registry" in error(["adapters", "export", "export me", "--out",
                                           str(tmp_path / "b.zip")], capsys)
    before = out.read_bytes()

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(writing.os, "fsync", fsync)
    assert "the disk is full" in error(["adapters", "export", "export-me", "--out", str(out),
                                        "--overwrite"], capsys)
    assert out.read_bytes() == before and sorted(p.name for p in out.parent.iterdir()) == [
        "a.zip"]
