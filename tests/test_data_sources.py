"""User-defined sources: the regex `folder` dataset, the `manifest` dataset and `load_pool` for build-split."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from data_trees import touch_all

from opreid_bench.data.datasets import load_dataset, load_pool
from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import DataError

SUBFOLDER_PATTERN = r"(?:^|/)(?P<pid>-?\d+)/cam(?P<camid>\d+)_"  # a person folder, then camN_


def _folder_tree(root: Path) -> None:
    touch_all(root / "train", ["7/cam1_a.jpg", "7/cam2_b.png", "9/cam1_c.jpg"])
    touch_all(root / "query", ["3/cam1_a.jpg", "3/readme.md", "3/oops.jpg"])
    touch_all(root / "gallery", ["3/cam2_a.jpg", "4/cam2_b.jpg", "-1/cam2_j.jpg"])


def test_folder_dataset_regex_on_relative_paths(tmp_path: Path) -> None:
    _folder_tree(tmp_path)
    data = load_dataset("folder", tmp_path, pattern=SUBFOLDER_PATTERN)
    assert [(r.pid, r.camid) for r in data.train] == [(0, 1), (0, 2), (1, 1)]  # 7 -> 0, 9 -> 1
    assert [(r.pid, r.camid) for r in data.query] == [(3, 1)]
    assert [(r.pid, r.camid) for r in data.gallery] == [(3, 2), (4, 2)]
    assert data.unparsed == ["query/3/oops.jpg"]


def test_folder_dataset_without_train_and_bad_patterns(tmp_path: Path) -> None:
    touch_all(tmp_path / "q", ["0001_c1_x.jpg"])
    touch_all(tmp_path / "g", ["0001_c2_y.jpg", "0002_c1_z.jpg"])
    data = load_dataset("folder", tmp_path, train="", query="q", gallery="g")
    assert data.train == [] and len(data.gallery) == 2
    with pytest.raises(DataError, match="lacks the named group"):
        load_dataset("folder", tmp_path, train="", query="q", gallery="g", pattern=r"(?P<pid>\d+)")
    with pytest.raises(DataError, match="not a valid regular expression"):
        load_dataset("folder", tmp_path, train="", query="q", gallery="g", pattern="(")
    with pytest.raises(DataError, match="train: missing folder"):
        load_dataset("folder", tmp_path, query="q", gallery="g")


def _manifest(tmp_path: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = tmp_path / name
    df = pd.DataFrame(rows)
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def _rows(tmp_path: Path) -> list[dict]:
    touch_all(tmp_path / "imgs", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    return [
        {"path": "imgs/a.jpg", "pid": 5, "camid": 0, "split": "train", "occluded": "true", "scene": "shop1"},
        {"path": "imgs/b.jpg", "pid": 6, "camid": 1, "split": "train", "occluded": "", "scene": "shop2"},
        {"path": "imgs/c.jpg", "pid": 8, "camid": 0, "split": "query", "occluded": "0", "scene": ""},
        {"path": str(tmp_path / "imgs" / "d.jpg"), "pid": 8, "camid": 1, "split": "gallery", "occluded": "yes",
         "scene": "shop1"},
    ]


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.parquet"])
def test_manifest_dataset(tmp_path: Path, name: str) -> None:
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow", exc_type=ImportError)  # pyarrow >= 21 refuses numpy < 2
    path = _manifest(tmp_path, _rows(tmp_path), name)
    data = load_dataset("manifest", path)
    assert [(r.pid, r.occluded, r.scene) for r in data.train] == [(0, True, "shop1"), (1, None, "shop2")]
    assert data.query == [ImageRecord(str(tmp_path / "imgs" / "c.jpg"), 8, 0, False, None)]
    assert data.gallery[0].occluded is True and data.gallery[0].path == str(tmp_path / "imgs" / "d.jpg")
    assert load_dataset("manifest", tmp_path) == data  # a folder holding manifest.csv/.parquet works too


def test_manifest_errors(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    with pytest.raises(DataError, match="missing column"):
        load_dataset("manifest", _manifest(tmp_path, [{k: v for k, v in r.items() if k != "split"} for r in rows]))
    with pytest.raises(DataError, match="row 2: split='val'"):
        load_dataset("manifest", _manifest(tmp_path, [rows[0], {**rows[1], "split": "val"}]))
    with pytest.raises(DataError, match="row 1: pid='x'"):
        load_dataset("manifest", _manifest(tmp_path, [{**rows[0], "pid": "x"}]))
    with pytest.raises(DataError, match=r"1 listed file\(s\) do not exist \(e.g. imgs/zz.jpg"):
        load_dataset("manifest", _manifest(tmp_path, [rows[0], {**rows[1], "path": "imgs/zz.jpg"}]))
    with pytest.raises(DataError, match="manifest not found"):
        load_dataset("manifest", tmp_path / "none.csv")


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    (tmp_path / "m.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    with pytest.raises(DataError, match="reading parquet needs pyarrow"):
        load_dataset("manifest", tmp_path / "m.parquet")


def test_pool_from_manifest_split_optional_missing_listed(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "split"} for r in _rows(tmp_path)]
    rows.append({"path": "imgs/gone.jpg", "pid": 9, "camid": 0, "occluded": "", "scene": ""})
    pool = load_pool(_manifest(tmp_path, rows))
    assert [r.pid for r in pool] == [5, 6, 8, 8]  # original pids, manifest order
    assert pool[0].scene == "shop1"
    assert pool.skipped == [f"imgs/gone.jpg: file not found at {tmp_path / 'imgs' / 'gone.jpg'} (relative paths are "
                            "read against the manifest's folder)"]


def test_pool_from_folder_lists_what_it_skips(tmp_path: Path) -> None:
    _folder_tree(tmp_path)
    pool = load_pool(tmp_path, "folder", pattern=SUBFOLDER_PATTERN)
    assert sorted((r.pid, r.camid) for r in pool) == [(3, 1), (3, 2), (4, 2), (7, 1), (7, 2), (9, 1)]
    assert sorted(pool.skipped) == ["gallery/-1/cam2_j.jpg: junk (negative pid)",
                                    "query/3/oops.jpg: name does not match the pattern",
                                    "query/3/readme.md: not an image file"]
    assert load_pool(tmp_path, "folder", pattern=SUBFOLDER_PATTERN) == pool  # deterministic order


def test_pool_format_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown pool format 'zip'"):
        load_pool(tmp_path, "zip")
    with pytest.raises(DataError, match="--pattern applies to the 'folder' pool format only"):
        load_pool(tmp_path, "market1501", pattern="x")
    with pytest.raises(DataError, match="no such folder"):
        load_pool(tmp_path / "nope", "folder")


def test_a_pool_crop_listed_twice_under_two_spellings_is_one_crop(tmp_path: Path) -> None:
    """Two rows naming one file (crops/a.jpg and sub/../crops/a.jpg) are one crop: as two, the sampler could put the
    image in the query and its copy in the gallery, a match of an image with itself."""
    rows = [{k: v for k, v in r.items() if k != "split"} for r in _rows(tmp_path)]
    again = dict(rows[0], path="imgs/../" + rows[0]["path"])
    (tmp_path / "imgs").mkdir(exist_ok=True)
    pool = load_pool(_manifest(tmp_path, [*rows, again]))
    assert len(pool) == len(rows) and len({os.path.realpath(r.path) for r in pool}) == len(rows)
    clash = dict(again, pid=99)
    with pytest.raises(DataError, match="is also row 1 with another identity"):
        load_pool(_manifest(tmp_path, [*rows, clash]))
