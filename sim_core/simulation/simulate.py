"""Simulated answer distributions: first-token letter probabilities, or sampled respondents."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sim_core.base.errors import Cancelled, ModelError, SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.base.options import MAX_SEED, Choice, check, registry, setting
from sim_core.simulation.cache import cache_key, cached_values, open_cache, store_values
from sim_core.simulation.calibration import calibrate_result
from sim_core.simulation.devices import (
    CPU_BATCH,
    DEVICES_HELP,
    GPU_BATCH_CAP,
    auto_batch_size,
    check_device_name,
    check_model_device,
    device_key,
)
from sim_core.simulation.prompts import PromptStyle, build_prompt, option_orders
from sim_core.survey.schema import LETTERS

if TYPE_CHECKING:
    import torch

# Measured on 100 random real GSS rows with the embedded model (float32): mean ordinal WD
# 0.268 with 1 order, 0.201 with 2, 0.199 with 4 (uniform guess 0.200): the reversed order
# removes nearly all the letter bias at half the cost of 4 orders.
DEFAULT_ORDERS = 2
DEFAULT_TEMPERATURE = 1.0   # sampling temperature without a setting or a chosen one
# An adapter trained on the original option order learned what the position says (scales run
# low to high, the middle is often the mode): on the GSS validation questions it scored WD
# 0.204 with its own order and 0.242 averaged over 2 orders, so such an adapter's card
# recommends 1 order (finetune writes `inference_orders`; docs/fidelity.md).
MAX_NEW_TOKENS = 6

MODES = registry(
    Choice("first-token", "First-token probabilities",
           "the next-token probabilities of the option letters (SubPOP's method: one "
           "forward pass per prompt)"),
    Choice("sample", "Sampling (synthetic respondents)",
           "generate answers from N synthetic respondents per slice and count them (costs "
           "about 20x more per distribution)"),
)


@dataclass
class SimConfig:
    """Simulation settings; every field's help and bounds live in its `setting(...)`.

    `style` (persona templates and wording) is the only field without a CLI flag.
    """

    mode: str = setting("first-token", choices=MODES, label="Mode",
                        help="how the answer distribution is read from the model")
    orders: int | None = setting(
        None, min=1, max=26, label="Option orders averaged",
        none="each checkpoint's own: %d for a base model, 1 for an adapter trained on the "
             "original option order" % DEFAULT_ORDERS,
        help="option orders averaged against letter bias (original, reversed, cyclic "
             "shifts; first-token mode)")
    samples: int = setting(20, min=1, max=1000, label="Samples per slice",
                           help="synthetic respondents generated per slice (sampling mode)")
    temperature: float | None = setting(
        None, above=0, max=10, label="Sampling temperature",
        none=f"each checkpoint's own: the temperature its individual-level sweep chose in "
             f"sampling mode (adapter card), else {DEFAULT_TEMPERATURE:g}",
        help="temperature of the sampled answers (sampling mode)")
    batch_size: int | None = setting(
        None, min=1, max=1024, label="Batch size", help="prompts per forward pass",
        none=f"suited to the device: {CPU_BATCH} on the CPU, as many as half the GPU's free "
             f"memory holds on a GPU (up to {GPU_BATCH_CAP})")
    device: str = setting("auto", label="Device", help=f"where the model runs: {DEVICES_HELP}")
    seed: int = setting(0, min=0, max=MAX_SEED, label="Seed",
                        help="sampling seed, combined with each prompt so results do not "
                             "depend on the order prompts run in")
    style: PromptStyle = field(default_factory=PromptStyle)
    use_cache: bool = setting(True, flag="cache", label="Use the result cache",
                              help="read and write the on-disk result cache")
    calibrate: bool = setting(True, label="Calibrate",
                              help="apply the checkpoint's calibration (temperature and "
                                   "shrinkage fitted on validation rows it was never tested "
                                   "on) when it has one; first-token mode")
    interval_level: float = setting(0.9, min=0.5, max=0.99, label="Prediction interval level",
                                    help="nominal coverage of the prediction interval drawn "
                                         "around each simulated share (split conformal on "
                                         "the checkpoint's validation residuals)")

    def __post_init__(self) -> None:
        check(self)
        check_device_name(self.device)


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
    raw_shares: np.ndarray | None = None        # before calibration (None: not calibrated)
    interval_low: np.ndarray | None = None      # prediction interval (None: no calibration
    interval_high: np.ndarray | None = None     # with residuals for this checkpoint)
    calibrated: bool = False


def letter_spellings(letter: str) -> tuple[str, str]:
    """The two spellings of an answer letter that count: " A" (the usual token) and "A"."""
    return f" {letter}", letter


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
                   exact_ids: list[int] | None = None) -> "torch.Tensor":
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
    captured: list["torch.Tensor"] = []
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


def _letter_logprobs(logprobs: "torch.Tensor", ids: list[list[int]]) -> "torch.Tensor":
    """(batch, k) unnormalised letter log-probs: logsumexp over each letter's spellings."""
    import torch

    columns = [torch.logsumexp(logprobs[:, letter_ids], dim=-1) for letter_ids in ids]
    return torch.stack(columns, dim=-1)


def letter_logits(model: Any, tokenizer: Any, prompts: list[str], k: int) -> "torch.Tensor":
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


def _check(should_stop: ShouldStop) -> None:
    """Raise Cancelled when the caller asked to stop."""
    if should_stop is not None and should_stop():
        raise Cancelled("Simulation stopped.")


def first_token_batch(lm: Any, prompts: list[str], ks: list[int],
                      batch_size: int | None = None, *,
                      progress: Progress = None, should_stop: ShouldStop = None,
                      done: int = 0, total: int | None = None) -> list[tuple[np.ndarray, float]]:
    """Letter distributions and letter mass for many prompts, batched by similar length.

    batch_size: prompts per forward pass; None = devices.auto_batch_size for lm's device.
    Returns:
        Per prompt: (renormalised shares over its k letters in shown order, letter mass).
    """
    import torch

    ids = letter_token_ids(lm.tokenizer, max(ks))
    if not batch_size:
        batch_size = auto_batch_size(lm.model, getattr(lm, "device", "cpu"))
    lengths = [len(lm.tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
    ranked = sorted(range(len(prompts)), key=lambda i: lengths[i])  # little padding per batch
    out: list[tuple[np.ndarray, float] | None] = [None] * len(prompts)
    total = total if total is not None else len(prompts)
    with torch.inference_mode():
        for start in range(0, len(ranked), max(1, batch_size)):
            _check(should_stop)
            chunk = ranked[start:start + max(1, batch_size)]
            try:
                logprobs = _last_logprobs(lm.model, lm.tokenizer, [prompts[i] for i in chunk],
                                          _flat(ids))
            except torch.OutOfMemoryError as error:
                raise ModelError(f"Out of memory on {getattr(lm, 'placement', 'the device')} "
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


def sample_answers(lm: Any, prompt: str, options: Sequence[str], config: SimConfig
                   ) -> tuple[np.ndarray, int, int]:
    """N sampled respondents for one prompt (shown in original order).

    Returns:
        (shares over the options, n_samples, n_unparsed); uniform shares when none parsed.
    """
    import torch

    tokenizer = lm.tokenizer
    special = not getattr(tokenizer, "chat_template", None)
    encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=special)
    device = next(lm.model.parameters()).device
    encoded = {key: value.to(device) for key, value in encoded.items()}
    seed = sample_seed(config, prompt)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        generated = lm.model.generate(
            **encoded, do_sample=True, temperature=config.temperature,
            top_k=0, top_p=1.0, max_new_tokens=MAX_NEW_TOKENS,
            num_return_sequences=config.samples, pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:],
                                   skip_special_tokens=True)
    return tally_answers(texts, options)


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


@dataclass
class _Task:
    """One (question, slice) to simulate, with its prompts (one per option order)."""

    question: Any
    slice: dict[str, str]
    orders: list[tuple[int, ...]]
    prompts: list[str]
    key: str = ""


def style_warning(lm: Any, config: SimConfig, attributes=None) -> str | None:
    """A note when an adapter was trained with other prompt wording than this simulation's
    (its card records the style; an adapter reads prompts it never saw less reliably)."""
    trained = getattr(lm, "prompt_style", None)
    if not trained:
        return None
    # compare what reaches the prompt (population filled in), not the raw fields
    before = PromptStyle.from_dict(trained).signature(attributes)
    now = config.style.signature(attributes)
    if before == now:
        return None
    changed = sorted(k for k in now if before.get(k) != now.get(k))
    return (f"{lm.label} was trained with other prompt wording ({', '.join(changed)} "
            "differ): its simulated shares may be less reliable with this wording.")


def temperature_for(lm: Any, config: SimConfig) -> float:
    """Sampling temperature for this checkpoint: config.temperature, else the one its
    individual-level sweep chose in sampling mode (sim_core.evaluation.individual, saved in the adapter
    card), else DEFAULT_TEMPERATURE."""
    if config.temperature is not None:
        return float(config.temperature)
    own = getattr(lm, "sampling_temperature", None)
    return float(own) if own else DEFAULT_TEMPERATURE


def orders_for(lm: Any, config: "SimConfig") -> int:
    """Option orders averaged for this checkpoint: config.orders, or the checkpoint's own."""
    if config.mode != "first-token":
        return 1
    if config.orders:
        return max(1, int(config.orders))
    return int(getattr(lm, "inference_orders", None) or DEFAULT_ORDERS)


def _identity(lm: Any) -> dict:
    """What names the checkpoint in cache keys; an endpoint model gives its own."""
    own = getattr(lm, "cache_identity", None)
    if own is not None:
        return dict(own)
    return {"model": lm.fingerprint, "dtype": getattr(lm, "dtype", ""),
            "adapter": lm.adapter_fingerprint}


def _make_tasks(lm: Any, pairs: list[tuple[Any, dict]], config: SimConfig) -> list[_Task]:
    """Prompts and cache keys for every (question, slice)."""
    tasks = []
    for question, slice_ in pairs:
        k = len(question.options)
        if k < 2:
            raise SimError(f"Question '{question.id}' needs at least two options.")
        orders = option_orders(k, orders_for(lm, config))
        prompts = [build_prompt(lm.tokenizer, question, slice_, order=o, style=config.style)
                   for o in orders]
        params = {"orders": [list(o) for o in orders]} if config.mode == "first-token" else {
            "samples": config.samples, "temperature": config.temperature,
            "seed": config.seed, "max_new_tokens": MAX_NEW_TOKENS}
        key = cache_key(**_identity(lm), prompts=prompts, mode=config.mode,
                        options=list(question.options), **params, **device_key(lm))
        tasks.append(_Task(question, dict(slice_), orders, prompts, key))
    return tasks


def _result(task: _Task, value: dict, cached: bool) -> SimResult:
    """SimResult from a stored/computed value dict."""
    return SimResult(slice=dict(task.slice), options=tuple(task.question.options),
                     shares=np.asarray(value["shares"], dtype=np.float64),
                     letter_mass=float(value["letter_mass"]), prompt=task.prompts[0],
                     n_samples=int(value.get("n_samples", 0)),
                     n_unparsed=int(value.get("n_unparsed", 0)), cached=cached)


class _Local:
    """The in-process transformers path, with the interface an endpoint model offers."""

    def __init__(self, lm: Any):
        self.lm = lm

    def first_token(self, prompts: list[str], ks: list[int], config: SimConfig, *,
                    progress: Progress, should_stop: ShouldStop) -> list[tuple[np.ndarray, float]]:
        """first_token_batch over the prompts."""
        return first_token_batch(self.lm, prompts, ks, config.batch_size, progress=progress,
                                 should_stop=should_stop)

    def sample(self, prompts: list[str], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress, should_stop: ShouldStop) -> list[tuple[np.ndarray, int, int]]:
        """sample_answers for each prompt in turn."""
        out = []
        for done, (prompt, opts) in enumerate(zip(prompts, options), start=1):
            _check(should_stop)
            out.append(sample_answers(self.lm, prompt, opts, config))
            if progress is not None:
                progress(done, len(prompts))
        return out


def _backend(lm: Any) -> Any:
    """Who computes distributions: an endpoint model itself (it has first_token), else _Local."""
    return lm if callable(getattr(lm, "first_token", None)) else _Local(lm)


def _run_first_token(lm: Any, tasks: list[_Task], config: SimConfig, progress: Progress,
                     should_stop: ShouldStop) -> dict[str, dict]:
    """Letter distributions for the tasks, all prompts batched together; key -> value."""
    prompts = [p for task in tasks for p in task.prompts]
    ks = [len(task.question.options) for task in tasks for _ in task.prompts]
    outputs = _backend(lm).first_token(prompts, ks, config, progress=progress,
                                       should_stop=should_stop) if prompts else []
    values, at = {}, 0
    for task in tasks:
        shares, mass = debias(outputs[at:at + len(task.prompts)], task.orders)
        at += len(task.prompts)
        values[task.key] = {"shares": shares.tolist(), "letter_mass": mass}
    return values


def _run_sampling(lm: Any, tasks: list[_Task], config: SimConfig, progress: Progress,
                  should_stop: ShouldStop) -> dict[str, dict]:
    """Sampled respondents for each task; letter_mass = share of answers that parsed."""
    outputs = _backend(lm).sample([t.prompts[0] for t in tasks],
                                  [t.question.options for t in tasks], config,
                                  progress=progress, should_stop=should_stop)
    values = {}
    for task, (shares, n, unparsed) in zip(tasks, outputs):
        values[task.key] = {"shares": shares.tolist(), "letter_mass": (n - unparsed) / n,
                            "n_samples": n, "n_unparsed": unparsed}
    return values


def _simulate_pairs(lm: Any, pairs: list[tuple[Any, dict]], config: SimConfig | None,
                    progress: Progress, should_stop: ShouldStop,
                    calibration: Any = None) -> list[SimResult]:
    """Cache lookup, model calls for the misses (each distinct prompt set once), cache write,
    then the calibration (raw shares are what the cache holds)."""
    config = config or SimConfig()
    check_model_device(lm, config.device)
    config = replace(config, temperature=temperature_for(lm, config))
    calibration = calibration if calibration is not None else getattr(lm, "calibration", None)
    tasks = _make_tasks(lm, pairs, config)
    cache = open_cache() if config.use_cache else None
    stored = cached_values(cache, [t.key for t in tasks])
    missing = list({t.key: t for t in tasks if t.key not in stored}.values())
    run = _run_first_token if config.mode == "first-token" else _run_sampling
    computed = run(lm, missing, config, progress, should_stop) if missing else {}
    store_values(cache, computed)
    if not missing and progress is not None:
        progress(1, 1)
    results = [_result(t, stored[t.key], True) if t.key in stored else
               _result(t, computed[t.key], False) for t in tasks]
    return [calibrate_result(r, calibration, config) for r in results]


def simulate(lm: Any, question: Any, slices: list[dict[str, str]],
             config: SimConfig | None = None, *, calibration: Any = None,
             progress: Progress = None, should_stop: ShouldStop = None) -> list[SimResult]:
    """Simulated answer distribution of one question for each slice.

    Args:
        lm: a LoadedModel.
        question: sim_core.survey.schema.Question.
        slices: attribute -> group dicts ({} = whole population).
        config: SimConfig (default: first-token, each checkpoint's own orders, cache on,
            calibration on).
        calibration: a sim_core.evaluation.calibration_fit.Calibration (default: lm.calibration, an
            adapter card's); applied after debiasing when config.calibrate.
        progress: called with (done, total) prompts (or slices in sampling mode).
        should_stop: polled between batches; True raises Cancelled.
    Returns:
        One SimResult per slice, in the given order, shares in original option order
        (calibrated, with raw_shares and the prediction interval, when a calibration applies).
    """
    return _simulate_pairs(lm, [(question, s) for s in slices], config, progress, should_stop,
                           calibration)


def simulate_rows(lm: Any, rows: list[Any], config: SimConfig | None = None, *,
                  calibration: Any = None, progress: Progress = None,
                  should_stop: ShouldStop = None) -> list[SimResult]:
    """Simulate many (question, slice) rows at once (SurveyRow-like: .question, .slice).

    Returns:
        One SimResult per row, in row order; all prompts batched together; calibration as
        in simulate().
    """
    return _simulate_pairs(lm, [(row.question, row.slice) for row in rows], config,
                           progress, should_stop, calibration)
