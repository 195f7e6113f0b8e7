"""Query/gallery features of a dataset from a model-zoo checkpoint (``--zoo torchreid:ARCH --weights FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def zoo_feature_sets(
    spec: str,
    weights: str | Path,
    dataset: str,
    root: str | Path,
    *,
    device: str = "cpu",
    options: dict[str, str] | None = None,
    progress: bool = True,
) -> tuple[Any, Any, dict[str, Any]]:
    """(query, gallery, attrs) of ``dataset`` from the zoo model ``spec`` loaded from ``weights``.

    The features are the zoo's eval-mode forward on its default test input (torchreid: 256x128, bilinear, ImageNet
    mean/std, RGB); the metric is the zoo's default evaluation distance (torchreid: euclidean, unnormalised).
    """
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.config import DataConfig
    from opreid_bench.engine.distributed import DistInfo, resolve_device
    from opreid_bench.engine.extract import dataset_junk, default_junk, extract_with, feature_set
    from opreid_bench.errors import DataError
    from opreid_bench.modeling.zoo import load_zoo_model

    dev = resolve_device(device, DistInfo())
    model, prep = load_zoo_model(spec, weights)
    model = model.to(dev)
    splits = load_dataset(dataset, root, **(options or {}))
    if not splits.query or not splits.gallery:
        raise DataError(f"{root}: dataset '{dataset}' has no query/gallery split to extract")
    data = DataConfig(height=prep.height, width=prep.width)
    query, gallery = (feature_set(records, extract_with(model, records, data, device=dev, progress=progress,
                                                        description=name))
                      for name, records in (("query", splits.query), ("gallery", splits.gallery)))
    attrs = {"dataset": dataset, "junk": dataset_junk(dataset) or default_junk(splits.query, splits.gallery),
             "metric": "euclidean", "method": spec, "weights": str(weights), "height": prep.height,
             "width": prep.width}
    return query, gallery, attrs
