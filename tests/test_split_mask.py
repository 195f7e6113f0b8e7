"""Face masking: the keypoint face box, each mode changes that box only, the Haar fallback and verify run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from split_helpers import STANDING, draw_crop

from opreid_bench.errors import OpreidError
from opreid_bench.splits.face_detect import detect_faces, verify_faces
from opreid_bench.splits.keypoints import Keypoints
from opreid_bench.splits.mask import (
    MASK_MODES,
    face_box_from_keypoints,
    head_prior_box,
    mask_box,
    mask_face,
    mask_face_detailed,
)


def person() -> tuple[Image.Image, Keypoints]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8))
    return img, Keypoints(STANDING, np.full(17, 0.95), image_size=(64, 128))


def test_face_box_geometry_covers_head_points() -> None:
    _, kp = person()
    box = face_box_from_keypoints(kp, (64, 128))
    assert box is not None
    left, top, right, bottom = box
    head = STANDING[:5]
    assert left <= head[:, 0].min() and right >= head[:, 0].max()
    assert top <= head[:, 1].min() and bottom >= head[:, 1].max()
    assert bottom < 40  # stays above the chest (shoulders at y=32 + a margin for the chin)
    kp.score[:5] = 0.1
    assert face_box_from_keypoints(kp, (64, 128)) is None


def test_face_box_of_a_side_view_covers_the_head() -> None:
    """In a side view the head points nearly coincide; the box is sized from the torso too, so it reaches the forehead
    and the chin of a head about half a torso tall (a box from the head points alone covers under half of it)."""
    from opreid_bench.splits.all_faces import covered_share

    xy = np.zeros((17, 2), np.float32)
    score = np.full(17, 0.9, np.float32)
    xy[0], xy[1], xy[3] = (40, 20), (38, 18), (34, 19)  # nose, left eye, left ear; the far side hidden
    score[[2, 4]] = 0.1
    xy[5], xy[6] = (32, 40), (33, 40)  # shoulders one behind the other
    xy[11], xy[12] = (32, 88), (33, 88)
    xy[13:15], xy[15:17] = (32, 120), (32, 150)
    kp = Keypoints(xy, score, image_size=(64, 160))
    box = face_box_from_keypoints(kp, (64, 160))
    assert box is not None
    head = (28, 5, 46, 30)  # hair to chin, ear to nose tip: about half the 48 px torso
    assert covered_share(head, [box]) >= 0.8
    assert box[3] < 40  # still above the shoulders


@pytest.mark.parametrize("mode", MASK_MODES)
def test_masking_changes_the_face_box_only(mode: str) -> None:
    img, kp = person()
    res = mask_face_detailed(img, kp, mode)
    assert res.masked and res.method == "keypoints" and len(res.boxes) == 1
    before, after = np.asarray(img), np.asarray(res.image)
    left, top, right, bottom = res.boxes[0]
    inside = np.zeros(before.shape[:2], bool)
    inside[top:bottom, left:right] = True
    assert (before[~inside] == after[~inside]).all()
    assert np.abs(before[inside].astype(int) - after[inside].astype(int)).mean() > 20  # really masked
    again, masked = mask_face(img, kp, mode)
    assert masked and np.array_equal(np.asarray(again), after)  # deterministic


def test_fill_is_flat_grey() -> None:
    img, _ = person()
    out = np.asarray(mask_box(img, (10, 10, 20, 30), "fill"))
    assert (out[10:30, 10:20] == 128).all()
    with pytest.raises(OpreidError, match="unknown mask mode"):
        mask_box(img, (0, 0, 5, 5), "smudge")


def test_haar_fallback_runs_only_without_a_pose(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Haar cascade places the main face of a crop with no pose result; where the pose stage ran and placed no
    head, the head prior does (on 28 such GRID crops, masks off every head in 12 with the cascade, 3 with the prior)."""
    import opreid_bench.splits.mask as mask

    img = draw_crop(np.random.default_rng(1), occluded=False)  # 64 x 128
    monkeypatch.setattr(mask, "detect_faces", lambda rgb: [(26, 6, 40, 20)])
    assert mask_face_detailed(img, None, "blur", all_faces=False).method == "haar"
    headless = Keypoints(STANDING, np.zeros(17), image_size=(64, 128))  # the pose ran; no keypoint visible
    res = mask_face_detailed(img, headless, "blur", all_faces=False)
    assert res.method == "prior" and res.boxes == [head_prior_box(headless, img.size)]
    assert mask_face_detailed(img, headless, "blur", all_faces=False, head_prior=False).method == "none"
    assert mask_face_detailed(img, None, "blur", haar_fallback=False, head_prior=False).method == "none"
    # The pose ran and found nobody, or a pose upside down (taken as nobody): the head prior of the crop's top.
    nobody = Keypoints.empty((64, 128))
    upside_down = Keypoints(STANDING[::-1].copy(), np.full(17, 0.95, np.float32), image_size=(64, 128))
    for kp in (nobody, upside_down):
        res = mask_face_detailed(img, kp, "blur", all_faces=False)
        assert res.method == "prior" and res.boxes == [head_prior_box(None, img.size)]


@pytest.mark.shared_data
def test_haar_masks_real_faces_and_verify_finds_fewer(partial_reid_root: Path, tmp_path: Path) -> None:
    """On real crops the cascade finds faces; after the fallback masks them, verify finds (almost) none."""
    crops = sorted((partial_reid_root / "whole_body_images").glob("*.jpg"))[:16]
    found = [c for c in crops if detect_faces(Image.open(c).convert("RGB"))][:6]
    assert len(found) >= 4
    for c in found:
        res = mask_face_detailed(Image.open(c), None, "pixelate")
        # the main face by the cascade; YuNet's head-sized box over the same face may follow ("haar+faces")
        assert res.method.split("+")[0] == "haar" and res.kinds[0] == "haar" and res.masked
        res.image.save(tmp_path / c.name)
    report = verify_faces(tmp_path, progress=False)
    assert report["checked"] == len(found) and len(report["faces"]) <= len(found) // 5


def test_verify_counts_images(tmp_path: Path) -> None:
    for i in range(3):
        draw_crop(np.random.default_rng(i), occluded=False).save(tmp_path / f"{i}.jpg")
    (tmp_path / ".annotate").mkdir()
    draw_crop(np.random.default_rng(9), occluded=False).save(tmp_path / ".annotate" / "x.jpg")
    out = verify_faces(tmp_path, progress=False)
    assert out["checked"] == 3 and isinstance(out["faces"], list)
    with pytest.raises(OpreidError, match="not found"):
        verify_faces(tmp_path / "nope")
