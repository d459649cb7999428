"""Where a model runs: device names, memory checks before loading, batch size per device.

`plan_placement` decides, before any weight is read, where a model goes: one device, or
spread over several GPUs (and CPU RAM) with accelerate's big-model inference
(`device_map`). A model that cannot fit anywhere is refused with one clear message.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_core.base.errors import ModelError

DEVICES_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
# "auto" dtype on CPU. Measured on the embedded model, 50 real GSS prompts, 2 busy cores:
# bfloat16 2.7x faster than float32; with the letter logits projected in float32
# (simulate._last_logprobs) distributions move by TV 0.006 on average (max 0.018,
# bench/precision.py), under the 0.03 mean TV we allow. dtype="float32" gives exact numbers.
AUTO_CPU_DTYPE = "bfloat16"
# Parameter bytes x this must fit: activations, the CUDA context, allocator fragmentation and
# (CPU) the rest of the process need room too. A 7B model in bf16 (13.8 GB of weights) thus
# asks for 16.5 GB.
HEADROOM = 1.2
# Bytes per parameter of 4-bit NF4 weights with double quantisation (4 bits + block scales).
NF4_BYTES = 0.53
# Prompts per forward pass: on the CPU the batch size bench/throughput.py measured the
# optimised path with; on a GPU as many as the free memory holds, up to this cap.
CPU_BATCH = 8
GPU_BATCH_CAP = 128
# Prompt tokens budgeted per prompt when sizing GPU batches (survey prompts are ~150).
BATCH_TOKENS = 512


@dataclass(frozen=True)
class Placement:
    """Where load_model puts a model.

    device: where inputs go ("cpu", "cuda:0"); device_map: None for the whole model on
    `device`, else accelerate's "auto" with `max_memory` per device (model too big for one GPU);
    label: what the UI shows ("cuda:0", "cuda:0+cuda:1+cpu").
    """

    device: str
    device_map: str | None = None
    max_memory: dict | None = None
    label: str = ""


def cuda_count() -> int:
    """Number of CUDA GPUs torch can use (0 on a CPU build of torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device_name(device: str | None) -> tuple[str, str | None]:
    """(kind, index) of a device name, checked without touching CUDA.

    Raises:
        ModelError: not one of auto, cpu, cuda, cuda:N.
    """
    match = _DEVICE.match((device or "auto").strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ModelError(f"Unknown device '{device}': use {DEVICES_HELP}.")
    return match.group(1), match.group(2)


def listed_gpu_count() -> int:
    """CUDA GPUs, counted without importing torch when it is not loaded yet (the dashboard's
    first page stays fast): the NVIDIA driver's list, narrowed by CUDA_VISIBLE_DEVICES.
    resolve_device still checks a pick against torch."""
    if "torch" in sys.modules:
        return cuda_count()
    driver = Path("/proc/driver/nvidia/gpus")
    count = len(list(driver.iterdir())) if driver.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


def resolve_device(device: str | None = "auto") -> str:
    """"auto" -> "cuda:N" (the current GPU) or "cpu"; "cuda" -> "cuda:N"; checked names pass.

    Raises:
        ModelError: unknown name, CUDA asked for without a GPU, or an index out of range.
    """
    kind, index = check_device_name(device)
    count = cuda_count()
    if kind == "cpu" or (kind == "auto" and count == 0):
        return "cpu"
    if count == 0:
        raise ModelError(f"Device '{device}' asked for, but this machine has no CUDA GPU that "
                         f"torch can use ({_torch_build()}). Use --device cpu or auto.")
    import torch

    number = int(index) if index is not None else torch.cuda.current_device()
    if number >= count:
        have = ", ".join(f"cuda:{i}" for i in range(count))
        raise ModelError(f"Device '{device}' does not exist: this machine has {count} CUDA "
                         f"GPU{'s' if count > 1 else ''} ({have}).")
    return f"cuda:{number}"


def _torch_build() -> str:
    """Why torch sees no GPU: a CPU-only build, or a CUDA build with no GPU visible."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, no GPU visible"


def auto_dtype(device: str) -> str:
    """The dtype "auto" means on a device: AUTO_CPU_DTYPE on CPU, bfloat16 on a GPU."""
    if device.startswith("cuda"):
        import torch

        # GPUs before Ampere have no fast bfloat16: float16 there.
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return AUTO_CPU_DTYPE


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name."""
    return 4 if dtype == "float32" else 2


def meta_model(config: Any):
    """The causal LM of a config on the meta device: shapes only, no memory, tied weights
    shared as in the real model."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=False)


def model_bytes(folder: Path, dtype: str, *, four_bit: bool = False) -> int:
    """Parameter bytes of the model in `folder` at `dtype`, from its config alone.

    The model is built on the meta device (no memory, no weights read). four_bit: linear
    layers (not the output head) in NF4, as bitsandbytes stores them.
    """
    import torch
    from transformers import AutoConfig

    try:
        model = meta_model(AutoConfig.from_pretrained(folder, trust_remote_code=False))
    except Exception as error:
        raise ModelError(f"The model config in {folder} cannot be read: {error}") from error
    quantised = set()
    if four_bit:
        head = model.get_output_embeddings()
        quantised = {id(m.weight) for m in model.modules()
                     if isinstance(m, torch.nn.Linear) and m is not head}
    size = dtype_bytes(dtype)
    return int(sum(p.numel() * (NF4_BYTES if id(p) in quantised else size)
                   for p in model.parameters()))


def free_bytes(device: str) -> int:
    """Free memory of a device: CUDA free memory, or available RAM for "cpu"."""
    if device == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    import torch

    return int(torch.cuda.mem_get_info(torch.device(device))[0])


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def plan_placement(folder: Path, dtype: str, device: str, *, spread: bool = True,
                   four_bit: bool = False, need: int | None = None) -> Placement:
    """Where a model fits, decided before loading.

    Args:
        folder: the model folder (config.json is enough).
        dtype: resolved dtype name; four_bit: NF4 linear layers (QLoRA).
        device: a resolved device ("cpu", "cuda:N"; resolve_device).
        spread: a GPU too small may hand over to every GPU and CPU RAM (False when the user
            named one GPU, or for training, which needs the whole model on its device).
        need: parameter bytes (default: model_bytes).
    Returns:
        Placement: the one device when the model fits there; else accelerate's device_map over
        every GPU (then CPU RAM) when `spread`.
    Raises:
        ModelError: the model does not fit in the memory there is.
    """
    need = int((need if need is not None else model_bytes(folder, dtype, four_bit=four_bit))
               * HEADROOM)
    free = free_bytes(device)
    if need <= free:
        return Placement(device=device, label=device)
    what = f"The model in {folder} needs about {_gb(need)} ({dtype}"
    what += ", 4-bit)" if four_bit else ")"
    if device == "cpu":
        raise ModelError(f"{what}, but only {_gb(free)} of RAM is available. Use a smaller "
                         "model, a GPU (--device cuda) or close other programs.")
    if not spread:
        raise ModelError(f"{what}, but {device} has only {_gb(free)} free. Use a GPU with "
                         "more free memory or a smaller model (training: QLoRA's 4-bit "
                         "weights); to simulate, --device cuda spreads a model over every GPU.")
    return _spread(need, what, device)


def _spread(need: int, what: str, device: str) -> Placement:
    """accelerate's device_map over every GPU, then CPU RAM; refuse if even that is short."""
    gpus = {i: free_bytes(f"cuda:{i}") for i in range(cuda_count())}
    cpu = free_bytes("cpu")
    if need > sum(gpus.values()) + cpu:
        raise ModelError(f"{what}, more than the free memory of every GPU and the RAM "
                         f"together ({_gb(sum(gpus.values()))} + {_gb(cpu)}). Use a smaller "
                         "model or a 4-bit one.")
    # Each device keeps the same headroom as a single-device load.
    max_memory: dict[Any, int] = {i: int(b / HEADROOM) for i, b in gpus.items()}
    max_memory["cpu"] = int(cpu / HEADROOM)
    used = [f"cuda:{i}" for i in gpus]
    if need > sum(gpus.values()):
        used.append("cpu")
        warnings.warn(f"{what}, more than the GPUs hold: some layers run from CPU RAM, "
                      "which is much slower.", stacklevel=3)
    # the map starts on the first GPU: inputs go there
    return Placement(device=f"cuda:{min(gpus)}" if gpus else device, device_map="auto",
                     max_memory=max_memory, label="+".join(used))


def auto_batch_size(model: Any, device: str) -> int:
    """Prompts per forward pass suited to the device: CPU_BATCH on CPU; on a GPU as many as
    half its free memory holds (activations of one layer, BATCH_TOKENS each), a power of two
    between 8 and GPU_BATCH_CAP."""
    if not device.startswith("cuda"):
        return CPU_BATCH
    config = getattr(model, "config", None)
    hidden = int(getattr(config, "hidden_size", 4096))
    inter = int(getattr(config, "intermediate_size", 4 * hidden))
    # the live tensors of one decoder layer (residual, norm, q/k/v, attention out, MLP),
    # doubled for the allocator; no KV cache is kept (use_cache=False)
    per_prompt = BATCH_TOKENS * (4 * hidden + 3 * inter) * 2 * 2
    fits = int(0.5 * free_bytes(device) // per_prompt)
    size = CPU_BATCH
    while size * 2 <= min(fits, GPU_BATCH_CAP):
        size *= 2
    return size


def check_model_device(loaded_on: str, device: str) -> None:
    """Refuse to run a model loaded on `loaded_on` for settings that ask for another device
    ("auto": wherever it was loaded) rather than run somewhere unasked."""
    if device.strip().lower() == "auto":
        return
    wanted = resolve_device(device)
    if wanted != loaded_on:
        raise ModelError(f"The model is loaded on {loaded_on}, but the settings ask for {wanted}: "
                         f"load it with load_model(..., device='{device}').")


def device_key(device: str) -> dict[str, str]:
    """Result-cache key part for the hardware: GPU kernels give (slightly) different numbers
    than the CPU, so their results are kept apart; CPU keys stay as they always were."""
    return {} if device == "cpu" else {"device": device.split(":")[0]}
