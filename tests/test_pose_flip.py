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


BLAZEPOSE_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]


def test_mirror_table_swaps_every_left_and_right_landmark_by_name():
    """BlazePose's 33 landmarks (mediapipe's PoseLandmark order): each maps to the same name with left and right
    swapped; the nose to itself."""
    from opreid_bench.splits.pose_backends.mediapipe import MIRROR

    def twin(name: str) -> str:
        swapped = name.replace("left", "@").replace("right", "left").replace("@", "right")
        return swapped

    assert [BLAZEPOSE_NAMES[j] for j in MIRROR] == [twin(n) for n in BLAZEPOSE_NAMES]


def _consistent_mirror(xy: np.ndarray, width: int) -> np.ndarray:
    """What a model that sees every joint places on the mirror image (in the mirror image's pixels)."""
    from opreid_bench.splits.pose_backends.mediapipe import MIRROR

    out = np.asarray(xy, np.float32)[MIRROR].copy()
    out[:, 0] = width - out[:, 0]
    return out


@pytest.mark.parametrize("stage", ["roi", "detect", "detect_retry"])
def test_mirror_pass_runs_the_stage_that_found_the_person_on_the_mirrored_work_image(stage, monkeypatch):
    """``_with_flip`` runs the pass that found the person (the ROI pass, or the detector pass with that pass's border)
    on the mirror of the resized crop and compares in the resized crop's pixels: a model that sees every joint gives
    a shift of 0 whatever the resize scale."""
    pytest.importorskip("mediapipe")
    from types import SimpleNamespace

    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose, RawPose

    backend = MediaPipePose(flip=True, pad=0.3)
    rng = np.random.default_rng(2)
    work = rng.integers(0, 255, (256, 100, 3), dtype=np.uint8)
    scale = 256 / 64  # the crop was 64 px high
    xy_work = rng.uniform(0, [100, 256], (33, 2)).astype(np.float32)
    mirror_xy = _consistent_mirror(xy_work, 100)
    calls = []

    def fake_detect(image, pad, retry):
        calls.append((image.copy(), pad, retry))
        return mirror_xy, np.ones(33, np.float32), None

    landmarks = [SimpleNamespace(x=x / 100, y=y / 256) for x, y in mirror_xy]

    class FakeGraph:
        def process(self, inputs):
            calls.append((inputs["image"].copy(), None, None))
            return SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=landmarks))

    monkeypatch.setattr(backend, "_run_detect", fake_detect)
    monkeypatch.setattr(backend, "_roi_mirror_graph", lambda: FakeGraph())
    pose = RawPose(xy_work / scale, np.ones(33, np.float32), np.full(33, np.nan, np.float32), stage)
    out = backend._with_flip(pose, work, scale)
    np.testing.assert_allclose(out.flip_shift, 0.0, atol=1e-4)
    (image, pad, retry), = calls
    np.testing.assert_array_equal(image, work[:, ::-1])
    assert (pad, retry) == {"roi": (None, None), "detect": (0.3, False), "detect_retry": (0.6, True)}[stage]
    backend.flip = False
    assert backend._with_flip(RawPose(xy_work, np.ones(33), np.ones(33), stage), work, 1.0).flip_shift is None


def test_a_keypoint_file_with_a_misshapen_flip_shift_is_refused(tmp_path):
    import h5py

    from opreid_bench.errors import DataError

    write_h5(tmp_path / "k.h5", {"a.jpg": Entry("a" * 40, standing(legs_moved(0.1)))}, "test")
    with h5py.File(tmp_path / "k.h5", "a") as f:
        del f["flip_shift"]
        f.create_dataset("flip_shift", data=np.zeros((1, 5), np.float32))
    with pytest.raises(DataError, match="flip_shift"):
        read_h5(tmp_path / "k.h5")


def test_data_card_names_the_mirror_signal_only_where_it_was_measured():
    import pandas as pd

    from opreid_bench.splits.datacard import _labelling_lines, labelling_summary

    labels = pd.DataFrame({"label": ["occluded", "holistic"], "source_path": ["a.jpg", "b.jpg"]})
    labels.attrs["flip_measured"] = 2
    with_flip = "\n".join(_labelling_lines(labelling_summary(labels, OcclusionRule(), "exclude")))
    assert "mirror image (measured on 2 crops" in with_flip and "more than 0.05" in with_flip
    labels.attrs["flip_measured"] = 0
    assert "mirror" not in "\n".join(_labelling_lines(labelling_summary(labels, OcclusionRule(), "exclude")))
    labels.attrs["flip_measured"] = 2
    assert "mirror" not in "\n".join(_labelling_lines(labelling_summary(labels, OcclusionRule(flip_threshold=None),
                                                                        "exclude")))


def test_build_split_flip_threshold_option_is_checked(tmp_path, capsys):
    from opreid_bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["build-split", "--pool", str(tmp_path / "pool.csv"), "--protocol", "opreid-mini", "--out",
              str(tmp_path / "split"), "--seed", "0", "--flip-threshold", "3"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--flip-threshold must be in [0, 2]" in err and "Traceback" not in err


def test_leave_one_dataset_out_searches_the_flip_threshold_where_keypoints_carry_it():
    """benchmarks/bench_occlusion.py: with the mirror signal in the keypoints, the procedure chooses its threshold
    among ``FLIP_THRESHOLDS``, and a set whose occluded crops only the signal finds gets a flip threshold chosen on
    the others; without it, the grid is the one without the signal."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_occlusion.py"
    spec = importlib.util.spec_from_file_location("bench_occlusion", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_occlusion"] = bench
    spec.loader.exec_module(bench)

    kps, crops = {}, []
    for d, offset in (("grid", 0), ("prid2011", 100)):
        for i in range(4):
            kps[f"{d}_occ{i}"] = standing(legs_moved(0.1))  # legs guessed: only the mirror signal finds them
            crops.append(bench.Crop(f"{d}_occ{i}", d, "cocc", offset + i, 1.0, ""))
            kps[f"{d}_hol{i}"] = standing(legs_moved(0.02))
            crops.append(bench.Crop(f"{d}_hol{i}", d, "hol", offset + 10 + i, 1.0, ""))
    preds = bench.lodo_predictions(kps, crops)
    assert {c[5] for c in preds} == set(bench.FLIP_THRESHOLDS) and all(len(c) == 6 for c in preds)
    lodo = bench.leave_one_dataset_out(preds, crops)
    for d in ("grid", "prid2011"):
        assert lodo[d]["chosen"][5] is not None and 0.02 <= lodo[d]["chosen"][5] < 0.1
        assert lodo[d]["balanced_accuracy"] == 1.0
    plain = {k: Keypoints(kp.xy, kp.score, image_size=kp.image_size) for k, kp in kps.items()}
    assert {c[5] for c in bench.lodo_predictions(plain, crops)} == {None}
    assert "flip 0.05" in bench._fmt_lodo((0.74, 0.8, 128, 0.1, True, 0.05))


def test_label_stability_varies_the_flip_threshold_where_the_signal_was_measured():
    """A crop occluded only because its legs moved 6% of its height on the mirror image is an unstable label: of the
    flip thresholds the stability grid holds (none, 0.03, 0.05, 0.08, 0.12, 0.2) two agree. Without the signal in the
    keypoints the grid does not vary it."""
    from opreid_bench.splits.classify import STABILITY_FLIP_THRESHOLDS, label_stability

    assert STABILITY_FLIP_THRESHOLDS == (None, 0.03, 0.05, 0.08, 0.12, 0.2)
    arrays = KeypointArrays.stack([standing(legs_moved(0.06)), standing(legs_moved(0.3)), standing(None)])
    assert label_codes(arrays, OcclusionRule()).tolist() == [1, 1, 0]
    stability = label_stability(arrays, OcclusionRule())
    assert stability[0] == pytest.approx(2 / 6) and stability[1] == pytest.approx(5 / 6) and stability[2] == 1.0
    plain = KeypointArrays.stack([standing(None)] * 2)
    assert label_stability(plain, OcclusionRule()).tolist() == [1.0, 1.0]
