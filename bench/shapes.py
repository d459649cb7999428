"""Randomly initialised Llama models of published shapes, with the embedded tokenizer.

For benchmarks (and the tests' tiny model) only, never the product: random weights answer
nothing sensibly, but a 7B-shaped model costs what a real 7B model costs in time and memory,
without a download. Each is saved as an ordinary Hugging Face folder that
`sim_core.simulation.models.load_model`, the CLI (`--model FOLDER`) and `finetune` open.

Usage:
    python bench/shapes.py llama2-7b --out /data/llama2-7b-random --device cuda
    python bench/shapes.py llama3-8b --count          # parameters only, nothing allocated
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Published dimensions (the models' config.json files). The vocabulary is the embedded
# tokenizer's when the published one is smaller (Llama-2's 32000 < its 49152 ids); a larger
# published vocabulary is kept, so Llama-3-8B has exactly its published 8.03e9 parameters.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 2,
             "max_position_embeddings": 2048, "tie_word_embeddings": True, "vocab_size": 0},
    "llama2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 32,
                  "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
                  "tie_word_embeddings": False, "vocab_size": 32000},
    "llama3-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 8,
                  "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                  "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
                  "tie_word_embeddings": False, "vocab_size": 128256},
}


def shape_config(shape: str, tokenizer: Any = None):
    """LlamaConfig of a named shape, sized for the embedded tokenizer (its special tokens).

    Raises:
        ValueError: unknown shape name.
    """
    from transformers import LlamaConfig

    from sim_core.simulation.models import load_embedded_tokenizer

    if shape not in SHAPES:
        raise ValueError(f"Unknown shape '{shape}': use one of {', '.join(SHAPES)}.")
    tokenizer = tokenizer if tokenizer is not None else load_embedded_tokenizer()
    dims = dict(SHAPES[shape])
    dims["vocab_size"] = max(int(dims["vocab_size"]), len(tokenizer))
    return LlamaConfig(**dims, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def parameter_count(config, *, embeddings: bool = True) -> int:
    """Parameters of a config's model, counted on the meta device (nothing is allocated).

    embeddings=False leaves out the input embedding and the output head (the part whose
    size depends on the vocabulary; the rest does the per-token matmul work).
    """
    from sim_core.simulation.devices import meta_model

    model = meta_model(config)
    skip = set()
    if not embeddings:
        skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def build_random_model(shape: str, folder: Path, *, seed: int = 0, dtype: str = "float32",
                       device: str = "cpu") -> Path:
    """Save a randomly initialised model of a named shape, with the embedded tokenizer.

    Args:
        shape: a key of SHAPES ("tiny", "llama2-7b", "llama3-8b").
        folder: where to save it (created).
        seed: torch seed for the random weights.
        dtype: weights dtype (a 7B model in float32 needs 28 GB while it is built).
        device: where to build it ("cuda" builds a 7B model in seconds).
    Returns:
        The folder, loadable with load_model(str(folder)).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from sim_core.simulation.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    config = shape_config(shape, tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    """Count a shape's parameters, or save a random model of it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=list(SHAPES))
    parser.add_argument("--out", type=Path, help="folder to save the model in")
    parser.add_argument("--count", action="store_true", help="print the parameter count only")
    parser.add_argument("--device", default="cpu", help="where to build it (cpu, cuda)")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = shape_config(args.shape)
    total, body = parameter_count(config), parameter_count(config, embeddings=False)
    print(f"{args.shape}: {total:,} parameters ({body:,} without embeddings and head), "
          f"vocabulary {config.vocab_size}")
    if args.count:
        return 0
    if args.out is None:
        parser.error("give --out FOLDER (or --count)")
    build_random_model(args.shape, args.out, seed=args.seed, dtype=args.dtype,
                       device=args.device)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
