"""Other people and the crop's border (splits/people.py): main person, body beyond the border, person in front."""

from __future__ import annotations

import numpy as np
import pytest

from opreid_bench.splits.cache import Entry, read_h5, write_h5
from opreid_bench.splits.classify import KeypointArrays, OcclusionRule, classify_keypoints, label_codes
from opreid_bench.splits.keypoints import COCO17_INDEX, COCO17_NAMES, Keypoints
from opreid_bench.splits.people import BODY_AXIS_FRACTIONS, beyond_border, covered_by_people, expected_xy, main_person


def person(hip: tuple[float, float], r: float, score: float = 0.9) -> list[float]:
    """A detection row of a standing person: hip centre, full-body point r above it, shoulders and upper point."""
    hx, hy = hip
    return [score, hx, hy, hx, hy - r, hx, hy - 0.586 * r, hx, hy - 1.2 * r]


def standing_kp(size=(64, 128), hip=(32.0, 64.0), r=60.0, people=None, score=0.99) -> Keypoints:
    """Keypoints of a person standing at ``hip`` with scale ``r``: every keypoint where the body model puts it."""
    xy = np.array([[hip[0], hip[1] + BODY_AXIS_FRACTIONS[n] * r] for n in COCO17_NAMES], np.float32)
    xy[COCO17_INDEX["left_shoulder"], 0] += 8
    xy[COCO17_INDEX["right_shoulder"], 0] -= 8
    return Keypoints(xy, np.full(17, score, np.float32), image_size=size, people=people)


def test_expected_positions_follow_the_body_axis():
    row = np.array(person((50, 100), 80), np.float32)
    exp = expected_xy(row)
    assert exp[COCO17_INDEX["left_ankle"], 1] == pytest.approx(100 + 0.77 * 80)
    assert exp[COCO17_INDEX["nose"], 1] == pytest.approx(100 - 0.83 * 80)
    assert np.allclose(exp[:, 0], 50)


def test_main_person_is_the_one_the_pose_model_found_not_the_first_detection():
    me = person((32, 64), 60)
    other = person((5, 90), 70, score=0.99)  # found first (higher score), standing at the side
    kp = standing_kp(people=np.array([other, me], np.float32))
    assert main_person(kp) == 1
    # without a pose (no person from the landmark model) the detection nearest the crop's centre line wins
    empty = Keypoints.empty(image_size=(64, 128))
    empty.people = np.array([other, me], np.float32)
    assert main_person(empty) == 1
    assert main_person(standing_kp(people=np.zeros((0, 9), np.float32))) is None
    assert main_person(standing_kp(people=None)) is None


def test_a_body_cut_at_the_knee_counts_its_legs_missing():
    # the crop ends just above the knees; the pose model squeezed knees and ankles inside it (score high), but the
    # detector's alignment puts them well below the border
    size = (64, 80)
    kp = standing_kp(size=size, hip=(32, 64), r=60, people=np.array([person((32, 64), 60)], np.float32))
    kp.xy[[COCO17_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")], 1] = 78
    out = beyond_border(kp)
    assert out[COCO17_INDEX["left_ankle"]] > 0.1 and out[COCO17_INDEX["left_knee"]] > 0.1
    assert out[COCO17_INDEX["left_hip"]] < 0
    rule = OcclusionRule(score_threshold=0.5, support_threshold=None)
    label = classify_keypoints(kp, rule)
    assert label.occluded and {"left_knee", "left_ankle", "right_knee", "right_ankle"} <= set(label.missing_keypoints)
    # the same crop without the detector's help (or with the signal off) is holistic: the squeezed legs score high
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5, support_threshold=None, cut_margin=None)).occluded
    kp.people = None
    assert not classify_keypoints(kp, rule).occluded


def test_a_whole_body_inside_the_crop_is_not_cut():
    kp = standing_kp(size=(64, 128), hip=(32, 62), r=60, people=np.array([person((32, 62), 60)], np.float32))
    assert (beyond_border(kp) <= 0.1).all()
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5, support_threshold=None)).occluded


def test_a_person_in_front_covers_the_legs_and_one_behind_does_not():
    me = person((32, 60), 55)
    front = person((40, 110), 60)  # feet lower in the image: nearer the camera
    behind = person((40, 40), 30)  # feet higher: further away
    kp = standing_kp(hip=(32, 60), r=55, people=np.array([me, front], np.float32))
    covered = covered_by_people(kp)
    legs = [COCO17_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    assert covered[legs].all()
    rule = OcclusionRule(score_threshold=0.5, support_threshold=None, cut_margin=None)
    assert classify_keypoints(kp, rule).occluded
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5, support_threshold=None, cut_margin=None,
                                                    people_cover=False)).occluded
    kp_behind = standing_kp(hip=(32, 60), r=55, people=np.array([me, behind], np.float32))
    assert not covered_by_people(kp_behind).any()
    assert not classify_keypoints(kp_behind, rule).occluded


def test_the_pool_form_agrees_with_the_per_crop_rule_on_people_signals():
    me = person((32, 60), 55)
    kps = [
        standing_kp(hip=(32, 60), r=55, people=np.array([me, person((40, 110), 60)], np.float32)),
        standing_kp(size=(64, 80), hip=(32, 64), r=60, people=np.array([person((32, 64), 60)], np.float32)),
        standing_kp(people=None),
        standing_kp(people=np.array([me], np.float32)),
    ]
    kps[1].xy[13:, 1] = 78
    for rule in (OcclusionRule(score_threshold=0.5), OcclusionRule(score_threshold=0.5, cut_margin=None),
                 OcclusionRule(score_threshold=0.5, people_cover=False), OcclusionRule(cut_margin=0.3)):
        codes = label_codes(KeypointArrays.stack(kps), rule)
        assert codes.tolist() == [int(classify_keypoints(kp, rule).occluded) for kp in kps]


def test_people_survive_the_keypoint_cache(tmp_path):
    rows = np.array([person((32, 60), 55), person((40, 110), 60)], np.float32)
    entries = {"a.jpg": Entry("a" * 40, standing_kp(people=rows)), "b.jpg": Entry("b" * 40, standing_kp(people=None)),
               "c.jpg": Entry("c" * 40, standing_kp(people=np.zeros((0, 9), np.float32)))}
    write_h5(tmp_path / "k.h5", entries, "test")
    back, _ = read_h5(tmp_path / "k.h5")
    assert np.array_equal(back["a.jpg"].keypoints.people, rows)
    assert len(back["c.jpg"].keypoints.people) == 0
    # written beside crops that have people, a crop without them reads as "nobody found"
    assert len(back["b.jpg"].keypoints.people) == 0
    write_h5(tmp_path / "n.h5", {"b.jpg": entries["b.jpg"]}, "test")
    assert read_h5(tmp_path / "n.h5")[0]["b.jpg"].keypoints.people is None


def test_the_person_detector_is_an_option_of_the_mediapipe_backend_and_part_of_its_cache_key():
    from opreid_bench.errors import OpreidError
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    on, off = MediaPipePose.from_arg(None), MediaPipePose.from_arg("people=0")
    assert on.people and not off.people
    assert on.cache_key != off.cache_key and ":people" in on.cache_key and ":people" not in off.cache_key
    with pytest.raises(OpreidError, match="people must be 0 or 1"):
        MediaPipePose.from_arg("people=2")


@pytest.mark.shared_data
def test_the_detector_finds_the_body_of_an_upper_body_crop_beyond_its_border(partial_reid_root):
    # partial_body_images/001_003: head and shoulders only (72 x 58 px); the detector puts the hips below the crop
    from PIL import Image

    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    backend = MediaPipePose()
    try:
        with Image.open(partial_reid_root / "partial_body_images" / "001_003.jpg") as im:
            kp = backend.predict(np.asarray(im.convert("RGB")), "001_003")
    finally:
        backend.close()
    assert kp.people is not None and len(kp.people) >= 1 and main_person(kp) is not None
    out = beyond_border(kp)
    assert out[COCO17_INDEX["left_ankle"]] > 0.5 and out[COCO17_INDEX["nose"]] < 0


@pytest.mark.shared_data
def test_one_graph_call_gives_what_the_two_passes_give_apart(partial_reid_root):
    # The default backend runs the ROI pass and the person detector in one mediapipe graph; the keypoints, support and
    # people must be those of the two passes run one after the other (the cache key does not change between them).
    from PIL import Image

    from opreid_bench.splits.pose_backends.mediapipe import BLAZEPOSE_TO_COCO17, MediaPipePose

    backend = MediaPipePose()
    try:
        for name in ("occluded_body_images/038_001.jpg", "whole_body_images/001_001.jpg",
                     "partial_body_images/001_003.jpg"):
            with Image.open(partial_reid_root / name) as im:
                rgb = np.asarray(im.convert("RGB"))
            kp = backend.predict(rgb, name)
            raw, people = backend.predict_raw(rgb), backend.detect_people(rgb)
            assert raw.stage == "roi" and kp.people is not None and len(people) >= 1, name
            np.testing.assert_array_equal(kp.xy, raw.xy[BLAZEPOSE_TO_COCO17])
            np.testing.assert_array_equal(kp.score, raw.visibility[BLAZEPOSE_TO_COCO17])
            np.testing.assert_array_equal(kp.support, raw.support[BLAZEPOSE_TO_COCO17])
            np.testing.assert_array_equal(kp.people, people)
    finally:
        backend.close()
