"""`opreid-bench extract`: a trained checkpoint's query/gallery features of a dataset, as an HDF5 feature file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opreid_bench.cli.onnx_options import (
    ONNX_HELP,
    onnx_preprocessing_options,
    preprocessing_from_options,
    zoo_input_size,
)
from opreid_bench.cli.options import ZOO_HELP, echo_dataset_notes, parse_key_values, refuse_output_over_input
from opreid_bench.errors import OpreidError


@click.command("extract")
@click.option("--weights", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint written by `opreid-bench train` (RUN_DIR/model.pt); it holds its own config.")
@click.option("--onnx", "onnx_model", default=None, type=click.Path(dir_okay=False, path_type=Path), help=ONNX_HELP)
@click.option("--zoo", default=None, metavar="ZOO:SPEC", help=ZOO_HELP)
@click.option("--dataset", required=True, help="Dataset loader name (see `opreid-bench datasets list`).")
@click.option("--root", required=True, type=click.Path(path_type=Path), help="Folder holding the dataset.")
@click.option("--option", "dataset_option", multiple=True, metavar="KEY=VALUE", help="Dataset loader option.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .h5 file (replaces only a file extract wrote).")
@click.option("--method", default=None, help="Refuse a checkpoint of another method.")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default=None,
              help="With --onnx: the distance the model's features are compared with, recorded in the file for "
                   "evaluate, search and visualize (default: the model's metadata, else none recorded: euclidean).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object (what was written) on stdout.")
@onnx_preprocessing_options
def extract_cmd(weights: Path | None, onnx_model: Path | None, zoo: str | None, dataset: str, root: Path,
                dataset_option: tuple[str, ...], out: Path, method: str | None, metric: str | None, device: str,
                json_out: bool,
                input_size: str | None, mean: str | None, std: str | None, channel_order: str | None,
                onnx_output: str | None, batch_size: int) -> None:
    """Extract inference features (the method's retrieval feature; ME applied for `ours`) and write them with /query and /gallery.

    The file also records the dataset's junk rule and the method's metric, which `evaluate --features` uses.

    \b
    Examples:
      opreid-bench extract --weights runs/ours/model.pt --dataset partial_reid \\
          --root ../shared/data --out feats.h5
      opreid-bench evaluate --features feats.h5 --metric cosine --junk none
      opreid-bench extract --onnx model.onnx --dataset partial_reid --root ../shared/data --out feats.h5 \\
          --input-size 256x128 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
      opreid-bench extract --zoo torchreid:osnet_x1_0 --weights osnet_x1_0_market.pth --dataset partial_reid \\
          --root ../shared/data --out feats.h5
    """
    from opreid_bench.engine.extract import model_feature_sets
    from opreid_bench.evaluation.features import EXTRACT_WRITER, is_extract_output, write_feature_file
    from opreid_bench.outputs import refuse_foreign_file

    if (weights is None) == (onnx_model is None):
        raise OpreidError("extract needs exactly one model: --weights RUN/model.pt or --onnx MODEL.onnx")
    refuse_output_over_input(out, "--out", {"--weights": weights, "--onnx": onnx_model})
    refuse_foreign_file(out, "extract", is_extract_output)
    if zoo is not None and onnx_model is not None:
        raise OpreidError("--zoo takes its checkpoint with --weights, not --onnx")
    if metric is not None and onnx_model is None:
        raise OpreidError("--metric records the distance of an --onnx model's features; a trained or --zoo model's "
                          "file records its own (evaluate --metric overrides it)")
    zoo_size = zoo_input_size(zoo, onnx_model, input_size, mean, std, channel_order, onnx_output)
    if zoo is not None:  # a model-zoo checkpoint, rebuilt here with the zoo's names (opreid_bench.modeling.zoo)
        from opreid_bench.engine.zoo_extract import zoo_feature_sets

        query, gallery, attrs = zoo_feature_sets(zoo, weights, dataset, root, device=device,
                                                 options=parse_key_values(dataset_option), input_size=zoo_size)
    elif onnx_model is not None:  # any ONNX model through onnxruntime; preprocessing recorded in the file's attrs
        from opreid_bench.engine.onnx_runner import onnx_feature_sets

        given = preprocessing_from_options(input_size, mean, std, channel_order, onnx_output)
        query, gallery, attrs = onnx_feature_sets(onnx_model, dataset, root, given=given, device=device,
                                                  batch_size=batch_size, options=parse_key_values(dataset_option),
                                                  metric=metric)
    else:
        query, gallery, attrs = model_feature_sets(weights, dataset, root, method=method, device=device,
                                                   options=parse_key_values(dataset_option))
    write_feature_file(out, query, gallery, attrs={**attrs, "written_by": EXTRACT_WRITER})
    info = {"out": str(out), "query": len(query), "gallery": len(gallery),
            "dim": int(query.features.shape[1]), **attrs}
    if json_out:
        click.echo(json.dumps(info))
    else:
        click.echo(f"wrote {out}: {len(query)} query + {len(gallery)} gallery features of dimension "
                   f"{info['dim']} ({attrs['method']}, junk={attrs['junk']}, metric={attrs.get('metric', '-')})", err=True)
    echo_dataset_notes(dataset, root, parse_key_values(dataset_option))


COMMANDS = [extract_cmd]
