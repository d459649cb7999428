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
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError, SimError
from sim_core.base.writing import atomic_write

MAX_FILE_BYTES = 200 * 1024 * 1024      # same as .streamlit/config.toml maxUploadSize
SHARE_TOLERANCE = 0.01                  # shares summing to 1 +- this are fine as they are
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "."})   # always "no answer"


# ---------------------------------------------------------------- bytes and text

def checked_path(data, what: str = "file") -> tuple[Path, str]:
    """A regular file that exists, is not over the size limit and not empty, and its name."""
    path = Path(data)
    try:
        info = os.stat(path)
    except OSError as error:
        raise DataError(f"cannot open the {what}: {error.strerror or error}",
                        file=str(path)) from None
    if not stat.S_ISREG(info.st_mode):   # a FIFO would hang, /dev/zero never end
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise DataError(f"the {what} is {kind} (a pipe, device or folder cannot be "
                        "read as survey data); give a saved file.", file=str(path))
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(_too_big(info.st_size), file=path.name)
    if info.st_size == 0:
        raise DataError("the file is empty.", file=path.name)
    return path, path.name


def load_bytes(data, what: str = "file") -> tuple[bytes, str]:
    """Raw bytes and a display name; the size is checked before anything is read."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw, label = bytes(data), f"uploaded {what}"
    else:
        path, label = checked_path(data, what)
        raw = _read_at_most(path, MAX_FILE_BYTES + 1, what)
    if len(raw) > MAX_FILE_BYTES:
        raise DataError(_too_big(len(raw)), file=label)
    if not raw.strip():
        raise DataError("the file is empty.", file=label)
    return raw, label


def _read_at_most(path: Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a file (one that grows while read cannot run memory out)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError as error:
        raise DataError(f"cannot read the {what}: {error.strerror or error}",
                        file=str(path)) from None


def file_fingerprint(path: Path) -> str:
    """fingerprint() of a file's bytes, read in chunks (never the whole file at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _too_big(size: int) -> str:
    return (f"the file is {size / 2**20:.0f} MiB, over the limit of "
            f"{MAX_FILE_BYTES / 2**20:.0f} MiB; split it or keep only the needed columns.")


# A valid multi-byte UTF-8 sequence, or else one stray byte >= 0x80 (not UTF-8).
_UTF8_OR_STRAY = re.compile(
    rb"([\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2})|([\x80-\xff])")


def decode(raw: bytes, file: str) -> str:
    """One encoding per file: UTF-8 (with or without BOM), else Windows-1252/Latin-1.

    A file that holds valid UTF-8 sequences *and* bytes that are not UTF-8 mixes two
    encodings: decoding it whole as cp1252 would turn every UTF-8 letter into mojibake,
    so it is refused, naming the rows of the stray bytes.
    """
    if b"\x00" in raw[:65536]:
        raise DataError("the file contains NUL bytes (binary, Excel or UTF-16?); save it as "
                        "a CSV in UTF-8.", file=file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    utf8, stray = [], []
    for match in _UTF8_OR_STRAY.finditer(raw):
        (utf8 if match.group(1) else stray).append(match.start())
    if utf8:
        raise DataError(
            f"the file mixes encodings: it is UTF-8 ({len(utf8)} UTF-8 letters) but has "
            f"{len(stray)} byte(s) that are not (e.g. 0x{raw[stray[0]]:02x}, Latin-1?); save "
            "the whole file as UTF-8.", file=file, rows=_lines_of(raw, stray))
    # cp1252 is a superset of Latin-1's printable characters and rejects 5 unused bytes,
    # so binary junk still fails instead of turning into mojibake silently.
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as error:
        bad = [i for i in stray if raw[i] in b"\x81\x8d\x8f\x90\x9d"]
        raise DataError(f"byte 0x{raw[error.start]:02x} is not valid UTF-8 or Latin-1; "
                        "save the file as UTF-8.", file=file, rows=_lines_of(raw, bad)) from None


def _lines_of(raw: bytes, positions: list[int]) -> list[int]:
    """1-based line number of each byte position (distinct, in order)."""
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("\n"))
    lines = np.searchsorted(ends, np.asarray(positions, dtype=np.int64)) + 1
    return list(dict.fromkeys(int(x) for x in lines))


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

    The header is read as written (no renaming of repeated names: `q1` and `q1.1` are two
    columns, two `q1` are refused) and every row must have exactly the header's number of
    fields. Blank lines are skipped but counted, so row numbers match a spreadsheet.

    Returns:
        (table of str, display file name, raw bytes). Blank/"NA" cells stay as text here.
    """
    raw, file = load_bytes(data, what)
    text = decode(raw, file)
    sep = _sniff_delimiter(text)
    records = _records(text, sep, file)
    if not records:
        raise DataError("the file is empty.", file=file)
    (_, header), body = records[0], records[1:]
    header = [cell.strip() for cell in header]
    _check_header(header, file)
    _check_field_counts(body, len(header), file)
    if not body:
        raise DataError("the file has a header but no data rows.", file=file)
    columns = list(zip(*(cells for _, cells in body)))
    table = pd.DataFrame({i: pd.Series(col, dtype=str).str.strip()
                          for i, col in enumerate(columns)})
    table.columns = header
    table.attrs["rows"] = [row for row, _ in body]      # spreadsheet row of each data row
    table.attrs["decimal_commas"] = _decimal_commas(table) if sep != "," else []
    return table, file, raw


_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def decimal_comma_notes(table: pd.DataFrame) -> list[str]:
    """The warning for columns read_table converted from decimal commas (none: [])."""
    commas = table.attrs.get("decimal_commas")
    return [f"decimal commas read as decimal points in: {', '.join(commas)} (e.g. 1,5 = "
            "1.5)."] if commas else []


def _decimal_commas(table: pd.DataFrame) -> list[str]:
    """Columns of a semicolon/tab file written with decimal commas ("1,5"), converted in place
    to decimal points; only where every non-empty cell is such a number or an integer (a
    thousands separator cannot be told apart there, so "1.234,5" is left alone)."""
    converted = []
    for column in table.columns:
        cells = table[column][table[column] != ""]
        if cells.empty or not cells.str.match(_DECIMAL_COMMA).any():
            continue
        if (cells.str.match(_DECIMAL_COMMA) | cells.str.match(_INTEGER)).all():
            table[column] = table[column].str.replace(",", ".", regex=False)
            converted.append(column)
    return converted


def rows_at(positions, rows=None) -> list[int]:
    """Row numbers for messages of the data rows at these positions: `rows` (the spreadsheet
    rows read_table records in table.attrs["rows"], or SPSS case numbers) or position + 2."""
    return [int(rows[i]) if rows is not None else int(i) + 2 for i in positions]


def _records(text: str, sep: str, file: str) -> list[tuple[int, list[str]]]:
    """(spreadsheet row, cells) of every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, skipinitialspace=True)
    out = []
    try:
        for row_no, cells in enumerate(reader, start=1):
            if cells and any(cell.strip() for cell in cells) or len(cells) > 1:
                out.append((row_no, cells))
    except csv.Error as error:
        raise DataError(f"the table is malformed ({error}).", file=file,
                        row=reader.line_num) from None
    return out


def _check_field_counts(body: list[tuple[int, list[str]]], width: int, file: str) -> None:
    """Every row has exactly `width` fields (a short row is not "missing answers")."""
    bad = [(row, len(cells)) for row, cells in body if len(cells) != width]
    if bad:
        counts = sorted({n for _, n in bad})
        raise DataError(f"the header has {width} fields but these rows have "
                        f"{'/'.join(map(str, counts))}; every row needs exactly {width} "
                        "(quote cells that contain the delimiter).", file=file,
                        rows=[row for row, _ in bad])


def _check_header(header: list[str], file: str) -> None:
    """Blank or repeated column names are refused (exact repeats only)."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"column {position} has no name in the header.", file=file, row=1)
        if name in seen:
            raise DataError(f"the column name appears twice in the header (columns "
                            f"{seen[name]} and {position}).", file=file, row=1, column=name)
        seen[name] = position


def write_json_atomic(path: Path, data: Any, **dump_args: Any) -> None:
    """Write JSON whole (storage.atomic_write: readers never see half a file); numpy numbers
    are written as plain numbers, anything else unknown as its text."""
    atomic_write(path, json.dumps(data, default=_json_default, **dump_args))


def _json_default(value: Any) -> Any:
    """numpy scalars as Python numbers (json cannot), anything else as str."""
    return value.item() if isinstance(value, np.generic) else str(value)


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
        atomic_write(cache, json.dumps({"files": stamp, "fingerprint": fingerprint}))
    except SimError:
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


