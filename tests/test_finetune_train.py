"""finetune.train on the tiny local model: learning, frozen base, saving, cancel, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_finetune_rows import make_rows

from finetune.base import check_qlora
from finetune.callbacks import letter_distributions
from finetune.config import TrainConfig
from finetune.train import train_adapter
from sim_core.base.errors import AdapterError, Cancelled, ModelError
from sim_core.evaluation.splits import Split, SplitInfo
from sim_core.simulation.adapters import list_adapters
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate_rows
from sim_core.survey.schema import Question
from sim_core.survey.slices import SurveyRow

FAST = dict(evaluate_test=False, save_every=1000, batch_size=4, rank=4, alpha=8)


def fixed_split() -> Split:
    """One question, one slice, a peaked real distribution, repeated: a fixed target."""
    q = Question("trust", "Do you trust the news?", ("Yes", "Somewhat", "No"),
                 (1.0, 2.0, 3.0))
    rows = [SurveyRow(q, {"SEX": "Female"}, np.array([0.55, 0.3, 0.15]), 50.0)
            for _ in range(4)]
    return Split(train=rows, val=rows[:1], test=[], info=SplitInfo(how="fixed"))


def names() -> set[str]:
    return {a.name for a in list_adapters()}


def test_loss_goes_down_base_frozen_lora_changes_and_reload(tiny_model_dir):
    events = []
    split = fixed_split()
    # float32 on every device: the reload below must reproduce the trained model's numbers
    config = TrainConfig(max_steps=12, lr=5e-2, dropout=0.0, shuffle_options=False,
                         eval_every=6, patience=0, dtype="float32", **FAST)
    result = train_adapter(split, name="fixed-target", base=str(tiny_model_dir), config=config,
                           callback=events.append, data_info={"file": "x.csv"})
    losses = [e["loss"] for e in events if e.get("loss") is not None]
    assert len(losses) == 12 and losses[-1] < 0.4 * losses[0]
    assert [e["step"] for e in events][:3] == [1, 2, 3] and events[0]["total_steps"] == 12
    # base weights frozen: identical to the saved base model; LoRA B moved away from 0
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    params = dict(result.model.named_parameters())
    q_base = params["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"]
    # the trained model lives on the training device (CUDA when present): compare on the CPU
    assert torch.equal(q_base.detach().cpu(), base["model.layers.0.self_attn.q_proj.weight"])
    assert not any(p.requires_grad for n, p in params.items() if "lora_" not in n)
    lora_b = [p for n, p in params.items() if "lora_B" in n]
    assert lora_b and all(float(p.abs().sum()) > 0 for p in lora_b)
    # saved: safetensors only, LoRA tensors only, card complete
    files = {p.name for p in result.adapter_path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "card.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    saved = load_file(str(result.adapter_path / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    card = json.loads((result.adapter_path / "card.json").read_text())
    assert card["name"] == "fixed-target" and card["base_model"] == str(tiny_model_dir)
    assert card["questions_seen"] == ["trust"] and card["slices_seen"] == ["SEX=Female"]
    assert card["hyperparameters"]["rank"] == 4 and card["loss"] == "kl"
    assert card["data"] == {"file": "x.csv"} and card["steps"] == 12 and card["base_fingerprint"]
    assert len(card["val_history"]) == 2
    # reloads through the simulator's loader to the same letter distributions
    lm = load_model(str(tiny_model_dir), adapter="fixed-target", dtype="float32")
    mine = letter_distributions(result.model, lm.tokenizer, split.train[:1])[0]
    reloaded = letter_distributions(lm.model, lm.tokenizer, split.train[:1])[0]
    np.testing.assert_allclose(mine, reloaded, atol=1e-5)
    # the fit moved toward the target: KL(p || q) well below the untrained model's
    plain = load_model(str(tiny_model_dir), dtype="float32")
    q0 = letter_distributions(plain.model, plain.tokenizer, split.train[:1])[0]
    p = split.train[0].dist
    assert np.sum(p * np.log(p / reloaded)) < 0.5 * np.sum(p * np.log(p / q0))


def test_existing_name_is_not_overwritten(tiny_model_dir):
    split = fixed_split()
    config = TrainConfig(max_steps=1, **FAST)
    first = train_adapter(split, name="taken", base=str(tiny_model_dir), config=config)
    stamp = (first.adapter_path / "card.json").read_text()
    with pytest.raises(AdapterError, match="already exists"):
        train_adapter(split, name="taken", base=str(tiny_model_dir), config=config)
    assert (first.adapter_path / "card.json").read_text() == stamp
    again = train_adapter(split, name="taken", base=str(tiny_model_dir), config=config,
                          overwrite=True)
    assert again.adapter_path == first.adapter_path
    assert json.loads((again.adapter_path / "card.json").read_text())["date"]


def test_crash_and_cancel_leave_no_adapter(tiny_model_dir):
    split = Split(train=make_rows(4), val=[], test=[], info=SplitInfo())
    config = TrainConfig(max_steps=5, **FAST)

    def crash(event):
        if event["step"] == 2:
            raise RuntimeError("power cut")
    with pytest.raises(RuntimeError, match="power cut"):
        train_adapter(split, name="crashed", base=str(tiny_model_dir), config=config,
                      callback=crash)
    steps = []
    with pytest.raises(Cancelled, match="no adapter"):
        train_adapter(split, name="cancelled", base=str(tiny_model_dir), config=config,
                      callback=lambda e: steps.append(e["step"]),
                      should_stop=lambda: len(steps) >= 3)
    assert steps == [1, 2, 3, 4]      # asked to stop after step 3: stopped within one step
    assert not {"crashed", "cancelled"} & names()


def test_resume_continues_from_checkpoint(tiny_model_dir, tmp_path):
    split = Split(train=make_rows(4), val=[], test=[], info=SplitInfo())
    config = TrainConfig(max_steps=6, **{**FAST, "save_every": 2})
    seen = []
    with pytest.raises(Cancelled):
        train_adapter(split, name="resumed", base=str(tiny_model_dir), config=config,
                      job_dir=tmp_path, callback=lambda e: seen.append(e["step"]),
                      should_stop=lambda: len(seen) >= 3)
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()
    assert "resumed" not in names()
    last = max(int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert last == seen[-1] == 4       # cancelled after step 4, checkpointed at 2 and 4
    later = []
    result = train_adapter(split, name="resumed", base=str(tiny_model_dir), config=config,
                           job_dir=tmp_path, callback=lambda e: later.append(e["step"]))
    assert later == [5, 6]                          # global step continued after 4
    assert result.card.steps == 6 and "resumed" in names()


def test_ordinal_and_reweight_options_train(tiny_model_dir):
    split = Split(train=make_rows(3), val=[], test=[], info=SplitInfo())
    config = TrainConfig(max_steps=2, loss="kl+ordinal", reweight=True, **FAST)
    events = []
    result = train_adapter(split, name="ordinal", base=str(tiny_model_dir), config=config,
                           callback=events.append)
    assert all(np.isfinite(e["loss"]) for e in events)
    assert result.card.loss == "kl+ordinal" and result.card.hyperparameters["reweight"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_refused_on_cpu_before_any_work():
    config = TrainConfig(qlora=True)
    with pytest.raises(ModelError, match="CUDA"):
        check_qlora(config)
    # refused before the (nonexistent) model is even looked up
    with pytest.raises(ModelError, match="QLoRA"):
        train_adapter(fixed_split(), name="q", base="no-such-model", config=config)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs CUDA")
def test_qlora_trains_on_cuda(tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    events = []
    result = train_adapter(fixed_split(), name="qlora", base=str(tiny_model_dir),
                           config=TrainConfig(qlora=True, max_steps=4, lr=2e-2, **FAST),
                           callback=events.append)
    assert len(events) == 4 and all(np.isfinite(e["loss"]) for e in events)
    assert (result.adapter_path / "adapter_model.safetensors").exists()
    # the base was loaded once, in 4 bits, on the GPU; the adapter reads back through the
    # simulator's loader
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in result.model.modules())
    assert result.card.device.startswith("cuda") and result.card.processes == 1
    lm = load_model(str(tiny_model_dir), adapter="qlora", dtype="bfloat16", device="cuda")
    [shares] = [r.shares for r in simulate_rows(lm, fixed_split().train[:1],
                                                 SimConfig(orders=1, use_cache=False))]
    assert abs(shares.sum() - 1) < 1e-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_and_its_scoring_run_on_the_gpu(tiny_model_dir):
    """device auto on a CUDA machine: bf16 base on the GPU, LoRA trained there, the before /
    after scores computed there (the card says where), the loss still goes down."""
    events = []
    config = TrainConfig(max_steps=8, lr=5e-2, dropout=0.0, eval_every=4, patience=0,
                         **{**FAST, "evaluate_test": True})
    split = fixed_split()
    split = Split(train=split.train, val=split.val, test=split.train[:2], info=split.info)
    result = train_adapter(split, name="on-gpu", base=str(tiny_model_dir), config=config,
                           callback=events.append)
    assert result.card.device == "cuda:0" and result.before and result.after
    assert result.card.hyperparameters["dtype"] == "auto"
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    base = [p for n, p in result.model.named_parameters() if "lora_" not in n]
    assert {p.dtype for p in base} == {torch.bfloat16}
    losses = [e["loss"] for e in events]
    assert losses[-1] < losses[0]


def test_top_layers_adapts_only_the_top_layers(tiny_model_dir):
    """top_layers=1: LoRA weights exist only in the last layer, and training changes them."""
    from transformers import AutoConfig

    n_layers = AutoConfig.from_pretrained(tiny_model_dir).num_hidden_layers
    assert n_layers >= 2
    config = TrainConfig(max_steps=2, top_layers=1, lr=1e-2, **FAST)
    result = train_adapter(fixed_split(), name="top-only", base=str(tiny_model_dir),
                           config=config)
    weights = load_file(result.adapter_path / "adapter_model.safetensors")
    layers = {int(k.split(".layers.")[1].split(".")[0]) for k in weights}
    assert layers == {n_layers - 1}
    assert any(k.endswith("lora_B.weight") and weights[k].abs().sum() > 0 for k in weights)
    assert result.card.hyperparameters["top_layers"] == 1


def test_adapter_trained_on_fixed_order_is_read_in_that_order(tiny_model_dir):
    """No shuffling -> the card recommends 1 order; SimConfig(orders=None) uses it, an
    explicit number still wins, and the base model keeps DEFAULT_ORDERS."""
    from sim_core.evaluation.compare import checkpoint_info
    from sim_core.simulation.config import DEFAULT_ORDERS, SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.simulate import orders_for, simulate_rows

    config = TrainConfig(max_steps=1, shuffle_options=False, **FAST)
    result = train_adapter(fixed_split(), name="fixed-order", base=str(tiny_model_dir),
                           config=config)
    assert result.card.inference_orders == 1
    base = load_model(str(tiny_model_dir), dtype="float32")
    tuned = load_model(str(tiny_model_dir), adapter="fixed-order", dtype="float32")
    auto = SimConfig(use_cache=False, calibrate=False)   # the orders show in the raw shares
    assert orders_for(base, auto) == DEFAULT_ORDERS == 2 and orders_for(tuned, auto) == 1
    assert orders_for(tuned, SimConfig(orders=3)) == 3
    assert orders_for(tuned, SimConfig(mode="sample")) == 1
    rows = fixed_split().train[:1]
    got = simulate_rows(tuned, rows, auto)[0]
    one = simulate_rows(tuned, rows, SimConfig(orders=1, use_cache=False, calibrate=False))[0]
    two = simulate_rows(tuned, rows, SimConfig(orders=2, use_cache=False, calibrate=False))[0]
    np.testing.assert_allclose(got.shares, one.shares, atol=1e-6)
    assert not np.allclose(got.shares, two.shares, atol=1e-4)
    assert checkpoint_info(tuned, "t", auto)["orders"] == 1
    assert checkpoint_info(base, "b", auto)["orders"] == 2
    shuffled = train_adapter(fixed_split(), name="shuffled", base=str(tiny_model_dir),
                             config=TrainConfig(max_steps=1, shuffle_options=True, **FAST))
    assert shuffled.card.inference_orders is None


def test_card_holds_calibration_scores_raw_and_calibrated_and_the_verdict(tiny_model_dir):
    """The adapter and zero-shot calibrations are fitted on the validation rows only; the
    card's calibrated held-out scores are what the simulator then shows."""
    from sim_core.evaluation.calibration_records import card_calibration, checkpoint_verdict
    from sim_core.evaluation.evaluate import evaluate_rows
    from sim_core.evaluation.splits import split_rows
    from sim_core.evaluation.verdict import (
        CHECKPOINT,
        CHECKPOINT_CAL,
        POPULATION,
        UNIFORM,
        ZERO_SHOT,
        ZERO_SHOT_CAL,
    )
    from sim_core.simulation.calibration import Calibration
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model

    split = split_rows(make_rows(10), "question", test_fraction=0.3, val_fraction=0.3, seed=0)
    config = TrainConfig(max_steps=2, **{**FAST, "evaluate_test": True})
    result = train_adapter(split, name="calibrated", base=str(tiny_model_dir), config=config,
                           data_info={"survey": "made-up"})
    card = result.card
    calibration = Calibration.from_dict(card.calibration)
    assert calibration.fitted_on["n_rows"] == len(split.val)
    assert len(calibration.residuals["raw"]) == sum(len(r.dist) for r in split.val)
    held = card.heldout
    assert sorted(held["questions"]) == sorted({r.question.id for r in split.test})
    assert set(held["entries"]) == {UNIFORM, POPULATION, ZERO_SHOT, ZERO_SHOT_CAL, CHECKPOINT,
                                    CHECKPOINT_CAL}
    assert held["what"].startswith("3 unseen questions of made-up")
    assert set(card.after_calibrated) == set(card.after) and card.before_calibrated
    # independent check: the saved adapter, simulated as the simulator reads it, scores
    # what the card says (calibrated by default, raw with calibrate=False)
    tuned = load_model(str(tiny_model_dir), adapter="calibrated", dtype="float32")
    assert tuned.calibration == calibration
    for calibrate, expected in ((True, card.after_calibrated), (False, card.after)):
        ev = evaluate_rows([tuned], split.test, baselines=(),
                           config=SimConfig(use_cache=False, calibrate=calibrate))
        got = ev.summary().loc[tuned.label]
        assert got["kl"] == pytest.approx(expected["kl"], rel=1e-3)
    text = checkpoint_verdict(card_calibration(card), "calibrated")
    assert text.startswith("calibrated: On 3 unseen questions of made-up")
    assert "zero-shot model (calibrated the same way)" in text
