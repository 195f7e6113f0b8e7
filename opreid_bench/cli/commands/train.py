"""`opreid-bench train`: train a reference method (bot, baseline, ours, an ablation row or a YAML) on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opreid_bench.cli.options import parse_key_values
from opreid_bench.errors import OpreidError
from opreid_bench.modeling.config import BACKBONE_NAMES


def build_overrides(*, backbone: str | None, pretrained: Path | None, epochs: int | None, seed: int | None,
                    height: int | None, width: int | None, batch_p: int | None, batch_k: int | None,
                    sets: tuple[str, ...]) -> list[str]:
    """Plain flags as ``--set`` overrides (flags first, so an explicit ``--set`` wins)."""
    flags = [("model.backbone", backbone), ("model.pretrained", str(pretrained) if pretrained else None),
             ("optim.epochs", epochs), ("seed", seed), ("data.height", height), ("data.width", width),
             ("data.batch_p", batch_p), ("data.batch_k", batch_k)]
    out = [f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in flags if v is not None]
    return out + list(sets)


@click.command("train")
@click.option("--method", default=None, help="Method name (baselines/NAME.yaml: bot, baseline, ours, ours_no_me, "
              "ours_ablation_1_cbe ... ours_ablation_4_rp).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A method YAML instead of --method (may `inherit:` a baseline).")
@click.option("--dataset", required=True, help="Dataset loader name (see `opreid-bench datasets list`).")
@click.option("--root", required=True, type=click.Path(path_type=Path), help="Folder holding the dataset.")
@click.option("--option", "dataset_option", multiple=True, metavar="KEY=VALUE", help="Dataset loader option.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config value, YAML-parsed (e.g. --set model.dnl=false --set optim.lr=3.5e-4).")
@click.option("--backbone", type=click.Choice(list(BACKBONE_NAMES)), default=None)
@click.option("--pretrained", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Local torchvision ImageNet checkpoint of the backbone (never downloaded).")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--height", type=click.IntRange(min=1), default=None, help="Input height (default from config: 256).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Input width (default from config: 128).")
@click.option("--batch-p", type=click.IntRange(min=2), default=None, help="Identities per batch (P).")
@click.option("--batch-k", type=click.IntRange(min=1), default=None, help="Images per identity (K).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (under torchrun: one GPU per process).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of everything random (default from config: 0).")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR/checkpoints/last.pt exactly where it stopped (without "
              "--method/--config: with the config stored in it).")
@click.option("--time-limit", type=float, default=None, metavar="MINUTES",
              help="Stop after the epoch in which this many minutes have passed (resume later).")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object (the run summary) on stdout.")
def train_cmd(method: str | None, config_file: Path | None, dataset: str, root: Path, dataset_option: tuple[str, ...],
              out: Path, sets: tuple[str, ...], backbone: str | None, pretrained: Path | None, epochs: int | None,
              height: int | None, width: int | None, batch_p: int | None, batch_k: int | None, device: str,
              seed: int | None, resume: bool, time_limit: float | None, json_out: bool) -> None:
    """Train a method; writes RUN_DIR/{metrics.jsonl, checkpoints/last.pt, model.pt, run.json}.

    The checkpoint holds its config, so `evaluate --weights RUN_DIR/model.pt` needs no config. Several processes:
    launch through torchrun (DDP; gloo on CPU, nccl on CUDA).

    \b
    Examples:
      opreid-bench train --method ours --dataset market1501 --root ~/data --out runs/ours \\
          --pretrained ~/weights/resnet50-0676ba61.pth --device cuda
      opreid-bench train --method bot --dataset cuhk03_labeled --root ../shared/data --out runs/bot \\
          --backbone mobilenetv2 --pretrained ../shared/weights/mobilenet_v2-b0353104.pth \\
          --height 128 --width 64 --epochs 10 --set optim.warmup_epochs=1 --set optim.milestones=[6,9]
      opreid-bench train --dataset cuhk03_labeled --root ../shared/data --out runs/ours --resume
      torchrun --nproc_per_node 2 -m opreid_bench train --method baseline --dataset market1501 --root ~/data --out r
    """
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.extract import dataset_junk
    from opreid_bench.engine.train import last_checkpoint, resume_config, train

    if method is not None and config_file is not None:
        raise OpreidError("train takes one of --method NAME or --config FILE, not both")
    overrides = build_overrides(backbone=backbone, pretrained=pretrained, epochs=epochs, seed=seed, height=height,
                                width=width, batch_p=batch_p, batch_k=batch_k, sets=sets)
    if method is None and config_file is None:
        if not resume:
            raise OpreidError("train needs --method NAME or --config FILE (only --resume may leave both out)")
        cfg = resume_config(out, overrides)
    else:
        cfg = load_method_config(config_file if config_file is not None else method, overrides)
    if cfg.model.pretrained and not Path(cfg.model.pretrained).is_file():
        from opreid_bench.errors import CheckpointError

        raise CheckpointError(f"{cfg.model.pretrained}: pretrained backbone file not found (model.pretrained)")
    splits = load_dataset(dataset, root, **parse_key_values(dataset_option))
    try:
        result = train(cfg, splits, out, device=device, resume=resume, junk=dataset_junk(dataset),
                       time_limit_minutes=time_limit)
    except KeyboardInterrupt:
        if last_checkpoint(out).is_file():
            click.echo(f"stopped: `opreid-bench train --resume --out {out} --dataset {dataset} --root {root}` "
                       "continues from the last finished epoch", err=True)
        else:
            click.echo("stopped before the first epoch finished: there is nothing to resume; run the same command "
                       "again to start over", err=True)
        raise
    if result.stopped_early:
        click.echo(f"stopped by --time-limit after {result.epochs_done} epoch(s): `opreid-bench train --resume --out "
                   f"{out} ...` continues", err=True)
    summary = {"run_dir": str(result.run_dir), "method": cfg.method, "dataset": dataset,
               "epochs": result.epochs_done, "minutes": round(result.minutes, 3),
               "stopped_early": result.stopped_early, "metrics": result.final_metrics}
    if json_out:
        click.echo(json.dumps(summary))
    else:
        _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['method']} on {summary['dataset']} ({summary['epochs']} epochs, "
                        f"{summary['minutes']:.1f} min)")
    table.add_column("run directory")
    for col in ("R-1 %", "R-5 %", "mAP %", "mINP %"):
        table.add_column(col, justify="right")
    m = summary["metrics"]
    cells = [f"{100 * m[k]:.2f}" if k in m else "-" for k in ("rank1", "rank5", "mAP", "mINP")]
    table.add_row(summary["run_dir"], *cells)
    Console().print(table)


COMMANDS = [train_cmd]
