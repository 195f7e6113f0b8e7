"""How well does the occluded/holistic rule find real occlusion, out of sample? And how fast is the pose stage?

Ground truth:

- Partial-REID: the 300 crops of ``occluded_body_images`` (people behind objects and other people) and the 300 of
  ``partial_body_images`` are positives; the 300 crops of the same 60 people in ``whole_body_images`` negatives.
- CUHK03 (``val/``): 200 crops (the first of each identity in each camera) labelled by hand, file names and verdicts
  in ``benchmarks/labels/cuhk03_val_occlusion.csv`` (how: ``benchmarks/labels/README.md``).
- Resolution: the holistic crops of both sets downscaled to 50%, 33% and 25% of their height (area interpolation,
  written once under the cache folder) must stay holistic.

Held-out numbers (what the README reports): identity-disjoint k-fold cross-validation (5 folds; Partial-REID's 60
and CUHK03's 100 identities each shuffled with seed 0 and dealt into the folds). On each fold the score threshold,
the support threshold (person-segmentation support, see ``classify.py``; "none" is one of the choices) and the
crop height below which support is ignored are chosen on the *training* identities only, maximising balanced
accuracy (recall on the occluded crops of both sets;
specificity averaged over both sets' holistic crops at every scale), then the held-out identities are labelled with
it. The held-out predictions of all folds give ``heldout_*`` (Partial-REID occluded vs whole, full size),
``holistic_false_occluded`` (CUHK03 hand-checked holistic crops, full size) and ``false_occluded_by_scale`` (both
sets' holistic crops). The same is run with partial instead of occluded positives (``heldout_partial_*``) and for
each chain preset, which is how the cross-knee chain was judged. ``default_threshold_choice`` is what the procedure
picks on all identities; ``classify.DEFAULT_SCORE_THRESHOLD``, ``DEFAULT_SUPPORT_THRESHOLD`` and
``DEFAULT_SUPPORT_MIN_HEIGHT`` are set to it. ``heldout_balanced_accuracy_without_support`` is the same procedure with the support signal switched off.
``precision``, ``recall``, ``balanced_accuracy`` are the classify defaults on all of Partial-REID (occluded vs whole), kept for comparison with
earlier runs. A crop where no person is found is *undetermined*: counted as a miss on positives and as a false
occluded on negatives (the worst case), and its share is ``undetermined_share``.

Leave one dataset out (``leave_one_dataset_out``): each labelled set in turn is scored with the setting chosen on
the other four (score threshold, support threshold and height; with ``--pose mediapipe:flip=1`` also the
mirror-consistency threshold of ``FLIP_THRESHOLDS``); ``leave_one_dataset_out_choice_on_all`` is the choice with
every set in view. The classifier's score and support defaults follow that choice without the mirror signal, its
flip threshold the choice with it. Where the keypoints carry the mirror signal, the identity-disjoint
cross-validation above applies the default flip threshold (chosen with every set in view), so its figures are then
partly in-sample.

Review budget (``review_budget``): for each set left out, its held-out labels after a reviewer has checked a share of
its crops in the review sheet's order (undetermined first, then ``classify.label_stability`` from the least stable
label up), against the same share in a random order; the reviewer is taken to agree with the hand labels.
``--review-plot`` draws the curves.

Faces: ``mask_none_share`` is the share of full-size crops that the default masking (head keypoints, else Haar,
else the head prior) leaves unmasked; ``mask_prior_share`` the share masked by the head prior (listed for review).
``faces_visible_after_mask`` is the share of the hand-checked masked crops in ``benchmarks/labels/faces_after_mask.csv``
where the main person's face was still recognisable (``bystander_faces_visible_after_mask``: crops with a bystander's
face visible, default masking).

Speed: ``single_process_crops_per_s`` is one mediapipe process in static-image mode with its detector, as a plain script runs it (decode each crop,
pad it, ``mediapipe.solutions.pose.Pose`` in static-image mode with its person detector), ``crops_per_s`` the
``annotate`` stage with ``--pose`` and ``--workers`` on the same crops, measured in the same run (no cache);
``speedup`` is their ratio. Wall-clock ratios depend on what else the machine runs (the 2 cores here are shared), so
``cpu_ms_per_crop`` / ``single_process_cpu_ms_per_crop`` / ``cpu_speedup`` also give the CPU time per crop (worker
processes and their start-up included). ``--scaling`` also times 1 and 2 workers and ``--engine ray``.

Keypoints of the accuracy part are cached under ``--cache`` (default: a folder in the system temp dir), keyed by
content, so a rerun does not run mediapipe again.

\b
Examples:
  python benchmarks/bench_occlusion.py
  python benchmarks/bench_occlusion.py --json
  python benchmarks/bench_occlusion.py --speed-crops 0 --review-plot docs/review_budget.png
  python benchmarks/bench_occlusion.py --workers 2 --scaling
  python benchmarks/bench_occlusion.py --pose mediapipe:flip=1 --speed-crops 0
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from opreid_bench.evaluation.proportions import balanced_accuracy_interval, wilson_interval
from opreid_bench.splits.classify import (
    STABILITY_FLIP_THRESHOLDS,
    STABILITY_SCORE_THRESHOLDS,
    STABILITY_SUPPORT_HEIGHTS,
    STABILITY_SUPPORT_THRESHOLDS,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "partial_reid"
DEFAULT_CUHK = REPO.parent / "shared" / "data" / "cuhk03_labeled"
DEFAULT_DATA = REPO.parent / "shared" / "data"
LABELS = REPO / "benchmarks" / "labels"
# Hand-labelled sets beside CUHK03: label file in benchmarks/labels/, file names relative to the data root, and the
# identity offset that keeps identities of different sets apart.
HAND_LABELLED = {"grid": ("grid_occlusion.csv", 10_000), "prid2011": ("prid2011_occlusion.csv", 20_000),
                 "viper": ("viper_occlusion.csv", 30_000)}
DATASETS = ("partial_reid", "cuhk03", "grid", "prid2011", "viper")
POSITIVE_GROUPS = ("occ", "par", "cocc")
HOLISTIC_GROUPS = ("whole", "hol")
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp"}
SCALES = (1.0, 0.5, 0.33, 0.25)
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.30, 0.975, 0.02))
# The leave-one-dataset-out grid is the one a label's stability is measured over (classify.stability_settings).
SUPPORTS: tuple[float | None, ...] = (None, *STABILITY_SUPPORT_THRESHOLDS)
SUPPORT_HEIGHTS = STABILITY_SUPPORT_HEIGHTS  # px: the support signal counts only on crops at least this high
# (score threshold, support threshold or None = visibility only, support min height)
Choice = tuple[float, float | None, int]
CHAIN_CHOICES = ("body", "anatomical", "limbs")


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


class Crop:
    """One benchmark crop: its file, set, group (occ/par/whole/hol/cocc), identity, scale and original file."""

    __slots__ = ("path", "dataset", "group", "pid", "scale", "source")

    def __init__(self, path: str, dataset: str, group: str, pid: int, scale: float, source: str) -> None:
        self.path, self.dataset, self.group, self.pid, self.scale, self.source = path, dataset, group, pid, scale, source


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise click.ClickException(f"{folder}: folder not found")
    return [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXT]


def downscaled(src: Path, scale: float, cache: Path, tag: str) -> str:
    """``src`` at ``scale`` x its height (area interpolation), written once as PNG under ``cache``."""
    from PIL import Image

    out = cache / "scaled" / f"{scale:g}" / tag / (src.stem + ".png")
    if not out.is_file():
        import cv2

        with Image.open(src) as im:
            arr = np.asarray(im.convert("RGB"))
        h, w = arr.shape[:2]
        small = cv2.resize(arr, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        Image.fromarray(small).save(tmp)
        tmp.replace(out)
    return str(out)


def list_crops(root: Path, cuhk_root: Path | None, cache: Path, data_root: Path | None = None) -> list[Crop]:
    """All benchmark crops, the downscaled copies of Partial-REID and CUHK03 included (see the module docstring)."""
    crops: list[Crop] = []
    for folder, group in (("occluded_body_images", "occ"), ("partial_body_images", "par"), ("whole_body_images",
                                                                                            "whole")):
        for p in _images(root / folder):
            pid = int(p.stem.split("_")[0])
            crops.append(Crop(str(p), "partial_reid", group, pid, 1.0, str(p)))
            if group == "whole":
                for s in SCALES[1:]:
                    crops.append(Crop(downscaled(p, s, cache, "pr_whole"), "partial_reid", group, pid, s, str(p)))
    if cuhk_root is not None:
        for file, occluded in read_cuhk_labels():
            p = cuhk_root / file
            if not p.is_file():
                raise click.ClickException(f"{p}: listed in {LABELS / 'cuhk03_val_occlusion.csv'} but not found")
            pid = 1000 + int(p.stem.split("_")[0])
            group = "cocc" if occluded else "hol"
            crops.append(Crop(str(p), "cuhk03", group, pid, 1.0, str(p)))
            for s in SCALES[1:]:
                crops.append(Crop(downscaled(p, s, cache, "cuhk03"), "cuhk03", group, pid, s, str(p)))
    if data_root is not None:
        for name, (label_file, offset) in HAND_LABELLED.items():
            if not (data_root / name).is_dir() or not (LABELS / label_file).is_file():
                continue
            for file, occluded in read_hand_labels(label_file):
                p = data_root / file
                if not p.is_file():
                    raise click.ClickException(f"{p}: listed in {LABELS / label_file} but not found")
                crops.append(Crop(str(p), name, "cocc" if occluded else "hol", offset + int(p.stem.split("_")[0]),
                                  1.0, str(p)))
    return crops


def read_hand_labels(label_file: str) -> list[tuple[str, bool]]:
    """Verdicts of one hand-labelled set: (file relative to the data root, occluded)."""
    with (LABELS / label_file).open(newline="", encoding="utf-8") as fh:
        return [(row["file"], row["occluded"] == "1") for row in csv.DictReader(fh)]


def read_cuhk_labels() -> list[tuple[str, bool]]:
    """The hand-checked CUHK03 verdicts: (file relative to the CUHK03 root, occluded)."""
    with (LABELS / "cuhk03_val_occlusion.csv").open(newline="", encoding="utf-8") as fh:
        return [(row["file"], row["occluded"] == "1") for row in csv.DictReader(fh)]


# ---- cross-validation ----


_ARRAYS: dict[tuple[int, int], tuple[object, object, object]] = {}


def predict_all(kps: dict, crops: Sequence[Crop], rule) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per crop: 1 occluded, 0 holistic, 2 undetermined (no keypoints or no person); ``classify.label_codes``, the
    whole-pool form of ``classify_keypoints`` (a test holds them equal)."""
    from opreid_bench.splits.classify import KeypointArrays, label_codes
    from opreid_bench.splits.keypoints import Keypoints

    key = (id(kps), id(crops))
    hit = _ARRAYS.get(key)
    if hit is None or hit[0] is not kps or hit[1] is not crops:
        have = np.array([c.path in kps for c in crops])
        arrays = KeypointArrays.stack([kps.get(c.path) or Keypoints.empty() for c in crops])
        hit = (kps, crops, (arrays, have))
        _ARRAYS[key] = hit
    arrays, have = hit[2]  # type: ignore[misc]
    out = label_codes(arrays, rule)
    out[~have] = 2
    return out


_META: dict[int, tuple[Sequence[Crop], np.ndarray, np.ndarray, np.ndarray]] = {}


def _meta(crops: Sequence[Crop]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group, set and scale of every crop as arrays, computed once per crop list (the grid calls this a lot)."""
    hit = _META.get(id(crops))
    if hit is None or hit[0] is not crops:
        hit = (crops, np.array([c.group for c in crops]), np.array([c.dataset for c in crops]),
               np.array([c.scale for c in crops]))
        _META[id(crops)] = hit
    return hit[1], hit[2], hit[3]


def objective(pred: np.ndarray, crops: Sequence[Crop], mask: np.ndarray, positive: str | tuple[str, ...]) -> float:
    """Balanced accuracy on the crops in ``mask``: recall on each set's positives (Partial-REID: the ``positive``
    group or groups; the hand-labelled sets: their occluded crops), specificity on each set's holistic crops at every
    scale, each averaged over the sets and scales present."""
    groups, ds, sc = _meta(crops)
    pr_pos = (positive,) if isinstance(positive, str) else positive
    recalls, specs = [], []
    for d in DATASETS:
        m = mask & (ds == d) & np.isin(groups, pr_pos if d == "partial_reid" else ("cocc",)) & (sc == 1.0)
        if m.any():
            recalls.append(float(np.mean(pred[m] == 1)))
        for s in SCALES:
            m = mask & (ds == d) & np.isin(groups, HOLISTIC_GROUPS) & (sc == s)
            if m.any():
                specs.append(float(np.mean(pred[m] == 0)))
    return (float(np.mean(recalls)) + float(np.mean(specs))) / 2 if recalls and specs else 0.0


def folds_of(crops: Sequence[Crop], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per crop: each set's identities shuffled (seeded) and dealt into ``k`` folds."""
    rng = np.random.default_rng(seed)
    fold_of: dict[int, int] = {}
    for d in DATASETS:
        ids = sorted({c.pid for c in crops if c.dataset == d})
        for j, pid in enumerate(rng.permutation(ids)):
            fold_of[int(pid)] = j % k
    return np.array([fold_of[c.pid] for c in crops])


def _rank(choice: Choice) -> tuple[float, float, float]:
    """Tie-break between equally good choices: the lower score threshold, then no (or the lower) support one, then
    the lower min height."""
    return (-choice[0], -(choice[1] or 0.0), -choice[2])


def cross_validate(preds: dict[Choice, np.ndarray], crops: Sequence[Crop], folds: np.ndarray, positive: str,
                   k: int) -> tuple[np.ndarray, list[Choice]]:
    """Held-out predictions: per fold, the (score, support) thresholds that maximise the objective on the other
    folds."""
    held = np.full(len(crops), -1, dtype=np.int8)
    groups = np.array([c.group for c in crops])
    use = groups != ("par" if positive == "occ" else "occ")
    chosen = []
    for f in range(k):
        train = use & (folds != f)
        best = max(preds, key=lambda t: (objective(preds[t], crops, train, positive), *_rank(t)))
        chosen.append(best)
        test = folds == f
        held[test] = preds[best][test]
    return held, chosen


def choose_on_all(preds: dict[Choice, np.ndarray], crops: Sequence[Crop], positive: str) -> Choice:
    groups = np.array([c.group for c in crops])
    use = groups != ("par" if positive == "occ" else "occ")
    return max(preds, key=lambda t: (objective(preds[t], crops, use, positive), *_rank(t)))


def summarise(pred: np.ndarray, crops: Sequence[Crop], positive: str = "occ") -> dict[str, object]:
    """Precision/recall/BA on Partial-REID (positive vs whole, full size) and false-occluded rates (2 = wrong)."""
    groups = np.array([c.group for c in crops])
    ds = np.array([c.dataset for c in crops])
    sc = np.array([c.scale for c in crops])
    full = sc == 1.0
    pos = full & (ds == "partial_reid") & (groups == positive)
    neg = full & (ds == "partial_reid") & (groups == "whole")
    idx = np.flatnonzero(pos | neg)
    truth = [bool(pos[i]) for i in idx]
    out: dict[str, object] = scores(truth, [bool(pred[i] == 1) if pos[i] else bool(pred[i] != 0) for i in idx])
    by_scale, by_set = {}, {}
    for s in SCALES:
        m = (sc == s) & np.isin(groups, ("whole", "hol"))
        by_scale[str(s)] = round(float(np.mean(pred[m] != 0)), 4) if m.any() else None
        for d in ("partial_reid", "cuhk03"):
            md = m & (ds == d)
            if md.any():
                by_set.setdefault(d, {})[str(s)] = round(float(np.mean(pred[md] != 0)), 4)
    out["false_occluded_by_scale"] = by_scale
    out["false_occluded_by_set"] = by_set
    hol = full & (ds == "cuhk03") & (groups == "hol")
    out["holistic_false_occluded"] = round(float(np.mean(pred[hol] != 0)), 4) if hol.any() else None
    cocc = full & (ds == "cuhk03") & (groups == "cocc")
    out["cuhk03_recall"] = round(float(np.mean(pred[cocc] == 1)), 4) if cocc.any() else None
    return out


# ---- leave one dataset out ----

LODO_THRESHOLDS = STABILITY_SCORE_THRESHOLDS
# Mirror-consistency thresholds searched where the keypoints carry Keypoints.flip_shift (--pose mediapipe:flip=1), in
# crop heights; None = the signal off. Fixed before any leave-one-dataset-out score was computed.
FLIP_THRESHOLDS = STABILITY_FLIP_THRESHOLDS
# (score threshold, support threshold or None, support min height, cut margin or None, people cover, flip threshold
# or None)
LodoChoice = tuple[float, float | None, int, float | None, bool, float | None]


def lodo_rule(choice: Sequence[object]):  # type: ignore[no-untyped-def]
    """The ``OcclusionRule`` of one leave-one-dataset-out setting (:data:`LodoChoice`)."""
    from opreid_bench.splits.classify import OcclusionRule

    t, sup, h, cut, cover, flip = choice
    return OcclusionRule(score_threshold=t, support_threshold=sup, support_min_height=h,  # type: ignore[arg-type]
                         cut_margin=cut, people_cover=cover, flip_threshold=flip)  # type: ignore[arg-type]


def lodo_predictions(kps: dict, crops: Sequence[Crop],  # type: ignore[type-arg]
                     people_signals: bool = True) -> dict[LodoChoice, np.ndarray]:
    """Predictions of every rule setting the leave-one-dataset-out procedure chooses among: the thresholds of the
    pose signals (default chains), the mirror-consistency threshold among them where the keypoints carry it. The
    people signals are part of the rule's definition, not tuned: on (``classify.DEFAULT_CUT_MARGIN``,
    ``DEFAULT_PEOPLE_COVER``) or, with ``people_signals`` False, off."""
    from opreid_bench.splits.classify import DEFAULT_CUT_MARGIN, DEFAULT_PEOPLE_COVER

    has_support = any(kp.support is not None for kp in kps.values())
    supports = SUPPORTS if has_support else (None,)
    flips = FLIP_THRESHOLDS if any(kp.flip_shift is not None for kp in kps.values()) else (None,)
    cut, cover = (DEFAULT_CUT_MARGIN, DEFAULT_PEOPLE_COVER) if people_signals else (None, False)
    grid = [(t, sup, h, cut, cover, f) for f in flips for t in LODO_THRESHOLDS for sup in supports
            for h in ((0,) if sup is None else SUPPORT_HEIGHTS)]
    return {c: predict_all(kps, crops, lodo_rule(c)) for c in grid}


def _lodo_rank(choice: LodoChoice) -> tuple[float, ...]:
    """Tie-break between equally good settings: as ``_rank``."""
    return _rank(choice[:3])


def dataset_scores(pred: np.ndarray, crops: Sequence[Crop], dataset: str) -> dict[str, object]:
    """Full-size crops of one set: precision, recall, balanced accuracy, holistic false-occluded (undetermined counts
    as wrong on both sides), n; for Partial-REID also the recall on its occluded and its partial crops. ``*_ci95``:
    95% intervals (Wilson; balanced accuracy by MOVER, ``opreid_bench.evaluation.proportions``) of what another
    sample of crops from the same set could give."""
    groups, ds, sc = _meta(crops)
    full = (ds == dataset) & (sc == 1.0)
    pos = full & np.isin(groups, POSITIVE_GROUPS)
    neg = full & np.isin(groups, HOLISTIC_GROUPS)
    idx = np.flatnonzero(pos | neg)
    truth = [bool(pos[i]) for i in idx]
    out: dict[str, object] = {k: round(v, 4) for k, v in
                              scores(truth, [bool(pred[i] == 1) if pos[i] else bool(pred[i] != 0) for i in idx]).items()}
    out["holistic_false_occluded"] = round(float(np.mean(pred[neg] != 0)), 4) if neg.any() else None
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    found, kept = int(np.sum(pred[pos] == 1)), int(np.sum(pred[neg] == 0))
    ba_ci = balanced_accuracy_interval(found, n_pos, kept, n_neg)
    fo_ci = wilson_interval(n_neg - kept, n_neg)
    out["balanced_accuracy_ci95"] = [round(v, 4) for v in ba_ci] if ba_ci else None
    out["holistic_false_occluded_ci95"] = [round(v, 4) for v in fo_ci] if fo_ci else None
    out["n"] = int(len(idx))
    out["n_occluded"] = n_pos
    out["undetermined_share"] = round(float(np.mean(pred[idx] == 2)), 4) if len(idx) else None
    for g, key in (("occ", "occluded_recall"), ("par", "partial_recall")):
        m = full & (groups == g)
        if m.any():
            out[key] = round(float(np.mean(pred[m] == 1)), 4)
            out[key + "_ci95"] = [round(v, 4) for v in wilson_interval(int(np.sum(pred[m] == 1)), int(m.sum()))]
    return out


def _fmt_ci(ci: list[float] | None) -> str:
    """`` [lo-hi]`` of a 95% interval for the tables ('' without one)."""
    return f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else ""


def leave_one_dataset_out(preds: dict[LodoChoice, np.ndarray], crops: Sequence[Crop]) -> dict[str, dict[str, object]]:
    """Per labelled set: the setting that maximises the objective on all the *other* sets (Partial-REID's occluded and
    partial crops both positive), and its scores on the left-out set."""
    _, ds, _ = _meta(crops)
    out: dict[str, dict[str, object]] = {}
    for d in DATASETS:
        if not (ds == d).any():
            continue
        train = ds != d
        best = max(preds, key=lambda c: (objective(preds[c], crops, train, ("occ", "par")), *_lodo_rank(c)))
        out[d] = {**dataset_scores(preds[best], crops, d), "chosen": list(best)}
    return out


REVIEW_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5)
# Label-stability bins of ``errors_by_stability``, lower edges (each bin runs to the next edge; the last holds 1.0
# alone). Below 0.75 is what the data card counts as an unstable label (``classify.UNSTABLE_BELOW``).
STABILITY_BINS = (0.0, 0.5, 0.75, 1.0)
RANDOM_REVIEW_ORDERS = 200  # seeded random review orders averaged for the baseline


def _ba_fo(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Balanced accuracy and holistic false-occluded share of codes ``pred`` (2 = undetermined: wrong either way)."""
    recall = float(np.mean(pred[truth] == 1)) if truth.any() else float("nan")
    spec = float(np.mean(pred[~truth] == 0)) if (~truth).any() else float("nan")
    return (recall + spec) / 2, 1.0 - spec


def _reviewed(pred: np.ndarray, truth: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """``pred`` with the first ``n`` crops of ``order`` set to their hand label (a reviewer who makes no mistake)."""
    out = pred.copy()
    out[order[:n]] = truth[order[:n]].astype(out.dtype)
    return out


def _share_to_target(pred: np.ndarray, truth: np.ndarray, order: np.ndarray) -> float | None:
    """The smallest share of crops reviewed in ``order`` after which balanced accuracy is at least 0.85 and at most
    10% of the holistic crops are labelled occluded (the issue's targets); None if even a full review misses them."""
    for n in range(len(order) + 1):
        ba, fo = _ba_fo(_reviewed(pred, truth, order, n), truth)
        if ba >= 0.85 and fo <= 0.10:
            return n / len(order)
    return None


def _errors_by_stability(stability: np.ndarray, wrong: np.ndarray) -> dict[str, dict[str, object]]:
    """Per ``STABILITY_BINS`` bin (keyed by its range): crops in it and the share of them labelled wrong."""
    out: dict[str, dict[str, object]] = {}
    edges = (*STABILITY_BINS, None)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = stability >= lo if hi is None else (stability >= lo) & (stability < hi)
        key = f"{lo:g}" if hi is None else f"{lo:g}-{hi:g}"
        out[key] = {"n": int(sel.sum()), "wrong": round(float(wrong[sel].mean()), 4) if sel.any() else None}
    return out


def _stable_only(pred: np.ndarray, truth: np.ndarray, stability: np.ndarray) -> dict[str, object]:
    """The labels ``--unstable exclude`` keeps (stability at least ``classify.UNSTABLE_BELOW``; undetermined crops
    have stability 0 and go too): their share of the crops, balanced accuracy and holistic false-occluded share, and
    the share of the occluded crops that stay labelled occluded (what a split's query can draw from)."""
    from opreid_bench.splits.classify import UNSTABLE_BELOW

    kept = stability >= UNSTABLE_BELOW
    if not kept.any():
        return {"kept": 0.0, "balanced_accuracy": None, "holistic_false_occluded": None, "occluded_found": 0.0}
    ba, fo = _ba_fo(pred[kept], truth[kept])
    found = float(np.mean(kept[truth] & (pred[truth] == 1))) if truth.any() else float("nan")
    return {"kept": round(float(kept.mean()), 4), "balanced_accuracy": round(ba, 4),
            "holistic_false_occluded": round(fo, 4), "occluded_found": round(found, 4)}


def review_budget(kps: dict, crops: Sequence[Crop],  # type: ignore[type-arg]
                  lodo: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per left-out set: its held-out labels (the setting chosen on the other sets) after a reviewer has checked a
    share of its crops in the review sheet's order (undetermined first, then ``classify.label_stability`` from the
    least stable up), against the same share checked in a random order (mean of ``RANDOM_REVIEW_ORDERS`` seeded
    orders). The reviewer is taken to agree with the hand labels. ``errors`` is the share of crops the rule gets
    wrong (no order can do with fewer); ``share_to_target`` the share reviewed before the set reaches balanced
    accuracy 0.85 with at most 10% of its holistic crops labelled occluded (``random_share_to_target``: its mean over
    the first 20 random orders). ``errors_by_stability``: per bin of label stability (``STABILITY_BINS``), its
    crops and the share of them the rule gets wrong (undetermined crops sit in the lowest bin). ``stable_only``:
    the labels left when the unstable ones are set aside (:func:`_stable_only`)."""
    from opreid_bench.splits.classify import KeypointArrays, label_codes, label_stability, review_order
    from opreid_bench.splits.keypoints import Keypoints

    groups, ds, sc = _meta(crops)
    out: dict[str, dict[str, object]] = {}
    for d, v in lodo.items():
        idx = np.flatnonzero((ds == d) & (sc == 1.0) & np.isin(groups, POSITIVE_GROUPS + HOLISTIC_GROUPS))
        rule = lodo_rule(v["chosen"])  # type: ignore[arg-type]
        arrays = KeypointArrays.stack([kps.get(crops[i].path) or Keypoints.empty() for i in idx])
        pred = label_codes(arrays, rule)
        truth = np.isin(groups[idx], POSITIVE_GROUPS)
        stability = label_stability(arrays, rule)
        names = np.array(["occluded", "holistic", "undetermined"])[np.where(pred == 1, 0, np.where(pred == 0, 1, 2))]
        order = review_order(names, stability, [crops[i].path for i in idx])
        rng = np.random.default_rng(0)
        randoms = [rng.permutation(len(idx)) for _ in range(RANDOM_REVIEW_ORDERS)]
        by_share: dict[str, dict[str, float]] = {}
        for share in (0.0, *REVIEW_SHARES):
            n = round(share * len(idx))
            ba, fo = _ba_fo(_reviewed(pred, truth, order, n), truth)
            rand = np.array([_ba_fo(_reviewed(pred, truth, r, n), truth) for r in randoms])
            by_share[f"{share:g}"] = {"balanced_accuracy": round(ba, 4), "holistic_false_occluded": round(fo, 4),
                                      "random_balanced_accuracy": round(float(rand[:, 0].mean()), 4),
                                      "random_holistic_false_occluded": round(float(rand[:, 1].mean()), 4)}
        to_target = _share_to_target(pred, truth, order)
        rand_targets = [_share_to_target(pred, truth, r) for r in randoms[:20]]
        wrong = pred != truth.astype(pred.dtype)
        out[d] = {"n": int(len(idx)), "errors": round(float(np.mean(wrong)), 4),
                  "errors_by_stability": _errors_by_stability(stability, wrong),
                  "stable_only": _stable_only(pred, truth, stability),
                  "by_share": by_share,
                  "share_to_target": None if to_target is None else round(to_target, 4),
                  "random_share_to_target": (None if any(r is None for r in rand_targets)
                                             else round(float(np.mean(rand_targets)), 4))}
    return out


def lodo_choice_on_all(preds: dict[LodoChoice, np.ndarray], crops: Sequence[Crop]) -> LodoChoice:
    """The setting the procedure picks with every set in view (what the defaults are set to)."""
    everything = np.ones(len(crops), bool)
    return max(preds, key=lambda c: (objective(preds[c], crops, everything, ("occ", "par")), *_lodo_rank(c)))


def _fmt_lodo(choice: Sequence[object]) -> str:
    t, sup, h, cut, cover, flip = choice
    return (f"{t:g}/{'-' if sup is None else f'{sup:g}@{h}px'}/cut {'-' if cut is None else f'{cut:g}'}"
            f"/{'people' if cover else '-'}{'' if flip is None else f'/flip {flip:g}'}")


def _fmt_choice(choice: Choice) -> str:
    return f"{choice[0]:g}/{'-' if choice[1] is None else f'{choice[1]:g}@{choice[2]}px'}"


# ---- faces ----


def face_numbers(kps: dict, crops: Sequence[Crop]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Mask methods of the default masking over the full-size crops, and the hand-checked faces after masking."""
    from PIL import Image

    from opreid_bench.splits.mask import mask_face_detailed

    methods: dict[str, int] = {}
    for c in crops:
        if c.scale != 1.0:
            continue
        with Image.open(c.path) as im:
            res = mask_face_detailed(im.convert("RGB"), kps.get(c.path), "blur")
        methods[res.method] = methods.get(res.method, 0) + 1
    n = sum(methods.values())
    out: dict[str, object] = {
        "mask_methods": methods,
        "mask_none_share": round(methods.get("none", 0) / n, 4) if n else None,
        "mask_prior_share": round(methods.get("prior", 0) / n, 4) if n else None,
    }
    checked = LABELS / "faces_after_mask.csv"
    if checked.is_file():
        with checked.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        out["faces_checked"] = len(rows)
        out["faces_visible_after_mask"] = round(sum(r["face_visible"] == "1" for r in rows) / len(rows), 4)
        out["bystander_faces_visible_after_mask"] = round(sum(r["bystander_face_visible"] == "1" for r in rows)
                                                          / len(rows), 4)
    return out


# ---- speed ----


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def single_process_baseline(paths: Sequence[str]) -> tuple[float, float]:
    """Crops/s of one mediapipe process in static-image mode, as a plain script runs it (decode, pad 0.25, static-image Pose with
    its person detector), and its CPU ms per crop."""
    import io

    import mediapipe as mp
    from PIL import Image

    from opreid_bench.splits.pose_backends.mediapipe import pad_crop

    t0, c0 = time.perf_counter(), _cpu_s()
    pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                  min_detection_confidence=0.5)
    for p in paths:
        with Image.open(io.BytesIO(Path(p).read_bytes())) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        padded, _ = pad_crop(arr, 0.25)
        pose.process(padded)
    pose.close()
    return len(paths) / (time.perf_counter() - t0), 1000 * (_cpu_s() - c0) / len(paths)


def pose_stage_speed(paths: Sequence[str], spec: str, workers: int, engine: str = "local") -> tuple[float, float]:
    """Crops/s of the annotate stage (fresh folder: no cache; process start-up and model loading included), and
    its CPU ms per crop (this process and its worker processes; not Ray's)."""
    from opreid_bench.splits.annotate import annotate_pool

    with tempfile.TemporaryDirectory(prefix="bench_occlusion_speed_") as tmp:
        t0, c0 = time.perf_counter(), _cpu_s()
        annotate_pool(list(paths), tmp, backend=spec, workers=workers, engine=engine, progress=False)
        return len(paths) / (time.perf_counter() - t0), 1000 * (_cpu_s() - c0) / len(paths)


def accuracy_numbers(kps: dict, crops: Sequence[Crop], folds: int,  # type: ignore[type-arg]
                     no_faces: bool) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """Held-out (and, for the kept keys, in-sample) accuracy of the label, resolution, faces; see the docstring."""
    from opreid_bench.splits.classify import DEFAULT_CHAINS, OcclusionRule

    result: dict[str, object] = {}
    default = OcclusionRule()
    result.update({k: v for k, v in summarise(predict_all(kps, crops, default), crops).items()
                   if k in ("precision", "recall", "balanced_accuracy")})
    default_summary = summarise(predict_all(kps, crops, default), crops)

    fold = folds_of(crops, folds)
    per_chain: dict[str, dict[str, object]] = {}
    has_support = any(kp.support is not None for kp in kps.values())
    supports = SUPPORTS if has_support else (None,)
    for chains in CHAIN_CHOICES:
        grid = [(t, sup, h) for t in THRESHOLDS for sup in supports
                for h in ((0,) if sup is None else SUPPORT_HEIGHTS)]
        preds = {(t, sup, h): predict_all(kps, crops, OcclusionRule(score_threshold=t, chains=chains,
                                                                    support_threshold=sup, support_min_height=h))
                 for t, sup, h in grid}
        held, chosen = cross_validate(preds, crops, fold, "occ", folds)
        s = summarise(held, crops)
        held_p, chosen_p = cross_validate(preds, crops, fold, "par", folds)
        sp = summarise(held_p, crops, positive="par")
        per_chain[chains] = {"heldout": s, "chosen": chosen, "partial": sp, "chosen_partial": chosen_p,
                             "all_data_choice": choose_on_all(preds, crops, "occ")}
        if chains == DEFAULT_CHAINS:
            vis_only = {k: v for k, v in preds.items() if k[1] is None}
            held_v, _ = cross_validate(vis_only, crops, fold, "occ", folds)
            no_support = summarise(held_v, crops)
    main_cv = per_chain[DEFAULT_CHAINS]
    h = main_cv["heldout"]
    result.update({
        "heldout_balanced_accuracy": round(float(h["balanced_accuracy"]), 4),
        "heldout_precision": round(float(h["precision"]), 4),
        "heldout_recall": round(float(h["recall"]), 4),
        "heldout_partial_balanced_accuracy": round(float(main_cv["partial"]["balanced_accuracy"]), 4),
        "holistic_false_occluded": h["holistic_false_occluded"],
        "false_occluded_by_scale": h["false_occluded_by_scale"],
        "false_occluded_by_set": h["false_occluded_by_set"],
        "heldout_cuhk03_recall": h["cuhk03_recall"],
        "fold_thresholds": main_cv["chosen"],
        "default_threshold_choice": main_cv["all_data_choice"],
        "default_rule": {"score_threshold": default.score_threshold, "chains": default.chains,
                         "support_threshold": default.support_threshold,
                         "support_min_height": default.support_min_height,
                         "flip_threshold": default.flip_threshold,
                         "cuhk03_false_occluded": default_summary["holistic_false_occluded"],
                         "false_occluded_by_scale": default_summary["false_occluded_by_scale"]},
        "heldout_balanced_accuracy_without_support": round(float(no_support["balanced_accuracy"]), 4),
        "false_occluded_by_scale_without_support": no_support["false_occluded_by_scale"],
        "heldout_balanced_accuracy_by_chains": {c: round(float(v["heldout"]["balanced_accuracy"]), 4)
                                                for c, v in per_chain.items()},
        "threshold_choice_by_chains": {c: v["all_data_choice"] for c, v in per_chain.items()},
    })
    full = [c for c in crops if c.scale == 1.0]
    und = sum(1 for c in full if c.path not in kps or not kps[c.path].detected)
    result["undetermined_share"] = round(und / len(full), 4)
    no_bv = predict_all(kps, crops, OcclusionRule(back_view=False))
    result["false_occluded_by_scale_without_back_view_rule"] = summarise(no_bv, crops)["false_occluded_by_scale"]
    lodo_preds = lodo_predictions(kps, crops)
    result["leave_one_dataset_out"] = leave_one_dataset_out(lodo_preds, crops)
    result["leave_one_dataset_out_choice_on_all"] = list(lodo_choice_on_all(lodo_preds, crops))
    result["review_budget"] = review_budget(kps, crops, result["leave_one_dataset_out"])  # type: ignore[arg-type]
    without = leave_one_dataset_out(lodo_predictions(kps, crops, people_signals=False), crops)
    result["leave_one_dataset_out_without_people_signals"] = {
        d: {k: v[k] for k in ("balanced_accuracy", "recall", "holistic_false_occluded", "partial_recall") if k in v}
        for d, v in without.items()}
    _, ds, _ = _meta(crops)
    default_codes = predict_all(kps, crops, default)
    result["default_rule_by_dataset_in_sample"] = {d: dataset_scores(default_codes, crops, d) for d in DATASETS
                                                   if (ds == d).any()}
    full = [c for c in crops if c.scale == 1.0 and c.path in kps and kps[c.path].people is not None]
    if full:
        result["people_detected_share"] = {
            d: {"none": round(float(np.mean([len(kps[c.path].people) == 0 for c in sub])), 4),
                "two_or_more": round(float(np.mean([len(kps[c.path].people) >= 2 for c in sub])), 4)}
            for d in DATASETS if (sub := [c for c in full if c.dataset == d])}
    if not no_faces:
        result.update(face_numbers(kps, crops))

    return result, per_chain


def speed_numbers(crops: Sequence[Crop], pose_spec: str, workers: int, speed_crops: int,
                  scaling: bool) -> dict[str, object]:
    """Crops/s of the pose stage against one mediapipe process, measured in the same run (module docstring)."""
    result: dict[str, object] = {}
    if speed_crops > 0:
        pr = [c.path for c in crops if c.dataset == "partial_reid" and c.scale == 1.0]
        step = max(1, len(pr) // speed_crops)
        subset = pr[::step][:speed_crops]
        base, base_cpu = single_process_baseline(subset)
        fast, fast_cpu = pose_stage_speed(subset, pose_spec, workers)
        result.update(crops_per_s=round(fast, 2), single_process_crops_per_s=round(base, 2),
                      speedup=round(fast / base, 3), speed_crops=len(subset), speed_workers=workers,
                      cpu_ms_per_crop=round(fast_cpu, 1), single_process_cpu_ms_per_crop=round(base_cpu, 1),
                      cpu_speedup=round(base_cpu / fast_cpu, 3) if fast_cpu > 0 else None)
        if scaling:
            scale_rows: dict[str, object] = {}
            for w in (1, 2):
                scale_rows[f"local_workers_{w}"] = round(pose_stage_speed(subset, pose_spec, w)[0], 2)
            try:
                scale_rows["ray_workers_2"] = round(pose_stage_speed(subset, pose_spec, 2, engine="ray")[0], 2)
            except Exception as exc:  # noqa: BLE001 - ray is optional; say why it was not timed
                scale_rows["ray_workers_2"] = f"not timed: {type(exc).__name__}: {exc}"
            result["scaling_crops_per_s"] = scale_rows
    else:
        result.update(crops_per_s=None, single_process_crops_per_s=None, speedup=None)

    return result


def plot_review_budget(budget: dict[str, dict[str, object]], out: Path) -> None:
    """Balanced accuracy of each left-out set against the share of its crops reviewed by hand, least stable label
    first and in a random order, with the 0.85 target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opreid_bench.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    shares = [0.0, *REVIEW_SHARES]
    for i, (d, v) in enumerate(budget.items()):
        by = v["by_share"]
        color = f"C{i}"
        ax.plot(shares, [by[f"{s:g}"]["balanced_accuracy"] for s in shares], "-o", color=color, label=d)
        ax.plot(shares, [by[f"{s:g}"]["random_balanced_accuracy"] for s in shares], ":", color=color)
    ax.axhline(0.85, color="grey", lw=0.8)
    ax.set_xlabel("share of the left-out set reviewed by hand")
    ax.set_title("solid: least stable label first; dotted: random order", fontsize=9)
    ax.set_ylabel("balanced accuracy after review")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)


def print_accuracy(console: object, result: dict[str, object], per_chain: dict[str, dict[str, object]]) -> None:
    """The held-out table and the default rule's line."""
    from rich.table import Table

    from opreid_bench.splits.classify import OcclusionRule

    default = OcclusionRule()
    table = Table(title="occluded label, held out (identity-disjoint folds; threshold chosen on training folds)")
    for col in ("chains", "fold thresholds", "PR occ BA", "prec.", "recall", "PR partial BA", "CUHK03 false occ.",
                "CUHK03 recall", "false occ. 1/.5/.33/.25"):
        table.add_column(col, justify="right")
    for c, v in per_chain.items():
        s = v["heldout"]
        fo = s["false_occluded_by_scale"]
        table.add_row(c, ",".join(_fmt_choice(t) for t in v["chosen"]), f"{s['balanced_accuracy']:.3f}",
                      f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{v['partial']['balanced_accuracy']:.3f}",
                      f"{s['holistic_false_occluded']}", f"{s['cuhk03_recall']}",
                      " / ".join(f"{fo[k]:.3f}" for k in ("1.0", "0.5", "0.33", "0.25")))
    console.print(table)
    lodo = result.get("leave_one_dataset_out")
    if lodo:
        t2 = Table(title="occluded label, leave one dataset out (settings chosen on the other sets, scored on this one)")
        for col in ("left out", "n (occluded)", "chosen on the others", "BA", "prec.", "recall", "holistic false occ.",
                    "undetermined", "PR partial recall"):
            t2.add_column(col, justify="right")
        for d, v in lodo.items():
            t2.add_row(d, f"{v['n']} ({v['n_occluded']})", _fmt_lodo(v["chosen"]),
                       f"{v['balanced_accuracy']:.3f}{_fmt_ci(v.get('balanced_accuracy_ci95'))}",
                       f"{v['precision']:.3f}", f"{v['recall']:.3f}",
                       f"{v['holistic_false_occluded']}{_fmt_ci(v.get('holistic_false_occluded_ci95'))}",
                       f"{v['undetermined_share']}",
                       f"{v.get('partial_recall', '')}{_fmt_ci(v.get('partial_recall_ci95'))}")
        console.print(t2)
        console.print(f"chosen with every set in view: {_fmt_lodo(result['leave_one_dataset_out_choice_on_all'])}")
    budget = result.get("review_budget")
    if budget:
        t3 = Table(title="held-out labels after a hand review of the least stable first (random order in brackets): "
                         "BA / holistic false occ.")
        for col in ("left out", "wrong", *(f"{s:.0%} reviewed" for s in REVIEW_SHARES), "reviewed to reach target"):
            t3.add_column(col, justify="right")
        for d, v in budget.items():
            cells = []
            for s in REVIEW_SHARES:
                b = v["by_share"][f"{s:g}"]
                cells.append(f"{b['balanced_accuracy']:.2f}/{b['holistic_false_occluded']:.2f} "
                             f"({b['random_balanced_accuracy']:.2f}/{b['random_holistic_false_occluded']:.2f})")
            target = "-" if v["share_to_target"] is None else f"{v['share_to_target']:.1%}"
            rand = "-" if v["random_share_to_target"] is None else f"{v['random_share_to_target']:.1%}"
            t3.add_row(d, f"{v['errors']:.0%}", *cells, f"{target} ({rand})")
        console.print(t3)
        t4 = Table(title="held-out labels by label stability: crops in the bin, share labelled wrong")
        bins = list(next(iter(budget.values()))["errors_by_stability"])
        for col in ("left out", *(f"stability {b}" for b in bins)):
            t4.add_column(col, justify="right")
        for d, v in budget.items():
            t4.add_row(d, *(f"{e['n']} / " + ("-" if e["wrong"] is None else f"{e['wrong']:.0%}")
                            for e in v["errors_by_stability"].values()))
        console.print(t4)
        t5 = Table(title="held-out labels with the unstable ones set aside (build-split and sample --unstable exclude)")
        for col in ("left out", "crops kept", "BA", "holistic false occ.", "occluded crops kept as occluded"):
            t5.add_column(col, justify="right")
        for d, v in budget.items():
            so = v["stable_only"]
            t5.add_row(d, f"{so['kept']:.0%}", "-" if so["balanced_accuracy"] is None else
                       f"{so['balanced_accuracy']:.3f}", "-" if so["holistic_false_occluded"] is None else
                       f"{so['holistic_false_occluded']:.2f}", f"{so['occluded_found']:.0%}")
        console.print(t5)
    thresholds = _fmt_choice((default.score_threshold, default.support_threshold, default.support_min_height))
    console.print(f"default rule ({default.chains}, thresholds {thresholds}) on all of Partial-REID: "
                  f"precision {result['precision']:.3f}, recall {result['recall']:.3f}, "
                  f"balanced accuracy {result['balanced_accuracy']:.3f}; undetermined share "
                  f"{result['undetermined_share']:.3f}; procedure's choice on all identities: "
                  f"{_fmt_choice(result['default_threshold_choice'])}; held out without the support signal: "
                  f"{result['heldout_balanced_accuracy_without_support']:.3f}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
              help="Partial-REID release.")
@click.option("--cuhk03", "cuhk_root", type=click.Path(path_type=Path), default=DEFAULT_CUHK, show_default=True,
              help="CUHK03 (labeled) root holding val/; the hand-checked crops are read from there.")
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="root holding grid/, prid2011/, viper/ (hand-labelled crops: benchmarks/labels/)")
@click.option("--pose", "pose_spec", default="mediapipe", show_default=True, help="pose backend spec")
@click.option("--workers", default=2, show_default=True, help="pose worker processes (accuracy run and speed)")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="keypoints and downscaled crops live here (default: a folder in the temp dir, reused)")
@click.option("--folds", default=5, show_default=True, help="identity-disjoint folds")
@click.option("--speed-crops", default=900, show_default=True,
              help="crops timed for the speed ratio (0: skip); 900 = every full-size Partial-REID crop")
@click.option("--scaling", is_flag=True, help="also time --workers 1 and 2 and --engine ray")
@click.option("--no-faces", is_flag=True, help="skip the mask numbers")
@click.option("--accuracy/--no-accuracy", default=True, show_default=True,
              help="--no-accuracy: only the speed part (annotates the crops first all the same, cached)")
@click.option("--review-plot", type=click.Path(path_type=Path), default=None,
              help="write the review-budget curves (balanced accuracy against the share reviewed) to this PNG")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
def main(root: Path, cuhk_root: Path, data_root: Path, pose_spec: str, workers: int, cache: Path | None, folds: int,
         speed_crops: int, scaling: bool, no_faces: bool, accuracy: bool, review_plot: Path | None,
         as_json: bool) -> None:
    """Held-out accuracy of the occluded label (Partial-REID + hand-checked CUHK03), resolution, faces, speed."""
    from rich.console import Console

    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.cache import read_keypoints

    console = Console(stderr=as_json, width=150)
    cache = cache or Path(tempfile.gettempdir()) / "opreid_bench_occlusion"
    cache.mkdir(parents=True, exist_ok=True)
    crops = list_crops(root, cuhk_root if cuhk_root.is_dir() else None, cache,
                       data_root if data_root.is_dir() else None)
    kp_dir = cache / ("kp_" + "".join(ch if ch.isalnum() else "_" for ch in pose_spec))
    annotate_pool([c.path for c in crops], kp_dir, backend=pose_spec, workers=workers, progress=not as_json)
    kps = read_keypoints(kp_dir)

    result: dict[str, object] = {}
    per_chain: dict[str, dict[str, object]] = {}
    if accuracy:
        result, per_chain = accuracy_numbers(kps, crops, folds, no_faces)
    result.update(speed_numbers(crops, pose_spec, workers, speed_crops, scaling))
    if accuracy:
        print_accuracy(console, result, per_chain)
        if review_plot is not None and result.get("review_budget"):
            plot_review_budget(result["review_budget"], review_plot)  # type: ignore[arg-type]
            console.print(f"review-budget plot: {review_plot}")
    if result.get("speedup") is not None:
        console.print(f"pose stage: {result['crops_per_s']} crops/s ({pose_spec}, {workers} worker(s)) vs one "
                      f"mediapipe process {result['single_process_crops_per_s']} crops/s -> {result['speedup']}x; "
                      f"CPU per crop {result['cpu_ms_per_crop']} ms vs {result['single_process_cpu_ms_per_crop']} ms "
                      f"-> {result['cpu_speedup']}x")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
