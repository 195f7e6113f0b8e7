"""A labels file written with paths relative to where `classify` ran still fits its pool when `sample` runs from
another folder (its relative paths are also read against the labels file's folder); a labels file that fits no crop
says what the two sides hold."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke
from split_helpers import image_pool, tiny_protocol_yaml


def test_sample_from_another_folder_finds_the_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "w"
    manifest, _ = image_pool(work / "pool")
    table = pd.read_csv(manifest)
    table["path"] = [str(Path(p).relative_to(work / "pool")) for p in table["path"]]  # relative, as users write them
    table.to_csv(manifest, index=False)
    tiny_protocol_yaml(work / "tiny.yaml")
    monkeypatch.chdir(work)
    assert invoke(["annotate", "--pool", "pool/manifest.csv", "--out", "ann", "--pose",
                   "precomputed:pool/keypoints.csv"], capsys)[0] == 0
    assert invoke(["classify", "--keypoints", "ann", "--out", "labels.csv"], capsys)[0] == 0
    assert pd.read_csv("labels.csv")["source_path"].iloc[0].startswith("pool/images/")  # relative to w/
    code, _, err = invoke(["sample", "--labels", "labels.csv", "--pool", "pool/manifest.csv", "--protocol", "tiny.yaml",
                           "--out", "here", "--seed", "0", "--keypoints", "ann"], capsys)
    assert code == 0, err
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, err = invoke(["sample", "--labels", "../w/labels.csv", "--pool", "../w/pool/manifest.csv", "--protocol",
                           "../w/tiny.yaml", "--out", "there", "--seed", "0", "--keypoints", "../w/ann"], capsys)
    assert code == 0, err
    here = pd.read_csv(work / "here" / "manifest.csv")
    there = pd.read_csv(tmp_path / "elsewhere" / "there" / "manifest.csv")
    assert len(here) == len(there) > 0
    assert list(here["split"]) == list(there["split"]) and list(here["pid"]) == list(there["pid"])
    # the keypoints were found too: every face masked from them, the same pixels, all rows in the split's keypoint file
    masks_here = (work / "here" / "face_masks.csv").read_text()
    assert masks_here == (tmp_path / "elsewhere" / "there" / "face_masks.csv").read_text()
    assert "keypoints@" in masks_here and "prior@" not in masks_here  # no crop fell back to the head prior
    for rel in here["path"]:
        assert (work / "here" / rel).read_bytes() == (tmp_path / "elsewhere" / "there" / rel).read_bytes(), rel
    from opreid_bench.splits.cache import read_keypoints

    copied = read_keypoints(tmp_path / "elsewhere" / "there" / "keypoints.h5")
    assert sorted(copied) == sorted(there["source_path"])
    # labels of part of the pool: the rest is left out, and said so
    part = tmp_path / "part.csv"
    full = pd.read_csv(work / "labels.csv")
    full.iloc[:300].to_csv(part, index=False)
    code, out, err = invoke(["sample", "--labels", str(part), "--pool", "../w/pool/manifest.csv", "--protocol",
                             "../w/tiny.yaml", "--out", "partly", "--seed", "0", "--dry-run", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["unlabelled"] == len(full) - 300
    assert f"warning: {len(full) - 300} crops of the pool have no label in {part}" in err
    # labels of other crops: one line naming both sides
    other = tmp_path / "other.csv"
    pd.DataFrame({"source_path": ["nowhere/a.png"], "occluded": [True]}).to_csv(other, index=False)
    code, _, err = invoke(["sample", "--labels", str(other), "--pool", "../w/pool/manifest.csv", "--protocol",
                           "../w/tiny.yaml", "--out", "x", "--seed", "0", "--dry-run"], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "no label matches a crop of the pool" in line and "'nowhere/a.png'" in line
    assert "read against the working folder and against the labels file's folder" in line


def test_labels_that_name_no_crop_of_the_pool_are_one_error() -> None:
    from opreid_bench.data.records import ImageRecord
    from opreid_bench.errors import DataError
    from opreid_bench.splits.pipeline import labels_for_pool

    pool = [ImageRecord("a/1.png", 1, 1), ImageRecord("a/2.png", 2, 1)]
    for labels in (pd.DataFrame({"source_path": ["zz/9.png"], "occluded": [True]}),
                   pd.DataFrame({"source_path": [3.5], "occluded": [True]}),  # a number where a path belongs
                   pd.DataFrame({"source_path": pd.Series([], dtype=object), "occluded": []})):  # no rows at all
        with pytest.raises(DataError, match="L.csv: no label matches a crop of the pool"):
            labels_for_pool(pool, labels, where="L.csv")
