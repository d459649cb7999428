"""Form widgets several pages share: a stored survey, the checkpoints to run, a setting of a
config dataclass (label, help and bounds from the field), the option orders averaged."""

from __future__ import annotations

import dataclasses
import typing

import streamlit as st

from dashboard.display import show_error
from dashboard.loaders import get_survey
from dashboard.sidebar import adapter_names, model_choice
from sim_core.base import options
from sim_core.base.errors import SimError
from sim_core.simulation.config import DEFAULT_ORDERS
from sim_core.survey.attributes import slice_attribute_choices
from sim_core.survey.workspace_surveys import saved_surveys

BASE = "(base model)"
ORDER_CHOICES = (0, 1, 2, 4, 8)


def survey_picker(prefix: str, label: str = "Survey", **widget_args):
    """Selectbox over stored surveys (its choice kept over visits to other pages); returns
    (name, Survey) or (None, None) with a hint. `widget_args` go to the selectbox."""
    names = saved_surveys()
    if not names:
        st.info("No survey loaded yet: add one on the Data page (demo data is one click).")
        return None, None
    name = st.selectbox(label, names, key=f"{prefix}_survey", persist_state="session",
                        **widget_args)
    try:
        return name, get_survey(name)
    except SimError as error:
        show_error(error)
        return None, None


ATTRIBUTE_WORDS = 60     # a question's wording shown in the attribute picker, in characters


def attribute_picker(survey, question_id: str | None, label: str, **widget_args) -> list[str]:
    """Slice attributes: the demographics, then (respondent data) the other questions, each
    shown with its wording. `widget_args` go to the multiselect (key=... required)."""
    def shown(name: str) -> str:
        if name not in survey.questions:
            return name
        text = " ".join(survey.questions[name].text.split())
        cut = text if len(text) <= ATTRIBUTE_WORDS else text[:ATTRIBUTE_WORDS - 1] + "…"
        return f"{name}: {cut}"
    return st.multiselect(label, slice_attribute_choices(survey, question_id),
                          format_func=shown, **widget_args)


def checkpoint_picker(prefix: str, label: str) -> list[tuple[str, str | None]]:
    """Checkpoints to run: the base model and/or adapters (default: the sidebar's choice;
    the pick is kept over visits to other pages).

    Returns:
        (base model name, adapter name or None) per checkpoint picked.
    """
    base, side_adapter = model_choice()
    choices = [BASE, *adapter_names()]
    default = [side_adapter] if side_adapter in choices else [BASE]
    picked = st.multiselect(f"{label} (base: {base})", choices, default=default,
                            key=f"{prefix}_checkpoints", persist_state="session")
    return [(base, None if p == BASE else p) for p in picked]


def setting_widget(container, cls: type, name: str, key: str, value=None, *,
                   radio: bool = False, **widget_args):
    """One widget for a setting of a config dataclass, with the label, help and bounds that
    the field declares (sim_core.base.options.setting); returns the value the user chose.
    A setting with choices is a selectbox (`radio`: a horizontal radio), led by the
    field's `none` text where None is allowed. `widget_args` go to the Streamlit widget
    (e.g. disabled=True, persist_state="session")."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = field.metadata["setting"]
    value = field.default if value is None else value
    label, help_text = options.label(cls, name), options.describe(cls, name)
    kind = options.base_type(typing.get_type_hints(cls)[name])
    if meta.get("choices"):
        choices = meta["choices"]
        keys = ([None] if meta.get("none") else []) + list(choices)
        names = {k: getattr(choices[k], "label", k) for k in choices} \
            if isinstance(choices, dict) else {k: k for k in choices}
        names[None] = str(meta.get("none") or "")
        helps = [f"- **{names[k]}**: {choices[k].help}" for k in choices
                 if getattr(choices[k], "help", "")] if isinstance(choices, dict) else []
        help_text = "\n".join([help_text + ".", "", *helps]) if helps else help_text
        if radio:
            return container.radio(label, keys, index=keys.index(value), key=key,
                                   format_func=names.get, help=help_text, horizontal=True,
                                   **widget_args)
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


def orders_widget(container, key: str, mode: str = "first-token", **widget_args) -> int | None:
    """Option orders averaged: 'auto' (None) = each checkpoint's own in this mode
    (sim_core.simulation.simulate.orders_for); sampling asks in one order (the widget is then
    disabled). `widget_args` go to the selectbox."""
    auto = {"first-token": f"auto (base {DEFAULT_ORDERS}, adapter: its card)",
            "verbalized": "auto (1)"}.get(mode, "1 (sampling asks in one order)")
    picked = container.selectbox(
        "Option orders averaged (debiasing)", ORDER_CHOICES, key=key,
        format_func=lambda n: auto if n == 0 else str(n),
        help="Averaging over reversed / shifted option orders removes the base model's letter "
             "bias. An adapter trained on the original option order learned from that order, "
             "so 'auto' reads it in that order only; verbalized mode asks in one order unless "
             "told more; sampling always in one.", disabled=mode == "sample", **widget_args)
    return int(picked) or None
