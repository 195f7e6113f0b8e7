"""Paste SynthOcc occluders onto a user's holistic dataset (e.g. Market-1501 -> an occluded Market-1501)."""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from opreid_bench.atomic import atomic_path, atomic_write_text
from opreid_bench.errors import DataError
from opreid_bench.synth.occluders import OCCLUDER_KINDS, draw_occluder


def _common_root(paths: Sequence[str]) -> Path:
    return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))


def occlude_dataset(name: str, root: str | Path, out_dir: str | Path, *, splits: Sequence[str] = ("query",),
                    rate: float = 1.0, kinds: Sequence[str] = OCCLUDER_KINDS, seed: int = 0,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Copy dataset ``name`` from ``root`` to ``out_dir`` (same layout and file names, so the same loader reads it)
    with a share ``rate`` of the images of ``splits`` occluded. Returns ``out_dir/synth_occlude.csv``, which lists
    every occluded image and its occluder kind. Deterministic per seed and image path; a rerun skips finished files.
    """
    from opreid_bench.data.datasets import load_dataset

    unknown = [k for k in kinds if k not in OCCLUDER_KINDS]
    if unknown:
        raise DataError(f"unknown occluder kind(s) {unknown}; known: {', '.join(OCCLUDER_KINDS)}")
    if not 0.0 <= rate <= 1.0:
        raise DataError(f"--rate must be in [0, 1], got {rate}")
    data = load_dataset(name, root)
    records = {s: data.split(s) for s in ("train", "query", "gallery")}
    all_paths = [r.path for recs in records.values() for r in recs]
    if not all_paths:
        raise DataError(f"{root}: dataset {name} has no images")
    base = _common_root(all_paths)
    out = Path(out_dir)
    chosen = {str(Path(r.path).resolve()) for s in splits for r in records[s]}
    rows = ["path,split,occluder"]
    split_of = {str(Path(r.path).resolve()): s for s, recs in records.items() for r in recs}
    for src in sorted(split_of):
        rel = Path(src).relative_to(base)
        target = out / rel
        kind = ""
        if src in chosen:
            rng = np.random.default_rng([seed, zlib.crc32(rel.as_posix().encode())])
            if rng.random() < rate:
                kind = str(kinds[int(rng.integers(len(kinds)))])
        if kind:
            rows.append(f"{rel.as_posix()},{split_of[src]},{kind}")
        if not target.exists():
            if kind:
                try:
                    img = Image.open(src).convert("RGB")
                except OSError as exc:
                    raise DataError(f"{src}: cannot read image ({exc})") from exc
                draw_occluder(img, kind, rng)
                with atomic_path(target) as tmp:
                    img.save(tmp, format="JPEG" if target.suffix.lower() in (".jpg", ".jpeg") else None, quality=95)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    shutil.copyfile(src, tmp)
        if progress is not None:
            progress(1)
    manifest = out / "synth_occlude.csv"
    atomic_write_text(manifest, "\n".join(rows) + "\n")
    return manifest
