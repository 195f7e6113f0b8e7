"""The training engine on tiny generated data: loss falls, resume is exact, checkpoints describe themselves, DDP runs.

Data: 6 identities x 4 random-pattern 64x32 PNGs written to tmp_path (each identity has its own colour layout plus
per-image noise), MobileNetV2 without pretrained weights, P x K = 3 x 4.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opreid_bench.data.records import DatasetSplits, ImageRecord
from opreid_bench.engine.checkpoint import load_checkpoint, load_model_from_checkpoint, save_checkpoint
from opreid_bench.engine.config import load_method_config
from opreid_bench.engine.train import train
from opreid_bench.errors import CheckpointError, DataError

TINY = [
    "model.backbone=mobilenetv2",
    "data.height=64",
    "data.width=32",
    "data.batch_p=3",
    "data.batch_k=4",
    "data.padding=0",  # the loop is under test here, not the augmentations (tests/test_aug_*)
    "data.flip_p=0",
    "data.test_batch_size=32",
    "optim.warmup_epochs=0",
    "optim.lr=0.001",
    "optim.milestones=[]",
    "eval.period=0",
]


def make_images(root: Path, ids: int = 6, per_id: int = 4, seed: int = 0) -> list[ImageRecord]:
    """An identity-specific, mirror-symmetric 8x4 block pattern + per-image noise, saved as PNG; camid alternates 0/1."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for pid in range(ids):
        half = rng.integers(0, 256, size=(8, 2, 3))
        blocks = np.concatenate([half, half[:, ::-1]], axis=1)  # mirror-symmetric: a flip keeps the identity
        pattern = np.kron(blocks, np.ones((8, 8, 1), dtype=np.int64))  # 64x32
        for k in range(per_id):
            img = np.clip(pattern + rng.integers(-20, 21, size=pattern.shape), 0, 255).astype(np.uint8)
            path = root / f"{pid:04d}_c{k % 2}_{k:02d}.png"
            Image.fromarray(img).save(path)
            records.append(ImageRecord(str(path), pid, k % 2))
    return records


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    records = make_images(tmp_path_factory.mktemp("tiny") / "images")
    query = [r for r in records if r.camid == 0]
    gallery = [r for r in records if r.camid == 1]
    return DatasetSplits(name="tiny", train=records, query=query, gallery=gallery)


def tiny_cfg(method: str, *extra: str):
    return load_method_config(method, [*TINY, *extra])


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(t) for t in (run / "metrics.jsonl").read_text().splitlines()]


def test_short_run_loss_falls_and_writes_run_dir(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    cfg = tiny_cfg("bot", "optim.epochs=5", "eval.period=5", "data.random_erasing=false", "data.batch_p=6",
                   "data.batch_k=2")
    result = train(cfg, tiny_splits, tmp_path / "run", progress=False)
    lines = read_metrics(tmp_path / "run")
    assert [h["epoch"] for h in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["loss"] < 0.6 * lines[0]["loss"], [h["loss"] for h in lines]
    assert {"ce_global", "triplet_global", "acc", "img_per_s"} <= set(lines[0])
    assert set(result.final_metrics) >= {"rank1", "mAP"} and 0.0 <= result.final_metrics["mAP"] <= 1.0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["method"] == "bot" and run["backbone"] == "mobilenetv2" and run["epochs"] == 5
    assert (run["height"], run["width"]) == (64, 32) and run["results"]["tiny"]["rank1"] == result.final_metrics["rank1"]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists() and (tmp_path / "run" / "model.pt").exists()


def test_checkpoint_is_self_describing(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    cfg = tiny_cfg("ours", "optim.epochs=1", "optim.max_iters_per_epoch=1")
    train(cfg, tiny_splits, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "model.pt")
    assert state["method"] == "ours" and state["num_classes"] == 6 and state["dataset"] == "tiny"
    assert state["epoch"] == 1 and state["config"]["model"]["dnl"] is True
    assert "me.mu" in state["model"] and float(state["model"]["me.mu"].abs().sum()) > 0  # ME buffer, Eq. (6)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert {"optimizer", "scheduler", "rng"} <= set(last)
    # rebuilt from the checkpoint alone, in eval mode, giving inference features
    model, loaded_cfg, _ = load_model_from_checkpoint(tmp_path / "run" / "model.pt", expect_method="ours")
    assert loaded_cfg.model.momentum_elimination and not model.training
    with pytest.raises(CheckpointError, match="method 'ours', not 'bot'"):
        load_model_from_checkpoint(tmp_path / "run" / "model.pt", expect_method="bot")
    # a checkpoint of the right format whose weights do not fit: a one-line error naming the key
    bad = dict(state)
    bad["num_classes"] = 7
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model_from_checkpoint(tmp_path / "bad.pt")
    torch.save({"features.0.0.weight": torch.zeros(1)}, tmp_path / "raw.pt")
    with pytest.raises(CheckpointError, match="not an opreid-bench checkpoint"):
        load_checkpoint(tmp_path / "raw.pt")
    # a second train into the same run directory without --resume refuses to clobber it
    with pytest.raises(CheckpointError, match="--resume"):
        train(cfg, tiny_splits, tmp_path / "run", progress=False)


def test_resume_equals_uninterrupted_run(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    extra = ["optim.max_iters_per_epoch=1", "optim.milestones=[1]"]  # the lr changes mid-run
    straight = train(tiny_cfg("ours", "optim.epochs=2", *extra), tiny_splits, tmp_path / "a", progress=False)
    assert straight.epochs_done == 2
    train(tiny_cfg("ours", "optim.epochs=1", *extra), tiny_splits, tmp_path / "b", progress=False)
    resumed = train(tiny_cfg("ours", "optim.epochs=2", *extra), tiny_splits, tmp_path / "b", resume=True,
                    progress=False)
    assert resumed.epochs_done == 2
    from opreid_bench.outputs import read_marker

    assert read_marker(tmp_path / "a")["complete"] is True and read_marker(tmp_path / "b")["complete"] is True
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [h["epoch"] for h in read_metrics(tmp_path / "b")] == [1, 2]
    assert read_metrics(tmp_path / "a")[1]["loss"] == read_metrics(tmp_path / "b")[1]["loss"]
    # resuming with another architecture is refused
    with pytest.raises(CheckpointError, match="different config"):
        train(tiny_cfg("ours", "optim.epochs=3", "model.dnl=false", *extra), tiny_splits, tmp_path / "b",
              resume=True, progress=False)
    # ... and with another method, which is named as the cause
    with pytest.raises(CheckpointError, match="--resume of a 'ours' run with method 'bot'"):
        train(tiny_cfg("bot", "optim.epochs=3", *extra), tiny_splits, tmp_path / "b", resume=True, progress=False)
    # `train --resume` without --method takes the run's own config from its checkpoint, --set values on top
    from opreid_bench.engine.train import resume_config

    assert resume_config(tmp_path / "b") == tiny_cfg("ours", "optim.epochs=2", *extra)
    assert resume_config(tmp_path / "b", ["optim.epochs=3"]) == tiny_cfg("ours", "optim.epochs=3", *extra)
    assert resume_config(tmp_path / "b", ["model.dnl=false"]) != tiny_cfg("ours", "optim.epochs=2", *extra)
    with pytest.raises(CheckpointError, match="takes the run's config from this checkpoint, and there is none"):
        resume_config(tmp_path / "c")


def test_dataset_too_small_for_pk(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    cfg = tiny_cfg("bot", "data.batch_p=8", "optim.epochs=1")
    with pytest.raises(DataError, match="P×K"):
        train(cfg, tiny_splits, tmp_path / "run", progress=False)


def test_missing_pretrained_file_is_clear(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    cfg = tiny_cfg("bot", "optim.epochs=1", f"model.pretrained={tmp_path / 'nope.pth'}")
    with pytest.raises(CheckpointError, match="nope.pth"):
        train(cfg, tiny_splits, tmp_path / "run", progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, splits: DatasetSplits, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    cfg = tiny_cfg("baseline", "optim.epochs=1", "data.batch_p=2")
    train(cfg, splits, out, progress=False)
    state = load_checkpoint(Path(out) / "model.pt") if rank == 0 else None
    if rank == 0:
        torch.save(state["model"], Path(out) / "rank0.pt")


def test_two_process_gloo_run(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    for attempt in range(2):
        out = tmp_path / f"ddp{attempt}"
        try:
            mp.spawn(_ddp_worker, args=(2, _free_port(), tiny_splits, str(out)), nprocs=2, join=True)
            break
        except mp.ProcessExitedException as exc:
            # a rank killed by a signal gets one more try in a fresh folder (seen once, in a clean-clone run of the
            # suite on a busy machine: SIGABRT, "terminate called without an active exception", after
            # the epoch's metrics were written); a rank that raises fails at once (ProcessRaisedException)
            if attempt == 1 or exc.signal_name is None:
                raise
    lines = read_metrics(out)
    assert len(lines) == 1
    # 6 ids give 3 batches of 2x4 per epoch; each of the 2 ranks takes 1 (the odd one is dropped): 16 images
    assert lines[0]["images"] == 16 and lines[0]["iterations"] == 1
    weights = torch.load(out / "rank0.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_save_checkpoint_is_atomic(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    from opreid_bench.modeling import build_model

    cfg = tiny_cfg("bot")
    model = build_model(cfg.model, 6)
    path = save_checkpoint(tmp_path / "c.pt", model=model, cfg=cfg, num_classes=6, dataset="tiny", epoch=0)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    assert load_checkpoint(path)["config"]["method"] == "bot"
    # the same state saved again (through another random temporary name) gives the same bytes
    again = save_checkpoint(tmp_path / "d.pt", model=model, cfg=cfg, num_classes=6, dataset="tiny", epoch=0)
    assert again.read_bytes() == path.read_bytes()


def test_channels_last_trains_the_same_model_in_nhwc(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    """``optim.channels_last`` trains in NHWC (what makes oneDNN's CPU convolutions faster) and learns the same
    weights as NCHW up to float rounding."""
    extra = ["model.backbone=resnet_mini", "optim.epochs=1", "optim.max_iters_per_epoch=2"]
    weights = {}
    for cl in (False, True):
        train(tiny_cfg("ours", *extra, f"optim.channels_last={str(cl).lower()}"), tiny_splits, tmp_path / str(cl),
              progress=False)
        weights[cl] = load_checkpoint(tmp_path / str(cl) / "model.pt")["model"]
    conv = weights[True]["backbone.conv1.weight"]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert weights[False]["backbone.conv1.weight"].is_contiguous()
    assert weights[True].keys() == weights[False].keys()
    losses = [read_metrics(tmp_path / str(cl))[0]["loss"] for cl in (False, True)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for k, v in weights[False].items():
        if v.is_floating_point():  # Adam turns rounding-level gradients into steps of up to lr: 2 steps of 1e-3
            torch.testing.assert_close(weights[True][k], v, rtol=0, atol=2.5e-3, msg=k)


def test_unused_parameter_probe_finds_a_classifier_without_its_loss_and_changes_nothing() -> None:
    """DDP is told to search for unused parameters only when a step leaves one without a gradient; the probe step
    runs on a copy, so the model's weights, BatchNorm statistics and the global random state are untouched."""
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.train import has_unused_parameters
    from opreid_bench.modeling import build_model

    for extra, unused in (((), False), (("loss.ce=false",), True)):
        cfg = tiny_cfg("ours", *extra)
        torch.manual_seed(0)
        model = build_model(cfg.model, 3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng_state = torch.get_rng_state()
        assert has_unused_parameters(model, ReIDCriterion(cfg.loss), cfg, torch.device("cpu")) is unused, extra
        assert torch.equal(torch.get_rng_state(), rng_state)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())


def test_progressive_resizing_trains_the_first_epochs_on_pooled_batches(tiny_splits: DatasetSplits,
                                                                        tmp_path: Path) -> None:
    from opreid_bench.engine.data import resize_for_epoch

    cfg = tiny_cfg("baseline", "optim.epochs=3", "data.low_res_epochs=2", "optim.max_iters_per_epoch=1")
    batch = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    pooled = resize_for_epoch(batch, cfg.data, 1)
    assert pooled.shape == (2, 3, 2, 1) and torch.equal(pooled[0, 0, :, 0], batch[0, 0].reshape(2, 4).mean(1))
    assert resize_for_epoch(batch, cfg.data, 2) is batch
    train(cfg, tiny_splits, tmp_path / "run", progress=False)
    assert [line["input_hw"] for line in read_metrics(tmp_path / "run")] == [[32, 16], [32, 16], [64, 32]]


@pytest.mark.parametrize("cbe", [True, False])
def test_a_training_step_of_ours_feeds_the_cbe_batch_to_the_model_and_the_losses(
        tiny_splits: DatasetSplits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cbe: bool) -> None:
    # CBE (Sec. 3.2) is the paper's main augmentation: with data.cbe the step must hand the model and the losses the
    # doubled batch [X_re; X_bce] (2B images, labels duplicated); without it, the B images of the loader
    import opreid_bench.engine.train as train_module
    import opreid_bench.modeling as modeling
    from opreid_bench.engine.criterion import ReIDCriterion

    made, fed, labelled = [], [], []
    real_cbe, real_build, real_forward = train_module.apply_cbe, modeling.build_model, ReIDCriterion.forward

    def spy_cbe(images, pids, cfg, rng):
        out = real_cbe(images, pids, cfg, rng)
        made.append((images.shape[0], out[0].detach().clone(), out[1].clone()))
        return out

    def spy_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.register_forward_pre_hook(lambda _m, inputs: fed.append(inputs[0].detach().clone()))
        return model

    def spy_forward(self, outputs, pids):
        labelled.append(pids.clone())
        return real_forward(self, outputs, pids)

    monkeypatch.setattr(train_module, "apply_cbe", spy_cbe)
    monkeypatch.setattr(modeling, "build_model", spy_build)
    monkeypatch.setattr(ReIDCriterion, "forward", spy_forward)
    cfg = tiny_cfg("ours", "optim.epochs=1", "optim.max_iters_per_epoch=1", "eval.period=0",
                   f"data.cbe={'true' if cbe else 'false'}", "optim.channels_last=false")
    train(cfg, tiny_splits, tmp_path / "run", progress=False)
    batch = cfg.data.batch_p * cfg.data.batch_k
    step = fed[0]  # the first forward of the model in training
    if cbe:
        assert len(made) == 1 and made[0][0] == batch
        assert step.shape[0] == 2 * batch and torch.equal(step, made[0][1])
        assert torch.equal(labelled[0], made[0][2]) and torch.equal(labelled[0][:batch], labelled[0][batch:])
        assert not torch.equal(step[:batch], step[batch:])  # X_re and X_bce differ: the stripe is erased in X_bce
    else:
        assert not made and step.shape[0] == batch and labelled[0].shape[0] == batch
    assert read_metrics(tmp_path / "run")[0]["images"] == step.shape[0]


def test_the_amp_path_of_a_training_step_runs_under_cpu_autocast_in_bfloat16(tiny_splits: DatasetSplits) -> None:
    # the step a GPU run takes with AMP (autocast around the forward, a gradient scaler around the backward), here
    # with CPU autocast (bfloat16) and a CPU scaler: the model's outputs come out in bfloat16, the losses are
    # computed in float32, the weights move and stay finite
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.data import build_train_data
    from opreid_bench.engine.distributed import DistInfo
    from opreid_bench.engine.optim import build_optimizer
    from opreid_bench.engine.train import train_one_epoch
    from opreid_bench.modeling import build_model

    cfg = tiny_cfg("ours", "optim.max_iters_per_epoch=2", "optim.channels_last=false")
    data = build_train_data(tiny_splits.train, cfg.data, seed=0)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.num_classes)
    dtypes: list[torch.dtype] = []
    model.register_forward_hook(lambda _m, _i, out: dtypes.extend(v.dtype for v in out.values()
                                                                  if torch.is_tensor(v) and v.is_floating_point()))
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    stats = train_one_epoch(model, data, ReIDCriterion(cfg.loss), build_optimizer(model, cfg.optim), scaler, cfg, 0,
                            torch.device("cpu"), DistInfo())
    assert torch.bfloat16 in dtypes
    assert np.isfinite(stats["loss"]) and stats["iterations"] == 2
    after = list(model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all(torch.isfinite(p).all() for p in after)


def test_the_epoch_line_prints_percent_like_the_final_table() -> None:
    """metrics.jsonl keeps fractions; the log line a person reads beside the final table (percent) prints percent."""
    from opreid_bench.engine.train import _epoch_summary

    text = _epoch_summary({"epoch": 3, "loss": 1.23456, "acc": 0.8534, "lr": 3.5e-4, "img_per_s": 12.34,
                           "eval": {"rank1": 0.51234, "mAP": 0.40104}})
    assert "acc 85.3%" in text and "R-1 51.23% mAP 40.10%" in text, text


def test_resume_refuses_a_checkpoint_of_another_dataset(tiny_splits: DatasetSplits, tmp_path: Path) -> None:
    """Same identities count, another dataset's name: resuming would file this dataset's results under the other's."""
    from dataclasses import replace

    cfg = tiny_cfg("bot", "optim.epochs=1", "optim.max_iters_per_epoch=1", "eval.at_end=false")
    train(cfg, tiny_splits, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "run.json").read_text()
    with pytest.raises(CheckpointError, match="--resume of a run on 'tiny' with --dataset other"):
        train(cfg, replace(tiny_splits, name="other"), tmp_path / "run", progress=False, resume=True)
    assert (tmp_path / "run" / "run.json").read_text() == before
