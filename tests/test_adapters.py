"""Adapter registry (atomic save, rename, delete, zip export) and LoRA adapters on the tiny
model."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import numpy as np
import pytest
import torch
from factories import random_lora, save_random_adapter

from sim_core.base.errors import AdapterError
from sim_core.simulation.adapter_card import CARD_FILE, read_card
from sim_core.simulation.adapters import (
    adapters_dir,
    delete_adapter,
    export_adapter_zip,
    list_adapters,
    rename_adapter,
    resolve_adapter,
    save_adapter,
)
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.schema import Question

QUESTION = Question(id="q", text="Do you favor the death penalty?", options=("Favor", "Oppose"))
NO_CACHE = SimConfig(orders=1, use_cache=False)


save_random = save_random_adapter


def test_save_list_and_refuse_overwrite(tiny_model_dir):
    # a name is stored as typed or refused with a suggestion, never rewritten silently
    with pytest.raises(AdapterError, match="for example 'my-adapter'"):
        save_random(tiny_model_dir, "my adapter!")
    assert not (adapters_dir() / "my-adapter").exists()
    path, lm = save_random(tiny_model_dir, "my-adapter")
    assert path.name == "my-adapter" and (path / "adapter_model.safetensors").exists()
    card = read_card(path)
    assert card.name == "my-adapter" and card.base_fingerprint == lm.fingerprint
    assert card.created
    assert "my-adapter" in [info.name for info in list_adapters()]
    assert resolve_adapter("my-adapter") == path
    with pytest.raises(AdapterError, match="already exists"):
        save_random(tiny_model_dir, "my-adapter")
    replaced, _ = save_random(tiny_model_dir, "my-adapter", {"note": "v2"}, overwrite=True)
    assert read_card(replaced).extra["note"] == "v2"


def test_lookups_use_the_exact_name(tiny_model_dir):
    """`delete "my lora"` once deleted `my-lora` and reported success: every lookup now
    takes the stored name exactly, so a name that would need sanitising finds nothing."""
    path, _ = save_random(tiny_model_dir, "my-lora")
    for action in (lambda: delete_adapter("my lora"), lambda: rename_adapter("my lora", "x"),
                   lambda: export_adapter_zip("my lora"), lambda: resolve_adapter("my lora"),
                   lambda: delete_adapter("My-Lora"), lambda: delete_adapter("my-lora/")):
        with pytest.raises(AdapterError, match="not"):
            action()
    assert (path / "adapter_config.json").exists()
    with pytest.raises(AdapterError, match="5000 characters"):
        rename_adapter("my-lora", "x" * 5000)
    delete_adapter("my-lora")
    assert not path.exists()


def test_full_disk_while_saving_is_one_message(tiny_model_dir, monkeypatch):
    """safetensors fails as on a full disk (its own error type, the OS reason in the text):
    one AdapterError that says so, and nothing in the registry."""
    import peft.peft_model
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: '
                              'StorageFull, message: "No space left on device" })')
    monkeypatch.setattr(peft.peft_model, "safe_save_file", full)
    before = sorted(p.name for p in adapters_dir().iterdir())
    with pytest.raises(AdapterError, match="not saved: Cannot write .*the disk is full"):
        save_random(tiny_model_dir, "disk-full")
    assert sorted(p.name for p in adapters_dir().iterdir()) == before


def test_crashed_save_leaves_nothing(tiny_model_dir):
    def crash(folder):
        (folder / "adapter_config.json").write_text("{}")
        raise RuntimeError("disk full")

    before = sorted(p.name for p in adapters_dir().iterdir())
    with pytest.raises(RuntimeError):
        save_adapter(crash, "crashy", {})
    assert sorted(p.name for p in adapters_dir().iterdir()) == before
    with pytest.raises(AdapterError, match="not found"):
        resolve_adapter("crashy")
    with pytest.raises(AdapterError, match="adapter_config"):
        save_adapter(lambda folder: None, "empty", {})
    assert not (adapters_dir() / "empty").exists()


def test_rename_delete(tiny_model_dir):
    # Unique names: the session workspace is shared, and other tests (finetune) leave
    # adapters such as 'taken' behind.
    tag = uuid.uuid4().hex[:8]
    old, new, taken = f"old-{tag}", f"new-{tag}", f"taken-{tag}"
    save_random(tiny_model_dir, old)
    save_random(tiny_model_dir, taken)
    with pytest.raises(AdapterError, match="already exists"):
        rename_adapter(old, taken)
    path = rename_adapter(old, new)
    assert path == adapters_dir() / new and read_card(path).name == new
    assert not (adapters_dir() / old).exists()
    delete_adapter(new)
    delete_adapter(taken)
    names = [info.name for info in list_adapters()]
    assert new not in names and taken not in names
    with pytest.raises(AdapterError):
        delete_adapter(new)
    with pytest.raises(AdapterError):
        delete_adapter("../../etc")


def test_adapter_changes_output_and_disable_restores(tiny_model_dir):
    save_random(tiny_model_dir, "random-lora")
    base = load_model(str(tiny_model_dir), dtype="float32")
    tuned = load_model(str(tiny_model_dir), adapter="random-lora", dtype="float32")
    assert tuned.adapter == "random-lora" and tuned.adapter_fingerprint
    assert tuned.label.endswith("+ random-lora")
    [plain] = simulate(base, QUESTION, [{"SEX": "Male"}], NO_CACHE)
    [adapted] = simulate(tuned, QUESTION, [{"SEX": "Male"}], NO_CACHE)
    assert np.abs(plain.shares - adapted.shares).max() > 1e-4
    with tuned.model.disable_adapter():
        [disabled] = simulate(tuned, QUESTION, [{"SEX": "Male"}], NO_CACHE)
    np.testing.assert_allclose(disabled.shares, plain.shares, atol=1e-6)


def test_export_zip_loads_with_plain_peft(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    save_random(tiny_model_dir, "zipped")
    archive = zipfile.ZipFile(io.BytesIO(export_adapter_zip("zipped")))
    assert sorted(archive.namelist()) == sorted(
        ["zipped/adapter_config.json", "zipped/adapter_model.safetensors", f"zipped/{CARD_FILE}"]
        + [n for n in archive.namelist() if n.endswith("README.md")])
    archive.extractall(tmp_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      tmp_path / "zipped").eval()
    ours = load_model(str(tiny_model_dir), adapter="zipped", dtype="float32", device="cpu")
    ids = ours.tokenizer("Hello there", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ours.model(input_ids=ids).logits)


def test_mismatched_base_refused(tiny_model_dir):
    save_random(tiny_model_dir, "other-base", {"base_model": "x", "base_fingerprint": "0123abcd"})
    with pytest.raises(AdapterError, match="trained on base model"):
        load_model(str(tiny_model_dir), adapter="other-base", dtype="float32")
    # no card: peft's own record of the base model is checked
    path, _ = save_random(tiny_model_dir, "no-card", {})
    config = json.loads((path / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "someone/another-model"
    (path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="another-model"):
        load_model(str(tiny_model_dir), adapter="no-card", dtype="float32")


def test_missing_adapter(tiny_model_dir):
    with pytest.raises(AdapterError, match="not found"):
        load_model(str(tiny_model_dir), adapter="does-not-exist", dtype="float32")


def test_simulation_notes_an_adapter_trained_with_other_prompt_wording(tiny_model_dir):
    """The card records the training prompt style; compare() and evaluate_rows() say when a
    simulation uses other wording, and say nothing when it is the same."""
    from dataclasses import asdict, replace

    from sim_core.evaluation.compare import compare
    from sim_core.evaluation.evaluate import evaluate_rows
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.prompts import PromptStyle
    from sim_core.survey.schema import Question
    from sim_core.survey.slices import SurveyRow

    _, lm = random_lora(tiny_model_dir)
    card = {"base_model": str(tiny_model_dir), "base_fingerprint": lm.fingerprint,
            "prompt_style": asdict(PromptStyle())}
    save_random(tiny_model_dir, "styled", card)
    tuned = load_model(str(tiny_model_dir), adapter="styled", dtype="float32")
    question = Question("q", "Trust?", ("Yes", "No"))
    same = SimConfig(orders=1, use_cache=False)
    other = replace(same, style=PromptStyle(system="You answer a survey in Germany."))
    assert compare([tuned], question, slices=[{}], config=same, baselines=()).notes == []
    [note] = compare([tuned], question, slices=[{}], config=other, baselines=()).notes
    assert "styled" in note and "system" in note and "other prompt wording" in note
    rows = [SurveyRow(question, {}, np.array([0.5, 0.5]), 100.0)]
    assert evaluate_rows([tuned], rows, config=other, baselines=()).notes == [note]
