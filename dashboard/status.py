"""The status of one run, right under its Run button: the step in words, a bar with a real
count and the time left measured on this run, and a Stop button."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import streamlit as st


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
