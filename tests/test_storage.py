"""Storage that never loses data: atomic files and folders, names stored as typed, saved
surveys that are never overwritten unasked, and faults (disk full, read-only, a workspace
that is a file) as one clear message."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from sim_core.base import writing
from sim_core.base.errors import DataError, SimError
from sim_core.base.workspace import check_name, is_valid_name, workspace_dir
from sim_core.base.writing import atomic_file, atomic_write, staged_folder
from sim_core.survey import workspace_surveys

CSV = b"sex,q1\nF,Yes\nM,No\nF,No\n"
RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _full_disk(monkeypatch, after_bytes: int = 0) -> None:
    """os.fsync, the last call of every atomic write, fails as on a full disk."""
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(writing.os, "fsync", fsync)


# ---------------------------------------------------------------- atomic files

def test_atomic_write_replaces_whole_and_keeps_permissions(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second" and _files(tmp_path) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(SimError, match="exists already.*--overwrite"):
        atomic_write(target, "third", overwrite=False)
    assert target.read_bytes() == b"second"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.pdf"
    target.write_bytes(b"old report")
    _full_disk(monkeypatch)
    with pytest.raises(SimError, match=r"Cannot write .*report.pdf: the disk is full"):
        atomic_write(target, b"new report")
    assert target.read_bytes() == b"old report" and _files(tmp_path) == ["report.pdf"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_interrupted_write_leaves_nothing(tmp_path, interrupt):
    """Ctrl-C (or any error) in the middle of a write: no file, no temporary file."""
    with pytest.raises(interrupt), atomic_file(tmp_path / "export.zip") as stream:
        stream.write(b"half of a zip")
        raise interrupt()
    assert _files(tmp_path) == []


def test_output_paths_checked_before_work(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SimError, match="it is a folder"):
        writing.check_output(tmp_path)
    with pytest.raises(SimError, match="is a file, not a folder"):
        writing.check_output(tmp_path / "a-file" / "deeper" / "r.pdf")
    # a missing folder is made when the file is written
    written = atomic_write(tmp_path / "new" / "deeper" / "r.csv", "a,b\n")
    assert written.read_text() == "a,b\n"


# ---------------------------------------------------------------- staged folders

def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "survey"
    with pytest.raises(RuntimeError), staged_folder(target) as temp:
        (temp / "data.csv").write_text("half")
        raise RuntimeError("killed")
    assert _files(tmp_path) == []
    with staged_folder(target) as temp:
        (temp / "data.csv").write_text("v1")
    with pytest.raises(SimError, match="exists already"), staged_folder(target) as temp:
        pass
    with staged_folder(target, overwrite=True) as temp:
        (temp / "data.csv").write_text("v2")
    assert (target / "data.csv").read_text() == "v2" and _files(tmp_path) == ["survey"]


def test_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "weights").write_text("old")
    real_rename = Path.rename

    def rename(self, to):
        if self.name.startswith(".tmp-"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_rename(self, to)
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(SimError, match="read-only"), staged_folder(target,
                                                                   overwrite=True) as temp:
        (temp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old" and _files(tmp_path) == ["adapter"]


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name,ok", [
    ("trust-2024", True), ("gss_lora.v2", True), ("My survey", False), ("My/survey", False),
    ("../etc", False), (".hidden", False), ("a" * 64, True), ("a" * 65, False), ("", False),
    ("naïve", False), ("x..y", False), ("ends-", False)])
def test_names_are_stored_as_typed_or_refused(name, ok):
    assert is_valid_name(name) is ok
    if ok:
        assert check_name(name) == name
    else:
        with pytest.raises(SimError, match="not usable as the survey name"):
            check_name(name, "survey name")


def test_refusal_suggests_a_name_and_shortens_a_long_one():
    with pytest.raises(SimError, match="for example 'My-survey'"):
        check_name("My survey", "survey name")
    with pytest.raises(SimError) as error:
        check_name("x" * 5000, "adapter name")
    assert "(it has 5000 characters)" in str(error.value) and len(str(error.value)) < 400


# ---------------------------------------------------------------- saved surveys

def test_two_names_that_sanitise_alike_never_share_a_folder():
    """'My survey' and 'My/survey' both sanitised to 'My-survey': the first was replaced."""
    for typed in ("My survey", "My/survey"):
        with pytest.raises(SimError, match="for example 'My-survey'"):
            workspace_surveys.save_survey(typed, "a.csv", CSV)
    assert "My-survey" not in workspace_surveys.saved_surveys()


def test_saving_into_an_existing_name_needs_overwrite():
    workspace_surveys.save_survey("keep-me", "first.csv", CSV)
    other = b"sex,q1\nF,Maybe\nM,Maybe\n"
    with pytest.raises(SimError, match="exists already"):
        workspace_surveys.save_survey("keep-me", "second.csv", other)
    assert list(workspace_surveys.load_saved("keep-me").questions["q1"].options) == ["No", "Yes"]
    workspace_surveys.save_survey("keep-me", "second.csv", other, overwrite=True)
    assert list(workspace_surveys.load_saved("keep-me").questions["q1"].options) == ["Maybe"]
    hidden = [p.name for p in workspace_surveys.surveys_dir().iterdir() if p.name.startswith(".")]
    assert hidden == []


@pytest.mark.parametrize("upload", ["mapping.json", "codebook.csv", "codebook-book.csv"])
def test_an_upload_never_clobbers_the_apps_files(upload):
    """The uploaded file lives in data/, the codebook in codebook/, mapping.json alone."""
    book = b"column,question_text,options\nq1,Do you agree?,Yes|No\n"
    data = CSV if upload.endswith(".csv") else (
        b'{"qkey": "q1", "attribute": "SEX", "group": "F", "question": "Agree?", '
        b'"options": ["Yes", "No"], "ordinal": [1, 2], "responses": [0.6, 0.4], '
        b'"refusal_rate": 0}\n')
    name = "clash-" + upload.replace(".", "-")
    # a codebook cannot apply to marginals (JSONL), so that upload comes without one
    codebook = None if upload == "mapping.json" else (
        "book.csv" if upload != "codebook.csv" else "codebook.csv", book)
    workspace_surveys.save_survey(name, upload, data, codebook=codebook)
    folder = workspace_surveys.surveys_dir() / name
    info = json.loads((folder / workspace_surveys.MAPPING_FILE).read_text())
    assert info["name"] == name and (folder / info["file"]).read_bytes() == data
    if codebook is not None:
        assert (folder / info["codebook"]).read_bytes() == book
    assert workspace_surveys.load_saved(name).questions["q1"].options == ("Yes", "No")


def test_lookups_take_the_exact_name_and_stay_inside():
    workspace_surveys.save_survey("exact-name", "a.csv", CSV)
    for wrong in ("exact name", "Exact-Name", "../surveys/exact-name", "exact-name/"):
        with pytest.raises(DataError, match="no saved survey"):
            workspace_surveys.load_saved(wrong)
        with pytest.raises(DataError):
            workspace_surveys.delete_saved(wrong)
    assert "exact-name" in workspace_surveys.saved_surveys()
    # a hand-edited record cannot point outside the survey's folder
    record = workspace_surveys.surveys_dir() / "exact-name" / workspace_surveys.MAPPING_FILE
    record.write_text(json.dumps({**json.loads(record.read_text()), "file": "../../x.csv"}))
    with pytest.raises(DataError, match="outside its folder"):
        workspace_surveys.load_saved("exact-name")
    workspace_surveys.delete_saved("exact-name")
    assert "exact-name" not in workspace_surveys.saved_surveys()


def test_disk_full_while_saving_leaves_no_half_survey(monkeypatch):
    _full_disk(monkeypatch)
    with pytest.raises(SimError, match="the disk is full"):
        workspace_surveys.save_survey("never-half", "a.csv", CSV)
    assert not any(p.name.startswith((".tmp-never-half", "never-half"))
                   for p in workspace_surveys.surveys_dir().iterdir())


# ---------------------------------------------------------------- the workspace

def test_workspace_that_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "ws").write_text("not a folder")
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    with pytest.raises(SimError, match="SIM_WORKSPACE.*a file of that name is in the way"):
        workspace_dir()


def test_read_only_workspace_is_one_message(tmp_path, monkeypatch):
    """As root, chmod does not stop writes; the errno a read-only disk gives is injected."""
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == tmp_path / "ws":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(SimError, match="unusable.*the file system is read-only"):
        workspace_dir()


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root writes into read-only folders")
def test_read_only_folder_for_real(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SimError, match="permission denied"):
            atomic_write(folder / "x.txt", "data")
    finally:
        folder.chmod(0o700)
    assert _files(folder) == []
