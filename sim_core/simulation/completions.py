"""Simulation through an OpenAI-compatible /v1/completions endpoint (vLLM, SGLang, TGI,
llama.cpp), with the official `openai` client (sim_core.simulation.openai_client).

The prompt is built here, with the local tokenizer's chat template (sim_core.simulation.prompts),
and sent as text, so the server scores exactly what the local path would (the server's count of
prompt tokens is checked against the local one). First-token mode asks for one token at
temperature 0 with the top-K log-probabilities and sums both spellings of each option letter
(" A" and "A"); letters outside the top K count as 0. Sampling mode asks for n completions with
a seed; verbalized mode for the percentage lines at temperature 0 (one seeded retry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_core.base.errors import ModelError, SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.answers import (
    letter_distribution,
    parse_percentages,
    sample_seed,
    tally_answers,
)
from sim_core.simulation.config import MAX_NEW_TOKENS, SimConfig, verbalized_tokens
from sim_core.simulation.handle import RenderedHere
from sim_core.simulation.models import resolve_model
from sim_core.simulation.openai_client import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT
from sim_core.simulation.remote import (
    DEFAULT_TOP_LOGPROBS,
    RemoteModel,
    find_served,
    open_connection,
)


@dataclass
class EndpointModel(RenderedHere, RemoteModel):
    """A checkpoint served by an OpenAI-compatible /v1/completions endpoint.

    Attributes (besides RemoteModel's):
        tokenizer: local tokenizer of the served model (chat template, letter tokens, counts).
        tokenizer_source: where the tokenizer came from (named in error messages).
        send_no_special: send add_special_tokens=false (the tokenizer would add a BOS that
            the chat template already holds; vLLM honours it).
    """

    tokenizer: Any = None
    tokenizer_source: str = ""
    send_no_special: bool = False

    backend = "completions"

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
            answer = self._complete(prompts[index], max_tokens=1, temperature=0.0,
                                    logprobs=self.top_logprobs)
            choice = _choices(answer, 1)[0]
            self._check_count(prompts[index], answer)
            try:
                return letter_distribution(_top_logprobs(choice), ks[index])
            except ModelError as error:
                raise ModelError(f"{error} Prompt {index + 1} ends: "
                                 f"...{prompts[index][-160:]!r}") from None

        return self.each(one, len(prompts), progress, should_stop)

    def sample(self, prompts: list[str], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress = None, should_stop: ShouldStop = None
               ) -> list[tuple[np.ndarray, int, int]]:
        """config.samples completions per prompt (temperature, seed), parsed to options."""
        def one(index: int) -> tuple[np.ndarray, int, int]:
            answer = self._complete(prompts[index], max_tokens=MAX_NEW_TOKENS, n=config.samples,
                                    temperature=config.temperature, top_p=1.0,
                                    seed=sample_seed(config, prompts[index]))
            choices = _choices(answer, config.samples)
            return tally_answers([c.text or "" for c in choices], options[index])

        return self.each(one, len(prompts), progress, should_stop)

    def verbalized(self, prompts: list[str], ks: list[int], config: SimConfig, *,
                   progress: Progress = None, should_stop: ShouldStop = None
                   ) -> list[np.ndarray | None]:
        """The percentages per prompt; one seeded retry at temperature 1 when unreadable."""
        def one(index: int) -> np.ndarray | None:
            limit = verbalized_tokens(ks[index])
            for retry in (False, True):
                answer = self._complete(prompts[index], max_tokens=limit,
                                        temperature=1.0 if retry else 0.0,
                                        seed=sample_seed(config, prompts[index]))
                shares = parse_percentages(_choices(answer, 1)[0].text, ks[index])
                if shares is not None:
                    return shares
            return None

        return self.each(one, len(prompts), progress, should_stop)

    def _complete(self, prompt: str, **params: Any) -> Any:
        """One /v1/completions request."""
        extra = {"add_special_tokens": False} if self.send_no_special else None
        return self.connection.call(lambda client: client.completions.create(
            model=self.request_model, prompt=prompt, stream=False, extra_body=extra,
            extra_headers=self.connection.headers(), **params),
            model=self.request_model)

    def _check_count(self, prompt: str, answer: Any) -> None:
        """Refuse when the server counted other prompt tokens than the local tokenizer."""
        served = getattr(answer.usage, "prompt_tokens", None) if answer.usage else None
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


def _choices(answer: Any, n: int) -> list[Any]:
    """The answer's n choices; ModelError when the server returned another number."""
    choices = list(answer.choices or [])
    if len(choices) != n:
        raise ModelError(f"The endpoint returned {len(choices)} completions where {n} were "
                         "asked for (request field n): it does not support several samples "
                         "per request.")
    return choices


def _top_logprobs(choice: Any) -> dict[str, float]:
    """Token -> log-probability at the first generated position (legacy completions format)."""
    top = getattr(choice.logprobs, "top_logprobs", None) if choice.logprobs else None
    if not top or not isinstance(top[0], dict):
        raise ModelError("The endpoint returned no top log-probabilities (request field "
                         "logprobs): first-token mode needs them; use --mode sample or "
                         "--mode verbalized with this server.")
    return top[0]


def connect(url: str, served_model: str, adapter: str | None = None, *,
            tokenizer: str | None = None, api_key_env: str | None = None,
            timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
            concurrency: int = DEFAULT_CONCURRENCY,
            top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> EndpointModel:
    """A completions-endpoint checkpoint, after checking that the server serves it.

    Args:
        url: the server, e.g. http://127.0.0.1:8000 or …/v1.
        served_model: the base model's id as GET /v1/models lists it (an adapter's id works
            too: its base is then the adapter's parent).
        adapter: a LoRA adapter served by name (vLLM: --lora-modules NAME=PATH), or None.
        tokenizer: local folder or model name (sim_core.simulation.models.resolve_model;
            "default" = the embedded model) with the served model's tokenizer; default:
            served_model.
        api_key_env: environment variable holding the API key (None: OPENAI_API_KEY when set,
            else no key is sent; a variable named here must be set).
        timeout: seconds to wait for one answer; retries: extra attempts on transient
            failures (the server's Retry-After honoured).
        concurrency: requests in flight at once; top_logprobs: K per prompt.
    Returns:
        EndpointModel (a ModelHandle) for sim_core.simulation.simulate.
    Raises:
        ModelError: the endpoint is down, refuses, or serves neither the model nor the adapter.
    """
    connection = open_connection(url, api_key_env, timeout=timeout, retries=retries)
    served = find_served(connection, served_model, adapter)
    tok, source = load_tokenizer(tokenizer or served.name)
    return EndpointModel(connection=connection, served=served, top_logprobs=top_logprobs,
                         concurrency=concurrency, tokenizer=tok, tokenizer_source=source,
                         send_no_special=_adds_special(tok))


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
