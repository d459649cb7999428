"""Settings that document themselves: named choices, and dataclass fields that carry their
help text and bounds.

Every list the dashboard and the CLI both offer (simulation modes, baselines, losses, splits)
is a registry of `Choice` records, read by widgets and by CLI `choices=` alike. Every field
of a configuration dataclass (SimConfig, TrainConfig) is declared with `setting(...)`, which
stores its help, label and bounds in the field's metadata; `check()` enforces the bounds
in `__post_init__`, `add_arguments()` turns the fields into CLI flags and `describe()` gives
the dashboard the same help text. A default or a bound therefore lives in exactly one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from sim_core.base.errors import SimError

MAX_SEED = 2**32 - 1        # numpy's and scikit-learn's limit for a seed


@dataclass(frozen=True)
class Choice:
    """One named choice: a key for code and files, a label and help for people."""

    key: str
    label: str
    help: str = ""


def registry(*choices: Choice) -> dict[str, Choice]:
    """Choices keyed by their key, in the order given."""
    return {choice.key: choice for choice in choices}


def setting(default: Any = MISSING, *, help: str, label: str | None = None,
            min: float | None = None, max: float | None = None, above: float | None = None,
            choices: dict[str, Choice] | Sequence[str] | None = None, none: str | None = None,
            flag: str | None = None, cli: bool = True, default_factory: Any = MISSING):
    """A dataclass field with its documentation and bounds.

    Args:
        default, default_factory: as for dataclasses.field.
        help: what the setting does, in a researcher's words.
        label: short name for forms (default: the field name with spaces).
        min, max: inclusive bounds for numbers; above: exclusive lower bound.
        choices: the allowed values (a registry or a tuple of keys).
        none: what None means, when None is allowed (e.g. "each checkpoint's own").
        flag: CLI flag name without dashes (default: the field name with dashes).
        cli: False keeps the field out of generated CLI flags.
    """
    metadata = {"help": help, "label": label, "min": min, "max": max, "above": above,
                "choices": choices, "none": none, "flag": flag, "cli": cli}
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"setting": metadata})


def _meta(field: dataclasses.Field) -> dict | None:
    return field.metadata.get("setting")


def _choice_keys(choices) -> list[str]:
    return list(choices.keys()) if isinstance(choices, dict) else list(choices)


def bounds_text(meta: dict) -> str:
    """'1 to 256', 'at least 0', 'above 0', 'one of: a, b' ('' without bounds)."""
    low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
    if meta.get("choices"):
        return "one of: " + ", ".join(_choice_keys(meta["choices"]))
    if above is not None:
        return f"above {above:g}" + (f" and at most {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return ""


def describe(cls: type, name: str) -> str:
    """The help text of one setting with its default and bounds (for CLI and dashboard)."""
    field = {f.name: f for f in fields(cls)}[name]
    meta = _meta(field) or {}
    default = field.default if field.default is not MISSING else None
    parts = [meta.get("help", "")]
    if default is None and meta.get("none"):
        parts.append(f"default: {meta['none']}")
    elif default is not None and not isinstance(default, bool):
        parts.append(f"default {default:g}" if isinstance(default, float) else
                     f"default {default}")
    bounds = bounds_text(meta)
    if bounds:
        parts.append(bounds)
    return "; ".join(p for p in parts if p)


def label(cls: type, name: str) -> str:
    """The short form label of a setting."""
    meta = _meta({f.name: f for f in fields(cls)}[name]) or {}
    return meta.get("label") or name.replace("_", " ")


def _check_value(name: str, value: Any, meta: dict, kind: type | None) -> None:
    """Raise SimError when one value breaks its declared type or bounds."""
    if value is None:
        if meta.get("none") is None:
            raise SimError(f"{name} must be given.")
        return
    if meta.get("choices") and value not in _choice_keys(meta["choices"]):
        raise SimError(f"{name} '{value}' is unknown: use "
                       + ", ".join(_choice_keys(meta["choices"])) + ".")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SimError(f"{name} must be a number, not {value!r}.")
        if kind is int and not float(value).is_integer():
            raise SimError(f"{name} must be a whole number, not {value!r}.")
        low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
        if not math.isfinite(value) or (low is not None and value < low) or \
                (high is not None and value > high) or (above is not None and value <= above):
            raise SimError(f"{name} = {value!r} is out of range: it must be "
                           f"{bounds_text(meta)}.")


def base_type(hint: Any) -> type | None:
    """int for `int` or `int | None`, float for float, etc.; None for anything else."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else None


def check(obj: Any) -> None:
    """Validate every setting field of a dataclass instance (call from __post_init__).

    Raises:
        SimError: naming the setting and its bounds.
    """
    hints = typing.get_type_hints(type(obj))
    for field in fields(obj):
        meta = _meta(field)
        if meta is not None:
            _check_value(field.name, getattr(obj, field.name), meta,
                         base_type(hints.get(field.name)))


def add_arguments(parser: argparse.ArgumentParser, cls: type,
                  names: Sequence[str] | None = None) -> None:
    """Add a CLI flag for every setting of `cls` (or those named), help and bounds included.

    Flags default to None, so `from_arguments` changes only what was given on the command
    line; the dataclass defaults stay the one source of defaults.
    """
    hints = typing.get_type_hints(cls)
    for field in fields(cls):
        meta = _meta(field)
        if meta is None or not meta["cli"] or (names is not None and field.name not in names):
            continue
        flag = "--" + (meta.get("flag") or field.name).replace("_", "-")
        kind = base_type(hints.get(field.name))
        help_text = describe(cls, field.name).replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=field.name, default=None, help=help_text,
                                action=argparse.BooleanOptionalAction)
            continue
        choices = _choice_keys(meta["choices"]) if meta.get("choices") else None
        parser.add_argument(flag, dest=field.name, default=None, type=kind or str,
                            choices=choices, help=help_text, metavar=None if choices else
                            field.name.upper())


def add_flag(parser: argparse.ArgumentParser, flag: str, default: Any, *, help: str,
             kind: type = float, **bounds: Any) -> None:
    """One CLI flag outside the config dataclasses, declared like a setting: its help, default
    and bounds in one place, the bounds checked by argparse before any work (an out-of-range
    value ends the command with a usage message naming the bounds).

    Args:
        flag: e.g. "--test-fraction".
        default: the default value (shown in the help).
        help: what the flag does.
        kind: int or float.
        **bounds: min, max, above (as for `setting`).
    """
    meta = {"help": help, "none": None, **bounds}
    name = flag.lstrip("-").replace("-", "_")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a "
                                             f"{'whole number' if kind is int else 'number'}"
                                             ) from None
        try:
            _check_value(flag, value, meta, kind)
        except SimError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    parse.__name__ = kind.__name__          # argparse names the type in its messages
    text = "; ".join(p for p in (help, f"default {default:g}" if isinstance(default, float)
                                 else f"default {default}", bounds_text(meta)) if p)
    parser.add_argument(flag, dest=name, type=parse, default=default, metavar=name.upper(),
                        help=text.replace("%", "%%"))


def from_arguments(cls: type, args: argparse.Namespace, base: Any = None) -> Any:
    """A `cls` instance: `base` (default: the defaults) with the flags that were given."""
    given = {f.name: getattr(args, f.name) for f in fields(cls)
             if _meta(f) is not None and getattr(args, f.name, None) is not None}
    return replace(base if base is not None else cls(), **given)
