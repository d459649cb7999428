"""Reading answers, the same for every backend: the spellings of an option letter, shares from
one position's top log-probabilities, sampled texts parsed and tallied, verbalized percentages
parsed, option orders averaged back to the original options, and the per-prompt seed.

An answer that cannot be read is counted as unparsed and never replaced by a guess: a
distribution with no readable answer is all NaN (`no_answer`), which every score and table
shows as missing rather than as a plausible number.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence

import numpy as np

from sim_core.base.errors import ModelError, SimError
from sim_core.simulation.config import SimConfig
from sim_core.simulation.prompts import Prompt, prompt_text
from sim_core.survey.schema import LETTERS


def letter_spellings(letter: str) -> tuple[str, str]:
    """The two spellings of an answer letter that count: " A" (the usual token) and "A"."""
    return f" {letter}", letter


def no_answer(k: int) -> np.ndarray:
    """The distribution of a (question, slice) whose answers could not be read: all NaN."""
    return np.full(k, np.nan)


def debias(per_order: list[tuple[np.ndarray, float]],
           orders: Sequence[Sequence[int]]) -> tuple[np.ndarray, float]:
    """Average shown-order distributions mapped back to the original options; mean mass.

    An order whose shares are NaN (no readable answer) is left out of the average; when
    every order is, the result is no_answer.
    """
    k = len(orders[0])
    total, used = np.zeros(k), 0
    for (shown, _), order in zip(per_order, orders):
        if np.isnan(shown).any():
            continue
        total[list(order)] += shown  # letter j showed original option order[j]
        used += 1
    mass = float(np.mean([mass for _, mass in per_order]))
    if not used:
        return no_answer(k), mass
    shares = total / used
    return shares / shares.sum(), mass


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


def sample_seed(config: SimConfig, prompt: Prompt) -> int:
    """The sampling seed of one prompt: config.seed mixed with the prompt (order-independent)."""
    return (config.seed * 1_000_003 + zlib.crc32(prompt_text(prompt).encode())) % (2**31)


def tally_answers(texts: Sequence[str | None], options: Sequence[str]
                  ) -> tuple[np.ndarray, int, int]:
    """Shares of the parsed answers (parse_answer), with counts.

    Args:
        texts: the answers; None for a reply with no text (a refusal, a content filter).
    Returns:
        (shares over the options, n_samples, n_unparsed); no_answer when none parsed.
    """
    counts = np.zeros(len(options))
    unparsed = 0
    for text in texts:
        index = None if text is None else parse_answer(text, options)
        if index is None:
            unparsed += 1
        else:
            counts[index] += 1
    parsed = counts.sum()
    shares = counts / parsed if parsed else no_answer(len(options))
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


# "A: 45%", "**A** - 45 %", "A) 45%", "A (Too little): 45%", "B: 30": a letter at the start of a
# line, at most a little text without digits, then the number, then "%" or the line's end.
_PERCENT_LINE = re.compile(r"^[^\w\n]*([A-Z])\b[^\n\d]{0,80}?(\d+(?:\.\d+)?)[ \t]*(?:%|$)",
                           re.MULTILINE)


def percent_schema(k: int) -> dict:
    """The structured-output format of a verbalized reply: one number (0-100) per letter."""
    letters = list(LETTERS[:k])
    return {"type": "json_schema", "json_schema": {
        "name": "option_percentages", "strict": True,
        "schema": {"type": "object", "additionalProperties": False, "required": letters,
                   "properties": {c: {"type": "number", "minimum": 0, "maximum": 100}
                                  for c in letters}}}}


def _numbers_from_json(text: str) -> dict[str, float] | None:
    """Letter -> number from a JSON object in the reply (None when there is none)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    out = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = value.strip().rstrip("%").strip()
        try:
            out[str(key).strip().upper()] = float(value)
        except (TypeError, ValueError):
            return None
    return out


def parse_percentages(text: str | None, k: int) -> np.ndarray | None:
    """Shares over k options from a verbalized reply, or None when it cannot be read.

    A reply is read as a JSON object of letter -> number (structured output) or as lines
    like "A: 45%". It must give every option letter exactly one finite, non-negative number,
    name no other letter, and have a positive total; the numbers are then normalised to
    shares (a total of 95 or 103 is common and says nothing on its own).
    """
    if not text:
        return None
    numbers = _numbers_from_json(text)
    if numbers is None:
        found = _PERCENT_LINE.findall(text)
        letters = [letter for letter, _ in found]
        if len(set(letters)) != len(letters):
            return None                      # a letter given twice: which one counts?
        numbers = {letter: float(value) for letter, value in found}
    if set(numbers) != set(LETTERS[:k]):
        return None
    values = np.array([numbers[letter] for letter in LETTERS[:k]], dtype=np.float64)
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        return None
    return values / values.sum()
