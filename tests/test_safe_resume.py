"""Issue 10, part A: resumed and reused work is keyed by options and content, never by existence."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opreid_bench.data.records import DatasetSplits, ImageRecord
from opreid_bench.engine.checkpoint import load_checkpoint
from opreid_bench.engine.config import load_method_config
from opreid_bench.engine.train import train
from opreid_bench.errors import OutputError
from opreid_bench.outputs import lock_inside

TINY = ["model.backbone=mobilenetv2", "data.height=32", "data.width=16", "data.batch_p=3", "data.batch_k=2",
        "data.workers=0", "optim.warmup_epochs=0", "optim.milestones=[]", "eval.period=0", "eval.at_end=false",
        "optim.max_iters_per_epoch=1"]


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    root = tmp_path_factory.mktemp("safe_train") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for pid in range(4):
        for k in range(4):
            p = root / f"{pid:04d}_c{k % 2}_{k}.png"
            Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)).save(p)
            records.append(ImageRecord(str(p), pid, k % 2))
    return DatasetSplits(name="tiny", train=records, query=[], gallery=[])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_a_zero_length_last_pt_does_not_block_resume(splits, tmp_path) -> None:
    cfg = load_method_config("bot", [*TINY, "optim.epochs=2"])
    train(cfg, splits, tmp_path / "ref", progress=False)
    run = tmp_path / "run"
    train(cfg, splits, run, progress=False)
    (run / "checkpoints" / "last.pt").write_bytes(b"")  # a power loss mid-write
    (run / "model.pt").unlink()
    (run / "checkpoints" / ".last.pt.opreid-k1ll.tmp").write_bytes(b"\0" * 1000)  # a killed save
    train(cfg, splits, run, resume=True, progress=False)
    a, b = weights(tmp_path / "ref" / "model.pt"), weights(run / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (run / "checkpoints" / ".last.pt.opreid-k1ll.tmp").exists()


def test_train_refuses_foreign_folders_inputs_and_a_second_run(splits, tmp_path) -> None:
    cfg = load_method_config("bot", [*TINY, "optim.epochs=1"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        train(cfg, splits, foreign, progress=False)
    images = Path(splits.train[0].path).parent
    with pytest.raises(OutputError, match="inside"):
        train(cfg, splits, images / "run", progress=False)
    (tmp_path / "run").mkdir()
    with lock_inside(tmp_path / "run", "train"), pytest.raises(OutputError, match=f"pid {os.getpid()}"):
        train(cfg, splits, tmp_path / "run", progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def _market(root: Path) -> Path:
    base = root / "Market-1501-v15.09.15"
    rng = np.random.default_rng(0)
    for folder, pids in (("bounding_box_train", (1, 2)), ("query", (3, 4)), ("bounding_box_test", (3, 4, 5))):
        for pid in pids:
            for cam in (1, 2):
                p = base / folder / f"{pid:04d}_c{cam}s1_{pid * 10 + cam:06d}_00.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(p, quality=95)
    return root


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_synth_occlude_rewrites_its_targets_for_new_options(tmp_path) -> None:
    from opreid_bench.synth.occlude_dataset import occlude_dataset

    src = _market(tmp_path / "src")
    out = tmp_path / "occ"
    occlude_dataset("market1501", src, out, splits=("query",), rate=1.0, seed=0)
    occlude_dataset("market1501", src, out, splits=("query",), rate=0.0, seed=0)
    assert _digests(out) == _digests(src / "Market-1501-v15.09.15")  # --rate 0: no occluded image is kept
    with pytest.raises(OutputError, match="inside"):
        occlude_dataset("market1501", src, src / "Market-1501-v15.09.15" / "occ", rate=1.0)


def test_clever_hans_rerun_leaves_no_stale_crop(tmp_path) -> None:
    from opreid_bench.synth.clever_hans import CleverHansConfig, build_clever_hans

    build_clever_hans(tmp_path / "ch", CleverHansConfig(num_ids=4, distractor_ids=2, width=32, height=64))
    build_clever_hans(tmp_path / "ch", CleverHansConfig(num_ids=2, distractor_ids=1, width=32, height=64))
    for variant in ("same", "different"):
        listed = {line.split(",")[0] for line in (tmp_path / "ch" / variant / "occluders.csv").read_text().split()[1:]}
        on_disk = {k for k in _digests(tmp_path / "ch" / variant)}
        assert on_disk == listed


def test_source_digest_names_its_parts_and_covers_the_top_level_modules() -> None:
    import opreid_bench.demo as demo

    assert demo.source_digest("splits") != demo.source_digest("splits", "synth")
    assert demo.source_digest("splits", "splits") == demo.source_digest("splits")
    with pytest.raises(ValueError, match="'no_such_part' is no subpackage"):
        demo.source_digest("no_such_part")
    with pytest.raises(ValueError, match="'outputs.py' is no subpackage"):
        demo.source_digest("outputs.py")


def test_demo_reuses_a_stage_only_when_its_options_match(tmp_path, monkeypatch) -> None:
    import opreid_bench.data.datasets as datasets
    import opreid_bench.demo as demo
    import opreid_bench.engine.train as train_mod
    import opreid_bench.splits.pipeline as pipeline
    import opreid_bench.synth.clever_hans as clever_hans
    import opreid_bench.synth.generator as generator

    calls: list[str] = []

    def fake_pool(out, cfg, **kw):
        calls.append(f"pool seed={cfg.seed} ids={cfg.num_ids}")
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "manifest.csv").write_text(str(cfg))

    def fake_split(pool, protocol, out, seed, **kw):
        calls.append(f"split seed={seed}")
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "manifest.csv").write_text(str(seed))

    def fake_ch(out, cfg):
        calls.append("clever_hans")
        (Path(out) / "different").mkdir(parents=True, exist_ok=True)
        (Path(out) / "different" / "occluders.csv").write_text(str(cfg))

    def fake_train(cfg, splits, run_dir, **kw):
        calls.append(f"train {cfg.method} epochs={cfg.optim.epochs}")
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "model.pt").write_text(str(cfg.optim.epochs))

    monkeypatch.setattr(generator, "generate_pool", fake_pool)
    monkeypatch.setattr(pipeline, "build_split", fake_split)
    monkeypatch.setattr(clever_hans, "build_clever_hans", fake_ch)
    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: DatasetSplits(name="x", train=[], query=[],
                                                                                  gallery=[]))
    monkeypatch.setattr(datasets, "load_pool", lambda *a, **k: [])
    monkeypatch.setattr(demo, "_evaluate_run", lambda *a, **k: {"rank1": 0.0, "mAP": 0.0})
    monkeypatch.setattr(demo, "_write_reports", lambda *a, **k: {})

    def run(**kw) -> list[str]:
        calls.clear()
        # one process (the fake train is patched into this one): ranks=1
        demo.run_demo(demo.DemoConfig(out=tmp_path / "demo", progress=False, methods=("bot",), ranks=1, **kw))
        return list(calls)

    recipe_epochs = demo.DEMO_RECIPES["resnet_mini"]["epochs"]
    assert run() == ["pool seed=0 ids=700", "split seed=0", "clever_hans", f"train bot epochs={recipe_epochs}"]
    assert run() == []  # same options: everything reused
    assert run(epochs=3) == ["train bot epochs=3"]
    assert run(epochs=3, seed=1) == ["pool seed=1 ids=700", "split seed=1", "clever_hans", "train bot epochs=3"]
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"a")
    assert run(epochs=3, seed=1, pretrained=str(weights)) == ["train bot epochs=3"]
    weights.write_bytes(b"b")  # same path, other content
    assert run(epochs=3, seed=1, pretrained=str(weights)) == ["train bot epochs=3"]
    # Another version's code: the stages it touches are made again (a demo folder built before keeps, say, the old face
    # masks otherwise), the others reused.
    real_digest = demo.source_digest

    def changed(*touched: str):
        return lambda *parts: real_digest(*parts) + ("x" if set(parts) & set(touched) else "")

    kw = {"epochs": 3, "seed": 1, "pretrained": str(weights)}
    monkeypatch.setattr(demo, "source_digest", changed("splits"))
    assert run(**kw) == ["split seed=1", "train bot epochs=3"]
    monkeypatch.setattr(demo, "source_digest", changed("splits", "modeling"))
    assert run(**kw) == ["train bot epochs=3"]
    monkeypatch.setattr(demo, "source_digest", changed("splits", "modeling", "synth"))
    assert run(**kw) == ["pool seed=1 ids=700", "split seed=1", "clever_hans", "train bot epochs=3"]
    assert run(**kw) == []
    real_versions = demo.library_versions

    def upgraded(name: str):
        return lambda *names: {**real_versions(*names), **({name: "99"} if name in names else {})}

    monkeypatch.setattr(demo, "library_versions", upgraded("torch"))
    assert run(**kw) == ["train bot epochs=3"]
    monkeypatch.setattr(demo, "library_versions", upgraded("opencv-python-headless"))
    assert run(**kw) == ["split seed=1", "train bot epochs=3"]
