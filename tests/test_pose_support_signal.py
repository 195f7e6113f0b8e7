"""The mediapipe backend's support also drops for hidden knees/ankles (mask along the limb) and for
hidden upper-body points (BlazePose's presence), so the same >=3-sequential rule finds more real occlusion."""

from __future__ import annotations

import numpy as np


def _legs_pose() -> np.ndarray:
    """33 landmarks in a 100 x 200 mask: everything at the top except the left leg's hip (23), knee (25), ankle (27)."""
    xy = np.full((33, 2), 10.0, np.float32)
    xy[23] = (50, 60)
    xy[25] = (50, 130)
    xy[27] = (50, 190)
    return xy


def test_knee_on_a_mask_spot_behind_an_occluder_loses_its_support():
    from opreid_bench.splits.pose_backends.mediapipe import keypoint_support, occlusion_support

    mask = np.ones((200, 100), np.float32)
    mask[75:122, :] = 0.0  # an occluder crossing the thigh; hip and knee cells still read as person
    xy = _legs_pose()
    point = keypoint_support(mask, xy)
    assert point[23] == 1.0 and point[25] == 1.0  # the old signal sees nothing
    sup = occlusion_support(mask, xy)
    assert sup[25] < 0.5  # hip -> knee crosses the occluder
    assert sup[27] > 0.4  # knee -> ankle only partly
    assert sup[23] == 1.0 and sup[0] == 1.0  # not a leg end point: unchanged without presence


def test_low_presence_lowers_upper_body_support_but_not_the_legs():
    from opreid_bench.splits.pose_backends.mediapipe import occlusion_support

    mask = np.ones((200, 100), np.float32)
    presence = np.ones(33, np.float32)
    presence[[13, 25]] = 0.3  # left elbow and left knee reported as hardly present
    sup = occlusion_support(mask, _legs_pose(), presence)
    assert sup[13] == np.float32(0.3)
    assert sup[25] == 1.0  # knees and ankles use the limb's mask, not presence
    nan_presence = np.full(33, np.nan, np.float32)  # detector pass: presence not reported
    assert np.allclose(occlusion_support(mask, _legs_pose(), nan_presence), 1.0)


def test_outside_the_frame_and_without_mask_stays_unknown():
    from opreid_bench.splits.pose_backends.mediapipe import occlusion_support

    xy = _legs_pose()
    xy[27] = (50, 400)  # ankle below the crop
    sup = occlusion_support(np.ones((200, 100), np.float32), xy, np.full(33, 0.2, np.float32))
    assert np.isnan(sup[27])
    assert np.isnan(occlusion_support(None, xy, np.ones(33, np.float32))).all()


def test_the_cache_key_changes_with_the_new_support():
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    key = MediaPipePose.from_arg(None).cache_key
    assert "legs" in key and "presence" in key
    assert "legs" not in MediaPipePose.from_arg("seg=0").cache_key
