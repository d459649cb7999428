"""What the two server backends share (completions: sim_core.simulation.completions; chat:
sim_core.simulation.chat): the connection (client, server, key variable), which served model
and adapter a checkpoint is, its identity in labels, reports and the cache, and requests run
concurrently in a bounded pool.

sim_core.simulation.simulate does the prompts, option orders, debiasing and caching exactly
as for a local model; a backend only sends prompts and reads answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sim_core.base.errors import ModelError, SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.adapter_card import simulator_settings
from sim_core.simulation.adapters import resolve_adapter
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.openai_client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ServedModel,
    Where,
    api_base,
    auth_headers,
    check_key_variable,
    listing,
    make_client,
    run_pool,
    served_models,
    server_message,
    translate,
)

# vLLM's default cap (--max-logprobs 20); OpenAI's chat API allows 20, some hosts only 5.
DEFAULT_TOP_LOGPROBS = 20


@dataclass
class Connection:
    """A server and how to reach it: the openai client and what error messages name."""

    client: Any
    where: Where

    @property
    def base(self) -> str:
        """The API root (…/v1)."""
        return self.where.base

    def headers(self) -> dict:
        """This request's extra headers (read now: the key variable may be set or not)."""
        return auth_headers(self.where.key_env)

    def call(self, request: Callable[[Any], Any], model: str | None = None) -> Any:
        """request(client), failures as one clear ModelError (a model the server does not
        know: the message lists the ones it serves)."""
        import openai

        try:
            return request(self.client)
        except openai.NotFoundError as error:
            if model is None:
                raise translate(error, self.where) from None
            served = served_models(self.client, self.where)
            raise ModelError(f"The endpoint {self.base} does not serve '{model}' (HTTP 404: "
                             f"{server_message(error)}): {listing(served)}.") from None
        except (openai.OpenAIError, ValueError) as error:
            raise translate(error, self.where) from None


def open_connection(url: str, api_key_env: str | None, *, timeout: float = DEFAULT_TIMEOUT,
                    retries: int = DEFAULT_RETRIES) -> Connection:
    """A connection to a server (nothing is sent yet); ModelError for a URL that is not one or
    a key variable named but unset."""
    base, key_env = api_base(url), check_key_variable(api_key_env)
    client = make_client(base, key_env, timeout=timeout, retries=retries)
    return Connection(client, Where(base, key_env, timeout, retries))


@dataclass
class ServedCheckpoint:
    """Which served model (and served adapter) a checkpoint is, and what its card says."""

    name: str
    root: str | None = None
    adapter: str | None = None
    adapter_root: str | None = None
    adapter_path: Path | None = None
    inference_orders: int | None = None
    prompt_style: dict | None = None
    sampling_temperature: float | None = None
    calibration: Calibration | None = None


def find_served(connection: Connection, served_model: str, adapter: str | None
                ) -> ServedCheckpoint:
    """The checkpoint for the names given, after checking that the server serves them
    (GET /v1/models); an adapter's card is read where this machine has it.

    Raises:
        ModelError: unreachable, or the model or adapter is not served (the message lists
            what is).
    """
    served = {m.id: m for m in served_models(connection.client, connection.where)}
    base, lora = _pick(served, str(served_model or "").strip(), adapter, connection.base)
    path = _adapter_folder(lora) if lora else None
    card = simulator_settings(path) if path is not None else {}
    return ServedCheckpoint(name=base.id, root=base.root, adapter=lora.id if lora else None,
                            adapter_root=lora.root if lora else None, adapter_path=path,
                            **card)


def _pick(served: dict[str, ServedModel], name: str, adapter: str | None, where: str
          ) -> tuple[ServedModel, ServedModel | None]:
    """(base, adapter) entries for the names given; ModelError naming what is served."""
    said = listing(list(served.values()))
    if not name:
        raise ModelError(f"Name the served model (--served-model); {where} {said}.")
    if name not in served:
        raise ModelError(f"The endpoint {where} does not serve '{name}': {said}.")
    base = served[name]
    if base.parent and not adapter:  # an adapter named as the model: its parent is the base
        adapter, base = base.id, served.get(base.parent) or ServedModel(id=base.parent)
    if not adapter:
        return base, None
    lora = served.get(adapter)
    if lora is None:
        raise ModelError(f"The endpoint {where} does not serve the adapter '{adapter}': "
                         f"{said}. Serve it by name (vLLM: --enable-lora --lora-modules "
                         f"{adapter}=PATH).")
    if lora.parent and lora.parent != base.id:
        raise ModelError(f"The served adapter '{adapter}' sits on '{lora.parent}', not on "
                         f"'{base.id}'.")
    return base, lora


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


@dataclass
class RemoteModel(ModelHandle):
    """A checkpoint served by an OpenAI-compatible server (the backends subclass it).

    Attributes:
        connection: the server and its client.
        served: which served model and adapter, and the adapter card's settings.
        top_logprobs: K, top log-probabilities asked for in first-token mode.
        concurrency: requests in flight at once.
    """

    connection: Connection
    served: ServedCheckpoint
    top_logprobs: int = DEFAULT_TOP_LOGPROBS
    concurrency: int = DEFAULT_CONCURRENCY

    backend = "remote"      # the cache's name for the backend; subclasses set their own

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.top_logprobs < 1:
            raise ModelError("The endpoint's concurrency and top log-probabilities must be "
                             ">= 1.")
        card = self.served    # the handle's attributes, read from the served checkpoint
        self.name, self.adapter, self.adapter_path = card.name, card.adapter, card.adapter_path
        self.inference_orders, self.prompt_style = card.inference_orders, card.prompt_style
        self.sampling_temperature, self.calibration = card.sampling_temperature, card.calibration

    @property
    def endpoint(self) -> str:
        """The API root (…/v1)."""
        return self.connection.base

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
        """What the reports and calibration records show as the base model's identity."""
        return f"{self.endpoint}#{self.name}"

    @property
    def adapter_fingerprint(self) -> str | None:
        """The adapter's served name and path."""
        return f"{self.adapter}@{self.served.adapter_root}" if self.adapter else None

    @property
    def runtime(self) -> dict:
        """The endpoint it is served from."""
        return {"endpoint": self.endpoint}

    @property
    def remote(self) -> bool:
        """Prompts leave this machine."""
        return True

    @property
    def cache_identity(self) -> dict:
        """Cache-key parts: backend, endpoint, served model and adapter (with their paths), K."""
        return {"backend": self.backend, "endpoint": self.endpoint, "model": self.name,
                "model_root": self.served.root, "adapter": self.adapter,
                "adapter_root": self.served.adapter_root, "top_logprobs": self.top_logprobs}

    def requests_for(self, mode: str, prompts: int, samples: int) -> int:
        """One request per prompt (sampling asks for n completions in one request)."""
        return prompts

    def each(self, one: Callable[[int], Any], count: int, progress: Progress,
             should_stop: ShouldStop) -> list[Any]:
        """one(0..count-1), `concurrency` requests in flight; results in index order."""
        return run_pool(one, count, self.concurrency, progress, should_stop)
