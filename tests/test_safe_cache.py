"""Issue 10, part A: the keypoint cache is keyed by content, survives crash leftovers, and writes are durable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from opreid_bench import atomic
from opreid_bench.errors import OutputError
from opreid_bench.outputs import lock_inside
from opreid_bench.splits.annotate import annotate_pool, read_report
from opreid_bench.splits.cache import read_h5
from opreid_bench.splits.keypoints import COCO17_NAMES


def make_pool(root: Path, n: int) -> tuple[list[str], Path]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths, rows = [], []
    for i in range(n):
        p = root / f"{i:04d}_c1_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (48, 24, 3), dtype=np.uint8)).save(p, quality=90)
        xy = np.stack([np.full(17, 12.0), np.linspace(2, 46, 17)], axis=1)
        rows.append([p.name] + np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).reshape(-1).tolist())
        paths.append(str(p))
    header = ["source_path"] + [f"{k}_{c}" for k in COCO17_NAMES for c in ("x", "y", "score")]
    csv = root.parent / "keypoints.csv"
    pd.DataFrame(rows, columns=header).to_csv(csv, index=False)
    return paths, csv


def counts(out: Path) -> tuple[int, int]:
    report = read_report(out)
    return report["cached"], report["annotated"]


def test_path_spelling_does_not_miss_and_content_changes_do(tmp_path, monkeypatch) -> None:
    paths, csv = make_pool(tmp_path / "pool", 5)
    monkeypatch.chdir(tmp_path)
    rel = [os.path.relpath(p) for p in paths]
    annotate_pool(rel, "ann", backend=f"precomputed:{os.path.relpath(csv)}", progress=False)
    assert counts(tmp_path / "ann") == (0, 5)
    # the same pool and keypoint file spelled with absolute paths, from another working directory
    monkeypatch.chdir(tmp_path / "pool")
    annotate_pool(paths, tmp_path / "ann", backend=f"precomputed:{csv}", progress=False)
    assert counts(tmp_path / "ann") == (5, 0)
    entries, _ = read_h5(tmp_path / "ann" / "keypoints.h5")
    assert sorted(entries) == sorted(paths)  # rows spelled as this run's pool spells them
    # an edited keypoint file (same path) is not served from the cache
    csv.write_text(csv.read_text().replace(",0.9", ",0.1"))
    annotate_pool(paths, tmp_path / "ann", backend=f"precomputed:{csv}", progress=False)
    assert counts(tmp_path / "ann") == (0, 5)
    assert float(read_h5(tmp_path / "ann" / "keypoints.h5")[0][paths[0]].keypoints.score.max()) < 0.2


def test_mediapipe_key_reads_the_installed_version(monkeypatch) -> None:
    import importlib.metadata

    from opreid_bench.splits.pose_backends import mediapipe as mp_backend

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9" if name == "mediapipe" else "0")
    assert mp_backend.mediapipe_version() == "9.9.9"
    with open(mp_backend.__file__, encoding="utf-8") as f:
        assert "mediapipe-0.10.21:" not in f.read()  # no hard-coded version in the cache key


def test_a_corrupt_part_or_cache_file_does_not_block_resume(tmp_path) -> None:
    paths, csv = make_pool(tmp_path / "pool", 9)
    spec = f"precomputed:{csv}"
    full = annotate_pool(paths, tmp_path / "full", backend=spec, batch_size=3, progress=False)

    class Killed(Exception):
        pass

    def kill(done: int) -> None:
        if done >= 6:
            raise Killed

    with pytest.raises(Killed):
        annotate_pool(paths, tmp_path / "k", backend=spec, batch_size=3, progress=False, on_batch=kill)
    parts = sorted((tmp_path / "k" / "keypoints.h5.parts").glob("part-*.h5"))
    assert len(parts) == 2
    parts[1].write_bytes(b"")  # a power loss left it empty
    (tmp_path / "k" / ".keypoints.h5.opreid-x1y2.tmp").write_bytes(b"half")  # a kill mid-write left this
    (tmp_path / "k" / ".notes.tmp").write_text("not ours")
    out = annotate_pool(paths, tmp_path / "k", backend=spec, batch_size=3, progress=False)
    assert counts(tmp_path / "k") == (3, 6)
    assert out.read_bytes() == full.read_bytes()
    assert not (tmp_path / "k" / ".keypoints.h5.opreid-x1y2.tmp").exists()
    assert (tmp_path / "k" / ".notes.tmp").read_text() == "not ours"
    # a zero-length merged cache file is annotated again, not an error
    out.write_bytes(b"")
    annotate_pool(paths, tmp_path / "k", backend=spec, batch_size=3, progress=False)
    assert counts(tmp_path / "k") == (0, 9) and out.read_bytes() == full.read_bytes()


def test_a_second_annotate_on_one_cache_is_refused(tmp_path) -> None:
    paths, csv = make_pool(tmp_path / "pool", 2)
    (tmp_path / "ann").mkdir()
    with lock_inside(tmp_path / "ann", "annotate"), pytest.raises(OutputError, match=f"pid {os.getpid()}"):
        annotate_pool(paths, tmp_path / "ann", backend=f"precomputed:{csv}", progress=False)
    with pytest.raises(OutputError, match="inside"):  # and the cache never goes into the pool
        annotate_pool(paths, tmp_path / "pool" / "ann", backend=f"precomputed:{csv}", progress=False)


def test_atomic_writes_fsync_the_file_and_the_folder(tmp_path, monkeypatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic.atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert (tmp_path / "a.bin").read_bytes() == b"data"
    assert any(".a.bin.opreid-" in s for s in synced) and str(tmp_path) in synced
