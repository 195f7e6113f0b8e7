"""Dataset loaders on generated trees with the real layouts, naming rules and (for Market-1501) the real counts."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import pytest
from data_trees import (
    DUKE_NAME,
    MARKET_NAME,
    touch_all,
    write_cross_set,
    write_dukemtmc,
    write_market1501,
    write_market_style,
    write_occluded_duke,
)

from opreid_bench.data.datasets import DATASETS, get_dataset, load_dataset
from opreid_bench.errors import DataError

JUNK = 400  # pid -1 files written into the generated Market gallery


@pytest.fixture(scope="module")
def market_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size Market-1501 tree (12,936 / 3,368 / 15,913 images), written once for this module."""
    root = tmp_path_factory.mktemp("market")
    write_market1501(root, junk_images=JUNK)
    return root


def test_registry_has_every_dataset() -> None:
    assert set(DATASETS.names()) == {"market1501", "dukemtmc", "occluded_duke", "occluded_reid", "partial_reid",
                                     "partial_ilids", "opreid", "cuhk03_labeled", "folder", "manifest", "pool"}


def test_market_full_counts_match(market_root: Path) -> None:
    report = get_dataset("market1501", market_root).verify()
    assert report.splits == {
        "train": {"images": 12_936, "ids": 751, "cameras": 6},
        "query": {"images": 3_368, "ids": 750, "cameras": 6},
        "gallery": {"images": 15_913, "ids": 751, "cameras": 6},
    }
    assert report.matches_known_counts and report.mismatches() == []
    assert report.junk == JUNK and report.unparsed == [] and report.notes == []


def test_market_junk_dropped_distractors_kept_train_relabelled(market_root: Path) -> None:
    data = load_dataset("market1501", market_root)
    assert sorted({r.pid for r in data.train}) == list(range(751))
    assert all(r.pid >= 0 for r in (*data.query, *data.gallery))
    assert Counter(r.pid for r in data.gallery)[0] == 2_793  # pid 0000 distractors stay in the gallery
    assert min(r.pid for r in data.query) == 2000  # query/gallery keep the file names' pids
    assert {r.camid for r in data.train} == set(range(6))  # c1..c6 -> camid 0..5
    first = data.gallery[0]
    assert Path(first.path).is_file() and first.occluded is None


def test_market_pool_keeps_original_pids_without_distractors(market_root: Path) -> None:
    from opreid_bench.data.datasets import load_pool

    pool = load_pool(market_root, "market1501")
    assert len(pool) == 12_936 + 3_368 + 15_913 - 2_793
    pids = {r.pid for r in pool}
    assert 0 not in pids and -1 not in pids
    assert min(pids) == 1 and 751 in pids  # train pids not relabelled
    assert pool.skipped == []


def test_loading_is_deterministic(tmp_path: Path) -> None:
    write_market_style(tmp_path / "Market-1501-v15.09.15", train=(40, 7), query=(12, 5), gallery=(30, 8), cams=6,
                       fmt=MARKET_NAME, distractor_images=4, junk_images=3)
    a = load_dataset("market1501", tmp_path)
    b = load_dataset("market1501", tmp_path)
    assert a == b
    assert [r.path for r in a.train] == sorted(r.path for r in a.train)


def test_root_may_be_the_dataset_folder_itself(tmp_path: Path) -> None:
    ds_dir = write_market_style(tmp_path / "copy", train=(10, 2), query=(4, 2), gallery=(8, 3), cams=6,
                                fmt=MARKET_NAME)
    assert get_dataset("market1501", ds_dir).dataset_dir() == ds_dir


def test_unparsed_names_listed_and_non_images_passed_over(tmp_path: Path) -> None:
    ds_dir = write_market_style(tmp_path / "Market-1501-v15.09.15", train=(10, 2), query=(4, 2), gallery=(8, 3),
                                cams=6, fmt=MARKET_NAME)
    touch_all(ds_dir / "query", ["badname.jpg", "0001_x1s1_000001_00.jpg", ".DS_Store", "Thumbs.db", "notes.txt"])
    touch_all(ds_dir / "bounding_box_test", ["0001_c0s1_000001_00.jpg"])  # camera 0 does not exist
    report = get_dataset("market1501", tmp_path).verify()
    assert sorted(report.unparsed) == ["bounding_box_test/0001_c0s1_000001_00.jpg", "query/0001_x1s1_000001_00.jpg",
                                       "query/badname.jpg"]
    assert report.ignored == 3
    assert report.splits["query"]["images"] == 4
    data = load_dataset("market1501", tmp_path)
    assert len(data.unparsed) == 3
    assert not any("badname" in r.path for r in data.query)


def test_camera_outside_range_is_kept_and_noted(tmp_path: Path) -> None:
    ds_dir = write_market_style(tmp_path / "m", train=(10, 2), query=(4, 2), gallery=(8, 3), cams=6, fmt=MARKET_NAME)
    touch_all(ds_dir / "query", ["0001_c9s1_000001_00.jpg"])
    report = get_dataset("market1501", ds_dir).verify()
    assert report.splits["query"]["images"] == 5
    assert any("outside c1-c6" in n for n in report.notes)


def test_missing_folder_names_expected_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("market1501", tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / "Market-1501-v15.09.15" / "bounding_box_train") in msg
    assert "bounding_box_train,query,bounding_box_test" in msg and "\n" not in msg
    (tmp_path / "Market-1501-v15.09.15" / "bounding_box_train").mkdir(parents=True)
    (tmp_path / "Market-1501-v15.09.15" / "bounding_box_test").mkdir()
    with pytest.raises(DataError, match=r"Market-1501-v15.09.15/query: missing folder"):
        load_dataset("market1501", tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("dukemtmc", tmp_path / "nope")


def test_unknown_dataset_and_option() -> None:
    with pytest.raises(Exception, match="known: cuhk03_labeled"):
        load_dataset("market", ".")
    with pytest.raises(DataError, match="unknown option"):
        load_dataset("market1501", ".", query_folder="x")


@pytest.mark.parametrize(("writer", "name", "known"), [
    (write_dukemtmc, "dukemtmc", {"train": (16_522, 702), "query": (2_228, 702), "gallery": (17_661, 1_110)}),
    (write_occluded_duke, "occluded_duke", {"train": (15_618, 702), "query": (2_210, 519), "gallery": (17_661, 1_110)}),
])
def test_duke_layouts_scaled(tmp_path: Path, writer, name: str, known: dict[str, tuple[int, int]]) -> None:
    scale = 8
    writer(tmp_path, scale=scale)
    report = get_dataset(name, tmp_path).verify()
    for split, (images, ids) in known.items():
        assert (report.splits[split]["images"], report.splits[split]["ids"]) == (images // scale, ids // scale)
    assert report.known_counts == known
    assert not report.matches_known_counts
    lines = report.mismatches()
    assert len(lines) == 3 and f"expected {known['train'][0]:,} images / 702 ids" in lines[0]
    data = load_dataset(name, tmp_path)
    assert max(r.camid for r in data.train) <= 7
    assert sorted({r.pid for r in data.train}) == list(range(702 // scale))


def test_duke_names_parse(tmp_path: Path) -> None:
    write_market_style(tmp_path / "DukeMTMC-reID", train=(8, 2), query=(2, 2), gallery=(6, 3), cams=8, fmt=DUKE_NAME)
    touch_all(tmp_path / "DukeMTMC-reID" / "query", ["0005_c2_f0046985.jpg"])
    data = load_dataset("dukemtmc", tmp_path)
    rec = [r for r in data.query if r.path.endswith("0005_c2_f0046985.jpg")][0]
    assert (rec.pid, rec.camid) == (5, 1)
    # images one folder too deep (a nested copy) are not read, and never silently
    touch_all(tmp_path / "DukeMTMC-reID" / "bounding_box_test", ["copy/0007_c3_f0000001.jpg"])
    report = get_dataset("dukemtmc", tmp_path).verify()
    assert report.unparsed == ["bounding_box_test/copy/0007_c3_f0000001.jpg: in a subfolder, not read (the images "
                               "of bounding_box_test/ lie directly in it)"]


@pytest.mark.parametrize("per_person_folders", [True, False])
def test_occluded_reid_cross_set(tmp_path: Path, per_person_folders: bool) -> None:
    ext = "tif" if per_person_folders else "jpg"
    write_cross_set(tmp_path / "Occluded_REID", {"occluded_body_images": 1_000, "whole_body_images": 1_000}, ids=200,
                    name="{pid:03d}_{i:02d}." + ext, per_person_folders=per_person_folders)
    report = get_dataset("occluded_reid", tmp_path).verify()
    assert report.matches_known_counts, report.mismatches()
    assert set(report.splits) == {"query", "gallery"}
    data = load_dataset("occluded_reid", tmp_path)
    assert data.train == []
    assert {r.camid for r in data.query} == {0} and {r.camid for r in data.gallery} == {1}
    assert all(r.occluded for r in data.query) and not any(r.occluded for r in data.gallery)
    # The image index (01..05) is never read as a camera: every query keeps all 5 true matches.
    gallery_per_pid = Counter(r.pid for r in data.gallery)
    assert all(gallery_per_pid[r.pid] == 5 for r in data.query)
    if per_person_folders:  # a Mac's resource forks are no images; a file of another person's name is listed
        touch_all(tmp_path / "Occluded_REID" / "occluded_body_images", ["001/._001_01.tif", "001/002_09.tif"])
        report = get_dataset("occluded_reid", tmp_path).verify()
        assert report.matches_known_counts, report.mismatches()
        assert report.unparsed == ["occluded_body_images/001/002_09.tif"] and report.ignored >= 1


def test_partial_reid_folder_choice_and_alias(tmp_path: Path) -> None:
    folders = {"occluded_body_images": 300, "partial_body_images": 300, "whole_body_images": 300}
    write_cross_set(tmp_path / "Partial-REID_Dataset", folders, ids=60)
    for choice in ("occluded", "partial"):
        data = load_dataset("partial_reid", tmp_path, query_folder=choice)
        assert len(data.query) == 300 and len({r.pid for r in data.query}) == 60
        assert all(f"{choice}_body_images" in r.path for r in data.query)
        # `datasets verify` says which probes the default reads, and which the published numbers use
        notes = get_dataset("partial_reid", tmp_path, query_folder=choice).verify().notes
        assert any("--option query_folder=partial" in n for n in notes) == (choice == "occluded"), notes
    with pytest.raises(DataError, match="query_folder='side'"):
        load_dataset("partial_reid", tmp_path, query_folder="side")


def test_partial_reid_partial_only_needs_partial_and_whole(tmp_path: Path) -> None:
    write_cross_set(tmp_path, {"partial_body_images": 10, "whole_body_images": 10}, ids=2)
    assert len(load_dataset("partial_reid", tmp_path, query_folder="partial").query) == 10
    with pytest.raises(DataError, match="occluded_body_images: missing folder"):
        load_dataset("partial_reid", tmp_path)


def test_partial_ilids(tmp_path: Path) -> None:
    base = tmp_path / "Partial_iLIDS"
    touch_all(base / "Probe", [f"{n}.jpg" for n in range(1, 120)] + ["Probe.txt"])
    touch_all(base / "Gallery", [f"{n}.jpg" for n in range(1, 120)] + ["Gallery.txt", "x_1.jpg"])
    report = get_dataset("partial_ilids", tmp_path).verify()
    assert report.matches_known_counts and report.ignored == 2 and report.unparsed == ["Gallery/x_1.jpg"]
    data = load_dataset("partial_ilids", tmp_path)
    assert {r.pid for r in data.query} == set(range(1, 120)) == {r.pid for r in data.gallery}


def test_partial_ilids_lowercase_alias_folders(tmp_path: Path) -> None:
    touch_all(tmp_path / "partial_ilids" / "query", ["1.jpg", "2.jpg"])
    touch_all(tmp_path / "partial_ilids" / "gallery", ["1.jpg", "2.jpg", "3.jpg"])
    data = load_dataset("partial_ilids", tmp_path)
    assert len(data.query) == 2 and len(data.gallery) == 3 and "/query/" in data.query[0].path


def test_partial_ilids_pvpm_layout(tmp_path: Path) -> None:
    """PVPM's release names the folders partial_body_images (probes) and whole_body_images (gallery)."""
    touch_all(tmp_path / "Partial_iLIDS" / "partial_body_images", ["001.jpg", "002.jpg"])
    touch_all(tmp_path / "Partial_iLIDS" / "whole_body_images", ["001.jpg", "002.jpg", "003.jpg"])
    data = load_dataset("partial_ilids", tmp_path)
    assert [r.pid for r in data.query] == [1, 2] and len(data.gallery) == 3
    assert "/partial_body_images/" in data.query[0].path and "/whole_body_images/" in data.gallery[0].path


def test_cuhk03_cameras_from_index(tmp_path: Path) -> None:
    base = tmp_path / "cuhk03_labeled"
    touch_all(base / "train", [f"{p:04d}_{k:02d}.jpg" for p in range(3) for k in range(10)])
    touch_all(base / "val", [f"{p:04d}_{k:02d}.jpg" for p in range(2) for k in (0, 1, 5, 9)] + ["0001_10.jpg"])
    data = load_dataset("cuhk03_labeled", tmp_path)
    assert len(data.train) == 30 and {r.camid for r in data.train} == {0, 1}
    assert len(data.query) == 4 and {r.camid for r in data.query} == {0}
    assert len(data.gallery) == 4 and {r.camid for r in data.gallery} == {1}
    assert data.unparsed == ["val/0001_10.jpg"]
    from opreid_bench.data.datasets import load_pool

    pool = load_pool(tmp_path, "cuhk03_labeled")
    assert {r.pid for r in pool} == {0, 1, 2, 10_000, 10_001}  # val ids restart: shifted apart from train's


def _write_opreid(root: Path) -> Path:
    ds = write_market_style(root / "OPReID", train=(60, 6), query=(10, 8), gallery=(40, 12), cams=50,
                            fmt="{pid:04d}_c{cam}_{i:07d}.jpg")
    rows = []
    for split, folder in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        for i, name in enumerate(sorted(os.listdir(ds / folder))):
            if split == "gallery" and i == 0:
                continue  # one image the manifest does not list
            rows.append({"path": f"{folder}/{name}", "source_path": f"/pool/{name}", "pid": int(name[:4]),
                         "camid": 0, "split": split, "occluded": "true" if i % 3 == 0 else "false"})
    rows.append({"path": "query/9999_c1_0000000.jpg", "source_path": "x", "pid": 9999, "camid": 0, "split": "query",
                 "occluded": "true"})
    with open(ds / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return ds


def test_opreid_manifest_sets_occluded(tmp_path: Path) -> None:
    ds = _write_opreid(tmp_path)
    data = load_dataset("opreid", tmp_path)
    assert len(data.train) == 60 and len(data.query) == 10 and len(data.gallery) == 40
    flags = Counter(r.occluded for r in (*data.train, *data.query, *data.gallery))
    assert flags[None] == 1 and flags[True] > 0 and flags[False] > 0
    assert data.query[0].occluded is True and data.query[1].occluded is False
    notes = get_dataset("opreid", tmp_path).verify().notes
    assert any("1 images are not in manifest.csv" in n for n in notes)
    assert any("1 rows of manifest.csv have no image" in n for n in notes)
    # Without the manifest: flags unknown, noted.
    (ds / "manifest.csv").rename(ds / "other.csv")
    assert all(r.occluded is None for r in load_dataset("opreid", tmp_path).query)
    assert len(load_dataset("opreid", tmp_path, manifest="other.csv").query) == 10
    with pytest.raises(DataError, match="manifest not found"):
        load_dataset("opreid", tmp_path, manifest="missing.csv")
    # a copy whose folder names changed case: the folders are found, and so are their rows of the manifest
    (ds / "other.csv").rename(ds / "manifest.csv")
    (ds / "query").rename(ds / "Query")
    assert [r.occluded for r in load_dataset("opreid", tmp_path).query][:2] == [True, False]


def test_opreid_manifest_bad_flag(tmp_path: Path) -> None:
    ds = _write_opreid(tmp_path)
    text = (ds / "manifest.csv").read_text().replace(",true\n", ",maybe\n", 1)
    (ds / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match=r"manifest.csv:\d+: occluded='maybe'"):
        load_dataset("opreid", tmp_path)


def test_a_partial_reid_folder_is_not_read_as_partial_ilids(tmp_path: Path) -> None:
    """Partial-REID also names its folders partial_body_images and whole_body_images: PVPM's Partial-iLIDS names are
    read only inside a Partial-iLIDS folder."""
    base = tmp_path / "Partial_REID"
    touch_all(base / "partial_body_images", ["001_001.jpg"])
    touch_all(base / "whole_body_images", ["001_001.jpg"])
    with pytest.raises(DataError, match="Probe: missing folder"):
        load_dataset("partial_ilids", base)
