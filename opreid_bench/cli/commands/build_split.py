"""build-split and its stages 3-4 on their own: `build-split`, `mask`, `sample` (stages 1-2: `annotate`, `classify`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from opreid_bench.cli.options import FLIP_THRESHOLD_HELP, SUPPORT_THRESHOLD_HELP, flip_kwargs, support_kwargs
from opreid_bench.splits.mask import mask_spec

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


FACE_BOXES_HELP = ("CSV source_path,left,top,right,bottom of faces boxed by hand (e.g. downloaded from the sheet of "
                   "`mask --review-faces`), masked as well, as kind hand. Rows with another kind are the masks of the "
                   "reviewed masking: any that this masking does not cover is masked too (kind reviewed).")


OUTSIDE_BODY_HELP = ("Also mask everything outside the main person's body below the shoulders (the band above them "
                     "across the crop, and the sides beside the body): bystanders' faces that the detectors miss "
                     "are mostly there. Costs the background (24-35% of a crop's area on the measured crowded sets); "
                     "the data card says so.")


UNSTABLE_HELP = ("Labels the rule gave with stability below 0.75 that no one checked: keep them, or exclude them "
                 "from sampling (like undetermined crops) until a correction decides them.")


@click.command("build-split")
@_pool_options()
@click.option("--protocol", "protocol_path", required=True,
              help="Split protocol: a shipped name (opreid, opreid-mini, opreid-tiny) or a YAML file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (Market-style).")
@click.option("--seed", type=click.IntRange(min=0), required=True,
              help="Sampling seed: same seed, byte-identical split.")
@click.option("--pose", default="mediapipe", show_default=True,
              help="Pose backend: mediapipe (mediapipe:flip=1 adds the mirror-consistency signal, one more landmark "
                   "pass per crop), precomputed:FILE or mmpose:CONFIG,CHECKPOINT.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Processes for pose and writing.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--mask", type=click.Choice(MASK_CHOICES), default="blur", show_default=True, help="Face mask.")
@click.option("--mask-all-faces", is_flag=True, hidden=True,
              help="Every face is masked by default; kept so that older scripts run.")
@click.option("--main-face-only", is_flag=True,
              help="Mask the main person's face only, not bystanders' (the data card then carries a warning).")
@click.option("--mask-outside-body", "outside_body", is_flag=True, help=OUTSIDE_BODY_HELP)
@click.option("--undetermined", type=click.Choice(["exclude", "occluded", "holistic"]), default="exclude",
              show_default=True,
              help="Crops where no person was found: leave out of sampling, or count them all as occluded/holistic.")
@click.option("--unstable", type=click.Choice(["keep", "exclude"]), default="keep", show_default=True,
              help=UNSTABLE_HELP)
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=None,
              help="Keypoint score below which a keypoint is missing (default: the classifier's).")
@click.option("--support-threshold", "support", default=None, help=SUPPORT_THRESHOLD_HELP)
@click.option("--flip-threshold", "flip", default=None, help=FLIP_THRESHOLD_HELP)
@click.option("--min-missing-run", type=click.IntRange(1), default=None,
              help="Sequential missing keypoints that make a crop occluded (default 3, the paper's rule).")
@click.option("--corrections", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of manual label corrections (see `classify --help`).")
@click.option("--face-boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=FACE_BOXES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def build_split_cmd(pool_path: Path, pool_format: str, pattern: str | None, protocol_path: str, out: Path, seed: int,
                    pose: str, workers: int, engine: str, mask: str, mask_all_faces: bool, main_face_only: bool,
                    outside_body: bool, undetermined: str, unstable: str,
                    score_threshold: float | None, support: str | None, flip: str | None,
                    min_missing_run: int | None,
                    corrections: Path | None, face_boxes: Path | None,
                    as_json: bool) -> None:
    """Turn a pool of labelled crops into an OPReID-style occluded benchmark (paper Section 4), end to end.

    Stages: pose keypoints (cached in OUT/.annotate, resumable) -> occluded/holistic label -> sampling by the
    protocol -> faces masked, written as bounding_box_train/, query/, bounding_box_test/ with manifest.csv,
    keypoints.h5, DATA_CARD.md and occlusion_stats.png. Same pool, protocol and seed: byte-identical output.
    The split is built beside OUT and swapped in whole at the end (a killed run leaves the previous split); OUT must
    be new, empty or an earlier split, and may neither hold nor lie inside the pool.

    \b
    Examples:
      opreid-bench build-split --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0
      opreid-bench build-split --pool pool/manifest.csv --pose precomputed:pool/keypoints.csv \\
          --protocol opreid-mini --out split --seed 1 --mask pixelate --json
      opreid-bench build-split --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 --main-face-only
      opreid-bench build-split --pool pool/manifest.csv --pose mediapipe:flip=1 --protocol opreid-mini \\
          --out split --seed 0
      opreid-bench build-split --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --mask-outside-body
      opreid-bench build-split --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --face-boxes face_boxes.csv
      opreid-bench build-split --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --corrections corrections.csv --unstable exclude
      opreid-bench mask --verify --out split
      opreid-bench datasets verify opreid --root split
    """
    from opreid_bench.splits.pipeline import build_split, face_masking_warning
    from opreid_bench.splits.protocol import load_protocol
    from opreid_bench.splits.sample import cross_camera_warning

    spec = mask_spec(mask, main_face_only, outside_body)
    rule = None
    if score_threshold is not None or min_missing_run is not None or support is not None or flip is not None:
        from opreid_bench.splits.classify import OcclusionRule

        kw: dict[str, Any] = {**support_kwargs(support), **flip_kwargs(flip)}
        if score_threshold is not None:
            kw["score_threshold"] = score_threshold
        if min_missing_run is not None:
            kw["min_missing_run"] = min_missing_run
        rule = OcclusionRule(**kw)
    protocol = load_protocol(protocol_path)
    pool = _load_pool(pool_path, pool_format, pattern)
    result = build_split(pool, protocol, out, seed, pose=pose, workers=workers, engine=engine,
                         mask=spec, rule=rule, corrections=corrections,
                         pool_name=str(pool_path), undetermined=undetermined, face_boxes=face_boxes,
                         unstable=unstable)
    _summary_table(result.summary, f"{protocol.name} split in {out} (seed {seed})")
    info = result.to_json()
    click.echo(f"{_faces_line(result.manifest)}; query identities without a cross-camera match: "
               f"{info['same_camera_queries']}; skipped crops: {info['skipped']}", err=True)
    if result.set_aside_unstable is not None:
        click.echo(f"left out {result.set_aside_unstable:,} crops with an unstable label (--unstable exclude)",
                   err=True)
    if (warning := cross_camera_warning(result.cross_camera)) is not None:
        click.echo(f"warning: {warning}", err=True)
    if not main_face_only and (warning := face_masking_warning(mask)):
        click.echo(f"warning: {warning} (The data card says so too.)", err=True)
    if as_json:
        click.echo(json.dumps(info))


@click.command("mask")
@_pool_options(required=False)
@click.option("--keypoints", "keypoints_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="keypoints.h5 or the annotate folder holding it (without: Haar face detector only).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the masked crops (with --verify and no --pool: the folder to check).")
@click.option("--mask", type=click.Choice(MASK_CHOICES), default="blur", show_default=True)
@click.option("--mask-all-faces", is_flag=True, hidden=True,
              help="Every face is masked by default; kept so that older scripts run.")
@click.option("--main-face-only", is_flag=True,
              help="Mask the main person's face only, not bystanders'.")
@click.option("--mask-outside-body", "outside_body", is_flag=True, help=OUTSIDE_BODY_HELP)
@click.option("--verify", is_flag=True,
              help="Look for faces left in the images under OUT; exit 1 when a plausible face is found, or when OUT "
                   "holds a file (not text) that is none of its crops.")
@click.option("--verify-detector", type=click.Choice(["auto", "mediapipe", "haar"]), default="auto",
              show_default=True,
              help="Checker for --verify; auto/mediapipe: BlazeFace at the masking's verification setting, "
                   "haar: the frontal cascade, a detector the masking does not use for bystanders.")
@click.option("--face-boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=FACE_BOXES_HELP)
@click.option("--review-faces", type=click.Path(path_type=Path), default=None,
              help="Also write an HTML sheet of the masked crops (a permissive detector's finds first) on which faces "
                   "left visible are boxed by hand and downloaded as a --face-boxes CSV.")
@click.option("--review-limit", type=click.IntRange(1), default=None,
              help="At most N crops on the --review-faces sheet (the first N of its order).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes for masking and for ranking the --review-faces sheet.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def mask_cmd(pool_path: Path | None, pool_format: str, pattern: str | None, keypoints_dir: Path | None, out: Path,
             mask: str, mask_all_faces: bool, main_face_only: bool, outside_body: bool, verify: bool,
             verify_detector: str,
             face_boxes: Path | None, review_faces: Path | None, review_limit: int | None, workers: int,
             as_json: bool) -> None:
    """Stage 3 on its own: mask every face of a pool's crops, bystanders' included.

    The main person's face from the head keypoints (for a crop without keypoints OpenCV's Haar face detector; else a
    head prior: the top of the person's box, method "prior": check those crops); every other face that BlazeFace,
    MTCNN, YuNet or the person detector finds where a head is plausible (MTCNN with its weights installed, YuNet
    with the yuface wheel; a warning otherwise); then a closing verification on the masked crop. Writes the masked crops under OUT (paths relative to the folder that holds all
    the pool's crops, as .jpg) and OUT/masks.csv (source_path,path,face_masked,method,masks). Refused: an OUT that
    is the pool's image folder or inside it, and two crops that would get one name (a.jpg and a.png); rename one.
    --verify looks for plausible faces in the images under OUT outside the masks recorded there (masks.csv, or a
    split's face_masks.csv), lists them and exits 1 when there is any, or when OUT holds a file (not text) that is
    none of its crops; with --verify and no --pool it only checks the images already there (e.g. a split). With
    --mask-outside-body everything outside the main person's body below the shoulders is masked too.

    \b
    Examples:
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --mask pixelate --verify
      opreid-bench mask --verify --out split/
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --main-face-only
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --mask-outside-body
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --review-faces faces.html
      opreid-bench mask --pool pool/manifest.csv --keypoints ann/ --out masked/ --face-boxes face_boxes.csv
    """
    from opreid_bench.errors import OpreidError
    from opreid_bench.splits.pipeline import face_masking_warning, keypoints_warning, write_masked_pool

    spec = mask_spec(mask, main_face_only, outside_body)
    if review_limit is not None and review_faces is None:
        raise OpreidError("mask: --review-limit sets the length of the --review-faces sheet; give --review-faces too")
    if review_faces is not None:
        from opreid_bench.cli.options import refuse_output_over_input
        from opreid_bench.outputs import refuse_foreign_file
        from opreid_bench.splits.face_review import is_face_review_page

        refuse_output_over_input(review_faces, "--review-faces", {"pool": pool_path, "face boxes": face_boxes,
                                                                  "keypoints": keypoints_dir})
        refuse_foreign_file(review_faces, "mask", is_face_review_page, "--review-faces")
        if os.path.realpath(out) in (os.path.realpath(p) for p in Path(review_faces).absolute().parents):
            raise OpreidError(f"--review-faces {review_faces} lies inside --out {out}, which holds the masked crops "
                              "and masks.csv: write the sheet elsewhere")
        from opreid_bench.outputs import published_folder_above

        if (published := published_folder_above(review_faces)) is not None:
            raise OpreidError(f"--review-faces {review_faces} lies inside {published}, a split or masked folder, "
                              "which is published as it is: write the sheet elsewhere")
    result: dict[str, Any] = {"out": str(out)}
    if pool_path is not None:
        pool = _load_pool(pool_path, pool_format, pattern)
        if not pool:
            raise OpreidError(f"{pool_path}: the pool has no crops")
        kps = {}
        if keypoints_dir is not None:
            from opreid_bench.splits.pipeline import keypoints_for_pool

            kps = keypoints_for_pool([r.path for r in pool], keypoints_dir)
        table = write_masked_pool(pool, pool_path, out, keypoints=kps, mask=spec or mask, workers=workers,
                                  face_boxes=face_boxes)
        result.update(crops=len(table), faces_masked=int(table["face_masked"].sum()),
                      methods={k: int(v) for k, v in table["method"].value_counts().sort_index().items()})
        click.echo(f"masked {result['faces_masked']:,} of {len(table):,} crops {result['methods']}; wrote "
                   f"{out / 'masks.csv'}", err=True)
        if (warning := keypoints_warning(len(table), len(kps) if keypoints_dir is not None else None,
                                         keypoints_dir)):
            click.echo(f"warning: {warning}", err=True)
        if not main_face_only and (warning := face_masking_warning(mask)):
            click.echo(f"warning: {warning}", err=True)
        if review_faces is not None:
            from opreid_bench.splits.face_review import write_face_review_html

            sheet = write_face_review_html(table, out, review_faces, keypoints=kps, limit=review_limit,
                                           workers=workers)
            result["review_faces"] = str(sheet)
            click.echo(f"face review sheet: {sheet}", err=True)
    elif not verify:
        raise OpreidError("mask: give --pool (to mask) and/or --verify (to check the images under --out)")
    elif face_boxes is not None or review_faces is not None:
        raise OpreidError("mask: --face-boxes and --review-faces need --pool (the crops to mask)")
    if verify:
        from opreid_bench.splits.face_detect import verify_faces

        detector = "mediapipe" if verify_detector == "auto" else verify_detector
        found = verify_faces(out, detector=detector)
        result.update(verified=found["checked"], faces_found=len(found["faces"]), faces=found["faces"][:100],
                      unlisted=found["unlisted"][:100], unlisted_found=len(found["unlisted"]))
        _verify_table(found)
    if as_json:
        click.echo(json.dumps(result))
    if verify and (result["faces_found"] or result["unlisted_found"]):
        raise SystemExit(1)


def _verify_table(found: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    console.print(f"verify ({found.get('detector', 'haar')}): {found['checked']:,} crops checked, "
                  f"{len(found['faces']):,} with a plausible face the detectors still find (faces they miss while "
                  "masking they mostly miss here too: look at the crops)")
    if found["faces"]:
        table = Table(title="faces still found (first 20)")
        table.add_column("path")
        table.add_column("boxes")
        for item in found["faces"][:20]:
            table.add_row(item["path"], str(item["boxes"]))
        console.print(table)
    if found.get("unlisted"):
        console.print(f"not checked: {len(found['unlisted']):,} file(s) in the folder that are none of its crops and "
                      f"not plain text (e.g. {found['unlisted'][0]}); they would be published with it: move them out")


@click.command("sample")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="labels.csv from `classify` (source_path,occluded,...).")
@_pool_options()
@click.option("--protocol", "protocol_path", required=True, help="Split protocol YAML or a bare protocol name.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (Market-style).")
@click.option("--seed", type=click.IntRange(min=0), required=True)
@click.option("--keypoints", "keypoints_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="keypoints.h5 or its folder: face boxes for masking, copied to OUT/keypoints.h5.")
@click.option("--mask", type=click.Choice([*MASK_CHOICES, "none"]), default="blur", show_default=True,
              help="Face mask (none: copy crops unmasked, e.g. when the pool is already masked).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option("--dry-run", is_flag=True, help="Sample and write only OUT/split.csv, no images.")
@click.option("--unstable", type=click.Choice(["keep", "exclude"]), default="keep", show_default=True,
              help=UNSTABLE_HELP)
@click.option("--face-boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=FACE_BOXES_HELP)
@click.option("--main-face-only", is_flag=True,
              help="Mask the main person's face only, not bystanders' (the data card then carries a warning).")
@click.option("--mask-outside-body", "outside_body", is_flag=True, help=OUTSIDE_BODY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def sample_cmd(labels_path: Path, pool_path: Path, pool_format: str, pattern: str | None, protocol_path: str, out: Path,
               seed: int, keypoints_dir: Path | None, mask: str, workers: int, dry_run: bool, unstable: str,
               face_boxes: Path | None, main_face_only: bool, outside_body: bool, as_json: bool) -> None:
    """Stage 4 on its own: sample query/gallery/train from labelled crops by a protocol and write the split.

    Joins LABELS (source_path, occluded, ...) with the pool's pid and camid, samples by the protocol (same seed,
    same split), writes OUT/split.csv (every chosen crop with its split and role) and, unless --dry-run, the
    Market-style folder with manifest.csv, DATA_CARD.md and occlusion_stats.png, exactly as build-split does.

    \b
    Examples:
      opreid-bench classify --keypoints ann/ --out labels.csv
      opreid-bench sample --labels labels.csv --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --keypoints ann/
      opreid-bench sample --labels labels.csv --pool pool/manifest.csv --protocol opreid-mini --out split --seed 0 \\
          --keypoints ann/ --face-boxes face_boxes.csv
      opreid-bench sample --labels labels.csv --pool pool/manifest.csv --protocol my_pairs.yaml --out split \\
          --seed 0 --keypoints ann/ --unstable exclude
    """
    from opreid_bench.errors import DataError
    from opreid_bench.splits.pipeline import face_masking_warning, sample_from_labels
    from opreid_bench.splits.protocol import load_protocol
    from opreid_bench.splits.sample import cross_camera_warning

    if face_boxes is not None and mask == "none":
        raise DataError(f"{face_boxes}: --face-boxes masks faces, but --mask none copies the crops unmasked")
    spec = mask_spec(None if mask == "none" else mask, main_face_only, outside_body)
    protocol = load_protocol(protocol_path)
    pool = _load_pool(pool_path, pool_format, pattern)
    result = sample_from_labels(labels_path, pool, protocol, out, seed, pool_path=pool_path, unstable=unstable,
                                keypoints=keypoints_dir, mask=spec, workers=workers,
                                dry_run=dry_run, face_boxes=face_boxes)
    info = result.to_json()
    if result.unlabelled:
        click.echo(f"warning: {result.unlabelled:,} crops of the pool have no label in {labels_path}; they are left "
                   "out of the split", err=True)
    if result.set_aside_unstable is not None:
        click.echo(f"left out {result.set_aside_unstable:,} crops with an unstable label (--unstable exclude)",
                   err=True)
    if (warning := cross_camera_warning(result.cross_camera)) is not None:
        click.echo(f"warning: {warning}", err=True)
    _summary_table(result.summary, f"{protocol.name} split in {out} (seed {seed})")
    if result.written is not None:
        click.echo(_faces_line(result.written), err=True)
    if result.written is not None and (warning := face_masking_warning(spec)):
        click.echo(f"warning: {warning} (The data card says so too.)", err=True)
    if as_json:
        click.echo(json.dumps(info))
    sys.stderr.flush()


def _faces_line(written: Any) -> str:
    """``faces masked on N of M crops (method count, ...)`` from a written split's manifest rows."""
    counts = written["mask_method"].value_counts().sort_index()
    methods = ", ".join(f"{k} {int(v):,}" for k, v in counts.items())
    return f"faces masked on {int(written['face_masked'].sum()):,} of {len(written):,} crops ({methods})"


COMMANDS = [build_split_cmd, mask_cmd, sample_cmd]
