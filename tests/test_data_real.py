"""Loaders on the real images in ../shared/data (skipped when absent unless OPREID_REQUIRE_SHARED_DATA=1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opreid_bench.data.datasets import get_dataset, load_dataset, load_pool

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("query_folder", ["occluded", "partial"])
def test_partial_reid_real(partial_reid_root: Path, query_folder: str) -> None:
    ds = get_dataset("partial_reid", partial_reid_root, query_folder=query_folder)
    report = ds.verify()
    assert report.matches_known_counts and report.unparsed == []
    data = ds.load()
    for split in (data.query, data.gallery):
        assert len(split) == 300 and len({r.pid for r in split}) == 60
    assert all(f"{query_folder}_body_images" in r.path for r in data.query)
    assert {r.camid for r in data.query} == {0} and {r.camid for r in data.gallery} == {1}
    assert not any(".DS_Store" in r.path for r in (*data.query, *data.gallery))
    assert {r.pid for r in data.query} == {r.pid for r in data.gallery}


def test_partial_reid_whole_folder_counts(partial_reid_root: Path) -> None:
    # All three folders of the release: 300 images / 60 ids each (the .DS_Store files are passed over).
    occluded = load_dataset("partial_reid", partial_reid_root)
    partial = load_dataset("partial_reid", partial_reid_root, query_folder="partial")
    assert len(occluded.query) == len(partial.query) == len(occluded.gallery) == 300
    assert get_dataset("partial_reid", partial_reid_root).verify().ignored == 2


def test_cuhk03_real(cuhk03_root: Path) -> None:
    report = get_dataset("cuhk03_labeled", cuhk03_root).verify()
    assert report.splits == {"train": {"images": 7_239, "ids": 743, "cameras": 2},
                             "query": {"images": 451, "ids": 100, "cameras": 1},
                             "gallery": {"images": 487, "ids": 100, "cameras": 1}}
    assert report.matches_known_counts and report.unparsed == []
    data = load_dataset("cuhk03_labeled", cuhk03_root.parent)  # the parent folder works too
    assert data.num_train_pids == 743 and len(data.query) + len(data.gallery) == 938
    assert len(load_pool(cuhk03_root, "cuhk03_labeled")) == 7_239 + 938


def test_cli_verify_real(partial_reid_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from opreid_bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["datasets", "verify", "partial_reid", "--root", str(partial_reid_root), "--json"])
    out, _ = capsys.readouterr()
    assert exc.value.code == 0
    assert json.loads(out)["matches_known_counts"] is True
