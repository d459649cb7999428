"""The sidebar (workspace, backend, base model, adapter, device) and the choices made there,
read by every page: which model to run, where, and which adapters exist."""

from __future__ import annotations

import os

import streamlit as st

from dashboard.display import show_error
from sim_core.base import options
from sim_core.base.errors import SimError
from sim_core.base.workspace import workspace_dir
from sim_core.simulation import models
from sim_core.simulation.adapters import list_adapters
from sim_core.simulation.backends import BACKENDS, REMOTE, SENT_TO_SERVER, BackendConfig
from sim_core.simulation.config import SimConfig
from sim_core.simulation.devices import listed_gpu_count
from sim_core.simulation.openai_client import list_served

NO_ADAPTER = "(none)"
LOCAL = "local"          # sim_core.simulation.backends.BACKENDS keys; REMOTE: the servers
OTHER_MODEL = "Other (folder or hub id)…"


def default_model_name() -> str:
    """The default base model: $SIM_DEFAULT_MODEL if set (tests: the tiny model), else "default"."""
    return os.environ.get("SIM_DEFAULT_MODEL") or "default"


def endpoint_settings() -> dict | None:
    """Backend, URL, API key variable and (completions) tokenizer from the sidebar when a
    server backend is on; None for the local backend."""
    backend = st.session_state.get("side_backend")
    if backend not in REMOTE:
        return None
    tokenizer = st.session_state.get("side_endpoint_tokenizer", "").strip() or None
    return {"backend": backend,
            "endpoint": st.session_state.get("side_endpoint_url", "").strip(),
            "api_key_env": st.session_state.get("side_endpoint_key_env", "").strip() or None,
            "tokenizer": tokenizer if backend == "completions" else None}


def device_choice() -> str:
    """The device picked in the sidebar ("auto" until one is picked)."""
    return st.session_state.get("side_device") or "auto"


def model_choice() -> tuple[str, str | None]:
    """The (base model, adapter) picked in the sidebar (served names on the endpoint backend)."""
    name = st.session_state.get("side_model") or default_model_name()
    adapter = st.session_state.get("side_adapter_name")
    return name, adapter


def local_model_name() -> str:
    """The local base model (fine-tuning always runs here, whatever the backend)."""
    return st.session_state.get("side_local_model") or default_model_name()


def adapter_names() -> list[str]:
    """Adapters to pick from: the workspace registry's (a folder listing: not cached, so an
    adapter trained in the background or by the CLI shows up at once), or, on the endpoint
    backend, those the server serves on the chosen model."""
    if endpoint_settings() is not None:
        return list(st.session_state.get("side_endpoint_adapters", []))
    return [info.name for info in list_adapters()]


@st.cache_data(show_spinner=False)
def device_options() -> list[str]:
    """auto, cpu and each CUDA GPU (listed without loading torch)."""
    return ["auto", "cpu", *[f"cuda:{i}" for i in range(listed_gpu_count())]]


@st.cache_data(ttl=10, show_spinner=False)
def served_models(url: str, key_env: str | None) -> list:
    """What the endpoint serves (GET /v1/models: sim_core.simulation.openai_client.list_served),
    re-read every 10 s."""
    return list_served(url, key_env, timeout=10)


@st.cache_data(ttl=10, show_spinner=False)
def base_checkpoints() -> dict[str, str]:
    """Base models known locally: name -> label (sim_core.simulation.models.list_checkpoints)."""
    try:
        items = models.list_checkpoints()
    except SimError:
        return {}
    return {str(c["name"]): str(c.get("label") or c["name"]) for c in items
            if c.get("kind") == "base" and c.get("name")}


def sidebar() -> None:
    """Workspace, backend, base model and adapter; results go to side_model / side_adapter_name."""
    with st.sidebar:
        try:
            st.caption(f"Workspace: `{workspace_dir()}`")
        except SimError as error:     # a file, or read-only: nothing can work, say why
            show_error(error)
            st.stop()
        backend = st.radio(options.label(BackendConfig, "backend"), list(BACKENDS),
                           key="side_backend",
                           format_func=lambda key: BACKENDS[key].label,
                           help=options.describe(BackendConfig, "backend"))
        if backend in REMOTE:
            endpoint_sidebar(backend)
        else:
            local_sidebar()


def endpoint_sidebar(backend: str) -> None:
    """URL, key variable (and the tokenizer of a completions server), then the served model
    and adapter lists."""
    config = BackendConfig

    def text(name: str, key: str, **kwargs) -> str:
        return st.text_input(options.label(config, name), key=key,
                             help=options.describe(config, name), **kwargs).strip()

    st.session_state["side_model"], st.session_state["side_adapter_name"] = None, None
    url = text("endpoint", "side_endpoint_url", placeholder="http://127.0.0.1:8000/v1")
    key_env = text("api_key_env", "side_endpoint_key_env",
                   placeholder="OPENAI_API_KEY when set, else none") or None
    if backend == "completions":
        text("tokenizer", "side_endpoint_tokenizer", placeholder="(the served model's id)")
    st.caption(f"{SENT_TO_SERVER} The key stays in its environment variable.")
    if not url:
        st.info("Give the server's URL: e.g. https://api.openai.com/v1, or "
                "http://127.0.0.1:8000/v1 for `vllm serve MODEL`.")
        return
    try:
        served = served_models(url, key_env)
    except SimError as error:
        show_error(error)
        return
    bases = [m.id for m in served if not m.parent] or [m.id for m in served]
    if not bases:
        st.warning("The endpoint serves no model.")
        return
    name = st.selectbox("Served model", bases, key="side_served_model")
    adapters = [m.id for m in served if m.parent == name]
    st.session_state["side_endpoint_adapters"] = adapters
    picked = st.selectbox("Adapter (LoRA, served by name)", [NO_ADAPTER, *adapters],
                          key="side_endpoint_adapter")
    st.session_state["side_model"] = name
    st.session_state["side_adapter_name"] = None if picked == NO_ADAPTER else picked


def local_sidebar() -> None:
    """Base model and adapter from this computer's workspace."""
    default = default_model_name()
    labels = base_checkpoints()
    names = list(dict.fromkeys([default, *labels, OTHER_MODEL]))
    choice = st.selectbox("Base model", names, key="side_model_choice",
                          format_func=lambda n: labels.get(n, n),
                          help="The embedded SmolLM2-135M-Instruct unless you pick another.")
    if choice == OTHER_MODEL:
        typed = st.text_input("Local folder or hub id", key="side_model_other").strip()
        st.session_state["side_model"] = typed or default
    else:
        st.session_state["side_model"] = choice
    try:
        adapters = adapter_names()
    except SimError as error:
        show_error(error)
        adapters = []
    picked = st.selectbox("Adapter (LoRA)", [NO_ADAPTER, *adapters], key="side_adapter")
    st.session_state["side_adapter_name"] = None if picked == NO_ADAPTER else picked
    st.session_state["side_local_model"] = st.session_state["side_model"]
    device_widget()
    st.caption("The model loads when you first run something, once per server process.")


def device_widget() -> None:
    """Sidebar device choice (simulation, evaluation and training); its help is SimConfig's."""
    st.selectbox("Device", device_options(), key="side_device",
                 help=options.describe(SimConfig, "device"))
