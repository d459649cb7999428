"""GPU benchmark: the same GSS workload on the CPU and on a CUDA GPU, a 7B-shaped model in
bfloat16 on the GPU, and QLoRA on the 7B shape. Everything goes through the product's code
(load_model, simulate_rows, finetune.train.train_adapter).

Rows:
  embedded, cpu    SmolLM2-135M-Instruct, bfloat16, 2 threads: distributions/s
  embedded, cuda   the same model and workload on the GPU (batch size: auto)
  7B shape, cuda   a random Llama-2-7B-shaped model (bench/shapes.py) in bfloat16:
                   distributions/s and the prefill's achieved TFLOP/s against the GPU's
                   measured bf16 matmul peak (target: >= 40 % of it)
  QLoRA 7B shape   4-bit NF4 base, LoRA on all 7 projections, batch 8: peak GPU memory
                   (target < 12 GB) and seconds per step
  QLoRA embedded   30 steps on GSS rows: held-out Wasserstein before -> after

Model FLOPs per distribution = 2 x (parameters without embeddings) x prompt tokens + 2 x
hidden x vocabulary (the output head at the last position); padding is not counted.

Usage: python bench/gpu.py [--quick] [--shape llama2-7b] [--model-dir DIR] [--no-qlora]
Without a CUDA GPU only the CPU row is measured and the others say so. Writes a markdown
table to bench/results/gpu.md (gpu-quick.md with --quick).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch
from shapes import build_random_model
from throughput import workload

from finetune.config import TrainConfig
from finetune.train import train_adapter
from sim_core.evaluation.splits import Split, SplitInfo, split_rows
from sim_core.simulation.adapters import delete_adapter
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.prompts import build_prompt
from sim_core.simulation.simulate import simulate_rows

NOT_MEASURED = "not measured: no CUDA GPU on this machine"


def sync(device: str) -> None:
    """Wait for the GPU's queued work (timings must include it)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_flops(lm, rows) -> float:
    """Prefill FLOPs of one pass over the rows (see the module docstring)."""
    model = lm.model
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    body = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    tokens = sum(len(lm.tokenizer.encode(build_prompt(lm.tokenizer, r.question, r.slice),
                                         add_special_tokens=False)) for r in rows)
    head = 2 * model.config.hidden_size * model.config.vocab_size * len(rows)
    return 2.0 * body * tokens + head


def time_simulation(lm, rows, repeats: int) -> dict:
    """Distributions/s and achieved TFLOP/s of simulate_rows (one option order, no cache),
    after one untimed warm-up pass."""
    config = SimConfig(orders=1, use_cache=False, batch_size=None)
    simulate_rows(lm, rows, config)
    sync(lm.device)
    start = time.perf_counter()
    for _ in range(repeats):
        simulate_rows(lm, rows, config)
    sync(lm.device)
    seconds = (time.perf_counter() - start) / repeats
    return {"distributions": len(rows), "seconds": seconds,
            "rate": len(rows) / seconds, "tflops": model_flops(lm, rows) / seconds / 1e12}


def matmul_peak_tflops(n: int = 8192, repeats: int = 20) -> float:
    """Achieved TFLOP/s of an n x n bfloat16 matmul on the GPU (the practical peak)."""
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def embedded_rows(rows, repeats: int, threads: int, cuda: bool) -> list[dict]:
    """The embedded model on the CPU, then (with CUDA) on the GPU, same workload."""
    torch.set_num_threads(threads)
    out = []
    for device in ("cpu", "cuda") if cuda else ("cpu",):
        lm = load_model("default", device=device)
        out.append({"row": f"embedded, {device}", "dtype": lm.dtype, "device": lm.device,
                    **time_simulation(lm, rows, 1 if device == "cpu" else repeats)})
        del lm
    return out


def shape_row(folder: Path, shape: str, rows, repeats: int, peak: float) -> dict:
    """The random 7B-shaped model in bfloat16 on the GPU."""
    lm = load_model(str(folder), dtype="bfloat16", device="cuda")
    result = time_simulation(lm, rows, repeats)
    result.update(row=f"{shape} shape (random), cuda", dtype=lm.dtype, device=lm.placement,
                  share=result["tflops"] / peak)
    del lm
    torch.cuda.empty_cache()
    return result


def qlora_steps(base: str, rows, steps: int, test: list | None = None) -> dict:
    """QLoRA training through train_adapter: peak GPU memory, seconds per step (steps after
    the first two), and held-out scores when test rows are given."""
    stamps: list[float] = []
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    config = TrainConfig(qlora=True, max_steps=steps, batch_size=8, save_every=10_000,
                         evaluate_test=bool(test), eval_every=None, patience=0)
    split = Split(train=list(rows), val=[], test=list(test or []), info=SplitInfo(how="bench"))
    with tempfile.TemporaryDirectory(prefix="bench-qlora-") as job:
        result = train_adapter(split, name=f"bench-qlora-{int(time.time())}", base=base,
                               config=config, job_dir=job,
                               callback=lambda event: stamps.append(time.perf_counter()))
    peak = torch.cuda.max_memory_allocated() / 1e9
    delete_adapter(result.adapter_path.name)       # the benchmark keeps no adapter
    timed = stamps[2:]
    per_step = (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else float("nan")
    return {"peak_gb": peak, "s_per_step": per_step, "before": result.before,
            "after": result.after}


def gss_split(seed: int = 0):
    """GSS rows of 8 questions (22 groups each), random split: training and held-out rows."""
    rows = workload(8, 22)
    split = split_rows(rows, "random", test_fraction=0.2, val_fraction=0.0, seed=seed)
    return split.train, split.test


def table(rows: list[dict], gpu: str, peak: float | None, qlora: dict) -> str:
    """The markdown report."""
    header = ("| row | device | dtype | distributions | seconds | distributions/s | TFLOP/s "
              "| % of bf16 matmul peak |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "rate" not in r:
            lines.append(f"| {r['row']} | - | - | - | - | {NOT_MEASURED} | - | - |")
            continue
        share = f"{100 * r['share']:.0f} %" if r.get("share") is not None else "-"
        lines.append(f"| {r['row']} | {r['device']} | {r['dtype']} | {r['distributions']} | "
                     f"{r['seconds']:.3f} | {r['rate']:.1f} | {r['tflops']:.3f} | {share} |")
    lines += ["", f"- GPU: {gpu}; bf16 matmul peak (8192^2): "
              + (f"{peak:.0f} TFLOP/s" if peak else NOT_MEASURED)]
    for name, q in qlora.items():
        if "peak_gb" not in q:
            lines.append(f"- {name}: {q.get('note', NOT_MEASURED)}")
            continue
        text = (f"- {name}: peak GPU memory {q['peak_gb']:.1f} GB at batch 8, "
                f"{q['s_per_step']:.2f} s/step")
        if q.get("after"):
            text += (f"; held-out Wasserstein {q['before'].get('wasserstein', float('nan')):.3f}"
                     f" -> {q['after'].get('wasserstein', float('nan')):.3f}")
        lines.append(text)
    return "\n".join(lines)


def gpu_part(args, rows) -> tuple[list[dict], float, dict]:
    """The rows that need CUDA: 7B shape inference, QLoRA on the 7B shape and the embedded
    model."""
    peak = matmul_peak_tflops()
    with tempfile.TemporaryDirectory(prefix="bench-shape-") as scratch:
        folder = Path(args.model_dir) if args.model_dir else Path(scratch) / args.shape
        if not (folder / "config.json").exists():
            print(f"building a random {args.shape} model in {folder} ...", file=sys.stderr)
            build_random_model(args.shape, folder, dtype="bfloat16", device="cuda")
        shape = [shape_row(folder, args.shape, rows, args.repeats, peak)]
        qlora = {}
        if not args.no_qlora:
            train, test = gss_split()
            qlora[f"QLoRA, {args.shape} shape"] = qlora_steps(str(folder), train,
                                                               args.qlora_steps)
            qlora["QLoRA, embedded model, 30 steps"] = qlora_steps("default", train, 30,
                                                                   test=test)
    return shape, peak, qlora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 questions x 6 groups")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--slices", type=int, default=22)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes on the GPU")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--shape", default="llama2-7b", help="bench/shapes.py shape")
    parser.add_argument("--model-dir", help="reuse (or keep) the random model's folder")
    parser.add_argument("--qlora-steps", type=int, default=12)
    parser.add_argument("--no-qlora", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.questions, args.slices = 4, 6
    rows = workload(args.questions, args.slices)
    cuda = torch.cuda.is_available()
    if not cuda:
        print(f"No CUDA GPU ({torch.__version__}): measuring the CPU row only.",
              file=sys.stderr)
    measured = embedded_rows(rows, args.repeats, args.threads, cuda)
    if cuda:
        shape, peak, qlora = gpu_part(args, rows)
        gpu = torch.cuda.get_device_name()
    else:
        measured.append({"row": "embedded, cuda"})
        shape, peak, gpu = [{"row": f"{args.shape} shape (random), cuda"}], None, NOT_MEASURED
        qlora = {f"QLoRA, {args.shape} shape": {}, "QLoRA, embedded model, 30 steps": {}}
    text = (f"Workload: {len(rows)} distributions ({args.questions} GSS questions x "
            f"{args.slices} groups), one option order, no cache; CPU rows with {args.threads} "
            f"threads on {platform.machine()} (load average {os.getloadavg()[0]:.1f} at the "
            f"end). Reproduce: `python bench/gpu.py"
            f"{' --quick' if args.quick else ''}`.\n\n"
            + table(measured + shape, gpu, peak, qlora))
    print(text)
    out = ROOT / "bench" / "results" / ("gpu-quick.md" if args.quick else "gpu.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
