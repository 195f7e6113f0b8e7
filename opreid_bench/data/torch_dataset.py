"""A torch Dataset over ImageRecords: decode with Pillow, transform, return (image, pid, camid, index).

Randomness: a transform that declares ``uses_rng = True`` (the ones from :mod:`opreid_bench.data.transforms`) gets a
``numpy.random.Generator`` seeded from (seed, epoch, index), so the augmented image depends only on those three
numbers, not on the number of loader workers or their scheduling. Call ``set_epoch`` every epoch (with persistent
workers, also rebuild the loader or the workers keep their copy of the epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from opreid_bench.data.decode import load_rgb
from opreid_bench.data.records import ImageRecord

__all__ = ["ImageDataset", "load_rgb"]


class ImageDataset(Dataset):
    """``records`` -> (transform(image), pid, camid, index); ``transform`` maps a PIL image to a (3, H, W) tensor.

    ``cache_mb > 0`` keeps decoded images in memory up to that many MiB (the first ones asked for), so a small
    training set is decoded once per process instead of once per epoch; transforms copy the image before changing it.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[..., torch.Tensor],
        *,
        seed: int = 0,
        epoch: int = 0,
        cache_mb: float = 0,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = int(epoch)
        self._cache: dict[int, Image.Image] = {}
        self._cache_left = int(cache_mb * 2**20)  # bytes

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws of ``epoch`` from now on."""
        self.epoch = int(epoch)

    @property
    def pids(self) -> list[int]:
        """The pid of every item, in order (what IdentityBalancedSampler takes)."""
        return [r.pid for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        index = int(index)
        rec = self.records[index]
        img = self._cache.get(index)
        if img is None:
            img = load_rgb(rec.path)
            nbytes = img.width * img.height * 3
            if nbytes <= self._cache_left:
                self._cache[index] = img
                self._cache_left -= nbytes
        if getattr(self.transform, "uses_rng", False):
            rng = np.random.default_rng([self.seed, self.epoch, index])
            out: Any = self.transform(img, rng)
        else:
            out = self.transform(img)
        return out, rec.pid, rec.camid, index
