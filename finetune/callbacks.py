"""Trainer callbacks: progress events, validation with early stopping, cancel requests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from finetune import distributed
from finetune.loss import RowCollator, masked_log_probs
from sim_core.base.metrics import compute
from sim_core.simulation.local import letter_logits
from sim_core.simulation.prompts import build_prompt
from sim_core.survey.slices import SurveyRow


@torch.no_grad()
def letter_distributions(model: Any, tokenizer: Any, rows: Sequence[SurveyRow],
                         batch_size: int = 8, style=None) -> list[np.ndarray]:
    """Model letter distributions of rows in their original option order (one order)."""
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            kmax = max(len(r.question.options) for r in chunk)
            prompts = [build_prompt(tokenizer, r.question, r.slice, style=style) for r in chunk]
            mask = torch.zeros(len(chunk), kmax, dtype=torch.bool)
            for i, r in enumerate(chunk):
                mask[i, :len(r.question.options)] = True
            logp = letter_logits(model, tokenizer, prompts, kmax).float().cpu()
            q = masked_log_probs(logp, mask).exp().numpy().astype(np.float64)
            out += [q[i, :len(r.question.options)] for i, r in enumerate(chunk)]
    finally:
        model.train(was_training)
    return out


def validation_scores(model: Any, tokenizer: Any, rows: Sequence[SurveyRow],
                      batch_size: int = 8, style=None) -> dict[str, float]:
    """Mean KL and (ordinal rows) Wasserstein of the model on validation rows.

    With several training processes each scores its share of the rows and the sums are
    added up: every process gets the same scores, hence the same early-stopping decision.
    """
    mine = distributed.share(rows)
    dists = letter_distributions(model, tokenizer, mine, batch_size, style) if mine else []
    kl = [float(compute("kl", r.dist, q)) for r, q in zip(mine, dists)]
    wd = [float(compute("wasserstein", r.dist, q, ordinal_values=r.question.ordinal_values))
          for r, q in zip(mine, dists) if r.question.is_ordinal]
    kl_sum, kl_n, wd_sum, wd_n = distributed.all_sum(
        [sum(kl), len(kl), sum(wd), len(wd)], next(model.parameters()).device)
    scores = {"kl": kl_sum / kl_n}
    if wd_n:
        scores["wasserstein"] = wd_sum / wd_n
    return scores


class TrainingMonitor(TrainerCallback):
    """Progress events, per-epoch option shuffling, validation, early stopping and cancel.

    Args:
        collator: its `epoch` is set at every epoch start (fresh option orders).
        val_rows: rows scored every `eval_every` steps (None: at each epoch end).
        tokenizer: for validation prompts.
        callback: receives event dicts (step, total_steps, epoch, loss, val, eta_s).
        should_stop: polled after every step; True stops training (no adapter is saved).
        patience: validations without improvement of val KL before stopping early.
        loss_of: returns the loss of the last step (set by the trainer).
    """

    def __init__(self, collator: RowCollator, val_rows: list[SurveyRow], tokenizer: Any, *,
                 callback: Callable[[dict], None] | None, should_stop: Callable[[], bool] | None,
                 eval_every: int | None, patience: int, loss_of: Callable[[], float | None],
                 batch_size: int = 8):
        self.collator, self.val_rows, self.tokenizer = collator, val_rows, tokenizer
        self.callback, self.should_stop = callback, should_stop
        self.eval_every, self.patience, self.loss_of = eval_every, patience, loss_of
        self.batch_size = batch_size
        self.cancelled = False
        self.best: float = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_step = 0
        self.bad_evals = 0
        self.val_history: list[dict] = []
        self.loss_history: list[dict] = []
        self._t0 = time.time()
        self._last_step_end = self._t0
        self._first_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0, self._first_step = time.time(), state.global_step

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(math.floor(state.epoch or 0))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        loss = self.loss_of()
        self.loss_history.append({"step": state.global_step, "loss": loss})
        val = None
        if self.val_rows and self.eval_every and state.global_step % self.eval_every == 0:
            val = self._validate(model, state, control)
        # every process takes part (one that stopped alone would hang the others); only
        # the main one may have a should_stop (the job's cancel file)
        asked = self.should_stop is not None and self.should_stop()
        if distributed.any_true(asked, next(model.parameters()).device):
            self.cancelled = True
            control.should_training_stop = True
        self._emit(state, loss, val)
        self._last_step_end = time.time()
        return control

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.val_rows and not self.eval_every:
            self._emit(state, self.loss_of(), self._validate(model, state, control))
        return control

    def _validate(self, model, state, control) -> dict:
        """Score the validation rows; keep the best LoRA weights; stop when patience is out."""
        scores = validation_scores(model, self.tokenizer, self.val_rows, self.batch_size,
                                   self.collator.style)
        self.val_history.append({"step": state.global_step, **scores})
        if scores["kl"] < self.best - 1e-6:
            self.best, self.best_step, self.bad_evals = scores["kl"], state.global_step, 0
            self.best_state = {k: v.detach().clone() for k, v in model.named_parameters()
                               if v.requires_grad}
        else:
            self.bad_evals += 1
            if self.patience and self.bad_evals >= self.patience:
                control.should_training_stop = True
        return scores

    def _emit(self, state, loss, val) -> None:
        """Send one progress event."""
        if self.callback is None:
            return
        done = state.global_step - (self._first_step or 0)
        left = max(state.max_steps - state.global_step, 0)
        eta = (time.time() - self._t0) / done * left if done > 0 else None
        self.callback({"step": state.global_step, "total_steps": state.max_steps,
                       "epoch": float(state.epoch or 0), "loss": loss, "val": val,
                       "eta_s": eta})

    @property
    def step_seconds(self) -> float | None:
        """Mean wall time per training step so far (validation included), measured on this
        run; None before the first step. Kept in the adapter card: the Fine-tune form
        estimates the next run's duration from it."""
        done = (self.loss_history[-1]["step"] if self.loss_history else 0) - (self._first_step or 0)
        return (self._last_step_end - self._t0) / done if done > 0 else None

    def restore_best(self, model) -> bool:
        """Put the best validated LoRA weights back (early stopping keeps the best)."""
        if self.best_state is None:
            return False
        params = dict(model.named_parameters())
        with torch.no_grad():
            for key, value in self.best_state.items():
                params[key].copy_(value)
        return True


class PhaseProgress:
    """Progress of work outside the training steps (loading, scoring before or after
    training) as callback events {"phase", "done", "total", "eta_s"}, so the job page can
    show a bar and a time left there too; parts map the core's progress(done, total)."""

    def __init__(self, callback: Callable[[dict], None] | None, phase: str, total: int):
        self.callback, self.phase, self.total = callback, phase, max(int(total), 1)
        self.offset, self.started = 0, time.monotonic()
        self.emit(0)

    def part(self, size: int) -> Callable[[int, int], None]:
        """A progress(done, total) callback for the next `size` units of the phase."""
        offset = self.offset
        self.offset += size

        def report(done: int, total: int) -> None:
            self.emit(offset + int(done / max(total, 1) * size))
        return report

    def emit(self, done: int) -> None:
        """Send one event; the time left is measured on this phase so far."""
        if self.callback is None:
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (self.total - done) if done else None
        self.callback({"phase": self.phase, "done": done, "total": self.total, "eta_s": eta})
