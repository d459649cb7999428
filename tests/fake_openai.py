"""A small OpenAI-compatible server in a thread, for the endpoint backend's logic and failure tests.

It answers GET /v1/models and POST /v1/completions from a scripted state: the models it lists,
the top log-probabilities it returns, statuses to fail with first, a delay, and it records
every request (body, headers) and the most requests it had in flight at once.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

# Probabilities behind the default top log-probabilities: A = 0.5 + 0.1 (both spellings),
# B = 0.2, C = 0.1, other tokens 0.05.
DEFAULT_TOP = {" A": math.log(0.5), "A": math.log(0.1), " B": math.log(0.2), " C": math.log(0.1),
               "\n": math.log(0.05)}


@dataclass
class FakeState:
    """What the fake server answers, and what it saw."""

    models: list[dict] = field(default_factory=lambda: [{"id": "base-model", "root": "/srv/base"}])
    top: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOP))
    fail: list[tuple[int, dict]] = field(default_factory=list)  # (status, headers) to answer first
    delay: float = 0.0
    usage: Callable[[str], int | None] = lambda prompt: None
    texts: Callable[[dict], list[str]] | None = None   # sampling: body -> completion texts
    requests: list[dict] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: FakeState) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `state`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _scripted_failure(self) -> bool:
            with state.lock:
                failure = state.fail.pop(0) if state.fail else None
            if failure is None:
                return False
            status, headers = failure
            self._send(status, {"error": {"message": f"scripted {status}"}}, headers)
            return True

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self._scripted_failure():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": state.models})
            else:
                self._send(404, {"error": {"message": "no such route"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with state.lock:
                state.requests.append({"body": body, "headers": dict(self.headers)})
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.delay)
                if self._scripted_failure():
                    return
                self._send(200, self._completion(body))
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _completion(self, body: dict) -> dict:
            if body.get("logprobs"):
                choices = [{"index": 0, "text": " A", "logprobs": {
                    "tokens": [" A"], "token_logprobs": [state.top.get(" A", -1.0)],
                    "top_logprobs": [dict(state.top)], "text_offset": [0]}}]
            else:
                texts = state.texts(body) if state.texts else [" A"] * body.get("n", 1)
                choices = [{"index": i, "text": t, "logprobs": None} for i, t in enumerate(texts)]
            answer = {"id": "cmpl-1", "object": "text_completion", "model": body.get("model"),
                      "choices": choices}
            count = state.usage(body["prompt"])
            if count is not None:
                answer["usage"] = {"prompt_tokens": count, "completion_tokens": 1,
                                   "total_tokens": count + 1}
            return answer

    return Handler


class FakeServer:
    """Context manager: the fake server on 127.0.0.1 at a free port; .url, .state."""

    def __init__(self, state: FakeState | None = None):
        self.state = state or FakeState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
