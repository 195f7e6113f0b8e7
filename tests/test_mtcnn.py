"""MTCNN, the small-face detector of face masking: its suppression, where its weights come from, and what it adds on a
real crowded crop (a bystander's face cut by the border that no other source finds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opreid_bench.errors import OpreidError
from opreid_bench.splits import mtcnn


def test_nms_union_keeps_the_best_of_overlapping_boxes_and_separate_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    scores = np.array([0.8, 0.9, 0.7])
    assert mtcnn.nms(boxes, scores, 0.5).tolist() == [1, 2]  # IoU 81/119 > 0.5: the weaker one goes
    assert mtcnn.nms(boxes, scores, 0.7).tolist() == [1, 0, 2]  # 0.68 <= 0.7: both kept, best first


def test_nms_min_removes_a_small_box_inside_a_large_one_that_union_keeps():
    boxes = np.array([[0, 0, 19, 19], [5, 5, 9, 9]], float)  # inclusive ends: 400 and 25 px
    scores = np.array([0.9, 0.95])
    assert mtcnn.nms(boxes, scores, 0.7).tolist() == [1, 0]  # IoU 25/400
    assert mtcnn.nms(boxes, scores, 0.7, overlap="min").tolist() == [1]  # the large box lies over all of the small


def test_weights_folder_named_by_the_environment_must_hold_all_three_files(tmp_path: Path, monkeypatch):
    (tmp_path / "pnet.pt").write_bytes(b"")
    monkeypatch.setenv(mtcnn.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(OpreidError, match="rnet.pt: MTCNN weight file missing"):
        mtcnn.weights_dir()


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path: Path):
    for name in mtcnn.WEIGHT_FILES:
        (tmp_path / name).write_bytes(b"not a checkpoint")
    with pytest.raises(OpreidError, match=r"pnet.pt: not a readable MTCNN state dict \(not a PyTorch file\)"):
        mtcnn.load_networks(tmp_path)


def test_a_foreign_state_dict_is_named(tmp_path: Path):
    import torch

    for name in mtcnn.WEIGHT_FILES:
        torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / name)
    with pytest.raises(OpreidError, match="pnet.pt: not an MTCNN state dict"):
        mtcnn.load_networks(tmp_path)


def test_face_sources_name_mtcnn_and_change_with_its_weights(mtcnn_weights: Path, tmp_path: Path, monkeypatch):
    from opreid_bench.splits.all_faces import face_sources

    copy = tmp_path / "w"
    shutil.copytree(mtcnn_weights, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv(mtcnn.WEIGHTS_ENV, str(copy))
    first = face_sources()
    assert first.startswith("blazeface+person+mtcnn:")
    with (copy / "onet.pt").open("ab") as fh:
        fh.write(b"\0")
    assert face_sources() != first  # a different network gives different masks: a different fingerprint
    monkeypatch.setenv(mtcnn.WEIGHTS_ENV, "off")
    assert face_sources().startswith("blazeface+person") and "mtcnn" not in face_sources()


def test_data_card_warns_when_masking_ran_without_mtcnn():
    from opreid_bench.splits.datacard import _face_source_lines

    assert any("Warning: MTCNN" in line for line in _face_source_lines("blazeface+person"))
    assert not any("Warning: MTCNN" in line for line in _face_source_lines("blazeface+person+mtcnn:0123"))


@pytest.mark.shared_data
def test_no_face_on_random_pixels_above_the_size_floor(mtcnn_weights: Path):
    # MTCNN fires on noise at small sizes (a 4 x 6 px box on this image, searched from a quarter of the main head as
    # BlazeFace's gate allows); the floor of 0.4 main heads keeps it out
    from split_helpers import STANDING

    from opreid_bench.splits.all_faces import MIN_HEAD_SCALE, find_faces, main_head_height
    from opreid_bench.splits.keypoints import Keypoints

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8))
    kp = Keypoints(STANDING, np.full(17, 0.95), image_size=(64, 128))
    low = MIN_HEAD_SCALE * main_head_height(kp, image.size)
    assert [b for b, _ in mtcnn.detect_faces_mtcnn(image, mtcnn_weights, min_face=low)] == [(0, 48, 5, 54)]
    assert [k for _, k in find_faces(image, kp)] == []


@pytest.mark.shared_data
def test_detector_finds_the_half_face_at_the_border(mtcnn_weights: Path, cuhk03_root: Path):
    # val/0063_02: a man in a white shirt walks beside the main person, cut by the right border; half his face, with
    # glasses, is about 10 px wide at (87, 33)-(97, 72) (hand box in benchmarks/labels/faces_heads_heldout.csv).
    # The same network run by facenet-pytorch 2.6.0 gives the same box (checked to 1e-4 px on 40 crops).
    with Image.open(cuhk03_root / "val" / "0063_02.jpg") as im:
        found = mtcnn.detect_faces_mtcnn(im, mtcnn_weights)
    assert len(found) == 1
    (box, score), = found
    assert box == (82, 42, 97, 69)
    assert score == pytest.approx(0.898, abs=0.01)


@pytest.mark.shared_data
def test_masking_covers_that_face_only_with_mtcnn(mtcnn_weights: Path, cuhk03_root: Path, monkeypatch):
    from split_helpers import real_crop_with_pose

    from opreid_bench.splits.all_faces import covered_share
    from opreid_bench.splits.mask import mask_face_detailed

    rgb, kp = real_crop_with_pose(cuhk03_root / "val" / "0063_02.jpg")
    face = (87, 42, 97, 69)  # the hand-boxed head below the hair: his face
    res = mask_face_detailed(rgb, kp, "blur")
    assert "mtcnn" in res.kinds
    assert covered_share(face, res.boxes) >= 0.8
    monkeypatch.setenv(mtcnn.WEIGHTS_ENV, "off")
    monkeypatch.setenv("OPREID_YUNET", "off")
    without = mask_face_detailed(rgb, kp, "blur")
    assert covered_share(face, without.boxes) < 0.5  # BlazeFace, the person detector and verification miss it
