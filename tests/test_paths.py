"""Matching two files' spellings of the same crops (opreid_bench.paths.match_paths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opreid_bench.paths import match_paths


def test_spellings_of_the_same_crop_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    known = ["pool/crops/a.png", "pool/crops/b.png", "c.png"]
    # the same spelling; the same absolute path; written from the folder above (``../``)
    assert match_paths(["pool/crops/a.png"], known) == {"pool/crops/a.png": "pool/crops/a.png"}
    assert match_paths([str(tmp_path / "pool/crops/b.png")], known) == {
        str(tmp_path / "pool/crops/b.png"): "pool/crops/b.png"}
    assert match_paths(["../pool/crops/a.png"], known) == {"../pool/crops/a.png": "pool/crops/a.png"}
    # relative to a base folder (the labels file's)
    assert match_paths([str(tmp_path / "w/crops/a.png")], ["crops/a.png"], [tmp_path / "w"]) == {
        str(tmp_path / "w/crops/a.png"): "crops/a.png"}


def test_paths_that_share_only_an_ending_do_not_match() -> None:
    assert match_paths(["/data/other/crops/a.png"], ["pool/crops/a.png"]) == {}  # another folder
    assert match_paths(["x/c.png"], ["c.png", "y/c.png"]) == {}  # a file name alone is not enough
    assert match_paths([os.path.join(os.sep, "a", "pool", "1.png")], [os.path.join(os.sep, "b", "pool", "1.png")]) == {}
    # two wanted crops that both end like one known path: neither is matched
    assert match_paths(["p/a/1.png", "q/a/1.png"], ["a/1.png"]) == {}
