"""One prepared check of the full-scale training path on a GPU: speed, memory, data pipeline, parity, DDP.

Everything runs on a SynthOcc pool the script generates (no dataset, no download). On the device given:

1. ``train``: ``ours``, ``bot`` and ``baseline`` train for ``--steps`` steps each (ResNet-50 from random weights,
   256x128, 16x4 identities x images, AMP on CUDA; ``ours`` doubles the batch with CBE), through the library's own
   training step (``engine.train.train_one_epoch``). Per method: images/s the model consumed with the loader feeding
   it, images/s of the model alone on a batch held on the device, peak GPU memory, and the loss of the first and the
   last fifth of the steps (it must fall).
2. ``data``: what the data pipeline delivers on this machine's CPU cores (decode, augment, CBE) with each of
   ``--workers-list`` loader workers, against what the GPU consumes, and which of the two bounds a full epoch.
3. ``estimates``: the hours of each ``paper_table*`` recipe from these figures: epochs x steps per epoch (the
   dataset's known train size / batch) / the bounding steps per second (the method's measured training steps, or
   the loader's best images per second / batch where that is lower), summed over the recipe's runs. A dataset
   without a known train size is left out of the sum and named.
4. ``parity``: features of one checkpoint extracted on the device and on the CPU (max abs difference of the
   L2-normalised features, AMP off), and its ONNX export run by onnxruntime on the CUDA provider when
   onnxruntime-gpu is installed, else on the CPU provider (max abs difference against PyTorch; 1e-3 is the bar).
5. ``ddp``: ``torchrun --nproc_per_node 1`` (nccl on CUDA, gloo on CPU) trains ``ours`` for a few steps through
   ``engine.train.train``; its exit code and time.

``--tiny`` shrinks everything (resnet_mini, 64x32, 4x2 batches, a few steps) so that the whole path runs on a CPU in
about a minute: ``--device cpu --tiny`` is what the test suite runs, and it prints the same keys as a GPU run.

\\b
Examples:
  python benchmarks/gpu_check.py --device cuda --json > gpu_check.json
  python benchmarks/gpu_check.py --device cpu --tiny --json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
METHODS = ("ours", "bot", "baseline")
RECIPES = ("paper_table3", "paper_table4", "paper_table5")


def settings(tiny: bool) -> dict[str, Any]:
    """The sizes of a full check and of the tiny one."""
    if tiny:
        return {"backbone": "resnet_mini", "height": 64, "width": 32, "p": 4, "k": 2, "ids": 12, "images": (6, 8),
                "steps": 5, "workers": (0, 2), "ddp_steps": 2}
    return {"backbone": "resnet50", "height": 256, "width": 128, "p": 16, "k": 4, "ids": 200, "images": (8, 16),
            "steps": 60, "workers": (0, 4, 8, 16), "ddp_steps": 20}


def make_pool(out: Path, s: dict[str, Any], seed: int = 0) -> list[Any]:
    """A SynthOcc pool under ``out``; its crops as training records (pids 0..N-1)."""
    from opreid_bench.data.datasets import load_pool
    from opreid_bench.data.records import relabel_pids
    from opreid_bench.synth.generator import SynthConfig, generate_pool

    cfg = SynthConfig(num_ids=s["ids"], min_images=s["images"][0], max_images=s["images"][1], width=s["width"],
                      height=s["height"], seed=seed)
    generate_pool(out / "pool", cfg, workers=1)
    return relabel_pids(list(load_pool(out / "pool" / "manifest.csv", "manifest")))


def method_config(method: str, s: dict[str, Any], device: torch.device, steps: int, workers: int) -> Any:
    from opreid_bench.engine.config import load_method_config

    return load_method_config(method, [
        f"model.backbone={s['backbone']}", f"data.height={s['height']}", f"data.width={s['width']}",
        f"data.batch_p={s['p']}", f"data.batch_k={s['k']}", f"data.workers={workers}",
        f"optim.amp={'true' if device.type == 'cuda' else 'false'}", f"optim.max_iters_per_epoch={steps}",
        "optim.epochs=1000", "model.pretrained=null"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _NoEpochs:
    """A sampler/dataset stand-in for a loader that is a fixed list of batches."""

    def set_epoch(self, epoch: int) -> None:
        pass


def train_speed(method: str, records: list[Any], s: dict[str, Any], device: torch.device, steps: int,
                workers: int) -> dict[str, Any]:
    """Steps of ``method`` through the library's training step: throughput, memory, loss at start and end."""
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.data import TrainData, build_train_data
    from opreid_bench.engine.distributed import DistInfo
    from opreid_bench.engine.optim import build_optimizer
    from opreid_bench.engine.train import train_one_epoch
    from opreid_bench.modeling import build_model

    chunk = max(1, steps // 5)
    cfg = method_config(method, s, device, chunk, workers)
    torch.manual_seed(0)
    data = build_train_data(records, cfg.data, seed=0, pin_memory=device.type == "cuda")
    model = build_model(cfg.model, data.num_classes).to(device)
    if cfg.optim.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = ReIDCriterion(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.optim.amp and device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dist = DistInfo()
    losses, images, seconds = [], 0, 0.0
    for epoch in range(5):
        _sync(device)
        t0 = time.perf_counter()
        stats = train_one_epoch(model, data, criterion, optimizer, scaler, cfg, epoch, device, dist)
        _sync(device)
        seconds += time.perf_counter() - t0
        losses.append(float(stats["loss"]))
        images += int(stats["images"])
    # the model alone: the same training step on one batch held on the device (no decoding, no transfer)
    held = TrainData(loader=[tuple(t.to(device) if torch.is_tensor(t) else t for t in next(iter(data.loader)))] * chunk,
                     sampler=_NoEpochs(), dataset=_NoEpochs(), num_classes=data.num_classes)
    train_one_epoch(model, held, criterion, optimizer, scaler, cfg, 0, device, dist)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    alone = train_one_epoch(model, held, criterion, optimizer, scaler, cfg, 0, device, dist)
    _sync(device)
    model_only = alone["images"] / (time.perf_counter() - t0)
    use_amp = scaler.is_enabled()
    batch_images = alone["images"] // alone["iterations"]
    return {
        "steps": 5 * chunk, "batch_images": int(batch_images), "images_per_s": round(images / seconds, 2),
        "steps_per_s": round(5 * chunk / seconds, 3), "model_only_images_per_s": round(model_only, 2),
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda"
        else None,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4), "loss_fell": losses[-1] < losses[0],
        "amp": use_amp, "cbe": bool(cfg.data.cbe),
    }


def data_speed(records: list[Any], s: dict[str, Any], workers_list: tuple[int, ...], batches: int) -> dict[str, Any]:
    """Images/s the loader delivers (decode, augment, CBE on the CPU) with each worker count."""
    from opreid_bench.engine.data import apply_cbe, build_train_data, cbe_generator

    out: dict[str, Any] = {}
    for workers in workers_list:
        cfg = method_config("ours", s, torch.device("cpu"), batches, workers)
        data = build_train_data(records, cfg.data, seed=0)
        data.set_epoch(0)
        t0, n = time.perf_counter(), 0
        for it, (x, pids, _, _) in enumerate(data.loader):
            if it >= batches:
                break
            x, pids = apply_cbe(x, pids, cfg.data, cbe_generator(0, 0, it, 0))
            n += x.shape[0] // 2  # images the loader decoded (CBE doubles them on the CPU, not by decoding)
        out[str(workers)] = round(n / (time.perf_counter() - t0), 2)
    return out


def estimates(train: dict[str, dict[str, Any]], best_data_rate: float) -> dict[str, Any]:
    """Hours of each paper_table recipe from the measured step rates (see the module docstring)."""
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.recipes import load_recipe

    out: dict[str, Any] = {}
    for name in RECIPES:
        recipe = load_recipe(name)
        hours, unknown = 0.0, []
        for run in recipe.train:
            counts = getattr(DATASETS.get(run.dataset), "known_counts", {}) or {}
            measured = train.get(run.method) or train["ours"]
            if "train" not in counts:
                unknown.append(run.dataset)
                continue
            cfg = load_method_config(run.method, list(recipe.overrides))
            batch = cfg.data.batch_p * cfg.data.batch_k
            steps = counts["train"][0] / batch * cfg.optim.epochs
            loader_steps = best_data_rate / batch
            hours += steps / min(measured["steps_per_s"], loader_steps) / 3600
        out[name] = {"hours": round(hours, 2), "runs": len(recipe.train), "unknown_size": sorted(set(unknown))}
    return out


def parity(records: list[Any], s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Device vs CPU features of one model, and onnxruntime (CUDA provider if present) vs PyTorch."""
    import onnxruntime as ort

    from opreid_bench.engine.onnx_export import parity as onnx_parity
    from opreid_bench.engine.onnx_export import trace_to_onnx
    from opreid_bench.modeling import build_model

    cfg = method_config("ours", s, device, 1, 0)
    torch.manual_seed(0)
    model = build_model(cfg.model, len({r.pid for r in records})).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 3, s["height"], s["width"])).astype(np.float32))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(x).float(), dim=1)
        on_dev = torch.nn.functional.normalize(model.to(device)(x.to(device)).float(), dim=1).cpu()
    model = model.cpu()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if (
        device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()) else ["CPUExecutionProvider"]
    onnx_diff = onnx_parity(model, trace_to_onnx(model, s["height"], s["width"]), s["height"], s["width"], batch=8,
                            providers=providers)
    return {"device_vs_cpu_max_abs": float((on_dev - ref).abs().max()), "onnx_provider": providers[0],
            "onnx_vs_torch_max_abs": onnx_diff, "onnx_within_1e-3": onnx_diff <= 1e-3}


def ddp(pool: Path, s: dict[str, Any], device: str, steps: int, work: Path) -> dict[str, Any]:
    """``torchrun --nproc_per_node 1`` running this script's worker (engine.train.train, nccl or gloo)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", __file__,
           "--ddp-worker", str(pool), "--device", device, "--out", str(work), "--steps", str(steps)]
    if s["backbone"] == "resnet_mini":
        cmd.append("--tiny")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    return {"exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "backend": "nccl" if device.startswith("cuda") else "gloo",
            "stderr_tail": proc.stderr[-400:] if proc.returncode else ""}


def ddp_worker(pool_dir: Path, device: str, out: Path, steps: int, tiny: bool) -> None:
    """The process torchrun starts: ``ours`` for one short epoch through ``engine.train.train``."""
    from opreid_bench.data.datasets import load_pool
    from opreid_bench.data.records import DatasetSplits, relabel_pids
    from opreid_bench.engine.train import train

    s = settings(tiny)
    records = relabel_pids(list(load_pool(pool_dir / "manifest.csv", "manifest")))
    cfg = method_config("ours", s, torch.device(device.split(":")[0]), steps, 0)
    cfg.optim.epochs = 1
    train(cfg, DatasetSplits(name="synthocc", train=records, query=[], gallery=[]), out / "ddp_run", device=device,
          progress=False)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N or cpu")
@click.option("--tiny", is_flag=True, help="resnet_mini at 64x32, a few steps: the whole path on a CPU in a minute")
@click.option("--steps", type=int, default=None, help="training steps per method (default: 60, tiny 5)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="work folder (default: a temp folder)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
@click.option("--ddp-worker", "ddp_pool", type=click.Path(path_type=Path), default=None, hidden=True)
def main(device: str, tiny: bool, steps: int | None, out: Path | None, as_json: bool, ddp_pool: Path | None) -> None:
    """Train, data pipeline, recipe estimates, parity and DDP on one device (see the module docstring)."""
    if ddp_pool is not None:
        ddp_worker(ddp_pool, device, out or Path(tempfile.mkdtemp()), steps or 2, tiny)
        return
    from rich.console import Console
    from rich.table import Table

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.ClickException(f"--device {device}: no CUDA device here (torch {torch.__version__}); "
                                   "use --device cpu --tiny to check the path on a CPU")
    dev = torch.device(device)
    s = settings(tiny)
    steps = steps or s["steps"]
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        records = make_pool(work, s)
        result: dict[str, Any] = {
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "torch": torch.__version__, "cpu_cores": os.cpu_count(), "tiny": tiny, "pool_images": len(records),
            "train": {m: train_speed(m, records, s, dev, steps, min(8, os.cpu_count() or 1) if not tiny else 0)
                      for m in METHODS},
        }
        rates = data_speed(records, s, s["workers"], max(4, steps))
        gpu_rate = max(v["model_only_images_per_s"] / (2 if v["cbe"] else 1) for v in result["train"].values())
        best = max(rates.values())
        result["data"] = {"images_per_s_by_workers": rates, "best_workers": int(max(rates, key=rates.get)),
                          "gpu_consumes_images_per_s": round(gpu_rate, 2),
                          "bound": "data pipeline" if best < gpu_rate else "model"}
        result["estimates"] = estimates(result["train"], best)
        result["parity"] = parity(records, s, dev)
        result["ddp"] = ddp(work / "pool", s, device, s["ddp_steps"], work)
        result["minutes"] = round((time.perf_counter() - t0) / 60, 2)
    table = Table(title=f"gpu_check on {result['device']} ({'tiny' if tiny else 'full'})")
    for col in ("method", "img/s (loader)", "img/s (model)", "peak GB", "loss first -> last", "AMP", "CBE"):
        table.add_column(col, justify="right")
    for m, v in result["train"].items():
        table.add_row(m, str(v["images_per_s"]), str(v["model_only_images_per_s"]), str(v["peak_gpu_memory_gb"]),
                      f"{v['loss_first']} -> {v['loss_last']}", str(v["amp"]), str(v["cbe"]))
    console.print(table)
    console.print(f"data pipeline img/s by workers {rates}; the model consumes "
                  f"{result['data']['gpu_consumes_images_per_s']} img/s: bound by the {result['data']['bound']}")
    hours = ", ".join(f"{k}: {v['hours']}" for k, v in result["estimates"].items())
    console.print(f"estimated hours: {hours}; parity {result['parity']}; ddp {result['ddp']['backend']} exit "
                  f"{result['ddp']['exit_code']}")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
