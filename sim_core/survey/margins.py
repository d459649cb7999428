"""Population margins: the share of each group of each attribute in a population (census
figures, say), as a small CSV with the columns `attribute, group, share`, one file per
population, saved in workspace/populations/ and reusable by name (`--margins NAME`,
`python -m sim_core populations`).

    attribute,group,share
    SEX,Female,0.51
    SEX,Male,0.49

Every attribute's shares must sum to 1. Figures rounded to within SHARE_TOLERANCE (0.01) of 1
are normalised, with a warning; anything further off is refused, because it means a group
is missing or the numbers are percentages, and normalising would silently inflate the
groups that are there. Negative, non-numeric or repeated rows are refused with their row.
A saved file keeps the user's bytes unchanged; it is checked before it is saved and again
whenever it is read.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim_core.base.errors import DataError, SimError
from sim_core.base.reading import SHARE_TOLERANCE, read_table, rows_at
from sim_core.base.workspace import check_name, is_valid_name, subdir
from sim_core.base.writing import atomic_write, failure_message

COLUMNS = ("attribute", "group", "share")
FOLDER = "populations"
SUFFIX = ".csv"
ROUNDING = 1e-9          # sums this close to 1 are float rounding, not worth a warning


@dataclass
class Margins:
    """Population shares per attribute and group.

    Attributes:
        name: the population's name (a saved name or the file's stem).
        shares: attribute -> group -> share; each attribute's shares sum to 1.
        warnings: what was done to the figures (normalised attributes).
    """

    name: str
    shares: dict[str, dict[str, float]]
    warnings: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> list[str]:
        """Attributes in file order."""
        return list(self.shares)

    def to_csv(self) -> str:
        """The margins as `attribute, group, share` CSV text."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for attribute, groups in self.shares.items():
            writer.writerows([attribute, group, repr(share)] for group, share in groups.items())
        return buffer.getvalue()


def _number(text: str, where: str) -> float:
    """A finite, non-negative share (DataError naming the row otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"share '{text}' is not a number ({where}).") from None
    if not math.isfinite(value):
        raise DataError(f"share '{text}' is not a finite number ({where}).")
    if value < 0:
        raise DataError(f"share {value:g} is negative ({where}); shares are 0 to 1.")
    return value


def checked_margins(shares: dict[str, dict[str, float]], name: str = "",
                    file: str | None = None) -> Margins:
    """Margins from attribute -> group -> share, each attribute summing to 1.

    Args:
        shares: the figures (e.g. edited in a table).
        name: the population's name.
        file: where they came from, for messages.
    Returns:
        Margins; an attribute off 1 by at most SHARE_TOLERANCE is normalised with a warning.
    Raises:
        DataError: negative or non-finite shares, an attribute without groups or with all
            shares 0, or shares summing to more than SHARE_TOLERANCE away from 1.
    """
    if not shares:
        raise DataError("the margins name no attribute.", file=file)
    out: dict[str, dict[str, float]] = {}
    warnings = []
    for attribute, groups in shares.items():
        values = {str(g): _number(str(v), f"{attribute}={g}") for g, v in groups.items()}
        total = sum(values.values())
        if not values or total <= 0:
            raise DataError(f"attribute '{attribute}' has no group with a positive share.",
                            file=file)
        if 99 <= total <= 101:
            raise DataError(f"the shares of '{attribute}' sum to {total:g}: they look like "
                            "percentages; write fractions (0.51, not 51).", file=file)
        if abs(total - 1) > SHARE_TOLERANCE:
            raise DataError(f"the shares of '{attribute}' sum to {total:.4g}, not 1: is a "
                            "group missing? Every group of an attribute needs a row (share 0 "
                            "for a group the population has none of).", file=file)
        if abs(total - 1) > ROUNDING:
            warnings.append(f"shares of '{attribute}' summed to {total:.6g}; normalised to 1.")
        out[str(attribute)] = {g: v / total for g, v in values.items()}
    return Margins(name=name, shares=out, warnings=warnings)


def read_margins(data, *, name: str | None = None) -> Margins:
    """Read a margins CSV (any encoding and delimiter sim_core.base.reading accepts).

    Args:
        data: a path or bytes.
        name: the population's name (default: the file's stem).
    Returns:
        Margins (see checked_margins for the sums).
    Raises:
        DataError: other columns than attribute, group, share; a blank attribute or group;
            a repeated (attribute, group); a bad share; sums off 1.
    """
    table, file, _ = read_table(data, "margins file")
    table.columns = [str(c).strip().lower() for c in table.columns]
    if sorted(table.columns) != sorted(COLUMNS):
        raise DataError("a margins file has exactly the columns attribute, group, share "
                        f"(it has: {', '.join(table.columns)}).", file=file, row=1)
    stem = name or (Path(data).stem if isinstance(data, (str, Path)) else "margins")
    rows = rows_at(list(range(len(table))), table.attrs["rows"])
    return margins_from_rows(table[list(COLUMNS)].itertuples(index=False), stem, file=file,
                             row_numbers=rows)


def margins_from_rows(rows: Iterable[Sequence], name: str = "", *, file: str | None = None,
                      row_numbers: Sequence[int] | None = None) -> Margins:
    """Margins from (attribute, group, share) rows: a file's, or a table edited on the
    dashboard.

    Args:
        rows: (attribute, group, share) per row; shares as numbers or text.
        name: the population's name.
        file: where they came from; row_numbers: each row's number there (default 1, 2, ...).
    Returns:
        Margins (see checked_margins for the sums).
    Raises:
        DataError naming the row: a blank attribute or group, a repeated (attribute, group),
            a share that is not a non-negative number; then checked_margins' sums.
    """
    shares: dict[str, dict[str, float]] = {}
    for position, (attribute, group, share) in enumerate(rows):
        row = row_numbers[position] if row_numbers is not None else position + 1
        attribute, group = _text(attribute), _text(group)
        if not attribute or not group:
            raise DataError("attribute and group must not be blank.", file=file, row=row)
        if group in shares.get(attribute, {}):
            raise DataError(f"{attribute}={group} appears twice.", file=file, row=row)
        try:
            shares.setdefault(attribute, {})[group] = _number(str(share),
                                                              f"{attribute}={group}")
        except DataError as error:
            raise DataError(error.detail, file=file, row=row) from None
    return checked_margins(shares, name, file)


def _text(value) -> str:
    """A cell as stripped text ("" for a blank or missing one)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else str(value).strip()


# ---------------------------------------------------------------- the workspace's populations

def populations_dir() -> Path:
    """workspace/populations/ (created on demand)."""
    return subdir(FOLDER)


def saved_margins() -> list[str]:
    """Names of the saved populations, sorted (temporary files left out)."""
    return sorted(p.stem for p in populations_dir().glob(f"*{SUFFIX}")
                  if is_valid_name(p.stem) and p.is_file())


def _path(name: str) -> Path:
    """The file of a saved population (DataError when there is none)."""
    path = populations_dir() / f"{name}{SUFFIX}" if is_valid_name(name) else None
    if path is None or not path.is_file():
        known = ", ".join(saved_margins()) or "none yet"
        raise DataError(f"no saved population named '{name}' (saved: {known}).")
    return path


def save_margins(name: str, data: bytes | Margins, *, overwrite: bool = False) -> Margins:
    """Check margins and save them under a name, atomically.

    Args:
        name: the name exactly as typed (check_name: refused with a suggestion otherwise).
        data: a margins CSV's bytes (kept unchanged) or Margins (written as CSV).
        overwrite: replace a saved population of that name (otherwise SimError).
    Returns:
        The Margins as read back.
    """
    name = check_name(name, "population name")
    payload = data.to_csv().encode("utf-8") if isinstance(data, Margins) else bytes(data)
    margins = read_margins(payload, name=name)        # refuse bad figures before saving
    atomic_write(populations_dir() / f"{name}{SUFFIX}", payload, overwrite=overwrite)
    return margins


def load_saved_margins(name: str) -> Margins:
    """A saved population's margins, by its exact name (DataError when there is none)."""
    return read_margins(_path(name), name=name)


def load_margins(source: str | Path) -> Margins:
    """Margins from a saved population's name or a CSV file's path (a file wins)."""
    path = Path(source)
    if path.is_file():
        return read_margins(path)
    if is_valid_name(str(source)) and str(source) in saved_margins():
        return load_saved_margins(str(source))
    known = ", ".join(saved_margins()) or "none yet"
    raise DataError(f"no such margins file or saved population (saved: {known}).",
                    file=str(source))


def delete_margins(name: str) -> None:
    """Remove a saved population (DataError when there is none)."""
    path = _path(name)
    try:
        path.unlink()
    except OSError as error:
        raise SimError(failure_message(error, path, "remove")) from error
