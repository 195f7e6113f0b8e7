"""Does evaluating a model cost little more than running it? ``--zoo`` and ``--onnx`` feature extraction against a
plain loop over the same crops and the same model, timed in one run.

The model is torchreid's OSNet x0.25 (random weights: speed does not depend on them), in PyTorch through
``engine.zoo_extract.zoo_feature_sets`` and as ONNX (``export --zoo``) through ``engine.onnx_runner.onnx_feature_sets``.
The reference is what a user would write: PIL decode and bilinear resize to 256x128, normalise, run the model on one
image at a time (PyTorch eager; onnxruntime with its default threads). The ratio printed is the library's images per
second over the loop's: the target is at least 0.8. ``cli_*`` times the whole commands as a user runs them, each in
a fresh process (start-up and imports included): ``opreid-bench evaluate --onnx`` against the same plain loop as a
script (which imports numpy, Pillow and onnxruntime, not torch). ``--repeat N`` runs every measurement N times,
library and loop in turn, and keeps each one's best rate: on a shared machine other work only slows a run down.

\\b
Example:
  python benchmarks/bench_zoo_speed.py --json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "partial_reid"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def plain_inputs(paths: list[str]) -> list[np.ndarray]:
    """What the plain loop does per image before the model: decode, resize 128x256 bilinear, normalise, NCHW."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB").resize((128, 256), Image.BILINEAR), np.float32) / 255.0
        out.append(((arr - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    return out


def loop_torch(model: Any, paths: list[str]) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        for x in plain_inputs(paths):
            model(torch.from_numpy(x))
    return len(paths) / (time.perf_counter() - t0)


def loop_onnx(onnx_path: Path, paths: list[str]) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t0 = time.perf_counter()
    for x in plain_inputs(paths):
        sess.run(None, {name: x})
    return len(paths) / (time.perf_counter() - t0)


def cli_rates(onnx_path: Path, root: Path, paths: list[str], tmp: Path) -> tuple[float, float]:
    """Images/s of ``opreid-bench evaluate --onnx`` and of a plain-loop script, each a fresh process."""
    import subprocess

    listing = tmp / "paths.json"
    listing.write_text(json.dumps(paths))
    script = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_zoo_speed as b; "
              f"from pathlib import Path; b.loop_onnx(Path({str(onnx_path)!r}), json.loads(Path({str(listing)!r})"
              ".read_text()))")
    rates = []
    for cmd in ([sys.executable, "-m", "opreid_bench", "evaluate", "--onnx", str(onnx_path), "--dataset",
                 "partial_reid", "--root", str(root), "--json"], [sys.executable, "-c", script]):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        rates.append(len(paths) / (time.perf_counter() - t0))
    return rates[0], rates[1]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
              help="Partial-REID release (its 600 query and gallery crops are extracted).")
@click.option("--arch", default="torchreid:osnet_x0_25", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="runs of every measurement; each rate is the best of its runs")
def main(root: Path, arch: str, as_json: bool, repeat: int) -> None:
    """Images/s of --zoo and --onnx extraction against a plain one-image loop, same model, same crops."""
    import torch

    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.onnx_export import export_zoo
    from opreid_bench.engine.onnx_runner import onnx_feature_sets
    from opreid_bench.engine.zoo_extract import zoo_feature_sets
    from opreid_bench.modeling.zoo import ZOO, load_zoo_model

    if not root.is_dir():
        raise click.ClickException(f"{root}: Partial-REID folder not found")
    splits = load_dataset("partial_reid", root)
    paths = [r.path for r in [*splits.query, *splits.gallery]]
    result: dict[str, object] = {"arch": arch, "images": len(paths), "torch_threads": torch.get_num_threads(),
                                 "repeat": repeat}
    best = dict.fromkeys(("zoo", "torch", "onnx", "ort", "cli", "cli_loop"), 0.0)

    def keep(name: str, rate: float) -> None:
        best[name] = max(best[name], rate)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "m.pth"
        torch.save(ZOO.get(arch)().state_dict(), ckpt)
        model, _ = load_zoo_model(arch, ckpt)
        onnx_path = Path(tmp) / "m.onnx"
        export_zoo(arch, ckpt, onnx_path)
        loop_torch(model, paths[:20])  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            zoo_feature_sets(arch, ckpt, "partial_reid", root, progress=False)
            keep("zoo", len(paths) / (time.perf_counter() - t0))
            keep("torch", loop_torch(model, paths))
            t0 = time.perf_counter()
            onnx_feature_sets(onnx_path, "partial_reid", root, progress=False)
            keep("onnx", len(paths) / (time.perf_counter() - t0))
            keep("ort", loop_onnx(onnx_path, paths))
            cli_rate, cli_loop_rate = cli_rates(onnx_path, root, paths, Path(tmp))
            keep("cli", cli_rate)
            keep("cli_loop", cli_loop_rate)
    zoo_rate, torch_rate, onnx_rate, ort_rate, cli_rate, cli_loop_rate = best.values()
    result.update(cli_onnx_images_per_s=round(cli_rate, 1), cli_onnx_loop_images_per_s=round(cli_loop_rate, 1),
                  cli_onnx_ratio=round(cli_rate / cli_loop_rate, 3))
    result.update(zoo_images_per_s=round(zoo_rate, 1), torch_loop_images_per_s=round(torch_rate, 1),
                  zoo_ratio=round(zoo_rate / torch_rate, 3), onnx_images_per_s=round(onnx_rate, 1),
                  onnx_loop_images_per_s=round(ort_rate, 1), onnx_ratio=round(onnx_rate / ort_rate, 3))
    click.echo(f"--zoo {zoo_rate:.1f} img/s vs a PyTorch loop {torch_rate:.1f} img/s: {zoo_rate / torch_rate:.2f}x; "
               f"--onnx {onnx_rate:.1f} img/s vs an onnxruntime loop {ort_rate:.1f} img/s: {onnx_rate / ort_rate:.2f}x "
               f"({len(paths)} crops, {arch}); whole commands in fresh processes: evaluate --onnx {cli_rate:.1f} vs "
               f"a loop script {cli_loop_rate:.1f} img/s: {cli_rate / cli_loop_rate:.2f}x (best of {repeat})", err=True)
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
