"""Model cost benchmark: parameters, inference and training throughput of bot / baseline / ours on this CPU.

For each method (``baselines/<method>.yaml`` via ``load_method_config``) and backbone (resnet50, mobilenetv2) at
H×W (default 256×128):

* ``params_inference``: parameters that take part in the eval-mode forward (found by back-propagating the retrieval
  feature and counting the parameters that receive a gradient), so the RP branch and the classifiers, which do no
  work at inference, are not counted; ``params_total`` counts everything that is trained.
* ``infer_img_s``: eval-mode forward under ``torch.inference_mode`` (the retrieval feature, ME applied for ours).
* ``train_img_s``: one full optimiser step (augmentation of the batch, forward, the method's losses through the
  engine's ``ReIDCriterion``, backward, Adam step) on a P×K batch of random images. For ``ours`` CBE doubles the
  batch to 2B images; the rate counts the B *sampled* images, so it is comparable to what a data loader must feed.

Throughputs use the best of ``--iters`` timed iterations after ``--warmup`` untimed ones, timed round-robin across
the methods of one backbone, so that load from other processes on a shared CPU hits all methods alike (medians are
printed too). On a machine shared with other jobs, ``--threads 1`` avoids OpenMP spin-waiting, which can make two
threads many times slower than one. The headline number is a ratio measured in the same run: ours' inference throughput / baseline's (ResNet-50); the paper's claim is that
ours costs the same as the baseline at inference apart from DNL replacing the non-local blocks.

Examples:
  python benchmarks/bench_models.py
  python benchmarks/bench_models.py --json > bench_models.json
  python benchmarks/bench_models.py --backbones mobilenetv2 --height 128 --width 64 --iters 5
  python benchmarks/bench_models.py --threads 1 --methods baseline,ours --backbones resnet50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

METHODS = ("bot", "baseline", "ours")
BACKBONES = ("resnet50", "mobilenetv2")


@dataclass
class Subject:
    """One method × backbone, ready to time: its parameter counts and the two closures that are timed."""

    method: str
    backbone: str
    params_inference: int
    params_total: int
    cbe: bool
    infer: Callable[[], None]
    train_step: Callable[[], None]
    infer_times: list[float] = field(default_factory=list)
    train_times: list[float] = field(default_factory=list)


def count_inference_params(model: torch.nn.Module, height: int, width: int) -> int:
    """Parameters that the eval-mode forward uses: those that get a gradient from the retrieval feature."""
    model.eval()
    model.zero_grad(set_to_none=True)
    feat = model(torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)))
    feat.float().sum().backward()
    used = sum(p.numel() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    return used


def build_subject(
    method: str,
    backbone: str,
    *,
    height: int,
    width: int,
    batch: int,
    infer_batch: int,
    num_instances: int,
    num_classes: int,
    seed: int,
) -> Subject:
    """Model, losses, optimiser and inputs of one method × backbone (random weights: speed does not depend on them)."""
    from opreid_bench.data.cbe import compound_batch_erasing
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.optim import build_optimizer
    from opreid_bench.modeling import build_model

    torch.manual_seed(seed)
    cfg = load_method_config(method, [f"model.backbone={backbone}", "model.pretrained=null"])
    model = build_model(cfg.model, num_classes)
    params_total = sum(p.numel() for p in model.parameters())
    params_inference = count_inference_params(model, height, width)

    gen = torch.Generator().manual_seed(seed)
    x_inf = torch.randn(infer_batch, 3, height, width, generator=gen)
    x_train = torch.randn(batch, 3, height, width, generator=gen)
    pids = torch.arange(batch // num_instances).repeat_interleave(num_instances)
    criterion = ReIDCriterion(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    cbe_gen = torch.Generator().manual_seed(seed)

    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            model(x_inf)

    def train_step() -> None:
        model.train()
        images, targets = x_train, pids
        if cfg.data.cbe:  # CBE, Sec. 3.2: the sampled batch B becomes [X_re; X_bce] (2B)
            images, targets = compound_batch_erasing(
                images,
                targets,
                cbe_gen,
                re_prob=cfg.data.re_prob,
                re_area=cfg.data.re_area,
                re_aspect=cfg.data.re_aspect,
                stripes=cfg.data.cbe_stripes,
            )
        optimizer.zero_grad(set_to_none=True)
        loss, _ = criterion(model(images), targets)
        loss.backward()
        optimizer.step()

    return Subject(method, backbone, int(params_inference), int(params_total), bool(cfg.data.cbe), infer, train_step)


def time_interleaved(subjects: list[Subject], kind: str, warmup: int, iters: int) -> None:
    """Time ``kind`` ('infer' or 'train') of all subjects round-robin, so that load from other processes on this
    shared CPU hits every subject alike; each subject gets ``warmup`` untimed calls first."""
    for subj in subjects:
        for _ in range(warmup):
            getattr(subj, kind if kind == "infer" else "train_step")()
    for _ in range(iters):
        for subj in subjects:
            fn = subj.infer if kind == "infer" else subj.train_step
            t0 = time.perf_counter()
            fn()
            (subj.infer_times if kind == "infer" else subj.train_times).append(time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (table to stderr)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="training batch B = P×K sampled images (default 8)")
    parser.add_argument("--num-instances", type=int, default=4, help="K images per identity in the training batch")
    parser.add_argument("--infer-batch", type=int, default=16, help="inference batch size (default 16)")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per measurement (best of)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    parser.add_argument("--num-classes", type=int, default=751, help="training identities (Market-1501: 751)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of bot,baseline,ours")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated subset")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    methods = [m for m in args.methods.split(",") if m]
    backbones = [b for b in args.backbones.split(",") if b]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    for b in backbones:
        if b not in BACKBONES:
            parser.error(f"unknown backbone {b!r}; choose from {', '.join(BACKBONES)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.batch % args.num_instances:
        parser.error(f"--batch {args.batch} must be a multiple of --num-instances {args.num_instances}")

    err = Console(stderr=True)
    out = err if args.json else Console()
    for console in {id(err): err, id(out): out}.values():
        if not console.is_terminal:  # files and pipes: wide enough for the table instead of rich's 80 columns
            console.width = 120
    results: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in methods}
    for backbone in backbones:
        subjects = []
        with err.status("") as status:
            for method in methods:
                status.update(f"building {method} × {backbone} ...")
                subjects.append(
                    build_subject(
                        method,
                        backbone,
                        height=args.height,
                        width=args.width,
                        batch=args.batch,
                        infer_batch=args.infer_batch,
                        num_instances=args.num_instances,
                        num_classes=args.num_classes,
                        seed=args.seed,
                    )
                )
            t0 = time.perf_counter()
            status.update(f"timing inference of {', '.join(methods)} × {backbone} at {args.height}×{args.width} ...")
            time_interleaved(subjects, "infer", args.warmup, args.iters)
            status.update(f"timing training of {', '.join(methods)} × {backbone} at {args.height}×{args.width} ...")
            time_interleaved(subjects, "train", args.warmup, args.iters)
        err.log(f"{backbone}: timed in {time.perf_counter() - t0:.1f} s")
        for subj in subjects:
            results[subj.method][backbone] = {
                "params_inference": subj.params_inference,
                "params_total": subj.params_total,
                # best of the timed iterations: the least disturbed by other processes on this shared CPU
                "infer_img_s": args.infer_batch / min(subj.infer_times),
                "train_img_s": args.batch / min(subj.train_times),
                "infer_img_s_median": args.infer_batch / sorted(subj.infer_times)[len(subj.infer_times) // 2],
                "train_img_s_median": args.batch / sorted(subj.train_times)[len(subj.train_times) // 2],
                "cbe": subj.cbe,
            }
        del subjects

    ratio = None
    if "resnet50" in backbones and {"ours", "baseline"} <= set(methods):
        ratio = results["ours"]["resnet50"]["infer_img_s"] / results["baseline"]["resnet50"]["infer_img_s"]

    table = Table(
        title=f"Model cost at {args.height}×{args.width}, {torch.get_num_threads()} CPU threads "
        f"(train batch {args.batch}, infer batch {args.infer_batch}, best of {args.iters} interleaved)"
    )
    for col in ("method", "backbone", "params (inference)", "params (train)", "infer img/s", "train img/s",
                "infer / train img/s (median)"):
        table.add_column(col, justify="left" if col in ("method", "backbone") else "right")
    for backbone in backbones:
        for method in methods:
            r = results[method][backbone]
            train_note = " (2B fwd)" if r["cbe"] else ""
            table.add_row(
                method,
                backbone,
                f"{r['params_inference'] / 1e6:.2f} M",
                f"{r['params_total'] / 1e6:.2f} M",
                f"{r['infer_img_s']:.1f}",
                f"{r['train_img_s']:.2f}{train_note}",
                f"{r['infer_img_s_median']:.1f} / {r['train_img_s_median']:.2f}",
            )
    out.print(table)
    out.print("train img/s counts the B sampled images; for ours CBE forwards 2B images per step.")
    if ratio is not None:
        out.print(f"inference throughput ratio ours / baseline (ResNet-50): [bold]{ratio:.3f}[/bold]")

    if args.json:
        payload = {
            "methods": {
                m: {
                    b: {k: results[m][b][k] for k in ("params_inference", "infer_img_s", "train_img_s")}
                    for b in backbones
                }
                for m in methods
            },
            "inference_ratio_ours_vs_baseline": ratio,
            "details": {
                "height": args.height,
                "width": args.width,
                "train_batch": args.batch,
                "infer_batch": args.infer_batch,
                "iters": args.iters,
                "timing": "best of iters, interleaved across methods; medians under 'median'",
                "median": {
                    m: {b: {k: results[m][b][f"{k}_median"] for k in ("infer_img_s", "train_img_s")} for b in backbones}
                    for m in methods
                },
                "threads": torch.get_num_threads(),
                "params_total": {m: {b: results[m][b]["params_total"] for b in backbones} for m in methods},
                "train_img_s_counts": "sampled images B (ours forwards 2B after CBE)",
            },
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
