"""How long a training job will take, before it starts: planned steps x a measured step time.

The step time is measured, never guessed: every finished training run keeps its mean wall
time per step in the adapter card (`step_seconds`, validation included) and its whole
duration (`train_seconds`: loading, scoring before and after included). The estimate for a
new job uses the most recent adapter trained from the same base model on the same kind of
device, scaled by rows per step (a step's cost grows about linearly with its rows) and by
the number of held-out rows to score. With no such adapter there is no estimate; the job's
own bar shows the time left once its first steps have run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from finetune.config import TrainConfig
from finetune.rows import balance_groups
from sim_core.evaluation.splits import Split
from sim_core.simulation.adapters import AdapterInfo, list_adapters


def duration_words(seconds: float) -> str:
    """A rough duration: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class DurationEstimate:
    """A training job's planned steps and, where a measurement exists, its duration.

    steps: optimizer steps planned (early stopping may end sooner).
    seconds: the whole job (training, loading, scoring), None without a measurement.
    training_seconds: the training steps alone.
    step_seconds: seconds per step used (scaled to this job's rows per step).
    measured_on: the adapter whose training gave the step time.
    """
    steps: int
    seconds: float | None = None
    training_seconds: float | None = None
    step_seconds: float | None = None
    measured_on: str | None = None

    def text(self) -> str:
        """One sentence for the form."""
        if self.seconds is None:
            return (f"{self.steps} training steps planned (fewer if validation stops it "
                    "early). No adapter has been trained from this base model on this kind "
                    "of device yet, so there is no measured step time: the job's bar shows "
                    "the time left after its first steps.")
        return (f"About {duration_words(self.seconds)} in all: {self.steps} steps × "
                f"{self.step_seconds:.2g} s ({duration_words(self.training_seconds)}, measured "
                f"when '{self.measured_on}' was trained here), plus loading the model and "
                "scoring the held-out rows before and after. Validation may stop it sooner.")


def planned_steps(n_rows: int, config: TrainConfig) -> int:
    """Optimizer steps the Trainer will plan: max_steps when set, else epochs over batches
    of batch_size rows (transformers.Trainer: ceil(epochs x ceil(rows / batch)))."""
    if config.max_steps:
        return int(config.max_steps)
    per_epoch = math.ceil(max(n_rows, 0) / config.batch_size)
    return math.ceil(config.epochs * per_epoch)


def _device_kind(device: str | None) -> str:
    """"cuda" or "cpu" (a card's device may read "cuda:0" or "2 processes on cuda")."""
    return "cuda" if device and "cuda" in device else "cpu"


def _measured(base: str, device: str) -> AdapterInfo | None:
    """The newest adapter trained from `base` on this kind of device with a step time."""
    same = [a for a in list_adapters()
            if not a.card.error and a.card.step_seconds and a.card.base_model == base
            and _device_kind(a.card.device) == _device_kind(device)
            and a.card.hyperparameters.get("batch_size")]
    return max(same, key=lambda a: a.card.date or "", default=None)


def estimate_duration(split: Split, config: TrainConfig, base: str,
                      device: str = "cpu") -> DurationEstimate:
    """Planned steps for these rows and settings, and the duration where a measurement of
    the same base model on the same kind of device exists (see the module docstring).

    Args:
        split: the rows (train rows are counted after group balancing, as training does).
        config: the TrainConfig the job will use.
        base: the base model name the job will load (as load_model is given it).
        device: where the job will run ("cpu", "cuda", "cuda:N", "auto" as resolved).
    """
    rows = len(balance_groups(split.train, config.balance_floor, config.seed))
    steps = planned_steps(rows, config)
    info = _measured(base, device)
    if info is None:
        return DurationEstimate(steps=steps)
    card = info.card
    step = card.step_seconds * config.batch_size / card.hyperparameters["batch_size"]
    training = steps * step
    # loading and scoring: what the measured job spent outside its steps, scaled by the
    # held-out rows to score (the model load is a small part on CPU)
    outside = max((card.train_seconds or 0.0) - (card.steps or 0) * card.step_seconds, 0.0)
    scale = (len(split.test) / card.test_rows) if card.test_rows else 1.0
    return DurationEstimate(steps=steps, seconds=training + outside * scale,
                            training_seconds=training, step_seconds=step,
                            measured_on=info.name)
