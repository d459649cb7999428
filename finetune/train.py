"""Train a LoRA / QLoRA adapter on survey rows and save it, with its card, to the registry.

Built on the transformers Trainer (custom loss and data collator) with peft and accelerate
underneath, so `accelerate launch -m finetune train ...` runs the same code on several GPUs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from finetune.callbacks import TrainingMonitor
from finetune.config import TrainConfig
from finetune.loss import RowCollator, batch_loss
from finetune.rows import Split, balance_groups, describe_rows, reweight_slices
from sim_core.adapters import AdapterCard, adapters_dir, save_adapter
from sim_core.baselines import ROW_BASELINES
from sim_core.errors import AdapterError, Cancelled, DataError, ModelError
from sim_core.evaluate import evaluate_rows
from sim_core.fairness import fairness_record, group_gaps
from sim_core.labels import baseline_entry
from sim_core.metrics import METRICS
from sim_core.models import load_model, resolve_model
from sim_core.prompts import LETTERS, PromptStyle
from sim_core.simulate import SimConfig, letter_logits
from sim_core.workspace import safe_name


@dataclass
class TrainResult:
    """What train_adapter produced: the saved adapter, its card, and held-out scores."""

    adapter_path: Path
    card: AdapterCard
    before: dict[str, float]
    after: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    model: Any = field(default=None, repr=False)      # the trained peft model, in memory


def check_qlora(config: "TrainConfig") -> None:
    """Refuse QLoRA before any work unless CUDA and bitsandbytes are both present."""
    if not config.qlora:
        return
    if not torch.cuda.is_available():
        raise ModelError("QLoRA (4-bit) training needs a CUDA GPU; this machine has none. "
                         "Train a plain LoRA adapter instead (leave out --qlora): 4-bit "
                         "training on CPU can silently stop learning.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("QLoRA needs the bitsandbytes package, which is not installed "
                         "(pip install bitsandbytes), or leave out --qlora.")


def _check_inputs(split: Split, config: TrainConfig) -> None:
    """Clear messages for inputs that cannot train (the config checks its own bounds)."""
    if not split.train:
        raise DataError("No training rows left after the split; use more data or a smaller "
                        "test fraction.")
    too_many = [r.question.id for r in split.train if len(r.question.options) > len(LETTERS)]
    if too_many:
        raise DataError(f"Question '{too_many[0]}' has more than {len(LETTERS)} options.")


def _load_base(base: str, config: TrainConfig):
    """The base model as a LoadedModel, in float32 (LoRA) or 4-bit NF4 (QLoRA)."""
    if not config.qlora:
        return load_model(base, dtype=config.dtype)
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    lm = load_model(base, dtype="bfloat16")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(base), quantization_config=quant,
                                                 trust_remote_code=False)
    lm.model = prepare_model_for_kbit_training(model)
    return lm


def _sim_config(config: TrainConfig):
    """Simulation settings for the before/after evaluation (no cache: weights change)."""
    sim = SimConfig(use_cache=False, seed=config.seed, batch_size=config.batch_size)
    return dataclasses.replace(sim, orders=config.eval_orders) if config.eval_orders else sim


def _mean_scores(evaluation, entry: str) -> dict[str, float]:
    """Mean of every score over the rows of one evaluation entry."""
    df = evaluation.rows[evaluation.rows["entry"] == entry]
    return {k: float(df[k].mean()) for k in METRICS if k in df and df[k].notna().any()}


def _evaluate(lm, rows, config: TrainConfig, baselines=()) -> tuple[dict, dict, dict]:
    """Mean scores of lm (and the named baselines) on held-out rows, and lm's per-group
    gaps (sim_core.fairness.GroupGaps.to_dict, in KL)."""
    if not rows or not config.evaluate_test:
        return {}, {}, {}
    ev = evaluate_rows([lm], rows, config=_sim_config(config), baselines=baselines)
    return (_mean_scores(ev, lm.label),
            {b: _mean_scores(ev, baseline_entry(b)) for b in baselines},
            group_gaps(ev, lm.label, "kl").to_dict())


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


def _training_args(config: TrainConfig, out_dir: Path) -> TrainingArguments:
    """TrainingArguments: our own progress and validation, checkpoints for resuming."""
    return TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, learning_rate=config.lr,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        lr_scheduler_type="linear", seed=config.seed, logging_strategy="no",
        save_strategy="steps", save_steps=config.save_every, save_total_limit=2,
        report_to="none", disable_tqdm=True, remove_unused_columns=False,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(),
        bf16=config.qlora)


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


def _existing_adapter(name: str) -> bool:
    """Whether the registry already holds an adapter of this name."""
    return (adapters_dir() / safe_name(name)).exists()


def _card(name: str, lm, split: Split, config: TrainConfig, data_info: dict | None,
          scores: dict, monitor: TrainingMonitor, state, seconds: float,
          style: PromptStyle) -> AdapterCard:
    """The adapter card (card.json): what was trained on what, how, and how well."""
    seen = describe_rows(split.train + split.val)
    return AdapterCard(
        name=name, base_model=lm.name, base_label=lm.label, base_fingerprint=lm.fingerprint,
        data=dict(data_info or {}), questions_seen=seen["questions"],
        slices_seen=seen["slices"], split=split.info, loss=config.loss,
        # Trained on the original option order: its order carries what it learned, so the
        # simulator uses that order alone unless told otherwise (sim_core.simulate.orders_for).
        inference_orders=None if config.shuffle_options else 1,
        hyperparameters={**{k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in asdict(config).items()},
                         "lora_alpha": config.lora_alpha},
        prompt_style=asdict(style), before=scores["before"], after=scores["after"],
        baselines=scores["baselines"], fairness=scores["fairness"],
        test_rows=len(split.test), steps=state.global_step,
        best_val_step=monitor.best_step or None, val_history=monitor.val_history,
        train_seconds=round(seconds, 1),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _before_scores(lm, split: Split, config: TrainConfig, job_dir: Path
                   ) -> tuple[dict, dict, dict]:
    """Zero-shot scores and group gaps on the held-out rows, cached in the job folder for
    resumed runs."""
    cached = job_dir / "before.json"
    if cached.exists():
        saved = json.loads(cached.read_text())
        if "groups" in saved:
            return saved["before"], saved["baselines"], saved["groups"]
    before, baselines, groups = _evaluate(lm, split.test, config, ROW_BASELINES)
    cached.write_text(json.dumps({"before": before, "baselines": baselines,
                                  "groups": groups}, default=_json_number))
    return before, baselines, groups


def _json_number(value):
    """numpy numbers as plain ones for json.dumps."""
    return value.item() if hasattr(value, "item") else str(value)


def train_adapter(split: Split, *, name: str, base: str = "default",
                  config: TrainConfig | None = None, data_info: dict | None = None,
                  callback: Callable[[dict], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, overwrite: bool = False,
                  job_dir: str | Path | None = None) -> TrainResult:
    """Train a LoRA (or QLoRA) adapter on split.train and save it to the adapter registry.

    Args:
        split: rows from finetune.rows.split_rows (val: early stopping; test: before/after).
        name: registry name of the new adapter.
        base: "default" (embedded model), a model folder or name (sim_core.models).
        config: hyperparameters (TrainConfig defaults).
        data_info: data fingerprint, file name etc. for the card.
        callback: progress events {step, total_steps, epoch, loss, val, eta_s}.
        should_stop: polled after every step; True raises Cancelled and saves nothing.
        overwrite: replace an existing adapter of the same name.
        job_dir: folder for checkpoints; an interrupted run given the same folder resumes
            from its last checkpoint. Default: a temporary folder, removed afterwards.
    Returns:
        TrainResult with the adapter path, card and mean scores before / after.
    Raises:
        AdapterError (name taken), ModelError (QLoRA without CUDA, unknown model),
        DataError (no rows), Cancelled (stopped; no adapter saved).
    """
    config = config or TrainConfig()
    check_qlora(config)
    _check_inputs(split, config)
    if _existing_adapter(name) and not overwrite:
        raise AdapterError(f"An adapter named '{name}' exists already; choose another name "
                           "or allow overwriting.")
    temp = job_dir is None
    work = Path(tempfile.mkdtemp(prefix="finetune-")) if temp else Path(job_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(split, name, base, config, data_info, callback, should_stop, overwrite,
                    work)
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)


def _run(split, name, base, config, data_info, callback, should_stop, overwrite,
         work: Path) -> TrainResult:
    """train_adapter after the checks: load, score before, train, score after, save."""
    started = time.time()
    torch.manual_seed(config.seed)
    lm = _load_base(base, config)
    before, baselines, groups_before = _before_scores(lm, split, config, work)
    model = _lora(lm.model, config)
    rows = balance_groups(split.train, config.balance_floor, config.seed)
    rows = reweight_slices(rows) if config.reweight else rows
    # Training prompts use the simulator's default wording; the card records it, so that a
    # simulation with other wording can warn that the adapter never saw it.
    style = PromptStyle()
    collator = RowCollator(rows, lm.tokenizer, shuffle=config.shuffle_options, seed=config.seed,
                           style=style)
    trainer = SurveyTrainer(model=model, args=_training_args(config, work / "checkpoints"),
                            train_dataset=_IndexDataset(len(rows)), data_collator=collator,
                            survey_tokenizer=lm.tokenizer, train_config=config)
    monitor = TrainingMonitor(collator, list(split.val), lm.tokenizer, callback=callback,
                              should_stop=should_stop, eval_every=config.eval_every,
                              patience=config.patience, loss_of=lambda: trainer.last_loss,
                              batch_size=config.batch_size)
    trainer.add_callback(monitor)
    trainer.remove_callback(PrinterCallback)      # keeps stdout clean for --json
    last = get_last_checkpoint(str(work / "checkpoints")) \
        if (work / "checkpoints").is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    if monitor.cancelled:
        raise Cancelled(f"Training of '{name}' stopped at step {trainer.state.global_step}; "
                        "no adapter was saved.")
    monitor.restore_best(model)
    model.eval()
    # scored as the simulator will read it (orders from its card; see _card)
    tuned = dataclasses.replace(lm, model=model, adapter=name,
                                inference_orders=None if config.shuffle_options else 1)
    after, _, groups_after = _evaluate(tuned, split.test, config)
    scores = {"before": before, "after": after, "baselines": baselines,
              "fairness": fairness_record(groups_before, groups_after) if groups_after else None}
    card = _card(name, lm, split, config, data_info, scores, monitor, trainer.state,
                 time.time() - started, style)
    if not trainer.is_world_process_zero():
        return TrainResult(Path(), card, before, after, baselines, model)
    path = save_adapter(lambda folder: model.save_pretrained(folder, safe_serialization=True),
                        name, card, overwrite=overwrite)
    return TrainResult(path, card, before, after, baselines, model)
