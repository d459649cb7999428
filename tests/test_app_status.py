"""The status box under the Run buttons (dashboard/status.status_box): counts in the user's
units, time left at the measured pace, and where it sits on the page."""

from __future__ import annotations

import pytest

from dashboard.status import StatusBox, count_text, eta_text


def test_count_text_in_user_units():
    """One checkpoint: "slice 12 of 47"; two: the core counts 2 x 47 slices."""
    assert count_text("slice", 12, 47) == "slice 12 of 47"
    assert count_text("slice", 47, 94, checkpoints=2) == "checkpoint 1 of 2 · slice 47 of 47"
    assert count_text("slice", 48, 94, checkpoints=2) == "checkpoint 2 of 2 · slice 1 of 47"
    assert count_text("slice", 94, 94, checkpoints=2) == "checkpoint 2 of 2 · slice 47 of 47"
    assert count_text("slice", 0, 94, checkpoints=2) == "checkpoint 1 of 2 · slice 0 of 47"
    assert count_text("", 250, 1000) == "25% done"


def test_eta_text_rounds_to_words():
    assert eta_text(0.2) == "about 1 s left"
    assert eta_text(42.4) == "about 42 s left"
    assert eta_text(89) == "about 89 s left"
    assert eta_text(150) == "about 2 min left"       # 2.5 rounds to even
    assert eta_text(210) == "about 4 min left"


class _Recorder:
    """Stands in for st.status / st.progress: keeps what the box was told to show."""

    def __init__(self):
        self.labels, self.bars = [], []

    def update(self, label=None, state=None, **_):
        self.labels.append(label)

    def progress(self, value, text=None):
        self.bars.append((value, text))


def test_status_box_time_left_from_measured_pace(monkeypatch):
    """12 of 47 slices after 24 s at this step: 2 s a slice, 35 left -> about 70 s."""
    clock = iter([100.0, 124.0])
    monkeypatch.setattr("dashboard.status.time.monotonic", lambda: next(clock))
    box, bar = _Recorder(), _Recorder()
    status = StatusBox(box, bar, "x_stop", "slice", started=0.0)
    status.step("Simulating")
    status.progress(0, 47)        # the count starts: pace measured from here
    status.progress(12, 47)
    assert box.labels[-1] == "Simulating: slice 12 of 47 · about 70 s left"
    assert bar.bars[-1] == (pytest.approx(12 / 47), "slice 12 of 47 · about 70 s left")
