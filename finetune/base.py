"""The base model for training: which device and dtype, LoRA (plain) or QLoRA (4-bit NF4).

A single process trains on one device: the CPU or the first visible GPU. Several GPUs are
used through `accelerate launch` (one process per GPU, DDP; FSDP shards a model too large
for one GPU; configs/ and docs/gpu-and-engines.md).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

from finetune import distributed
from sim_core.base.errors import ModelError


def check_qlora(config: Any) -> None:
    """Refuse QLoRA before any work unless CUDA and bitsandbytes are both present."""
    if not config.qlora:
        return
    on_cpu = (config.device or "").strip().lower() == "cpu"
    if not torch.cuda.is_available() or on_cpu:
        why = "--device cpu was asked for" if on_cpu and torch.cuda.is_available() \
            else "this machine has none"
        raise ModelError(f"QLoRA (4-bit) training needs a CUDA GPU; {why}. Train a plain "
                         "LoRA adapter instead (leave out --qlora): 4-bit training on CPU can "
                         "silently stop learning.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("QLoRA needs the bitsandbytes package, which is not installed "
                         "(pip install -r requirements-gpu.txt), or leave out --qlora.")
    if distributed.fsdp():
        raise ModelError("QLoRA with FSDP is not supported: launch with the DDP config "
                         "(configs/accelerate-ddp.yaml); each GPU then holds the 4-bit model.")


def training_device(requested: str | None) -> str:
    """The device this process trains on ("cpu", "cuda:N"), checked before any loading.

    Raises:
        ModelError: unknown device, CUDA without a GPU, a GPU index the run cannot use.
    """
    from sim_core.simulation.devices import resolve_device

    text = (requested or "auto").strip().lower()
    if distributed.world_size() > 1:
        if text.startswith("cuda:"):
            raise ModelError(f"--device {text}: under accelerate launch every process trains "
                             "on its own GPU; use --device cuda or auto (or cpu).")
        device = resolve_device(text)         # checks the name and that CUDA exists
        return device if device == "cpu" else f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    device = resolve_device(text)
    if device.startswith("cuda:") and device != "cuda:0":
        index = device.split(":")[1]
        raise ModelError(f"Training in one process runs on the first visible GPU. To train on "
                         f"{device}, start it with CUDA_VISIBLE_DEVICES={index} and --device "
                         "cuda; to train on every GPU, use accelerate launch "
                         "(docs/gpu-and-engines.md).")
    return device


def training_dtype(config: Any, device: str) -> str:
    """Base weights dtype: "auto" is float32 on CPU (as the defaults were measured) and the
    GPU's bfloat16 (float16 before Ampere) on CUDA; QLoRA computes in bfloat16."""
    from sim_core.simulation.devices import auto_dtype
    from sim_core.simulation.models import resolve_dtype

    if config.qlora:
        return "bfloat16"
    if config.dtype == "auto":
        return auto_dtype(device) if device.startswith("cuda") else "float32"
    return resolve_dtype(config.dtype, device)


def load_base(base: str, config: Any, device: str, dtype: str):
    """The base model as a LoadedModel on the training device: plain weights (LoRA) or 4-bit
    NF4 (QLoRA), loaded once. Under FSDP it stays in CPU RAM until FSDP shards it."""
    from sim_core.simulation.models import load_model

    where = "cpu" if distributed.fsdp() else device
    if not config.qlora:
        return load_model(base, dtype=dtype, device=where)
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    lm = load_model(base, dtype=dtype, device=where, quantization=quant)
    lm.model = prepare_model_for_kbit_training(lm.model)
    return lm
