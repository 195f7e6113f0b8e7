"""Real crowded crops from ../shared/data: a person in front, an object in front, a body cut at the knee, faces.

Each crop is named; each case was looked at by eye (benchmarks/labels/). The default pose backend runs on the crop
itself, so these tests pin what the default pipeline says, not what a cache holds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opreid_bench.splits.classify import OcclusionRule, classify_keypoints
from opreid_bench.splits.mask import mask_face_detailed

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def backend():
    from opreid_bench.splits.pose_backends.mediapipe import MediaPipePose

    b = MediaPipePose()
    yield b
    b.close()


def _label(backend, image: Image.Image) -> tuple[str, list[str]]:
    kp = backend.predict(np.asarray(image.convert("RGB")), "crop")
    label = classify_keypoints(kp, OcclusionRule())
    return label.label, label.missing_run


def test_a_person_in_front_makes_the_crop_occluded(backend, partial_reid_root: Path):
    # occluded_body_images/038_001: a man in a blue shirt stands in front of the woman, hiding her right side and legs
    with Image.open(partial_reid_root / "occluded_body_images" / "038_001.jpg") as im:
        label, run = _label(backend, im)
    assert label == "occluded", run


def test_a_bicycle_in_front_makes_the_crop_occluded(backend, partial_reid_root: Path):
    # occluded_body_images/003_005: a man behind a bicycle; the frame and wheel hide his lower legs
    with Image.open(partial_reid_root / "occluded_body_images" / "003_005.jpg") as im:
        label, run = _label(backend, im)
    assert label == "occluded" and {"left_knee", "right_knee"} <= set(run), run


@pytest.mark.xfail(strict=True, reason="measured gap: BlazePose places the hidden shins on the suitcase with high "
                                       "visibility and person support, and the person detector sees no occluder")
def test_a_rolling_suitcase_in_front_makes_the_crop_occluded(backend, shared_data: Path):
    # prid2011/0031_a: a woman at the right overlaps the hips and a rolling suitcase covers the lower legs
    with Image.open(shared_data / "prid2011" / "0031_a.png") as im:
        label, _ = _label(backend, im)
    assert label == "occluded"


def test_a_body_cut_at_the_knee_is_occluded(backend, partial_reid_root: Path):
    # whole_body_images/020_003, a whole standing man, cut at 70% of its height: just below the knees. The pose
    # model squeezes the lower legs into the crop; the person detector's body alignment places them below the border.
    with Image.open(partial_reid_root / "whole_body_images" / "020_003.jpg") as im:
        cut = im.convert("RGB").crop((0, 0, im.width, int(im.height * 0.7)))
        whole = im.convert("RGB")
    label, run = _label(backend, cut)
    assert label == "occluded" and {"left_ankle", "right_ankle"} <= set(run), run
    assert _label(backend, whole)[0] == "holistic"


def test_upper_bodies_cut_at_the_waist_are_occluded(backend, partial_reid_root: Path):
    # partial_body_images 006_003 and 007_004: head to waist, legs beyond the bottom border
    for name in ("006_003.jpg", "007_004.jpg"):
        with Image.open(partial_reid_root / "partial_body_images" / name) as im:
            label, run = _label(backend, im)
        assert label == "occluded", (name, run)


def _bench_faces():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_faces.py"
    sys.path.insert(0, str(path.parent))
    try:
        import bench_faces
    finally:
        sys.path.remove(str(path.parent))
    return bench_faces


def test_every_masked_crop_of_the_hand_boxed_set_keeps_masks_on_heads(backend, shared_data: Path):
    # the masks of the default masking fall on heads (hand-boxed in benchmarks/labels/faces_heads.csv), checked on
    # the crowded GRID crops with other people in them
    bench = _bench_faces()
    heads = bench.read_heads(bench.LABELS)
    grid = sorted(f for f in heads if f.startswith("grid/"))
    for f in grid:
        with Image.open(shared_data / f) as im:
            rgb = im.convert("RGB")
        kp = backend.predict(np.asarray(rgb), f)
        res = mask_face_detailed(rgb, kp, "blur")
        boxes = [b for b, _, _ in heads[f]]
        for box in res.boxes:
            assert bench.on_head(box, boxes) >= bench.ON_HEAD, (f, box, res.kinds)


def test_a_bystanders_face_behind_the_main_person_is_masked(backend, partial_reid_root: Path):
    # occluded_body_images/055_003: the main person sits in front; a man stands behind her, his face (about 12 px)
    # at the top of the crop. Masking the main face only leaves his face visible; the default masks it too.
    with Image.open(partial_reid_root / "occluded_body_images" / "055_003.jpg") as im:
        rgb = im.convert("RGB")
    kp = backend.predict(np.asarray(rgb), "055_003")
    res = mask_face_detailed(rgb, kp, "blur")
    main_only = mask_face_detailed(rgb, kp, "blur+main")
    bystander = (19, 6, 30, 18)
    eyes = (19, 6, 30, 12)  # the upper half of his face: the main person's own mask ends below it
    bench = _bench_faces()
    assert bench.coverage(bystander, res.boxes) >= 0.5, (res.boxes, res.kinds)
    assert bench.coverage(eyes, res.boxes) >= 0.5, (res.boxes, res.kinds)
    assert bench.coverage(eyes, main_only.boxes) < 0.5
    before, after = np.asarray(rgb, np.int16), np.asarray(res.image, np.int16)
    assert np.abs(after[6:18, 19:30] - before[6:18, 19:30]).mean() > 3  # the pixels of his face changed


def test_verify_exits_1_on_a_visible_face_and_0_once_it_is_masked(partial_reid_root: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]):
    # whole_body_images/001_001: a man facing the camera, his face about 20 px wide
    import json

    from opreid_bench.cli import main

    raw = tmp_path / "raw"
    raw.mkdir()
    with Image.open(partial_reid_root / "whole_body_images" / "001_001.jpg") as im:
        im.convert("RGB").save(raw / "001_c1_001.png")
    with pytest.raises(SystemExit) as exc:
        main(["mask", "--verify", "--out", str(raw), "--json"])
    found = json.loads(capsys.readouterr().out)
    assert exc.value.code == 1 and found["faces_found"] == 1
    with pytest.raises(SystemExit) as exc:
        main(["mask", "--pool", str(raw), "--pool-format", "folder", "--pattern", r"(?P<pid>\d+)_c(?P<camid>\d+)",
              "--out", str(tmp_path / "masked"), "--verify", "--json"])
    done = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0 and done["faces_found"] == 0 and done["faces_masked"] == 1


def test_a_clear_face_in_front_of_the_main_persons_body_is_masked(backend, cuhk03_root: Path):
    # val/0050_07: a girl walks in front of the main person, her face (about 36 px) at the height of his chest. The
    # body rule of the head gate alone would reject it; BlazeFace's confidence lets it through.
    with Image.open(cuhk03_root / "val" / "0050_07.jpg") as im:
        rgb = im.convert("RGB")
    kp = backend.predict(np.asarray(rgb), "0050_07")
    res = mask_face_detailed(rgb, kp, "blur")
    bench = _bench_faces()
    assert bench.coverage((9, 123, 55, 177), res.boxes) >= 0.5, (res.boxes, res.kinds)
    assert "blazeface" in res.kinds


def test_an_upside_down_pose_does_not_place_the_face_mask_on_the_feet(backend, shared_data: Path):
    # grid/0007_1_25201_123_10_59_174: a person seen from behind, head at the top of the crop; BlazePose returns a
    # confident pose upside down (nose at y ~158 of 175, by the feet). The mask must go to the top, where the head is.
    with Image.open(shared_data / "grid" / "0007_1_25201_123_10_59_174.jpeg") as im:
        rgb = im.convert("RGB")
    kp = backend.predict(np.asarray(rgb), "0007_1")
    assert kp.xy[0, 1] > 0.8 * rgb.height  # the pose the model gives: the nose by the feet
    res = mask_face_detailed(rgb, kp, "blur")
    main = [b for b, k in zip(res.boxes, res.kinds, strict=True) if k in ("keypoints", "haar", "prior")]
    assert main and all(b[3] <= 0.3 * rgb.height for b in main), (res.boxes, res.kinds)
    assert res.method.startswith(("prior", "haar"))


def test_mask_outside_body_covers_bystanders_faces_at_the_border(backend, shared_data: Path):
    # prid2011/0239_a: a bystander at the left border beside the main person's head, boxed by hand in
    # faces_heads_heldout2.csv (0,21,13,40), face visible; no detector finds it. --mask-outside-body covers it and
    # leaves the main person's body below the shoulders as it was.
    from opreid_bench.splits.all_faces import covered_share, main_body

    with Image.open(shared_data / "prid2011" / "0239_a.png") as im:
        rgb = im.convert("RGB")
    kp = backend.predict(np.asarray(rgb), "0239_a")
    default, outside = mask_face_detailed(rgb, kp, "blur"), mask_face_detailed(rgb, kp, "blur+outside")
    head = (0, 21, 13, 40)
    assert covered_share(head, default.boxes) < 0.5 <= covered_share(head, outside.boxes)
    left, right, top = main_body(kp, rgb.size)
    body = (int(np.ceil(left)), int(np.ceil(top)), int(right), rgb.size[1])
    assert covered_share(body, [b for b, k in zip(outside.boxes, outside.kinds, strict=True) if k == "outside"]) == 0
