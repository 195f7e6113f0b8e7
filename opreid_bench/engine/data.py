"""Training and test loaders built from a method config and ImageRecords (AUG helper's transforms/sampler/dataset).

Every random draw depends only on (seed, epoch, position): the sampler on (seed, epoch), each image's augmentation
on (seed, epoch, index), CBE on (seed, epoch, iteration, rank). So a resumed run sees exactly the batches an
uninterrupted run would, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from opreid_bench.data.records import ImageRecord
from opreid_bench.engine.config import DataConfig
from opreid_bench.errors import DataError


@dataclass
class TrainData:
    """The loader plus the two objects that must hear about each new epoch."""

    loader: DataLoader
    sampler: object
    dataset: object
    num_classes: int

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]


def check_train_records(records: Sequence[ImageRecord], source: str) -> int:
    """Train pids must be 0..N-1 (what a classifier needs); returns N."""
    if not records:
        raise DataError(f"{source}: the training split is empty")
    pids = sorted({r.pid for r in records})
    if pids != list(range(len(pids))):
        raise DataError(f"{source}: training pids must be relabelled to 0..N-1 (found {pids[:5]}...); "
                        "use opreid_bench.data.records.relabel_pids")
    return len(pids)


def build_train_data(
    records: Sequence[ImageRecord],
    cfg: DataConfig,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    source: str = "training set",
    pin_memory: bool = False,
) -> TrainData:
    """P×K identity-balanced loader over ``records`` with the BoT train transform (RE off when CBE is on)."""
    from opreid_bench.data.samplers import IdentityBalancedSampler
    from opreid_bench.data.torch_dataset import ImageDataset
    from opreid_bench.data.transforms import build_train_transform

    num_classes = check_train_records(records, source)
    transform = build_train_transform(
        cfg.height, cfg.width, flip_p=cfg.flip_p, padding=cfg.padding, random_erasing=cfg.random_erasing,
        re_prob=cfg.re_prob, re_area=tuple(cfg.re_area), re_aspect=cfg.re_aspect, seed=seed,
    )
    dataset = ImageDataset(records, transform, seed=seed, cache_mb=cfg.decoded_cache_mb)
    sampler = IdentityBalancedSampler(
        dataset.pids, num_instances=cfg.batch_k, batch_size=cfg.batch_p * cfg.batch_k, seed=seed,
        rank=rank, world_size=world_size, source=source,
    )
    loader = DataLoader(
        dataset, batch_size=cfg.batch_p * cfg.batch_k, sampler=sampler, drop_last=True,
        num_workers=cfg.workers, pin_memory=pin_memory,
    )
    return TrainData(loader=loader, sampler=sampler, dataset=dataset, num_classes=num_classes)


def build_test_loader(records: Sequence[ImageRecord], cfg: DataConfig, *, workers: int | None = None) -> DataLoader:
    """Sequential loader with the test transform (resize + normalise), in record order."""
    from opreid_bench.data.torch_dataset import ImageDataset
    from opreid_bench.data.transforms import build_test_transform

    dataset = ImageDataset(records, build_test_transform(cfg.height, cfg.width))
    return DataLoader(dataset, batch_size=cfg.test_batch_size, shuffle=False,
                      num_workers=cfg.workers if workers is None else workers)


def resize_for_epoch(images: torch.Tensor, cfg: DataConfig, epoch: int) -> torch.Tensor:
    """The batch at the size epoch ``epoch`` trains on: average-pooled by ``low_res_factor`` during the first
    ``low_res_epochs`` (progressive resizing), unchanged afterwards. Pooling a normalised batch equals normalising
    the pooled pixels, so no other transform needs to know."""
    if epoch < cfg.low_res_epochs:
        return torch.nn.functional.avg_pool2d(images, cfg.low_res_factor)
    return images


def cbe_generator(seed: int, epoch: int, iteration: int, rank: int) -> np.random.Generator:
    """The generator of one CBE draw: a function of (seed, epoch, iteration, rank) only."""
    return np.random.default_rng([seed, epoch, iteration, rank, 0xCBE])


def apply_cbe(images: torch.Tensor, pids: torch.Tensor, cfg: DataConfig, rng: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """CBE, Sec. 3.2: [X_re; X_bce] (2B images) with duplicated labels."""
    from opreid_bench.data.cbe import compound_batch_erasing

    return compound_batch_erasing(images, pids, rng, re_prob=cfg.re_prob, re_area=tuple(cfg.re_area),
                                  re_aspect=cfg.re_aspect, stripes=tuple(cfg.cbe_stripes))
