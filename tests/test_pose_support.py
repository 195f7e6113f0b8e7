"""The second occlusion signal: person-segmentation support under each keypoint (``Keypoints.support``)."""

from __future__ import annotations

import numpy as np
import pytest

from opreid_bench.splits.cache import Entry, read_h5, write_h5
from opreid_bench.splits.classify import OcclusionRule, classify_keypoints
from opreid_bench.splits.keypoints import COCO17_INDEX as K
from opreid_bench.splits.keypoints import Keypoints


def standing(support: np.ndarray | None = None) -> Keypoints:
    """A frontal person, every keypoint scored 0.95 (a pose model's usual confidence, hidden joints included)."""
    xy = np.array([[50, 20], [45, 15], [55, 15], [40, 18], [60, 18], [35, 50], [65, 50], [30, 80], [70, 80],
                   [28, 110], [72, 110], [40, 120], [60, 120], [40, 170], [60, 170], [40, 220], [60, 220]], float)
    return Keypoints(xy, np.full(17, 0.95), image_size=(100, 240), support=support)


def test_keypoints_on_the_occluder_count_missing():
    sup = np.ones(17, np.float32)
    for name in ("left_knee", "right_knee", "left_ankle", "right_ankle"):
        sup[K[name]] = 0.1  # a cart in front of the legs: the pose model still scores them 0.95
    kp = standing(sup)
    label = classify_keypoints(kp, OcclusionRule(score_threshold=0.8, support_threshold=0.5))
    assert label.occluded and {"left_knee", "right_ankle"} <= set(label.missing_keypoints)
    # visibility alone sees nothing
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.8, support_threshold=None)).occluded


def test_unknown_support_changes_nothing():
    assert standing(None).support is None
    assert standing(np.full(17, np.nan)).support is None
    nan_legs = np.ones(17, np.float32)
    nan_legs[[K["left_knee"], K["left_ankle"], K["right_knee"], K["right_ankle"]]] = np.nan
    for kp in (standing(None), standing(nan_legs)):
        assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.8, support_threshold=0.9)).occluded


def test_support_threshold_is_checked():
    from opreid_bench.errors import OpreidError

    with pytest.raises(OpreidError, match="support threshold"):
        OcclusionRule(support_threshold=1.5)


def test_keypoint_support_reads_the_mask_cell_under_each_point():
    from opreid_bench.splits.pose_backends.mediapipe import keypoint_support

    mask = np.zeros((256, 128), np.float32)
    mask[:, :64] = 1.0  # person on the left half only
    xy = np.array([[10, 100], [120, 100], [63.0, 5], [-3, 10], [50, 300]], np.float32)
    sup = keypoint_support(mask, xy)
    assert sup[0] == pytest.approx(1.0) and sup[1] == pytest.approx(0.0) and sup[2] == pytest.approx(1.0)
    assert np.isnan(sup[3]) and np.isnan(sup[4])  # outside the crop: the outside rule decides, not the mask
    assert np.isnan(keypoint_support(None, xy)).all()


def test_support_survives_the_cache_and_older_files_read_as_unknown(tmp_path):
    sup = np.linspace(0, 1, 17).astype(np.float32)
    sup[3] = np.nan
    entries = {"a.jpg": Entry("a" * 40, standing(sup)), "b.jpg": Entry("b" * 40, standing(None))}
    write_h5(tmp_path / "k.h5", entries, "test")
    back, _ = read_h5(tmp_path / "k.h5")
    np.testing.assert_array_equal(back["a.jpg"].keypoints.support, sup)
    assert back["b.jpg"].keypoints.support is None or np.isnan(back["b.jpg"].keypoints.support).all()
    write_h5(tmp_path / "old.h5", {"b.jpg": entries["b.jpg"]}, "test")
    import h5py

    with h5py.File(tmp_path / "old.h5", "r") as f:
        assert "support" not in f  # nothing measured: the file keeps the older layout
    assert read_h5(tmp_path / "old.h5")[0]["b.jpg"].keypoints.support is None


def test_support_survives_the_ray_batches():
    from opreid_bench.splits.annotate import Result, batch_to_results, results_to_batch

    sup = np.full(17, 0.25, np.float32)
    back = batch_to_results(results_to_batch([Result("a.jpg", "a" * 40, standing(sup), None)]))
    np.testing.assert_array_equal(back[0].keypoints.support, sup)


def test_mediapipe_cache_key_names_the_segmentation():
    pytest.importorskip("mediapipe")
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    assert MediaPipePose.from_arg(None).cache_key != MediaPipePose.from_arg("seg=0").cache_key
    from opreid_bench.errors import OpreidError

    with pytest.raises(OpreidError, match="seg"):
        MediaPipePose.from_arg("seg=2")


@pytest.mark.shared_data
def test_blazepose_support_is_high_on_the_body_and_low_on_an_occluder(partial_reid_root):
    """Real crops: a whole person's torso is covered by the segmentation; an occluded crop has joints placed on
    the occluder with a confident score but low support."""
    pytest.importorskip("mediapipe")
    from PIL import Image

    from opreid_bench.splits.pose_backends import make_backend

    backend = make_backend("mediapipe")
    try:
        torso = [K[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
        for name in ("001_001.jpg", "002_002.jpg"):
            img = np.asarray(Image.open(partial_reid_root / "whole_body_images" / name).convert("RGB"))
            kp = backend.predict(img, name)
            assert kp.support is not None and np.nanmin(kp.support[torso]) > 0.8, name
        # legs behind an object: BlazePose scores knees and ankles above 0.9 all the same
        img = np.asarray(Image.open(partial_reid_root / "occluded_body_images" / "015_001.jpg").convert("RGB"))
        kp = backend.predict(img, "015_001.jpg")
        legs = [K[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
        assert kp.support is not None and np.nanmax(kp.support[legs]) < 0.5
        assert not classify_keypoints(kp, OcclusionRule(support_threshold=None)).occluded
        assert classify_keypoints(kp, OcclusionRule(support_threshold=0.5)).occluded
    finally:
        backend.close()


def test_vectorised_labels_equal_the_per_crop_rule():
    """label_codes (the whole-pool path the benchmark's grid uses) gives classify_keypoints' verdict on every crop."""
    from opreid_bench.splits.classify import KeypointArrays, label_codes

    rng = np.random.default_rng(0)
    kps = []
    for i in range(400):
        base = standing().xy + rng.normal(0, 4, (17, 2))
        if i % 7 == 0:
            base[:, 0] = 100 - base[:, 0]  # mirrored: back-view shoulder order
        size = None if i % 11 == 0 else (100, int(rng.choice([60, 96, 240])))
        sup = None if i % 5 == 0 else np.where(rng.random(17) < 0.1, np.nan, rng.random(17))
        kps.append(Keypoints(base, rng.random(17) ** 0.3, image_size=size, detected=i % 13 != 0, support=sup))
    arrays = KeypointArrays.stack(kps)
    for rule in (OcclusionRule(), OcclusionRule(support_threshold=None), OcclusionRule(support_min_height=0),
                 OcclusionRule(score_threshold=0.5, chains="limbs", back_view=False, outside_margin=None),
                 OcclusionRule(score_threshold=0.9, support_threshold=0.3, min_missing_run=2)):
        codes = label_codes(arrays, rule)
        expect = [2 if (lab := classify_keypoints(kp, rule)).undetermined else int(lab.occluded) for kp in kps]
        assert codes.tolist() == expect, rule
    assert set(label_codes(arrays, OcclusionRule()).tolist()) == {0, 1, 2}


def test_support_is_ignored_on_crops_below_the_min_height():
    sup = np.ones(17, np.float32)
    sup[[K["left_knee"], K["right_knee"], K["left_ankle"], K["right_ankle"]]] = 0.1
    tall = standing(sup)
    small = Keypoints(tall.xy / 4, tall.score, image_size=(25, 60), support=sup)
    rule = OcclusionRule(score_threshold=0.8, support_threshold=0.5, support_min_height=96)
    assert classify_keypoints(tall, rule).occluded and not classify_keypoints(small, rule).occluded
    assert classify_keypoints(small, OcclusionRule(score_threshold=0.8, support_threshold=0.5,
                                                   support_min_height=0)).occluded
