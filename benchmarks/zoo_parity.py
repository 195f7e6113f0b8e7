"""Do the zoo architectures compute what the toolkit's own code computes? Checked offline against its source.

``--torchreid-src`` is a folder holding torchreid's source (for example the unpacked PyPI sdist
``torchreid-0.2.5.tar.gz``: ``pip download --no-deps --no-binary :all: torchreid``). Its model files
(``torchreid/reid/models/osnet.py``, ``osnet_ain.py``, ``resnet.py``) are plain PyTorch modules; they are loaded by path, nothing is
installed or imported from the package. For each architecture: torchreid's model with random weights (and random
BatchNorm statistics), its state dict saved the way torchreid saves checkpoints (``{"state_dict": ...}``, with
``module.`` prefixes and a 751-class classifier), loaded through ``opreid_bench.modeling.zoo.load_zoo_model``, and
both models' eval-mode features compared on the same random batch (max abs difference).

\\b
Example:
  python benchmarks/zoo_parity.py --torchreid-src /tmp/torchreid-0.2.5 --json
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import click
import torch

ARCHS = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0", "osnet_ain_x1_0",
         "osnet_ain_x0_75", "osnet_ain_x0_5", "osnet_ain_x0_25", "resnet50", "resnet50_fc512")


def _module(src: Path, name: str):  # noqa: ANN202 - a module object
    path = src / "torchreid" / "reid" / "models" / f"{name}.py"
    if not path.is_file():
        path = src / "torchreid" / "models" / f"{name}.py"
    if not path.is_file():
        raise click.ClickException(f"{src}: no torchreid/reid/models/{name}.py (give the unpacked torchreid source)")
    spec = importlib.util.spec_from_file_location(f"torchreid_src_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Random weights and BatchNorm/InstanceNorm statistics, so that every parameter and buffer matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith(".weight") and t.ndim == 1
                                                                        else 0.0))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--torchreid-src", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True)
def main(torchreid_src: Path, as_json: bool) -> None:
    """Max abs feature difference, ours vs torchreid's own model code, per architecture."""
    from opreid_bench.modeling.zoo import load_zoo_model

    mods = {n: _module(torchreid_src, n) for n in ("osnet", "osnet_ain", "resnet")}
    out: dict[str, float] = {}
    x = torch.randn(4, 3, 256, 128, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            family = "osnet_ain" if arch.startswith("osnet_ain") else "osnet" if arch.startswith("osnet") else "resnet"
            ref = getattr(mods[family], arch)(
                num_classes=751, pretrained=False, loss="softmax")
            randomise_(ref, seed=len(arch))
            ref.eval()
            ckpt = Path(tmp) / f"{arch}.pth.tar"
            torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 60}, ckpt)
            ours, _ = load_zoo_model(f"torchreid:{arch}", ckpt)
            with torch.no_grad():
                out[arch] = float((ours(x) - ref(x)).abs().max())
            click.echo(f"{arch}: max abs feature difference {out[arch]:.3g}", err=True)
    if as_json:
        print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
