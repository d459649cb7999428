"""Throughput benchmark: the local paths and an OpenAI-compatible endpoint (vLLM) side by side.

One workload (GSS questions x slices) goes through every path, each in its own child process so
that peak memory (RSS) is per path:

  naive              float32, one prompt at a time, logits for every position
  optimised          sim_core.simulation.simulate first-token path: load_model(dtype="auto"),
                     length-sorted batches, logits_to_keep=1, one option order (same work as
                     naive)
  optimised-fp32     the same in float32 (the exact numbers; reference for the TV column)
  sampling           sim_core.simulation.simulate sampling mode, 20 respondents per slice
  cached             the optimised run repeated: every distribution comes from the result cache
  endpoint           the first-token path through sim_core.simulation.completions: vLLM-CPU
                     started here from .venv-vllm (float32), or the server given by
                     --endpoint-url
  endpoint-repeat    the same prompts again (the server's prefix cache holds them; ours is off)
  endpoint-sampling  sampling mode through the endpoint, 20 respondents per slice

Usage: python bench/throughput.py [--quick] [--paths a,b] [--endpoint-url URL --served-model M
       --tokenizer T] [--concurrency 8]
Prints a markdown table: distributions/s, peak RSS (client + server), total variation against
local float32, machine load; ratios below it.
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
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
GSS = ROOT.parent / "shared" / "data" / "gss2022_subpop" / "subpop_eval.jsonl"
LOCAL_PATHS = ("naive", "optimised", "optimised-fp32", "sampling", "cached")
ENDPOINT_PATHS = ("endpoint", "endpoint-repeat", "endpoint-sampling")
PATHS = LOCAL_PATHS + ENDPOINT_PATHS


def workload(questions: int, slices: int) -> list:
    """The first `questions` GSS questions, each with its first `slices` group rows."""
    from sim_core.survey.readers import load_survey
    from sim_core.survey.slices import head_rows, survey_rows

    path = GSS
    if not path.exists():
        from sim_core.survey.demo import demo_gss_path

        path = demo_gss_path()
    return head_rows(survey_rows(load_survey(path)), questions, slices)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive(lm, rows) -> list:
    """One prompt at a time, full logits, softmax over the whole vocabulary (shares per row)."""
    import torch

    from sim_core.simulation.local import letter_token_ids
    from sim_core.simulation.prompts import build_prompt

    results = []
    with torch.inference_mode():
        for row in rows:
            prompt = build_prompt(lm.tokenizer, row.question, row.slice)
            ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            probs = torch.softmax(lm.model(input_ids=ids).logits[0, -1], dim=-1)
            letters = [float(probs[i].sum()) for i in letter_token_ids(lm.tokenizer,
                                                                     len(row.question.options))]
            results.append(SimpleNamespace(shares=np.array(letters) / sum(letters)))
    return results


def child(path: str, args) -> dict:
    """Run one path in this (child) process and return its measurements."""
    import torch

    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.prompts import build_prompt
    from sim_core.simulation.simulate import simulate_rows

    torch.set_num_threads(args.threads)
    rows = workload(args.questions, args.slices)
    lm = _checkpoint(path, args)
    prompts = [build_prompt(lm.tokenizer, r.question, r.slice) for r in rows]
    tokens = sum(len(lm.tokenizer.encode(p, add_special_tokens=False)) for p in prompts)
    config = SimConfig(orders=1, use_cache=path == "cached", batch_size=args.batch_size)
    if path.endswith("sampling"):
        config = SimConfig(mode="sample", samples=args.samples, use_cache=False)
    if path in ("cached", "endpoint-repeat"):
        simulate_rows(lm, rows, config)  # fill our cache / the server's prefix cache first
    start = time.perf_counter()
    results = naive(lm, rows) if path == "naive" else simulate_rows(lm, rows, config)
    seconds = time.perf_counter() - start
    assert path != "cached" or all(r.cached for r in results)
    model = getattr(lm, "model", None)
    return {"path": path, "rows": len(rows), "seconds": seconds, "tokens": tokens,
            "params": sum(p.numel() for p in model.parameters()) if model is not None else 0,
            "dtype": getattr(lm, "dtype", "served"), "rss_mb": peak_rss_mb(),
            "load": os.getloadavg()[0], "label": lm.label,
            "shares": None if path.endswith("sampling") else [list(r.shares) for r in results]}


def _checkpoint(path: str, args):
    """The local model in the path's dtype, or the endpoint model."""
    if path.startswith("endpoint"):
        from sim_core.simulation.completions import connect

        return connect(args.endpoint_url, args.served_model, tokenizer=args.tokenizer,
                       api_key_env=args.api_key_env, concurrency=args.concurrency,
                       timeout=args.timeout)
    from sim_core.simulation.models import load_model

    # a CPU benchmark (threads, RSS): the CPU even where a GPU is present (bench/gpu.py)
    return load_model(args.model, dtype="float32" if path in ("naive", "optimised-fp32")
                      else "auto", device="cpu")


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
               "--threads", str(args.threads), "--batch-size", str(args.batch_size),
               "--model", args.model, "--concurrency", str(args.concurrency),
               "--timeout", str(args.timeout), "--api-key-env", args.api_key_env]
    for flag in ("endpoint_url", "served_model", "tokenizer"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    env = {**os.environ, "SIM_WORKSPACE_BENCH": workspace, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tv(first: list, second: list) -> np.ndarray:
    """Per row total variation between two lists of share vectors."""
    return np.array([0.5 * np.abs(np.array(a) - np.array(b)).sum() for a, b in zip(first, second)])


def table(results: dict[str, dict], matmul: dict[str, float], server_mb: float | None) -> str:
    """The markdown report."""
    failed = {p: r["error"] for p, r in results.items() if "error" in r}
    results = {p: r for p, r in results.items() if "error" not in r}
    rate = {p: r["rows"] / r["seconds"] for p, r in results.items()}
    reference = results.get("optimised-fp32", {}).get("shares")
    lines = ["| path | dtype | distributions | seconds | distributions/s | x naive | "
             "peak RSS (MB) | GFLOP/s | TV vs local fp32 (mean / max) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for path, r in results.items():
        gflops = 2 * r["params"] * r["tokens"] / r["seconds"] / 1e9 \
            if path != "cached" and r["params"] else 0
        rss = f"{r['rss_mb']:.0f}"
        if path.startswith("endpoint"):
            rss += f" + server {server_mb:.0f}" if server_mb else " + server -"
        tv = _tv(r["shares"], reference) if r.get("shares") and reference else None
        lines.append(f"| {path} | {r['dtype']} | {r['rows']} | {r['seconds']:.2f} | "
                     f"{rate[path]:.2f} | "
                     + (f"{rate[path] / rate['naive']:.2f}" if "naive" in rate else "-")
                     + f" | {rss} | " + (f"{gflops:.1f}" if gflops else "-")
                     + (f" | {tv.mean():.4f} / {tv.max():.4f}" if tv is not None else " | -")
                     + f" | {r['load']:.1f} |")
    lines += [f"| {p} | failed: {error} |" + " |" * 8 for p, error in failed.items()]
    return "\n".join(lines + [""] + notes(rate, results, matmul, server_mb))


def notes(rate: dict, results: dict, matmul: dict, server_mb: float | None) -> list[str]:
    """The ratio lines below the table (for the paths that ran)."""
    out = []
    ratio = [("optimised", "naive", "optimised / naive: {:.2f}x (target >= 1.75)"),
             ("optimised", "sampling", "sampling cost per distribution / optimised: {:.1f}x "
              "(target >= 20)"),
             ("cached", "optimised", "cached repeat / optimised: {:.0f}x (target >= 100)"),
             ("endpoint", "optimised-fp32", "endpoint / local optimised float32: {:.2f}x"),
             ("endpoint", "optimised", "endpoint / local optimised bfloat16: {:.2f}x"),
             ("endpoint-repeat", "endpoint", "endpoint, prompts seen before / new: {:.2f}x"),
             ("endpoint", "endpoint-sampling", "endpoint sampling cost per distribution / "
              "endpoint first-token: {:.1f}x")]
    out += [f"- {text.format(rate[a] / rate[b])}" for a, b, text in ratio
            if a in rate and b in rate]
    local = [r["rss_mb"] for p, r in results.items() if not p.startswith("endpoint")]
    if local:
        out.append(f"- peak RSS max of the local paths: {max(local):.0f} MB (target < 3000)")
    if server_mb:
        out.append(f"- vLLM server: {server_mb:.0f} MB (sum of each server process's peak RSS)")
    if matmul:
        out.append(f"- torch.matmul 1024^2 on this machine: bf16 {matmul['bfloat16']:.1f} "
                   f"GFLOP/s, fp32 {matmul['float32']:.1f} GFLOP/s (GFLOP/s above = 2 x params x "
                   "prompt tokens / time; sampling counts prompt tokens only)")
    return out


def endpoint_server(args, paths: list[str], folder: str):
    """Start vLLM-CPU on 127.0.0.1 for the endpoint paths (None: none needed, or --endpoint-url)."""
    if not any(p.startswith("endpoint") for p in paths) or args.endpoint_url:
        return None
    from vllm_server import start_vllm, vllm_python

    from sim_core.simulation.models import resolve_model

    if vllm_python() is None:
        raise SystemExit("The endpoint paths need vLLM's venv: run `make install-vllm`, give "
                         "--endpoint-url, or leave them out with --paths.")
    print("starting vLLM-CPU ...", file=sys.stderr, flush=True)
    server = start_vllm(resolve_model(args.model), Path(folder) / "vllm.log")
    args.endpoint_url, args.served_model = server.url, server.model
    args.tokenizer = args.tokenizer or args.model
    return server


def header(args, results: dict, server) -> str:
    """The workload line above the table."""
    first = next(r for r in results.values() if "error" not in r)
    where = ("vLLM-CPU 0.32 on 127.0.0.1 (float32, --enforce-eager, no chunked prefill; its "
             f"engine uses all {os.cpu_count()} cores), " if server else
             f"endpoint {args.endpoint_url} serving {args.served_model}, "
             if args.endpoint_url else "")
    command = "python bench/throughput.py" + (" --quick" if args.quick else "") + (
        f" --paths {','.join(results)}" if args.paths else "")
    return (f"Workload: {first['rows']} distributions ({args.questions} GSS questions x "
            f"{args.slices} slices), {first['tokens'] / first['rows']:.0f} prompt tokens on "
            f"average, {args.threads} torch threads for the local paths, {first['label']}; "
            f"{where}{args.concurrency} requests in flight. Load avg = the machine's 1-minute "
            f"load when the path ended ({os.cpu_count()} cores; the paths themselves count). "
            f"Reproduce: `{command}`.")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workload (4 x 4)")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="default", help="local model (and the one vLLM serves)")
    parser.add_argument("--paths", default=None, help=f"comma-separated subset of {PATHS}")
    parser.add_argument("--endpoint-url", default=None,
                        help="an already running server for the endpoint paths (else vLLM-CPU "
                             "is started here from .venv-vllm)")
    parser.add_argument("--served-model", default=None, help="model id on that server")
    parser.add_argument("--tokenizer", default=None, help="its tokenizer (default: --model)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per endpoint request (a busy 2-core machine needs minutes "
                             "for 8 sampling requests of 20 completions each)")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.questions, args.slices = 4, 4
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        if os.environ.get("SIM_WORKSPACE_BENCH"):
            _private_cache(os.environ["SIM_WORKSPACE_BENCH"])
        print(json.dumps(child(args.child, args)))
        return
    paths = [p for p in PATHS if p in (args.paths or ",".join(PATHS)).split(",")]
    results, server, server_mb = {}, None, None
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as workspace:
        try:
            for path in paths:
                print(f"running {path} ...", file=sys.stderr, flush=True)
                try:
                    if path.startswith("endpoint") and server is None:
                        server = endpoint_server(args, paths, workspace)  # after local paths
                    results[path] = run_child(path, args, workspace)
                except (RuntimeError, SystemExit) as error:  # one failure loses no other path
                    print(error, file=sys.stderr)
                    results[path] = {"error": str(error).strip().splitlines()[-1][-200:]}
                    if path.startswith("endpoint") and server is None:
                        break  # no server: the other endpoint paths cannot run either
                    continue
                if server and path.startswith("endpoint"):
                    results[path]["dtype"] = "float32 (vLLM)"
            server_mb = server.peak_rss_mb() if server else None
        finally:
            if server:
                server.stop()
    matmul = {name: matmul_gflops(name, args.threads) for name in ("bfloat16", "float32")}
    text = header(args, results, server) + "\n\n" + table(results, matmul, server_mb)
    print(text)
    from sim_core.base.writing import atomic_write

    name = "throughput-partial.md" if args.paths else "throughput.md"
    out = ROOT / "bench" / "results" / (name.replace(".md", "-quick.md") if args.quick else name)
    atomic_write(out, text + "\n")


def _private_cache(folder: str) -> None:
    """Point the result cache at a fresh folder so no earlier run's entries are reused."""
    import sim_core.simulation.cache as cache

    cache.cache_path = lambda: Path(folder) / cache.CACHE_FILE


if __name__ == "__main__":
    main()
