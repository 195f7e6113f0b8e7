"""How well does the occluded/holistic rule find real occlusion? Partial-REID as ground truth.

Positives: the 300 crops of ``occluded_body_images`` (people behind objects and other people); negatives: the 300
crops of the same 60 people in ``whole_body_images``. Runs a pose backend (default: mediapipe) over all 600 with the
annotate stage, labels them with the classify stage, and prints precision, recall and balanced accuracy of the
``occluded`` label, and pose crops per second. ``--sweep`` also prints a table over thresholds, run lengths and
chain presets (on the same keypoints), which is how the defaults were tuned.

\b
Examples:
  python benchmarks/bench_occlusion.py
  python benchmarks/bench_occlusion.py --json
  python benchmarks/bench_occlusion.py --sweep --cache /tmp/occ_kp
  python benchmarks/bench_occlusion.py --pose mediapipe:pad=0.5 --workers 2
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "partial_reid"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp"}


def scores(truth: list[bool], pred: list[bool]) -> dict[str, float]:
    """Precision, recall and balanced accuracy of ``pred`` against ``truth`` (True = occluded)."""
    tp = sum(t and p for t, p in zip(truth, pred, strict=True))
    fp = sum((not t) and p for t, p in zip(truth, pred, strict=True))
    fn = sum(t and not p for t, p in zip(truth, pred, strict=True))
    tn = sum((not t) and not p for t, p in zip(truth, pred, strict=True))
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": recall,
        "balanced_accuracy": (recall + specificity) / 2,
    }


def list_crops(root: Path) -> tuple[list[str], dict[str, bool]]:
    """All image files of the two folders and their ground truth (True = occluded)."""
    truth: dict[str, bool] = {}
    for folder, occluded in (("occluded_body_images", True), ("whole_body_images", False)):
        d = root / folder
        if not d.is_dir():
            raise click.ClickException(f"{d}: folder not found (is --root a Partial-REID release?)")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_EXT:
                truth[str(p)] = occluded
    return list(truth), truth


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True)
@click.option("--pose", "pose_spec", default="mediapipe", show_default=True, help="pose backend spec")
@click.option("--workers", default=1, show_default=True, help="pose worker processes")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help="keep keypoints here (reused next run)")
@click.option("--threshold", type=float, default=None, help="score threshold (default: the classify default)")
@click.option("--min-missing-run", type=int, default=None, help="run length (default: 3)")
@click.option("--chains", default=None, help="chain preset: body, limbs, coco_order (default: body)")
@click.option("--sweep", is_flag=True, help="also print a table over thresholds, run lengths and chain presets")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
def main(
    root: Path,
    pose_spec: str,
    workers: int,
    cache: Path | None,
    threshold: float | None,
    min_missing_run: int | None,
    chains: str | None,
    sweep: bool,
    as_json: bool,
) -> None:
    """Precision/recall/balanced accuracy of the occluded label on Partial-REID, and pose crops/s."""
    from rich.console import Console
    from rich.table import Table

    from opreid_bench.splits.annotate import annotate_pool, read_report
    from opreid_bench.splits.cache import read_keypoints
    from opreid_bench.splits.classify import (
        CHAIN_PRESETS,
        DEFAULT_CHAINS,
        DEFAULT_MIN_MISSING_RUN,
        DEFAULT_SCORE_THRESHOLD,
        OcclusionRule,
        classify_keypoints,
    )

    console = Console(stderr=as_json, width=140)
    paths, truth = list_crops(root)
    with tempfile.TemporaryDirectory(prefix="bench_occlusion_") as tmp:
        out_dir = cache or Path(tmp)
        annotate_pool(paths, out_dir, backend=pose_spec, workers=workers, progress=not as_json)
        report = read_report(out_dir)
        kps = read_keypoints(out_dir)
    missing = [p for p in paths if p not in kps]
    if missing:
        console.print(f"[yellow]{len(missing)} crop(s) got no keypoints and count as occluded: {missing[:3]}")
    y = [truth[p] for p in paths]

    def evaluate(rule: OcclusionRule) -> dict[str, float]:
        pred = [classify_keypoints(kps[p], rule).occluded if p in kps else True for p in paths]
        return scores(y, pred)

    rule = OcclusionRule(
        score_threshold=DEFAULT_SCORE_THRESHOLD if threshold is None else threshold,
        min_missing_run=DEFAULT_MIN_MISSING_RUN if min_missing_run is None else min_missing_run,
        chains=chains or DEFAULT_CHAINS,
    )
    result = evaluate(rule)
    result["crops_per_s"] = report.get("crops_per_s")

    if sweep:
        table = Table(title=f"occlusion rule sweep ({report['backend']})")
        for col in ("chains", "threshold", "min run", "precision", "recall", "balanced acc."):
            table.add_column(col, justify="right")
        best = None
        for preset in CHAIN_PRESETS:
            for thr in (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97):
                for run in (2, 3, 4):
                    r = evaluate(OcclusionRule(score_threshold=thr, min_missing_run=run, chains=preset))
                    if best is None or r["balanced_accuracy"] > best[0]:
                        best = (r["balanced_accuracy"], preset, thr, run)
                    table.add_row(
                        preset, f"{thr:.2f}", str(run), f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                        f"{r['balanced_accuracy']:.3f}",
                    )
        console.print(table)
        if best is not None:
            console.print(f"best: chains={best[1]} threshold={best[2]} min run={best[3]} -> balanced acc. {best[0]:.3f}")

    table = Table(title="occluded label on Partial-REID (300 occluded vs 300 whole-body crops)")
    for col in ("backend", "chains", "threshold", "min run", "precision", "recall", "balanced acc.", "crops/s"):
        table.add_column(col, justify="right")
    cps = result["crops_per_s"]
    table.add_row(
        report["backend"], str(rule.chains), f"{rule.score_threshold:.2f}", str(rule.min_missing_run),
        f"{result['precision']:.3f}", f"{result['recall']:.3f}", f"{result['balanced_accuracy']:.3f}",
        f"{cps:.1f}" if cps else "cached",
    )
    console.print(table)
    if as_json:
        print(json.dumps({k: result[k] for k in ("precision", "recall", "balanced_accuracy", "crops_per_s")}))


if __name__ == "__main__":
    sys.exit(main())
