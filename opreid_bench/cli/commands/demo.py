"""`opreid-bench demo`: the main job on built-in data (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--ids", type=click.IntRange(240), default=260, show_default=True, help="SynthOcc identities.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--backbone", type=click.Choice(["mobilenetv2", "resnet50"]), default="mobilenetv2", show_default=True)
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional local torchvision checkpoint of the backbone.")
@click.option("--size", type=(int, int), default=(128, 64), show_default=True, help="Input height and width.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, ids: int, epochs: int, backbone: str, pretrained: str | None, size: tuple[int, int],
         seed: int) -> None:
    """Synthesise a pool, build an OPReID-style split, train baseline and ours, evaluate, print the leaderboard.

    No download: the data is drawn by SynthOcc. About five minutes on 2 CPU cores; a rerun reuses finished stages.
    The backbone should start from a local ImageNet checkpoint (--pretrained); from random weights the models do not
    learn enough within this budget.

    \b
    Examples:
      opreid-bench demo
      opreid-bench demo --out demo_out --epochs 10 --pretrained ../shared/weights/mobilenet_v2-b0353104.pth
    """
    from opreid_bench.demo import DemoConfig, print_summary, run_demo

    if pretrained is None:
        click.echo("note: no --pretrained checkpoint: the backbone starts from random weights, and within the demo's "
                   "budget the models stay near chance. Pass torchvision's ImageNet mobilenet_v2-b0353104.pth "
                   "(`make demo` does when ../shared/weights has it).", err=True)
    res = run_demo(DemoConfig(out=out, ids=ids, epochs=epochs, backbone=backbone, pretrained=pretrained,
                              height=size[0], width=size[1], seed=seed))
    print_summary(res)


COMMANDS = [demo]
