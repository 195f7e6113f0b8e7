"""What machine a run ran on, so that a time measured on one machine can be read on another.

A "minutes on 2 CPU cores" figure depends on the cores: the same demo took 4.4 minutes on one 2-core machine and 2.5 on
another of similar matrix-multiply speed. Runs therefore record the CPU model and a short fp32 matmul measurement next
to their times.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (from ``cpuinfo``, Linux's ``/proc/cpuinfo``), or what ``platform`` knows elsewhere."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware_description(device: torch.device, world_size: int = 1) -> str:
    """A one-line description of where a run ran (for run.json and the leaderboard): GPU name, or CPU model and
    threads, prefixed with the process count under DDP."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{cpu_model()}, {torch.get_num_threads()} threads"
    return f"{world_size} x {what}" if world_size > 1 else what


def matmul_gflops(threads: int, size: int = 1536, repeats: int = 6) -> float:
    """fp32 matrix-multiply throughput in GFLOP/s on ``threads`` threads (best of ``repeats``; a quarter of a second
    on 2 cores): the machine's speed in the unit the brief states its reference machine in."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        a @ b  # warm-up: thread pool and caches
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size**3 / max(best, 1e-9) / 1e9


def machine_summary(cores: int) -> dict[str, Any]:
    """``{"cpu", "cores", "fp32_matmul_gflops", "torch"}`` for a summary file: the machine behind its times."""
    return {"cpu": cpu_model(), "cores": int(cores), "fp32_matmul_gflops": round(matmul_gflops(cores), 1),
            "torch": torch.__version__}
