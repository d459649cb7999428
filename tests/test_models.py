"""Model loading: tiny local model, fingerprints, chat vs base, unknown models, checkpoints."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from sim_core.base.errors import ModelError, SimError
from sim_core.base.reading import FINGERPRINT_FILE, folder_fingerprint
from sim_core.base.workspace import safe_name, subdir, workspace_dir
from sim_core.simulation.models import list_checkpoints, load_model


def test_workspace_and_safe_name(isolated_workspace):
    assert workspace_dir() == isolated_workspace
    assert subdir("cache") == isolated_workspace / "cache" and subdir("cache").is_dir()
    assert safe_name("My adapter (v2)!") == "My-adapter-v2"
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name(".hidden") == "hidden"
    assert len(safe_name("x" * 100)) == 64
    for bad in ("", "...", "///", "  "):
        with pytest.raises(SimError):
            safe_name(bad)


def test_load_tiny_chat_model(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="float32")
    assert lm.is_chat and lm.adapter is None
    config = lm.model.config
    assert config.num_hidden_layers == 2 and config.vocab_size == len(lm.tokenizer)
    assert lm.tokenizer.encode(" A", add_special_tokens=False) == [330]
    assert lm.label == tiny_model_dir.name
    assert not lm.model.training


def test_fingerprint_cached_and_sensitive(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    (copy / FINGERPRINT_FILE).unlink(missing_ok=True)
    first = folder_fingerprint(copy)
    assert json.loads((copy / FINGERPRINT_FILE).read_text())["fingerprint"] == first
    assert folder_fingerprint(tiny_model_dir) == first  # same files, same fingerprint
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    time.sleep(0.01)
    (copy / "config.json").write_text(json.dumps(config))
    assert folder_fingerprint(copy) != first


def test_base_model_without_chat_template(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "base")
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    lm = load_model(str(copy), device="cpu")  # dtype "auto": bfloat16 on CPU (measured)
    assert not lm.is_chat
    assert lm.dtype == "bfloat16" and next(lm.model.parameters()).dtype == torch.bfloat16

    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.simulate import simulate
    from sim_core.survey.schema import Question

    question = Question(id="q", text="Favor?", options=("Yes", "No"))
    [result] = simulate(lm, question, [{"SEX": "Male"}], SimConfig(orders=1, use_cache=False))
    assert "<|im_start|>" not in result.prompt and result.prompt.endswith("Answer:")
    assert result.shares.sum() == pytest.approx(1.0)


def test_unknown_models_fail_clearly(tmp_path):
    with pytest.raises(ModelError, match="Unknown model"):
        load_model("no-such-model")
    start = time.monotonic()
    with pytest.raises(ModelError, match="offline"):
        load_model("someone/not-cached-model")  # HF_HUB_OFFLINE=1 from conftest
    assert time.monotonic() - start < 20
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="dtype"):
        load_model("no-such-model", dtype="int3")


def test_list_checkpoints(tiny_model_dir):
    shutil.copytree(tiny_model_dir, subdir("models") / "tiny-local", dirs_exist_ok=True)
    found = list_checkpoints()
    assert found[0]["name"] == "default" and found[0]["kind"] == "base"
    assert any(c["name"] == "tiny-local" and c["kind"] == "base" for c in found)
    lm = load_model("tiny-local")  # a model name in workspace/models
    assert lm.fingerprint == folder_fingerprint(tiny_model_dir)
