"""Form choices that survive a visit to another page, declared where each widget is made.

Streamlit forgets the state of every widget a run does not draw, so without this a page's
form would reset while the result under it stays (and then disagree with it). A widget
whose choice is kept names its key through `kept`:

    st.radio("Mode", ..., key=kept("sim_mode"))

Buttons, uploads, data editors and per-upload mapping forms are not kept: they cannot be
set, or belong to a file the browser no longer holds.
"""

from __future__ import annotations

import streamlit as st

_KEYS = "_kept_keys"      # the keys declared through kept() in this session
_VALUES = "_kept_form"    # their last noted values


def kept(key: str) -> str:
    """Declare that the widget with this key keeps its choice over page visits; returns
    the key (for the widget's `key=`)."""
    st.session_state.setdefault(_KEYS, set()).add(key)
    return key


def restore_form() -> None:
    """Before a page runs: put back the form choices Streamlit dropped while another page
    was shown (a value no longer offered falls back to the widget's default)."""
    # Streamlit's own recipe: a key assigned at the top of a run is not cleaned up. Only
    # dropped keys are assigned: a widget still in the session keeps its own state, so a
    # default that follows the page's data (e.g. the first attribute of a marginal table)
    # still applies when that widget's options change.
    for key, value in st.session_state.get(_VALUES, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def remember_form() -> None:
    """After a page ran: note the current value of every kept key (merged: the other pages'
    choices, already dropped from the session, stay noted)."""
    keys = st.session_state.get(_KEYS, set())
    current = {key: st.session_state[key] for key in keys if key in st.session_state}
    st.session_state[_VALUES] = {**st.session_state.get(_VALUES, {}), **current}
