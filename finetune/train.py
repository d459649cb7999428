"""Train a LoRA / QLoRA adapter on survey rows and save it, with its card, to the registry.

Built on the transformers Trainer (custom loss and data collator) with peft and accelerate
underneath, so `accelerate launch -m finetune train ...` runs the same code on several GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments

from finetune import distributed
from finetune.base import check_qlora, load_base, training_device, training_dtype
from finetune.callbacks import PhaseProgress, TrainingMonitor
from finetune.checkpoints import SealCheckpoints, last_whole_checkpoint
from finetune.config import TrainConfig
from finetune.loss import RowCollator, batch_loss
from finetune.rows import balance_groups, describe_rows, reweight_slices, split_to_json
from sim_core.base.errors import Cancelled, DataError, ModelError, SimError
from sim_core.base.labels import baseline_entry
from sim_core.base.reading import write_json_atomic
from sim_core.base.writing import failure_message, is_storage_failure, make_folder
from sim_core.evaluation.baselines import ROW_BASELINES
from sim_core.evaluation.calibration_runs import fit_on_rows, heldout_measurement, heldout_unit
from sim_core.evaluation.evaluate import evaluate_rows, mean_scores, uncalibrated
from sim_core.evaluation.fairness import fairness_record, group_gaps
from sim_core.evaluation.splits import Split
from sim_core.simulation.adapter_card import AdapterCard
from sim_core.simulation.adapters import check_new_adapter, save_adapter
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.config import SimConfig
from sim_core.simulation.local import letter_logits
from sim_core.simulation.prompts import PromptStyle
from sim_core.survey.schema import LETTERS

# Phases outside the training steps, as named in progress events and on the job page.
LOADING, BEFORE, AFTER = "loading the model", "scoring before training", "scoring the adapter"


@dataclass
class TrainResult:
    """What train_adapter produced: the saved adapter, its card, and held-out scores (raw;
    the card also holds them calibrated, the calibration and the verdict's measurement)."""

    adapter_path: Path
    card: AdapterCard
    before: dict[str, float]
    after: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    model: Any = field(default=None, repr=False)      # the trained peft model, in memory
    # the base model's calibration on the same validation rows (its card's zero-shot side)
    zero_shot_calibration: Calibration | None = None


def _check_inputs(split: Split, config: TrainConfig) -> None:
    """Clear messages for inputs that cannot train (the config checks its own bounds)."""
    if not split.train:
        raise DataError("No training rows left after the split; use more data or a smaller "
                        "test fraction.")
    too_many = [r.question.id for r in split.train if len(r.question.options) > len(LETTERS)]
    if too_many:
        raise DataError(f"Question '{too_many[0]}' has more than {len(LETTERS)} options.")


def _sim_config(config: TrainConfig, style: PromptStyle) -> SimConfig:
    """Simulation settings for the before/after evaluation (no cache: weights change), in
    the prompt style the adapter is trained with."""
    # batch_size None: as many prompts per pass as the training device suits
    sim = SimConfig(use_cache=False, seed=config.seed, batch_size=None, style=style)
    return dataclasses.replace(sim, orders=config.eval_orders) if config.eval_orders else sim


def reference_rows(split: Split) -> list:
    """Rows whose per-question mean is the population baseline on the held-out rows: the
    groups seen in training for a slice split, else the held-out rows themselves (for a
    question split an oracle: the real average of the groups of the same question)."""
    return split.train + split.val if split.info.how == "slice" else split.test


def _held_out(lm, split: Split, sim: SimConfig, calibration, baselines=(),
              progress=None, should_stop=None) -> dict:
    """Mean held-out scores of lm raw and calibrated, and the distributions per row."""
    ev = evaluate_rows([lm], split.test, config=sim, baselines=baselines,
                       reference_rows=reference_rows(split), calibrations=[calibration],
                       progress=progress, should_stop=should_stop)
    label = ev.entries[0]
    raw = ev.raw_dists.get(label, ev.dists[label])
    return {"raw": mean_scores(split.test, raw),
            "calibrated": mean_scores(split.test, ev.dists[label]) if ev.calibrated[label]
            else {},
            "baselines": {b: mean_scores(split.test, ev.dists[baseline_entry(b)])
                          for b in baselines},
            "dists": {"raw": raw, **{b: ev.dists[baseline_entry(b)] for b in baselines}},
            # per-group gaps (sim_core.evaluation.fairness, KL) on the raw shares, like the card's
            # before/after scores
            "groups": group_gaps(uncalibrated(ev), label, "kl").to_dict()}


def _calibrate(lm, split: Split, sim: SimConfig, progress=None, should_stop=None):
    """lm's calibration on the validation rows (None without any)."""
    if not split.val:
        return None
    return fit_on_rows(lm, split.val, sim, prior_rows=split.train,
                       fitted_on={"rows": "validation rows of the split"},
                       progress=progress, should_stop=should_stop)


def _scoring(on_phase, should_stop, phase: str, split: Split, config: TrainConfig):
    """(PhaseProgress over the validation + held-out rows, the stop poll or None): under
    several processes only one sees the cancel file, so scoring is not stopped midway."""
    tested = len(split.test) if split.test and config.evaluate_test else 0
    stop = should_stop if distributed.world_size() == 1 else None
    return PhaseProgress(on_phase, phase, len(split.val) + tested), stop


def _listed(dists: dict) -> dict:
    """Distributions as JSON lists (None kept)."""
    return {k: [None if d is None else [float(x) for x in d] for d in v]
            for k, v in dists.items()}


class SurveyTrainer(Trainer):
    """Trainer whose loss is the letter-distribution loss of finetune.loss."""

    def __init__(self, *args, survey_tokenizer=None, train_config: TrainConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.survey_tokenizer = survey_tokenizer
        self.train_config = train_config
        self.last_loss: float | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kmax = inputs["mask"].shape[1]
        logp = letter_logits(model, self.survey_tokenizer, inputs["prompts"], kmax)
        config = self.train_config
        loss = batch_loss(logp, inputs, config.loss, config.ordinal_lambda, config.ce_lambda,
                          config.fairness_lambda, config.fairness_spread)
        self.last_loss = float(loss.detach())
        return (loss, None) if return_outputs else loss


class _IndexDataset(torch.utils.data.Dataset):
    """Row indices; the collator builds prompts, so option orders can change per epoch."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"index": i}


def _training_args(config: TrainConfig, out_dir: Path, device: str,
                   dtype: str) -> TrainingArguments:
    """TrainingArguments: our own progress and validation, checkpoints for resuming, the
    device and mixed precision. Building them starts the process group under a launcher."""
    cuda = device.startswith("cuda")
    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, learning_rate=config.lr,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        lr_scheduler_type="linear", seed=config.seed, logging_strategy="no",
        save_strategy="steps", save_steps=config.save_every, save_total_limit=2,
        report_to="none", disable_tqdm=True, remove_unused_columns=False,
        dataloader_num_workers=0, use_cpu=not cuda, bf16=cuda and dtype == "bfloat16",
        fp16=cuda and dtype == "float16",
        ddp_find_unused_parameters=False)     # every LoRA weight is used in every step
    if args.device.type == "cuda" and distributed.world_size() == 1:
        # One process trains on one GPU; the Trainer would otherwise wrap the model in
        # DataParallel over every visible GPU (several GPUs: accelerate launch).
        args._n_gpu = 1
    return args


def _lora(model, config: TrainConfig):
    """Wrap the base model with a fresh LoRA adapter (base weights frozen by peft)."""
    from peft import LoraConfig, get_peft_model

    layers = None
    if config.top_layers:
        # Adapting only the top layers means the backward pass stops there: cheaper steps.
        n_layers = model.config.num_hidden_layers
        layers = list(range(max(0, n_layers - config.top_layers), n_layers))
    lora = LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM",
                      bias="none", layers_to_transform=layers)
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise ModelError(f"LoRA target modules {list(config.target_modules)} do not fit this "
                         f"model: {error}") from error


def _card(name: str, lm, split: Split, config: TrainConfig, data_info: dict | None,
          scores: dict, monitor: TrainingMonitor, state, seconds: float,
          style: PromptStyle) -> AdapterCard:
    """The adapter card (card.json): what was trained on what, how, and how well."""
    seen = describe_rows(split.train + split.val)
    return AdapterCard(
        name=name, base_model=lm.name, base_label=lm.label, base_fingerprint=lm.fingerprint,
        data=dict(data_info or {}), questions_seen=seen["questions"],
        slices_seen=seen["slices"], split=split.info.to_dict(), loss=config.loss,
        # Trained on the original option order: its order carries what it learned, so the
        # simulator uses that order alone unless told otherwise
        # (sim_core.simulation.simulate.orders_for).
        inference_orders=None if config.shuffle_options else 1,
        hyperparameters={**{k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in asdict(config).items()},
                         "lora_alpha": config.lora_alpha},
        prompt_style=asdict(style), before=scores["before"], after=scores["after"],
        before_calibrated=scores["before_calibrated"],
        after_calibrated=scores["after_calibrated"], baselines=scores["baselines"],
        calibration=scores["calibration"].to_dict() if scores["calibration"] else None,
        heldout=scores["heldout"].to_dict() if scores["heldout"] else None,
        fairness=scores["fairness"],
        test_rows=len(split.test), steps=state.global_step,
        best_val_step=monitor.best_step or None, val_history=monitor.val_history,
        train_seconds=round(seconds, 1),
        step_seconds=None if monitor.step_seconds is None else round(monitor.step_seconds, 3),
        device=lm.placement if distributed.world_size() == 1 else
        f"{distributed.world_size()} processes on {lm.device.split(':')[0]}",
        processes=distributed.world_size(),
        date=datetime.now(UTC).isoformat(timespec="seconds"))


def _zero_shot(lm, split: Split, config: TrainConfig, sim: SimConfig, job_dir: Path,
               on_phase=None, should_stop=None) -> dict:
    """The base model before LoRA touches it: its calibration on the validation rows and its
    held-out scores and distributions, cached in the job folder for resumed runs; progress
    events of the phase "scoring before training", should_stop polled between batches."""
    cached = job_dir / "before.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass                     # none yet (or unreadable): score again
    phase, stop = _scoring(on_phase, should_stop, BEFORE, split, config)
    calibration = _calibrate(lm, split, sim, phase.part(len(split.val)), stop)
    out = {"calibration": calibration.to_dict() if calibration else None, "before": {},
           "before_calibrated": {}, "baselines": {}, "dists": {}}
    if split.test and config.evaluate_test:
        scores = _held_out(lm, split, sim, calibration, ROW_BASELINES,
                           phase.part(len(split.test)), stop)
        out.update(before=scores["raw"], before_calibrated=scores["calibrated"],
                   baselines=scores["baselines"], dists=_listed(scores["dists"]),
                   groups=scores["groups"])
    if distributed.is_main():
        write_json_atomic(cached, out)
    return out


def _measure(tuned, split: Split, config: TrainConfig, sim: SimConfig, zero: dict,
             data_info: dict | None, on_phase=None, should_stop=None) -> dict:
    """The adapter's calibration, held-out scores (raw and calibrated) and the verdict's
    measurement against the uniform guess, the population average and zero-shot."""
    phase, stop = _scoring(on_phase, should_stop, AFTER, split, config)
    calibration = _calibrate(tuned, split, sim, phase.part(len(split.val)), stop)
    out = {"calibration": calibration, "after": {}, "after_calibrated": {}, "heldout": None,
           "fairness": None}
    if not (split.test and config.evaluate_test):
        return out
    scores = _held_out(tuned, split, sim, calibration, (), phase.part(len(split.test)), stop)
    dists = zero["dists"]
    zero_calibration = Calibration.from_dict(zero["calibration"]) \
        if zero.get("calibration") else None
    heldout = heldout_measurement(
        split.test, scores["dists"]["raw"], calibration, dists, kind="adapter",
        unit=heldout_unit(split.info), survey=str((data_info or {}).get("survey") or ""),
        level=sim.interval_level, zero_shot=dists.get("raw"),
        zero_shot_calibration=zero_calibration)
    out.update(after=scores["raw"], after_calibrated=scores["calibrated"], heldout=heldout,
               fairness=fairness_record(zero["groups"], scores["groups"])
               if zero.get("groups") else None)
    return out


def train_adapter(split: Split, *, name: str, base: str = "default",
                  config: TrainConfig | None = None, data_info: dict | None = None,
                  callback: Callable[[dict], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, overwrite: bool = False,
                  job_dir: str | Path | None = None,
                  style: PromptStyle | None = None,
                  on_phase: Callable[[dict], None] | None = None) -> TrainResult:
    """Train a LoRA (or QLoRA) adapter on split.train and save it to the adapter registry.

    Args:
        split: rows from finetune.rows.split_rows (val: early stopping; test: before/after).
        name: registry name of the new adapter.
        base: "default" (embedded model), a model folder or name (sim_core.simulation.models).
        config: hyperparameters (TrainConfig defaults).
        data_info: data fingerprint, file name etc. for the card.
        callback: progress events {step, total_steps, epoch, loss, val, eta_s}.
        should_stop: polled after every step, after loading and between scoring batches
            (one process); True raises Cancelled and saves nothing.
        overwrite: replace an existing adapter of the same name.
        job_dir: folder for checkpoints; an interrupted run given the same folder resumes
            from its last checkpoint. Default: a temporary folder, removed afterwards.
        style: how prompts are written (PromptStyle().for_survey(survey): the survey's
            population and display names); default the simulator's default wording.
        on_phase: progress outside the steps, events {phase, done, total, eta_s} with
            phase LOADING, BEFORE or AFTER (done, total: rows scored).
    Returns:
        TrainResult with the adapter path, card and mean scores before / after.
    Raises:
        AdapterError (name taken), ModelError (QLoRA without CUDA, unknown model),
        DataError (no rows), Cancelled (stopped; no adapter saved).
    """
    config = config or TrainConfig()
    check_qlora(config)
    device = training_device(config.device)       # before any loading
    _check_inputs(split, config)
    check_new_adapter(name, overwrite)
    temp = job_dir is None
    work = Path(tempfile.mkdtemp(prefix="finetune-")) if temp else make_folder(Path(job_dir))
    try:
        return _run(split, name, base, config, data_info, (callback, on_phase), should_stop,
                    overwrite, work, device, style)
    except torch.OutOfMemoryError as error:
        raise ModelError(f"Out of memory on {device} while training '{name}' (batch size "
                         f"{config.batch_size}); no adapter was saved. Use a smaller "
                         "--batch-size, --top-layers, or QLoRA (--qlora).") from error
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)


def _train(trainer: Trainer, checkpoints: Path, name: str) -> None:
    """trainer.train, resumed from the last whole checkpoint; a full or read-only disk
    becomes one SimError (the whole checkpoints stay for a later resume)."""
    try:
        trainer.train(resume_from_checkpoint=last_whole_checkpoint(checkpoints))
    except Exception as error:
        if not is_storage_failure(error):
            raise
        raise SimError(f"Training of '{name}' stopped: "
                       f"{failure_message(error, checkpoints)} Free some space and run it "
                       "again with the same job folder to resume; no adapter was saved."
                       ) from error


def _run(split, name, base, config, data_info, callbacks, should_stop, overwrite,
         work: Path, device: str, style: PromptStyle | None) -> TrainResult:
    """train_adapter after the checks: load, score before, train, score after, save;
    callbacks: (step events, phase events)."""
    callback, on_phase = callbacks
    started = time.time()
    torch.manual_seed(config.seed)
    dtype = training_dtype(config, device)
    args = _training_args(config, work / "checkpoints", device, dtype)
    if not distributed.same_everywhere(json.dumps(split_to_json(split), sort_keys=True),
                                       device):
        raise DataError("The training processes split the rows differently (different data "
                        "or seed per process?); nothing was trained.")
    PhaseProgress(on_phase, LOADING, 1)
    lm = load_base(base, config, device, dtype)
    _stop_if_asked(should_stop, name, "after loading the model")
    # Under FSDP the weights are sharded over the GPUs only once training starts: the base
    # model is scored afterwards, with the adapter switched off.
    # Training prompts use the survey's style (population, display names; the simulator's
    # wording otherwise); the card records it, so that a simulation with other wording can
    # warn that the adapter never saw it. Scoring before and after uses the same style.
    style = style or PromptStyle()
    sim = _sim_config(config, style)
    try:
        zero = None if distributed.fsdp() else _zero_shot(lm, split, config, sim, work,
                                                          on_phase, should_stop)
    except Cancelled as error:
        raise Cancelled(f"Training of '{name}' cancelled while {BEFORE}; no adapter was "
                        "saved.") from error
    model = _lora(lm.model, config)
    trainer, monitor = _fit(model, lm.tokenizer, split, config, args, callback,
                            should_stop, work, name, style)
    if monitor.cancelled:
        raise Cancelled(f"Training of '{name}' stopped at step {trainer.state.global_step}; "
                        "no adapter was saved.")
    if trainer.state.global_step == 0:
        raise DataError(f"No training step ran for '{name}' (no rows or no steps); no "
                        "adapter was saved.")
    monitor.restore_best(model)
    model.eval()
    on_device = dataclasses.replace(lm, model=model, device=str(args.device))
    if zero is None:
        with model.disable_adapter():
            zero = _zero_shot(on_device, split, config, sim, work, on_phase, should_stop)
    # scored as the simulator will read it (orders from its card; see _card)
    tuned = dataclasses.replace(on_device, adapter=name, calibration=None,
                                inference_orders=None if config.shuffle_options else 1)
    scores = {**zero, **_measure(tuned, split, config, sim, zero, data_info, on_phase,
                                 should_stop)}
    card = _card(name, on_device, split, config, data_info, scores, monitor, trainer.state,
                 time.time() - started, style)
    zero_calibration = Calibration.from_dict(zero["calibration"]) \
        if zero.get("calibration") else None
    return _save(trainer, model, name, card, scores, overwrite, zero_calibration)


def _stop_if_asked(should_stop, name: str, when: str) -> None:
    """Raise Cancelled (nothing saved) when a stop was asked; single process only (see
    _scoring)."""
    if should_stop is not None and distributed.world_size() == 1 and should_stop():
        raise Cancelled(f"Training of '{name}' cancelled {when}; no adapter was saved.")


def _fit(model, tokenizer, split: Split, config: TrainConfig, args, callback, should_stop,
         work: Path, name: str, style: PromptStyle):
    """Train (resuming from the last whole checkpoint in work/checkpoints) on prompts in
    `style`; (trainer, monitor)."""
    rows = balance_groups(split.train, config.balance_floor, config.seed)
    rows = reweight_slices(rows) if config.reweight else rows
    collator = RowCollator(rows, tokenizer, shuffle=config.shuffle_options, seed=config.seed,
                           style=style)
    trainer = SurveyTrainer(model=model, args=args,
                            train_dataset=_IndexDataset(len(rows)), data_collator=collator,
                            survey_tokenizer=tokenizer, train_config=config)
    monitor = TrainingMonitor(collator, list(split.val), tokenizer, callback=callback,
                              should_stop=should_stop, eval_every=config.eval_every,
                              patience=config.patience, loss_of=lambda: trainer.last_loss,
                              batch_size=config.batch_size)
    trainer.add_callback(monitor)
    trainer.add_callback(SealCheckpoints())
    trainer.remove_callback(PrinterCallback)      # keeps stdout clean for --json
    _train(trainer, work / "checkpoints", name)
    return trainer, monitor


def _save(trainer, model, name: str, card: AdapterCard, scores: dict, overwrite: bool,
          zero_calibration: Calibration | None) -> TrainResult:
    """One adapter and card, written by the main process (rank 0)."""
    # FSDP: gathering the full weights takes every process; elsewhere rank 0 has them all
    state = trainer.accelerator.get_state_dict(model) if distributed.fsdp() else None
    result = TrainResult(Path(), card, scores["before"], scores["after"], scores["baselines"],
                         model, zero_calibration)
    if not trainer.is_world_process_zero():
        return result
    result.adapter_path = save_adapter(lambda folder: model.save_pretrained(
        folder, safe_serialization=True, state_dict=state), name, card, overwrite=overwrite)
    return result
