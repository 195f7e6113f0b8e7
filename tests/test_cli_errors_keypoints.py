"""Issue 10, item 7: malformed precomputed keypoint files (COCO JSON, OpenPose folder, CSV) are one line naming
the file and the fault, exit 2 -- never a traceback. Cases found by ``benchmarks/fuzz_cli.py`` are kept here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opreid_bench.cli import main
from opreid_bench.errors import DataError
from opreid_bench.splits.pose_backends.precomputed import read_precomputed

KP = [10.0, 20.0, 0.9] * 17


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("data", "message"), [
    ({"images": [{"id": 1}], "annotations": [{"image_id": 1, "keypoints": KP}]},
     r"images\[0\] must have an id and a file_name"),
    ({"images": [{"id": [1], "file_name": "a.jpg"}], "results": []}, r"images\[0\]\.id must be a number or text"),
    ({"images": "a.jpg"}, "'images' must be a list"),
    ([{"image_id": "a.jpg", "keypoints": KP, "score": "high"}], "entry 0 has score 'high'; expected a number"),
    ([{"image_id": "a.jpg", "keypoints": KP, "score": None}], "entry 0 has score None"),
    ([{"image_id": "a.jpg", "keypoints": "abc"}], "entry 0: keypoints must be a list of numbers"),
    ([{"image_id": "a.jpg", "keypoints": [[1, 2], [3]]}], "entry 0: keypoints must be"),
    ([{"image_id": "a.jpg", "keypoints": [float("nan")] * 51}], "finite numbers"),
    ([{"image_id": ["a.jpg"], "keypoints": KP}], "entry 0 has image_id"),
    ({"results": 5}, "the keypoint entries must be a list"),
])
def test_malformed_coco_json(tmp_path: Path, data: object, message: str) -> None:
    f = tmp_path / "kp.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_precomputed(f)


@pytest.mark.parametrize(("data", "message"), [
    ({"people": [{"pose_keypoints_2d": "abc"}]}, "pose_keypoints_2d must be a list of numbers, got 'abc'"),
    ({"people": [{"pose_keypoints_2d": [1, "x"] * 27}]}, "pose_keypoints_2d must be a list of numbers"),
    ({"people": [{"pose_keypoints_2d": {"a": 1}}]}, "pose_keypoints_2d must be a list of numbers"),
    ({"people": "nobody"}, "a 'people' list of objects"),
    ({"people": [5]}, "a 'people' list of objects"),
    ([1, 2], "a 'people' list of objects"),
])
def test_malformed_openpose_json(tmp_path: Path, data: object, message: str) -> None:
    folder = tmp_path / "op"
    folder.mkdir()
    (folder / "a_keypoints.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=rf"a_keypoints\.json: .*{message}"):
        read_precomputed(folder)


def _csv(tmp_path: Path, cell: str) -> Path:
    names = ",".join(f"k{i}" for i in range(51))
    values = ",".join(["1.0"] * 50 + [cell])
    f = tmp_path / "kp.csv"
    f.write_text(f"source_path,{names}\na.jpg,{values}\n", encoding="utf-8")
    return f


@pytest.mark.parametrize("cell", ["abc", "high", "inf", "1e999"])
def test_malformed_csv_cells(tmp_path: Path, cell: str) -> None:
    with pytest.raises(DataError, match=r"kp\.csv: row 2, column k50: .* is not a finite number"):
        read_precomputed(_csv(tmp_path, cell))


def test_csv_empty_cells_still_mean_missing(tmp_path: Path) -> None:
    table = read_precomputed(_csv(tmp_path, ""))
    assert table["a.jpg"][16, 2] == 0.0


@pytest.mark.parametrize("kind", ["coco", "openpose"])
def test_json_that_is_not_utf8(tmp_path: Path, kind: str) -> None:
    """Found by the fuzzer: a stray byte made ``read_text`` raise UnicodeDecodeError (a traceback)."""
    if kind == "coco":
        target = path = tmp_path / "kp.json"
    else:
        path = tmp_path / "op"
        path.mkdir()
        target = path / "a_keypoints.json"
    target.write_bytes(b'\xbf[{"image_id": "a.jpg"}]')
    with pytest.raises(DataError, match="not a readable"):
        read_precomputed(path)


def test_annotate_with_a_bad_keypoint_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    img = tmp_path / "100_0.png"
    Image.new("RGB", (32, 64)).save(img)
    pool = tmp_path / "pool.csv"
    pool.write_text(f"path,pid,camid\n{img},100,0\n", encoding="utf-8")
    kp = tmp_path / "kp.json"
    kp.write_text(json.dumps([{"image_id": str(img), "keypoints": KP, "score": "high"}]), encoding="utf-8")
    code, err = _cli(["annotate", "--pool", str(pool), "--out", str(tmp_path / "ann"), "--pose", f"precomputed:{kp}"],
                     capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {kp}: entry 0 has score 'high'; expected a number"]


@pytest.mark.parametrize("cell", ["ü", "{}", "-1", "2.5", "1e300"])
def test_sample_with_a_bad_keypoint_count_in_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    cell: str) -> None:
    """Found by the fuzzer: a labels.csv count that is not an integer crashed `sample` in a pandas cast."""
    import pandas as pd

    from opreid_bench.data.records import ImageRecord
    from opreid_bench.splits.pipeline import labels_for_pool

    labels = pd.DataFrame({"source_path": ["a.jpg", "b.jpg"], "occluded": [True, False],
                           "missing_keypoints": ["", "left_knee;right_knee"], "longest_missing_run": ["1", cell]})
    records = [ImageRecord("a.jpg", 1, 0), ImageRecord("b.jpg", 2, 1)]
    with pytest.raises(DataError, match=rf"labels\.csv: row 3, column longest_missing_run: '{cell}' is not a keypoint "
                                        r"count \(an integer 0-17\)"):
        labels_for_pool(records, labels, where="labels.csv")
    labels["longest_missing_run"] = [1, None]  # an empty cell stays allowed
    assert len(labels_for_pool(records, labels, where="labels.csv")) == 2
