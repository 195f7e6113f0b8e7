"""`opreid-bench demo`: the main job on built-in data (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import click

from opreid_bench.demo import DEMO_RECIPES, low_res_epochs
from opreid_bench.modeling.config import BACKBONE_NAMES

_SCRATCH, _FINETUNE = DEMO_RECIPES["resnet_mini"], DEMO_RECIPES["mobilenetv2"]
_EPOCHS_HELP = (f"Training epochs [default: the demo recipe's: {_SCRATCH['epochs']} from random weights (the first "
                f"{low_res_epochs(_SCRATCH['epochs'], _SCRATCH['low_res_share'])} at half size), "
                f"{_FINETUNE['epochs']} with --pretrained].")


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--ids", type=click.IntRange(2), default=700, show_default=True,
              help="SynthOcc identities (the default protocol needs about 700).")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help=_EPOCHS_HELP)
@click.option("--backbone", type=click.Choice(list(BACKBONE_NAMES)), default=None,
              help="[default: resnet_mini from random weights; mobilenetv2 with --pretrained]")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional local torchvision ImageNet checkpoint of the backbone.")
@click.option("--size", type=(click.IntRange(16), click.IntRange(8)), default=(128, 64), show_default=True,
              metavar="HEIGHT WIDTH", help="Model input height and width (tensor order, as in the configs' "
              "height/width); the pool is rendered at this size.")
@click.option("--protocol", default=None,
              help="Split protocol: a YAML file or a shipped name such as opreid-tiny [default: opreid-demo, "
                   "330 queries].")
@click.option("--clever-hans-ids", type=click.IntRange(2), default=60, show_default=True,
              help="Identities (and as many distractors) of the Clever Hans sets.")
@click.option("--ranks", type=click.IntRange(1), default=None,
              help="Processes that train each method together (DDP); the result depends on it, not on the cores "
                   "[default: the demo recipe's, 2 from random weights, 1 with --pretrained: the methods then train "
                   "side by side].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def demo(out: Path, ids: int, epochs: int | None, backbone: str | None, pretrained: str | None,
         size: tuple[int, int], protocol: str | None, clever_hans_ids: int, ranks: int | None, seed: int) -> None:
    """Synthesise a pool, build an OPReID-style split, train baseline and ours, evaluate, print the leaderboard.

    No download: the data is drawn by SynthOcc. About 4 minutes on 2 CPU cores; each method trains on --ranks
    processes at once (data-parallel), or the two side by side; a rerun reuses finished stages. Without --pretrained
    both methods train the compact `resnet_mini` backbone from random weights; with a local ImageNet checkpoint
    (torchvision's mobilenet_v2-b0353104.pth, which `make demo` passes when ../shared/weights has it) they fine-tune
    MobileNetV2.
    Writes OUT/demo_summary.json (metrics, minutes, the machine they were measured on, config).

    \b
    Examples:
      opreid-bench demo
      opreid-bench demo --out demo_out --seed 1 --pretrained ../shared/weights/mobilenet_v2-b0353104.pth
      opreid-bench demo --out demo_1proc --ranks 1   # each method on one process, the two side by side
    """
    from opreid_bench.demo import DemoConfig, print_summary, run_demo

    cfg = DemoConfig(out=out, ids=ids, epochs=epochs, backbone=backbone, pretrained=pretrained, height=size[0],
                     width=size[1], clever_hans_ids=clever_hans_ids, ranks=ranks, seed=seed)
    if protocol is not None:
        cfg.protocol = protocol
    print_summary(run_demo(cfg))


COMMANDS = [demo]
