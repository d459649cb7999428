"""A small OpenAI-compatible server in a thread, for the server backends' logic and failures.

It answers GET /v1/models, POST /v1/completions and POST /v1/chat/completions from a scripted
state: the models it lists, the top log-probabilities it returns, statuses to fail with first,
a delay, the chat quirks of real providers (log-probabilities refused, a cap on
top_logprobs, `n` refused, structured output refused, refusals, content filters, a body that
is not JSON), and it records every request (body, headers) and the most requests it had in
flight at once. Error bodies follow OpenAI's shape: {"error": {"message": ...}}.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    # chat: the first token's top log-probabilities (token, logprob), in order
    chat_top: list[tuple[str, float]] = field(default_factory=lambda: [
        ("A", math.log(0.5)), (" A", math.log(0.1)), ("B", math.log(0.2)),
        ("C", math.log(0.1)), ("The", math.log(0.05))])
    # chat replies: body -> one entry per choice: text, {"refusal": text} or {"filter": True}
    replies: Callable[[dict], list] | None = None
    refuse_logprobs: bool = False      # 400: log-probabilities not supported
    top_cap: int | None = None         # 400 when top_logprobs exceeds it
    refuse_n: bool = False             # 400 when n > 1
    refuse_schema: bool = False        # 400 for a json_schema response_format
    garbage: bool = False              # 200 with a body that is not JSON
    check_model: bool = False          # 404 for a model it does not list
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
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
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
                headers = {k.title(): v for k, v in self.headers.items()}
                state.requests.append({"body": body, "headers": headers})
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.delay)
                if self._scripted_failure():
                    return
                listed = {m["id"] for m in state.models}
                if state.check_model and body.get("model") not in listed:
                    self._send(404, {"error": {"message": f"The model `{body.get('model')}` "
                                               "does not exist", "code": "model_not_found"}})
                elif state.garbage:
                    self._send(200, b"<html>not json</html>")
                elif self.path.rstrip("/") == "/v1/chat/completions":
                    refused = self._chat_refusal(body)
                    if refused:
                        self._send(400, {"error": {"message": refused, "type":
                                                   "invalid_request_error"}})
                    else:
                        self._send(200, self._chat(body))
                else:
                    self._send(200, self._completion(body))
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _chat_refusal(self, body: dict) -> str | None:
            if body.get("logprobs") and state.refuse_logprobs:
                return "logprobs is not supported by this model"
            if state.top_cap is not None and body.get("top_logprobs", 0) > state.top_cap:
                return f"top_logprobs must be less than or equal to {state.top_cap}"
            if state.refuse_n and body.get("n", 1) > 1:
                return "'n' must be 1 for this model"
            if state.refuse_schema and body.get("response_format"):
                return "response_format of type json_schema is not supported"
            return None

        def _chat(self, body: dict) -> dict:
            n = body.get("n", 1)
            if body.get("logprobs"):
                top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}
                       for tok, lp in state.chat_top[:body.get("top_logprobs", 0)]]
                first = state.chat_top[0][0]
                choices = [{"index": 0, "finish_reason": "length",
                            "message": {"role": "assistant", "content": first},
                            "logprobs": {"content": [{"token": first, "logprob":
                                                      state.chat_top[0][1], "bytes": [],
                                                      "top_logprobs": top}]}}]
            else:
                replies = state.replies(body) if state.replies else ["A"] * n
                choices = []
                for i, reply in enumerate(replies):
                    message = {"role": "assistant", "content": reply, "refusal": None}
                    finish = "stop"
                    if isinstance(reply, dict) and "refusal" in reply:
                        message.update(content=None, refusal=reply["refusal"])
                    elif isinstance(reply, dict):
                        message["content"], finish = None, "content_filter"
                    choices.append({"index": i, "finish_reason": finish, "message": message,
                                    "logprobs": None})
            return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                    "model": body.get("model"), "choices": choices,
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}

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

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
