"""Test helpers that build things: a tiny random model with the embedded tokenizer, random
LoRA adapters on it. Shared by the test files (and nothing in the product)."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from shapes import build_random_model  # bench/shapes.py (conftest puts bench/ on the path)

from sim_core.simulation.adapters import save_adapter
from sim_core.simulation.models import load_model


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A tiny random Llama with the embedded tokenizer (chat template included): the "tiny"
    shape of bench/shapes.py.

    Args:
        folder: where to save it (created).
        seed: torch seed for the random weights.
    Returns:
        The folder, loadable with sim_core.simulation.models.load_model(str(folder)).
    """
    return build_random_model("tiny", folder, seed=seed)


def random_lora(model_dir, seed: int = 0, dtype: str = "float32"):
    """A LoRA with random (non-zero) B matrices on a freshly loaded model, and its base."""
    lm = load_model(str(model_dir), dtype=dtype)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    return get_peft_model(lm.model, config), lm


def save_random_adapter(model_dir, name: str, card: dict | None = None, *, dtype="float32",
                        **kw):
    """A random LoRA saved in the registry; the card names its base unless one is given.

    Returns:
        (adapter folder, the base LoadedModel).
    """
    peft_model, lm = random_lora(model_dir, dtype=dtype)
    card = {"base_model": str(model_dir), "base_fingerprint": lm.fingerprint} \
        if card is None else card
    return save_adapter(peft_model.save_pretrained, name, card, **kw), lm


def biased_head(lm, bias: dict[int, float]) -> None:
    """Replace the output layer by zero weights plus a bias: known logits for every prompt."""
    import torch

    hidden, vocab = lm.model.config.hidden_size, lm.model.config.vocab_size
    head = torch.nn.Linear(hidden, vocab, bias=True)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    for token, value in bias.items():
        head.bias.data[token] = value
    lm.model.lm_head = head
