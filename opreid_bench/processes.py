"""Running one function over many jobs in worker processes, results in job order.

Both the split writer (masking every crop) and the face review sheet (ranking every masked crop) run mediapipe graphs
per job. Workers are started with ``spawn``, never ``fork``: a forked child of a process whose mediapipe threads have
started can wait forever on a lock one of them held.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

MIN_JOBS_FOR_WORKERS = 64  # fewer jobs than this run in this process: starting workers would cost more


def map_in_order(fn: Callable[[Any], T], jobs: Sequence[Any], *, workers: int = 1, min_chunk: int = 8,
                 on_done: Callable[[int], None] | None = None) -> list[T]:
    """``[fn(job) for job in jobs]``, spread over ``workers`` spawned processes when there are enough jobs
    (``fn`` must be importable, i.e. defined at a module's top level); ``on_done(n)`` after every ``n`` results."""
    if workers <= 1 or len(jobs) < MIN_JOBS_FOR_WORKERS:
        results = []
        for job in jobs:
            results.append(fn(job))
            if on_done:
                on_done(1)
        return results
    chunk = max(min_chunk, len(jobs) // (workers * 8))
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        for i, res in enumerate(ex.map(fn, jobs, chunksize=chunk)):
            results.append(res)
            if on_done and (i + 1) % chunk == 0:
                on_done(chunk)
    if on_done and len(jobs) % chunk:
        on_done(len(jobs) % chunk)
    return results
