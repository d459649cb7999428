"""Precision benchmark: how far the default bfloat16 path moves letter distributions from float32.

The same workload as bench/throughput.py (8 GSS questions x 6 slices, one option order) runs in
float32 and in bfloat16 (the CPU default), and in bfloat16 with the model's own rounded logits
(what the simulator did before the letter logits were projected in float32). Reported against
float32: mean and max total variation, and the correlation of the group deviations (each
slice's shares minus its question's mean), which is what persona effects are made of.

Usage: python bench/precision.py   (about 1 minute on 2 cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import workload

from sim_core.simulation import local
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate


def run(rows: list, dtype: str, exact_letters: bool = True) -> tuple[list, float]:
    """Shares per row and seconds; exact_letters=False keeps the half-precision logits."""
    lm = load_model("default", dtype=dtype)
    original = local._plain_head
    if not exact_letters:
        local._plain_head = lambda model: None
    try:
        start = time.perf_counter()
        shares = [simulate(lm, row.question, [row.slice],
                           SimConfig(orders=1, use_cache=False))[0].shares
                  for row in rows]
        return shares, time.perf_counter() - start
    finally:
        local._plain_head = original


def group_deviations(rows: list, shares: list) -> np.ndarray:
    """Every slice's shares minus the mean over its question's slices, concatenated."""
    by_question: dict[str, list] = {}
    for row, share in zip(rows, shares):
        by_question.setdefault(row.question.id, []).append(share)
    return np.concatenate([share - np.mean(group, axis=0)
                           for group in by_question.values() for share in group])


def main() -> None:
    rows = workload(8, 6)
    reference, seconds = run(rows, "float32")
    print(f"Workload: {len(rows)} distributions, SmolLM2-135M-Instruct, one option order.\n")
    print("| path | seconds | mean TV vs float32 | max TV | group-deviation r |")
    print("|---|---|---|---|---|")
    print(f"| float32 | {seconds:.1f} | 0 | 0 | 1 |")
    for label, exact in (("bfloat16 (default: letter logits in float32)", True),
                         ("bfloat16, rounded logits (before)", False)):
        shares, seconds = run(rows, "bfloat16", exact)
        tv = [0.5 * np.abs(a - b).sum() for a, b in zip(shares, reference)]
        r = np.corrcoef(group_deviations(rows, shares), group_deviations(rows, reference))[0, 1]
        print(f"| {label} | {seconds:.1f} | {np.mean(tv):.4f} | {np.max(tv):.4f} | {r:.3f} |")


if __name__ == "__main__":
    main()
