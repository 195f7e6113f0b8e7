"""Are all faces masked, bystanders' included, and do the masks stay on heads? Measured on hand-boxed crops.

Ground truth: ``benchmarks/labels/faces_heads.csv`` (how it was made: ``benchmarks/labels/README.md``): crowded
crops from GRID and Partial-REID that show other people, plus a few with nobody else, with a box around every head in
the crop (the main person's and everyone else's) and whether its face (eyes, nose or mouth) can be seen.

Each crop goes through the pose stage (``annotate`` with ``--pose``, cached under ``--cache``) and the default
masking of ``build-split`` and ``mask`` (``opreid_bench.splits.mask.mask_face_detailed`` with its defaults, the
closing verification included). Then:

- ``faces_left_visible``: hand-boxed heads with a visible face whose box is less than ``COVERED`` (half) covered by
  the union of the masks. The goal is 0: every face masked. The head box runs from the hair to the chin, so a mask
  that covers the face but not the hair of a large head counts as a face left visible here;
  ``faces_left_visible_face_region`` asks the same of the lower two thirds of the head box (the face), and
  ``left_visible_by_person`` splits the count into the main person's faces and other people's.
- ``masks_off_head_share``: the share of crops with at least one mask of which less than ``ON_HEAD`` of the area
  falls on a hand-boxed head (grown by a quarter on each side: the hand boxes are tight, masks generous). A mask on a
  bag or a sleeve costs the benchmark the appearance it measures; the goal is at most 2 % of crops.
- ``masked_by``: how many masks each source placed (``MaskResult.kinds``); ``face_sources``: the detectors that ran
  (MTCNN only with its weights installed); ``masked_area_share``: the mean share of a crop's pixels under a mask.
- ``outside_body`` (``--outside-body-too``): the same crops masked with ``--mask-outside-body`` (every face, and
  everything outside the main person's body below the shoulders), in the same run; its masks of kind ``outside``
  cover background by design, so they are left out of its masks off heads and counted in its ``masked_area_share``;
  ``kept_width_share``: the share of a crop's width left as it is below the shoulders (median, min, and the crops
  where it is below half).
- ``main_body_masked`` (``--bodies FILE``): with a hand-drawn box around the main person's body from the shoulders
  down (arms and what they carry included; ``benchmarks/labels/README.md``), the share of that box under the masks
  of each crop: mean, median, max, and the crops where more than ``BODY_LOST`` (a tenth) of it is masked. What a
  masking costs the appearance a ReID model learns from, measured directly rather than as kept width.
- ``review``: where the crops with a face left visible fall in the order of the face review sheet (``mask
  --review-faces``), which ranks the masked crops by a permissive detector's best score outside the masks: how many
  lie within its first 10%, 25% and 50%, against a random order's expectation (the masked crops in memory, not
  re-read from JPEG as the sheet does).
- ``masking_ms_per_crop``: the masking's time per crop on one thread (pose stage excluded); with
  ``--without-mtcnn-too`` the same crops are masked again without MTCNN in the same run (``without_mtcnn``) and
  ``masking_time_ratio`` is default / without; with ``--without-yunet-too`` they are masked again without YuNet
  (``without_yunet``).
- ``review_ranking`` (``--review-speed N``): the face review sheet's ranking (``face_review.rank_crops``) of the
  first N PRID 2011 camera-B crops, read from disk, in one process and in two worker processes, in the same run:
  crops per second of each, their ratio, and whether both gave the same sizes, risks, boxes and crowd counts.
- ``haar_upper_half`` and ``haar_anywhere`` (``--haar-too``): the same crops masked, in the same run, with the Haar
  cascade also asked for the main face where the pose stage ran and placed no head (the masking asks it only for a
  crop without a pose result), its boxes taken in the upper half of the crop (``haar_upper_half``) or wherever the
  head gate finds them plausible (``haar_anywhere``): what asking the cascade there would change.

\\b
Examples:
  python benchmarks/bench_faces.py
  python benchmarks/bench_faces.py --json
  python benchmarks/bench_faces.py --without-mtcnn-too --labels benchmarks/labels/faces_heads_heldout.csv
  python benchmarks/bench_faces.py --without-yunet-too --labels benchmarks/labels/faces_heads_heldout8.csv \\
      --bodies benchmarks/labels/body_heldout8.csv
  python benchmarks/bench_faces.py --review-speed 400
  python benchmarks/bench_faces.py --outside-body-too --labels benchmarks/labels/faces_heads_heldout2.csv
  python benchmarks/bench_faces.py --outside-body-too --labels benchmarks/labels/faces_heads_heldout3.csv \\
      --bodies benchmarks/labels/body_heldout3.csv
  python benchmarks/bench_faces.py --haar-too --labels benchmarks/labels/faces_heads_heldout6.csv \\
      --bodies benchmarks/labels/body_heldout6.csv
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from opreid_bench.splits.all_faces import covered_share as coverage  # share of a box under the union of masks
from opreid_bench.splits.all_faces import face_sources
from opreid_bench.splits.mask import OUTSIDE_KIND
from opreid_bench.splits.mtcnn import WEIGHTS_ENV
from opreid_bench.splits.yunet import OFF_ENV as YUNET_OFF_ENV

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
LABELS = REPO / "benchmarks" / "labels" / "faces_heads.csv"
COVERED = 0.5  # share of a face's head box the masks must cover for the face to count as masked
ON_HEAD = 0.3  # share of a mask's area that must fall on some (grown) head box
GROW = 0.25  # each head box grown by this share of its size on every side for the on-head test
BODY_LOST = 0.1  # a crop whose main-body box is masked by more than this share is counted as losing body

Box = tuple[int, int, int, int]


def read_heads(path: Path) -> dict[str, list[tuple[Box, bool, str]]]:
    """file -> [(head box, face visible, main/other)] (a crop with no head visible maps to [])."""
    out: dict[str, list[tuple[Box, bool, str]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            heads = out.setdefault(row["file"], [])
            if row["person"] == "none" or not row["left"]:
                continue
            box = (int(row["left"]), int(row["top"]), int(row["right"]), int(row["bottom"]))
            heads.append((box, row["face_visible"] == "1", row["person"]))
    return out


def read_bodies(path: Path) -> dict[str, Box]:
    """file -> the hand-drawn box of the main person's body below the shoulders (rows without a box are skipped)."""
    out: dict[str, Box] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                if row["left"]:
                    box = (int(row["left"]), int(row["top"]), int(row["right"]), int(row["bottom"]))
                    if not (box[0] < box[2] and box[1] < box[3]):
                        raise ValueError("an empty box")
                    out[row["file"]] = box
            except (KeyError, TypeError, ValueError) as exc:
                raise click.ClickException(f"{path}, line {n}: expected file,left,top,right,bottom,note with a "
                                           f"non-empty box of whole pixels ({exc})") from None
    return out


def body_cost(results: dict, bodies: dict[str, Box]) -> dict[str, object] | None:  # type: ignore[type-arg]
    """How much of each hand-boxed main body the masks cover (``main_body_masked`` in the module's docstring)."""
    shares = {f: coverage(box, results[f].boxes) for f, box in bodies.items() if f in results}
    if not shares:
        return None
    values = list(shares.values())
    worst = sorted(shares, key=lambda f: -shares[f])[:5]
    return {"crops": len(values), "mean": round(float(np.mean(values)), 3),
            "median": round(float(np.median(values)), 3), "max": round(float(max(values)), 3),
            "crops_over": int(sum(v > BODY_LOST for v in values)), "over": BODY_LOST,
            "worst": [{"file": f, "masked": round(shares[f], 3)} for f in worst if shares[f] > 0]}


def on_head(mask: Box, heads: list[Box]) -> float:
    """Share of ``mask``'s area that falls on the union of the (grown) head boxes."""
    grown = []
    for b in heads:
        gw, gh = GROW * (b[2] - b[0]), GROW * (b[3] - b[1])
        grown.append((int(b[0] - gw), int(b[1] - gh), int(np.ceil(b[2] + gw)), int(np.ceil(b[3] + gh))))
    return coverage(mask, grown)


def evaluate(data_root: Path, cache: Path, pose: str, workers: int, progress: bool,
             labels: Path = LABELS, mtcnn: bool = True, yunet: bool = True, spec: str = "blur",
             bodies: Path | None = None) -> dict[str, object]:
    """Mask every labelled crop with the defaults (or the mask mode ``spec``) and score the masks against the
    hand-boxed heads (and the hand-boxed main bodies of ``bodies``); ``mtcnn=False`` masks without MTCNN
    (``OPREID_MTCNN_WEIGHTS=off``), ``yunet=False`` without YuNet (``OPREID_YUNET=off``)."""
    import os
    import time

    from PIL import Image

    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.cache import read_keypoints
    from opreid_bench.splits.mask import mask_face_detailed

    heads = read_heads(labels)
    body_boxes = read_bodies(bodies) if bodies else {}
    unknown = sorted(set(body_boxes) - set(heads))
    if unknown:
        raise click.ClickException(f"{bodies}: {unknown[0]} has a body box but no row in {labels}")
    paths = {f: str(data_root / f) for f in heads}
    missing = [p for p in paths.values() if not Path(p).is_file()]
    if missing:
        raise click.ClickException(f"{missing[0]}: listed in {labels} but not found")
    kp_dir = cache / ("kp_" + "".join(ch if ch.isalnum() else "_" for ch in pose))
    annotate_pool(sorted(paths.values()), kp_dir, backend=pose, workers=workers, progress=progress)
    kps = read_keypoints(kp_dir)
    kinds: Counter[str] = Counter()
    left_visible, off_head, face_region_left = [], [], 0
    n_faces = n_heads = 0
    saved = {name: os.environ.get(name) for name in (WEIGHTS_ENV, YUNET_OFF_ENV)}
    for name, on in ((WEIGHTS_ENV, mtcnn), (YUNET_OFF_ENV, yunet)):
        if not on:
            os.environ[name] = "off"
    seconds = 0.0
    results = {}
    try:
        sources = face_sources()
        for f in sorted(heads):
            with Image.open(paths[f]) as im:
                rgb = im.convert("RGB")
            start = time.perf_counter()
            results[f] = mask_face_detailed(rgb, kps.get(paths[f]), spec)
            seconds += time.perf_counter() - start
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    area, kept = [], []
    for f in sorted(heads):
        res = results[f]
        kinds.update(res.kinds)
        area.append(coverage((0, 0, *res.image.size), res.boxes))
        strips = [m for m, k in zip(res.boxes, res.kinds, strict=True) if k == OUTSIDE_KIND and m[1] > 0]
        if OUTSIDE_KIND in res.kinds:  # the share of the crop's width left as it is below the shoulders
            kept.append(1.0 - sum(m[2] - m[0] for m in strips) / res.image.size[0])
        boxes = [b for b, _, _ in heads[f]]
        n_heads += len(boxes)
        for box, face, who in heads[f]:
            if face:
                n_faces += 1
                cov = coverage(box, res.boxes)
                face = (box[0], box[1] + (box[3] - box[1]) // 3, box[2], box[3])
                face_region_left += coverage(face, res.boxes) < COVERED
                if cov < COVERED:
                    left_visible.append({"file": f, "person": who, "head": list(box), "covered": round(cov, 3)})
        # masks that stand for a face (the outside-body masks cover the background by design: masked_area_share)
        faces_masks = [(m, k) for m, k in zip(res.boxes, res.kinds, strict=True) if k != OUTSIDE_KIND]
        bad = [(list(m), k) for m, k in faces_masks if on_head(m, boxes) < ON_HEAD]
        if bad:
            off_head.append({"file": f, "masks": [m for m, _ in bad], "kinds": [k for _, k in bad]})
    n = len(heads)
    review = review_order_numbers(results, kps, paths, {row["file"] for row in left_visible}) if mtcnn else None
    by_person = {who: sum(row["person"] == who for row in left_visible) for who in ("main", "other")}
    return {"crops": n, "heads": n_heads, "faces": n_faces, "faces_left_visible": len(left_visible),
            "faces_left_visible_face_region": int(face_region_left), "left_visible_by_person": by_person,
            "masks_off_head_share": round(len(off_head) / n, 4) if n else None,
            "masks_off_head_crops": len(off_head), "masked_by": dict(sorted(kinds.items())),
            "face_sources": sources, "masking_ms_per_crop": round(1000 * seconds / n, 1) if n else None,
            "masked_area_share": round(float(np.mean(area)), 3) if area else None,
            **({"kept_width_share": {"median": round(float(np.median(kept)), 3), "min": round(float(min(kept)), 3),
                                     "below_half": int(sum(k < 0.5 for k in kept))}} if kept else {}),
            **({"main_body_masked": body_cost(results, body_boxes)} if bodies else {}),
            "left_visible": left_visible, "off_head": off_head, "review": review}


REVIEW_SHARES = (0.1, 0.25, 0.5)


def body_cell(row: dict) -> tuple[str, ...]:  # type: ignore[type-arg]
    """The table's main-body cell of one masking's row (none without ``--bodies``)."""
    if "main_body_masked" not in row:
        return ()
    cost = row["main_body_masked"]
    if cost is None:  # --bodies given, but none of its boxes is of a labelled crop
        return ("-",)
    return (f"{cost['median']:.0%} / {cost['max']:.0%} / {cost['crops_over']} of {cost['crops']}",)


def review_ranking_speed(data_root: Path, n: int) -> dict[str, object]:
    """Crops/s of the review sheet's ranking in one process and in two, on the same crops in the same run."""
    import time

    from opreid_bench.splits.face_review import rank_crops

    crops = sorted((data_root / "prid2011").glob("*_b.png"))[:n]
    jobs = [(str(p), None, "") for p in crops]
    rates, results = {}, {}
    for w in (1, 2):
        t0 = time.perf_counter()
        results[w] = rank_crops(jobs, workers=w, progress=False)
        rates[w] = len(jobs) / (time.perf_counter() - t0)
    return {"crops": len(jobs), "crops_per_s_workers_1": round(rates[1], 2),
            "crops_per_s_workers_2": round(rates[2], 2), "ratio": round(rates[2] / rates[1], 3),
            "same_results": results[1] == results[2]}


def review_order_numbers(results: dict, kps: dict, paths: dict[str, str],  # type: ignore[type-arg]
                         with_face_left: set[str]) -> dict[str, object]:
    """Where the crops with a face left visible fall in the face review sheet's order (``mask --review-faces``:
    ``face_review.face_risk`` of each masked crop, then the bystanders' masks, then the path): how many of them lie
    within the first 10%, 25% and 50% of the crops, against a random order's expectation."""
    import time

    from opreid_bench.splits.all_faces import FACE_KINDS
    from opreid_bench.splits.face_review import face_review_order, face_risk

    files = sorted(results)
    risks, crowd = [], []
    start = time.perf_counter()
    for f in files:
        res = results[f]
        risk, _ = face_risk(res.image, kps.get(paths[f]), list(res.boxes))
        risks.append(risk)
        crowd.append(sum(k in FACE_KINDS for k in res.kinds))
    seconds = time.perf_counter() - start
    order = face_review_order(risks, crowd, [paths[f] for f in files])
    rank = {files[i]: r for r, i in enumerate(order)}
    k = len(with_face_left)
    found = {f"{s:g}": sum(rank[f] < round(s * len(files)) for f in with_face_left) for s in REVIEW_SHARES}
    expected = {f"{s:g}": round(k * round(s * len(files)) / len(files), 2) for s in REVIEW_SHARES}
    return {"crops_with_face_left": k, "found_in_first": found, "random_expected": expected,
            "ranks": sorted(rank[f] + 1 for f in with_face_left),
            "ms_per_crop": round(1000 * seconds / len(files), 1) if files else None}


@contextlib.contextmanager
def haar_where_the_pose_ran(anywhere: bool) -> Iterator[None]:
    """The masking with the Haar cascade also asked where the pose stage ran and placed no head (the masking asks it
    only for crops without a pose result), its boxes taken in the upper half of the crop or, ``anywhere``, wherever
    the head gate finds them plausible: alternatives the masking does not use, for comparison."""
    from opreid_bench.splits import mask

    saved = mask._haar_asked, mask._main_face_candidates
    mask._haar_asked = lambda kp: True
    if anywhere:  # every box the head gate finds plausible: no line below which a box is refused
        mask._main_face_candidates = functools.partial(saved[1], lowest=1.0)
    try:
        yield
    finally:
        mask._haar_asked, mask._main_face_candidates = saved


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="root the label file's paths are relative to")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=LABELS,
              show_default=True, help="hand-boxed heads (faces_heads_heldout.csv, faces_heads_heldout2.csv: crops "
              "the settings never saw)")
@click.option("--pose", default="mediapipe", show_default=True, help="pose backend spec")
@click.option("--workers", default=2, show_default=True, help="pose worker processes")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="keypoints live here (default: a folder in the temp dir, reused)")
@click.option("--without-mtcnn-too", "compare", is_flag=True,
              help="also mask without MTCNN, in the same run: both rows, and the masking time's ratio")
@click.option("--outside-body-too", "outside", is_flag=True,
              help="also mask with --mask-outside-body (every face and everything outside the main person's body), "
              "in the same run: its row and the share of the crop's area it masks")
@click.option("--without-yunet-too", "compare_yunet", is_flag=True,
              help="also mask without YuNet, in the same run: its row, and the faces covered only with it")
@click.option("--haar-too", "haar_variants", is_flag=True,
              help="also mask with the Haar cascade asked for the main face where the pose placed no head, its boxes "
                   "in the crop's upper half and anywhere, in the same run (alternatives the masking does not use)")
@click.option("--bodies", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="hand-drawn main-body boxes of the same crops (file,left,top,right,bottom,note): how much of the "
              "main person's body each masking covers")
@click.option("--review-speed", default=0, show_default=True,
              help="also time the review sheet's ranking of this many PRID 2011 crops, 1 and 2 processes (0: skip)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
def main(data_root: Path, labels: Path, pose: str, workers: int, cache: Path | None, compare: bool,
         compare_yunet: bool, outside: bool, haar_variants: bool, bodies: Path | None, review_speed: int,
         as_json: bool) -> None:
    """Faces left visible and masks off heads, default masking, on hand-boxed crowded crops."""
    import torch
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(1)  # masking runs one crop per core (build-split's workers)
    cache = cache or Path(tempfile.gettempdir()) / "opreid_bench_faces"
    cache.mkdir(parents=True, exist_ok=True)
    result = evaluate(data_root, cache, pose, workers, progress=not as_json, labels=labels, bodies=bodies)
    rows = [("default", result)]
    if compare:
        without = evaluate(data_root, cache, pose, workers, progress=False, labels=labels, mtcnn=False,
                           bodies=bodies)
        rows.append(("without MTCNN", without))
        result["without_mtcnn"] = {k: v for k, v in without.items() if k not in ("left_visible", "off_head")}
        if without["masking_ms_per_crop"]:
            result["masking_time_ratio"] = round(result["masking_ms_per_crop"] / without["masking_ms_per_crop"], 2)
    if compare_yunet:
        without = evaluate(data_root, cache, pose, workers, progress=False, labels=labels, yunet=False, bodies=bodies)
        rows.append(("without YuNet", without))
        result["without_yunet"] = {k: v for k, v in without.items() if k not in ("review",)}
    if outside:
        around = evaluate(data_root, cache, pose, workers, progress=False, labels=labels, spec=f"blur+{OUTSIDE_KIND}",
                          bodies=bodies)
        rows.append(("--mask-outside-body", around))
        result["outside_body"] = {k: v for k, v in around.items() if k not in ("off_head", "review")}
    if haar_variants:
        for key, anywhere, name in (("haar_upper_half", False, "Haar where no head (upper half)"),
                                    ("haar_anywhere", True, "Haar where no head (anywhere)")):
            with haar_where_the_pose_ran(anywhere):
                variant = evaluate(data_root, cache, pose, workers, progress=False, labels=labels, bodies=bodies)
            rows.append((name, variant))
            result[key] = {k: v for k, v in variant.items() if k != "review"}
    if review_speed > 0:
        result["review_ranking"] = review_ranking_speed(data_root, review_speed)
    console = Console(stderr=as_json, width=150)
    table = Table(title=f"face masking on hand-boxed crowded crops ({labels.name}; one thread)")
    for col in ("masking", "crops", "heads", "faces", "faces left visible (head box / face region)",
                "crops with a face mask off every head", "crop area masked",
                *(("main body masked (median / max / crops over 10%)",) if bodies else ()), "masks by kind",
                "ms per crop"):
        table.add_column(col, justify="right")
    for name, row in rows:
        table.add_row(name, str(row["crops"]), str(row["heads"]), str(row["faces"]),
                      f"{row['faces_left_visible']} / {row['faces_left_visible_face_region']}",
                      f"{row['masks_off_head_crops']} ({row['masks_off_head_share']:.1%})",
                      f"{row['masked_area_share']:.0%}", *body_cell(row),
                      ", ".join(f"{k} {v}" for k, v in row["masked_by"].items()), f"{row['masking_ms_per_crop']}")
    console.print(table)
    if "masking_time_ratio" in result:
        console.print(f"masking time, default / without MTCNN: {result['masking_time_ratio']}x "
                      f"(sources: {result['face_sources']})")
    for row in result["left_visible"]:
        console.print(f"face left visible: {row['file']} ({row['person']}, head {row['head']}, "
                      f"{row['covered']:.0%} covered)")
    if compare_yunet:
        still = {(row["file"], tuple(row["head"])) for row in result["left_visible"]}
        for row in result["without_yunet"]["left_visible"]:
            if (row["file"], tuple(row["head"])) not in still:
                console.print(f"face covered only with YuNet: {row['file']} ({row['person']}, head {row['head']})")
    rev = result.get("review")
    if rev:
        shares = ", ".join(f"first {float(s):.0%}: {v} (random {rev['random_expected'][s]})"
                           for s, v in rev["found_in_first"].items())
        console.print(f"face review order (mask --review-faces): of the {result['crops']} crops, the "
                      f"{rev['crops_with_face_left']} with a face left are at ranks {rev['ranks']}; found in the "
                      f"{shares}; {rev['ms_per_crop']} ms per crop to rank")
    rank = result.get("review_ranking")
    if rank:
        console.print(f"face review ranking of {rank['crops']} PRID 2011 crops: {rank['crops_per_s_workers_2']} crops/s "
                      f"with 2 processes vs {rank['crops_per_s_workers_1']} in one -> {rank['ratio']}x; same results: "
                      f"{rank['same_results']}")
    for row in result.get("outside_body", {}).get("left_visible", []):
        console.print(f"face left visible with --mask-outside-body: {row['file']} ({row['person']}, head "
                      f"{row['head']}, {row['covered']:.0%} covered)")
    for name, row in rows:
        cost = row.get("main_body_masked") or {}
        if cost.get("worst"):
            console.print(f"main body masked most ({name}): " + ", ".join(
                f"{w['file']} {w['masked']:.0%}" for w in cost["worst"]))
    for row in result["off_head"]:
        console.print(f"mask off every head: {row['file']} {row['masks']} ({', '.join(row['kinds'])})")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
