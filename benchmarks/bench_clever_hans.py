"""Clever Hans gap of controls and trained models: mAP(same) - mAP(different) with a paired bootstrap 95% CI.

Builds the two Clever Hans sets (``opreid_bench.synth.clever_hans``: per query identity one occluder geometry, the
same in both sets; only the appearance of the true matches' occluder differs) and scores every matcher on both:

- ``colour histogram``: HSV histograms of 6 horizontal stripes, cosine distance. It sees the occluder's colour, so a
  positive gap is expected: it shows the sets do separate an appearance matcher.
- ``colour histogram of the visible person``: the same on the pixels of the person's ground-truth silhouette that
  the occluder leaves visible: a matcher that sees only the person. By design its gap is ~0 (only JPEG blocks and
  camera blur carry occluder colour onto neighbouring pixels).
- ``ImageNet MobileNetV2``: the ImageNet checkpoint (``--imagenet``), never trained for ReID, global average-pooled
  features: a general-appearance control.
- every ``--weights model.pt``: a trained model's inference features and distance.

The gap is measured on the same queries in both sets (the queries are byte-identical), and the CI resamples queries
(``paired_difference_ci``). A gap cannot exceed mAP(same), so ``retained`` = mAP(different) / mAP(same) is printed
too: how much of its score a matcher keeps when the occluder changes its look. Before scoring, the sets are checked: the occluder mask of every crop equals its
counterpart's in the other set, queries and distractors are byte-identical, the true matches' appearance differs.

Usage:
  python benchmarks/bench_clever_hans.py                                  # 100 query ids, controls only
  python benchmarks/bench_clever_hans.py --weights demo/runs/ours/model.pt --weights demo/runs/baseline/model.pt
  python benchmarks/bench_clever_hans.py --json --plot gap.png
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGENET = REPO.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"


def check_design(sets: dict[str, Path]) -> dict[str, Any]:
    """What the design promises, read back from the written sets (occluders.csv and the JPEG bytes)."""
    from opreid_bench.synth.clever_hans import read_occluders

    rows = {v: read_occluders(p) for v, p in sets.items()}
    same, diff = rows["same"], rows["different"]
    masks_equal = same.keys() == diff.keys() and all(same[k]["mask"] == diff[k]["mask"] for k in same)
    identical = changed = 0
    for key, row in same.items():
        if row["role"] == "match":
            changed += row["appearance"] != diff[key]["appearance"]
        else:
            a, b = ((sets[v] / key).read_bytes() for v in ("same", "different"))
            identical += hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    matches = sum(r["role"] == "match" for r in same.values())
    return {"crops_per_set": len(same), "occluder_masks_identical": bool(masks_equal),
            "queries_and_distractors_byte_identical": identical == len(same) - matches,
            "matches_with_other_appearance": f"{changed}/{matches}"}


def person_only_masks(cfg: Any, root: Path) -> dict[str, Any]:
    """Per crop of both sets (keyed by resolved absolute path) the pixels that are NOT the visible person: the
    complement of the ground-truth silhouette minus the occluder mask (crops re-rendered from the plan)."""
    from opreid_bench.synth.clever_hans import plan_clever_hans, render_spec

    masks: dict[str, Any] = {}
    for variant, specs in plan_clever_hans(cfg).items():
        for spec in specs:
            crop = render_spec(spec, cfg)
            visible = crop.person_mask if crop.occluder_mask is None else crop.person_mask & ~crop.occluder_mask
            masks[str((root / variant / spec.path).resolve())] = ~visible
    return masks


def plot_gaps(results: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars of each matcher's gap (mAP points) with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opreid_bench.atomic import atomic_path

    scored = [r for r in results if "gap" in r]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(scored) + 1.4))
    ys = range(len(scored))
    gaps = [100 * r["gap"] for r in scored]
    err = [[100 * (r["gap"] - r["ci95"][0]) for r in scored], [100 * (r["ci95"][1] - r["gap"]) for r in scored]]
    ax.barh(list(ys), gaps, xerr=err, color=["tab:gray" if r["kind"] == "control" else "tab:blue" for r in scored],
            capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([r["name"] for r in scored], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("gap = mAP(same) - mAP(different), points, 95% CI")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


@click.command(help=(__doc__ or "").split("\n")[0])
@click.option("--ids", type=click.IntRange(2), default=100, show_default=True, help="Query identities.")
@click.option("--distractors", type=click.IntRange(0), default=100, show_default=True,
              help="Distractor identities (2 gallery crops each).")
@click.option("--size", type=(int, int), default=(128, 256), show_default=True, help="Crop width and height.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", "weights", multiple=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="A trained model.pt to score (repeatable).")
@click.option("--imagenet", type=click.Path(path_type=Path), default=DEFAULT_IMAGENET, show_default=True,
              help="ImageNet MobileNetV2 checkpoint for the general-appearance control (skipped when absent).")
@click.option("--resamples", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the sets (default: a temporary folder, removed afterwards).")
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="Write a bar plot of the gaps here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def main(ids: int, distractors: int, size: tuple[int, int], seed: int, weights: tuple[Path, ...], imagenet: Path,
         resamples: int, threads: int, out: Path | None, plot: Path | None, as_json: bool) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.clever_hans import (
        checkpoint_matcher,
        color_histogram_matcher,
        evaluate_clever_hans,
        imagenet_matcher,
    )
    from opreid_bench.synth.clever_hans import CleverHansConfig, build_clever_hans

    torch.set_num_threads(threads)
    err = Console(stderr=True)
    cfg = CleverHansConfig(num_ids=ids, distractor_ids=distractors, width=size[0], height=size[1], seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench_clever_hans_") as tmp:
        root = out or Path(tmp) / "clever_hans"
        t0 = time.perf_counter()
        with err.status(f"building the Clever Hans sets ({ids} query ids, {distractors} distractor ids)"):
            paths = build_clever_hans(root, cfg)
        build_s = time.perf_counter() - t0
        design = check_design(paths)
        sets = {v: load_dataset("market1501", p) for v, p in paths.items()}
        with err.status("ground-truth person masks"):
            masks = person_only_masks(cfg, root)

        matchers: list[tuple[str, str | None, Any]] = [  # (kind, weights file, how to build the matcher)
            ("control", None, lambda: color_histogram_matcher(name="colour histogram (whole crop)")),
            ("control", None, lambda: color_histogram_matcher(masks=masks, name="colour histogram, visible person "
                                                                                "only (true mask)")),
        ]
        results: list[dict[str, Any]] = []
        if Path(imagenet).is_file():
            matchers.append(("control", str(imagenet),
                             lambda: imagenet_matcher(imagenet, name="ImageNet MobileNetV2, no ReID training")))
        else:
            results.append({"name": "ImageNet MobileNetV2, no ReID training", "kind": "control",
                            "skipped": f"{imagenet} not found"})
        for w in weights:
            matchers.append(("model", str(w), lambda w=w: checkpoint_matcher(w, name=f"{w.parent.name}/{w.name}")))
        for kind, source, make in matchers:
            t = time.perf_counter()
            matcher = make()
            with err.status(f"scoring {matcher.name}"):
                res = evaluate_clever_hans(matcher, sets, resamples=resamples, seed=seed)
            g = res["gap"]
            retained = g["mAP_different"] / g["mAP_same"] if g["mAP_same"] > 0 else None
            results.append({"name": matcher.name, "kind": kind, "weights": source, **g, "retained": retained,
                            "rank1_same": res["same"]["rank1"], "rank1_different": res["different"]["rank1"],
                            "seconds": round(time.perf_counter() - t, 2)})
    if plot is not None:
        plot_gaps(results, plot)
    summary = {"config": {"ids": ids, "distractors": distractors, "size": list(size), "seed": seed,
                          "design": cfg.design, "junk": "market", "resamples": resamples, "threads": threads},
               "design_check": design, "build_seconds": round(build_s, 2), "matchers": results}
    if as_json:
        click.echo(json.dumps(summary))
        return
    t = Table(title=f"Clever Hans gap, {ids} query ids + {distractors} distractor ids, {size[0]}x{size[1]}, seed "
                    f"{seed} (mAP %, paired bootstrap over queries, {resamples} resamples)", title_justify="left")
    for col in ("matcher", "kind", "mAP same", "mAP different", "different/same", "gap", "95% CI", "s"):
        t.add_column(col, justify="left" if col in ("matcher", "kind") else "right")
    for r in results:
        if "skipped" in r:
            t.add_row(r["name"], r["kind"], "-", "-", "-", "-", f"skipped: {r['skipped']}", "-")
            continue
        t.add_row(r["name"], r["kind"], f"{100 * r['mAP_same']:.1f}", f"{100 * r['mAP_different']:.1f}",
                  "-" if r["retained"] is None else f"{r['retained']:.2f}",
                  f"{100 * r['gap']:+.1f}", f"[{100 * r['ci95'][0]:+.1f}, {100 * r['ci95'][1]:+.1f}]",
                  f"{r['seconds']:.1f}")
    console = Console(width=max(Console().width, 130))
    console.print(t)
    console.print(f"design check: {design}; sets built in {build_s:.1f} s")
    if plot is not None:
        console.print(f"plot: {plot}")


if __name__ == "__main__":
    main()
