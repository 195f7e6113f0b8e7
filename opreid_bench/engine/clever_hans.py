"""Score matchers on the Clever Hans sets (``opreid_bench.synth.clever_hans``): mAP on ``same`` and
``different``, and the gap between them with a paired bootstrap CI over the queries.

A matcher is anything that turns image records into feature vectors compared by a distance: a trained checkpoint,
an ImageNet backbone never trained for ReID (a general-appearance control), or a colour histogram on horizontal
stripes (a control that sees nothing but colour, occluder included). Both sets hold the same queries, so the gap
is a paired difference of per-query AP: query difficulty cancels out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opreid_bench.data.records import DatasetSplits, ImageRecord
from opreid_bench.errors import EvaluationError

FeatureFn = Callable[[Sequence[ImageRecord]], np.ndarray]


@dataclass
class Matcher:
    """A name, how it turns records into (N, D) features, and the distance its features are compared with."""

    name: str
    features: FeatureFn
    metric: str = "cosine"


# --------------------------------------------------------------------------------------------- colour histograms
def color_histogram(image: Any, *, stripes: int = 6, bins: tuple[int, int, int] = (8, 4, 4),
                    ignore: np.ndarray | None = None) -> np.ndarray:
    """Joint HSV histogram of each of ``stripes`` horizontal stripes, concatenated: (stripes * prod(bins),) float32.

    Each stripe's histogram is normalised to sum 1 (all zeros when the stripe has no counted pixel) and
    square-rooted, and the whole vector is L2-normalised, so the cosine similarity of two vectors is the mean
    Bhattacharyya coefficient of their stripe histograms (a close cousin of chi2). ``ignore`` (H, W) bool leaves
    pixels out (e.g. an occluder mask: a person-only colour matcher).
    """
    from opreid_bench.data.cbe import stripe_bounds

    hsv = np.asarray(image.convert("HSV"), dtype=np.int64)  # (H, W, 3), each channel 0..255
    h = hsv.shape[0]
    idx = np.zeros(hsv.shape[:2], dtype=np.int64)
    for c, n in enumerate(bins):
        idx = idx * n + np.minimum(hsv[..., c] * n // 256, n - 1)
    keep = np.ones(hsv.shape[:2], dtype=bool) if ignore is None else ~np.asarray(ignore, dtype=bool)
    if keep.shape != idx.shape:
        raise EvaluationError(f"histogram mask is {keep.shape}, the image is {idx.shape}")
    size = int(np.prod(bins))
    parts = []
    for k in range(stripes):
        top, bottom = stripe_bounds(h, stripes, k)
        rows = slice(top, bottom)
        hist = np.bincount(idx[rows][keep[rows]], minlength=size).astype(np.float64)
        total = hist.sum()
        parts.append(np.sqrt(hist / total) if total > 0 else hist)
    vec = np.concatenate(parts)
    norm = np.linalg.norm(vec)
    return (vec / norm if norm > 0 else vec).astype(np.float32)


def color_histogram_matcher(*, stripes: int = 6, bins: tuple[int, int, int] = (8, 4, 4),
                            masks: Mapping[str, np.ndarray] | None = None, name: str | None = None) -> Matcher:
    """A matcher of stripe colour histograms (cosine distance); ``masks`` maps an image's resolved absolute path
    (``str(Path(p).resolve())``) to the pixels to leave out (an image missing from ``masks`` counts every pixel)."""
    from opreid_bench.data.torch_dataset import load_rgb

    def features(records: Sequence[ImageRecord]) -> np.ndarray:
        rows = [color_histogram(load_rgb(r.path), stripes=stripes, bins=bins,
                                ignore=None if masks is None else masks.get(str(Path(r.path).resolve())))
                for r in records]
        return np.stack(rows) if rows else np.zeros((0, stripes * int(np.prod(bins))), dtype=np.float32)

    label = name or f"colour histogram (HSV {'x'.join(map(str, bins))}, {stripes} stripes)"
    return Matcher(label, features, "cosine")


# ----------------------------------------------------------------------------------------------- network matchers
def model_matcher(model: Any, cfg: Any, name: str) -> Matcher:
    """A matcher of a ReID model's inference features (its config's test transform and distance)."""
    from opreid_bench.engine.extract import extract_features

    return Matcher(name, lambda records: extract_features(model, records, cfg, progress=False), cfg.eval.metric)


def checkpoint_matcher(path: str | Path, name: str | None = None) -> Matcher:
    """A matcher of a trained checkpoint (``model.pt``); CheckpointError for a file that is not one."""
    from opreid_bench.engine.checkpoint import load_model_from_checkpoint

    model, cfg, state = load_model_from_checkpoint(path)
    return model_matcher(model, cfg, name or f"{state['method']} ({Path(path).parent.name or path})")


def imagenet_matcher(weights: str | Path, *, backbone: str = "mobilenetv2", height: int = 256, width: int = 128,
                     name: str | None = None) -> Matcher:
    """An ImageNet backbone never trained for ReID: the global average-pooled last feature map (ImageNet strides),
    cosine distance. Built with the project's model code (``bot`` config, no classifier), so preprocessing is the
    one every trained model gets."""
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.modeling import build_model

    cfg = load_method_config("bot", [f"model.backbone={backbone}", f"model.pretrained={weights}",
                                     "model.last_stride=2", "model.pooling=avg", "model.retrieval_feature=pooled",
                                     f"data.height={height}", f"data.width={width}", "eval.metric=cosine"])
    model = build_model(cfg.model, 0).eval()
    return model_matcher(model, cfg, name or f"ImageNet {backbone} (not trained for ReID)")


# --------------------------------------------------------------------------------------------------------- the gap
def clever_hans_gap(same: Any, different: Any, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Gap mAP(same) - mAP(different) over the queries valid in both, with a paired bootstrap 95% CI.

    ``same`` / ``different`` are evaluation reports (or their ``overall`` RankingResult) of one matcher on the two
    sets; the bootstrap resamples queries and scores both sets on each resample
    (:func:`opreid_bench.evaluation.bootstrap.paired_difference_ci`). Returns ``{"mAP_same", "mAP_different",
    "gap", "ci95": [lo, hi], "p_not_positive", "queries", "resamples", "seed"}`` (fractions).
    """
    from opreid_bench.evaluation.bootstrap import paired_difference_ci

    a, b = (getattr(r, "overall", r) for r in (same, different))
    common, ia, ib = np.intersect1d(a.valid_query_index, b.valid_query_index, return_indices=True)
    if common.size == 0:
        raise EvaluationError("Clever Hans gap: no query is valid in both sets")
    ap_a, ap_b = a.ap[ia], b.ap[ib]
    ci = paired_difference_ci(ap_a, ap_b, num_resamples=resamples, seed=seed)
    return {"mAP_same": float(ap_a.mean()), "mAP_different": float(ap_b.mean()), "gap": ci["diff"],
            "ci95": ci["ci95"], "p_not_positive": ci["p_not_positive"], "queries": int(common.size),
            "resamples": int(resamples), "seed": int(seed)}


def evaluate_clever_hans(matcher: Matcher, sets: Mapping[str, DatasetSplits], *, junk: str = "market",
                         resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Evaluate ``matcher`` on ``sets["same"]`` and ``sets["different"]`` (Market junk rule by default).

    Returns ``{"same": metrics, "different": metrics, "gap": clever_hans_gap(...)}`` with the evaluator's metric
    dicts (fractions). Queries and distractors are byte-identical in the two sets, so features are computed once per
    distinct file content (the matcher must give equal features for equal bytes).
    """
    import hashlib

    from opreid_bench.engine.extract import feature_set
    from opreid_bench.evaluation.evaluator import evaluate_features

    missing = [v for v in ("same", "different") if v not in sets]
    if missing:
        raise EvaluationError(f"Clever Hans evaluation needs the sets 'same' and 'different', missing {missing}")
    cache: dict[bytes, np.ndarray] = {}

    def features(records: Sequence[ImageRecord]) -> np.ndarray:
        keys = [hashlib.sha256(Path(r.path).read_bytes()).digest() for r in records]
        todo = {k: r for k, r in zip(keys, records) if k not in cache}
        if todo:
            cache.update(zip(todo, matcher.features(list(todo.values()))))
        return np.stack([cache[k] for k in keys])

    reports = {}
    for variant in ("same", "different"):
        data = sets[variant]
        qf = feature_set(data.query, features(data.query))
        gf = feature_set(data.gallery, features(data.gallery))
        reports[variant] = evaluate_features(qf, gf, metric=matcher.metric, junk=junk)
    return {"same": reports["same"].to_dict(), "different": reports["different"].to_dict(),
            "gap": clever_hans_gap(reports["same"], reports["different"], resamples=resamples, seed=seed)}
