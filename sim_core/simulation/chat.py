"""Simulation through a chat API (/v1/chat/completions): OpenAI, the OpenAI-compatible hosts
of open models, or a researcher's own vLLM / SGLang / Ollama server. No tokenizer is needed
here: the server applies the model's chat template to the messages
(sim_core.simulation.prompts.chat_messages: system = the population, user = persona,
question, lettered options and the instruction).

The three modes:
- first-token: one token at temperature 0 with `logprobs` and `top_logprobs` K; the two
  spellings of a letter (" A", "A") merged, renormalised over the option letters, their mass
  kept as a diagnostic; a top K with no option letter is an error naming the prompt. There
  is no "Answer:" prefill through a chat API.
- sample: n answers per prompt in one request (the `n` field), or n seeded requests where
  the server does not accept `n`; parsed like the local path's.
- verbalized: the percentages for every option, asked with a JSON-schema `response_format`
  where the server supports it, else read from "A: 45%" lines; an unreadable reply (or a
  refusal, or a content filter) is asked once more, then counted as unparsed.

Each provider quirk is one clear message: log-probabilities refused (naming the modes that
work), a cap on top_logprobs, `n` unsupported (handled by repeated requests), structured
output unsupported (handled by the lines format).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_core.base.errors import ModelError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.answers import (
    letter_distribution,
    parse_percentages,
    percent_schema,
    sample_seed,
    tally_answers,
)
from sim_core.simulation.config import MAX_NEW_TOKENS, SimConfig, verbalized_tokens
from sim_core.simulation.openai_client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    server_message,
    translate,
)
from sim_core.simulation.prompts import Prompt, PromptStyle, chat_messages, prompt_text
from sim_core.simulation.remote import (
    DEFAULT_TOP_LOGPROBS,
    RemoteModel,
    find_served,
    open_connection,
)

MESSAGE_OVERHEAD = 4        # tokens a chat template adds around each message (an estimate)


class _Unsupported(Exception):
    """The server refused a request field (400/422): which one, and its message."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what, self.message = what, message


def _refused_field(message: str) -> str | None:
    """Which request field a 400/422 message refuses: top_logprobs, logprobs, n,
    response_format (None: none of them)."""
    text = message.lower()
    for what, cues in (("top_logprobs", ("top_logprobs",)),
                       ("logprobs", ("logprob",)),
                       ("response_format", ("response_format", "json_schema", "guided",
                                            "structured output")),
                       ("n", ("'n'", '"n"', "n must", "`n`", "parameter n ", "n > 1",
                              "n>1"))):
        if any(cue in text for cue in cues):
            return what
    return None


def _reply_text(choice: Any) -> str | None:
    """The reply's text, or None for a refusal or a content filter (counted as unparsed)."""
    message = choice.message
    if getattr(message, "refusal", None) or choice.finish_reason == "content_filter":
        return None
    return message.content or ""


@dataclass
class ChatModel(RemoteModel):
    """A model behind a chat API (a ModelHandle). What the server turned out not to support
    is remembered (`n` for sampling, JSON-schema structured output) and not asked again."""

    accepts_n: bool = field(default=True, repr=False)
    structured: bool = field(default=True, repr=False)

    backend = "chat"

    def prompt(self, question: Any, slice_: dict[str, str], *,
               order: Sequence[int] | None = None, style: PromptStyle | None = None,
               mode: str = "first-token") -> Prompt:
        """The system and user messages (the server applies the chat template)."""
        return chat_messages(question, slice_, order=order, style=style, mode=mode)

    def prompt_tokens(self, prompt: Prompt) -> tuple[int, bool]:
        """An estimate: ~4 characters a token, plus the template's tokens per message."""
        tokens, _ = super().prompt_tokens(prompt)
        return tokens + MESSAGE_OVERHEAD * len(prompt), False

    def requests_for(self, mode: str, prompts: int, samples: int) -> int:
        """One request per prompt; n per prompt for sampling where `n` is not accepted."""
        return prompts * (samples if mode == "sample" and not self.accepts_n else 1)

    def first_token(self, prompts: list[Prompt], ks: list[int], config: SimConfig | None = None,
                    *, progress: Progress = None, should_stop: ShouldStop = None
                    ) -> list[tuple[np.ndarray, float]]:
        """Letter distribution and letter mass per prompt from the first token's top K."""
        def one(index: int) -> tuple[np.ndarray, float]:
            answer = self._ask(prompts[index], "first-token", max_tokens=1, temperature=0.0,
                               logprobs=True, top_logprobs=self.top_logprobs)
            try:
                return letter_distribution(_first_position(answer.choices[0]), ks[index])
            except ModelError as error:
                said = prompt_text(prompts[index])
                raise ModelError(f"{error} Prompt {index + 1} ends: ...{said[-160:]!r}") from None

        return self.each(one, len(prompts), progress, should_stop)

    def sample(self, prompts: list[Prompt], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress = None, should_stop: ShouldStop = None
               ) -> list[tuple[np.ndarray, int, int]]:
        """config.samples answers per prompt (temperature, per-prompt seed), parsed."""
        def one(index: int) -> tuple[np.ndarray, int, int]:
            return tally_answers(self._samples(prompts[index], config), options[index])

        return self.each(one, len(prompts), progress, should_stop)

    def verbalized(self, prompts: list[Prompt], ks: list[int], config: SimConfig, *,
                   progress: Progress = None, should_stop: ShouldStop = None
                   ) -> list[np.ndarray | None]:
        """The percentages per prompt; one seeded retry at temperature 1 when unreadable."""
        def one(index: int) -> np.ndarray | None:
            k = ks[index]
            for retry in (False, True):
                text = self._percentages(prompts[index], k, retry,
                                         sample_seed(config, prompts[index]))
                shares = parse_percentages(text, k)
                if shares is not None:
                    return shares
            return None

        return self.each(one, len(prompts), progress, should_stop)

    def _samples(self, prompt: Prompt, config: SimConfig) -> list[str | None]:
        """The n answers of one prompt: one request with `n`, else n seeded requests."""
        seed = sample_seed(config, prompt)
        params = {"max_tokens": MAX_NEW_TOKENS, "temperature": config.temperature,
                  "top_p": 1.0}
        if self.accepts_n:
            try:
                answer = self._ask(prompt, "sample", n=config.samples, seed=seed, **params)
                if len(answer.choices) == config.samples:
                    return [_reply_text(c) for c in answer.choices]
            except _Unsupported as error:
                if error.what != "n":
                    raise ModelError(f"The endpoint {self.endpoint} refused a sampling "
                                     f"request: {error.message}") from None
            self.accepts_n = False     # fewer answers than asked, or `n` refused
        return [_reply_text(self._ask(prompt, "sample", n=1, seed=seed + i, **params)
                            .choices[0]) for i in range(config.samples)]

    def _percentages(self, prompt: Prompt, k: int, retry: bool, seed: int) -> str | None:
        """One verbalized reply's text (None: a refusal or a content filter)."""
        params = {"max_tokens": verbalized_tokens(k), "temperature": 1.0 if retry else 0.0,
                  "seed": seed}
        if self.structured:
            try:
                return _reply_text(self._ask(prompt, "verbalized",
                                             response_format=percent_schema(k),
                                             **params).choices[0])
            except _Unsupported as error:
                if error.what != "response_format":
                    raise ModelError(f"The endpoint {self.endpoint} refused a verbalized "
                                     f"request: {error.message}") from None
                self.structured = False    # the "A: 45%" lines the prompt asks for
        return _reply_text(self._ask(prompt, "verbalized", **params).choices[0])

    def _ask(self, prompt: Prompt, mode: str, **params: Any) -> Any:
        """One chat request; a refused field raises _Unsupported (or its clear message)."""
        import openai

        def request(client: Any) -> Any:
            return client.chat.completions.create(
                model=self.request_model, messages=prompt, stream=False,
                extra_headers=self.connection.headers(), **params)

        try:
            return request(self.connection.client)
        except openai.NotFoundError:
            return self.connection.call(request, model=self.request_model)  # names the served
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            message = server_message(error)
            what = _refused_field(message)
            if what is None:
                raise translate(error, self.connection.where) from None
            if mode == "first-token":
                raise ModelError(_first_token_refusal(what, message, self.top_logprobs)) \
                    from None
            raise _Unsupported(what, message) from None
        except (openai.OpenAIError, ValueError) as error:
            raise translate(error, self.connection.where) from None


def _first_token_refusal(what: str, message: str, asked: int) -> str:
    """The message for a first-token request the server refused."""
    if what == "top_logprobs":
        cap = re.search(r"(?:<=|at most|maximum(?: of)?|less than or equal to|up to)\s*(\d+)",
                        message, re.IGNORECASE)
        allowed = f"at most {cap.group(1)}" if cap else "fewer"
        hint = f" --top-logprobs {cap.group(1)}" if cap else " a smaller --top-logprobs"
        return (f"The server allows {allowed} top log-probabilities, not {asked} (it said: "
                f"{message}); ask for fewer with{hint}.")
    return (f"The server refuses log-probabilities (it said: {message}): first-token mode "
            "needs them; --mode sample and --mode verbalized work with this server.")


def _first_position(choice: Any) -> dict[str, float]:
    """Token -> log-probability among the first generated token's top K (duplicate spellings
    of one token merged)."""
    content = choice.logprobs.content if choice.logprobs else None
    if not content:
        if _reply_text(choice) is None:
            raise ModelError("The server refused to answer or filtered the answer (content "
                             "filter): there are no letter probabilities to read.")
        raise ModelError("The server sent no log-probabilities (request fields logprobs and "
                         "top_logprobs): it does not offer them; --mode sample and --mode "
                         "verbalized work with this server.")
    top: dict[str, float] = {}
    for item in content[0].top_logprobs or []:
        value = float(item.logprob)
        if item.token in top and math.isfinite(value):
            high, low = max(top[item.token], value), min(top[item.token], value)
            value = high + math.log1p(math.exp(low - high))
        top[item.token] = value
    return top


def connect_chat(url: str, served_model: str, adapter: str | None = None, *,
                 api_key_env: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, concurrency: int = DEFAULT_CONCURRENCY,
                 top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> ChatModel:
    """A chat-API checkpoint, after checking that the server serves the model.

    Args:
        url: the API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000.
        served_model: the model's id as GET /v1/models lists it.
        adapter: a LoRA adapter the server serves by name, or None.
        api_key_env: environment variable holding the key (None: OPENAI_API_KEY when set,
            else none; a variable named here must be set), read at each request.
        timeout, retries, concurrency: per request, transient failures, requests in flight.
        top_logprobs: K in first-token mode (at most the server's cap: OpenAI's is 20).
    Returns:
        ChatModel (a ModelHandle) for sim_core.simulation.simulate.
    Raises:
        ModelError: unreachable, refused (the key variable named), or the model not served
            (the message lists the served ones).
    """
    connection = open_connection(url, api_key_env, timeout=timeout, retries=retries)
    served = find_served(connection, served_model, adapter)
    return ChatModel(connection=connection, served=served, top_logprobs=top_logprobs,
                     concurrency=concurrency)
