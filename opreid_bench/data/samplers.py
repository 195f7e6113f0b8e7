"""Identity-balanced (P×K) batch sampling, the ReID standard (BoT's RandomIdentitySampler, fast-reid's balanced one).

Each batch holds P identities × K images (paper: 64 = 16 × 4). Per epoch, every identity's images are shuffled and
cut into chunks of K (an identity with fewer than K images is drawn with replacement up to K, as in BoT/fast-reid;
a trailing chunk shorter than K is dropped); then, while at least P identities still have chunks, P of them are
drawn uniformly without replacement and one chunk of each forms a batch. The order depends only on (seed, epoch),
so every DDP rank computes the same batch list and takes every ``world_size``-th whole batch (equal counts, the tail
dropped), which makes the shards disjoint in batch positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from opreid_bench.errors import DataError

__all__ = ["IdentityBalancedSampler"]


class IdentityBalancedSampler(Sampler[int]):
    """Yields dataset indices in whole P×K batches; use with ``DataLoader(batch_size=batch_size, drop_last=True)``.

    Args:
        pids: the identity of every dataset item (index i -> pids[i]).
        num_instances: K, images per identity in a batch.
        batch_size: P×K; must be a multiple of K.
        seed, epoch: the shuffling depends only on these two (``set_epoch`` each epoch).
        rank, world_size: DDP sharding; each rank gets every ``world_size``-th batch.
        source: a name for error messages (the dataset or its manifest file).
    """

    def __init__(
        self,
        pids: Sequence[int],
        num_instances: int = 4,
        batch_size: int = 64,
        seed: int = 0,
        epoch: int = 0,
        *,
        rank: int = 0,
        world_size: int = 1,
        source: str = "training set",
    ) -> None:
        if num_instances < 1:
            raise DataError(f"{source}: num_instances (K) must be >= 1, got {num_instances}")
        if batch_size < num_instances or batch_size % num_instances:
            raise DataError(
                f"{source}: batch_size {batch_size} must be a positive multiple of num_instances (K) {num_instances}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"{source}: rank {rank} is outside 0..{world_size - 1} (world_size {world_size})")
        self.pids = [int(p) for p in pids]
        self.num_instances = num_instances
        self.batch_size = batch_size
        self.num_pids_per_batch = batch_size // num_instances
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.rank = rank
        self.world_size = world_size
        self.source = source
        self._index: dict[int, list[int]] = {}
        for i, pid in enumerate(self.pids):
            self._index.setdefault(pid, []).append(i)
        self._unique = sorted(self._index)
        n_ids, p, k = len(self._unique), self.num_pids_per_batch, num_instances
        if n_ids < p:
            raise DataError(
                f"{source}: {n_ids} identities ({len(self.pids)} images) cannot fill one batch of "
                f"P×K = {p}×{k} = {batch_size}: need at least P = {p} identities; lower the batch size"
            )
        self._cache: tuple[int, list[list[int]]] | None = None
        if not self.batches():
            raise DataError(
                f"{source}: {n_ids} identities give {self._num_global_batches} batch(es) of {p}×{k}, "
                f"fewer than world_size = {world_size}; lower the batch size or the number of processes"
            )

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def _global_batches(self) -> list[list[int]]:
        """All batches of this epoch, identical on every rank (BoT's RandomIdentitySampler, seeded)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.num_instances
        chunks: dict[int, list[list[int]]] = {}
        for pid in self._unique:
            idxs = np.asarray(self._index[pid], dtype=np.int64)
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            idxs = rng.permutation(idxs)
            n = len(idxs) // k
            chunks[pid] = [idxs[j * k : (j + 1) * k].tolist() for j in range(n)]
        available = list(self._unique)
        batches: list[list[int]] = []
        while len(available) >= self.num_pids_per_batch:
            picks = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            selected = [available[j] for j in picks]
            batch: list[int] = []
            for pid in selected:
                batch.extend(chunks[pid].pop())
                if not chunks[pid]:
                    available.remove(pid)
            batches.append(batch)
        return batches

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch (each exactly ``batch_size`` indices)."""
        if self._cache is None or self._cache[0] != self.epoch:
            glob = self._global_batches()
            self._num_global_batches = len(glob)
            per_rank = len(glob) // self.world_size
            mine = glob[self.rank :: self.world_size][:per_rank]
            self._cache = (self.epoch, mine)
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return len(self.batches()) * self.batch_size
