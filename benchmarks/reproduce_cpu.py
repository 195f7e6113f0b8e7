"""Reproduce the paper's claim at CPU scale: bot vs baseline vs ours (MobileNetV2, ImageNet weights, same budget).

Train on ``../shared/data/cuhk03_labeled/train``; evaluate on CUHK03 ``val`` (camera A query vs camera B gallery)
and on Partial-REID (occluded query vs whole-body gallery, the occluded cross-domain protocol the paper uses for
Occluded-REID); plus the untrained ImageNet backbone as a floor. Every method gets the same epochs and input size;
``--minutes-per-method`` is a safety cap (a capped run is reported as such and resumes on the next call).

Resumable per method: a method whose ``results.json`` entry is complete is skipped; a half-trained one resumes from
its ``checkpoints/last.pt``. Writes ``OUT/results.json``::

    {METHOD: {"cuhk03_val": {"rank1": x, "mAP": y}, "partial_reid": {"rank1": x, "mAP": y}, "minutes": m,
              "run_dir": PATH, ...}}   # METHOD in imagenet, bot, baseline, ours; metrics as fractions

\b
Examples:
  python benchmarks/reproduce_cpu.py --out runs/cpu --epochs 12 --height 128 --width 64
  python benchmarks/reproduce_cpu.py --out /tmp/smoke --epochs 1 --train-ids 32 --max-iters 3 --json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
METHODS = ("bot", "baseline", "ours")
EVALS = (("cuhk03_val", "cuhk03_labeled"), ("partial_reid", "partial_reid"))


def _load_eval_sets(data_root: Path) -> dict[str, Any]:
    """The two evaluation protocols' query/gallery records (with their junk rules)."""
    from opreid_bench.data.protocols import load_protocol

    out = {}
    for key, protocol_name in EVALS:
        protocol = load_protocol(protocol_name)
        splits = protocol.load_data(data_root)
        out[key] = (splits.query, splits.gallery, protocol.junk)
    return out


def _train_splits(data_root: Path, train_ids: int | None) -> Any:
    """CUHK03 train (optionally its first ``train_ids`` identities, relabelled) with val as query/gallery."""
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.data.records import relabel_pids

    splits = load_dataset("cuhk03_labeled", data_root)
    if train_ids is not None:
        splits.train = relabel_pids([r for r in splits.train if r.pid < train_ids])
    return splits


def _overrides(args: dict[str, Any]) -> list[str]:
    from opreid_bench.engine.optim import scaled_schedule

    sched = scaled_schedule(args["epochs"])
    out = ["model.backbone=mobilenetv2", f"model.pretrained={json.dumps(str(args['weights']))}",
           f"data.height={args['height']}", f"data.width={args['width']}", f"optim.epochs={args['epochs']}",
           f"optim.warmup_epochs={sched['warmup_epochs']}", f"optim.milestones={sched['milestones']}",
           f"data.workers={args['workers']}", "eval.period=0", "eval.at_end=false", f"seed={args['seed']}"]
    if args["max_iters"]:
        out.append(f"optim.max_iters_per_epoch={args['max_iters']}")
    return out + list(args["sets"])


def _evaluate(model: Any, cfg: Any, eval_sets: dict[str, Any]) -> dict[str, dict[str, float]]:
    from opreid_bench.engine.extract import evaluate_model

    results = {}
    for key, (query, gallery, junk) in eval_sets.items():
        m = evaluate_model(model, query, gallery, cfg, junk=junk, progress=True)
        results[key] = {"rank1": m["rank1"], "mAP": m["mAP"], "rank5": m.get("rank5"), "mINP": m.get("mINP")}
    return results


def _imagenet_floor(args: dict[str, Any], eval_sets: dict[str, Any]) -> dict[str, Any]:
    """The ImageNet MobileNetV2 with no ReID training (bot's head: average pooling + fresh BNNeck, identity map)."""
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.modeling import build_model

    cfg = load_method_config("bot", _overrides(args))
    t0 = time.perf_counter()
    model = build_model(cfg.model, 0).eval()
    res = _evaluate(model, cfg, eval_sets)
    return {**res, "minutes": round((time.perf_counter() - t0) / 60, 3), "run_dir": None, "epochs": 0,
            "backbone": "mobilenetv2", "height": args["height"], "width": args["width"], "complete": True}


def _run_method(method: str, args: dict[str, Any], splits: Any, eval_sets: dict[str, Any]) -> dict[str, Any]:
    import torch

    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.train import hardware_description, train

    cfg = load_method_config(method, _overrides(args))
    run_dir = Path(args["out"]) / method
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    result = train(cfg, splits, run_dir, resume=resume, junk="none", time_limit_minutes=args["minutes"])
    model, cfg, _ = load_model_from_checkpoint(run_dir / "model.pt", expect_method=method)
    res = _evaluate(model, cfg, eval_sets)
    lines = [json.loads(t) for t in (run_dir / "metrics.jsonl").read_text().splitlines() if t.strip()]
    return {**res, "minutes": round(result.minutes, 3), "run_dir": str(run_dir), "epochs": result.epochs_done,
            "backbone": "mobilenetv2", "height": args["height"], "width": args["width"],
            "train_img_s": round(sum(h["img_per_s"] for h in lines) / max(len(lines), 1), 2),
            "final_train_loss": lines[-1]["loss"] if lines else None,
            "hardware": hardware_description(torch.device("cpu")), "complete": not result.stopped_early}


def _print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="CPU reproduction: MobileNetV2, trained on CUHK03 train")
    table.add_column("method")
    for col in ("CUHK03 R-1", "CUHK03 mAP", "P-REID R-1", "P-REID mAP", "epochs", "minutes", "img/s"):
        table.add_column(col, justify="right")
    for method, r in results.items():
        table.add_row(method, *(f"{100 * r[k][m]:.2f}" for k, _ in EVALS for m in ("rank1", "mAP")),
                      str(r.get("epochs", "")), f"{r['minutes']:.1f}", str(r.get("train_img_s", "-")))
    Console(stderr=True).print(table)


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=SHARED / "data", show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              default=SHARED / "weights" / "mobilenet_v2-b0353104.pth", show_default=True)
@click.option("--methods", default=",".join(METHODS), show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True,
              help="Epochs for every method (the 120-epoch schedule is scaled to it).")
@click.option("--minutes-per-method", "minutes", type=float, default=30.0, show_default=True,
              help="Safety cap per method (stops after the epoch that crosses it; resumes next call).")
@click.option("--height", type=int, default=128, show_default=True)
@click.option("--width", type=int, default=64, show_default=True)
@click.option("--train-ids", type=int, default=None, help="Train on the first N identities only (smoke runs).")
@click.option("--max-iters", type=int, default=None, help="Iterations per epoch cap (smoke runs).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, help="Extra --set override for every method (e.g. loss.bed_alpha=0.5).")
@click.option("--json", "json_out", is_flag=True, help="Print results.json as one JSON object on stdout.")
def main(**args: Any) -> None:
    """Train and evaluate bot, baseline and ours on the same CPU budget; write OUT/results.json."""
    from opreid_bench.atomic import atomic_write_text

    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    eval_sets = _load_eval_sets(args["data_root"])
    splits = None
    for method in ("imagenet", *[m for m in args["methods"].split(",") if m]):
        if results.get(method, {}).get("complete"):
            print(f"{method}: done, skipped ({results_path})", file=sys.stderr)
            continue
        print(f"{method}: running", file=sys.stderr)
        if method == "imagenet":
            results[method] = _imagenet_floor(args, eval_sets)
        else:
            splits = splits or _train_splits(args["data_root"], args["train_ids"])
            results[method] = _run_method(method, args, splits, eval_sets)
        atomic_write_text(results_path, json.dumps(results, indent=2, sort_keys=True) + "\n")
    _print_table(results)
    if args["json_out"]:
        click.echo(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
