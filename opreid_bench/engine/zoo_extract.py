"""Query/gallery features of a dataset from a model-zoo checkpoint (``--zoo torchreid:ARCH`` or
``--zoo fastreid:CONFIG.yml``, ``--weights FILE``), with the zoo's own test transform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Pillow's filters by the names ZooPreprocessing / the ONNX metadata use (torchvision's Resize on a PIL image calls
# Image.resize with the same filter: fast-reid's T.Resize(size, interpolation=3) is Image.BICUBIC)
PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


@dataclass
class ResizeFirst:
    """Resize a crop to the size of ``transform`` with ``interpolation``, then run ``transform`` (a test-mode
    :class:`~opreid_bench.data.transforms.ReIDTransform`, which leaves an image of its size unresized): so a model
    gets the resize filter it was tested with and otherwise the shared to-tensor / normalise path. Torch-free until
    called as a tensor transform; :meth:`array` is the numpy path of the onnxruntime extractor."""

    transform: Any
    interpolation: str = "bilinear"

    uses_rng = True  # ImageDataset passes its generator on; the wrapped test transform draws nothing

    def __post_init__(self) -> None:
        if self.interpolation not in PIL_FILTERS:
            raise ValueError(f"interpolation must be one of {', '.join(PIL_FILTERS)}, got {self.interpolation!r}")

    @property
    def height(self) -> int:
        return int(self.transform.height)

    @property
    def width(self) -> int:
        return int(self.transform.width)

    def resized(self, img: Image.Image) -> Image.Image:
        """``img`` in RGB at the transform's size (resized with ``interpolation`` if it is not that size)."""
        img = img.convert("RGB")
        size = (self.width, self.height)
        return img if img.size == size else img.resize(size, PIL_FILTERS[self.interpolation])

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Any:
        return self.transform(self.resized(img), rng)

    def array(self, img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """The same values as a float32 numpy array (3, H, W), written into ``out`` when given."""
        return self.transform.array(self.resized(img), out=out)


def zoo_transform(prep: Any) -> ResizeFirst:
    """The test transform of a :class:`~opreid_bench.modeling.zoo.ZooPreprocessing`: resize with its filter, [0, 1]
    RGB, (x - mean) / std."""
    from opreid_bench.data.transforms import ReIDTransform

    base = ReIDTransform(height=prep.height, width=prep.width, train=False, mean=tuple(prep.mean),
                         std=tuple(prep.std))
    return ResizeFirst(base, prep.interpolation)


def zoo_feature_sets(
    spec: str,
    weights: str | Path,
    dataset: str,
    root: str | Path,
    *,
    device: str = "cpu",
    options: dict[str, str] | None = None,
    progress: bool = True,
    input_size: tuple[int, int] | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(query, gallery, attrs) of ``dataset`` from the zoo model ``spec`` loaded from ``weights``.

    The features are the zoo's eval-mode forward on its default test input (torchreid: 256x128, bilinear, ImageNet
    mean/std, RGB; fast-reid: the config's SIZE_TEST, bicubic, PIXEL_MEAN / PIXEL_STD, RGB); the metric is the zoo's
    default evaluation distance (torchreid: euclidean, unnormalised; fast-reid: the config's TEST.METRIC, cosine by
    default). ``input_size`` (height, width) replaces the default size, for a model trained at another one.
    """
    import torch
    from torch.utils.data import DataLoader

    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.data.torch_dataset import ImageDataset
    from opreid_bench.engine.config import DataConfig
    from opreid_bench.engine.distributed import DistInfo, resolve_device
    from opreid_bench.engine.extract import collect_features, dataset_junk, default_junk, feature_set, options_text
    from opreid_bench.errors import DataError
    from opreid_bench.modeling.zoo import load_zoo_model
    from opreid_bench.outputs import content_digest

    dev = torch.device(resolve_device(device, DistInfo()))
    model, prep = load_zoo_model(spec, weights, input_size=input_size)
    model = model.to(dev).eval()
    splits = load_dataset(dataset, root, **(options or {}))
    if not splits.query or not splits.gallery:
        raise DataError(f"{root}: dataset '{dataset}' has no query/gallery split to extract")
    data = DataConfig(height=prep.height, width=prep.width)
    transform = zoo_transform(prep)

    @torch.no_grad()
    def features_of(images: torch.Tensor, _idx: torch.Tensor) -> np.ndarray:
        with torch.autocast(device_type=dev.type, enabled=dev.type == "cuda"):
            feats = model(images.to(dev, non_blocking=True))
        return feats.float().cpu().numpy()

    def extract(records: Any, name: str) -> np.ndarray:
        loader = DataLoader(ImageDataset(records, transform), batch_size=data.test_batch_size, shuffle=False,
                            num_workers=data.workers)
        return collect_features(loader, features_of, len(records), progress=progress, description=name)

    query, gallery = (feature_set(records, extract(records, name), source=weights)
                      for name, records in (("query", splits.query), ("gallery", splits.gallery)))
    attrs = {"dataset": dataset, "junk": dataset_junk(dataset) or default_junk(splits.query, splits.gallery),
             "metric": prep.metric, "method": spec, "weights": str(weights),
             "weights_sha256": content_digest(weights), "height": prep.height,
             "width": prep.width, "mean": list(prep.mean), "std": list(prep.std),
             "interpolation": prep.interpolation,
             **({"dataset_options": options_text(options)} if options else {})}
    return query, gallery, attrs
