"""Simulation through an OpenAI-compatible /v1/completions endpoint (vLLM, SGLang, TGI, llama.cpp).

The prompt is built here, with the local tokenizer's chat template (sim_core.simulation.prompts), and
sent as text, so the server scores exactly what the local path would. First-token mode asks
for one token at temperature 0 with the top-K log-probabilities and sums both spellings of
each option letter (" A" and "A"); letters outside the top K count as 0. Sampling mode asks
for n completions with a seed. Requests run concurrently in a bounded pool; sim_core.simulation.simulate
does the prompts, option orders, debiasing and caching, exactly as for a local model.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

from sim_core.base.errors import Cancelled, ModelError, SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.base.options import Choice, check, registry, setting
from sim_core.simulation.adapters import resolve_adapter, simulator_settings
from sim_core.simulation.answers import letter_distribution, sample_seed, tally_answers
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.config import MAX_NEW_TOKENS, SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.http_client import DEFAULT_KEY_ENV, DEFAULT_TIMEOUT, HttpClient, api_base
from sim_core.simulation.models import resolve_model
from sim_core.simulation.prompts import PromptStyle, build_prompt

BACKENDS = registry(
    Choice("local", "Local", "transformers in this process"),
    Choice("openai", "Endpoint", "an OpenAI-compatible /v1/completions server (vLLM, SGLang, "
                                 "TGI, llama.cpp): prompts are built here, the model runs there"),
)
DEFAULT_CONCURRENCY = 8
# vLLM's default cap (--max-logprobs 20); OpenAI's own API allows 5.
DEFAULT_TOP_LOGPROBS = 20
_POLL_SECONDS = 0.2


@dataclass
class BackendConfig:
    """Where the model runs and, for an endpoint, how to reach it (fields document themselves)."""

    backend: str = setting("local", choices=BACKENDS, label="Model runs",
                           help="local: transformers in this process; openai: an "
                                "OpenAI-compatible /v1/completions endpoint")
    endpoint: str | None = setting(None, none="none (local backend)", label="Endpoint URL",
                                   help="the server's URL, e.g. http://127.0.0.1:8000/v1")
    served_model: str | None = setting(
        None, none="none (local backend)", label="Served model",
        help="the model's id on the server, as GET /v1/models lists it (an adapter served by "
             "name is picked as the adapter)")
    api_key_env: str = setting(DEFAULT_KEY_ENV, label="API key variable",
                               help="environment variable holding the API key (read at each "
                                    "request, never stored; unset: no key is sent)")
    tokenizer: str | None = setting(
        None, none="the served model's id", label="Tokenizer",
        help="local folder or hub id with the served model's tokenizer, whose chat template "
             "builds the prompts ('default': the embedded SmolLM2-135M-Instruct)")
    concurrency: int = setting(DEFAULT_CONCURRENCY, min=1, max=256, label="Requests in flight",
                               help="requests sent to the endpoint at once")
    timeout: float = setting(DEFAULT_TIMEOUT, above=0, max=3600, label="Timeout (s)",
                             help="seconds to wait for one answer before giving up")
    retries: int = setting(4, min=0, max=10, label="Retries",
                           help="extra attempts after a connection reset, 429 or 5xx, waiting "
                                "0.5 s, 1 s, 2 s, ... (or the server's Retry-After)")
    top_logprobs: int = setting(
        DEFAULT_TOP_LOGPROBS, min=1, max=100, label="Top log-probabilities",
        help="top tokens asked for per prompt in first-token mode; a letter outside them "
             "counts 0 (vLLM's default cap is 20, OpenAI's 5)")

    def __post_init__(self) -> None:
        check(self)
        named = [flag for flag, value in (("endpoint", self.endpoint),
                                          ("served model", self.served_model),
                                          ("tokenizer", self.tokenizer)) if value]
        if self.backend == "local" and named:
            raise SimError(f"The {', '.join(named)} setting(s) are for the endpoint backend "
                           "(--backend openai).")
        if self.backend == "openai" and not (self.endpoint and self.served_model):
            raise SimError("The endpoint backend needs the endpoint's URL and the served "
                           "model's name (--endpoint URL --served-model NAME).")

    def connect(self, adapter: str | None = None) -> "EndpointModel":
        """The endpoint model for this configuration (see connect())."""
        return connect(self.endpoint or "", self.served_model or "", adapter,
                       tokenizer=self.tokenizer, api_key_env=self.api_key_env,
                       timeout=self.timeout, retries=self.retries,
                       concurrency=self.concurrency, top_logprobs=self.top_logprobs)


@dataclass
class ServedModel:
    """One entry of GET /v1/models: a base model, or a LoRA adapter (parent = its base)."""

    id: str
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


@dataclass
class EndpointModel(ModelHandle):
    """A checkpoint served by an OpenAI-compatible /v1/completions endpoint.

    Attributes:
        client: HTTP client (API root, key variable name, timeout, retries).
        name: the served base model's id.
        tokenizer: local tokenizer of that model (chat template, letter tokens, counts).
        tokenizer_source: where the tokenizer came from (named in error messages).
        adapter: the served LoRA adapter's name (sent as `model`), or None.
        root: the base model's root as the server reports it (its path there).
        adapter_root: the adapter's root (its path on the server).
        adapter_path: where the adapter's card was found here (its served path when this
            machine has it, else the registry entry of the same name), or None.
        inference_orders: option orders from the adapter's card (None: the default).
        prompt_style: the wording the adapter was trained with (its card), for compare's notes.
        sampling_temperature: the temperature its card's individual-level sweep chose.
        calibration: the adapter card's calibration (a base model's comes from its records).
        top_logprobs: K, the number of top log-probabilities asked for.
        concurrency: requests in flight at once.
        send_no_special: send add_special_tokens=false (the tokenizer would add a BOS that
            the chat template already holds; vLLM honours it).
    """

    client: HttpClient
    name: str
    tokenizer: Any
    tokenizer_source: str = ""
    adapter: str | None = None
    root: str | None = None
    adapter_root: str | None = None
    adapter_path: Path | None = None
    inference_orders: int | None = None
    prompt_style: dict | None = None
    sampling_temperature: float | None = None
    calibration: Calibration | None = None
    top_logprobs: int = DEFAULT_TOP_LOGPROBS
    concurrency: int = DEFAULT_CONCURRENCY
    send_no_special: bool = False

    @property
    def endpoint(self) -> str:
        """The API root (…/v1)."""
        return self.client.base

    @property
    def request_model(self) -> str:
        """The `model` field of each request: the adapter's name when one is picked."""
        return self.adapter or self.name

    @property
    def label(self) -> str:
        """Display name: base (+ adapter) @ host:port."""
        base = Path(self.name).name or self.name
        where = urlsplit(self.endpoint).netloc
        return f"{base}{f' + {self.adapter}' if self.adapter else ''} @ {where}"

    @property
    def fingerprint(self) -> str:
        """What the reports show as the base model's identity."""
        return f"{self.endpoint}#{self.name}"

    @property
    def adapter_fingerprint(self) -> str | None:
        """The adapter's served name and path."""
        return f"{self.adapter}@{self.adapter_root}" if self.adapter else None

    @property
    def runtime(self) -> dict:
        """The endpoint it is served from."""
        return {"endpoint": self.endpoint}

    @property
    def cache_identity(self) -> dict:
        """Cache-key parts: endpoint, served model and adapter (with their paths), K."""
        return {"backend": "openai", "endpoint": self.endpoint, "model": self.name,
                "model_root": self.root, "adapter": self.adapter,
                "adapter_root": self.adapter_root, "top_logprobs": self.top_logprobs}

    def prompt(self, question: Any, slice_: dict[str, str], *,
               order: Sequence[int] | None = None, style: PromptStyle | None = None) -> str:
        """The prompt built here with the served model's chat template (local tokenizer)."""
        return build_prompt(self.tokenizer, question, slice_, order=order, style=style)

    def first_token(self, prompts: list[str], ks: list[int], config: SimConfig | None = None, *,
                    progress: Progress = None, should_stop: ShouldStop = None
                    ) -> list[tuple[np.ndarray, float]]:
        """Letter distribution and letter mass per prompt, requests in parallel.

        Returns:
            Per prompt: (shares over its k letters in shown order, summing to 1; letter mass).
        Raises:
            ModelError: the endpoint failed, or a prompt's top K holds no option letter.
        """
        def one(index: int) -> tuple[np.ndarray, float]:
            body = self._body(prompts[index], max_tokens=1, temperature=0.0,
                              logprobs=self.top_logprobs)
            answer = self.client.post("/completions", body)
            choice = _choices(answer, 1)[0]
            self._check_count(prompts[index], answer)
            try:
                return letter_distribution(_top_logprobs(choice), ks[index])
            except ModelError as error:
                raise ModelError(f"{error} Prompt {index + 1} ends: "
                                 f"...{prompts[index][-160:]!r}") from None

        return run_pool(one, len(prompts), self.concurrency, progress, should_stop)

    def sample(self, prompts: list[str], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress = None, should_stop: ShouldStop = None
               ) -> list[tuple[np.ndarray, int, int]]:
        """config.samples completions per prompt (temperature, seed), parsed to options.

        Returns:
            Per prompt: (shares over the options, n_samples, n_unparsed).
        """
        def one(index: int) -> tuple[np.ndarray, int, int]:
            body = self._body(prompts[index], max_tokens=MAX_NEW_TOKENS, n=config.samples,
                              temperature=config.temperature, top_p=1.0,
                              seed=sample_seed(config, prompts[index]))
            answer = self.client.post("/completions", body)
            choices = _choices(answer, config.samples)
            return tally_answers([str(c.get("text") or "") for c in choices], options[index])

        return run_pool(one, len(prompts), self.concurrency, progress, should_stop)

    def _body(self, prompt: str, **params: Any) -> dict:
        """A /v1/completions request body for one prompt."""
        body = {"model": self.request_model, "prompt": prompt, "stream": False, **params}
        if self.send_no_special:
            body["add_special_tokens"] = False
        return body

    def _check_count(self, prompt: str, answer: dict) -> None:
        """Refuse when the server counted other prompt tokens than the local tokenizer."""
        usage = answer.get("usage") if isinstance(answer, dict) else None
        served = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not isinstance(served, int):
            return  # the server does not report usage: nothing to check
        special = not getattr(self.tokenizer, "chat_template", None)  # as the local path does
        local = len(self.tokenizer.encode(prompt, add_special_tokens=special))
        if served != local:
            raise ModelError(
                f"The endpoint read the prompt as {served} tokens, the local tokenizer "
                f"({self.tokenizer_source}) as {local}: the tokenizer does not belong to "
                f"'{self.name}' (give the served model's folder with --tokenizer), or the "
                "server adds tokens of its own.")


def _choices(answer: Any, n: int) -> list[dict]:
    """The answer's n choices; ModelError when the server returned another number."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ModelError("The endpoint's answer has no 'choices': is it an OpenAI-compatible "
                         "/v1/completions endpoint?")
    if len(choices) != n:
        raise ModelError(f"The endpoint returned {len(choices)} completions where {n} were "
                         "asked for (request field n): it does not support several samples "
                         "per request.")
    return choices


def _top_logprobs(choice: dict) -> dict[str, float]:
    """Token -> log-probability at the first generated position (legacy completions format)."""
    logprobs = choice.get("logprobs")
    top = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(top, list) or not top or not isinstance(top[0], dict):
        raise ModelError("The endpoint returned no top log-probabilities (request field "
                         "logprobs): first-token mode needs them; use sampling mode with this "
                         "server.")
    return top[0]


def run_pool(task: Callable[[int], Any], count: int, concurrency: int, progress: Progress,
             should_stop: ShouldStop) -> list[Any]:
    """task(0..count-1) with at most `concurrency` in flight; results in index order.

    The first failure cancels what has not started and is raised; should_stop is polled
    while waiting and raises Cancelled.
    """
    results: list[Any] = [None] * count
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, count or 1)),
                              thread_name_prefix="endpoint")
    try:
        pending: dict[Future, int] = {pool.submit(task, i): i for i in range(count)}
        done_count = 0
        while pending:
            if should_stop is not None and should_stop():
                raise Cancelled("Simulation stopped.")
            finished, _ = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                results[pending.pop(future)] = future.result()  # re-raises the task's error
                done_count += 1
            if finished and progress is not None:
                progress(done_count, count)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def list_served(url: str, api_key_env: str = DEFAULT_KEY_ENV,
                timeout: float = DEFAULT_TIMEOUT) -> list[ServedModel]:
    """What the endpoint serves (GET /v1/models): base models and LoRA adapters.

    Raises:
        ModelError: unreachable, refused, or not an OpenAI-compatible answer.
    """
    client = HttpClient(api_base(url), api_key_env, timeout=timeout, retries=1)
    return _served(client)


def _served(client: HttpClient) -> list[ServedModel]:
    """Parsed GET /v1/models."""
    answer = client.get("/models")
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ModelError(f"{client.base}/models did not list models: is this an "
                         "OpenAI-compatible endpoint?")
    return [ServedModel(id=str(m["id"]), root=m.get("root"), parent=m.get("parent"),
                        max_model_len=m.get("max_model_len"))
            for m in data if isinstance(m, dict) and m.get("id")]


def connect(url: str, served_model: str, adapter: str | None = None, *,
            tokenizer: str | None = None, api_key_env: str = DEFAULT_KEY_ENV,
            timeout: float = DEFAULT_TIMEOUT, retries: int = 4,
            concurrency: int = DEFAULT_CONCURRENCY,
            top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> EndpointModel:
    """An endpoint checkpoint, after checking that the server serves it.

    Args:
        url: the server, e.g. http://127.0.0.1:8000 or …/v1.
        served_model: the base model's id as GET /v1/models lists it (an adapter's id works
            too: its base is then the adapter's parent).
        adapter: a LoRA adapter served by name (vLLM: --lora-modules NAME=PATH), or None.
        tokenizer: local folder or model name (sim_core.simulation.models.resolve_model; "default" =
            the embedded model) with the served model's tokenizer; default: served_model.
        api_key_env: environment variable holding the API key (unset: no key is sent).
        timeout: seconds to wait for one answer.
        retries: extra attempts on transient failures.
        concurrency: requests in flight at once.
        top_logprobs: K, top log-probabilities asked for per prompt.
    Returns:
        EndpointModel for sim_core.simulation.simulate.
    Raises:
        ModelError: the endpoint is down, refuses, or serves neither the model nor the adapter.
    """
    if concurrency < 1 or top_logprobs < 1:
        raise ModelError("The endpoint's concurrency and top log-probabilities must be >= 1.")
    client = HttpClient(api_base(url), api_key_env, timeout=timeout, retries=retries)
    served = {m.id: m for m in _served(client)}
    base, lora = _pick(served, str(served_model or "").strip(), adapter, client.base)
    tok, source = load_tokenizer(tokenizer or base.id)
    path = _adapter_folder(lora) if lora else None
    card = simulator_settings(path) if path is not None else {}
    return EndpointModel(
        client=client, name=base.id, tokenizer=tok, tokenizer_source=source,
        adapter=lora.id if lora else None, root=base.root,
        adapter_root=lora.root if lora else None, adapter_path=path,
        top_logprobs=top_logprobs, concurrency=concurrency,
        send_no_special=_adds_special(tok), **card)


def _pick(served: dict[str, ServedModel], name: str, adapter: str | None, where: str
          ) -> tuple[ServedModel, ServedModel | None]:
    """(base, adapter) entries for the names given; ModelError naming what is served."""
    bases = [m.id for m in served.values() if not m.parent]
    adapters = [m.id for m in served.values() if m.parent]
    listing = (f"it serves {', '.join(bases) or 'no base model'}"
               + (f" and the adapters {', '.join(adapters)}" if adapters else ""))
    if not name:
        raise ModelError(f"Name the served model (--served-model); {where} {listing}.")
    if name not in served:
        raise ModelError(f"The endpoint {where} does not serve '{name}': {listing}.")
    base = served[name]
    if base.parent and not adapter:  # an adapter named as the model: its parent is the base
        adapter, base = base.id, served.get(base.parent) or ServedModel(id=base.parent)
    if not adapter:
        return base, None
    lora = served.get(adapter)
    if lora is None:
        raise ModelError(f"The endpoint {where} does not serve the adapter '{adapter}': "
                         f"{listing}. Serve it by name (vLLM: --enable-lora --lora-modules "
                         f"{adapter}=PATH).")
    if lora.parent and lora.parent != base.id:
        raise ModelError(f"The served adapter '{adapter}' sits on '{lora.parent}', not on "
                         f"'{base.id}'.")
    return base, lora


def load_tokenizer(name: str) -> tuple[Any, str]:
    """(tokenizer, where from) for a served model: a local folder, a workspace model, a cached
    hub id, or "default" (the embedded model's converted folder)."""
    from transformers import AutoTokenizer  # heavy: loaded when an endpoint is first used

    try:
        folder = resolve_model(name)
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=False), str(folder)
    except (SimError, OSError, ValueError) as error:
        raise ModelError(f"No local tokenizer for the served model '{name}' ({error}). Give "
                         "--tokenizer: the served model's folder or hub id, or 'default' for "
                         "the embedded SmolLM2-135M-Instruct.") from error


def _adds_special(tokenizer: Any) -> bool:
    """Whether the server must be told not to add special tokens to a chat-template prompt."""
    if not getattr(tokenizer, "chat_template", None):
        return False  # plain prompts: the local path adds them too
    probe = "Answer:"
    return tokenizer.encode(probe, add_special_tokens=True) != \
        tokenizer.encode(probe, add_special_tokens=False)


def _adapter_folder(lora: ServedModel) -> Path | None:
    """The adapter's folder here: its served path when this machine has it, else the registry
    entry of the same name (finetune's adapters are served under their registry names)."""
    for where in (lora.root, lora.id):
        if not where:
            continue
        try:
            return resolve_adapter(where)
        except SimError:
            continue
    return None
