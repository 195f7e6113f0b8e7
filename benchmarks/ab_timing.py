"""What the A/B speed benchmarks share (``bench_gem.py``, ``bench_stem.py``): two forms of one computation timed in
one process, repeats alternating between the forms so that a busy or warming machine weighs on both alike; the
median counts. Also one training step of the demo's recipe as the whole-step case, and the table / JSON report."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table


def parse_args(doc: str, repeats: int, argv: list[str] | None) -> argparse.Namespace:
    """``--repeats`` (alternating repeats per case) and ``--json``, the options of every A/B benchmark; sets torch to
    one thread (the benchmarks time one core's work)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=repeats, help="alternating repeats per case (median counts)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    torch.set_num_threads(1)
    return ap.parse_args(argv)


def interleaved(run: Callable[[], None], forms: dict[str, Callable[[], None]], repeats: int,
                restore: Callable[[], None]) -> dict[str, float]:
    """Median seconds of ``run`` under each form (``forms[name]()`` installs that form), the forms alternating repeat
    by repeat; ``restore`` reinstalls the default form afterwards, also when ``run`` fails."""
    times: dict[str, list[float]] = {name: [] for name in forms}
    try:
        for _ in range(repeats):
            for name, install in forms.items():
                install()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    finally:
        restore()
    return {name: statistics.median(v) for name, v in times.items()}


def training_step_run(method: str = "ours", size: tuple[int, int] | None = None) -> Callable[[], None]:
    """One training step of ``method`` with the demo's ``resnet_mini`` recipe (random NHWC crops, 200 identities;
    ``ours`` gets the 2 x 16 x 4 images CBE makes of a batch), as a function to time; ``size`` (height, width)
    replaces the recipe's 128 x 64 (64 x 32: the first, half-size epochs)."""
    from opreid_bench.demo import DemoConfig, _method_config, resolve_config
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.optim import build_optimizer
    from opreid_bench.modeling import build_model

    cfg = _method_config(method, resolve_config(DemoConfig(out=Path("unused"), seed=0)))
    torch.manual_seed(0)
    model = build_model(cfg.model, 200).to(memory_format=torch.channels_last).train()
    criterion = ReIDCriterion(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    copies = 2 if cfg.data.cbe else 1
    height, width = size or (cfg.data.height, cfg.data.width)
    images = torch.randn(copies * cfg.data.batch_p * cfg.data.batch_k, 3, height, width)
    images = images.contiguous(memory_format=torch.channels_last)
    pids = torch.arange(cfg.data.batch_p).repeat_interleave(cfg.data.batch_k).repeat(copies)

    def run() -> None:
        outputs = model(images)
        loss, _ = criterion({k: v.float() for k, v in outputs.items()}, pids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    run()
    return run


def report(cases: dict[str, dict[str, float]], before: str, after: str, title: str, as_json: bool) -> None:
    """Print ``{case: {BEFORE_ms, AFTER_ms, speedup}}`` as one JSON object or as a table; speedup = before / after."""
    result: dict[str, Any] = {name: {f"{before}_ms": round(1e3 * t[before], 2), f"{after}_ms": round(1e3 * t[after], 2),
                                     "speedup": round(t[before] / t[after], 2)} for name, t in cases.items()}
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=title)
    for col in ("case", f"{before} ms", f"{after} ms", "speedup"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, r in result.items():
        table.add_row(name, f"{r[f'{before}_ms']:.1f}", f"{r[f'{after}_ms']:.1f}", f"{r['speedup']:.2f}x")
    Console().print(table)
