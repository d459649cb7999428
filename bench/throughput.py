"""Throughput benchmark: naive vs optimised first-token vs sampling vs cached repeat.

One workload (GSS questions x slices) goes through four paths, each in its own child process so
that peak memory (RSS) is per path:

  naive      float32, one prompt at a time, logits for every position (no logits_to_keep)
  optimised  sim_core.simulate first-token path: load_model(dtype="auto"), length-sorted
             batches, logits_to_keep=1, one option order (same work as naive)
  sampling   sim_core.simulate sampling mode, 20 respondents per slice
  cached     the optimised run repeated: every distribution comes from the result cache

Usage: python bench/throughput.py [--quick] [--questions N] [--slices N] [--threads 2]
Prints a markdown table: distributions/s, peak RSS, ratios, achieved GFLOP/s vs a bf16 matmul.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GSS = ROOT.parent / "shared" / "data" / "gss2022_subpop" / "subpop_eval.jsonl"
PATHS = ("naive", "optimised", "sampling", "cached")


def workload(questions: int, slices: int) -> list:
    """The first `questions` GSS questions, each with its first `slices` group rows."""
    from sim_core.readers import load_survey
    from sim_core.slices import survey_rows

    path = GSS
    if not path.exists():
        from sim_core.demo import demo_gss_path

        path = demo_gss_path()
    rows = survey_rows(load_survey(path))
    chosen, per_question = [], {}
    for row in rows:
        ids = list(per_question)
        if row.question.id not in per_question and len(ids) >= questions:
            continue
        per_question.setdefault(row.question.id, 0)
        if per_question[row.question.id] < slices:
            per_question[row.question.id] += 1
            chosen.append(row)
    return chosen


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive(lm, rows) -> int:
    """One prompt at a time, full logits, softmax over the whole vocabulary; returns tokens."""
    import torch

    from sim_core.prompts import build_prompt
    from sim_core.simulate import letter_token_ids

    tokens = 0
    with torch.inference_mode():
        for row in rows:
            prompt = build_prompt(lm.tokenizer, row.question, row.slice)
            ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            probs = torch.softmax(lm.model(input_ids=ids).logits[0, -1], dim=-1)
            letters = [float(probs[i].sum()) for i in letter_token_ids(lm.tokenizer,
                                                                     len(row.question.options))]
            assert abs(sum(letters) / sum(letters) - 1) < 1e-6
            tokens += ids.shape[1]
    return tokens


def child(path: str, args) -> dict:
    """Run one path in this (child) process and return its measurements."""
    import torch

    from sim_core.models import load_model
    from sim_core.prompts import build_prompt
    from sim_core.simulate import SimConfig, simulate_rows

    torch.set_num_threads(args.threads)
    rows = workload(args.questions, args.slices)
    # a CPU benchmark (threads, RSS): the CPU even where a GPU is present (bench/gpu.py)
    lm = load_model("default", dtype="float32" if path == "naive" else "auto", device="cpu")
    prompts = [build_prompt(lm.tokenizer, r.question, r.slice) for r in rows]
    tokens = sum(len(lm.tokenizer.encode(p, add_special_tokens=False)) for p in prompts)
    config = SimConfig(orders=1, use_cache=path == "cached", batch_size=args.batch_size)
    if path == "sampling":
        config = SimConfig(mode="sample", samples=args.samples, use_cache=False)
    if path == "cached":
        simulate_rows(lm, rows, config)  # fill the cache; the timed repeat below reads it
    start = time.perf_counter()
    if path == "naive":
        naive(lm, rows)
    else:
        results = simulate_rows(lm, rows, config)
        assert path != "cached" or all(r.cached for r in results)
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in lm.model.parameters())
    return {"path": path, "rows": len(rows), "seconds": seconds, "tokens": tokens,
            "params": params, "dtype": lm.dtype, "rss_mb": peak_rss_mb()}


def matmul_gflops(dtype_name: str, threads: int, n: int = 1024, repeat: int = 5) -> float:
    """Achieved GFLOP/s of an n x n torch.matmul in the given dtype."""
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        torch.matmul(a, b)
    return 2 * n ** 3 * repeat / (time.perf_counter() - start) / 1e9


def run_child(path: str, args, workspace: str) -> dict:
    """Start this script for one path in a fresh process (own peak RSS)."""
    command = [sys.executable, __file__, "--child", path, "--questions", str(args.questions),
               "--slices", str(args.slices), "--samples", str(args.samples),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    env = {**os.environ, "SIM_WORKSPACE_BENCH": workspace, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict], matmul: dict[str, float]) -> str:
    """The markdown report."""
    rate = {p: r["rows"] / r["seconds"] for p, r in results.items()}
    lines = ["| path | dtype | distributions | seconds | distributions/s | x naive | "
             "peak RSS (MB) | GFLOP/s |", "|---|---|---|---|---|---|---|---|"]
    for path, r in results.items():
        gflops = 2 * r["params"] * r["tokens"] / r["seconds"] / 1e9 if path != "cached" else 0
        lines.append(f"| {path} | {r['dtype']} | {r['rows']} | {r['seconds']:.2f} | "
                     f"{rate[path]:.2f} | {rate[path] / rate['naive']:.2f} | {r['rss_mb']:.0f} | "
                     + (f"{gflops:.1f} |" if gflops else "- |"))
    lines += ["", f"- optimised / naive: {rate['optimised'] / rate['naive']:.2f}x (target >= 1.75)",
              f"- sampling cost per distribution / optimised: "
              f"{rate['optimised'] / rate['sampling']:.1f}x (target >= 20)",
              f"- cached repeat / optimised: {rate['cached'] / rate['optimised']:.0f}x "
              "(target >= 100)",
              f"- peak RSS max: {max(r['rss_mb'] for r in results.values()):.0f} MB (target < 3000)",
              f"- torch.matmul 1024^2 on this machine: bf16 {matmul['bfloat16']:.1f} GFLOP/s, "
              f"fp32 {matmul['float32']:.1f} GFLOP/s (GFLOP/s above = 2 x params x prompt "
              "tokens / time; sampling counts prompt tokens only)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workload (4 x 4)")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.questions, args.slices = 4, 4
    if args.child:
        if os.environ.get("SIM_WORKSPACE_BENCH"):
            _private_cache(os.environ["SIM_WORKSPACE_BENCH"])
        print(json.dumps(child(args.child, args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as workspace:
        results = {}
        for path in PATHS:
            print(f"running {path} ...", file=sys.stderr, flush=True)
            results[path] = run_child(path, args, workspace)
    matmul = {name: matmul_gflops(name, args.threads) for name in ("bfloat16", "float32")}
    text = (f"Workload: {results['naive']['rows']} distributions ({args.questions} GSS "
            f"questions x {args.slices} slices), "
            f"{results['naive']['tokens'] / results['naive']['rows']:.0f} prompt tokens on "
            f"average, {args.threads} threads, SmolLM2-135M-Instruct. Reproduce: "
            f"`python bench/throughput.py{' --quick' if args.quick else ''}`.\n\n"
            + table(results, matmul))
    print(text)
    out = ROOT / "bench" / "results" / ("throughput-quick.md" if args.quick else "throughput.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


def _private_cache(folder: str) -> None:
    """Point the result cache at a fresh folder so no earlier run's entries are reused."""
    import sim_core.cache as cache

    cache.cache_path = lambda: Path(folder) / cache.CACHE_FILE


if __name__ == "__main__":
    main()
