"""Distributed training that a test can catch failing: two gloo processes through the real ``engine.train.train``.

What a correct data-parallel run must satisfy, checked on the weights each rank holds after N optimiser steps:

1. both ranks hold identical weights (the gradients were all-reduced; buffers agree);
2. those weights differ from what rank 0 would have reached on its own batches (rank 1's gradients were used);
3. for a model without batch statistics and a loss that is a mean over images (CE only), they equal one process
   trained on the same global batch (rank 0's batch and rank 1's, concatenated) within 1e-5: DDP averages the ranks'
   gradients, and the average of per-rank means over equal local batches is the mean over the global batch.

SGD (not Adam) so that a sum instead of an average changes the update (Adam is nearly invariant to a gradient scale).
The model is a two-convolution network without BatchNorm (so (3) is exact; the reference models normalise per rank,
and PyTorch's SyncBatchNorm refuses CPU tensors), put in place of ``build_model`` inside each forked rank; everything
else (data sharding, criterion, optimiser, DDP wrapping, the loop, the time budget) is the engine's own.

The time budget is decided collectively: a rank whose clock says "out of time" stops every rank after the same
epoch; the test gives one rank a zero budget and the other none, with a wall-clock timeout so a hang fails instead
of blocking the suite.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import opreid_bench.engine.train  # noqa: F401  # imported before the fork, so the ranks start at once
import opreid_bench.modeling  # noqa: F401
from opreid_bench.data.records import DatasetSplits, ImageRecord
from opreid_bench.engine.config import load_method_config

WORLD = 2
TINY = [
    "data.height=32",
    "data.width=16",
    "data.batch_p=2",
    "data.batch_k=2",
    "data.padding=0",
    "data.flip_p=0",
    "data.random_erasing=false",
    "loss.triplet=false",  # CE is a mean over images: per-rank means average to the global mean
    "loss.ce_on=[global]",
    "optim.optimizer=sgd",
    "optim.lr=0.05",
    "optim.momentum=0.9",
    "optim.weight_decay=0.0005",
    "optim.warmup_epochs=0",
    "optim.milestones=[]",
    "optim.amp=false",
    "eval.period=0",
    "eval.at_end=false",
]
EPOCHS, ITERS = 2, 2  # N = 4 optimiser steps
TIMEOUT_S = 60.0


class TinyNet(nn.Module):
    """Two strided convolutions, global average pooling, a linear classifier: no batch statistics anywhere."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        feat = self.body(x).mean(dim=(2, 3))
        if not self.training:
            return feat
        return {"global_feat": feat, "logits": self.classifier(feat)}


def make_records(root: Path, ids: int = 8, per_id: int = 4, seed: int = 0) -> list[ImageRecord]:
    """Identity-coloured 32x16 noise PNGs; camid alternates 0/1."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for pid in range(ids):
        base = rng.integers(0, 256, size=(1, 1, 3))
        for k in range(per_id):
            img = np.clip(base + rng.integers(-60, 61, size=(32, 16, 3)), 0, 255).astype(np.uint8)
            path = root / f"{pid:04d}_c{k % 2}_{k:02d}.png"
            Image.fromarray(img).save(path)
            records.append(ImageRecord(str(path), pid, k % 2))
    return records


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    return DatasetSplits(name="tiny", train=make_records(tmp_path_factory.mktemp("ddp") / "images"))


def _cfg(*extra: str):
    return load_method_config("bot", [*TINY, *extra])


SCENARIOS = {
    # name: (--set overrides, time_limit_minutes per rank)
    "equivalence": ([f"optim.epochs={EPOCHS}", f"optim.max_iters_per_epoch={ITERS}"], [None, None]),
    # rank 1's clock says "out of time" after epoch 1, rank 0 has no budget at all
    "budget": (["optim.epochs=3", "optim.max_iters_per_epoch=1"], [None, 0.0]),
}


def _worker(rank: int, world_size: int, splits: DatasetSplits, root: str) -> None:
    """One rank: the engine's ``train`` with TinyNet in place of the reference model, once per scenario (one process
    group each); saves the weights this rank holds and what ``train`` returned to it.

    Each group meets through a file in the run's tmp dir, joined here before ``train`` (whose ``init_distributed``
    then finds it joined, and whose ``cleanup`` leaves it): a TCP port picked before the fork can be taken by another
    process (Ray's, from an earlier test) before rank 0 binds it, and the ranks then wait until the timeout."""
    torch.set_num_threads(1)
    import torch.distributed as dist

    import opreid_bench.modeling as modeling
    from opreid_bench.engine.train import train

    built: list[nn.Module] = []

    def build_tiny(_cfg: object, num_classes: int) -> nn.Module:
        built.append(TinyNet(num_classes))
        return built[-1]

    modeling.build_model = build_tiny  # type: ignore[assignment]  # train() looks it up at call time
    for name, (extra, limits) in SCENARIOS.items():
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
        dist.init_process_group("gloo", init_method=f"file://{root}/{name}.store", rank=rank, world_size=world_size)
        out = Path(root) / name
        result = train(_cfg(*extra), splits, out, progress=False, time_limit_minutes=limits[rank])
        assert built, "train() did not build its model through opreid_bench.modeling.build_model"
        assert not dist.is_initialized(), "train() did not leave the process group it was run in"
        torch.save(built.pop().state_dict(), out / f"rank{rank}.pt")
        (out / f"rank{rank}.json").write_text(json.dumps(
            {"epochs_done": result.epochs_done, "stopped_early": result.stopped_early}))


def _start_ranks(splits: DatasetSplits, root: Path) -> str | None:
    """Both scenarios in one start of 2 processes (process start-up is most of the cost); returns why the ranks did
    not finish (None when they did). A hang is killed after TIMEOUT_S."""
    import torch.multiprocessing as mp

    # fork, not spawn: the children inherit the imported torch and engine (spawn re-imports them: ~10 s of a
    # 2-core machine); the suite runs torch single-threaded (conftest), so no OpenMP pool is forked mid-use
    ctx = mp.start_processes(_worker, args=(WORLD, splits, str(root)), nprocs=WORLD, join=False,
                             start_method="fork")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                return f"the {WORLD} ranks did not finish within {TIMEOUT_S:.0f} s (a rank waits in a collective)"
    except Exception as exc:  # a rank raised: ProcessRaisedException carries its traceback
        return f"a rank failed: {exc}"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
            p.join()
    return None


@pytest.fixture(scope="module")
def runs(splits: DatasetSplits, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str | None]:
    """The scenarios' output root and why the ranks did not finish (None when they did).

    A start that hangs is tried once more in a fresh folder: forked ranks of a long test session hung once in a full
    suite run (never in isolation, 5 of 5). A time budget that is not decided collectively hangs rank 0
    in its next all_reduce on every try, so the second try does not hide that failure."""
    import torch._dynamo  # noqa: F401  # DDP's constructor imports it (seconds): once here, not once per rank

    problem = None
    for attempt in range(2):
        root = tmp_path_factory.mktemp(f"ddp_runs_try{attempt}")
        problem = _start_ranks(splits, root)
        if problem is None or not problem.startswith(f"the {WORLD} ranks did not finish"):
            return root, problem
    return root, f"{problem}, twice"


def _result(runs: tuple[Path, str | None], name: str) -> Path:
    root, problem = runs
    out = root / name
    if not all((out / f"rank{r}.json").exists() for r in range(WORLD)):
        pytest.fail(f"scenario {name!r} did not complete: {problem}")
    return out


def _rank_batches(splits: DatasetSplits, rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (images, pids) batches ``rank`` trains on, step by step, through the engine's own sharded loader."""
    from opreid_bench.engine.data import build_train_data

    cfg = _cfg()
    data = build_train_data(splits.train, cfg.data, seed=cfg.seed, rank=rank, world_size=WORLD)
    steps = []
    for epoch in range(EPOCHS):
        data.set_epoch(epoch)
        for it, (images, pids, _c, _i) in enumerate(data.loader):
            if it >= ITERS:
                break
            steps.append((images, pids))
    return steps


def _reference(splits: DatasetSplits, ranks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """One process, no DDP: each step trains on the concatenation of ``ranks``' batches of that step.

    ``ranks=(0, 1)`` is the global batch of the 2-process run; ``ranks=(0,)`` is rank 0 alone.
    """
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.optim import build_optimizer, build_scheduler

    cfg = _cfg(f"optim.epochs={EPOCHS}")
    per_rank = [_rank_batches(splits, r) for r in ranks]
    torch.manual_seed(cfg.seed)  # what train() does before building the model: the same initial weights
    model = TinyNet(len({r.pid for r in splits.train}))
    criterion = ReIDCriterion(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    model.train()
    for step, batches in enumerate(zip(*per_rank, strict=True)):
        loss, _ = criterion(model(torch.cat([b[0] for b in batches])), torch.cat([b[1] for b in batches]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % ITERS == 0:
            scheduler.step()
    return model.state_dict()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_two_ranks_equal_one_process_on_the_global_batch(splits: DatasetSplits, runs: tuple[Path, str | None]
                                                         ) -> None:
    torch.set_num_threads(1)
    out = _result(runs, "equivalence")
    w0 = torch.load(out / "rank0.pt", weights_only=True)
    w1 = torch.load(out / "rank1.pt", weights_only=True)
    lines = [json.loads(t) for t in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["iterations"] for h in lines] == [ITERS] * EPOCHS  # N = EPOCHS x ITERS steps were taken

    # (1) one model, not two: every parameter identical on both ranks
    between_ranks = _max_diff(w0, w1)
    assert between_ranks == 0.0, f"the ranks hold different weights ({between_ranks:.2e}): no gradient all-reduce"

    # the ranks were given different images (else "rank 1's gradients were used" could not be seen)
    b0, b1 = _rank_batches(splits, 0), _rank_batches(splits, 1)
    assert all(not torch.equal(x[0], y[0]) for x, y in zip(b0, b1, strict=True)), "rank 1 trains on rank 0's batches"

    torch.manual_seed(_cfg().seed)
    init = TinyNet(len({r.pid for r in splits.train})).state_dict()
    global_batch = _reference(splits, (0, 1))
    rank0_alone = _reference(splits, (0,))
    moved = _max_diff(global_batch, init)
    assert moved > 1e-2, f"training hardly moved the weights ({moved:.2e}): the comparison below would be vacuous"
    assert _max_diff(rank0_alone, global_batch) > 1e-3

    # (2) rank 1's gradients were used: rank 0 alone would have ended elsewhere (by far more than the tolerance)
    vs_alone = _max_diff(w0, rank0_alone)
    assert vs_alone > 1e-3, f"the 2-process weights are rank 0's alone ({vs_alone:.2e}): rank 1's work was unused"

    # (3) the 2-process run is one process on the global batch (gradient *average*: not a sum, not rank 0's)
    diff = _max_diff(w0, global_batch)
    assert diff < 1e-5, f"2 ranks vs one process on the same global batch: max |diff| {diff:.2e}"


def test_time_budget_is_decided_by_all_ranks(runs: tuple[Path, str | None]) -> None:
    """Rank 1's clock says "out of time" after epoch 1, rank 0 has no budget: both stop after epoch 1, no hang."""
    out = _result(runs, "budget")
    assert runs[1] is None, runs[1]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks == [{"epochs_done": 1, "stopped_early": True}] * WORLD, ranks
    lines = [json.loads(t) for t in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in lines] == [1]
    assert json.loads((out / "run.json").read_text())["stopped_early"] is True
    assert json.loads((out / ".opreid-output.json").read_text())["complete"] is False  # resumable, not whole
    assert _max_diff(torch.load(out / "rank0.pt", weights_only=True),
                     torch.load(out / "rank1.pt", weights_only=True)) == 0.0
