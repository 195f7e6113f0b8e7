"""Issue 13: no crop is left with its face silently visible (head prior), the all-faces option, verify's detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from opreid_bench.errors import OpreidError
from opreid_bench.splits.datacard import _mask_counts
from opreid_bench.splits.face_detect import _merge, verify_faces
from opreid_bench.splits.keypoints import COCO17_INDEX, Keypoints
from opreid_bench.splits.mask import head_prior_box, mask_face_detailed, parse_mask_mode


def noise(w: int = 64, h: int = 128, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def headless_person(shift: int = 0) -> Keypoints:
    """A person found lower in the crop (starting at y=40+shift) whose head keypoints all score 0."""
    xy = np.array([[32, 40 + shift + 5 * i] for i in range(17)], np.float32)
    xy[COCO17_INDEX["left_shoulder"], 0], xy[COCO17_INDEX["right_shoulder"], 0] = 42, 22
    score = np.full(17, 0.9, np.float32)
    for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        score[COCO17_INDEX[n]] = 0.0
    return Keypoints(xy, score, image_size=(64, 128))


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return (np.asarray(a) != np.asarray(b)).any(axis=2)


def test_a_crop_whose_head_is_not_located_gets_the_head_prior():
    img = noise()
    kp = headless_person()
    res = mask_face_detailed(img, kp, "blur", haar_fallback=False)
    assert res.masked and res.method == "prior" and len(res.boxes) == 1
    left, top, right, bottom = res.boxes[0]
    assert 0 <= left < right <= 64 and 0 <= top < bottom <= 128
    # the band at the top of the person's box, above the hips, covering the shoulders' span
    assert top <= 40 and bottom < kp.xy[COCO17_INDEX["left_hip"], 1] and left <= 22 and right >= 42
    diff = changed(img, res.image)
    assert diff[top:bottom, left:right].mean() > 0.5 and not diff[bottom:].any() and not diff[:, right:].any()
    # the prior follows where the person is
    assert head_prior_box(headless_person(30), (64, 128))[1] > top
    # without the prior the crop stays unmasked, as before
    off = mask_face_detailed(img, kp, "blur", haar_fallback=False, head_prior=False)
    assert not off.masked and off.method == "none" and not changed(img, off.image).any()


def test_no_person_found_masks_the_top_of_the_crop():
    img = noise()
    res = mask_face_detailed(img, Keypoints.empty((64, 128)), "fill", haar_fallback=False)
    assert res.method == "prior" and res.boxes == [head_prior_box(None, (64, 128))]
    left, top, right, bottom = res.boxes[0]
    assert top == 0 and bottom == 29 and left <= 7 and right >= 57  # top 22%, 80% of the width
    assert (np.asarray(res.image)[top:bottom, left:right] == 128).all()


def test_mask_modes_with_all_faces():
    # every face is the default; +all is the same, +main the opt-out
    assert parse_mask_mode("blur") == ("blur", True)
    assert parse_mask_mode("pixelate+all") == ("pixelate", True)
    assert parse_mask_mode("fill+main") == ("fill", False)
    for bad in ("blur+some", "smudge", "smudge+all"):
        with pytest.raises(OpreidError, match="unknown mask mode"):
            parse_mask_mode(bad)
    img = Image.new("RGB", (64, 128), (90, 90, 90))  # no face anywhere: the face detector adds nothing
    res = mask_face_detailed(img, headless_person(), "blur+all", haar_fallback=False)
    assert res.method == "prior"


def test_overlapping_face_boxes_merge():
    assert _merge([(0, 0, 10, 10), (2, 2, 11, 11), (30, 30, 40, 40)]) == [(0, 0, 11, 11), (30, 30, 40, 40)]


def test_verify_names_its_detector(tmp_path):
    for i in range(2):
        noise(seed=i).save(tmp_path / f"{i}.jpg")
    found = verify_faces(tmp_path, detector="mediapipe", progress=False)
    assert found["checked"] == 2 and found["detector"] == "mediapipe"
    with pytest.raises(OpreidError, match="unknown face detector"):
        verify_faces(tmp_path, detector="eyeball", progress=False)


def test_data_card_counts_and_lists_head_prior_masks():
    df = pd.DataFrame({"path": ["query/a.jpg", "query/b.jpg", "query/c.jpg", "query/d.jpg"],
                       "mask_method": ["keypoints", "prior", "haar+faces", "none"]})
    text = _mask_counts(df)
    assert "1 from head keypoints" in text and "1 by the Haar face detector" in text
    assert "1 by the head prior" in text and "`query/b.jpg`" in text and "1 left unmasked" in text
    assert "1 with further faces masked (bystanders)" in text
    df["masks"] = ["keypoints@1,2,3,4", "prior@0,0,9,9", "haar@1,1,5,5;blazeface@2,2,6,6;person@0,0,3,3", ""]
    assert "Masks by kind: blazeface 1, haar 1, keypoints 1, person 1, prior 1." in _mask_counts(df)


@pytest.mark.parametrize("kp", [None, Keypoints.empty((64, 128)), headless_person()],
                         ids=["no keypoints", "no person found", "head not located"])
def test_the_split_writer_masks_the_head_prior_where_no_head_was_located(tmp_path, kp):
    # what build-split's writer does with a crop whose head nothing located: the top of the person's box (or of the
    # crop) is masked, never left as it is; the rest of the crop keeps its pixels (up to JPEG)
    from opreid_bench.splits.writer import write_images

    src = tmp_path / "src.png"
    blocks = (np.indices((128, 64)) // 8).sum(axis=0) % 2  # 8-px checkerboard: JPEG keeps it, a blur does not
    Image.fromarray(np.repeat((blocks * 200 + 25).astype(np.uint8)[..., None], 3, axis=2)).save(src)
    (masked, method, masks), = write_images([(str(src), str(tmp_path / "out.jpg"), kp, "blur")])
    box = head_prior_box(kp, (64, 128))
    assert masked and method.split("+")[0] == "prior" and masks.split(";")[0] == "prior@{},{},{},{}".format(*box)
    before = np.asarray(Image.open(src), np.int16)
    after = np.asarray(Image.open(tmp_path / "out.jpg"), np.int16)
    inside = np.abs(after[box[1]:box[3], box[0]:box[2]] - before[box[1]:box[3], box[0]:box[2]]).mean()
    below = np.abs(after[100:, :] - before[100:, :]).mean()
    assert inside > 2 * below, (inside, below)


def test_a_pose_with_the_head_low_or_below_the_shoulders_places_no_face_mask() -> None:
    from split_helpers import STANDING

    from opreid_bench.splits.mask import upright_pose

    img = noise()
    upright = Keypoints(STANDING.copy(), np.full(17, 0.95, np.float32), image_size=(64, 128))
    assert upright_pose(upright, (64, 128))
    flipped = Keypoints(np.column_stack([STANDING[:, 0], 127 - STANDING[:, 1]]), np.full(17, 0.95, np.float32),
                        image_size=(64, 128))  # upside down: the head by the feet
    assert not upright_pose(flipped, (64, 128))
    slid = STANDING.copy()
    slid[:5, 1] += 25  # head points under the shoulders (y 32), still in the upper half
    assert not upright_pose(Keypoints(slid, np.full(17, 0.95, np.float32), image_size=(64, 128)), (64, 128))
    res = mask_face_detailed(img, flipped, "blur", all_faces=False)
    assert res.method == "prior" and res.boxes[0][1] == 0 and res.boxes[0][3] <= 0.3 * 128
    assert mask_face_detailed(img, upright, "blur", all_faces=False).method == "keypoints"


def test_a_rejected_upside_down_pose_keeps_the_person_detectors_bystanders() -> None:
    """An upside-down main pose places no face mask, but the other people the detector found still get theirs."""
    from split_helpers import STANDING

    flipped = np.column_stack([STANDING[:, 0], 127 - STANDING[:, 1]])
    people = np.array([[0.9, 40, 70, 40, 0, 40, 30, 40, 5],  # the main person, central
                       [0.9, 4, 100, 4, 40, 4, 65, 4, 45]], np.float32)  # a bystander at the left border
    kp = Keypoints(flipped, np.full(17, 0.95, np.float32), image_size=(64, 128), people=people)
    res = mask_face_detailed(noise(), kp, "blur")
    assert res.kinds[0] == "prior" and "person" in res.kinds
    left, top, right, bottom = res.boxes[res.kinds.index("person")]
    assert left == 0 and right < 32 and 30 < (top + bottom) / 2 < 70


def test_mask_outside_body_covers_all_but_the_main_body_below_the_shoulders() -> None:
    """--mask-outside-body: the band above the shoulder line (y 32, without the head gate's margin: the collar and
    upper chest stay) across the crop and the sides beside the body's column (arms included, grown by a foot's
    length, 0.15 of the keypoints' height 102: 15.3 px) are masked; the body below the shoulders is untouched.
    Without a pose, the crop's central half is kept below a quarter of its height."""
    from split_helpers import STANDING

    from opreid_bench.splits.all_faces import outside_body_boxes
    from opreid_bench.splits.mask import masks_outside_body

    kp = Keypoints(STANDING.copy(), np.full(17, 0.95, np.float32), image_size=(64, 128))
    assert outside_body_boxes(kp, (64, 128)) == [(0, 0, 64, 32), (0, 32, 4, 128), (60, 32, 64, 128)]
    assert outside_body_boxes(None, (64, 128)) == [(0, 0, 64, 32), (0, 32, 16, 128), (48, 32, 64, 128)]
    assert masks_outside_body("fill+outside") and not masks_outside_body("fill") and parse_mask_mode("fill+outside")
    img = noise()
    res = mask_face_detailed(img, kp, "fill+outside")
    assert res.kinds.count("outside") == 3 and res.method.split("+")[0] == "keypoints" and "outside" in res.method
    out, before = np.asarray(res.image), np.asarray(img.convert("RGB"))
    assert (out[:32] == 128).all() and (out[32:, :4] == 128).all() and (out[32:, 60:] == 128).all()
    assert (out[32:, 4:60] == before[32:, 4:60]).all()  # the body below the shoulders, arms included
    # a side view: every keypoint within a few pixels (x 30-34); the column still holds a stride and the central half
    side = STANDING.copy()
    side[:, 0] = 30 + (side[:, 0] - 20) / 6
    narrow = Keypoints(side, np.full(17, 0.95, np.float32), image_size=(64, 128))
    assert outside_body_boxes(narrow, (64, 128))[1:] == [(0, 32, 14, 128), (50, 32, 64, 128)]
    assert not masks_outside_body("blur+main")


def test_a_haar_box_low_in_the_crop_is_not_taken_for_the_main_face(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a usable pose the Haar cascade places the main face; its boxes low in a crop (a shoe, a bag at the
    bottom border) cannot be the main person's head, so the head prior at the crop's top masks it instead."""
    import opreid_bench.splits.mask as mask

    img = noise()  # 64 x 128
    monkeypatch.setattr(mask, "detect_faces", lambda rgb: [(2, 100, 16, 114)])  # centred at y 107 of 128
    low = mask_face_detailed(img, None, "blur", all_faces=False)
    assert low.method == "prior" and low.boxes == [head_prior_box(None, img.size)]
    monkeypatch.setattr(mask, "detect_faces", lambda rgb: [(2, 100, 16, 114), (26, 6, 40, 20)])
    high = mask_face_detailed(img, None, "blur", all_faces=False)
    assert high.method == "haar" and high.boxes == [(26, 6, 40, 20)]
