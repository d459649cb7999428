"""The core's loaders behind st.cache_resource: a model or endpoint connection once per
server process and choice, a stored survey until its folder changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from dashboard.sidebar import device_choice, endpoint_settings
from sim_core.simulation import models
from sim_core.simulation.backends import BackendConfig
from sim_core.survey.workspace_surveys import load_saved, stamp

if TYPE_CHECKING:
    from dashboard.status import StatusBox


@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _load_model_cached(name: str, adapter: str | None, device: str):
    """Load a model once per process and (name, adapter, device)."""
    # torch and transformers load here, on first use
    return models.load_model(name, adapter, device=device)


# ttl: a restarted server may serve other weights under the same names; re-check each minute.
@st.cache_resource(max_entries=8, ttl=60, show_spinner="Connecting to the endpoint…")
def _connect_cached(config: BackendConfig, adapter: str | None):
    """An endpoint checkpoint; the API key stays in the environment (config names it only)."""
    return config.connect(adapter)


def get_model(name: str, adapter: str | None = None):
    """The model for (name, adapter), local on the sidebar's device or served (sidebar
    switch); loads on first use only."""
    settings = endpoint_settings()
    if settings is not None:
        config = BackendConfig(served_model=name, **settings)
        return _connect_cached(config, adapter or None)
    return _load_model_cached(name, adapter or None, device_choice())


def load_checkpoints(status: StatusBox, checkpoints: list[tuple[str, str | None]]) -> list:
    """Load (or connect to) each checkpoint, naming the step in the status box."""
    loaded = []
    for i, (name, adapter) in enumerate(checkpoints, start=1):
        what = f"{name} + adapter {adapter}" if adapter else name
        status.step(f"Loading the model {i} of {len(checkpoints)} ({what}; "
                    "the first time takes longest)")
        loaded.append(get_model(name, adapter))
    return loaded


@st.cache_resource(max_entries=16, show_spinner="Reading survey…")
def _survey_cached(name: str, stamp: float):
    """A stored survey, re-read only when its folder changes."""
    return load_saved(name)


def get_survey(name: str):
    """The stored survey `name` as a sim_core Survey (cached per process)."""
    return _survey_cached(name, stamp(name))
