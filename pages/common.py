"""Shared dashboard helpers: sidebar, cached model loading, errors, progress and stop.

Session-state keys are prefixed by page: side_ (sidebar), data_, sim_, eval_, ft_, rep_.
Nothing here computes survey numbers; it only wires widgets to sim_core.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pandas as pd
import streamlit as st

from sim_core.base import options
from sim_core.base.errors import SimError
from sim_core.base.metrics import METRICS
from sim_core.base.workspace import workspace_dir
from sim_core.report import history
from sim_core.simulation import completions, models
from sim_core.simulation.adapters import list_adapters
from sim_core.simulation.config import SimConfig
from sim_core.simulation.devices import listed_gpu_count
from sim_core.survey.workspace_surveys import load_saved, saved_surveys, stamp

NO_ADAPTER = "(none)"
LOCAL, ENDPOINT = "local", "openai"   # sim_core.simulation.completions.BACKENDS keys
OTHER_MODEL = "Other (folder or hub id)…"


def default_model_name() -> str:
    """The default base model: $SIM_DEFAULT_MODEL if set (tests: the tiny model), else "default"."""
    return os.environ.get("SIM_DEFAULT_MODEL") or "default"


def show_error(error: BaseException) -> None:
    """Show a core error as one readable message (never a traceback)."""
    st.error(str(error))


def score_header(key: str) -> str:
    """Score column heading with its direction, e.g. 'KL divergence (lower is better)'."""
    return f"{METRICS[key].name} ({METRICS[key].direction} is better)"


def with_score_names(table: pd.DataFrame) -> pd.DataFrame:
    """A table whose score columns (sim_core.base.metrics keys) get their display headings."""
    return table.rename(columns={k: score_header(k) for k in METRICS if k in table.columns})


def show_table(table: pd.DataFrame, key: str, *, hide_index: bool = True,
               digits: int = 4) -> None:
    """st.dataframe with every float column shown to `digits` decimals (a score of 1e-15
    reads 0.0000, not 0.000000000000001); the values themselves stay exact (download,
    sorting)."""
    floats = {c: st.column_config.NumberColumn(str(c), format=f"%.{digits}f")
              for c in table.columns if pd.api.types.is_float_dtype(table[c])}
    st.dataframe(table, hide_index=hide_index, key=key, column_config=floats)


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


def run_page(draw: Callable[[], None]) -> None:
    """Draw a page inside the app's navigation (every page's `__main__` calls this).

    Because pages/ sits next to app.py, Streamlit starts a fresh server in its older
    multipage mode: until app.py has run once, an address such as /simulate (a bookmark, a
    refresh right after a restart) runs that page file alone, with no sidebar and every
    module of pages/ listed as a page. That first run is turned into a run of app.py
    (Streamlit's flag is the one st.navigation itself clears).
    """
    from streamlit.runtime.pages_manager import PagesManager

    # Once per session: Streamlit's test harness (AppTest) runs a page file alone with the
    # flag set on every run, and a rerun there would swallow the click that started it.
    if getattr(PagesManager, "uses_pages_directory", False) \
            and not st.session_state.get("_navigation_checked"):
        st.session_state["_navigation_checked"] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
    draw()


# Form widgets whose choices survive a visit to another page: Streamlit forgets the state
# of every widget a run does not draw, so without this the form would reset while the
# result under it stays (and then disagree with it). Key prefixes, page by page; buttons,
# uploads, data editors and per-upload mapping forms are left out (they cannot be set, or
# belong to a file the browser no longer holds).
KEPT_FORM_KEYS = (
    "sim_source", "sim_draft_", "sim_survey", "sim_question", "sim_wave", "sim_by",
    "sim_checkpoints", "sim_mode", "sim_orders", "sim_samples", "sim_baselines",
    "sim_calibrate", "sim_interval_level", "sim_show_baselines", "sim_chart_view",
    "eval_survey", "eval_by", "eval_waves", "eval_limit", "eval_checkpoints", "eval_orders",
    "eval_calibrate", "eval_ind_by", "eval_ind_criterion", "eval_ind_test_fraction",
    "eval_ind_val_fraction", "eval_ind_split_seed", "eval_ind_max_respondents",
    "eval_ind_temps", "eval_ind_mode",
    "ft_survey", "ft_split", "ft_name", "ft_replace", "ft_cfg_",
    "rep_source", "rep_title", "rep_page_size",
    "data_preview_q", "data_preview_by", "data_preview_wave",
)
_KEPT = "_kept_form"


def restore_form() -> None:
    """Before a page runs: put back the form choices Streamlit dropped while another page
    was shown (a value no longer offered falls back to the widget's default)."""
    # Streamlit's own recipe: a key assigned at the top of a run is not cleaned up. The
    # value is the session's own where it still has one (the user's latest change), the
    # noted one where Streamlit dropped it.
    for key, value in st.session_state.get(_KEPT, {}).items():
        st.session_state[key] = st.session_state.get(key, value)


def remember_form() -> None:
    """After a page ran: note the current form choices (merged: the other pages' choices,
    already dropped from the session, stay noted)."""
    current = {key: st.session_state[key] for key in list(st.session_state.keys())
               if isinstance(key, str) and key.startswith(KEPT_FORM_KEYS)}
    st.session_state[_KEPT] = {**st.session_state.get(_KEPT, {}), **current}


def previous_result_note(prefix: str, what: str) -> None:
    """After a failed run, say that the result below is the earlier one, so it is not read
    as the answer to the request that failed."""
    if st.session_state.get(f"{prefix}_failed"):
        st.warning(f"The request above failed; below is the previous result ({what}), not an "
                   "answer to it.")


def show_chart(build: Callable[[], object], key: str) -> bool:
    """Build a plotly figure and draw it; a failure becomes one warning (the traceback goes
    to the server log), so the tables drawn after it stay. Returns whether it was drawn."""
    try:
        st.plotly_chart(build(), key=key)
    except Exception as error:   # any plotting bug: the page and its numbers must survive
        logging.getLogger(__name__).exception("chart %s failed", key)
        st.warning(f"The chart could not be drawn ({type(error).__name__}: {error}). "
                   "The numbers below are not affected.")
        return False
    return True


@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _load_model_cached(name: str, adapter: str | None, device: str):
    """Load a model once per process and (name, adapter, device)."""
    # torch and transformers load here, on first use
    return models.load_model(name, adapter, device=device)


# ttl: a restarted server may serve other weights under the same names; re-check each minute.
@st.cache_resource(max_entries=8, ttl=60, show_spinner="Connecting to the endpoint…")
def _connect_cached(config: completions.BackendConfig, adapter: str | None):
    """An endpoint checkpoint; the API key stays in the environment (config names it only)."""
    return config.connect(adapter)


def endpoint_settings() -> dict | None:
    """URL, API key variable and tokenizer from the sidebar when the endpoint backend is on."""
    if st.session_state.get("side_backend") != ENDPOINT:
        return None
    return {"endpoint": st.session_state.get("side_endpoint_url", "").strip(),
            "api_key_env": st.session_state.get("side_endpoint_key_env", "").strip(),
            "tokenizer": st.session_state.get("side_endpoint_tokenizer", "").strip() or None}


def get_model(name: str, adapter: str | None = None):
    """The model for (name, adapter), local on the sidebar's device or served (sidebar
    switch); loads on first use only."""
    settings = endpoint_settings()
    if settings is not None:
        config = completions.BackendConfig(backend=ENDPOINT, served_model=name, **settings)
        return _connect_cached(config, adapter or None)
    return _load_model_cached(name, adapter or None, device_choice())


def device_choice() -> str:
    """The device picked in the sidebar ("auto" until one is picked)."""
    return st.session_state.get("side_device") or "auto"


@st.cache_data(show_spinner=False)
def device_options() -> list[str]:
    """auto, cpu and each CUDA GPU (listed without loading torch)."""
    return ["auto", "cpu", *[f"cuda:{i}" for i in range(listed_gpu_count())]]


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


@st.cache_data(ttl=10, show_spinner=False)
def served_models(url: str, key_env: str) -> list:
    """What the endpoint serves (sim_core.simulation.completions.list_served), re-read every 10 s."""
    return completions.list_served(url, key_env, timeout=10)


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
        backend = st.radio(options.label(completions.BackendConfig, "backend"),
                           list(completions.BACKENDS), key="side_backend", horizontal=True,
                           format_func=lambda key: completions.BACKENDS[key].label,
                           help=options.describe(completions.BackendConfig, "backend"))
        if backend == ENDPOINT:
            endpoint_sidebar()
        else:
            local_sidebar()


def endpoint_sidebar() -> None:
    """URL, key variable, tokenizer, then the served model and adapter lists."""
    config = completions.BackendConfig

    def text(name: str, key: str, **kwargs) -> str:
        return st.text_input(options.label(config, name), key=key,
                             help=options.describe(config, name), **kwargs).strip()

    st.session_state["side_model"], st.session_state["side_adapter_name"] = None, None
    url = text("endpoint", "side_endpoint_url", placeholder="http://127.0.0.1:8000/v1")
    key_env = text("api_key_env", "side_endpoint_key_env", value=config().api_key_env)
    text("tokenizer", "side_endpoint_tokenizer", placeholder="(the served model's id)")
    if not url:
        st.info("Give the endpoint's URL, e.g. of `vllm serve MODEL --enable-lora "
                "--lora-modules NAME=PATH`.")
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


BASE = "(base model)"


def checkpoint_picker(prefix: str, label: str) -> list[tuple[str, str | None]]:
    """Checkpoints to run: the base model and/or adapters (default: the sidebar's choice).

    Returns:
        (base model name, adapter name or None) per checkpoint picked.
    """
    base, side_adapter = model_choice()
    choices = [BASE, *adapter_names()]
    default = [side_adapter] if side_adapter in choices else [BASE]
    picked = st.multiselect(f"{label} (base: {base})", choices, default=default,
                            key=f"{prefix}_checkpoints")
    return [(base, None if p == BASE else p) for p in picked]


def eta_text(seconds: float) -> str:
    """A rough time left in words: "about 70 s left", "about 3 min left"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


def count_text(unit: str, done: int, total: int, checkpoints: int = 1) -> str:
    """A progress count in the user's units: "slice 12 of 47", or with several checkpoints
    (the core counts units x checkpoints) "checkpoint 2 of 2 · slice 5 of 47"; no unit:
    a percentage."""
    if not unit:          # work the core counts in its own steps: a share is all it means
        return f"{done / max(total, 1):.0%} done"
    per = max(total // max(checkpoints, 1), 1)
    if checkpoints <= 1:
        return f"{unit} {min(done, total)} of {total}"
    index = min(max(done - 1, 0) // per, checkpoints - 1)
    return f"checkpoint {index + 1} of {checkpoints} · {unit} {done - index * per} of {per}"


@dataclass
class StatusBox:
    """The status of one run, right under its button: the step in words, a bar with a real
    count and a time left measured on this run, and a Stop button (see status_box)."""

    box: Any
    bar: Any
    flag: str
    unit: str
    checkpoints: int = 1
    step_text: str = ""
    counted_since: float | None = None
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str) -> None:
        """Name a new step ("loading the model"); the next count measures its own pace."""
        self.step_text, self.counted_since = text, None
        self.box.update(label=text, state="running")

    def progress(self, done: int, total: int) -> None:
        """The core's progress(done, total) in `unit`s, with the time left at this pace."""
        now = time.monotonic()
        if self.counted_since is None:
            self.counted_since = now
        text = count_text(self.unit, done, total, self.checkpoints)
        elapsed = now - self.counted_since
        if 0 < done < total and elapsed > 1:
            text += f" · {eta_text(elapsed / done * (total - done))}"
        label = f"{self.step_text}: {text}" if self.step_text else text
        self.box.update(label=label)
        self.bar.progress(min(done / max(total, 1), 1.0), text=text)

    def should_stop(self) -> bool:
        """Whether Stop was clicked (the core then raises Cancelled)."""
        return bool(st.session_state.get(self.flag))


@contextmanager
def status_box(prefix: str, title: str, unit: str, checkpoints: int = 1) -> Iterator[StatusBox]:
    """A status box (st.status) with a bar and a Stop button, to open right under the Run
    button; it ends "complete" with the time taken, or "error" when the work raised.

    Clicking Stop reruns the script, which Streamlit uses to interrupt the running one at its
    next progress update; the flag set by the button lets the core stop cleanly as well.
    """
    flag = f"{prefix}_stop"
    st.session_state[flag] = False
    box = st.status(title, expanded=True)
    with box:
        stop_slot = st.empty()
        stop_slot.button("Stop", key=f"{prefix}_stop_button",
                         on_click=lambda: st.session_state.__setitem__(flag, True))
        bar = st.progress(0.0, text=title)
    status = StatusBox(box, bar, flag, unit, checkpoints)
    try:
        yield status
    except BaseException:
        box.update(label=f"{title}: stopped" if st.session_state.get(flag) else
                   f"{title}: failed (see the message below)", state="error", expanded=False)
        raise
    finally:
        stop_slot.empty()
    box.update(label=f"{title}: done in {time.monotonic() - status.started:.0f} s",
               state="complete", expanded=False)


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


def survey_picker(prefix: str, label: str = "Survey"):
    """Selectbox over stored surveys; returns (name, Survey) or (None, None) with a hint."""
    names = saved_surveys()
    if not names:
        st.info("No survey loaded yet: add one on the Data page (demo data is one click).")
        return None, None
    name = st.selectbox(label, names, key=f"{prefix}_survey")
    try:
        return name, get_survey(name)
    except SimError as error:
        show_error(error)
        return None, None


def setting_widget(container, cls: type, name: str, key: str, value=None, **widget_args):
    """One widget for a setting of a config dataclass, with the label, help and bounds that
    the field declares (sim_core.base.options.setting); returns the value the user chose.
    `widget_args` go to the Streamlit widget (e.g. disabled=True)."""
    import dataclasses
    import typing


    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = field.metadata["setting"]
    value = field.default if value is None else value
    label, help_text = options.label(cls, name), options.describe(cls, name)
    kind = options.base_type(typing.get_type_hints(cls)[name])
    if meta.get("choices"):
        choices = meta["choices"]
        keys = list(choices)
        names = {k: getattr(choices[k], "label", k) for k in keys} if isinstance(choices, dict) \
            else {k: k for k in keys}
        return container.selectbox(label, keys, index=keys.index(value), key=key,
                                   format_func=names.get, help=help_text, **widget_args)
    if kind is bool:
        return container.checkbox(label, value=bool(value), key=key, help=help_text,
                                  **widget_args)
    low = meta.get("min") if meta.get("min") is not None else meta.get("above")
    number = container.number_input(
        label, min_value=None if low is None else kind(low),
        max_value=None if meta.get("max") is None else kind(meta["max"]), value=value,
        step=1 if kind is int else None, format=None if kind is int else "%g", key=key,
        help=help_text, placeholder=meta.get("none"), **widget_args)
    return None if number is None else kind(number)


ORDER_CHOICES = (0, 1, 2, 4, 8)


def orders_widget(container, key: str) -> int | None:
    """Option orders averaged: 'auto' (None) = each checkpoint's own (sim_core.simulation.simulate.orders_for)."""
    picked = container.selectbox(
        "Option orders averaged (debiasing)", ORDER_CHOICES, key=key,
        format_func=lambda n: "auto (base model 2; adapter: its card)" if n == 0 else str(n),
        help="Averaging over reversed / shifted option orders removes the base model's letter "
             "bias. An adapter trained on the original option order learned from that order, "
             "so 'auto' reads it in that order only.")
    return int(picked) or None
