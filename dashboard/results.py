"""A finished run's result: kept in the workspace history, and marked as the earlier one
when the run after it failed."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from sim_core.base.errors import SimError
from sim_core.report import history


def keep_result(kind: str, build: Callable[[], object], title: str) -> None:
    """Store a finished result in the workspace history (sim_core.report.history), so a refresh
    or another tab loses nothing; a failure to store is said, the result stays shown."""
    try:
        saved = history.save_result(kind, build(), title)
    except SimError as error:
        st.warning(f"This {kind} could not be saved to the workspace history: {error}")
        return
    st.session_state[f"kept_{kind}"] = saved
    st.caption(f"Saved to the workspace history as '{title}' (Reports page).")


def previous_result_note(prefix: str, what: str) -> None:
    """After a failed run, say that the result below is the earlier one, so it is not read
    as the answer to the request that failed."""
    if st.session_state.get(f"{prefix}_failed"):
        st.warning(f"The request above failed; below is the previous result ({what}), not an "
                   "answer to it.")
