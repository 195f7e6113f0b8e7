"""Generated pools for the build-split tests: label frames, tiny protocols and Pillow-drawn crops with keypoints."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from opreid_bench.splits.keypoints import COCO17_NAMES
from opreid_bench.splits.protocol import SplitProtocol

# Keypoints of a standing person in a 64x128 crop (x, y), COCO-17 order.
STANDING = np.array(
    [[32, 16], [30, 14], [34, 14], [27, 15], [37, 15], [24, 32], [40, 32], [21, 50], [43, 50], [20, 66], [44, 66],
     [27, 68], [37, 68], [27, 92], [37, 92], [27, 116], [37, 116]],
    dtype=np.float32,
)
LOWER_BODY = [COCO17_NAMES.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]


def label_pool(n_ids: int, seed: int = 0, occ_rate: float = 0.3, per_id: tuple[int, int] = (3, 25),
               cameras: int = 4) -> pd.DataFrame:
    """A DataFrame pool (source_path, pid, camid, occluded) with random sizes, cameras and occlusion."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        pid = 10 + 7 * i
        for j in range(int(rng.integers(per_id[0], per_id[1] + 1))):
            rows.append((f"pool/{pid}_{j:03d}.jpg", pid, int(rng.integers(0, cameras)), bool(rng.random() < occ_rate)))
    return pd.DataFrame(rows, columns=["source_path", "pid", "camid", "occluded"])


def tiny_protocol(**overrides: object) -> SplitProtocol:
    """A protocol small enough for generated pools of a few hundred crops."""
    kw: dict[str, object] = dict(
        name="tiny", query_ids=6, query_images=8, gallery_ids=14, gallery_images=12 + 8 * 4,
        train_ids=8, train_images=64, train_occluded_fraction=0.15,
    )
    kw.update(overrides)
    p = SplitProtocol(**kw)  # type: ignore[arg-type]
    p.validate()
    return p


def tiny_protocol_yaml(path: Path) -> Path:
    """tiny_protocol() as a YAML file."""
    path.write_text(
        "kind: split\nname: tiny\n"
        "query: {ids: 6, images: 8, images_per_id: [1, 2]}\n"
        "gallery: {ids: 14, images: 44, per_query_id: {occluded: 1, holistic: 1},\n"
        "          distractor_per_id: {occluded: [1, 3], holistic: [1, 3]}}\n"
        "train: {ids: 8, images: 64, images_per_id: [5, 20], occluded_fraction: 0.15}\n",
        encoding="utf-8",
    )
    return path


def draw_crop(rng: np.random.Generator, occluded: bool) -> Image.Image:
    """A 64x128 'person': coloured torso and legs, a skin-tone head; occluded crops get a grey box over the legs."""
    img = Image.new("RGB", (64, 128), tuple(int(v) for v in rng.integers(60, 200, 3)))
    d = ImageDraw.Draw(img)
    d.ellipse([25, 6, 39, 26], fill=(224, 172, 140))
    d.rectangle([22, 28, 42, 68], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    d.rectangle([24, 68, 40, 120], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    if occluded:
        d.rectangle([0, 80, 63, 127], fill=(90, 90, 90))
    return img


def image_pool(root: Path, n_ids: int = 40, per_id: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """Write crops, ``manifest.csv`` (path,pid,camid) and ``keypoints.csv`` (precomputed format) under ``root``."""
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    manifest, kp_rows = [], []
    for i in range(n_ids):
        pid = 100 + i
        for j in range(per_id):
            occluded = j % 4 == 0 or (j == 1 and i % 3 == 0)
            path = img_dir / f"{pid}_{j}.png"
            draw_crop(rng, occluded).save(path)
            score = np.full(17, 0.99, np.float32)
            if occluded:
                score[LOWER_BODY] = 0.05
            xy = STANDING + rng.normal(0, 0.5, STANDING.shape).astype(np.float32)
            manifest.append((str(path), pid, j % 3))
            kp_rows.append([str(path)] + [v for k in range(17) for v in (xy[k, 0], xy[k, 1], score[k])])
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "pid", "camid"])
        w.writerows(manifest)
    with (root / "keypoints.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_path"] + [f"{n}_{c}" for n in COCO17_NAMES for c in ("x", "y", "score")])
        w.writerows(kp_rows)
    return root / "manifest.csv", root / "keypoints.csv"


def real_crop_with_pose(path: Path) -> tuple[Image.Image, object]:
    """A real crop as RGB and the default pose backend's keypoints of it (BlazePose, run here)."""
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    backend = MediaPipePose()
    try:
        return rgb, backend.predict(np.asarray(rgb), path.stem)
    finally:
        backend.close()
