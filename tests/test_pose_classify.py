"""The occluded/holistic rule on hand-made keypoints: runs along chains, threshold, corrections, label table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opreid_bench.errors import DataError, OpreidError
from opreid_bench.splits.cache import Entry, write_h5
from opreid_bench.splits.classify import (
    LABEL_COLUMNS,
    OcclusionRule,
    classify_keypoints,
    classify_store,
    write_labels,
)
from opreid_bench.splits.keypoints import COCO17_INDEX, COCO17_NAMES, Keypoints


def make_kp(missing: list[str] = (), low: float = 0.1, high: float = 0.99, size=(64, 128)) -> Keypoints:
    """A standing person inside a 64x128 crop; ``missing`` keypoints get score ``low``."""
    xy = np.array([[32, 10 + 7 * i] for i in range(17)], np.float32)
    score = np.full(17, high, np.float32)
    for name in missing:
        score[COCO17_INDEX[name]] = low
    return Keypoints(xy, score, image_size=size)


RULE = OcclusionRule(score_threshold=0.5, min_missing_run=3)


def test_holistic_when_everything_visible():
    label = classify_keypoints(make_kp(), RULE)
    assert not label.occluded
    assert label.missing_keypoints == [] and label.longest_missing_run == 0 and label.visible_fraction == 1.0


def test_one_leg_hidden_is_a_run_of_three_on_the_side_chain():
    label = classify_keypoints(make_kp(["left_hip", "left_knee", "left_ankle"]), RULE)
    assert label.occluded and label.longest_missing_run == 3
    assert label.missing_keypoints == ["left_hip", "left_knee", "left_ankle"]
    assert label.visible_fraction == pytest.approx(14 / 17, abs=1e-4)


def test_lower_body_behind_a_counter_counts_across_both_legs():
    kp = make_kp(["left_knee", "right_knee", "left_ankle", "right_ankle"])
    assert classify_keypoints(kp, RULE).longest_missing_run == 4
    assert classify_keypoints(kp, RULE).occluded
    # the plain anatomical chains see only hip-knee-ankle pieces of length 2 here
    limbs = OcclusionRule(score_threshold=0.5, chains="limbs")
    assert classify_keypoints(kp, limbs).longest_missing_run == 2
    assert not classify_keypoints(kp, limbs).occluded


def test_missing_keypoints_that_are_not_sequential_do_not_make_a_run():
    # three missing keypoints scattered over different chains: never 3 in a row
    label = classify_keypoints(make_kp(["nose", "left_wrist", "right_ankle"]), RULE)
    assert label.longest_missing_run == 1 and not label.occluded
    assert len(label.missing_keypoints) == 3


def test_head_chain_and_run_length_is_configurable():
    kp = make_kp(["left_ear", "left_eye", "nose", "right_eye"])
    assert classify_keypoints(kp, RULE).longest_missing_run == 4
    assert classify_keypoints(kp, OcclusionRule(score_threshold=0.5, min_missing_run=4)).occluded
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5, min_missing_run=5)).occluded


def test_threshold_decides_what_is_missing():
    kp = make_kp(["left_shoulder", "left_elbow", "left_wrist"], low=0.6)
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5)).occluded
    assert classify_keypoints(kp, OcclusionRule(score_threshold=0.7)).occluded


def test_keypoints_outside_the_crop_are_missing():
    kp = make_kp()
    kp.xy[[11, 13, 15], 1] = 500.0  # left hip, knee, ankle extrapolated far below a 128 px crop
    assert classify_keypoints(kp, RULE).occluded
    assert not classify_keypoints(kp, OcclusionRule(score_threshold=0.5, outside_margin=None)).occluded


def test_no_person_detected_is_undetermined_with_nothing_visible():
    label = classify_keypoints(Keypoints.empty((64, 128)), RULE)
    assert not label.occluded and label.undetermined and label.label == "undetermined"
    assert label.visible_fraction == 0.0 and label.missing_keypoints == COCO17_NAMES


def test_coco_order_chain_is_the_literal_reading():
    kp = make_kp(["right_wrist", "left_hip", "right_hip"])  # indices 10, 11, 12: consecutive in COCO order only
    assert classify_keypoints(kp, OcclusionRule(score_threshold=0.5, chains="coco_order")).occluded
    assert not classify_keypoints(kp, RULE).occluded


def test_bad_rules_are_user_errors():
    with pytest.raises(OpreidError):
        OcclusionRule(score_threshold=1.5)
    with pytest.raises(OpreidError):
        OcclusionRule(min_missing_run=0)
    with pytest.raises(OpreidError, match="elbowz"):
        OcclusionRule(chains=(("left_shoulder", "left_elbowz"),))
    with pytest.raises(OpreidError, match="preset"):
        OcclusionRule(chains="arms")


@pytest.fixture()
def store(tmp_path):
    entries = {
        "crops/a.jpg": Entry("a" * 40, make_kp()),
        "crops/b.jpg": Entry("b" * 40, make_kp(["left_knee", "right_knee", "left_ankle", "right_ankle"])),
        "crops/c.jpg": Entry("c" * 40, Keypoints.empty((64, 128))),
    }
    path = tmp_path / "keypoints.h5"
    write_h5(path, entries, "test-backend")
    return path


def test_classify_store_table_and_csv(store, tmp_path):
    df = classify_store(store.parent, RULE)  # the annotate folder works as well as the file
    assert list(df.columns) == LABEL_COLUMNS
    assert df["source_path"].tolist() == ["crops/a.jpg", "crops/b.jpg", "crops/c.jpg"]
    assert df["occluded"].tolist() == [False, True, False]
    assert df["label"].tolist() == ["holistic", "occluded", "undetermined"]
    assert df.loc[1, "missing_keypoints"] == "left_knee;right_knee;left_ankle;right_ankle"
    out = write_labels(df, tmp_path / "labels.csv")
    back = pd.read_csv(out, keep_default_na=False)
    assert list(back.columns) == LABEL_COLUMNS and back["occluded"].tolist() == [False, True, False]


def test_corrections_override_the_rule(store, tmp_path):
    csv = tmp_path / "fix.csv"
    csv.write_text("source_path,occluded\ncrops/a.jpg,occluded\ncrops/c.jpg,0\ncrops/b.jpg,true\n")
    df = classify_store(store, RULE, corrections_csv=csv)
    assert df["occluded"].tolist() == [True, True, False]
    assert df.attrs["corrected"] == 2  # b was already occluded
    assert df.loc[2, "visible_fraction"] == 0.0  # the keypoint columns keep what the keypoints say


def test_bad_corrections_name_the_file(store, tmp_path):
    typo = tmp_path / "typo.csv"
    typo.write_text("source_path,occluded\ncrops/zzz.jpg,1\n")
    with pytest.raises(DataError, match="typo.csv.*crops/zzz.jpg"):
        classify_store(store, RULE, corrections_csv=typo)
    bad = tmp_path / "bad.csv"
    bad.write_text("source_path,occluded\ncrops/a.jpg,maybe\n")
    with pytest.raises(DataError, match="bad.csv: row 2"):
        classify_store(store, RULE, corrections_csv=bad)
    cols = tmp_path / "cols.csv"
    cols.write_text("path,label\ncrops/a.jpg,1\n")
    with pytest.raises(DataError, match="source_path,occluded"):
        classify_store(store, RULE, corrections_csv=cols)


def test_missing_keypoint_file_is_a_user_error(tmp_path):
    with pytest.raises(DataError, match="keypoint file not found"):
        classify_store(tmp_path / "nowhere", RULE)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="junk.h5"):
        classify_store(junk, RULE)


def test_keypoints_normalise_scores_and_round_trip_flat():
    kp = Keypoints(np.zeros((17, 2)), np.array([np.nan, 1.7, -0.2] + [0.5] * 14), image_size=(10.0, 20.0))
    assert kp.score[:3].tolist() == [0.0, 1.0, 0.0] and kp.image_size == (10, 20)
    back = Keypoints.from_flat(kp.to_flat())
    np.testing.assert_array_equal(back.score, kp.score)
    with pytest.raises(ValueError, match="51"):
        Keypoints.from_flat([1.0] * 50)


def test_a_gap_inside_one_chain_breaks_the_run():
    # shoulder, knee and ankle of the left side missing, the hip between them visible: runs of 1 and 2 on the side
    # chain (shoulder | hip | knee-ankle), never 3 in a row, so the crop stays holistic
    kp = make_kp(["left_shoulder", "left_knee", "left_ankle"])
    label = classify_keypoints(kp, RULE)
    assert label.longest_missing_run == 2 and not label.occluded
    assert set(label.missing_keypoints) == {"left_shoulder", "left_knee", "left_ankle"}
    # the same three with the hip hidden too are four in a row
    assert classify_keypoints(make_kp(["left_shoulder", "left_hip", "left_knee", "left_ankle"]), RULE).occluded
