"""Simulated answer distributions: first-token letter probabilities, or sampled respondents."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sim_core.errors import Cancelled, ModelError, SimError
from sim_core.prompts import LETTERS, PromptStyle, build_prompt, option_orders

# Measured on 100 real GSS rows with the embedded model (README, "Simulation"): averaging
# over the original and reversed order lowered WD most per forward pass.
DEFAULT_ORDERS = 2
MAX_NEW_TOKENS = 6

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None


@dataclass
class SimConfig:
    """Simulation settings.

    Attributes:
        mode: "first-token" (letter probabilities at the next token) or "sample".
        orders: option orders averaged (identity, reversed, cyclic shifts), first-token mode.
        samples: respondents generated per slice in sampling mode.
        temperature: sampling temperature in sampling mode.
        batch_size: prompts per forward pass.
        seed: sampling seed (combined with each prompt, so results do not depend on order).
        style: persona templates and wording.
        use_cache: read and write the on-disk result cache.
    """

    mode: str = "first-token"
    orders: int = DEFAULT_ORDERS
    samples: int = 20
    temperature: float = 1.0
    batch_size: int = 8
    seed: int = 0
    style: PromptStyle = field(default_factory=PromptStyle)
    use_cache: bool = True


@dataclass
class SimResult:
    """One simulated distribution for a (question, slice)."""

    slice: dict[str, str]
    options: tuple[str, ...]
    shares: np.ndarray
    letter_mass: float
    prompt: str
    n_samples: int = 0
    n_unparsed: int = 0
    cached: bool = False


def letter_token_ids(tokenizer: Any, k: int) -> list[list[int]]:
    """Per option letter, the single-token ids of " A" and "A" (both spellings count).

    Raises:
        ModelError: a letter has no single-token spelling in this tokenizer.
    """
    if not 1 <= k <= len(LETTERS):
        raise SimError(f"Questions need 1 to {len(LETTERS)} options, not {k}.")
    ids = []
    for letter in LETTERS[:k]:
        found = []
        for spelling in (f" {letter}", letter):
            encoded = tokenizer.encode(spelling, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in found:
                found.append(encoded[0])
        if not found:
            raise ModelError(f"The tokenizer has no single token for the letter '{letter}'.")
        ids.append(found)
    return ids


def _last_logprobs(model: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """(batch, vocab) log-probabilities of the next token after each prompt (left padded)."""
    special = not getattr(tokenizer, "chat_template", None)  # chat templates carry their own
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=special)
    device = next(model.parameters()).device
    encoded = {key: value.to(device) for key, value in encoded.items()}
    try:
        logits = model(**encoded, logits_to_keep=1, use_cache=False).logits
    except TypeError:  # architectures without logits_to_keep
        logits = model(**encoded, use_cache=False).logits
    return torch.log_softmax(logits[:, -1, :].float(), dim=-1)


def _letter_logprobs(logprobs: torch.Tensor, ids: list[list[int]]) -> torch.Tensor:
    """(batch, k) unnormalised letter log-probs: logsumexp over each letter's spellings."""
    columns = [torch.logsumexp(logprobs[:, letter_ids], dim=-1) for letter_ids in ids]
    return torch.stack(columns, dim=-1)


def letter_logits(model: Any, tokenizer: Any, prompts: list[str], k: int) -> torch.Tensor:
    """Log-probabilities over the k option letters at the next position, renormalised.

    Args:
        model: causal LM (transformers or peft); gradients flow when enabled.
        tokenizer: its tokenizer.
        prompts: exact prompt texts (build_prompt).
        k: number of options.
    Returns:
        Tensor (batch, k): log-probabilities that sum (in probability) to 1 per row.
    """
    letters = _letter_logprobs(_last_logprobs(model, tokenizer, prompts),
                               letter_token_ids(tokenizer, k))
    return letters - torch.logsumexp(letters, dim=-1, keepdim=True)


def _check(should_stop: ShouldStop) -> None:
    """Raise Cancelled when the caller asked to stop."""
    if should_stop is not None and should_stop():
        raise Cancelled("Simulation stopped.")


def first_token_batch(lm: Any, prompts: list[str], ks: list[int], batch_size: int = 8, *,
                      progress: Progress = None, should_stop: ShouldStop = None,
                      done: int = 0, total: int | None = None) -> list[tuple[np.ndarray, float]]:
    """Letter distributions and letter mass for many prompts, batched by similar length.

    Returns:
        Per prompt: (renormalised shares over its k letters in shown order, letter mass).
    """
    ids = letter_token_ids(lm.tokenizer, max(ks))
    lengths = [len(lm.tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
    ranked = sorted(range(len(prompts)), key=lambda i: lengths[i])  # little padding per batch
    out: list[tuple[np.ndarray, float] | None] = [None] * len(prompts)
    total = total if total is not None else len(prompts)
    with torch.inference_mode():
        for start in range(0, len(ranked), max(1, batch_size)):
            _check(should_stop)
            chunk = ranked[start:start + max(1, batch_size)]
            letters = _letter_logprobs(_last_logprobs(lm.model, lm.tokenizer,
                                                      [prompts[i] for i in chunk]), ids)
            for row, i in enumerate(chunk):
                probs = letters[row, :ks[i]].double().exp().cpu().numpy()
                out[i] = (probs / probs.sum(), float(probs.sum()))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return out  # type: ignore[return-value]


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


def sample_answers(lm: Any, prompt: str, options: Sequence[str], config: SimConfig
                   ) -> tuple[np.ndarray, int, int]:
    """N sampled respondents for one prompt (shown in original order).

    Returns:
        (shares over the options, n_samples, n_unparsed); uniform shares when none parsed.
    """
    tokenizer = lm.tokenizer
    special = not getattr(tokenizer, "chat_template", None)
    encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=special)
    device = next(lm.model.parameters()).device
    encoded = {key: value.to(device) for key, value in encoded.items()}
    seed = (config.seed * 1_000_003 + zlib.crc32(prompt.encode())) % (2**31)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        generated = lm.model.generate(
            **encoded, do_sample=True, temperature=max(config.temperature, 1e-4),
            top_k=0, top_p=1.0, max_new_tokens=MAX_NEW_TOKENS,
            num_return_sequences=config.samples, pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:],
                                   skip_special_tokens=True)
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
