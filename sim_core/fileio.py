"""File input shared by the survey readers: size check before reading, encoding
(UTF-8, UTF-8-BOM, Latin-1/Windows-1252) and delimiter (comma, semicolon, tab) detection,
strict CSV parsing into text cells, fingerprints. Errors are DataError with file/row/column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from sim_core.errors import DataError

MAX_FILE_BYTES = 200 * 1024 * 1024      # same as .streamlit/config.toml maxUploadSize
SHARE_TOLERANCE = 0.01                  # shares summing to 1 +- this are fine as they are
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "."})   # always "no answer"


# ---------------------------------------------------------------- bytes and text

def load_bytes(data, what: str = "file") -> tuple[bytes, str]:
    """Raw bytes and a display name; the size is checked before anything is read."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw, label = bytes(data), f"uploaded {what}"
        size = len(raw)
    else:
        path = Path(data)
        label = path.name
        try:
            size = os.stat(path).st_size
        except OSError as error:
            raise DataError(f"cannot open the {what}: {error.strerror or error}",
                            file=str(path)) from None
        if size > MAX_FILE_BYTES:
            raise DataError(_too_big(size), file=label)
        raw = path.read_bytes()
    if size > MAX_FILE_BYTES:
        raise DataError(_too_big(size), file=label)
    if not raw.strip():
        raise DataError("the file is empty.", file=label)
    return raw, label


def _too_big(size: int) -> str:
    return (f"the file is {size / 2**20:.0f} MiB, over the limit of "
            f"{MAX_FILE_BYTES / 2**20:.0f} MiB; split it or keep only the needed columns.")


def decode(raw: bytes, file: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1252/Latin-1; otherwise a DataError."""
    if b"\x00" in raw[:65536]:
        raise DataError("the file contains NUL bytes (binary, Excel or UTF-16?); save it as "
                        "a CSV in UTF-8.", file=file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # cp1252 is a superset of Latin-1's printable characters and rejects 5 unused bytes,
    # so binary junk still fails instead of turning into mojibake silently.
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as error:
        row = raw[:error.start].count(b"\n") + 1
        raise DataError(f"byte 0x{raw[error.start]:02x} is not valid UTF-8 or Latin-1; "
                        "save the file as UTF-8.", file=file, row=row) from None


def _sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab, by csv.Sniffer on the first lines (comma if unsure)."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        header = sample.split("\n", 1)[0]
        counts = {d: header.count(d) for d in ",;\t"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def read_table(data, what: str = "file") -> tuple[pd.DataFrame, str, bytes]:
    """Read a CSV of any supported encoding/delimiter as stripped strings.

    Returns:
        (table of str, display file name, raw bytes). Blank/"NA" cells stay as text here.
    """
    raw, file = load_bytes(data, what)
    text = decode(raw, file)
    sep = _sniff_delimiter(text)
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True, skip_blank_lines=True)
    except pd.errors.ParserError as error:
        match = re.search(r"line (\d+)", str(error))
        row = int(match.group(1)) if match else None
        raise DataError(f"the table is malformed ({error}).".replace("\n", " "), file=file,
                        row=row) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty.", file=file) from None
    table.columns = [str(c).strip() for c in table.columns]
    _check_header(table, file)
    if table.empty:
        raise DataError("the file has a header but no data rows.", file=file)
    table = table.apply(lambda col: col.str.strip())
    return table, file, raw


def _check_header(table: pd.DataFrame, file: str) -> None:
    """Blank or repeated column names are refused."""
    seen: set[str] = set()
    for name in table.columns:
        if not name or name.startswith("Unnamed:"):
            raise DataError("a column has no name in the header.", file=file, row=1)
        base = re.sub(r"\.\d+$", "", name)     # pandas renames duplicates to "x.1"
        if base in seen or name in seen:
            raise DataError("the column name appears twice in the header.", file=file,
                            row=1, column=base)
        seen.add(name)


def write_json_atomic(path: Path, data: Any, **dump_args: Any) -> None:
    """Write JSON whole: a temporary file beside it, then a rename (readers never see half)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, default=str, **dump_args), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


FINGERPRINT_FILE = ".fingerprint.json"   # cached folder fingerprint, beside the files
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja")


def _hash_file(path: Path) -> str:
    """sha256 hex of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(folder: Path, patterns: tuple[str, ...] = MODEL_FILE_SUFFIXES) -> str:
    """sha256 (first 16 hex) over config and weight files; cached beside them by size+mtime."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.name.endswith(patterns) and not p.name.startswith("."))
    stamp = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    cache = Path(folder) / FINGERPRINT_FILE
    try:
        saved = json.loads(cache.read_text())
        if saved.get("files") == stamp:
            return saved["fingerprint"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + _hash_file(path).encode())
    fingerprint = digest.hexdigest()[:16]
    try:
        cache.write_text(json.dumps({"files": stamp, "fingerprint": fingerprint}))
    except OSError:
        pass  # read-only folder (e.g. a shared hub cache): recompute next time
    return fingerprint


def stem(data, name: str | None, default: str = "upload") -> str:
    if name:
        return name
    if isinstance(data, (bytes, bytearray, memoryview)):
        return default
    return Path(data).stem


def number(text: str) -> float | None:
    """The float in a cell, or None when it is not a number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def number_text(value: float) -> str:
    """2.0 -> "2", 2.5 -> "2.5"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


