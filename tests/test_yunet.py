"""YuNet, the second small-face detector of face masking: how its raw output is read, when it runs, how it is named
in fingerprints and data cards, and what it adds on a real crowded crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from opreid_bench.errors import OpreidError
from opreid_bench.splits import yunet


def _raw(*rows: tuple[int, ...]) -> np.ndarray:
    """Rows as libfacedetection returns them: score x 100, x, y, w, h, five landmarks, one unused column."""
    out = np.zeros((len(rows), 16), np.int16)
    for i, row in enumerate(rows):
        out[i, :5] = row
    return out


def test_raw_rows_become_boxes_with_scores_best_first(monkeypatch):
    monkeypatch.setattr(yunet, "_detector", lambda: lambda image: _raw((61, 10, 20, 30, 40), (93, -4, 5, 12, 14)))
    rows = yunet.detect(np.zeros((64, 64, 3), np.uint8))
    assert rows.tolist() == [[-4, 5, 8, 19, 0.93], [10, 20, 40, 60, 0.61]]  # a negative x at the border is kept


def test_boxes_come_back_in_the_crops_pixels_clipped_and_floored_by_score(monkeypatch):
    seen = []

    def fake(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return _raw((80, -6, 30, 30, 36), (40, 90, 90, 30, 30), (70, 150, 300, 60, 60))

    monkeypatch.setattr(yunet, "_detector", lambda: fake)
    found = yunet.detect_faces_yunet(Image.new("RGB", (64, 128)), upscale=3.0, min_confidence=0.5)
    assert seen == [(384, 192, 3)]  # upscaled 3x, handed over as (H, W, BGR)
    assert found == [((0, 10, 8, 22), 0.8), ((50, 100, 64, 120), 0.7)]  # clipped to the crop; the 0.4 one dropped


def test_a_large_image_is_upscaled_less_and_never_shrunk(monkeypatch):
    seen = []
    monkeypatch.setattr(yunet, "_detector", lambda: lambda image: seen.append(image.shape) or _raw())
    yunet.detect_faces_yunet(Image.new("RGB", (400, 800)))
    yunet.detect_faces_yunet(Image.new("RGB", (600, 1200)))
    assert seen == [(960, 480, 3), (1200, 600, 3)]


def test_a_wrong_array_is_refused():
    with pytest.raises(OpreidError, match="BGR uint8"):
        yunet.detect(np.zeros((8, 8), np.uint8))


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(yunet.OFF_ENV, "off")
    assert yunet.version() is None


def test_face_sources_name_yunet_and_the_data_card_warns_without_it(yunet_installed: str, monkeypatch):
    from opreid_bench.splits.all_faces import face_sources
    from opreid_bench.splits.datacard import _face_source_lines

    assert face_sources().endswith(f"+yunet:{yunet_installed}")
    assert not any("Warning: YuNet" in line for line in _face_source_lines(face_sources()))
    monkeypatch.setenv(yunet.OFF_ENV, "off")
    assert "yunet" not in face_sources()  # another detector set gives other masks: another fingerprint
    assert any("Warning: YuNet" in line for line in _face_source_lines(face_sources()))


@pytest.mark.shared_data
def test_the_installed_detector_finds_a_real_face_the_same_way_twice(yunet_installed: str, partial_reid_root):
    # Partial-REID whole_body 001_001: one person facing the camera, the head hand-measured at about (23-48, 6-36)
    with Image.open(partial_reid_root / "whole_body_images" / "001_001.jpg") as im:
        rgb = im.convert("RGB")
    found = yunet.detect_faces_yunet(rgb)
    assert len(found) == 1
    (box, score), = found
    assert 20 <= (box[0] + box[2]) / 2 <= 48 and 6 <= (box[1] + box[3]) / 2 <= 36 and score >= 0.7
    assert yunet.detect_faces_yunet(rgb) == found
    assert yunet.detect_faces_yunet(Image.new("RGB", (64, 128), (128, 128, 128))) == []


def test_the_warnings_name_each_missing_small_face_detector(monkeypatch):
    from opreid_bench.splits import all_faces, pipeline
    from opreid_bench.splits.datacard import _face_source_lines

    assert all_faces.missing_face_detectors("blazeface+person+mtcnn:0+yunet:1") == []
    assert all_faces.missing_face_detectors("blazeface+person+mtcnn:0") == [all_faces.YUNET_MISSING]
    lines = " ".join(_face_source_lines("blazeface+person+mtcnn:0"))
    assert "Warning: YuNet" in lines and "Warning: MTCNN" not in lines
    monkeypatch.setattr(all_faces, "face_sources", lambda: "blazeface+person")
    warning = pipeline.face_masking_warning("blur")
    assert warning is not None and "MTCNN" in warning and "YuNet" in warning
    assert pipeline.face_masking_warning("blur+main") is None  # only the main face: no detector asked
    monkeypatch.setattr(all_faces, "face_sources", lambda: "blazeface+person+mtcnn:0+yunet:1")
    assert pipeline.face_masking_warning("blur") is None


def test_a_head_already_masked_gets_no_second_mask_from_yunet(monkeypatch):
    # YuNet's box is grown to the head; whether the face is already hidden is asked of its face box, so the main
    # person's head, masked from its keypoints, is not masked twice
    from split_helpers import STANDING

    from opreid_bench.splits import all_faces
    from opreid_bench.splits.keypoints import Keypoints

    monkeypatch.setenv("OPREID_MTCNN_WEIGHTS", "off")
    kp = Keypoints(STANDING, np.full(17, 0.95), image_size=(64, 128))
    image = Image.new("RGB", (64, 128), (128, 128, 128))
    face = (26, 8, 38, 20)
    monkeypatch.setattr(all_faces, "detect_faces_yunet", lambda rgb, min_confidence: [(face, 0.95)])
    monkeypatch.setattr(all_faces, "yunet_version", lambda: "test")
    assert all_faces.find_faces(image, kp, masked=[(24, 6, 40, 22)]) == []
    assert all_faces.find_faces(image, kp, masked=[]) == [((23, 5, 41, 23), "yunet")]


def test_a_yunet_face_on_the_main_body_counts_only_when_confident_and_is_grown_to_the_head(monkeypatch):
    # a face in front of the main person's body: face detectors fire on clothing there, so a YuNet box passes the
    # body rule only at YUNET_CONFIDENT; the face box is scaled by YUNET_GROW about its centre (the head around it)
    from split_helpers import STANDING

    from opreid_bench.splits import all_faces
    from opreid_bench.splits.keypoints import Keypoints

    monkeypatch.setenv("OPREID_MTCNN_WEIGHTS", "off")
    kp = Keypoints(STANDING, np.full(17, 0.95), image_size=(64, 128))
    image = Image.new("RGB", (64, 128), (128, 128, 128))  # BlazeFace finds nothing here
    on_body = (26, 70, 38, 82)
    left, right, top = all_faces.main_body(kp, image.size)
    assert left <= 32 <= right and top <= 76  # the box's centre lies on the main body below the shoulders
    for score, expected in ((0.8, []), (0.95, [((23, 67, 41, 85), "yunet")])):
        monkeypatch.setattr(all_faces, "detect_faces_yunet", lambda rgb, min_confidence, s=score: [(on_body, s)])
        monkeypatch.setattr(all_faces, "yunet_version", lambda: "test")
        assert all_faces.find_faces(image, kp) == expected, score


@pytest.mark.shared_data
def test_masking_covers_a_bystanders_face_in_front_only_with_yunet(yunet_installed: str, shared_data, monkeypatch):
    # GRID 0879_5: a woman walks in front of the main person, her face frontal, about 40 px high, over the main
    # person's body, where the head gate refuses other detectors' boxes (hand box in
    # benchmarks/labels/faces_heads_heldout4.csv); YuNet scores her face 0.90, at the threshold, and its grown box
    # covers her head
    from split_helpers import real_crop_with_pose

    from opreid_bench.splits.all_faces import covered_share
    from opreid_bench.splits.mask import mask_face_detailed

    rgb, kp = real_crop_with_pose(shared_data / "grid" / "0879_5_28079_141_109_119_290.jpeg")
    head = (62, 168, 118, 224)
    res = mask_face_detailed(rgb, kp, "blur")
    assert "yunet" in res.kinds
    assert covered_share(head, res.boxes) >= 0.9
    monkeypatch.setenv("OPREID_YUNET", "off")
    without = mask_face_detailed(rgb, kp, "blur")
    assert covered_share(head, without.boxes) < 0.5
