"""Precomputed keypoint files (COCO results JSON, OpenPose JSON per image, CSV) and the mmpose message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opreid_bench.errors import DataError, OpreidError
from opreid_bench.splits.keypoints import COCO17_NAMES
from opreid_bench.splits.pose_backends import make_backend, parse_spec
from opreid_bench.splits.pose_backends.precomputed import BODY25_TO_COCO17, COCO18_TO_COCO17, PrecomputedPose

IMG = np.zeros((128, 64, 3), np.uint8)


def flat17(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    arr = np.concatenate([rng.uniform(0, 60, (17, 2)), rng.uniform(0.2, 1.0, (17, 1))], axis=1)
    return arr.reshape(-1).round(3).tolist()


def test_coco_results_with_file_names_keep_the_best_person(tmp_path):
    f = tmp_path / "results.json"
    f.write_text(json.dumps([
        {"image_id": "pool/a.jpg", "category_id": 1, "keypoints": flat17(0), "score": 0.4},
        {"image_id": "pool/a.jpg", "category_id": 1, "keypoints": flat17(1), "score": 0.9},
        {"image_id": "pool/b.jpg", "category_id": 1, "keypoints": flat17(2), "score": 0.5},
    ]))
    backend = make_backend(f"precomputed:{f}")
    kp = backend.predict(IMG, "/data/pool/a.jpg")  # matched by suffix
    np.testing.assert_allclose(kp.to_flat(), flat17(1), atol=1e-4)
    assert kp.image_size == (64, 128) and kp.detected
    assert backend.predict(IMG, "data/pool/b.jpg") is not None  # the file's folders end the crop's path
    # the file names pool/b.jpg: a b.jpg in another folder (another camera, another person) is not it
    assert backend.predict(IMG, "elsewhere/b.jpg") is None
    assert backend.predict(IMG, "pool/c.jpg") is None  # not in the file: the crop is skipped


def test_a_bare_file_name_matches_a_crop_in_any_folder_and_a_foldered_one_only_its_own(tmp_path):
    f = tmp_path / "keypoints.csv"
    header = "source_path," + ",".join(f"k{i}" for i in range(51))
    f.write_text("\n".join([header, "person_0001.png," + ",".join(map(str, flat17(3))),
                            "cam_a/person_0002.png," + ",".join(map(str, flat17(4)))]) + "\n")
    backend = PrecomputedPose(f)
    np.testing.assert_allclose(backend.predict(IMG, "pool/cam_b/person_0001.png").to_flat(), flat17(3), atol=1e-4)
    np.testing.assert_allclose(backend.predict(IMG, "/data/pool/cam_a/person_0002.png").to_flat(), flat17(4),
                               atol=1e-4)
    for other in ("pool/cam_b/person_0002.png", "cam_b/person_0002.png", "cam_b/person_0002.jpg"):
        assert backend.predict(IMG, other) is None, other


def test_coco_dict_with_numeric_ids_and_visibility_flags(tmp_path):
    kps = [10.0, 20.0, 2] * 8 + [11.0, 21.0, 1] * 8 + [0.0, 0.0, 0]
    f = tmp_path / "gt.json"
    f.write_text(json.dumps({"images": [{"id": 7, "file_name": "x/007.jpg"}],
                             "annotations": [{"image_id": 7, "keypoints": kps}]}))
    kp = PrecomputedPose(f).predict(IMG, "x/007.jpg")
    assert kp.score.tolist() == [1.0] * 8 + [0.0] * 9  # flag 2 = visible, 1 = labelled but hidden, 0 = unlabelled


def test_openpose_folder_body25_and_coco18(tmp_path):
    d = tmp_path / "openpose"
    d.mkdir()
    body25 = np.arange(75, dtype=float).reshape(25, 3)
    body25[:, 2] = np.linspace(0.1, 0.9, 25)
    weak = body25.copy()
    weak[:, 2] = 0.05
    (d / "p1_keypoints.json").write_text(json.dumps(
        {"people": [{"pose_keypoints_2d": weak.reshape(-1).tolist()}, {"pose_keypoints_2d": body25.reshape(-1).tolist()}]}
    ))
    coco18 = np.arange(54, dtype=float).reshape(18, 3)
    coco18[:, 2] = 0.5
    (d / "p2_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": coco18.reshape(-1).tolist()}]}))
    (d / "p3_keypoints.json").write_text(json.dumps({"people": []}))
    backend = make_backend(f"precomputed:{d}")
    kp1 = backend.predict(IMG, "crops/p1.jpg")
    np.testing.assert_allclose(kp1.xy, body25[BODY25_TO_COCO17, :2])
    np.testing.assert_allclose(kp1.score, body25[BODY25_TO_COCO17, 2], atol=1e-6)  # the stronger person
    # spot-check the mapping by name: COCO left_shoulder = BODY_25 LShoulder (5), right_ankle = RAnkle (11)
    assert kp1.xy[COCO17_NAMES.index("left_shoulder"), 0] == body25[5, 0]
    assert kp1.xy[COCO17_NAMES.index("right_ankle"), 0] == body25[11, 0]
    kp2 = backend.predict(IMG, "crops/p2.png")
    np.testing.assert_allclose(kp2.xy, coco18[COCO18_TO_COCO17, :2])
    assert kp2.xy[COCO17_NAMES.index("left_hip"), 0] == coco18[11, 0]
    kp3 = backend.predict(IMG, "crops/p3.jpg")
    assert kp3 is not None and not kp3.detected  # OpenPose found nobody: every keypoint missing


def test_csv_named_and_positional_columns(tmp_path):
    named = tmp_path / "named.csv"
    header = ["source_path"] + [f"{n}_{c}" for n in COCO17_NAMES for c in ("x", "y", "score")]
    named.write_text(",".join(header[::-1]) + "\n" + ",".join(map(str, (["a/1.jpg"] + flat17(3))[::-1])) + "\n")
    kp = make_backend(f"precomputed:{named}").predict(IMG, "a/1.jpg")
    np.testing.assert_allclose(kp.to_flat(), flat17(3), atol=1e-4)  # column order does not matter when named
    positional = tmp_path / "pos.csv"
    positional.write_text("source_path," + ",".join(f"c{i}" for i in range(51)) + "\n"
                          + "a/1.jpg," + ",".join(map(str, flat17(4))) + "\n")
    kp = make_backend(f"precomputed:{positional}").predict(IMG, "a/1.jpg")
    np.testing.assert_allclose(kp.to_flat(), flat17(4), atol=1e-4)
    # one name misspelled in a reordered named file: refused, never read by position (the points would land on the
    # wrong joints)
    typo = tmp_path / "typo.csv"
    wrong = [h.replace("left_ankle_x", "l_ankle_x") for h in header]
    typo.write_text(",".join(wrong[::-1]) + "\n" + ",".join(map(str, (["a/1.jpg"] + flat17(3))[::-1])) + "\n")
    with pytest.raises(DataError, match=r"typo.csv: keypoint column\(s\) left_ankle_x missing and l_ankle_x not a "
                                        r"keypoint name"):
        make_backend(f"precomputed:{typo}")


def test_bad_precomputed_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        make_backend(f"precomputed:{tmp_path / 'none.json'}")
    short = tmp_path / "short.csv"
    short.write_text("source_path,a,b\nx.jpg,1,2\n")
    with pytest.raises(DataError, match="short.csv.*51"):
        make_backend(f"precomputed:{short}")
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"image_id\": 3, \"keypoints\": [1, 2, 3]}]")
    with pytest.raises(DataError, match="bad.json: entry 0"):
        make_backend(f"precomputed:{bad}")
    with pytest.raises(OpreidError, match="needs a file"):
        make_backend("precomputed")


def test_mmpose_not_installed_gives_a_clear_message(tmp_path):
    try:
        import mmpose  # noqa: F401

        pytest.skip("mmpose is installed here")
    except ImportError:
        pass
    for spec in ("mmpose", f"mmpose:{tmp_path / 'cfg.py'},{tmp_path / 'ckpt.pth'}"):
        with pytest.raises(OpreidError, match="needs mmpose, which is not installed"):
            make_backend(spec)


def test_unknown_backend_and_spec_parsing():
    assert parse_spec("precomputed:/a/b:c.json") == ("precomputed", "/a/b:c.json")
    assert parse_spec("MediaPipe") == ("mediapipe", None)
    with pytest.raises(OpreidError, match="unknown pose backend 'openpose'"):
        make_backend("openpose")
    with pytest.raises(OpreidError, match="bad option"):
        make_backend("mediapipe:scale=2")
