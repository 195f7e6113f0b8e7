"""Feature extraction with a trained model, and evaluation of a model on a query/gallery pair.

Inference features are what ``ReIDModel`` returns in eval mode: the BNNeck output of the global pooling, or (the
config's ``retrieval_feature: pooled``) the pooled feature itself; with ME, that pooled feature L2-normalised, minus
the momentum mean mu, re-normalised. The reconstructive-pooling branch and the classifiers
do no work at inference.

Importing this module does not import torch: the helpers the onnxruntime extractor shares (:func:`collect_features`,
:func:`feature_set`, the junk rules) run without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from opreid_bench.data.records import ImageRecord

if TYPE_CHECKING:
    import torch

    from opreid_bench.engine.config import DataConfig, MethodConfig

# keys of the feature-file evaluation's JSON that `evaluate --method` also prints
METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP", "num_valid_queries", "num_skipped_queries")


def extract_features(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    cfg: MethodConfig,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "extract",
) -> np.ndarray:
    """(N, D) float32 inference features of ``records`` (the method's test transform, record order)."""
    return extract_with(model, records, cfg.data, device=device, progress=progress, description=description)


def extract_with(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    data: DataConfig,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "extract",
) -> np.ndarray:
    """(N, D) float32 features of ``records`` from any model whose eval forward returns them, with the test transform
    of ``data`` (size, batch, workers)."""
    import torch

    from opreid_bench.engine.data import build_test_loader

    device = torch.device(device)
    model.eval()
    loader = build_test_loader(records, data)

    def features_of(images: torch.Tensor, _idx: torch.Tensor) -> np.ndarray:
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            feats = model(images.to(device, non_blocking=True))
        return feats.float().cpu().numpy()

    with torch.no_grad():
        return collect_features(loader, features_of, len(records), progress=progress, description=description)


def collect_features(loader: Any, features_of: Any, total: int, *, progress: bool = True,
                     description: str = "extract") -> np.ndarray:
    """(N, D) float32 features from ``features_of(images, indices)`` over every batch of ``loader``, in loader
    order, with a rich progress bar; shared by the PyTorch and the onnxruntime extractors."""
    chunks: list[np.ndarray] = []
    bar = None
    if progress:
        from opreid_bench.progress_bars import transient_progress

        bar = transient_progress()
        bar.start()
        task = bar.add_task(description, total=total)
    try:
        for images, _pids, _camids, idx in loader:
            feats = features_of(images, idx)
            chunks.append(feats)
            if bar is not None:
                bar.update(task, advance=feats.shape[0])
    finally:
        if bar is not None:
            bar.stop()
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)


def feature_set(records: Sequence[ImageRecord], features: np.ndarray, source: str | Path | None = None) -> Any:
    """A :class:`opreid_bench.evaluation.features.FeatureSet` of ``features`` with the records' labels. With
    ``source`` (the checkpoint the features came from), NaN/inf features are an error naming it and the image."""
    from opreid_bench.errors import CheckpointError
    from opreid_bench.evaluation.features import FeatureSet

    if source is not None and features.size and not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise CheckpointError(f"{source}: the model gives NaN/inf features for {records[row].path} "
                              "(NaN/inf in the checkpoint's weights?)")

    occluded = [r.occluded for r in records]
    occ = None if any(o is None for o in occluded) else np.asarray(occluded, dtype=bool)
    return FeatureSet(
        features=features,
        pids=np.asarray([r.pid for r in records], dtype=np.int64),
        camids=np.asarray([r.camid for r in records], dtype=np.int64),
        paths=[r.path for r in records],
        occluded=occ,
    )


def default_junk(query: Sequence[ImageRecord], gallery: Sequence[ImageRecord]) -> str:
    """``none`` for cross-set protocols (query and gallery share no camera id), else ``market``."""
    shared = {r.camid for r in query} & {r.camid for r in gallery}
    return "market" if shared else "none"


def metrics_dict(result: Any) -> dict[str, Any]:
    """The evaluator's result as the feature-file JSON keys (fractions)."""
    if isinstance(result, dict):
        data = result
    elif hasattr(result, "to_dict"):
        data = result.to_dict()
    else:
        data = {"rank1": result.rank(1), "rank5": result.rank(5), "rank10": result.rank(10), "mAP": result.mAP,
                "mINP": result.mINP, "num_valid_queries": result.num_valid_queries,
                "num_skipped_queries": result.num_skipped_queries}
    return {k: data[k] for k in METRIC_KEYS if k in data}


def evaluate_model(
    model: torch.nn.Module,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    cfg: MethodConfig,
    *,
    junk: str | None = None,
    metric: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Extract query and gallery features and evaluate them with the trusted evaluator."""
    from opreid_bench.evaluation.evaluator import evaluate_features

    qf = feature_set(query, extract_features(model, query, cfg, device=device, progress=progress,
                                             description="query"))
    gf = feature_set(gallery, extract_features(model, gallery, cfg, device=device, progress=progress,
                                               description="gallery"))
    result = evaluate_features(qf, gf, metric=metric or cfg.eval.metric, junk=junk or default_junk(query, gallery))
    return metrics_dict(result)


def write_features(
    path: str | Path,
    model: torch.nn.Module,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    cfg: MethodConfig,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Extract and write the feature HDF5 file (``/query``, ``/gallery``) atomically."""
    from opreid_bench.evaluation.features import write_feature_file

    qf = feature_set(query, extract_features(model, query, cfg, device=device, progress=progress,
                                             description="query"))
    gf = feature_set(gallery, extract_features(model, gallery, cfg, device=device, progress=progress,
                                               description="gallery"))
    write_feature_file(path, qf, gf)
    return Path(path)


def dataset_junk(dataset: str) -> str | None:
    """The junk rule of the dataset's evaluation protocol (``protocols/evaluation/``), or None if it has none."""
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.data.protocols import load_protocol
    from opreid_bench.errors import OpreidError

    try:
        protocol = getattr(DATASETS.get(dataset), "protocol", None)
        return load_protocol(protocol).junk if protocol else None
    except OpreidError:
        return None


def model_feature_sets(
    weights: str | Path,
    dataset: str,
    root: str | Path,
    *,
    method: str | None = None,
    device: str = "cpu",
    options: dict[str, str] | None = None,
    progress: bool = True,
) -> tuple[Any, Any, dict[str, Any]]:
    """Query/gallery FeatureSets of ``dataset`` under ``root`` from the checkpoint ``weights`` (ME applied).

    Returns (query, gallery, attrs); ``attrs`` carries the dataset's junk rule and the method's metric, which
    ``evaluate`` uses as defaults and ``extract`` stores in the feature file.
    """
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.distributed import DistInfo, resolve_device
    from opreid_bench.errors import DataError
    from opreid_bench.outputs import content_digest

    dev = resolve_device(device, DistInfo())
    model, cfg, state = load_model_from_checkpoint(weights, expect_method=method, device=dev)
    splits = load_dataset(dataset, root, **(options or {}))
    if not splits.query or not splits.gallery:
        raise DataError(f"{root}: dataset '{dataset}' has no query/gallery split to extract")
    query = feature_set(splits.query, extract_features(model, splits.query, cfg, device=dev, progress=progress,
                                                       description="query"), source=weights)
    gallery = feature_set(splits.gallery, extract_features(model, splits.gallery, cfg, device=dev,
                                                           progress=progress, description="gallery"), source=weights)
    attrs = {
        "dataset": dataset,
        "junk": dataset_junk(dataset) or default_junk(splits.query, splits.gallery),
        "metric": cfg.eval.metric,
        "method": str(state["method"]),
        "weights": str(weights),
        "weights_sha256": content_digest(weights),
        "trained_on": str(state.get("dataset", "")),
        "epoch": int(state["epoch"]),
        "height": cfg.data.height,
        "width": cfg.data.width,
        **({"dataset_options": options_text(options)} if options else {}),
    }
    return query, gallery, attrs


def options_text(options: dict[str, str]) -> str:
    """Dataset loader options as one sorted ``key=value,key=value`` text: recorded with the features (an HDF5
    attribute holds no dict), since the same dataset read with other options is another protocol."""
    return ",".join(f"{k}={v}" for k, v in sorted(options.items()))


def result_key(dataset: str, options: str = "") -> str:
    """The key of one evaluation in ``run.json``'s ``results``: the dataset's name, with the loader options
    (:func:`options_text`) when any were given (``partial_reid (query_folder=partial)``). Why: the same dataset read
    with other options is another protocol (another query set), and its numbers must neither replace nor read as
    the standard one's."""
    return f"{dataset} ({options})" if options else dataset
