"""Several training processes through PyTorch's own engine: torchrun sets RANK/WORLD_SIZE, we join the group.

gloo on CPU, nccl on CUDA. A single process (no WORLD_SIZE, or WORLD_SIZE=1) needs no process group at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group if the environment asks for one (idempotent)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def resolve_device(device: str, info: DistInfo) -> torch.device:
    """``cpu`` or ``cuda`` (-> this process's GPU under torchrun); any other name is an error, not a silent CPU."""
    if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        from opreid_bench.errors import OpreidError

        raise OpreidError(f"--device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            from opreid_bench.errors import OpreidError

            raise OpreidError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
        return torch.device(f"cuda:{info.local_rank}") if device == "cuda" else torch.device(device)
    return torch.device("cpu")


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a scalar over the processes (for logging)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one (all_reduce MAX; a collective: call it on all).

    Used for decisions that end the loop (the time budget): were each rank to decide from its own clock, one could
    leave while the others wait forever in the next epoch's gradient all_reduce.
    """
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
