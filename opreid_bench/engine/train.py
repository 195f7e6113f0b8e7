"""The training loop: one function per job (an epoch, the run), not a god-class.

``train(cfg, splits, out_dir)`` writes into ``out_dir``::

    metrics.jsonl           one JSON line per epoch (lr, losses, accuracy, img/s, input size; evaluation metrics when run)
    checkpoints/last.pt     after every epoch, atomically: weights + optimizer/scheduler/scaler/RNG states
    model.pt                the final weights with their config (what ``evaluate``/``extract`` read)
    run.json                method, dataset, backbone, input size, epochs, hardware, minutes, final metrics

``resume=True`` continues from ``checkpoints/last.pt`` exactly: on CPU, N epochs straight and N/2 + resume + N/2
give bit-identical parameters (every random draw is a function of (seed, epoch, position), see ``engine.data``).
Under torchrun each process trains on its share of the batches (DDP; gloo on CPU, nccl on CUDA); rank 0 writes.
The time budget is decided by all ranks together (any rank out of time stops every rank after the same epoch);
``tests/test_ddp_equivalence.py`` checks that 2 ranks equal one process on the global batch.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from opreid_bench.atomic import atomic_write_text
from opreid_bench.data.records import DatasetSplits
from opreid_bench.engine.checkpoint import (
    UnreadableCheckpointError,
    checkpoint_config,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from opreid_bench.engine.config import SAME_RUN_KEYS, MethodConfig, config_differences
from opreid_bench.engine.criterion import ReIDCriterion, accuracy
from opreid_bench.engine.data import TrainData, apply_cbe, build_train_data, cbe_generator, resize_for_epoch
from opreid_bench.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    any_rank,
    barrier,
    cleanup,
    init_distributed,
    resolve_device,
)
from opreid_bench.engine.hardware import hardware_description
from opreid_bench.engine.optim import build_optimizer, build_scheduler
from opreid_bench.engine.run_results import read_run_json
from opreid_bench.errors import CheckpointError, OpreidError


@dataclass
class TrainResult:
    """What a finished (or time-limited) run produced."""

    run_dir: Path
    epochs_done: int
    minutes: float
    final_metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


def train_one_epoch(
    model: torch.nn.Module,
    data: TrainData,
    criterion: ReIDCriterion,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: MethodConfig,
    epoch: int,
    device: torch.device,
    dist_info: DistInfo,
    progress: Any = None,
) -> dict[str, float]:
    """One pass over the P×K batches of ``epoch`` (CBE applied per batch when enabled); returns mean statistics."""
    model.train()
    data.set_epoch(epoch)
    use_amp = scaler.is_enabled()
    totals: dict[str, float] = {}
    n_iters = len(data.loader)
    if cfg.optim.max_iters_per_epoch is not None:
        n_iters = min(n_iters, cfg.optim.max_iters_per_epoch)
    task = progress.add_task(f"epoch {epoch + 1}/{cfg.optim.epochs}", total=n_iters) if progress else None
    images_seen = 0
    input_hw: list[int] = []
    start = time.perf_counter()
    it = 0
    for it, (images, pids, _camids, _idx) in enumerate(data.loader):
        if it >= n_iters:
            break
        images = images.to(device, non_blocking=True)
        pids = pids.to(device, non_blocking=True)
        images = resize_for_epoch(images, cfg.data, epoch)
        input_hw = list(images.shape[-2:])
        if cfg.data.cbe:
            images, pids = apply_cbe(images, pids, cfg.data, cbe_generator(cfg.seed, epoch, it, dist_info.rank))
        if cfg.optim.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, enabled=use_amp):
            outputs = model(images)
        loss, parts = criterion({k: v.float() for k, v in outputs.items()}, pids)
        if not math.isfinite(parts["loss"]):
            raise OpreidError(f"epoch {epoch + 1}, iteration {it + 1}: the loss is {parts['loss']} (diverged); "
                              "lower optim.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        parts["acc"] = accuracy(outputs, pids)
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v
        images_seen += images.shape[0]
        if progress is not None:
            progress.update(task, advance=1, description=(
                f"epoch {epoch + 1}/{cfg.optim.epochs} loss {parts['loss']:.3f} acc {parts['acc']:.2f}"))
    seconds = time.perf_counter() - start
    if progress is not None:
        progress.remove_task(task)
    iters = max(1, min(it + 1, n_iters))
    stats = {k: all_reduce_mean(v / iters, dist_info, device) for k, v in sorted(totals.items())}
    stats.update(iterations=iters, images=images_seen * dist_info.world_size, input_hw=input_hw,
                 seconds=round(seconds, 3), img_per_s=round(images_seen * dist_info.world_size / max(seconds, 1e-9), 2))
    return stats



def _make_progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from opreid_bench.progress_bars import transient_progress

    return transient_progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn())


def has_unused_parameters(model: torch.nn.Module, criterion: ReIDCriterion, cfg: MethodConfig,
                          device: torch.device) -> bool:
    """Whether a training step leaves a trainable parameter without a gradient (a classifier whose loss is off).

    DDP must then search the graph for such parameters at every step (``find_unused_parameters``), which costs time
    and, where nothing is unused, prints a warning. One step on a copy of the model, with its own random images, tells:
    the model's weights, its BatchNorm statistics and the global random state stay as they were."""
    import copy

    probe = copy.deepcopy(model).train()
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(4, 3, cfg.data.height, cfg.data.width, generator=gen, device=device)
    loss, _ = criterion({k: v.float() for k, v in probe(images).items()}, torch.tensor([0, 0, 1, 1], device=device))
    loss.backward()
    return any(p.requires_grad and p.grad is None for p in probe.parameters())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(
    cfg: MethodConfig,
    splits: DatasetSplits,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    junk: str | None = None,
    time_limit_minutes: float | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``cfg`` on ``splits.train`` into ``out_dir``; evaluate on ``splits.query``/``gallery`` when they exist.

    ``junk``: the evaluation protocol's junk rule (``market`` or ``none``); ``None`` picks ``none`` when query and
    gallery share no camera id and ``market`` otherwise. ``time_limit_minutes`` stops after the epoch in which the
    budget runs out (the run can be resumed later).
    """
    from opreid_bench.modeling import build_model

    out = Path(out_dir)
    ckpt_path = last_checkpoint(out)
    if resume and not ckpt_path.is_file():  # checked on every rank, before any work: never a silent fresh start
        raise CheckpointError(f"{ckpt_path}: --resume, but there is no checkpoint to continue; run without --resume "
                              "to start a new run")
    dist_info = init_distributed(device)
    dev = resolve_device(device, dist_info)
    lock = None
    try:
        if dist_info.is_main:
            lock = claim_run_dir(out, cfg, splits)  # ours to write, no input inside, one run at a time
            if ckpt_path.exists() and not resume:
                raise CheckpointError(f"{ckpt_path}: this run directory already holds a checkpoint; pass --resume "
                                      "to continue it or choose another --out")
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        data = build_train_data(splits.train, cfg.data, seed=cfg.seed, rank=dist_info.rank,
                                world_size=dist_info.world_size, source=f"{splits.name} train split",
                                pin_memory=dev.type == "cuda")
        model = build_model(cfg.model, data.num_classes).to(dev)
        if cfg.optim.channels_last:
            model = model.to(memory_format=torch.channels_last)
        criterion = ReIDCriterion(cfg.loss)
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.optim)
        scaler = torch.amp.GradScaler("cuda", enabled=cfg.optim.amp and dev.type == "cuda")
        start_epoch, history = 0, []
        if resume and ckpt_path.exists():
            try:
                start_epoch = _restore(ckpt_path, cfg, data.num_classes, model, optimizer, scheduler, scaler,
                                       splits.name)
            except UnreadableCheckpointError as exc:  # a crash mid-write: redo the run rather than block it
                if dist_info.is_main:
                    _log(f"warning: {exc}; cannot resume from it, so the run starts again from epoch 1")
            history = _read_history(out / "metrics.jsonl", start_epoch)
            if dist_info.is_main and start_epoch:
                _log(f"resuming {ckpt_path} after epoch {start_epoch}")
        if dist_info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            if cfg.optim.channels_last:
                # RP's W^v (a C x C x 1 x 1 weight used as a matrix, Eq. 2) gets a gradient in NCHW strides while its
                # NHWC weight has NHWC ones; DDP then copies that gradient into its bucket instead of using it in
                # place (1 MB for C = 512, nothing next to a step) and warns every run. Same values either way.
                warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

            model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                            find_unused_parameters=has_unused_parameters(model, criterion, cfg, dev))
        if dist_info.is_main:
            _write_history(out / "metrics.jsonl", history)
        t0 = time.perf_counter()
        minutes_before = history[-1].get("minutes_total", 0.0) if history else 0.0
        final_metrics: dict[str, Any] = {}
        stopped_early = False
        epoch = start_epoch
        bar = _make_progress(progress and dist_info.is_main)
        if bar is not None:
            bar.start()
        try:
            for epoch in range(start_epoch, cfg.optim.epochs):
                lr = optimizer.param_groups[0]["lr"]
                stats = train_one_epoch(model, data, criterion, optimizer, scaler, cfg, epoch, dev, dist_info, bar)
                scheduler.step()
                elapsed = (time.perf_counter() - t0) / 60.0
                line: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, **stats,
                                        "minutes_total": round(minutes_before + elapsed, 4)}
                last = epoch + 1 == cfg.optim.epochs
                # decided together: a rank whose own clock alone said stop would leave the others waiting forever
                # in the next epoch's gradient all_reduce
                out_of_time = any_rank(time_limit_minutes is not None and elapsed >= time_limit_minutes,
                                       dist_info, dev)
                periodic = cfg.eval.period > 0 and (epoch + 1) % cfg.eval.period == 0
                if (periodic or ((last or out_of_time) and cfg.eval.at_end)) and splits.query and splits.gallery:
                    if dist_info.is_main:
                        metrics = evaluate_during_training(unwrap(model), splits, cfg, junk, dev)
                        line["eval"] = metrics
                        final_metrics = metrics
                    barrier(dist_info)
                if dist_info.is_main:
                    history.append(line)
                    _append_jsonl(out / "metrics.jsonl", line)
                    save_checkpoint(ckpt_path, model=model, cfg=cfg, num_classes=data.num_classes,
                                    dataset=splits.name, epoch=epoch + 1, optimizer=optimizer, scheduler=scheduler,
                                    scaler=scaler, metrics=line)
                    _log(_epoch_summary(line))
                barrier(dist_info)
                if out_of_time and not last:
                    stopped_early = True
                    break
        finally:
            if bar is not None:
                bar.stop()
        epochs_done = epoch + 1 if cfg.optim.epochs > start_epoch else start_epoch
        minutes = minutes_before + (time.perf_counter() - t0) / 60.0
        if not final_metrics:
            final_metrics = next((h["eval"] for h in reversed(history) if "eval" in h), {})
        if dist_info.is_main:
            save_checkpoint(out / "model.pt", model=model, cfg=cfg, num_classes=data.num_classes,
                            dataset=splits.name, epoch=epochs_done, metrics=history[-1] if history else {},
                            with_rng=False)
            # a --resume of a finished run trains nothing: its run.json (the results `evaluate --run-dir` and
            # `reproduce` recorded there, the hardware and minutes of the training) stays as it is
            recorded = read_run_json(out / "run.json") if start_epoch >= cfg.optim.epochs else None
            if not (recorded and recorded.get("dataset") == splits.name):
                write_run_json(out / "run.json", cfg, splits.name, epochs_done, minutes, final_metrics,
                               hardware_description(dev, dist_info.world_size), stopped_early)
            if not stopped_early:  # every epoch trained: the marker says the run directory is whole
                from opreid_bench.outputs import fingerprint, write_marker

                write_marker(out, command="train", kind="run", fingerprint=fingerprint(cfg.to_dict()), complete=True,
                             options={"method": cfg.method, "dataset": splits.name})
        barrier(dist_info)
        return TrainResult(run_dir=out, epochs_done=epochs_done, minutes=minutes, final_metrics=final_metrics,
                           stopped_early=stopped_early)
    finally:
        if lock is not None:
            lock.release()
        cleanup(dist_info)


def last_checkpoint(out_dir: str | Path) -> Path:
    """Where a run folder keeps the checkpoint of its last finished epoch (what ``--resume`` continues from)."""
    return Path(out_dir) / "checkpoints" / "last.pt"


def resume_config(out_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> MethodConfig:
    """The config of the run in ``out_dir``, read from its ``checkpoints/last.pt``, with ``--set`` style overrides
    applied: ``train --resume`` without ``--method``/``--config`` continues the run as it was started, so a user
    need not repeat every flag (an override that changes the run is refused when the checkpoint is restored)."""
    from opreid_bench.engine.config import apply_overrides, config_from_dict

    path = last_checkpoint(out_dir)
    if not path.is_file():
        raise CheckpointError(f"{path}: --resume without --method or --config takes the run's config from this "
                              "checkpoint, and there is none; name the method to start a new run")
    stored = checkpoint_config(load_checkpoint(path), path)
    if not overrides:
        return stored
    raw = apply_overrides(stored.to_dict(), overrides)
    return config_from_dict(raw, f"{path} (stored config, with --set {' '.join(overrides)})")


def _restore(path: Path, cfg: MethodConfig, num_classes: int, model: torch.nn.Module,
             optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, dataset: str) -> int:
    """Load a training checkpoint into fresh objects; returns the number of epochs it completed. A checkpoint of a
    run on another dataset is refused (its results would be filed under this one's name)."""
    state = load_checkpoint(path)
    stored = checkpoint_config(state, path)
    if state.get("dataset") not in (None, dataset):
        raise CheckpointError(f"{path}: --resume of a run on '{state['dataset']}' with --dataset {dataset}; use the "
                              "run's own dataset or train into another --out")
    if stored.method != cfg.method:  # say the cause, not the first setting the two methods differ in
        raise CheckpointError(f"{path}: --resume of a '{stored.method}' run with method '{cfg.method}'; leave "
                              "--method out (the run's own config is used) or train into another --out")
    diffs = config_differences(stored.to_dict(), cfg.to_dict(), ignore=SAME_RUN_KEYS,
                               labels=("in the checkpoint", "now"))
    if diffs:
        raise CheckpointError(f"{path}: --resume with a different config ({diffs[0]}); use the same method and "
                              "--set values, or another --out")
    if int(state["num_classes"]) != num_classes:
        raise CheckpointError(f"{path}: checkpoint has {state['num_classes']} classes, the training set "
                              f"{num_classes} (another dataset?)")
    if "optimizer" not in state:
        raise CheckpointError(f"{path}: holds no optimizer state (a final model.pt?); cannot resume from it")
    load_model_state(model, state["model"], path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "scaler" in state and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    if "rng" in state:
        set_rng_state(state["rng"])
    return int(state["epoch"])


def evaluate_during_training(model: torch.nn.Module, splits: DatasetSplits, cfg: MethodConfig, junk: str | None,
                             device: torch.device) -> dict[str, Any]:
    """Extract query/gallery features (eval mode) and evaluate with the protocol's junk rule."""
    from opreid_bench.engine.extract import evaluate_model

    was_training = model.training
    try:
        return evaluate_model(model, splits.query, splits.gallery, cfg, junk=junk, device=device, progress=False)
    finally:
        model.train(was_training)


def _epoch_summary(line: dict[str, Any]) -> str:
    """One epoch's log line; accuracy, R-1 and mAP in percent, as the final table and the leaderboard print them
    (``metrics.jsonl`` keeps fractions)."""
    nan = float("nan")
    text = (f"epoch {line['epoch']}: loss {line.get('loss', nan):.4f} acc {100 * line.get('acc', nan):.1f}%"
            f" lr {line['lr']:.2e} {line['img_per_s']:.1f} img/s")
    if line.get("input_hw"):
        text += f" at {line['input_hw'][0]}x{line['input_hw'][1]}"
    if "eval" in line:
        text += f" | R-1 {100 * line['eval'].get('rank1', nan):.2f}% mAP {100 * line['eval'].get('mAP', nan):.2f}%"
    return text


def _append_jsonl(path: Path, line: dict[str, Any]) -> None:
    """Append one line atomically (rewrite the small file through a temporary, so a kill never leaves half a line)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, text + json.dumps(line, sort_keys=True) + "\n")


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))


def _read_history(path: Path, epochs: int) -> list[dict[str, Any]]:
    """The metrics lines of the first ``epochs`` epochs (a resumed run drops lines written after its checkpoint)."""
    if not path.exists():
        return []
    lines = [json.loads(t) for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    return [h for h in lines if int(h.get("epoch", 0)) <= epochs]


def write_run_json(path: Path, cfg: MethodConfig, dataset: str, epochs: int, minutes: float,
                   metrics: dict[str, Any], hardware: str, stopped_early: bool = False) -> None:
    """``run.json``: what the leaderboard reads (metrics under ``results[dataset]``, as fractions in [0, 1]; the file
    says so in ``metrics_unit``, so a reader never has to guess the unit from a value's size)."""
    info = {
        "method": cfg.method,
        "dataset": dataset,
        "train_dataset": dataset,
        "backbone": cfg.model.backbone,
        "pretrained": cfg.model.pretrained,
        "height": cfg.data.height,
        "width": cfg.data.width,
        "epochs": epochs,
        "epochs_planned": cfg.optim.epochs,
        "stopped_early": stopped_early,
        "hardware": hardware,
        "minutes": round(minutes, 3),
        "final_metrics": metrics,
        "metrics_unit": "fraction",  # of final_metrics and results (leaderboard.rows reads it)
        "results": {dataset: metrics} if metrics else {},
        "config": cfg.to_dict(),
    }
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n")


def claim_run_dir(out: Path, cfg: MethodConfig, splits: DatasetSplits) -> Any:
    """Make ``out`` this run's directory: refused when it holds or is inside the dataset's images, or is a non-empty
    folder that ``train`` did not write; locked (a second run gets one line naming the holder); killed runs'
    temporary files deleted. Returns the held lock (release it when the run ends)."""
    from opreid_bench.atomic import clean_stale_tmp
    from opreid_bench.outputs import check_separate, claim, fingerprint, lock_inside, record_folders, write_marker

    images = [r.path for part in (splits.train, splits.query, splits.gallery) for r in part]
    check_separate(out, record_folders(images, f"{splits.name} image folder"))
    claim(out, "train", "run")
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_inside(out, "train").acquire()
    try:
        claim(out, "train", "run")
        write_marker(out, command="train", kind="run", fingerprint=fingerprint(cfg.to_dict()), complete=False,
                     options={"method": cfg.method, "dataset": splits.name})
        clean_stale_tmp(out, recursive=True)
    except BaseException:
        lock.release()
        raise
    return lock
