"""Several training processes (`accelerate launch`): who writes, how work is shared, agreement.

One process is the main one (rank 0): it alone writes the adapter, its card, the job status
and before.json. Evaluations are shared: each process scores every world-th row and the sums
are added up across processes, so every process ends with the same numbers (and takes the
same early-stopping and cancel decisions; a process that stopped alone would hang the
others). Under FSDP the model is sharded and every forward pass needs every process, so
each process scores all rows in lockstep instead.
Without a launcher (one process) everything here is a no-op.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import torch


def _initialised() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """This process's rank (0 without a launcher); the launcher's RANK before init."""
    if _initialised():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of training processes (1 without a launcher)."""
    if _initialised():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes files and talks to the user."""
    return rank() == 0


def fsdp() -> bool:
    """Whether accelerate launched this run with FSDP (the model is sharded)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("true", "1")


def share(rows: Sequence) -> list:
    """The rows this process scores: every world-th one (all of them under FSDP)."""
    if world_size() == 1 or fsdp():
        return list(rows)
    return list(rows[rank()::world_size()])


def _reduce(values: Sequence[float], op, device, dtype=torch.float64) -> list:
    """all_reduce of a small vector with `op` (the values themselves without a launcher)."""
    if not _initialised():
        return list(values)
    tensor = torch.tensor(list(values), dtype=dtype, device=device)
    torch.distributed.all_reduce(tensor, op=op)
    return tensor.tolist()


def all_sum(values: Sequence[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sums over the processes that shared the work (see share()).

    device: where the collective runs (CUDA tensors for NCCL, CPU for gloo).
    """
    if fsdp():        # every process scored every row: its own sums are the totals
        return [float(v) for v in values]
    return [float(v) for v in _reduce([float(v) for v in values],
                                      torch.distributed.ReduceOp.SUM, device)]


def any_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every process when it is true on any one (e.g. a cancel request)."""
    return _reduce([1.0 if flag else 0.0], torch.distributed.ReduceOp.MAX, device)[0] > 0


def same_everywhere(text: str, device: torch.device | str = "cpu") -> bool:
    """Whether every process holds the same text (compared by a 48-bit hash)."""
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")
    high = _reduce([value], torch.distributed.ReduceOp.MAX, device, torch.int64)[0]
    low = _reduce([value], torch.distributed.ReduceOp.MIN, device, torch.int64)[0]
    return high == low
