"""build-split stages 1-2 on their own: `annotate` (pose keypoints -> keypoints.h5) and `classify` (labels.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opreid_bench.cli.options import FLIP_THRESHOLD_HELP, SUPPORT_THRESHOLD_HELP, flip_kwargs, support_kwargs


def _skipped_from_pool(pool) -> list[dict[str, str]]:  # pool: opreid_bench.data.datasets.Pool
    out = []
    for s in getattr(pool, "skipped", []):
        path, _, reason = str(s).rpartition(": ")
        out.append({"source_path": path or str(s), "reason": reason or "skipped by the pool loader"})
    return out


@click.command("annotate")
@click.option("--pool", "pool_path", type=click.Path(path_type=Path), required=True,
              help="Manifest CSV/parquet, image folder, or dataset root.")
@click.option("--pool-format", default="manifest", show_default=True,
              help="manifest, folder, or a dataset name (see `opreid-bench datasets list`).")
@click.option("--pattern", default=None, help="Regex with named groups pid and camid (folder format).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for keypoints.h5 and annotate_report.json (a rerun resumes).")
@click.option("--pose", default="mediapipe", show_default=True,
              help="mediapipe[:pad=0.25,conf=0.5,seg=1,people=1,flip=0] | precomputed:FILE | mmpose:CONFIG,CHECKPOINT "
                   "(flip=1: also the mirror image, for the mirror-consistency signal).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes (local) or actors (ray), one pose model each.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Crops per flushed batch (and per Ray batch).")
@click.option("--limit", type=click.IntRange(0), default=None, help="Stop after N newly annotated crops.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object on stdout.")
def annotate(pool_path: Path, pool_format: str, pattern: str | None, out_dir: Path, pose: str, workers: int,
             engine: str, batch_size: int, limit: int | None, as_json: bool) -> None:
    """Stage 1 of build-split: COCO-17 pose keypoints for every crop of a pool, cached in OUT/keypoints.h5.

    Keypoints are keyed by content (the crop's bytes, the keypoint file's content or the installed model's version,
    and the options), never by how a path is spelled, and flushed in batches: a killed run resumes where it stopped
    and a rerun only annotates new or changed crops. OUT is locked while a run works in it. Unreadable or non-image files are skipped and listed in
    OUT/annotate_report.json.

    \b
    Examples:
      opreid-bench annotate --pool pool/manifest.csv --out ann/
      opreid-bench annotate --pool crops/ --pool-format folder --pattern '(?P<pid>\\d+)_c(?P<camid>\\d+)' \\
          --out ann/ --workers 4
      opreid-bench annotate --pool pool/manifest.csv --out ann/ --pose precomputed:openpose_json/
      opreid-bench annotate --pool pool/manifest.csv --out ann/ --engine ray --workers 8
      opreid-bench annotate --pool pool/manifest.csv --out ann/ --pose mediapipe:flip=1
    """
    from rich.console import Console
    from rich.table import Table

    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.data.datasets import load_pool
    from opreid_bench.splits.annotate import REPORT_NAME, annotate_pool, read_report

    pool = load_pool(pool_path, pool_format, pattern=pattern)
    if not pool:
        from opreid_bench.errors import DataError

        why = f" ({len(pool.skipped):,} file(s) left out, e.g. {pool.skipped[0]})" if pool.skipped else ""
        raise DataError(f"{pool_path}: the pool has no crops{why}")
    annotate_pool(list(pool), out_dir, backend=pose, workers=workers, engine=engine, batch_size=batch_size,
                  limit=limit, progress=not as_json)
    report = read_report(out_dir)
    loader_skipped = _skipped_from_pool(pool)
    if loader_skipped:
        report["skipped"] = sorted(report["skipped"] + loader_skipped, key=lambda s: s["source_path"])
        atomic_write_text(out_dir / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    table = Table(title=f"annotate: {out_dir}")
    for col in ("crops", "annotated", "cached", "no person", "skipped", "crops/s", "complete"):
        table.add_column(col, justify="right")
    cps = report["crops_per_s"]
    table.add_row(str(report["total"]), str(report["annotated"]), str(report["cached"]),
                  str(report["no_person_detected"]), str(len(report["skipped"])), f"{cps:.1f}" if cps else "-",
                  "yes" if report["complete"] else "no (run again to resume)")
    Console(stderr=True).print(table)
    if as_json:
        click.echo(json.dumps(report))


@click.command("classify")
@click.option("--keypoints", "keypoints_path", type=click.Path(path_type=Path), required=True,
              help="An annotate folder or its keypoints.h5.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="labels.csv to write.")
@click.option("--support-threshold", "support", default=None, help=SUPPORT_THRESHOLD_HELP)
@click.option("--flip-threshold", "flip", default=None, help=FLIP_THRESHOLD_HELP)
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Keypoint score below which it is missing [default: the classifier's, chosen by cross-validation "
                   "for mediapipe].")
@click.option("--min-missing-run", type=click.IntRange(1), default=None,
              help="Sequential missing keypoints that make a crop occluded [default: 3, the paper's].")
@click.option("--chains", type=click.Choice(["body", "anatomical", "limbs", "coco_order"]), default=None,
              help="What 'sequential' follows (see the classify module docs) [default: the classifier's].")
@click.option("--undetermined", type=click.Choice(["exclude", "occluded", "holistic"]), default="exclude",
              show_default=True, help="Crops where no person was found: keep undetermined (left out of sampling) or "
                                      "label them all occluded/holistic.")
@click.option("--corrections", type=click.Path(path_type=Path), default=None,
              help="CSV source_path,occluded of hand-checked labels that override the rule.")
@click.option("--review", type=click.Path(path_type=Path), default=None,
              help="Write a self-contained HTML contact sheet (crops + keypoints, in --review-order).")
@click.option("--review-masks", type=click.Choice(["blur", "pixelate", "fill"]), default=None,
              help="Also show each crop face-masked on the review sheet (and how the face was found).")
@click.option("--review-order", type=click.Choice(["stability", "label"]), default="stability", show_default=True,
              help="stability: one list, undetermined crops first, then the least stable label first (where the "
                   "rule's errors gather); label: grouped by label, in path order.")
@click.option("--review-limit", type=click.IntRange(1), default=None,
              help="At most N crops on the sheet: the first N of the review order (--review-order stability), or a "
                   "seeded random sample of N per label (--review-order label).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the review sample (--review-order label).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON object on stdout.")
def classify(keypoints_path: Path, out: Path, support: str | None, flip: str | None, threshold: float | None,
             min_missing_run: int | None,
             chains: str | None, undetermined: str, corrections: Path | None, review: Path | None,
             review_masks: str | None, review_order: str, review_limit: int | None, seed: int,
             as_json: bool) -> None:
    """Stage 2 of build-split: occluded or holistic per crop, from its keypoints (the paper's rule).

    A crop is occluded when at least --min-missing-run (3) sequential keypoints along a body chain are missing: a
    score below --threshold, outside the crop, or (when the backend measured it) person-segmentation support below
    --support-threshold, placed beyond the border or behind another person by the person detector, or moved more
    than --flip-threshold between the crop and its mirror image; a crop where no person was found is undetermined. Writes OUT with columns
    source_path,occluded,label,missing_keypoints,longest_missing_run,visible_fraction,missing_run,back_view,
    label_stability (the share of the threshold settings that give the same label; below 0.75 the label is
    unstable), label_source (rule, hand for a correction, policy for --undetermined). With --review, also
    REVIEW.corrections.csv: every crop with its label, undetermined first and then from the least stable label up,
    to edit and pass back as --corrections.

    \b
    Examples:
      opreid-bench classify --keypoints ann/ --out labels.csv --review review.html
      opreid-bench classify --keypoints ann/ --out labels.csv --review review.html --review-limit 200
      opreid-bench classify --keypoints ann/ --out labels.csv --review audit.html --review-order label \\
          --review-limit 50
      opreid-bench classify --keypoints ann/ --out labels.csv --corrections checked.csv
      opreid-bench classify --keypoints ann/keypoints.h5 --out labels.csv --threshold 0.5 --json
      opreid-bench classify --keypoints ann/ --out labels.csv --flip-threshold 0.08
    """
    from rich.console import Console
    from rich.table import Table

    from opreid_bench.splits.classify import (
        DEFAULT_CHAINS,
        DEFAULT_MIN_MISSING_RUN,
        DEFAULT_SCORE_THRESHOLD,
        UNSTABLE_BELOW,
        OcclusionRule,
        classify_store,
        label_reliability,
        write_labels,
    )
    from opreid_bench.splits.review import (
        refuse_classify_outputs,
        refuse_to_lose_verdicts,
        write_corrections_template,
        write_review_html,
    )

    rule = OcclusionRule(
        score_threshold=DEFAULT_SCORE_THRESHOLD if threshold is None else threshold,
        min_missing_run=DEFAULT_MIN_MISSING_RUN if min_missing_run is None else min_missing_run,
        chains=chains or DEFAULT_CHAINS,
        **support_kwargs(support),
        **flip_kwargs(flip),
    )
    template = review.with_name(review.stem + ".corrections.csv") if review is not None else None
    refuse_classify_outputs(out, review, template, {"--keypoints": keypoints_path, "--corrections": corrections})
    labels = classify_store(keypoints_path, rule, corrections, undetermined)
    if template is not None:
        refuse_to_lose_verdicts(template, labels, previous=out)
    write_labels(labels, out)
    if review is not None and template is not None:
        from opreid_bench.splits.cache import read_keypoints

        write_review_html(labels, read_keypoints(keypoints_path), review, rule, limit_per_group=review_limit,
                          seed=seed, masks=review_masks, order=review_order)
        write_corrections_template(labels, template, order=review_order, limit=review_limit, seed=seed)
    n = len(labels)
    trust = label_reliability(labels)
    occ = int(labels["occluded"].sum())
    und = int(labels.attrs.get("undetermined", 0))
    summary = {
        "labels": str(out),
        "crops": n,
        "occluded": occ,
        "holistic": n - occ - und,
        "undetermined": und,
        "occluded_share": round(occ / (n - und), 4) if n > und else 0.0,  # of the crops with a label
        "corrected": int(labels.attrs.get("corrected", 0)),
        "checked_by_hand": trust["checked_by_hand"],
        "unstable": trust["unstable"],
        "score_threshold": rule.score_threshold,
        "support_threshold": rule.support_threshold,
        "flip_threshold": rule.flip_threshold,
        "min_missing_run": rule.min_missing_run,
        "chains": rule.chains,
        "review": str(review) if review is not None else None,
    }
    table = Table(title=f"classify: {out}")
    table.add_column("labels")
    table.add_column("", justify="right")
    for name, value in (("crops", n), ("occluded", occ), ("holistic", n - occ - und), ("undetermined", und),
                        ("occluded share (of labelled)", f"{summary['occluded_share']:.1%}"),
                        ("corrected by hand", summary["corrected"]), ("checked by hand", trust["checked_by_hand"]),
                        (f"unstable (stability < {UNSTABLE_BELOW:g}), not checked", trust["unstable"]),
                        ("score threshold", f"{rule.score_threshold:g}"), ("min missing run", rule.min_missing_run)):
        table.add_row(name, str(value))
    Console(stderr=True).print(table)
    if as_json:
        click.echo(json.dumps(summary))


COMMANDS = [annotate, classify]
