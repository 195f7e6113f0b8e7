"""SynthOcc commands: generate a pool, occlude a user's dataset, build the Clever Hans test."""

from __future__ import annotations

from pathlib import Path

import click


def _progress(total: int, label: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True))
    task = prog.add_task(label, total=total)
    return prog, (lambda n: prog.advance(task, n))


@click.command("synth")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Pool folder to write.")
@click.option("--ids", "num_ids", type=click.IntRange(1), default=200, show_default=True)
@click.option("--cameras", "num_cameras", type=click.IntRange(2), default=6, show_default=True)
@click.option("--images-per-id", type=(int, int), default=(4, 10), show_default=True, help="Min and max images.")
@click.option("--occlusion-rate", type=click.FloatRange(0, 1), default=0.35, show_default=True)
@click.option("--size", type=(click.IntRange(16), click.IntRange(16)), default=(128, 256), show_default=True,
              metavar="WIDTH HEIGHT", help="Crop width and height in pixels (image order).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
def synth(out: Path, num_ids: int, num_cameras: int, images_per_id: tuple[int, int], occlusion_rate: float,
          size: tuple[int, int], seed: int, workers: int) -> None:
    """Generate a SynthOcc pool: drawn pedestrians across cameras, some occluded, exact keypoints.

    Writes OUT/images/, OUT/manifest.csv (path,pid,camid,view,occluder,...), OUT/keypoints.csv (ground truth in the
    `precomputed` format) and OUT/synth.json. Same seed, byte-identical pool.

    \b
    Example:
      opreid-bench synth --out pool --ids 300 --seed 0
      opreid-bench build-split --pool pool/manifest.csv --pose precomputed:pool/keypoints.csv \\
          --protocol opreid-mini --out split --seed 0
    """
    from opreid_bench.errors import OpreidError
    from opreid_bench.synth.generator import SynthConfig, generate_pool, plan_pool

    lo, hi = images_per_id
    if not 1 <= lo <= hi:
        raise OpreidError(f"--images-per-id: need 1 <= min <= max, got {lo} {hi}")
    cfg = SynthConfig(num_ids=num_ids, num_cameras=num_cameras, min_images=lo, max_images=hi,
                      occlusion_rate=occlusion_rate, width=size[0], height=size[1], seed=seed)
    prog, advance = _progress(len(plan_pool(cfg)), "synth")
    with prog:
        manifest = generate_pool(out, cfg, workers=workers, progress=advance)
    click.echo(f"wrote {manifest}", err=True)


@click.command("synth-occlude")
@click.option("--dataset", required=True, help="Dataset name (see `opreid-bench datasets list`).")
@click.option("--root", type=click.Path(path_type=Path), required=True, help="Dataset root.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the occluded copy.")
@click.option("--splits", default="query", show_default=True, help="Comma-separated splits to occlude.")
@click.option("--rate", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="Share of images occluded.")
@click.option("--kinds", default=None, help="Comma-separated occluder kinds (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def synth_occlude(dataset: str, root: Path, out: Path, splits: str, rate: float, kinds: str | None, seed: int) -> None:
    """Paste SynthOcc occluders onto a holistic dataset (same layout, so the same loader reads the copy).

    \b
    Example:
      opreid-bench synth-occlude --dataset market1501 --root ~/data --out ~/data/market-occ/ --splits query
      opreid-bench datasets verify market1501 --root ~/data/market-occ
    """
    from opreid_bench.synth.occlude_dataset import occlude_dataset
    from opreid_bench.synth.occluders import OCCLUDER_KINDS

    kind_list = tuple(k.strip() for k in kinds.split(",")) if kinds else OCCLUDER_KINDS
    split_list = tuple(s.strip() for s in splits.split(",") if s.strip())
    bad = [s for s in split_list if s not in ("train", "query", "gallery")]
    if bad:
        from opreid_bench.errors import OpreidError

        raise OpreidError(f"--splits: unknown split(s) {bad}; use train, query, gallery")
    manifest = occlude_dataset(dataset, root, out, splits=split_list, rate=rate, kinds=kind_list, seed=seed)
    click.echo(f"wrote {out} ({manifest.name} lists the occluded images)", err=True)


@click.command("synth-clever-hans")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--ids", "num_ids", type=click.IntRange(2), default=100, show_default=True)
@click.option("--distractors", type=click.IntRange(0), default=100, show_default=True)
@click.option("--size", type=(click.IntRange(16), click.IntRange(16)), default=(128, 256), show_default=True,
              metavar="WIDTH HEIGHT", help="Crop width and height in pixels (image order).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def synth_clever_hans(out: Path, num_ids: int, distractors: int, size: tuple[int, int], seed: int) -> None:
    """Build the Clever Hans test: OUT/same and OUT/different, Market-style folders.

    Each query and its true matches are hidden by one occluder geometry (same shape, place and size in both sets);
    in `same` the true matches' occluder also looks like the query's, in `different` it has another colour and
    pattern. Visible body region, queries and distractors are identical between the sets, so the gap
    mAP(same) - mAP(different) measures how much a model matches the occluder's appearance instead of the person.
    OUT/<set>/occluders.csv lists each crop's occluder, appearance, role and mask digest.

    \b
    Example:
      opreid-bench synth-clever-hans --out ch
      opreid-bench evaluate --method ours --weights run/model.pt --dataset market1501 --root ch/same --json
      python benchmarks/bench_clever_hans.py --weights run/model.pt   # gap with a paired bootstrap CI
    """
    from opreid_bench.synth.clever_hans import CleverHansConfig, build_clever_hans

    paths = build_clever_hans(out, CleverHansConfig(num_ids=num_ids, distractor_ids=distractors, width=size[0],
                                                    height=size[1], seed=seed))
    for name, p in paths.items():
        click.echo(f"wrote {name}: {p}", err=True)


COMMANDS = [synth, synth_occlude, synth_clever_hans]
