"""Where a model runs, the one choice every command (--backend) and the dashboard's sidebar
offer: in this process (local), behind an OpenAI-compatible /v1/completions server
(completions: prompts built here with the local tokenizer), or behind a chat API (chat: the
server applies its own chat template). Each is a ModelHandle
(sim_core.simulation.handle), so the rest of the core never asks which one it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_core.base.errors import SimError
from sim_core.base.options import Choice, check, registry, setting
from sim_core.simulation.chat import connect_chat
from sim_core.simulation.completions import connect
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.openai_client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_KEY_ENV,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from sim_core.simulation.remote import DEFAULT_TOP_LOGPROBS

BACKENDS = registry(
    Choice("local", "Local", "transformers in this process"),
    Choice("completions", "Completions endpoint",
           "an OpenAI-compatible /v1/completions server (vLLM, SGLang, TGI, llama.cpp): "
           "prompts are built here with the model's tokenizer, the model runs there"),
    Choice("chat", "Chat API",
           "an OpenAI-compatible /v1/chat/completions API (OpenAI, hosted open models, your "
           "own vLLM / SGLang / Ollama): the server applies the chat template; no local "
           "tokenizer is needed"),
)
REMOTE = ("completions", "chat")
SENT_TO_SERVER = ("Only the question, its options and the group descriptions leave this "
                  "machine, never a respondent's row.")
"""What a server backend is sent (said in the CLI's plan, its help and the dashboard)."""


@dataclass
class BackendConfig:
    """Where the model runs and, for a server, how to reach it (fields document themselves)."""

    backend: str = setting("local", choices=BACKENDS, label="Model runs",
                           help="local: transformers in this process; completions: an "
                                "OpenAI-compatible /v1/completions server; chat: an "
                                "OpenAI-compatible chat API")
    endpoint: str | None = setting(None, none="none (local backend)", label="Endpoint URL",
                                   help="the server's URL, e.g. http://127.0.0.1:8000/v1 or "
                                        "https://api.openai.com/v1")
    served_model: str | None = setting(
        None, none="none (local backend)", label="Served model",
        help="the model's id on the server, as GET /v1/models lists it (an adapter served by "
             "name is picked as the adapter)")
    api_key_env: str | None = setting(
        None, label="API key variable",
        none=f"{DEFAULT_KEY_ENV} when it is set, else no key (a local server)",
        help="environment variable holding the API key (read at each request, never stored "
             "or shown; a variable named here must be set)")
    tokenizer: str | None = setting(
        None, none="the served model's id", label="Tokenizer",
        help="completions backend: local folder or hub id with the served model's tokenizer, "
             "whose chat template builds the prompts ('default': the embedded "
             "SmolLM2-135M-Instruct)")
    concurrency: int = setting(DEFAULT_CONCURRENCY, min=1, max=256, label="Requests in flight",
                               help="requests sent to the server at once")
    timeout: float = setting(DEFAULT_TIMEOUT, above=0, max=3600, label="Timeout (s)",
                             help="seconds to wait for one answer before giving up")
    retries: int = setting(DEFAULT_RETRIES, min=0, max=10, label="Retries",
                           help="extra attempts after a connection failure, a timeout, 429 or "
                                "5xx, waiting about 0.5 s, 1 s, 2 s, ... (or the server's "
                                "Retry-After)")
    top_logprobs: int = setting(
        DEFAULT_TOP_LOGPROBS, min=1, max=100, label="Top log-probabilities",
        help="top tokens asked for per prompt in first-token mode; a letter outside them "
             "counts 0 (vLLM's default cap is 20, as is OpenAI's chat API; some hosts allow 5)")

    def __post_init__(self) -> None:
        check(self)
        named = [flag for flag, value in (("endpoint", self.endpoint),
                                          ("served model", self.served_model),
                                          ("tokenizer", self.tokenizer),
                                          ("API key variable", self.api_key_env)) if value]
        if self.backend == "local" and named:
            raise SimError(f"The {', '.join(named)} setting(s) are for a server backend "
                           "(--backend completions or chat).")
        if self.backend in REMOTE and not (self.endpoint and self.served_model):
            raise SimError(f"The {self.backend} backend needs the server's URL and the served "
                           "model's name (--endpoint URL --served-model NAME).")
        if self.backend == "chat" and self.tokenizer:
            raise SimError("A chat API applies its own chat template: --tokenizer is for the "
                           "completions backend.")

    def connect(self, adapter: str | None = None) -> ModelHandle:
        """The served checkpoint for this configuration (completions or chat), after checking
        that the server serves it."""
        settings = {"api_key_env": self.api_key_env, "timeout": self.timeout,
                    "retries": self.retries, "concurrency": self.concurrency,
                    "top_logprobs": self.top_logprobs}
        if self.backend == "chat":
            return connect_chat(self.endpoint or "", self.served_model or "", adapter,
                                **settings)
        if self.backend == "completions":
            return connect(self.endpoint or "", self.served_model or "", adapter,
                           tokenizer=self.tokenizer, **settings)
        raise SimError("The local backend loads its model with load_model(); it has no server "
                       "to connect to.")
