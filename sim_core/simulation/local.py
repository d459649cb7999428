"""The in-process transformers computation: next-token probabilities of the option letters
(first-token mode) and sampled answers (sampling mode), batched on the model's device.

Training (finetune) uses letter_logits for its loss, so what is trained is exactly what is
simulated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sim_core.base.errors import ModelError, SimError
from sim_core.base.labels import Progress, ShouldStop, stop_if_asked
from sim_core.simulation.answers import (
    letter_spellings,
    parse_percentages,
    sample_seed,
    tally_answers,
)
from sim_core.simulation.config import MAX_NEW_TOKENS, SimConfig, verbalized_tokens
from sim_core.simulation.devices import auto_batch_size
from sim_core.survey.schema import LETTERS

if TYPE_CHECKING:
    import torch


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
        for spelling in letter_spellings(letter):
            encoded = tokenizer.encode(spelling, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in found:
                found.append(encoded[0])
        if not found:
            raise ModelError(f"The tokenizer has no single token for the letter '{letter}'.")
        ids.append(found)
    return ids


def _plain_head(model: Any) -> Any:
    """The output projection when it is a plain Linear we may recompute in float32, else None."""
    import torch

    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    config = getattr(model, "config", None)
    if type(head) is not torch.nn.Linear or getattr(config, "final_logit_softcapping", None):
        return None  # adapted, quantised or soft-capped heads: keep the model's own logits
    return head


def _last_logprobs(model: Any, tokenizer: Any, prompts: list[str],
                   exact_ids: list[int] | None = None) -> torch.Tensor:
    """(batch, vocab) float32 log-probabilities of the next token after each prompt (left padded).

    exact_ids: tokens (the option letters) whose logits are recomputed in float32 from the last
    hidden state when the model runs in bf16/fp16. A half-precision head rounds logits to steps
    of 0.06-0.125, which erased the difference between two personas (Democrat and Republican got
    identical shares); recomputing only these few rows of the head costs nothing measurable.
    """
    import torch  # heavy: imported where the model runs, so SimConfig stays cheap to import

    special = not getattr(tokenizer, "chat_template", None)  # chat templates carry their own
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=special)
    device = next(model.parameters()).device
    encoded = {key: value.to(device) for key, value in encoded.items()}
    head = _plain_head(model) if exact_ids else None
    if head is not None and head.weight.dtype == torch.float32:
        head = None  # already exact
    captured: list[torch.Tensor] = []
    hook = None if head is None else head.register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0][:, -1, :]))
    try:
        try:
            logits = model(**encoded, logits_to_keep=1, use_cache=False).logits
        except TypeError:  # architectures without logits_to_keep
            captured.clear()
            logits = model(**encoded, use_cache=False).logits
    finally:
        if hook is not None:
            hook.remove()
    logits = logits[:, -1, :].float()
    if head is not None and len(captured) == 1:
        rows = torch.tensor(sorted(set(exact_ids)), device=logits.device)
        bias = None if head.bias is None else head.bias[rows].float()
        exact = torch.nn.functional.linear(captured[0].float(), head.weight[rows].float(), bias)
        logits = logits.index_copy(1, rows, exact)
    return torch.log_softmax(logits, dim=-1)


def _flat(ids: list[list[int]]) -> list[int]:
    """Every spelling's token id of every letter, one list."""
    return [token for spellings in ids for token in spellings]


def _letter_logprobs(logprobs: torch.Tensor, ids: list[list[int]]) -> torch.Tensor:
    """(batch, k) unnormalised letter log-probs: logsumexp over each letter's spellings."""
    import torch

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
    import torch

    ids = letter_token_ids(tokenizer, k)
    letters = _letter_logprobs(_last_logprobs(model, tokenizer, prompts, _flat(ids)), ids)
    return letters - torch.logsumexp(letters, dim=-1, keepdim=True)


def first_token_batch(model: Any, tokenizer: Any, prompts: list[str], ks: list[int],
                      batch_size: int | None = None, *, device: str = "cpu",
                      placement: str = "the device", progress: Progress = None,
                      should_stop: ShouldStop = None, done: int = 0,
                      total: int | None = None) -> list[tuple[np.ndarray, float]]:
    """Letter distributions and letter mass for many prompts, batched by similar length.

    Args:
        model, tokenizer: the loaded model and its tokenizer.
        prompts: exact prompt texts; ks: each prompt's number of options.
        batch_size: prompts per forward pass; None = devices.auto_batch_size for `device`.
        device: where inputs go; placement: where the weights are (named when out of memory).
    Returns:
        Per prompt: (renormalised shares over its k letters in shown order, letter mass).
    """
    import torch

    ids = letter_token_ids(tokenizer, max(ks))
    if not batch_size:
        batch_size = auto_batch_size(model, device)
    lengths = [len(tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
    ranked = sorted(range(len(prompts)), key=lambda i: lengths[i])  # little padding per batch
    out: list[tuple[np.ndarray, float] | None] = [None] * len(prompts)
    total = total if total is not None else len(prompts)
    with torch.inference_mode():
        for start in range(0, len(ranked), max(1, batch_size)):
            stop_if_asked(should_stop)
            chunk = ranked[start:start + max(1, batch_size)]
            try:
                logprobs = _last_logprobs(model, tokenizer, [prompts[i] for i in chunk],
                                          _flat(ids))
            except torch.OutOfMemoryError as error:
                raise ModelError(f"Out of memory on {placement} "
                                 f"with {len(chunk)} prompts per batch: use a smaller batch "
                                 "size (--batch-size).") from error
            letters = _letter_logprobs(logprobs, ids)
            for row, i in enumerate(chunk):
                probs = letters[row, :ks[i]].double().exp().cpu().numpy()
                out[i] = (probs / probs.sum(), float(probs.sum()))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return out  # type: ignore[return-value]


def generate(model: Any, tokenizer: Any, prompt: str, *, max_new_tokens: int,
             temperature: float = 0.0, samples: int = 1, seed: int = 0) -> list[str]:
    """Texts generated after a prompt: greedy at temperature 0, else sampled with the seed
    (top-k and top-p off: the model's own distribution at that temperature)."""
    import torch

    special = not getattr(tokenizer, "chat_template", None)
    encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=special)
    device = next(model.parameters()).device
    encoded = {key: value.to(device) for key, value in encoded.items()}
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
        if temperature > 0 else {"do_sample": False}
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        generated = model.generate(**encoded, **sampling, max_new_tokens=max_new_tokens,
                                   num_return_sequences=samples,
                                   pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:],
                                  skip_special_tokens=True)


def sample_answers(model: Any, tokenizer: Any, prompt: str, options: Sequence[str],
                   config: SimConfig) -> tuple[np.ndarray, int, int]:
    """N sampled respondents for one prompt (shown in original order).

    Returns:
        (shares over the options, n_samples, n_unparsed); all NaN when none parsed.
    """
    texts = generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS,
                     temperature=config.temperature, samples=config.samples,
                     seed=sample_seed(config, prompt))
    return tally_answers(texts, options)


def verbalized_answer(model: Any, tokenizer: Any, prompt: str, k: int, config: SimConfig
                      ) -> np.ndarray | None:
    """The percentages the model writes for k options, greedy; one seeded retry at
    temperature 1 when the reply cannot be read; None when neither can."""
    limit = verbalized_tokens(k)
    [text] = generate(model, tokenizer, prompt, max_new_tokens=limit)
    shares = parse_percentages(text, k)
    if shares is None:
        [text] = generate(model, tokenizer, prompt, max_new_tokens=limit, temperature=1.0,
                          seed=sample_seed(config, prompt))
        shares = parse_percentages(text, k)
    return shares
