"""Writing without losing data: every file and folder the tool writes goes through here.

- `atomic_file` / `atomic_write`: a file is written under a temporary name beside its target,
  flushed to disk and renamed over it in one step; on any failure (disk full, Ctrl-C, an
  exception) the temporary file is removed and the target is untouched.
- `staged_folder`: the same for a folder (a saved survey, an adapter): filled under a hidden
  temporary name, renamed into place only when complete.
- `check_output`: an output path the user named is checked before any work (not a folder,
  no file where its folder should be, not replaced unasked); missing folders are made when
  the file is written.
- `failure_message`: OS errors (disk full, read-only, no permission, a file where a folder
  should be) as one sentence a user can act on.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sim_core.base.errors import SimError

_UMASK = os.umask(0)
os.umask(_UMASK)          # read once: new files get the permissions plain open() would give

_REASONS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it exists already",
    errno.EIO: "input/output error (a failing disk or a lost network drive?)",
    errno.ENAMETOOLONG: "the name is too long",
}
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                   errno.EIO)
# Libraries that wrap an OS failure in their own exception say so in the text
# (safetensors: "IoError(Os { code: 28, kind: StorageFull ...", torch: "file write failed").
_STORAGE_TEXT = ("No space left", "StorageFull", "Read-only file system", "file write failed",
                 "Disk quota exceeded", "Permission denied", "disk I/O error",
                 "database or disk is full")


def reason(error: BaseException) -> str:
    """Why an OS-level operation failed, in plain words (the library's text otherwise)."""
    if isinstance(error, OSError) and error.errno in _REASONS:
        return _REASONS[error.errno]
    text = str(error)
    for needle, code in (("No space left", errno.ENOSPC), ("StorageFull", errno.ENOSPC),
                         ("database or disk is full", errno.ENOSPC),
                         ("Read-only file system", errno.EROFS),
                         ("Disk quota exceeded", errno.EDQUOT)):
        if needle in text:
            return _REASONS[code]
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return text or type(error).__name__


def is_storage_failure(error: BaseException) -> bool:
    """Whether an exception means the disk could not be written (full, read-only, denied)."""
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
        return True
    return any(needle in str(error) for needle in _STORAGE_TEXT)


def failure_message(error: BaseException, path: str | Path, action: str = "write") -> str:
    """'Cannot write PATH: the disk is full (...)' for any OS-level failure."""
    return f"Cannot {action} {path}: {reason(error)}."


@contextmanager
def atomic_file(path: str | Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Write a file whole or not at all: yields a binary handle on a temporary file beside
    `path`, which replaces `path` only when the block ends without an exception.

    Args:
        path: the file to write.
        overwrite: False refuses an existing `path` (SimError) instead of replacing it.
    Raises:
        SimError: the path is a folder, exists (overwrite=False), or the write failed (disk
            full, read-only ...); the temporary file is removed in every case.
    """
    path = Path(path)
    check_output(path, overwrite=overwrite)
    make_folder(path.parent)
    temp: str | None = None
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp",
                                        dir=path.parent)
        os.fchmod(handle, 0o666 & ~_UMASK)
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())     # the bytes are on disk before the name points at them
        os.replace(temp, path)
        temp = None
    except OSError as error:
        raise SimError(failure_message(error, path)) from error
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically (see atomic_file); returns the path."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_file(path, overwrite=overwrite) as stream:
        stream.write(payload)
    return Path(path)


def check_output(path: str | Path, *, overwrite: bool = True) -> Path:
    """Refuse an output path that cannot be written whole: a folder, a file where one of its
    folders should be, an existing file without `overwrite`. Returns the path (missing
    folders are fine: atomic_file makes them).

    Raises:
        SimError: naming the path and what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise SimError(f"Cannot write {path}: it is a folder; give a file name.")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SimError(f"Cannot write {path}: {ancestor} is a file, not a folder.")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise SimError(f"{path} exists already; choose another name or allow replacing it "
                       "(--overwrite).")
    return path


@contextmanager
def staged_folder(target: Path, *, overwrite: bool = False,
                  what: str = "folder") -> Iterator[Path]:
    """Fill a folder under a hidden temporary name; it takes `target`'s place only when the
    block ends without an exception (an existing target is replaced only with overwrite).

    Args:
        target: the final folder.
        overwrite: replace an existing target.
        what: how the folder is named in messages ("saved survey 'x'").
    Yields:
        The temporary folder to fill.
    Raises:
        SimError: target exists (without overwrite) or the disk refused the write.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise SimError(f"A {what} exists already; choose another name or allow replacing it.")
    try:
        temp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    except OSError as error:
        raise SimError(failure_message(error, target.parent)) from error
    try:
        yield temp
        _swap_in(temp, target, overwrite, what)
    except OSError as error:
        raise SimError(failure_message(error, target)) from error
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _swap_in(temp: Path, target: Path, overwrite: bool, what: str) -> None:
    """Rename temp to target; an old target is moved aside first and removed afterwards."""
    if not target.exists():
        temp.rename(target)
        return
    if not overwrite:          # someone else saved the same name meanwhile
        raise SimError(f"A {what} exists already; choose another name or allow replacing it.")
    trash = Path(tempfile.mkdtemp(prefix=f".trash-{target.name}-", dir=target.parent))
    target.rename(trash / target.name)
    try:
        temp.rename(target)
    except OSError:
        (trash / target.name).rename(target)      # put the old one back: nothing lost
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def remove_folder(path: Path) -> None:
    """Remove a folder so that it vanishes in one step (renamed aside, then deleted)."""
    try:
        trash = Path(tempfile.mkdtemp(prefix=f".trash-{path.name}-", dir=path.parent))
        path.rename(trash / path.name)
    except OSError as error:
        raise SimError(failure_message(error, path, "remove")) from error
    shutil.rmtree(trash, ignore_errors=True)


def make_folder(path: Path) -> Path:
    """mkdir -p with one clear message when it cannot be made (a file in the way, read-only)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SimError(f"Cannot use {path} as a folder: a file of that name is in the way."
                       ) from None
    except OSError as error:
        raise SimError(failure_message(error, path, "create the folder")) from error
    return path
