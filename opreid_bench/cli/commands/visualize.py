"""`opreid-bench visualize`: rank lists as a self-contained HTML page plus PNG grids, one model or two compared."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opreid_bench.cli.onnx_options import zoo_input_size
from opreid_bench.cli.options import ZOO_HELP, parse_key_values
from opreid_bench.errors import OpreidError


@click.command("visualize")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HDF5 feature file with /query and /gallery (and their paths); see docs/reference/file-formats.md.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint (RUN/model.pt): extract the features of --dataset first.")
@click.option("--zoo", default=None, metavar="ZOO:SPEC", help=ZOO_HELP)
@click.option("--input-size", default=None, metavar="HxW",
              help="With --zoo: the size the model was trained at, e.g. 384x128 (default: its toolkit's test size).")
@click.option("--dataset", default=None, help="Dataset loader name (with --weights).")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="Dataset folder (with --weights).")
@click.option("--option", "dataset_option", multiple=True, metavar="KEY=VALUE", help="Dataset loader option.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: index.html, grids/page_NNN.png, summary.json.")
@click.option("--compare", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A second feature file (same queries and gallery): model B, shown side by side.")
@click.option("--topk", type=click.IntRange(min=1, max=100), default=10, show_default=True)
@click.option("--sort", type=click.Choice(["ap", "rank1", "random"]), default="ap", show_default=True,
              help="ap: worst AP first; rank1: latest first true match first; random: seeded by --seed.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of --sort random.")
@click.option("--only", type=click.Choice(["failures"]), default=None, help="failures: rank-1 wrong only.")
@click.option("--query", "query_path", default=None, help="Show only the query with this path.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Queries shown (per section with --compare).")
@click.option("--per-page", type=click.IntRange(min=1), default=10, show_default=True, help="Queries per PNG grid.")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default=None,
              help="Default: the file's metric attribute, else euclidean.")
@click.option("--junk", type=click.Choice(["market", "none"]), default=None,
              help="Default: the file's junk attribute, else market.")
@click.option("--image-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that relative image paths are relative to (default: the current folder).")
@click.option("--link-images", is_flag=True, help="Link the images (file:// URIs) instead of embedding them.")
@click.option("--attention", is_flag=True, help="Overlay an attention map of the --weights model on the shown crops.")
@click.option("--attention-map", type=click.Choice(["gradcam", "rp"]), default="gradcam", show_default=True,
              help="gradcam: what makes the retrieval feature match; rp: the model's reconstructive-pooling mask "
                   "softmax(W^m F) (paper Eq. 2; ours and the RP ablation rows).")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object on stdout.")
def visualize(features: Path | None, weights: Path | None, zoo: str | None, input_size: str | None,
              dataset: str | None, root: Path | None,
              dataset_option: tuple[str, ...], out: Path, compare: Path | None, topk: int, sort: str, seed: int,
              only: str | None, query_path: str | None, limit: int, per_page: int, metric: str | None,
              junk: str | None, image_root: Path | None, link_images: bool, attention: bool, attention_map: str,
              device: str,
              json_out: bool) -> None:
    """Show each query's top-k gallery crops: green = true match, red = wrong, grey dashed = junk (not counted).

    Each query shows its AP and the rank of its first true match (the evaluator's values, its junk rule).

    \b
    Examples:
      opreid-bench visualize --features feats.h5 --out vis/ --topk 10
      opreid-bench visualize --features ours.h5 --compare bot.h5 --out vis_cmp/ --json
      opreid-bench visualize --weights runs/ours/model.pt --dataset partial_reid --root ../shared/data \\
          --out vis_att/ --attention --limit 20
      opreid-bench visualize --zoo torchreid:osnet_x1_0 --weights osnet.pth --dataset partial_reid \\
          --root ../shared/data --out vis_osnet/
    """
    from opreid_bench.engine.visualize import VisualizeJob, run_visualize

    if (features is None) == (weights is None):
        raise OpreidError("visualize needs exactly one input: --features F.h5, or --weights model.pt with "
                          "--dataset and --root")
    if weights is not None and (dataset is None or root is None):
        raise OpreidError("--weights needs --dataset NAME and --root FOLDER (the crops to extract and show)")
    if attention and weights is None:
        raise OpreidError("--attention needs --weights model.pt (Grad-CAM needs the model, not only its features)")
    if zoo is not None and (weights is None or attention):
        raise OpreidError("--zoo ARCH takes its checkpoint with --weights FILE (and draws no --attention)")
    if attention and link_images:
        raise OpreidError("--attention draws on the crops, so they are embedded: drop --link-images")
    if input_size is not None and zoo is None:
        raise OpreidError("--input-size goes with --zoo (the size a model-zoo checkpoint was trained at); a model "
                          "trained here knows its own size")
    zoo_size = zoo_input_size(zoo, None, input_size, None, None, None, None)
    job = VisualizeJob(features=features, weights=weights, zoo=zoo, zoo_input_size=zoo_size, dataset=dataset, root=root,
                       options=parse_key_values(dataset_option), out=out, compare=compare, topk=topk, sort=sort,
                       seed=seed, only_failures=only == "failures", query=query_path, limit=limit,
                       per_page=per_page, metric=metric, junk=junk, image_root=image_root, link_images=link_images,
                       attention=attention, attention_map=attention_map, device=device)
    summary = run_visualize(job)
    if json_out:
        click.echo(json.dumps(summary))
        return
    line = f"wrote {summary['html']}: {summary['queries_shown']} queries, {summary['true_matches_in_topk']} true " \
           f"matches in the top-{topk}"
    if summary["a_wins"] is not None:
        line += f"; rank-1 wins: A {summary['a_wins']}, B {summary['b_wins']}"
    click.echo(line, err=True)


COMMANDS = [visualize]
