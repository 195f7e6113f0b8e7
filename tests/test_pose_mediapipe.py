"""The default backend (BlazePose via mediapipe 0.10.21) on a handful of real Partial-REID crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from opreid_bench.splits.annotate import annotate_pool, read_report
from opreid_bench.splits.cache import read_keypoints
from opreid_bench.splits.classify import OcclusionRule, classify_keypoints
from opreid_bench.splits.keypoints import COCO17_INDEX as K

pytestmark = pytest.mark.shared_data
pytest.importorskip("mediapipe")

WHOLE = ["001_001.jpg", "002_002.jpg", "003_003.jpg"]  # standing people, whole body in view
OCCLUDED = ["004_001.jpg", "004_003.jpg"]  # lower body hidden behind an object


@pytest.fixture(scope="module")
def backend():
    from opreid_bench.splits.pose_backends import make_backend

    b = make_backend("mediapipe")
    yield b
    b.close()


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_whole_body_crops_give_plausible_coco17_keypoints(backend, partial_reid_root):
    for name in WHOLE:
        image = load(partial_reid_root / "whole_body_images" / name)
        h, w = image.shape[:2]
        kp = backend.predict(image, name)
        assert kp.detected and kp.image_size == (w, h)
        assert kp.score.min() >= 0 and kp.score.max() <= 1
        y = kp.xy[:, 1]
        # coordinates are mapped back from the padded frame into the crop, and the body is upright
        assert (kp.xy[:, 0] > -0.1 * w).all() and (kp.xy[:, 0] < 1.1 * w).all()
        assert y[K["nose"]] < y[K["left_shoulder"]] < y[K["left_hip"]] < y[K["left_knee"]] < y[K["left_ankle"]]
        assert y[K["left_ankle"]] > 0.7 * h and y[K["nose"]] < 0.3 * h
        assert not classify_keypoints(kp, OcclusionRule()).occluded, name


def test_occluded_crops_lose_their_lower_body(backend, partial_reid_root):
    for name in OCCLUDED:
        kp = backend.predict(load(partial_reid_root / "occluded_body_images" / name), name)
        label = classify_keypoints(kp, OcclusionRule())
        assert label.occluded, name
        assert {"left_ankle", "right_ankle"} <= set(label.missing_keypoints)


def test_padding_is_mapped_back(partial_reid_root):
    from opreid_bench.splits.pose_backends import make_backend

    image = load(partial_reid_root / "whole_body_images" / WHOLE[0])
    a = make_backend("mediapipe:mode=detect,pad=0.25")  # the detector pass pads; the ROI pass does not
    b = make_backend("mediapipe:mode=detect,pad=0.5")
    try:
        ka, kb = a.predict(image, "x"), b.predict(image, "x")
    finally:
        a.close()
        b.close()
    # the same body in two differently padded frames lands on the same crop pixels (within a few px)
    assert np.median(np.abs(ka.xy - kb.xy)) < 0.08 * image.shape[0]


def test_annotate_stage_with_mediapipe(tmp_path, partial_reid_root):
    paths = [str(partial_reid_root / "whole_body_images" / WHOLE[0]),
             str(partial_reid_root / "occluded_body_images" / OCCLUDED[0])]
    annotate_pool(paths, tmp_path, progress=False)
    kps = read_keypoints(tmp_path)
    assert sorted(kps) == sorted(paths)
    report = read_report(tmp_path)
    assert report["backend"].startswith("mediapipe-0.10.21") and report["crops_per_s"] > 0
