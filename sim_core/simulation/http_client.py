"""JSON over HTTP to an OpenAI-compatible server: retries with backoff, one clear message each.

The API key is read from the environment variable the user names, at each request: it is
never kept on an object, written to the cache or put in a message.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from sim_core.base.errors import ModelError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 4
# 429 (rate limit) and these 5xx mean "try again later"; any other status is final.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_DELAY = 30.0
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


def _error_text(response: requests.Response) -> str:
    """The server's own error message (OpenAI, vLLM or plain text body), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:_MESSAGE_CHARS]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            body = error.get("message") or error.get("detail") or error
        else:
            body = error
    return str(body)[:_MESSAGE_CHARS]


@dataclass
class HttpClient:
    """GET/POST JSON under an API root (…/v1), safe to share between threads.

    Attributes:
        base: API root ending in /v1 (api_base).
        api_key_env: name of the environment variable holding the key (unset: no key sent).
        timeout: seconds to wait for one answer.
        retries: extra attempts after a transient failure (connection reset, 429, 5xx).
        backoff: first wait in seconds; doubles per attempt (capped at MAX_DELAY); a
            Retry-After header wins when the server sends one.
        sleep: how to wait (tests pass a recorder).
    """

    base: str
    api_key_env: str = DEFAULT_KEY_ENV
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def get(self, path: str) -> Any:
        """GET base + path, decoded JSON."""
        return self._request("GET", path, None)

    def post(self, path: str, body: dict) -> Any:
        """POST JSON body to base + path, decoded JSON."""
        return self._request("POST", path, body)

    def _session(self) -> requests.Session:
        """One keep-alive session per thread (requests sessions are not shared safely)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _headers(self) -> dict[str, str]:
        """Content type, plus the bearer key read from the environment just now."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env or "", "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        """Exponential backoff, or the server's Retry-After (seconds) when it gives one."""
        if response is not None:
            try:
                return min(float(response.headers.get("Retry-After", "")), 2 * MAX_DELAY)
            except ValueError:
                pass
        return min(self.backoff * 2 ** attempt, MAX_DELAY)

    def _request(self, method: str, path: str, body: dict | None) -> Any:
        """One call with retries; ModelError with the reason when it finally fails."""
        url = self.base + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._session().request(method, url, json=body,
                                                   headers=self._headers(), timeout=self.timeout)
            except requests.Timeout as error:
                raise ModelError(f"The endpoint {self.base} did not answer within "
                                 f"{self.timeout:g} s ({type(error).__name__}): it is busy or "
                                 "stuck; try again, or allow more time (--timeout).") from error
            except requests.ConnectionError as error:
                if last:
                    raise ModelError(f"Cannot reach the endpoint {self.base} after "
                                     f"{attempt + 1} attempts ({_reason(error)}): is the "
                                     "server running at that address?") from error
                self.sleep(self._delay(attempt, None))
                continue
            if response.status_code in TRANSIENT_STATUS and not last:
                self.sleep(self._delay(attempt, response))
                continue
            return self._decode(response, url, attempt)
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _decode(self, response: requests.Response, url: str, attempt: int) -> Any:
        """JSON body of a 2xx answer; ModelError naming the status and the server's reason."""
        status = response.status_code
        if status in (401, 403):
            raise ModelError(f"The endpoint {self.base} refused the request (HTTP {status}): "
                             f"check the API key in the environment variable "
                             f"{self.api_key_env or '(none named)'}.")
        if status >= 400:
            tries = f" after {attempt + 1} attempts" if status in TRANSIENT_STATUS else ""
            raise ModelError(f"The endpoint answered HTTP {status}{tries} to {url}: "
                             f"{_error_text(response)}")
        try:
            return response.json()
        except ValueError as error:
            raise ModelError(f"The endpoint's answer to {url} is not JSON: is {self.base} an "
                             "OpenAI-compatible server?") from error


def _reason(error: Exception) -> str:
    """Short cause of a connection error ('connection refused', 'connection reset', ...)."""
    text = str(error).lower()
    for cue, reason in (("refused", "connection refused"), ("reset", "connection reset"),
                        ("name or service", "unknown host"), ("aborted", "connection aborted")):
        if cue in text:
            return reason
    return type(error).__name__
