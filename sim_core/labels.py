"""Names shared by every table, chart, report and CLI: entry labels and progress types.

An *entry* is one row of a comparison: the real data (REAL), a checkpoint (its label), a
baseline ("baseline: <name>") or the sampling-noise floor (NOISE_FLOOR). Pages, reports and
the CLI read these constants instead of spelling the strings again.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

REAL = "real"
NOISE_FLOOR = "noise floor"
BASELINE_PREFIX = "baseline: "

Progress = Callable[[int, int], None] | None
"""progress(done, total), called as long work advances (None: nobody listens)."""
ShouldStop = Callable[[], bool] | None
"""Polled during long work; True makes it raise sim_core.errors.Cancelled."""


def baseline_entry(name: str) -> str:
    """The entry label of a baseline: "uniform" -> "baseline: uniform"."""
    return BASELINE_PREFIX + name


def is_baseline(entry: str) -> bool:
    """Whether an entry label names a baseline."""
    return str(entry).startswith(BASELINE_PREFIX)


def baseline_name(entry: str) -> str:
    """The baseline's name inside an entry label ("baseline: uniform" -> "uniform")."""
    return entry[len(BASELINE_PREFIX):] if is_baseline(entry) else entry


def unique_labels(models: Sequence[Any]) -> list[str]:
    """Checkpoint labels, with " (2)", " (3)" added where two models share one."""
    seen: dict[str, int] = {}
    out = []
    for lm in models:
        label = lm.label
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out
