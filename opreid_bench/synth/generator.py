"""Generate a SynthOcc pool: crops of many identities across cameras, some occluded, with exact keypoints."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_write_bytes, atomic_write_text
from opreid_bench.splits.keypoints import COCO17_NAMES as COCO17
from opreid_bench.synth.appearance import sample_camera, sample_identity
from opreid_bench.synth.occluders import OCCLUDER_KINDS
from opreid_bench.synth.render import render_crop


@dataclass(frozen=True)
class SynthConfig:
    """How big the pool is and how it is occluded; every value is part of the seed's meaning."""

    num_ids: int = 200
    num_cameras: int = 6
    min_images: int = 4
    max_images: int = 10
    min_cameras_per_id: int = 2
    occlusion_rate: float = 0.35
    occluders: tuple[str, ...] = OCCLUDER_KINDS
    width: int = 128
    height: int = 256
    jpeg_quality: int = 90
    seed: int = 0


@dataclass(frozen=True)
class CropSpec:
    """What one crop shows: who, which camera, which image index, which occluder (if any)."""

    pid: int
    camid: int
    index: int
    occluder: str

    @property
    def filename(self) -> str:
        return f"{self.pid:05d}_c{self.camid:02d}_{self.index:04d}.jpg"


def plan_pool(cfg: SynthConfig) -> list[CropSpec]:
    """Decide every crop of the pool (cheap, deterministic); rendering follows the plan."""
    specs: list[CropSpec] = []
    for pid in range(1, cfg.num_ids + 1):
        rng = np.random.default_rng([cfg.seed, 3, pid])
        n = int(rng.integers(cfg.min_images, cfg.max_images + 1))
        k = int(rng.integers(min(cfg.min_cameras_per_id, cfg.num_cameras), min(4, cfg.num_cameras) + 1))
        cams = np.sort(rng.choice(cfg.num_cameras, size=k, replace=False)) + 1
        for i in range(n):
            cam = int(cams[i % k]) if i < k else int(rng.choice(cams))
            occ = ""
            if rng.random() < cfg.occlusion_rate:
                occ = str(cfg.occluders[int(rng.integers(len(cfg.occluders)))])
            specs.append(CropSpec(pid=pid, camid=cam, index=i, occluder=occ))
    return specs


def render_spec(spec: CropSpec, cfg: SynthConfig) -> tuple[bytes, dict]:
    """Render one planned crop to JPEG bytes plus its annotation row (deterministic per spec and seed)."""
    rng = np.random.default_rng([cfg.seed, 4, spec.pid, spec.index])
    crop = render_crop(sample_identity(spec.pid, cfg.seed), sample_camera(spec.camid, cfg.seed), rng,
                       size=(cfg.width, cfg.height), occluder=spec.occluder)
    buf = io.BytesIO()
    crop.image.save(buf, format="JPEG", quality=cfg.jpeg_quality)
    row = {
        "path": f"images/{spec.filename}",
        "pid": spec.pid,
        "camid": spec.camid,
        "view": crop.view,
        "occluder": spec.occluder,
        "hidden_body_fraction": round(crop.hidden_body_fraction, 4),
        "visible_keypoints": int(crop.visible.sum()),
        "keypoints": [[round(float(x), 2), round(float(y), 2), 1.0 if v else 0.0]
                      for (x, y), v in zip(crop.keypoints, crop.visible)],
    }
    return buf.getvalue(), row


def _render_many(args: tuple[list[CropSpec], SynthConfig]) -> list[tuple[bytes, dict]]:
    specs, cfg = args
    return [render_spec(s, cfg) for s in specs]


def iter_rendered(specs: list[CropSpec], cfg: SynthConfig, workers: int = 1,
                  chunk: int = 64) -> Iterator[tuple[bytes, dict]]:
    """Render specs in order, with ``workers`` processes; the output is identical whatever ``workers`` is."""
    batches = [specs[i:i + chunk] for i in range(0, len(specs), chunk)]
    if workers <= 1:
        for b in batches:
            yield from _render_many((b, cfg))
        return
    import multiprocessing as mp

    with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
        for out in pool.imap(_render_many, [(b, cfg) for b in batches]):
            yield from out


def write_keypoints_csv(rows: list[dict], path: Path) -> None:
    """Ground-truth keypoints in the `precomputed` CSV format (source_path + x,y,score per COCO-17 joint)."""
    header = ["source_path"] + [f"{n}_{c}" for n in COCO17 for c in ("x", "y", "score")]
    lines = [",".join(header)]
    for r in rows:
        vals = [r["path"]] + [f"{v:g}" for kp in r["keypoints"] for v in kp]
        lines.append(",".join(vals))
    atomic_write_text(path, "\n".join(lines) + "\n")


def pool_fingerprint(cfg: SynthConfig) -> str:
    """What a pool's content depends on: the config (every value is part of the seed's meaning)."""
    from opreid_bench.outputs import fingerprint

    return fingerprint({"synth": asdict(cfg)})


def generate_pool(out_dir: str | Path, cfg: SynthConfig, *, workers: int = 1, progress=None) -> Path:
    """Write a pool folder: ``images/``, ``manifest.csv`` (path,pid,camid,view,occluder,...), ``keypoints.csv``
    (ground truth, for ``build-split --pose precomputed:``) and ``synth.json`` (the config). Returns the manifest.

    ``out_dir`` must be new, empty or an earlier pool (it is locked and marked, see ``opreid_bench.outputs``; its
    marker's fingerprint is :func:`pool_fingerprint`). Every image is rendered and compared with the file on disk,
    which is rewritten unless its bytes are equal, and images of an earlier plan that the new one lacks are deleted,
    so a killed run resumes and a rerun with another config never keeps a stale image; the manifest is written last.
    """
    from opreid_bench.outputs import output_folder

    with output_folder(out_dir, "synth", kind="pool", fingerprint=pool_fingerprint(cfg), options=asdict(cfg)):
        return _generate_into(Path(out_dir), cfg, workers=workers, progress=progress)


SYNTH_IMAGE_NAME = re.compile(r"\d{5}_c\d{2}_\d{4}\.jpg")  # CropSpec.filename


def _remove_stale_images(images: Path, keep: set[str]) -> None:
    """Delete the images an earlier run into this pool wrote that the new plan does not list (a rerun with fewer
    identities or images), so the folder holds exactly the manifest's crops; only names of :attr:`CropSpec.filename`'s
    form are touched, any other file is left where it is."""
    for f in sorted(images.iterdir()):
        if f.name not in keep and SYNTH_IMAGE_NAME.fullmatch(f.name) and f.is_file() and not f.is_symlink():
            f.unlink()


def _generate_into(out: Path, cfg: SynthConfig, *, workers: int, progress) -> Path:
    from opreid_bench.outputs import fsync_tree

    (out / "images").mkdir(parents=True, exist_ok=True)
    specs = plan_pool(cfg)
    rows: list[dict] = []
    for data, row in iter_rendered(specs, cfg, workers=workers):
        target = out / row["path"]
        if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
            atomic_write_bytes(target, data, durable=False)  # each image whole; made durable together below
        rows.append(row)
        if progress is not None:
            progress(1)
    # one parallel sync of all images (the journal batches concurrent syncs) instead of two fsyncs per image: the
    # manifest, written last, then never lists an image a power loss could leave empty
    fsync_tree(out / "images")
    _remove_stale_images(out / "images", {Path(r["path"]).name for r in rows})
    write_keypoints_csv(rows, out / "keypoints.csv")
    cols = ["path", "pid", "camid", "view", "occluder", "hidden_body_fraction", "visible_keypoints"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    atomic_write_text(out / "synth.json", json.dumps(asdict(cfg), indent=2) + "\n")
    atomic_write_text(out / "manifest.csv", "\n".join(lines) + "\n")
    return out / "manifest.csv"
