"""IdentityBalancedSampler: P×K composition, determinism per (seed, epoch), DDP shards, too-small-data errors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from opreid_bench.data.samplers import IdentityBalancedSampler
from opreid_bench.errors import DataError


def _pids(n_ids: int = 20, per_id: tuple[int, ...] = (2, 4, 5, 8, 13)) -> list[int]:
    pids: list[int] = []
    for pid in range(n_ids):
        pids += [pid * 10] * per_id[pid % len(per_id)]  # non-contiguous pids are fine
    return pids


def test_batches_are_p_identities_times_k() -> None:
    pids = _pids()
    s = IdentityBalancedSampler(pids, num_instances=4, batch_size=16, seed=0)
    batches = s.batches()
    assert len(batches) >= 3
    for batch in batches:
        assert len(batch) == 16
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {4}
    flat = list(iter(s))
    assert flat == [i for b in batches for i in b] and len(s) == len(flat)


def test_small_identities_are_drawn_with_replacement() -> None:
    pids = [0, 0, 1, 1, 1, 1, 2, 3, 3, 3]
    s = IdentityBalancedSampler(pids, num_instances=4, batch_size=8, seed=3)
    for batch in s.batches():
        for pid, c in Counter(pids[i] for i in batch).items():
            assert c == 4
            assert {pids[i] for i in batch if pids[i] == pid} == {pid}


def test_images_of_an_identity_are_not_repeated_when_enough() -> None:
    pids = [p for p in range(12) for _ in range(8)]
    s = IdentityBalancedSampler(pids, num_instances=4, batch_size=16, seed=1)
    flat = list(iter(s))
    assert len(flat) == len(set(flat))  # chunks partition each identity's images


def test_deterministic_per_seed_and_epoch() -> None:
    pids = _pids()
    a = IdentityBalancedSampler(pids, 4, 16, seed=5)
    b = IdentityBalancedSampler(pids, 4, 16, seed=5)
    assert list(a) == list(b)
    c = IdentityBalancedSampler(pids, 4, 16, seed=6)
    assert list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(a) == list(IdentityBalancedSampler(pids, 4, 16, seed=5, epoch=1))
    a.set_epoch(0)
    assert list(a) == first


def test_ddp_shards_disjoint_and_equal() -> None:
    pids = [p for p in range(30) for _ in range(8)]
    full = IdentityBalancedSampler(pids, 4, 16, seed=2).batches()
    shards = [IdentityBalancedSampler(pids, 4, 16, seed=2, rank=r, world_size=3).batches() for r in range(3)]
    assert len({len(sh) for sh in shards}) == 1 and len(shards[0]) == len(full) // 3
    seen: set[int] = set()
    for r, sh in enumerate(shards):
        assert sh == full[r::3][: len(full) // 3]  # whole P×K batches of the common order
        idx = {i for b in sh for i in b}
        assert not idx & seen
        seen |= idx


def test_works_as_dataloader_sampler() -> None:
    pids = _pids()
    ds = TensorDataset(torch.arange(len(pids)), torch.tensor(pids))
    s = IdentityBalancedSampler(pids, 4, 16, seed=0)
    loader = DataLoader(ds, batch_size=16, sampler=s, drop_last=True)
    got = [b[0].tolist() for b in loader]
    assert got == s.batches()


def test_too_few_identities_names_the_numbers() -> None:
    pids = [p for p in range(3) for _ in range(6)]
    with pytest.raises(DataError, match=r"3 identities .*16×4 = 64.*at least P = 16") as exc:
        IdentityBalancedSampler(pids, 4, 64, source="data/train.csv")
    assert "data/train.csv" in str(exc.value)


def test_too_few_batches_for_world_size() -> None:
    pids = [p for p in range(4) for _ in range(4)]
    with pytest.raises(DataError, match="world_size"):
        IdentityBalancedSampler(pids, 4, 16, world_size=2, rank=1)


def test_bad_batch_size() -> None:
    with pytest.raises(DataError, match="multiple"):
        IdentityBalancedSampler(_pids(), 4, 18)
