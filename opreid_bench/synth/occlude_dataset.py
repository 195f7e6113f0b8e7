"""Paste SynthOcc occluders onto a user's holistic dataset (e.g. Market-1501 -> an occluded Market-1501)."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from opreid_bench.atomic import atomic_write_bytes, atomic_write_text
from opreid_bench.errors import DataError
from opreid_bench.synth.occluders import OCCLUDER_KINDS, draw_occluder


def _common_root(paths: Sequence[str]) -> Path:
    return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))


def occlude_dataset(name: str, root: str | Path, out_dir: str | Path, *, splits: Sequence[str] = ("query",),
                    rate: float = 1.0, kinds: Sequence[str] = OCCLUDER_KINDS, seed: int = 0,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Copy dataset ``name`` from ``root`` to ``out_dir`` (same layout and file names, so the same loader reads it)
    with a share ``rate`` of the images of ``splits`` occluded. Returns ``out_dir/synth_occlude.csv``, which lists
    every occluded image and its occluder kind. Deterministic per seed and image path. Every target is made again
    and rewritten unless its bytes are equal, so a rerun with other options (``--rate 0``) never keeps a stale image
    and a killed run resumes. ``out_dir`` must be new, empty or an earlier synth-occlude output, and must neither hold
    nor be inside the dataset (see ``opreid_bench.outputs``).
    """
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.outputs import fingerprint, output_folder

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
    options = {"dataset": name, "splits": list(splits), "rate": rate, "kinds": list(kinds), "seed": seed}
    with output_folder(out, "synth-occlude", kind="occluded-dataset", inputs=[("dataset folder", base)],
                       fingerprint=fingerprint(options), options=options):
        return _occlude_into(out, base, records, splits, rate=rate, kinds=kinds, seed=seed, progress=progress)


def _occlude_into(out: Path, base: Path, records: dict, splits: Sequence[str], *, rate: float,
                  kinds: Sequence[str], seed: int, progress: Callable[[int], None] | None) -> Path:
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
        if kind:
            try:
                img = Image.open(src).convert("RGB")
            except OSError as exc:
                raise DataError(f"{src}: cannot read image ({exc})") from exc
            draw_occluder(img, kind, rng)
            buf = io.BytesIO()
            fmt = "JPEG" if target.suffix.lower() in (".jpg", ".jpeg") else (Image.registered_extensions().get(
                target.suffix.lower()) or "PNG")
            img.save(buf, format=fmt, quality=95)
            data = buf.getvalue()
        else:
            data = Path(src).read_bytes()
        if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
            atomic_write_bytes(target, data)
        if progress is not None:
            progress(1)
    manifest = out / "synth_occlude.csv"
    atomic_write_text(manifest, "\n".join(rows) + "\n")
    return manifest
