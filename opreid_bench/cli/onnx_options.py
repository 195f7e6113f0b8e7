"""The ``--onnx`` preprocessing options shared by ``extract`` and ``evaluate`` (parsing only; the runner is
:mod:`opreid_bench.engine.onnx_runner`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

ONNX_HELP = ("An ONNX model (any codebase; `opreid-bench export` writes ours) run with onnxruntime on the dataset's "
             "query and gallery crops instead of --weights; needs --dataset and --root.")


def onnx_preprocessing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --input-size, --mean, --std, --channel-order, --output, --batch-size (each overrides the model's metadata)."""
    options = [
        click.option("--input-size", default=None, metavar="HxW",
                     help="With --onnx: crop size, e.g. 256x128 (default: the model's metadata or its input shape). "
                          "With --zoo: the size the model was trained at, e.g. 384x128 (default: its toolkit's "
                          "test size)."),
        click.option("--mean", default=None, metavar="R,G,B",
                     help="With --onnx: per-channel mean on [0, 1] pixels, in the model's channel order (default: "
                          "the model's metadata)."),
        click.option("--std", default=None, metavar="R,G,B", help="With --onnx: per-channel std, like --mean."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR"], case_sensitive=False), default=None,
                     help="With --onnx: channel order the model expects (default: its metadata, else RGB)."),
        click.option("--output", "onnx_output", default=None, metavar="NAME",
                     help="With --onnx: the output holding the feature (default: its metadata, or the only output)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
                     help="With --onnx: images per onnxruntime run (a model with a static batch uses its own)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def preprocessing_from_options(input_size: str | None, mean: str | None, std: str | None,
                               channel_order: str | None, onnx_output: str | None) -> Any:
    """The parsed options as :class:`opreid_bench.engine.onnx_runner.PreprocessingOptions` (bad text: one line)."""
    from opreid_bench.engine.onnx_runner import PreprocessingOptions, parse_input_size, parse_triple

    h, w = parse_input_size(input_size) if input_size else (None, None)
    return PreprocessingOptions(height=h, width=w, mean=parse_triple(mean, "--mean") if mean else None,
                                std=parse_triple(std, "--std") if std else None,
                                channel_order=channel_order.upper() if channel_order else None, output=onnx_output)


def zoo_input_size(zoo: str | None, onnx_model: Any, input_size: str | None, mean: str | None, std: str | None,
                   channel_order: str | None, onnx_output: str | None) -> tuple[int, int] | None:
    """The crop size a ``--zoo`` model runs at when ``--input-size`` changes its toolkit's default (a torchreid model
    trained at 384x128); None otherwise. Preprocessing options that would be ignored are refused in one line: without
    ``--onnx`` only ``--input-size``, and only with ``--zoo``, has a meaning."""
    from opreid_bench.engine.onnx_runner import parse_input_size
    from opreid_bench.errors import OpreidError

    given = [flag for flag, value in (("--input-size", input_size), ("--mean", mean), ("--std", std),
                                      ("--channel-order", channel_order), ("--output", onnx_output))
             if value is not None]
    if onnx_model is not None or not given:
        return None
    if zoo is None:
        raise OpreidError(f"{', '.join(given)} set the preprocessing of an --onnx model (--input-size also that of a "
                          "--zoo model); without them they would be ignored: leave them out")
    other = [flag for flag in given if flag != "--input-size"]
    if other:
        raise OpreidError(f"{', '.join(other)}: a --zoo model uses its toolkit's test preprocessing; only "
                          "--input-size changes with --zoo (for a model trained at another size)")
    return parse_input_size(str(input_size))
