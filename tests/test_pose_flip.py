"""The mirror-consistency occlusion signal: how far each keypoint moves between a crop and its mirror image
(``Keypoints.flip_shift``; the mediapipe backend with ``flip=1``)."""

from __future__ import annotations

import numpy as np
import pytest

from opreid_bench.splits.cache import Entry, read_h5, write_h5
from opreid_bench.splits.classify import KeypointArrays, OcclusionRule, classify_keypoints, label_codes
from opreid_bench.splits.keypoints import COCO17_INDEX as K
from opreid_bench.splits.keypoints import Keypoints

LEGS = [K[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]


def standing(flip_shift: np.ndarray | None = None) -> Keypoints:
    """A frontal person, every keypoint scored 0.95 (hidden joints included, as pose models do)."""
    xy = np.array([[50, 20], [45, 15], [55, 15], [40, 18], [60, 18], [35, 50], [65, 50], [30, 80], [70, 80],
                   [28, 110], [72, 110], [40, 120], [60, 120], [40, 170], [60, 170], [40, 220], [60, 220]], float)
    return Keypoints(xy, np.full(17, 0.95), image_size=(100, 240), flip_shift=flip_shift)


def legs_moved(amount: float) -> np.ndarray:
    shift = np.full(17, 0.01, np.float32)
    shift[LEGS] = amount
    return shift


def test_keypoints_that_move_on_the_mirror_image_count_missing():
    kp = standing(legs_moved(0.12))
    label = classify_keypoints(kp, OcclusionRule(flip_threshold=0.05))
    assert label.occluded and set(label.missing_keypoints) == {"left_knee", "right_knee", "left_ankle",
                                                               "right_ankle"}
    assert not classify_keypoints(kp, OcclusionRule(flip_threshold=None)).occluded  # the signal off
    assert not classify_keypoints(kp, OcclusionRule(flip_threshold=0.2)).occluded  # moved less than the threshold
    assert OcclusionRule().flip_threshold == 0.05  # the default counts it wherever it was measured


def test_unknown_flip_shift_changes_nothing():
    assert standing(None).flip_shift is None and standing(np.full(17, np.nan)).flip_shift is None
    nan_legs = legs_moved(np.nan)
    for kp in (standing(None), standing(nan_legs)):
        assert not classify_keypoints(kp, OcclusionRule(flip_threshold=0.02)).occluded


def test_flip_threshold_is_checked():
    from opreid_bench.errors import OpreidError

    with pytest.raises(OpreidError, match="flip threshold"):
        OcclusionRule(flip_threshold=-0.1)


def test_flip_shift_pairs_each_landmark_with_its_mirror_twin():
    from opreid_bench.splits.pose_backends.mediapipe import MIRROR, flip_shift

    rng = np.random.default_rng(0)
    w, h = 80.0, 200.0
    xy = rng.uniform(0, [w, h], (33, 2)).astype(np.float32)
    # what a perfectly consistent model returns on the mirror image: x mirrored, left and right swapped
    mirrored = xy[MIRROR].copy()
    mirrored[:, 0] = w - mirrored[:, 0]
    np.testing.assert_allclose(flip_shift(xy, mirrored, w, h), 0.0, atol=1e-5)
    moved = mirrored.copy()
    moved[MIRROR[25], 1] += 20.0  # the mirror pass puts the left knee (index 25) 20 px lower
    shift = flip_shift(xy, moved, w, h)
    assert shift[25] == pytest.approx(20.0 / h) and np.delete(shift, 25).max() < 1e-5
    assert MIRROR[25] == 26 and MIRROR[0] == 0 and sorted(MIRROR) == list(range(33))
    assert np.isnan(flip_shift(xy, None, w, h)).all()  # nobody found on the mirror image


def test_flip_shift_survives_the_cache_and_the_ray_batches(tmp_path):
    from opreid_bench.splits.annotate import Result, batch_to_results, results_to_batch

    shift = legs_moved(0.3)
    shift[3] = np.nan
    entries = {"a.jpg": Entry("a" * 40, standing(shift)), "b.jpg": Entry("b" * 40, standing(None))}
    write_h5(tmp_path / "k.h5", entries, "test")
    back, _ = read_h5(tmp_path / "k.h5")
    np.testing.assert_array_equal(back["a.jpg"].keypoints.flip_shift, shift)
    assert back["b.jpg"].keypoints.flip_shift is None
    write_h5(tmp_path / "old.h5", {"b.jpg": entries["b.jpg"]}, "test")
    import h5py

    with h5py.File(tmp_path / "old.h5", "r") as f:
        assert "flip_shift" not in f  # nothing measured: the file keeps the older layout
    batch = batch_to_results(results_to_batch([Result("a.jpg", "a" * 40, standing(shift), None)]))
    np.testing.assert_array_equal(batch[0].keypoints.flip_shift, shift)


def test_vectorised_labels_count_the_flip_shift_as_the_per_crop_rule_does():
    rng = np.random.default_rng(1)
    kps = []
    for i in range(300):
        shift = None if i % 4 == 0 else np.where(rng.random(17) < 0.1, np.nan, rng.random(17) * 0.15)
        kps.append(Keypoints(standing().xy + rng.normal(0, 3, (17, 2)), rng.random(17) ** 0.2, image_size=(100, 240),
                             flip_shift=shift))
    arrays = KeypointArrays.stack(kps)
    for rule in (OcclusionRule(), OcclusionRule(flip_threshold=None), OcclusionRule(flip_threshold=0.1)):
        expect = [int(classify_keypoints(kp, rule).occluded) for kp in kps]
        assert label_codes(arrays, rule).tolist() == expect, rule
    assert (label_codes(arrays, OcclusionRule()) != label_codes(arrays, OcclusionRule(flip_threshold=None))).any()


def test_mediapipe_flip_option_and_cache_key():
    pytest.importorskip("mediapipe")
    from opreid_bench.errors import OpreidError
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    assert not MediaPipePose.from_arg(None).flip and MediaPipePose.from_arg("flip=1").flip
    assert ":flip" in MediaPipePose.from_arg("flip=1").cache_key
    assert ":flip" not in MediaPipePose.from_arg(None).cache_key
    with pytest.raises(OpreidError, match="flip"):
        MediaPipePose.from_arg("flip=2")


@pytest.mark.shared_data
def test_blazepose_guesses_the_legs_of_a_cut_body_differently_on_the_mirror_image(partial_reid_root):
    """Real crops (Partial-REID): partial probe 016_003 is cut above the knees; BlazePose squeezes the legs into the
    crop with confident scores, so visibility, support and the detector's border signal leave it holistic, but its
    knees and ankles land 10-20% of the crop's height apart on the mirror image, which makes it occluded. A whole
    body (001_001) is placed the same in both images and stays holistic."""
    pytest.importorskip("mediapipe")
    from PIL import Image

    from opreid_bench.splits.pose_backends import make_backend

    plain, flip = make_backend("mediapipe"), make_backend("mediapipe:flip=1")
    try:
        img = np.asarray(Image.open(partial_reid_root / "partial_body_images" / "016_003.jpg").convert("RGB"))
        kp = flip.predict(img, "016_003.jpg")
        assert kp.flip_shift is not None and np.nanmin(kp.flip_shift[LEGS]) > 0.08
        assert plain.predict(img, "016_003.jpg").flip_shift is None
        assert not classify_keypoints(plain.predict(img, "016_003.jpg"), OcclusionRule()).occluded
        label = classify_keypoints(kp, OcclusionRule())
        assert label.occluded and {"left_knee", "right_knee"} <= set(label.missing_run)
        img = np.asarray(Image.open(partial_reid_root / "whole_body_images" / "001_001.jpg").convert("RGB"))
        kp = flip.predict(img, "001_001.jpg")
        assert kp.flip_shift is not None and np.nanmax(kp.flip_shift) < 0.05
        assert not classify_keypoints(kp, OcclusionRule()).occluded
    finally:
        plain.close()
        flip.close()


def test_classify_flip_threshold_option(tmp_path, capsys):
    """``classify --flip-threshold``: the default counts the moved legs (occluded), ``none`` and a threshold above
    the shift do not; a bad value is one line on stderr, exit code 2."""
    import csv
    import json

    from opreid_bench.cli import main

    entries = {"moved.jpg": Entry("a" * 40, standing(legs_moved(0.12))),
               "still.jpg": Entry("b" * 40, standing(legs_moved(0.01)))}
    write_h5(tmp_path / "keypoints.h5", entries, "test")

    def labels(*extra: str) -> dict[str, str]:
        out = tmp_path / f"labels{len(extra)}{'_'.join(extra)}.csv"
        with pytest.raises(SystemExit) as exc:
            main(["classify", "--keypoints", str(tmp_path / "keypoints.h5"), "--out", str(out), "--json", *extra])
        assert exc.value.code == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["flip_threshold"] == (None if extra[-1:] == ("none",) else float(extra[-1]) if extra else 0.05)
        with out.open(newline="") as fh:
            return {row["source_path"]: row["label"] for row in csv.DictReader(fh)}

    assert labels() == {"moved.jpg": "occluded", "still.jpg": "holistic"}
    assert labels("--flip-threshold", "none") == {"moved.jpg": "holistic", "still.jpg": "holistic"}
    assert labels("--flip-threshold", "0.2") == {"moved.jpg": "holistic", "still.jpg": "holistic"}
    with pytest.raises(SystemExit) as exc:
        main(["classify", "--keypoints", str(tmp_path / "keypoints.h5"), "--out", str(tmp_path / "x.csv"),
              "--flip-threshold", "high"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--flip-threshold" in err and "Traceback" not in err
