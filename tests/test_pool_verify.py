"""`datasets verify pool`: a raw pool (a manifest without a split column, or a folder of crops) checked the way
build-split reads it, with every file left out named with its reason; a manifest that gives one file two identities
is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke
from PIL import Image

_cli = invoke


def _crops(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (16, 32), (90, 120, 150)).save(folder / n)


def test_a_pool_manifest_and_a_pool_folder_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _crops(tmp_path / "crops", ["0001_c1_a.jpg", "0001_c2_b.jpg", "0002_c1_a.jpg", "0003_cA_a.jpg", "notes.jpg"])
    (tmp_path / "manifest.csv").write_text("path,pid,camid\ncrops/0001_c1_a.jpg,1,1\ncrops/0001_c2_b.jpg,1,2\n"
                                           "crops/0002_c1_a.jpg,2,1\n", encoding="utf-8")
    code, out, err = _cli(["datasets", "verify", "pool", "--root", str(tmp_path / "manifest.csv"), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["splits"] == {"train": {"images": 3, "ids": 2, "cameras": 2}}
    pattern = r"pattern=(?P<pid>\d+)_c(?P<camid>\w+)_"
    code, out, err = _cli(["datasets", "verify", "pool", "--root", str(tmp_path / "crops"), "--option", pattern,
                           "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["splits"]["train"]["images"] == 3 and report["unparsed"] == 2
    reasons = " ".join(report["unparsed_examples"])
    assert "notes.jpg: name does not match the pattern" in reasons
    assert "0003_cA_a.jpg: pid '0003' or camid 'A' is not a whole number" in reasons


def test_a_pool_where_nothing_parses_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _crops(tmp_path / "crops", ["a.jpg", "b.jpg"])
    code, _, err = _cli(["datasets", "verify", "pool", "--root", str(tmp_path / "crops")], capsys)
    assert code == 2 and "no image was read" in err.strip().splitlines()[-1]


def test_one_file_with_two_identities_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _crops(tmp_path / "crops", ["x.jpg"])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,pid,camid\ncrops/x.jpg,1,1\ncrops/x.jpg,2,1\n", encoding="utf-8")
    code, _, err = _cli(["datasets", "verify", "pool", "--root", str(manifest)], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and str(manifest) in line and "row 2" in line and "also row 1" in line


def test_a_folder_of_crops_given_as_a_manifest_pool_names_the_folder_format(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    crops = tmp_path / "crops"
    crops.mkdir()
    Image.new("RGB", (16, 32), "gray").save(crops / "0001_c1_a.jpg")
    code, _, err = _cli(["annotate", "--pool", str(crops), "--out", str(tmp_path / "ann")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and f"{crops}: no manifest.csv or manifest.parquet in this folder" in line
    assert "columns path,pid,camid[,occluded]" in line and "--pool-format folder" in line
    assert not (tmp_path / "ann").exists()


def test_a_pool_whose_files_are_all_missing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "manifest.csv").write_text("path,pid,camid\nimages/none.jpg,1,1\n")
    code, _, err = _cli(["datasets", "verify", "pool", "--root", str(pool)], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and ("no image was read: 1 file(s) left out (e.g. images/none.jpg: file not found at "
                          f"{pool / 'images' / 'none.jpg'} (relative paths are read against the manifest's folder))"
                          in line)
    assert "pattern" not in line


def test_a_pool_counts_junk_and_non_image_files_as_every_loader_does(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _crops(tmp_path / "crops", ["0001_c1_a.jpg", "0002_c2_a.jpg", "-1_c1_junk.jpg"])
    (tmp_path / "crops" / "notes.txt").write_text("not a crop\n", encoding="utf-8")
    code, out, err = _cli(["datasets", "verify", "pool", "--root", str(tmp_path / "crops"), "--option",
                           r"pattern=(?P<pid>-?\d+)_c(?P<camid>\d+)", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert (report["junk"], report["ignored"], report["unparsed"]) == (1, 1, 0)
    assert report["splits"]["train"]["images"] == 2
