"""build-split and its stages 3-4 on their own: `build-split`, `mask`, `sample` (stages 1-2: `annotate`, `classify`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

MASK_CHOICES = ["blur", "pixelate", "fill"]


def _pool_options(required: bool = True):  # type: ignore[no-untyped-def]
    def deco(f):  # type: ignore[no-untyped-def]
        f = click.option("--pattern", default=None, help="Regex with named groups pid, camid (--pool-format folder).")(f)
        f = click.option(
            "--pool-format", default="manifest", show_default=True,
            help="manifest (CSV/parquet path,pid,camid[,scene]), folder (with --pattern) or a dataset name.",
        )(f)
        return click.option("--pool", "pool_path", type=click.Path(path_type=Path), required=required,
                            help="The pool of crops: a manifest file, a folder or a dataset root.")(f)

    return deco


def _load_pool(path: Path, fmt: str, pattern: str | None) -> list[Any]:
    from opreid_bench.data.datasets import load_pool

    kwargs = {"pattern": pattern} if pattern else {}
    return list(load_pool(path, fmt, **kwargs))


def _summary_table(summary: dict[str, dict[str, float]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("split", "ids", "images", "cameras", "occluded"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name in ("train", "query", "gallery", "overall"):
        s = summary[name]
        table.add_row(name, f"{s['ids']:,}", f"{s['images']:,}", f"{s['cameras']:,}", f"{s['occluded_share']:.1%}")
    Console(stderr=True).print(table)


@click.command("build-split")
@_pool_options()
@click.option("--protocol", "protocol_path", required=True,
              help="Split protocol YAML (protocols/opreid.yaml, protocols/opreid-mini.yaml, or a bare name).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (Market-style).")
@click.option("--seed", type=int, required=True, help="Sampling seed: same seed, byte-identical split.")
@click.option("--pose", default="mediapipe", show_default=True,
              help="Pose backend: mediapipe, precomputed:FILE or mmpose:CONFIG,CHECKPOINT.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Processes for pose and writing.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--mask", type=click.Choice(MASK_CHOICES), default="blur", show_default=True, help="Face mask.")
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=None,
              help="Keypoint score below which a keypoint is missing (default: the classifier's).")
@click.option("--min-missing-run", type=click.IntRange(1), default=None,
              help="Sequential missing keypoints that make a crop occluded (default 3, the paper's rule).")
@click.option("--corrections", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of manual label corrections (see `classify --help`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def build_split_cmd(pool_path: Path, pool_format: str, pattern: str | None, protocol_path: str, out: Path, seed: int,
                    pose: str, workers: int, engine: str, mask: str, score_threshold: float | None,
                    min_missing_run: int | None, corrections: Path | None, as_json: bool) -> None:
    """Turn a pool of labelled crops into an OPReID-style occluded benchmark (paper Section 4), end to end.

    Stages: pose keypoints (cached in OUT/.annotate, resumable) -> occluded/holistic label -> sampling by the
    protocol -> faces masked, written as bounding_box_train/, query/, bounding_box_test/ with manifest.csv,
    keypoints.h5, DATA_CARD.md and occlusion_stats.png. Same pool, protocol and seed: byte-identical output.

    \b
    Examples:
      opreid-bench build-split --pool pool/manifest.csv --protocol protocols/opreid-mini.yaml --out split --seed 0
      opreid-bench build-split --pool pool/manifest.csv --pose precomputed:pool/keypoints.csv \\
          --protocol opreid-mini --out split --seed 1 --mask pixelate --json
      opreid-bench datasets verify opreid --root split
    """
    from opreid_bench.splits.pipeline import build_split
    from opreid_bench.splits.protocol import load_protocol

    protocol = load_protocol(protocol_path)
    pool = _load_pool(pool_path, pool_format, pattern)
    rule = None
    if score_threshold is not None or min_missing_run is not None:
        from opreid_bench.splits.classify import OcclusionRule

        kw: dict[str, Any] = {}
        if score_threshold is not None:
            kw["score_threshold"] = score_threshold
        if min_missing_run is not None:
            kw["min_missing_run"] = min_missing_run
        rule = OcclusionRule(**kw)
    result = build_split(pool, protocol, out, seed, pose=pose, workers=workers, engine=engine, mask=mask, rule=rule,
                         corrections=corrections, pool_name=str(pool_path))
    _summary_table(result.summary, f"{protocol.name} split in {out} (seed {seed})")
    info = result.to_json()
    click.echo(f"faces masked: {info['faces_masked']:,} {info['mask_methods']}; queries without a cross-camera match: "
               f"{info['same_camera_queries']}; skipped crops: {info['skipped']}", err=True)
    if as_json:
        click.echo(json.dumps(info))


def _common_root(paths: list[str]) -> Path:
    import os

    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return Path(os.path.commonpath(dirs)) if dirs else Path(".")


@click.command("mask")
@_pool_options(required=False)
@click.option("--keypoints", "keypoints_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="keypoints.h5 or the annotate folder holding it (without: Haar face detector only).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the masked crops (with --verify and no --pool: the folder to check).")
@click.option("--mask", type=click.Choice(MASK_CHOICES), default="blur", show_default=True)
@click.option("--verify", is_flag=True, help="Run the face detector over the output and report faces still found.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def mask_cmd(pool_path: Path | None, pool_format: str, pattern: str | None, keypoints_dir: Path | None, out: Path,
             mask: str, verify: bool, workers: int, as_json: bool) -> None:
    """Stage 3 on its own: mask the faces of a pool's crops (head keypoints, else OpenCV's Haar face detector).

    Writes the masked crops under OUT (same relative paths as in the pool) and OUT/masks.csv
    (source_path,path,face_masked,method). --verify runs the Haar detector over the written crops and lists every
    face it still finds; with --verify and no --pool it only checks the images already under OUT (e.g. a split).

    \b
    Examples:
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --mask pixelate --verify
      opreid-bench mask --verify --out split/
    """
    import pandas as pd

    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.errors import OpreidError
    from opreid_bench.splits.pipeline import stage_progress
    from opreid_bench.splits.writer import write_images

    result: dict[str, Any] = {"out": str(out)}
    if pool_path is not None:
        pool = _load_pool(pool_path, pool_format, pattern)
        if not pool:
            raise OpreidError(f"{pool_path}: the pool has no crops")
        kps = {}
        if keypoints_dir is not None:
            from opreid_bench.splits.cache import read_keypoints

            kps = read_keypoints(keypoints_dir)
        paths = sorted({r.path for r in pool})
        root = _common_root(paths)
        rels = [Path(p).resolve().relative_to(root).with_suffix(".jpg").as_posix() for p in paths]
        jobs = [(p, str(out / rel), kps.get(p), mask) for p, rel in zip(paths, rels)]
        with stage_progress() as prog:
            task = prog.add_task(f"masking {len(jobs):,} crops ({mask})", total=len(jobs))
            res = write_images(jobs, workers=workers, on_done=lambda n: prog.advance(task, n))
        table = pd.DataFrame({"source_path": paths, "path": rels, "face_masked": [m for m, _ in res],
                              "method": [h for _, h in res]})
        atomic_write_text(out / "masks.csv", table.to_csv(index=False, lineterminator="\n"))
        result.update(crops=len(table), faces_masked=int(table["face_masked"].sum()),
                      methods={k: int(v) for k, v in table["method"].value_counts().sort_index().items()})
        click.echo(f"masked {result['faces_masked']:,} of {len(table):,} crops {result['methods']}; wrote "
                   f"{out / 'masks.csv'}", err=True)
    elif not verify:
        raise OpreidError("mask: give --pool (to mask) and/or --verify (to check the images under --out)")
    if verify:
        from opreid_bench.splits.face_detect import verify_faces

        found = verify_faces(out)
        result.update(verified=found["checked"], faces_found=len(found["faces"]), faces=found["faces"][:100])
        _verify_table(found)
    if as_json:
        click.echo(json.dumps(result))


def _verify_table(found: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    console.print(f"verify: {found['checked']:,} crops checked, {len(found['faces']):,} with a face still found")
    if found["faces"]:
        table = Table(title="faces still found (first 20)")
        table.add_column("path")
        table.add_column("boxes")
        for item in found["faces"][:20]:
            table.add_row(item["path"], str(item["boxes"]))
        console.print(table)


@click.command("sample")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="labels.csv from `classify` (source_path,occluded,...).")
@_pool_options()
@click.option("--protocol", "protocol_path", required=True, help="Split protocol YAML or a bare protocol name.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (Market-style).")
@click.option("--seed", type=int, required=True)
@click.option("--keypoints", "keypoints_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="keypoints.h5 or its folder: face boxes for masking, copied to OUT/keypoints.h5.")
@click.option("--mask", type=click.Choice([*MASK_CHOICES, "none"]), default="blur", show_default=True,
              help="Face mask (none: copy crops unmasked, e.g. when the pool is already masked).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option("--dry-run", is_flag=True, help="Sample and write only OUT/split.csv, no images.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def sample_cmd(labels_path: Path, pool_path: Path, pool_format: str, pattern: str | None, protocol_path: str, out: Path,
               seed: int, keypoints_dir: Path | None, mask: str, workers: int, dry_run: bool, as_json: bool) -> None:
    """Stage 4 on its own: sample query/gallery/train from labelled crops by a protocol and write the split.

    Joins LABELS (source_path, occluded, ...) with the pool's pid and camid, samples by the protocol (same seed,
    same split), writes OUT/split.csv (every chosen crop with its split and role) and, unless --dry-run, the
    Market-style folder with manifest.csv, DATA_CARD.md and occlusion_stats.png, exactly as build-split does.

    \b
    Examples:
      opreid-bench classify --keypoints ann/ --out labels.csv
      opreid-bench sample --labels labels.csv --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --keypoints ann/
    """
    import pandas as pd

    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.errors import DataError
    from opreid_bench.splits.pipeline import check_protocol_fits, filtered_keypoints_copy, labels_for_pool
    from opreid_bench.splits.protocol import load_protocol
    from opreid_bench.splits.sample import same_camera_queries, sample_split, split_summary

    protocol = load_protocol(protocol_path)
    try:
        labels = pd.read_csv(labels_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{labels_path}: not a readable CSV ({exc})") from None
    pool = _load_pool(pool_path, pool_format, pattern)
    labelled = labels_for_pool(pool, labels, where=str(labels_path))
    check_protocol_fits(labelled, protocol)
    split = sample_split(labelled, protocol, seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "split.csv", split.to_csv(index=False, lineterminator="\n"))
    info: dict[str, Any] = {"out": str(out), "split_csv": str(out / "split.csv")}
    if dry_run:
        summary = split_summary(split)
        info.update(splits=summary, same_camera_queries=same_camera_queries(split))
    else:
        from opreid_bench.splits.datacard import write_data_card
        from opreid_bench.splits.pipeline import stage_progress
        from opreid_bench.splits.writer import write_split

        kps, kp_file = None, None
        if keypoints_dir is not None:
            from opreid_bench.splits.cache import read_keypoints, resolve_keypoints_path

            kp_file = resolve_keypoints_path(keypoints_dir)
            kps = read_keypoints(kp_file)
        with stage_progress() as prog:
            task = prog.add_task(f"writing {len(split):,} crops (mask: {mask})", total=len(split))
            written = write_split(split, out, keypoints=kps, mask=None if mask == "none" else mask, workers=workers,
                                  on_done=lambda n: prog.advance(task, n))
        if kp_file is not None:
            filtered_keypoints_copy(kp_file, out / "keypoints.h5", set(written["source_path"]))
        write_data_card(out, written, protocol, seed=seed, pose=f"labels {labels_path.name}",
                        mask=None if mask == "none" else mask, pool=str(pool_path), pool_size=len(pool))
        summary = split_summary(written)
        info.update(splits=summary, same_camera_queries=same_camera_queries(written),
                    faces_masked=int(written["face_masked"].sum()))
    _summary_table(summary, f"{protocol.name} split in {out} (seed {seed})")
    if as_json:
        click.echo(json.dumps(info))
    sys.stderr.flush()


COMMANDS = [build_split_cmd, mask_cmd, sample_cmd]
