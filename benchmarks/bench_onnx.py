"""ONNX export benchmark: onnxruntime vs PyTorch eager for `ours` (ME folded in) at 256×128 on this CPU.

For each backbone (ResNet-50, MobileNetV2) an `ours` model is built (no pretrained file: weights do not change the
cost; its BatchNorm statistics and ME's mu come from two train-mode forwards so the features are not degenerate),
saved as a checkpoint and exported with ``opreid-bench export``'s code path (``export_checkpoint``). Then, on one
seeded random batch:

* ``max_abs_diff``: max abs difference of the L2-normalised features of onnxruntime and PyTorch;
* ``torch_img_s``: eval-mode forward under ``torch.inference_mode``;
* ``onnxruntime_img_s``: ``InferenceSession.run`` (CPUExecutionProvider, all graph optimisations);
* ``ratio``: onnxruntime_img_s / torch_img_s, measured in the same run.

Both engines get the same number of intra-op threads (``--threads``), and are timed round-robin (best of ``--iters``
after ``--warmup``), so load from other processes on a shared CPU hits both alike.

Examples:
  python benchmarks/bench_onnx.py --json
  python benchmarks/bench_onnx.py --backbones mobilenetv2 --batch 8 --iters 3 --plot onnx.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table


def build_checkpoint(backbone: str, height: int, width: int, path: Path) -> Path:
    """An `ours` checkpoint with data-like BatchNorm statistics and a non-zero ME mu."""
    from opreid_bench.engine.checkpoint import save_checkpoint
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.modeling import build_model

    cfg = load_method_config("ours", [f"model.backbone={backbone}", "model.pretrained=null",
                                      f"data.height={height}", f"data.width={width}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=16)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.momentum = None
                m.reset_running_stats()
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, height, width, generator=gen))
    return save_checkpoint(path, model=model, cfg=cfg, num_classes=16, dataset="bench", epoch=1, with_rng=False)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def measure(backbone: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.onnx_export import INPUT_NAME, OUTPUT_NAME, export_checkpoint

    weights = build_checkpoint(backbone, args.height, args.width, tmp / f"{backbone}.pt")
    onnx_path = tmp / f"{backbone}.onnx"
    export_checkpoint(weights, onnx_path)
    model, _, _ = load_model_from_checkpoint(weights)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((args.batch, 3, args.height, args.width))
                         .astype(np.float32))
    feed = {INPUT_NAME: x.numpy()}

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    def run_ort() -> np.ndarray:
        return sess.run([OUTPUT_NAME], feed)[0]

    diff = float(np.abs(_l2(run_ort()) - _l2(run_torch())).max())
    times: dict[str, list[float]] = {"torch": [], "ort": []}
    for i in range(args.warmup + args.iters):
        for name, fn in (("torch", run_torch), ("ort", run_ort)):
            t0 = time.perf_counter()
            fn()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    torch_img_s = args.batch / min(times["torch"])
    ort_img_s = args.batch / min(times["ort"])
    return {"max_abs_diff": diff, "torch_img_s": round(torch_img_s, 2), "onnxruntime_img_s": round(ort_img_s, 2),
            "ratio": round(ort_img_s / torch_img_s, 3),
            "median_ratio": round(float(np.median(times["torch"]) / np.median(times["ort"])), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (table to stderr)")
    parser.add_argument("--backbones", default="resnet50,mobilenetv2")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16, help="images per forward (default 16)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per engine (best of)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines (default 1)")
    parser.add_argument("--plot", type=Path, default=None, help="also save a bar chart of img/s (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones.split(","):
            results[backbone] = measure(backbone, args, Path(tmp))
    results["setup"] = {"method": "ours", "input": f"{args.height}x{args.width}", "batch": args.batch,
                        "threads": args.threads, "iters": args.iters, "torch": torch.__version__,
                        "onnxruntime": __import__("onnxruntime").__version__}
    table = Table(title=f"ours at {args.height}x{args.width}, batch {args.batch}, {args.threads} thread(s)")
    for col in ("backbone", "max |diff|", "torch img/s", "onnxruntime img/s", "ratio (best)", "ratio (median)"):
        table.add_column(col, justify="right")
    for backbone in args.backbones.split(","):
        r = results[backbone]
        table.add_row(backbone, f"{r['max_abs_diff']:.2e}", f"{r['torch_img_s']:.1f}",
                      f"{r['onnxruntime_img_s']:.1f}", f"{r['ratio']:.2f}x", f"{r['median_ratio']:.2f}x")
    Console(stderr=args.json, width=110).print(table)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = args.backbones.split(",")
        fig, ax = plt.subplots(figsize=(5, 3))
        pos = np.arange(len(names))
        ax.bar(pos - 0.2, [results[n]["torch_img_s"] for n in names], 0.4, label="PyTorch eager")
        ax.bar(pos + 0.2, [results[n]["onnxruntime_img_s"] for n in names], 0.4, label="onnxruntime")
        ax.set_xticks(pos, names)
        ax.set_ylabel("images / s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    if args.json:
        json.dump(results, sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
