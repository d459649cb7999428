"""Reading answers, the same for every backend: the spellings of an option letter, shares from
one position's top log-probabilities, sampled texts parsed and tallied, option orders averaged
back to the original options, and the per-prompt sampling seed."""

from __future__ import annotations

import math
import re
import zlib
from typing import Sequence

import numpy as np

from sim_core.base.errors import ModelError, SimError
from sim_core.simulation.config import SimConfig
from sim_core.survey.schema import LETTERS


def letter_spellings(letter: str) -> tuple[str, str]:
    """The two spellings of an answer letter that count: " A" (the usual token) and "A"."""
    return f" {letter}", letter


def debias(per_order: list[tuple[np.ndarray, float]],
           orders: Sequence[Sequence[int]]) -> tuple[np.ndarray, float]:
    """Average shown-order distributions mapped back to the original options; mean mass."""
    k = len(orders[0])
    total = np.zeros(k)
    for (shown, _), order in zip(per_order, orders):
        total[list(order)] += shown  # letter j showed original option order[j]
    shares = total / len(orders)
    return shares / shares.sum(), float(np.mean([mass for _, mass in per_order]))


_LETTER_ANSWER = re.compile(r"^\W*\(?([A-Z])(?![A-Za-z])")


def parse_answer(text: str, options: Sequence[str],
                 order: Sequence[int] | None = None) -> int | None:
    """Original option index of a generated answer (letter, or option text), else None."""
    order = list(order) if order is not None else list(range(len(options)))
    stripped = text.strip()
    match = _LETTER_ANSWER.match(stripped)
    if match and LETTERS.index(match.group(1)) < len(options):
        return order[LETTERS.index(match.group(1))]
    lowered = stripped.lower()
    hits = [i for i, option in enumerate(options) if option.lower() and
            lowered.startswith(option.lower())]
    if hits:
        return max(hits, key=lambda i: len(options[i]))  # "Strongly agree" beats "Agree"
    return None


def sample_seed(config: SimConfig, prompt: str) -> int:
    """The sampling seed of one prompt: config.seed mixed with the prompt (order-independent)."""
    return (config.seed * 1_000_003 + zlib.crc32(prompt.encode())) % (2**31)


def tally_answers(texts: Sequence[str], options: Sequence[str]) -> tuple[np.ndarray, int, int]:
    """Shares of the parsed answers (parse_answer), with counts.

    Returns:
        (shares over the options, n_samples, n_unparsed); uniform shares when none parsed.
    """
    counts = np.zeros(len(options))
    unparsed = 0
    for text in texts:
        index = parse_answer(text, options)
        if index is None:
            unparsed += 1
        else:
            counts[index] += 1
    parsed = counts.sum()
    shares = counts / parsed if parsed else np.full(len(options), 1.0 / len(options))
    return shares, len(texts), unparsed


def letter_distribution(top: dict[str, float], k: int) -> tuple[np.ndarray, float]:
    """Shares over k option letters from one position's top log-probabilities.

    Args:
        top: token text -> log-probability (natural log), as the server lists its top K.
        k: number of options (letters A..).
    Returns:
        (shares renormalised over the k letters, letter mass = their summed probability).
        Both spellings of a letter (" A", "A") add up; a letter outside the top K gets 0.
    Raises:
        ModelError: no option letter in the top K (refused rather than guessed).
    """
    if not 1 <= k <= len(LETTERS):
        raise SimError(f"Questions need 1 to {len(LETTERS)} options, not {k}.")
    mass = np.zeros(k)
    for j, letter in enumerate(LETTERS[:k]):
        for spelling in letter_spellings(letter):
            value = top.get(spelling)
            if isinstance(value, (int, float)) and math.isfinite(value):
                mass[j] += math.exp(value)
    total = float(mass.sum())
    if total <= 0:
        shown = ", ".join(repr(t) for t, _ in sorted(top.items(), key=lambda kv: -kv[1])[:5])
        raise ModelError(f"None of the option letters A-{LETTERS[k - 1]} is among the "
                         f"{len(top)} most likely next tokens (top: {shown}): the model does "
                         "not answer with a letter here; first-token shares would be a guess.")
    return mass / total, total
