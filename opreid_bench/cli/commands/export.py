"""`opreid-bench export`: a trained checkpoint's inference graph as an ONNX model (preprocessing in its metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opreid_bench.cli.onnx_options import zoo_input_size
from opreid_bench.cli.options import ZOO_HELP, refuse_output_over_input


@click.command("export")
@click.option("--weights", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint written by `opreid-bench train` (RUN_DIR/model.pt; it holds its own config), or with "
                   "--zoo the torchreid / fast-reid checkpoint.")
@click.option("--zoo", default=None, metavar="ZOO:SPEC", help=ZOO_HELP)
@click.option("--input-size", default=None, metavar="HxW",
              help="With --zoo: the size the model was trained at, e.g. 384x128 (default: its toolkit's test size).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .onnx file.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True, help="ONNX opset version.")
@click.option("--tolerance", type=click.FloatRange(min=0.0), default=1e-4, show_default=True,
              help="Refuse the export when onnxruntime's L2-normalised features differ from PyTorch's by more.")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object (what was written) on stdout.")
def export_cmd(weights: Path, zoo: str | None, input_size: str | None, out: Path, opset: int, tolerance: float,
               json_out: bool) -> None:
    """Export the eval-mode forward (retrieval feature; ME folded in for `ours`; no RP branch, no classifiers).

    Input: float32 (batch, 3, H, W), ImageNet-normalised RGB on [0, 1] pixels at the training size; output
    'features' (batch, D). The size, mean/std, channel order, method and metric are written into the model's
    metadata, so `evaluate --onnx` and `extract --onnx` need no preprocessing options.

    \b
    Examples:
      opreid-bench export --weights runs/ours/model.pt --out ours.onnx
      opreid-bench evaluate --onnx ours.onnx --dataset partial_reid --root ../shared/data --json
      opreid-bench export --zoo torchreid:osnet_x1_0 --weights osnet_x1_0_market.pth --out osnet.onnx
      opreid-bench export --zoo torchreid:resnet50 --weights model.pth.tar-60 --input-size 384x128 --out r50.onnx

    With --zoo the torchreid or fast-reid checkpoint is exported with its toolkit's test preprocessing (size, mean/std,
    resize filter) in the metadata. torch 2.13's exporter is used with dynamo=False (the TorchScript path), which needs
    no onnxscript.
    """
    from opreid_bench.engine.onnx_export import export_checkpoint, export_zoo

    refuse_output_over_input(out, "--out", {"--weights": weights})
    size = zoo_input_size(zoo, None, input_size, None, None, None, None)
    if zoo is not None:
        info = export_zoo(zoo, weights, out, opset=opset, tolerance=tolerance, input_size=size)
    else:
        info = export_checkpoint(weights, out, opset=opset, tolerance=tolerance)
    if json_out:
        click.echo(json.dumps(info))
    else:
        click.echo(f"wrote {out}: {info['method']} ({info['backbone']}, {info['input_size']}, feature "
                   f"{info['feature']} of dimension {info['dim']}); onnxruntime vs PyTorch max abs diff "
                   f"{info['max_abs_diff']:.2e}", err=True)


COMMANDS = [export_cmd]
