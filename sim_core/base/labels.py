"""Names shared by every table, chart, report and CLI: entry labels and progress types.

An *entry* is one row of a comparison: the real data (REAL), a checkpoint (its label), a
baseline ("baseline: <name>") or the sampling-noise floor (NOISE_FLOOR). Pages, reports and
the CLI read these constants instead of spelling the strings again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sim_core.base.errors import Cancelled

REAL = "real"
NOISE_FLOOR = "noise floor"
BASELINE_PREFIX = "baseline: "

Progress = Callable[[int, int], None] | None
"""progress(done, total), called as long work advances (None: nobody listens)."""
ShouldStop = Callable[[], bool] | None
"""Polled during long work; True makes it raise sim_core.base.errors.Cancelled."""


def stop_if_asked(should_stop: ShouldStop, what: str = "Simulation") -> None:
    """Raise Cancelled when the caller asked to stop."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} stopped.")


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


BOUNDARIES = ":.?;!—"
"""Where a shared preamble may end: the battery item starts after one of these."""


def _shared_preamble(text: str, others: Sequence[str], min_shared: int) -> str:
    """The longest start `text` shares with one of `others`, cut back to the last clause
    boundary (so "…amount: Improving the X" keeps "Improving"); "" when under min_shared."""
    longest = 0
    for other in others:
        n = 0
        for a, b in zip(text, other):
            if a != b:
                break
            n += 1
        longest = max(longest, n)
    cut = max(text.rfind(ch, 0, longest) for ch in BOUNDARIES) + 1
    return text[:cut] if cut >= min_shared and text[cut:].strip() else ""


def question_choice_labels(texts: dict[str, str], min_shared: int = 40) -> dict[str, str]:
    """Picker labels that tell a battery's questions apart and keep the full wording.

    Questions sharing a long preamble (GSS "nat*": "We are faced with many problems…
    about the right amount: Space exploration program.") show their own item first and the
    preamble after it, so the visible start differs and a search still matches any word.

    Args:
        texts: question id -> full wording.
        min_shared: shortest shared start (characters) treated as a preamble.
    Returns:
        question id -> "id: item · preamble" (or "id: wording" for a question on its own).
    """
    ordered = sorted(texts.items(), key=lambda kv: kv[1])
    out = {}
    for i, (qid, text) in enumerate(ordered):
        neighbours = [t for _, t in ordered[max(0, i - 1):i] + ordered[i + 1:i + 2]]
        preamble = _shared_preamble(text, neighbours, min_shared)
        item = text[len(preamble):].strip()
        out[qid] = f"{qid}: {item} · {preamble.strip()}" if preamble else f"{qid}: {text}"
    return {qid: out[qid] for qid in texts}
