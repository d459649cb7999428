"""Before a run on a server: what leaves this machine, the most requests a run may send,
and what this run will send (requests and tokens: sim_core.simulation.simulate.RunPlan),
worked out without sending anything (prompts are built and the cache read; connecting
asks the server for its models, nothing else)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard.display import show_error
from dashboard.loaders import get_model
from dashboard.sidebar import endpoint_settings
from dashboard.widgets import setting_widget
from sim_core.base.errors import SimError
from sim_core.simulation.backends import SENT_TO_SERVER
from sim_core.simulation.config import SimConfig
from sim_core.simulation.simulate import RunPlan


def on_server() -> bool:
    """Whether the sidebar's backend is a server (completions or chat)."""
    return endpoint_settings() is not None


def no_served_model() -> bool:
    """A server backend whose served model is not known yet (no URL, or it lists none)."""
    return on_server() and not st.session_state.get("side_model")


def requests_limit(container, key: str) -> int | None:
    """Most requests (SimConfig.max_requests): None = no limit."""
    return setting_widget(container, SimConfig, "max_requests", key, persist_state="session")


def privacy_note() -> None:
    """What a server is sent, and what never is."""
    st.info(SENT_TO_SERVER, icon=":material/lock:")


def show_plan(plan_for: Callable[[list], RunPlan], checkpoints: list[tuple[str, str | None]],
              limit: int | None) -> RunPlan | None:
    """The run's plan in one line (over Most requests: said, the run will be refused).

    Args:
        plan_for: the core's planner, given the checkpoints' models.
        checkpoints: (served model, adapter or None) pairs; limit: Most requests.
    Returns:
        The plan, or None when it cannot be worked out (the reason shown).
    """
    try:
        plan = plan_for([get_model(name, adapter) for name, adapter in checkpoints])
    except SimError as error:
        show_error(error)
        return None
    over = limit is not None and plan.requests > limit
    st.caption(f"This run: {plan.text()}"
               + (f"; more than Most requests ({limit}): it will be refused" if over else "")
               + ".")
    return plan
