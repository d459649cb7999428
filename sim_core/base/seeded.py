"""Seeded, order-independent choices of units (questions, groups, rows).

A unit's rank is a hash of the seed and its key, so the same seed picks the same units
whatever order they come in: fine-tuning splits (finetune.rows) and a base model's
calibration split (sim_core.evaluation.calibration_runs) both pick held-out units this way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def rank(seed: int, key: str) -> str:
    """Seeded, order-independent sort key for one unit."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def pick(units: Sequence[str], count: int, seed: int) -> set[str]:
    """The `count` distinct units with the smallest seeded hash."""
    return set(sorted(set(units), key=lambda u: rank(seed, u))[:count])


def holdout_count(n_units: int, fraction: float) -> int:
    """Units to hold out: at least one, and at least one left over (0 when n_units < 2)."""
    if n_units < 2:
        return 0
    return min(n_units - 1, max(1, round(fraction * n_units)))
