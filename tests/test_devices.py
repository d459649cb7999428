"""Device placement: device names, memory checks before loading, batch size, shapes of
random models. CPU tests run everywhere; the CUDA ones skip without a GPU."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from shapes import SHAPES, parameter_count, shape_config  # bench/shapes.py

from sim_core.base.errors import ModelError
from sim_core.simulation.config import SimConfig
from sim_core.simulation.devices import (
    CPU_BATCH,
    GPU_BATCH_CAP,
    HEADROOM,
    NF4_BYTES,
    _spread,
    auto_batch_size,
    free_bytes,
    model_bytes,
    plan_placement,
    resolve_device,
)
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.schema import Question

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
QUESTION = Question(id="q", text="Do you favor the death penalty?",
                    options=("Favor", "Oppose", "Unsure"))

# tiny shape by hand: vocab 49152 x hidden 32 (tied embedding, counted once); per layer
# q, k, v, o 4 x 32 x 32, MLP 3 x 32 x 64, two norms 2 x 32; 2 layers; final norm 32
TINY_PARAMS = 49152 * 32 + 2 * (4 * 32 * 32 + 3 * 32 * 64 + 2 * 32) + 32
TINY_LINEAR = 2 * (4 * 32 * 32 + 3 * 32 * 64)


def test_device_names():
    assert resolve_device("cpu") == resolve_device(" CPU ") == "cpu"
    for bad in ("gpu", "mps", "cuda:x", "cpu:1", "auto:0", "cuda:-1"):
        with pytest.raises(ModelError, match="Unknown device"):
            resolve_device(bad)
    if CUDA:
        assert resolve_device("auto") == f"cuda:{torch.cuda.current_device()}"
    else:
        assert resolve_device("auto") == resolve_device(None) == "cpu"


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_without_gpu_refused_before_loading():
    for name in ("cuda", "cuda:0", "cuda:7"):
        with pytest.raises(ModelError, match="no CUDA GPU") as info:
            resolve_device(name)
        if torch.version.cuda is None:
            assert "CPU-only build" in str(info.value)
    # the device is checked first: no model is looked up, let alone loaded
    with pytest.raises(ModelError, match="no CUDA GPU"):
        load_model("no-such-model", device="cuda")


@needs_cuda
def test_cuda_index_out_of_range():
    count = torch.cuda.device_count()
    assert resolve_device(f"cuda:{count - 1}") == f"cuda:{count - 1}"
    with pytest.raises(ModelError, match=f"does not exist: this machine has {count}"):
        resolve_device(f"cuda:{count}")
    with pytest.raises(ModelError, match="does not exist"):
        load_model("no-such-model", device="cuda:99")


def test_model_bytes_from_config_alone(tiny_model_dir):
    assert model_bytes(tiny_model_dir, "float32") == 4 * TINY_PARAMS
    assert model_bytes(tiny_model_dir, "bfloat16") == 2 * TINY_PARAMS
    four = model_bytes(tiny_model_dir, "bfloat16", four_bit=True)
    assert four == int(TINY_LINEAR * NF4_BYTES + 2 * (TINY_PARAMS - TINY_LINEAR))
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    assert sum(p.numel() * p.element_size() for p in lm.model.parameters()) == 4 * TINY_PARAMS


def test_published_shapes_counted_without_allocating():
    """Llama-2-7B: 6.74e9 published with its 32000-token vocabulary; ours has the embedded
    tokenizer's 49152, so the body must match exactly and the total by the vocabulary."""
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    body = 32 * per_layer + 4096
    assert body + 2 * 32000 * 4096 == 6_738_415_616          # the published count
    config = shape_config("llama2-7b")
    assert config.vocab_size == 49152
    assert parameter_count(config, embeddings=False) == body
    total = parameter_count(config)
    assert total == body + 2 * 49152 * 4096 and 6.7e9 < total < 6.9e9
    # Llama-3-8B keeps its own (larger) vocabulary: exactly the published 8.03e9
    config = shape_config("llama3-8b")
    assert config.vocab_size == 128256 and config.num_key_value_heads == 8
    assert parameter_count(config) == 8_030_261_248
    assert set(SHAPES) >= {"tiny", "llama2-7b", "llama3-8b"}
    with pytest.raises(ValueError, match="Unknown shape"):
        shape_config("llama-9000b")


def config_only_folder(tmp_path, shape: str, **changes):
    """A model folder with a config.json and no weights (memory checks need nothing else)."""
    config = shape_config(shape)
    for key, value in changes.items():
        setattr(config, key, value)
    folder = tmp_path / shape
    config.save_pretrained(folder)
    return folder


def test_model_too_large_for_ram_refused_before_loading(tmp_path):
    # Llama-2-7B dims with 80 layers and a 2.5x MLP: ~28e9 parameters, 56 GB in bfloat16,
    # more than any machine this suite runs on has free.
    folder = config_only_folder(tmp_path, "llama2-7b", num_hidden_layers=80,
                                intermediate_size=28672)
    need = model_bytes(folder, "bfloat16")
    assert need > 50e9
    if need * HEADROOM <= free_bytes("cpu"):
        pytest.skip("this machine has more free RAM than the test model needs")
    with pytest.raises(ModelError, match="RAM is available") as info:
        plan_placement(folder, "bfloat16", "cpu")
    assert f"{need * HEADROOM / 1e9:.1f} GB" in str(info.value)
    # through load_model: the memory message, not a failed read of the missing weights
    with pytest.raises(ModelError, match="RAM is available"):
        load_model(str(folder), device="cpu")


def test_placement_fits_or_refuses(tiny_model_dir):
    fits = plan_placement(tiny_model_dir, "float32", "cpu")
    assert fits.device == "cpu" and fits.device_map is None and fits.label == "cpu"
    free = free_bytes("cpu")
    assert plan_placement(tiny_model_dir, "float32", "cpu", need=int(free / HEADROOM) - 1)
    with pytest.raises(ModelError, match="RAM"):
        plan_placement(tiny_model_dir, "float32", "cpu", need=int(free / HEADROOM) + 10**9)


def test_spread_over_every_device():
    """What a model too big for its GPU gets: RAM is the last device (none here has GPUs,
    or the test counts theirs), and more than everything together is refused."""
    gpus = sum(free_bytes(f"cuda:{i}") for i in range(torch.cuda.device_count())) if CUDA \
        else 0
    cpu = free_bytes("cpu")
    with pytest.raises(ModelError, match="every GPU and the RAM"):
        _spread(gpus + cpu + 10**10, "The model needs a lot", "cuda:0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        placement = _spread(gpus + cpu // 4, "The model needs a lot", "cuda:0")
    assert placement.device_map == "auto" and placement.label.endswith("cpu")
    # every device keeps the headroom (free RAM moves a little between the two reads)
    assert abs(placement.max_memory["cpu"] - cpu / HEADROOM) < 0.05 * cpu
    assert any("CPU RAM" in str(w.message) for w in caught)


def test_cpu_load_uses_sdpa_and_auto_batch(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device="cpu")
    assert lm.device == "cpu" and lm.placement == "cpu" and lm.dtype == "bfloat16"
    assert lm.model.config._attn_implementation == "sdpa"
    assert auto_batch_size(lm.model, lm.device) == CPU_BATCH
    # batch_size=None (auto) gives the numbers of one prompt at a time
    exact = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    slices = [{"SEX": "Male"}, {}, {"SEX": "Female", "AGE": "30-44"}]
    auto = simulate(exact, QUESTION, slices, SimConfig(batch_size=None, use_cache=False))
    single = simulate(exact, QUESTION, slices, SimConfig(batch_size=1, use_cache=False))
    for a, b in zip(auto, single):
        np.testing.assert_allclose(a.shares, b.shares, atol=1e-5)


def test_gpu_results_are_cached_apart(tiny_model_dir):
    """Results computed on a GPU never answer for the CPU (and back): different kernels,
    slightly different numbers. CPU cache keys are unchanged."""
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    config = SimConfig(orders=1, seed=12345, batch_size=8)   # (no GPU to size a batch for)
    [first] = simulate(lm, QUESTION, [{"SEX": "Female"}], config)
    [again] = simulate(lm, QUESTION, [{"SEX": "Female"}], config)
    assert again.cached
    gpu_labelled = dataclasses.replace(lm, device="cuda:0")
    [other] = simulate(gpu_labelled, QUESTION, [{"SEX": "Female"}], config)
    assert not other.cached
    np.testing.assert_allclose(other.shares, first.shares, atol=1e-6)


@needs_cuda
def test_cuda_load_simulate_matches_cpu(tiny_model_dir):
    gpu = load_model(str(tiny_model_dir), dtype="float32", device="cuda")
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert gpu.device.startswith("cuda:") and gpu.placement == gpu.device
    cpu = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    config = SimConfig(orders=2, use_cache=False)
    for a, b in zip(simulate(gpu, QUESTION, [{"SEX": "Male"}, {}], config),
                    simulate(cpu, QUESTION, [{"SEX": "Male"}, {}], config)):
        np.testing.assert_allclose(a.shares, b.shares, atol=1e-4)
    auto = load_model(str(tiny_model_dir))
    assert auto.device.startswith("cuda") and auto.dtype in ("bfloat16", "float16")
    assert next(auto.model.parameters()).dtype == getattr(torch, auto.dtype)
    size = auto_batch_size(auto.model, auto.device)
    assert CPU_BATCH <= size <= GPU_BATCH_CAP and size & (size - 1) == 0


@needs_cuda
def test_named_gpu_too_small_refused_auto_spreads(tiny_model_dir):
    free = free_bytes("cuda:0")
    with pytest.raises(ModelError, match="cuda:0 has only"):
        plan_placement(tiny_model_dir, "bfloat16", "cuda:0", spread=False, need=free)
    spread = plan_placement(tiny_model_dir, "bfloat16", "cuda:0", need=free)
    assert spread.device_map == "auto" and "cuda:0" in spread.label



def test_settings_carry_device_and_auto_batch(tiny_model_dir):
    from finetune.config import TrainConfig
    from sim_core.base.options import describe

    assert SimConfig().device == "auto" and SimConfig().batch_size is None
    assert TrainConfig().device == "auto" and TrainConfig().dtype == "auto"
    assert "suited to the device" in describe(SimConfig, "batch_size")
    assert "cuda:N" in describe(SimConfig, "device")
    with pytest.raises(ModelError, match="Unknown device 'gpu'"):
        SimConfig(device="gpu")
    # a model loaded on one device is not silently run for settings that ask for another
    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    assert simulate(lm, QUESTION, [{}], SimConfig(device="cpu", use_cache=False))
    elsewhere = dataclasses.replace(lm, device="cuda:0")
    with pytest.raises(ModelError, match="loaded on cuda:0, but the settings ask for cpu"):
        simulate(elsewhere, QUESTION, [{}], SimConfig(device="cpu", use_cache=False))


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cli_device_refusals_are_one_line(tiny_model_dir, gss_path, capsys):
    """Every command that loads a model takes --device; CUDA without a GPU, an unknown name:
    exit status 2 and one message, before any model is loaded or anything is written."""
    from finetune.cli import main as finetune_main
    from sim_core.__main__ import main as sim_main
    from sim_core.simulation.adapters import list_adapters

    model = ["--model", str(tiny_model_dir)]
    data = ["--data", str(gss_path), "--question", "natspac", "--by", "SEX"]
    commands = [
        (sim_main, ["simulate", "--question", "Q?", "--options", "A|B", *model]),
        (sim_main, ["compare", *data, *model]),
        (sim_main, ["report", *data, *model, "--pdf", "never.pdf"]),
        (finetune_main, ["eval", "--data", str(gss_path), "--adapter", "x", *model]),
        (finetune_main, ["train", "--data", str(gss_path), "--question", "natspac,natenvir",
                         "--name", "never", *model]),
    ]
    before = [a.name for a in list_adapters()]
    for main, argv in commands:
        for device, words in (("cuda", "no CUDA GPU"), ("cuda:7", "no CUDA GPU"),
                              ("gpu", "Unknown device 'gpu'")):
            capsys.readouterr()
            assert main([*argv, "--device", device]) == 2, (argv[0], device)
            err = capsys.readouterr().err
            assert words in err and err.count("error:") == 1, (argv[0], device, err)
    assert [a.name for a in list_adapters()] == before
    assert not (tiny_model_dir.parent / "never.pdf").exists()


def test_comparisons_record_dtype_and_device(tiny_model_dir):
    from sim_core.evaluation.compare import checkpoint_info

    lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    info = checkpoint_info(lm, "tiny")
    assert info["dtype"] == "float32" and info["device"] == "cpu"
