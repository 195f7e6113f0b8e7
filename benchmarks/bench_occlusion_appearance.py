"""Does the crop's appearance say "occluded" where the pose signals cannot? A leave-one-dataset-out measurement.

The keypoint rule (``splits/classify.py``) is near chance on low-resolution crowded sets (GRID, PRID 2011): the pose
model's visibility and segmentation do not separate their occluded crops. This benchmark asks whether an appearance
classifier does: features of torchvision's ImageNet MobileNetV2 (a local file, never downloaded), pooled over
``--stripes`` horizontal stripes of the crop (occlusion is mostly about which band of the body is hidden), and an
L2-regularised logistic regression on them.

Protocol, the same as ``bench_occlusion.py``'s ``leave_one_dataset_out``: for each labelled set in turn (Partial-REID
folders, CUHK03, GRID, PRID 2011, VIPeR hand labels; full-size crops only), the regularisation strength is chosen by
leave-one-dataset-out *within* the other four sets, the classifier is trained on those four (each set and each class
weighted equally, so Partial-REID's 900 crops do not drown the others) and scored on the one left out: balanced
accuracy, precision, recall and the share of holistic crops labelled occluded. ``--with-rule`` also scores the
shipped keypoint rule on the same crops and the two combined (occluded when either says so, or both), which needs
the pose stage (mediapipe) once, cached. The shipped rule's defaults were chosen with all five sets in view, so its
rows here are in-sample (``bench_occlusion.py`` gives its leave-one-dataset-out figures); an undetermined crop counts
as occluded in them. The appearance rows are held out.

``--signals keypoints`` asks the same of the pose stage's own signals instead of the appearance: the same logistic
regression, under the same protocol, on the per-keypoint visibility, segmentation support, place in the crop and
inside/outside flags, the person detector's beyond-the-border and covered-by-another-person signals, the crop's
height and the number of people found (:func:`keypoint_signals`). It asks whether a learned combination of the signals
transfers across sets better than the rule's hand-made one.

``--signals synthetic`` keeps the appearance features but learns from synthetic occlusion instead of the hand labels:
every labelled holistic crop occluded three ways (another crop's person pasted in front of the legs, the crop cut at
50-75% of its height, a patch of another crop over the lower body; :func:`synthetic_occlusions`). For each left-out
set the classifier is trained on the synthetic crops whose crop and donor both come from the other sets (positives)
and the other sets' real holistic crops (negatives), and scored on the left-out set's real labels; the regularisation
is chosen by leave-one-dataset-out on the other sets' real labels, over a wider range (:data:`SYNTH_LAMBDAS`: the
narrower one put the choice at its edge).

\\b
Example:
  python benchmarks/bench_occlusion_appearance.py --json
  python benchmarks/bench_occlusion_appearance.py --with-rule --stripes 4
  python benchmarks/bench_occlusion_appearance.py --signals keypoints --with-rule
  python benchmarks/bench_occlusion_appearance.py --signals synthetic --with-rule
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_occlusion as bo  # noqa: E402  (the labelled crops and their scoring)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)


def crop_features(paths: list[str], weights: Path, stripes: int, batch: int = 32) -> np.ndarray:
    """ImageNet MobileNetV2 features of every crop at 256x128: the last map averaged within ``stripes`` bands."""
    from opreid_bench.data.decode import load_rgb

    return image_features((load_rgb(p) for p in paths), weights, stripes, batch)


def image_features(images: Iterable[Any], weights: Path, stripes: int, batch: int = 32) -> np.ndarray:
    """:func:`crop_features` of decoded RGB images (PIL)."""
    import torch

    from opreid_bench.data.transforms import ReIDTransform
    from opreid_bench.modeling.backbones import build_backbone, load_pretrained

    torch.manual_seed(0)
    net = build_backbone("mobilenetv2", last_stride=2)
    load_pretrained(net, weights)
    net.eval()
    tf = ReIDTransform(256, 128, train=False)
    out: list[np.ndarray] = []
    pending: list[Any] = []

    def flush() -> None:
        x = torch.stack([torch.from_numpy(tf.array(a)) for a in pending])
        fmap = net(x)  # (B, 1280, 8, 4)
        out.append(torch.nn.functional.adaptive_avg_pool2d(fmap, (stripes, 1)).flatten(1).numpy())
        pending.clear()

    with torch.no_grad():
        for a in images:
            pending.append(a)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
    return np.concatenate(out).astype(np.float64)


# ---- synthetic occlusion: real people and patches put in front of real holistic crops ----

SYNTH_KINDS = ("person", "cut", "patch")
SYNTH_LAMBDAS = (1e-2, 1e-1, 1.0, 10.0, 100.0)
MAX_DONORS = 400  # holistic crops whose person (selfie segmentation) is cut out and put in front of others
SYNTH_VERSION = 1  # part of the cache key: the generator's recipe


def synthetic_occlusions(crops: list, y: np.ndarray, seed: int = 0) -> Iterator[tuple[np.ndarray, int, int, str]]:
    """Every holistic labelled crop occluded three ways, as (image, crop index, donor index or -1, kind):

    - ``person``: another crop's person (mediapipe's selfie segmentation, shipped in its wheel), scaled to 0.9-1.4x
      the crop's height, its top at 40-75% of the crop's height and shifted sideways by up to 30% of its width,
      pasted in front: a nearer pedestrian hiding the legs;
    - ``cut``: the crop's top 50-75%, a body cut by the border;
    - ``patch``: a rectangle of another crop (25-50% of the height, 60-100% of the width) pasted over the lower body:
      an object in front.

    Deterministic for a ``seed``. Without any donor (no person segmented in any crop) only ``cut`` crops are made."""
    import cv2
    import mediapipe as mp

    from opreid_bench.data.decode import load_rgb

    rng = np.random.default_rng(seed)
    holistic = np.flatnonzero(y == 0)
    segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    donors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in rng.choice(holistic, size=min(MAX_DONORS, len(holistic)), replace=False):
        a = np.asarray(load_rgb(crops[int(i)].path))
        m = segmenter.process(a).segmentation_mask
        if m is not None and float((m > 0.5).mean()) > 0.15:
            donors[int(i)] = (a.astype(np.float32), (m > 0.5).astype(np.float32))
    segmenter.close()
    keys = list(donors)
    for i in holistic:
        base = np.asarray(load_rgb(crops[int(i)].path), np.float32)
        h, w = base.shape[:2]
        for kind in SYNTH_KINDS:
            j = -1
            if kind != "cut" and not keys:
                continue  # no crop had a person the segmentation could cut out
            if kind == "cut":
                img = base[: max(2, int(h * rng.uniform(0.5, 0.75)))]
            else:
                j = int(rng.choice(keys))
                a, m = donors[j]
                img = base.copy()
                if kind == "person":
                    s = rng.uniform(0.9, 1.4) * h / a.shape[0]
                    size = (max(2, int(a.shape[1] * s)), max(2, int(a.shape[0] * s)))
                    a2, m2 = cv2.resize(a, size), cv2.resize(m, size)
                    top = int(rng.uniform(0.4, 0.75) * h)
                    left = int(w / 2 - a2.shape[1] / 2 + rng.uniform(-0.3, 0.3) * w)
                    y0, y1, x0, x1 = top, min(h, top + a2.shape[0]), max(0, left), min(w, left + a2.shape[1])
                    if y1 > y0 and x1 > x0:
                        alpha = m2[y0 - top:y1 - top, x0 - left:x1 - left, None]
                        img[y0:y1, x0:x1] = alpha * a2[y0 - top:y1 - top, x0 - left:x1 - left] + (1 - alpha) * img[
                            y0:y1, x0:x1]
                else:
                    ph, pw = int(rng.uniform(0.25, 0.5) * h), int(rng.uniform(0.6, 1.0) * w)
                    src = cv2.resize(a, (w, h))
                    sy, sx = int(rng.uniform(0, h - ph)), int(rng.uniform(0, w - pw + 1))
                    top = max(int(0.35 * h), min(h - ph, int(rng.uniform(0.45, 1.0) * h) - ph))
                    left = int(rng.uniform(0, w - pw + 1))
                    img[top:top + ph, left:left + pw] = src[sy:sy + ph, sx:sx + pw]
            yield np.clip(img, 0, 255).astype(np.uint8), int(i), j, kind


def synthetic_training_rows(y: np.ndarray, ds: np.ndarray, s_base: np.ndarray, s_donor: np.ndarray,
                            excluded: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which synthetic crops (mask) and which real holistic crops (indices) may train a classifier that is scored on
    the ``excluded`` sets: none whose crop or donor comes from them."""
    keep = ~np.isin(ds[s_base], excluded) & ~np.isin(np.where(s_donor >= 0, ds[s_donor], ds[s_base]), excluded)
    holistic = np.flatnonzero(y == 0)
    return keep, holistic[~np.isin(ds[holistic], excluded)]


def predict_left_out_synthetic(xr: np.ndarray, y: np.ndarray, ds: np.ndarray, xs: np.ndarray, s_base: np.ndarray,
                               s_donor: np.ndarray, left: str) -> tuple[np.ndarray, float]:
    """Train on synthetic occlusions (positives) and real holistic crops (negatives), none of either from ``left``
    (neither the crop nor its donor), the regularisation chosen by leave-one-dataset-out on the *real* labels of the
    other sets; predict ``left``'s real crops."""

    def training(excluded: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep, neg = synthetic_training_rows(y, ds, s_base, s_donor, excluded)
        x = np.concatenate([xs[keep], xr[neg]])
        t = np.concatenate([np.ones(int(keep.sum()), int), np.zeros(len(neg), int)])
        return x, t, np.concatenate([ds[s_base[keep]], ds[neg]])

    return fit_left_out(training, xr, y, ds, left, SYNTH_LAMBDAS)


def keypoint_signals(kps: dict, crops: list) -> np.ndarray:  # type: ignore[type-arg]
    """Per crop, the pose stage's signals as one row: log crop height, person found, and per COCO keypoint its
    visibility, support (1 where unknown) and whether it is unknown, inside the crop, its height in the crop, how far
    beyond the border the detector's body alignment puts it and whether another person covers it; then the number of
    people the detector found and whether the main one is among them."""
    from opreid_bench.splits.keypoints import Keypoints
    from opreid_bench.splits.people import beyond_border, covered_by_people, main_person

    rows = []
    for c in crops:
        kp = kps.get(c.path) or Keypoints.empty()
        h = float(kp.image_size[1]) if kp.image_size is not None else 128.0
        found = bool(kp.detected)
        score = np.clip(kp.score, 0, 1) if found else np.zeros(17)
        support = kp.support if (found and kp.support is not None) else np.full(17, np.nan)
        inside = kp.inside(0.05).astype(float) if found else np.zeros(17)
        height = np.clip(kp.xy[:, 1] / h, -0.5, 1.5) if found else np.zeros(17)
        people = 0 if kp.people is None else len(kp.people)
        if found and people:
            beyond = np.clip(np.nan_to_num(beyond_border(kp), nan=0.0), -1, 2)
            covered = covered_by_people(kp).astype(float)
            has_main = float(main_person(kp) is not None)
        else:
            beyond, covered, has_main = np.zeros(17), np.zeros(17), 0.0
        rows.append([np.log(h), float(found), *score, *np.nan_to_num(support, nan=1.0), *np.isnan(support),
                     *inside, *height, *beyond, *covered, people, has_main])
    return np.asarray(rows, np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression by Newton steps on the standardised features (deterministic)."""
    import torch

    xt, yt, wt = (torch.from_numpy(a) for a in (x, y.astype(np.float64), w / w.sum()))
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b0 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta, b0], lr=1.0, max_iter=300, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xt @ beta + b0
        loss = (wt * torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")).sum()
        loss = loss + 0.5 * lam * (beta * beta).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach().numpy(), float(b0.detach())


def balanced_weights(y: np.ndarray, ds: np.ndarray) -> np.ndarray:
    """Each (set, class) cell gets the same total weight."""
    w = np.zeros(len(y))
    cells = {(d, c) for d, c in zip(ds, y)}
    for d, c in cells:
        m = (ds == d) & (y == c)
        w[m] = 1.0 / m.sum()
    return w


def balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    parts = [np.mean(p[y == c] == c) for c in (0, 1) if (y == c).any()]
    return float(np.mean(parts))


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return [(a - mu) / sd for a in (train, *others)]


def predict_left_out(x: np.ndarray, y: np.ndarray, ds: np.ndarray, left: str) -> tuple[np.ndarray, float]:
    """Train on every set but ``left`` (lambda by inner leave-one-dataset-out), predict ``left``."""

    def training(excluded: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = ~np.isin(ds, excluded)
        return x[keep], y[keep], ds[keep]

    return fit_left_out(training, x, y, ds, left, LAMBDAS)


def fit_left_out(training: Callable[[list[str]], tuple[np.ndarray, np.ndarray, np.ndarray]], x: np.ndarray,
                 y: np.ndarray, ds: np.ndarray, left: str, lambdas: Sequence[float]) -> tuple[np.ndarray, float]:
    """Predict ``left``'s crops (features ``x``) with a classifier fitted on ``training([left])`` (features, targets,
    sets), its regularisation chosen among ``lambdas`` by leave-one-dataset-out on the other sets' real labels, each
    inner set scored by a classifier fitted on ``training([left, inner])``."""
    best, best_score = lambdas[0], -1.0
    for lam in lambdas:
        scores = []
        for inner in sorted(set(ds) - {left}):
            test = ds == inner
            if len(set(y[test])) < 2:
                continue
            xt, t, d = training([left, inner])
            xa, xb = _standardise(xt, x[test])
            beta, b0 = fit_logistic(xa, t, balanced_weights(t, d), lam)
            scores.append(balanced_accuracy(y[test], (xb @ beta + b0 > 0).astype(int)))
        score = float(np.mean(scores))
        if score > best_score:
            best, best_score = lam, score
    xt, t, d = training([left])
    xa, xb = _standardise(xt, x[ds == left])
    beta, b0 = fit_logistic(xa, t, balanced_weights(t, d), best)
    return (xb @ beta + b0 > 0).astype(int), best


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float | int]:
    tp = int(((p == 1) & (y == 1)).sum())
    return {"n": int(len(y)), "n_occluded": int(y.sum()), "balanced_accuracy": round(balanced_accuracy(y, p), 3),
            "precision": round(tp / max(1, int((p == 1).sum())), 3), "recall": round(tp / max(1, int(y.sum())), 3),
            "holistic_false_occluded": round(float(np.mean(p[y == 0] == 1)), 3)}


@click.command(help=__doc__)
@click.option("--data-root", type=click.Path(path_type=Path), default=bo.DEFAULT_DATA)
@click.option("--weights", type=click.Path(path_type=Path), default=DEFAULT_WEIGHTS,
              help="torchvision's ImageNet MobileNetV2 checkpoint (a local file).")
@click.option("--stripes", type=click.IntRange(1, 8), default=4, show_default=True)
@click.option("--signals", type=click.Choice(["appearance", "keypoints", "synthetic"]), default="appearance",
              show_default=True,
              help="what the classifier sees and learns from: MobileNetV2 stripes and the hand labels, the pose stage's "
                   "signals (runs mediapipe), or MobileNetV2 stripes and synthetic occlusions.")
@click.option("--with-rule", is_flag=True, help="Also score the keypoint rule and its combinations (runs mediapipe).")
@click.option("--cache", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def main(data_root: Path, weights: Path, stripes: int, signals: str, with_rule: bool, cache: Path | None,
         as_json: bool) -> None:
    if signals != "keypoints" and not weights.is_file():
        raise click.ClickException(f"{weights}: ImageNet MobileNetV2 checkpoint not found")
    cache = cache or Path(tempfile.gettempdir()) / "opreid_bench_occlusion"
    cache.mkdir(parents=True, exist_ok=True)
    crops = [c for c in bo.list_crops(data_root / "partial_reid", data_root / "cuhk03_labeled", cache, data_root)
             if c.scale == 1.0]
    y = np.array([int(c.group in bo.POSITIVE_GROUPS) for c in crops])
    ds = np.array([c.dataset for c in crops])
    from opreid_bench.atomic import atomic_path
    from opreid_bench.outputs import content_digest, fingerprint

    kps = None
    if with_rule or signals == "keypoints":
        from opreid_bench.splits.annotate import annotate_pool
        from opreid_bench.splits.cache import read_keypoints

        kp_dir = cache / "kp_mediapipe"
        annotate_pool([c.path for c in crops], kp_dir, backend="mediapipe", workers=2, progress=not as_json)
        kps = read_keypoints(kp_dir)
    if signals == "keypoints":
        x = keypoint_signals(kps, crops)  # type: ignore[arg-type]
    else:
        # features cached under a key of the crops' bytes (in order), the weights' bytes and the options, never the
        # paths
        key = fingerprint({"crops": [content_digest(c.path) for c in crops], "weights": content_digest(weights),
                           "stripes": stripes, "input": [256, 128], "version": 1})
        feats_file = cache / f"appearance_{key[:24]}.npy"
        if feats_file.is_file():
            x = np.load(feats_file)
        else:
            x = crop_features([c.path for c in crops], weights, stripes)
            with atomic_path(feats_file) as tmp, open(tmp, "wb") as fh:
                np.save(fh, x)

    synthetic = None
    if signals == "synthetic":
        # the synthetic crops' features and their origins, under a key of the crops' bytes, the weights and the recipe
        skey = fingerprint({"crops": [content_digest(c.path) for c in crops], "labels": y.tolist(),
                            "weights": content_digest(weights), "stripes": stripes, "version": SYNTH_VERSION,
                            "kinds": SYNTH_KINDS, "donors": MAX_DONORS, "seed": 0})
        synth_file = cache / f"synthetic_{skey[:24]}.npz"
        if not synth_file.is_file():
            origin: list[tuple[int, int]] = []

            def images() -> Iterator[Any]:
                from PIL import Image

                for img, base, donor, _kind in synthetic_occlusions(crops, y):
                    origin.append((base, donor))
                    yield Image.fromarray(img)

            xs = image_features(images(), weights, stripes)
            with atomic_path(synth_file) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, x=xs, origin=np.asarray(origin, np.int64))
        with np.load(synth_file) as z:
            synthetic = (z["x"], z["origin"][:, 0], z["origin"][:, 1])

    rule_pred = None
    if with_rule:
        from opreid_bench.splits.classify import OcclusionRule

        codes = bo.predict_all(kps, crops, OcclusionRule())
        rule_pred = (codes != 0).astype(int)  # undetermined counts as occluded: the worst case on holistic crops

    result: dict[str, dict] = {}
    for d in bo.DATASETS:
        m = ds == d
        if not m.any():
            continue
        if synthetic is not None:
            pred, lam = predict_left_out_synthetic(x, y, ds, *synthetic, d)
        else:
            pred, lam = predict_left_out(x, y, ds, d)
        row = {signals: summary(y[m], pred), "lambda": lam}
        if rule_pred is not None:
            r = rule_pred[m]
            row["rule"] = summary(y[m], r)
            row[f"rule_or_{signals}"] = summary(y[m], np.maximum(r, pred))
            row[f"rule_and_{signals}"] = summary(y[m], np.minimum(r, pred))
        result[d] = row
    if as_json:
        print(json.dumps({"signals": signals, "stripes": stripes, "left_out": result}))
        return
    from rich.console import Console
    from rich.table import Table

    seen = {"appearance": f"MobileNetV2 ImageNet, {stripes} stripes, hand labels",
            "keypoints": "the pose stage's signals, hand labels",
            "synthetic": f"MobileNetV2 ImageNet, {stripes} stripes, synthetic occlusions"}[signals]
    t = Table(title=f"occluded label, each set left out ({seen})")
    for col in ("left out", "n (occl.)", "signal", "BA", "precision", "recall", "holistic false occ."):
        t.add_column(col)
    for d, row in result.items():
        for name in (signals, "rule", f"rule_or_{signals}", f"rule_and_{signals}"):
            if name in row:
                s = row[name]
                t.add_row(d, f"{s['n']} ({s['n_occluded']})", name, str(s["balanced_accuracy"]), str(s["precision"]),
                          str(s["recall"]), str(s["holistic_false_occluded"]))
    Console().print(t)


if __name__ == "__main__":
    main()
