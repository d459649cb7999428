"""Talking to an OpenAI-compatible server (OpenAI, hosted open models, vLLM, SGLang, Ollama,
llama.cpp) through the official `openai` client: its typed errors, retries with backoff (the
server's Retry-After honoured) and timeouts; here every failure becomes one clear message.

The API key is read from the environment variable the user names, at each request (the
client calls `key_reader` before every request): it is never written to the cache, a message,
a report or a saved setting. What a server serves (GET /v1/models) and the bounded pool of
concurrent requests are shared by the completions and chat backends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sim_core.base.errors import Cancelled, ModelError
from sim_core.base.labels import Progress, ShouldStop

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 4
DEFAULT_CONCURRENCY = 8
_POLL_SECONDS = 0.2
_MESSAGE_CHARS = 300


def api_base(url: str) -> str:
    """The API root ending in /v1: 'http://host:8000' and 'http://host:8000/v1/' both work.

    Raises:
        ModelError: not an http(s) URL with a host.
    """
    text = str(url or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"Endpoint '{url}' is not a URL like http://127.0.0.1:8000/v1.")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ModelError(f"Endpoint '{url}': give the server's address only (no user, query "
                         "or fragment; the API key comes from an environment variable).")
    return text if text.endswith("/v1") else f"{text}/v1"


def check_key_variable(name: str | None) -> str:
    """The variable holding the API key: a name the user gave must be set (else nothing would
    authenticate); None means OPENAI_API_KEY if set, else no key (a local server)."""
    if name is None:
        return DEFAULT_KEY_ENV
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ModelError(f"'{name}' is not an environment variable name (--api-key-env).")
    if not os.environ.get(name):
        raise ModelError(f"The API key variable {name} (--api-key-env) is not set in this "
                         "environment: set it, or leave --api-key-env out for a server that "
                         "needs no key. Nothing was sent.")
    return name


def key_reader(name: str) -> Callable[[], str]:
    """Reads the key from the environment when called (the client calls it per request)."""
    return lambda: os.environ.get(name, "")


def auth_headers(key_env: str) -> dict:
    """Per-request headers: none when the key variable is set (the client sends the key it
    reads), else the Authorization header left out (a local server needs no key)."""
    import openai

    return {} if os.environ.get(key_env) else {"Authorization": openai.Omit()}


def make_client(base: str, key_env: str, *, timeout: float = DEFAULT_TIMEOUT,
                retries: int = DEFAULT_RETRIES) -> Any:
    """An openai.OpenAI client for the API root `base` (openai imported here: light module)."""
    import openai

    return openai.OpenAI(base_url=base, api_key=key_reader(key_env), timeout=timeout,
                         max_retries=retries)


@dataclass(frozen=True)
class Where:
    """What an error message names: the server, the key variable, the attempts made."""

    base: str
    key_env: str
    timeout: float
    retries: int


def server_message(error: Any) -> str:
    """The server's own reason in an API error (OpenAI, vLLM or plain text), shortened."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict):
            body = body.get("message") or body.get("detail") or body
    text = str(body if body not in (None, "") else getattr(error, "message", error))
    return " ".join(text.split())[:_MESSAGE_CHARS]


def translate(error: Exception, where: Where) -> ModelError:
    """One clear message for a failed call (the key's value never appears)."""
    import openai

    base = where.base
    if isinstance(error, openai.APITimeoutError):
        return ModelError(f"The endpoint {base} did not answer within {where.timeout:g} s "
                          f"({where.retries + 1} attempts): it is busy or stuck; try again, or "
                          "allow more time (--timeout).")
    if isinstance(error, openai.APIConnectionError):
        return ModelError(f"Cannot reach the endpoint {base} after {where.retries + 1} "
                          f"attempts ({_reason(error)}): is the server running at that address?")
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ModelError(f"The endpoint {base} refused the request (HTTP {error.status_code}): "
                          f"check the API key in the environment variable {where.key_env}.")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        tries = f" after {where.retries + 1} attempts" if status == 429 or status >= 500 else ""
        return ModelError(f"The endpoint answered HTTP {status}{tries} to {base}: "
                          f"{server_message(error)}")
    if isinstance(error, (openai.APIResponseValidationError, ValueError)):
        return ModelError(f"The endpoint {base} sent an answer that is not OpenAI-compatible "
                          f"JSON ({type(error).__name__}): is it an OpenAI-compatible server?")
    return ModelError(f"The request to {base} failed: {type(error).__name__}: {error}")


def _reason(error: Exception) -> str:
    """Short cause of a connection error ('connection refused', 'connection reset', ...)."""
    text = f"{error} {error.__cause__ or ''}".lower()
    for cue, reason in (("refused", "connection refused"), ("reset", "connection reset"),
                        ("name or service", "unknown host"), ("resolve", "unknown host")):
        if cue in text:
            return reason
    return type(error.__cause__ or error).__name__


def call(where: Where, request: Callable[[], Any]) -> Any:
    """Run one client call; any failure becomes ModelError (translate)."""
    import openai

    try:
        return request()
    except (openai.OpenAIError, ValueError) as error:
        raise translate(error, where) from None


@dataclass
class ServedModel:
    """One entry of GET /v1/models: a base model, or a LoRA adapter (parent = its base)."""

    id: str
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


def served_models(client: Any, where: Where) -> list[ServedModel]:
    """Parsed GET /v1/models (extra fields such as vLLM's root/parent read when present)."""
    page = call(where, lambda: client.models.list(extra_headers=auth_headers(where.key_env)))
    out = []
    for model in getattr(page, "data", None) or []:
        extra = model.model_dump() if hasattr(model, "model_dump") else dict(model)
        if extra.get("id"):
            out.append(ServedModel(id=str(extra["id"]), root=extra.get("root"),
                                   parent=extra.get("parent"),
                                   max_model_len=extra.get("max_model_len")))
    return out


def list_served(url: str, api_key_env: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                retries: int = 1) -> list[ServedModel]:
    """What the endpoint serves (GET /v1/models): base models and LoRA adapters.

    Raises:
        ModelError: unreachable, refused, or not an OpenAI-compatible answer.
    """
    base, key_env = api_base(url), check_key_variable(api_key_env)
    where = Where(base, key_env, timeout, retries)
    return served_models(make_client(base, key_env, timeout=timeout, retries=retries), where)


def listing(served: list[ServedModel]) -> str:
    """What a server serves, in words (for messages)."""
    bases = [m.id for m in served if not m.parent]
    adapters = [m.id for m in served if m.parent]
    return (f"it serves {', '.join(bases) or 'no base model'}"
            + (f" and the adapters {', '.join(adapters)}" if adapters else ""))


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
