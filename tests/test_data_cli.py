"""`opreid-bench datasets list|verify`: JSON shape, warnings on stderr, exit code 2 for a missing folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_trees import DUKE_NAME, touch_all, write_cross_set, write_market_style

from opreid_bench.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code), out, err


def test_verify_json_matching(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cross_set(tmp_path / "Partial_REID", {"occluded_body_images": 300, "whole_body_images": 300}, ids=60)
    code, out, err = _run(["datasets", "verify", "partial_reid", "--root", str(tmp_path), "--json"], capsys)
    assert code == 0 and err.splitlines() == ["note: query: the occluded probes (query_folder=occluded, the default); "
                                              "published Partial-REID results use the partial probes: --option "
                                              "query_folder=partial"]
    obj = json.loads(out)  # exactly one JSON object on stdout
    assert obj["dataset"] == "partial_reid" and obj["matches_known_counts"] is True
    assert obj["splits"] == {"query": {"images": 300, "ids": 60, "cameras": 1},
                             "gallery": {"images": 300, "ids": 60, "cameras": 1}}


def test_verify_warns_on_differing_counts_and_unparsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_market_style(tmp_path / "DukeMTMC-reID", train=(30, 5), query=(6, 3), gallery=(20, 6), cams=8,
                            fmt=DUKE_NAME)
    touch_all(ds / "query", ["bad.jpg"])
    code, out, err = _run(["datasets", "verify", "dukemtmc", "--root", str(tmp_path), "--json"], capsys)
    assert code == 0
    obj = json.loads(out)
    assert obj["matches_known_counts"] is False and obj["splits"]["train"] == {"images": 30, "ids": 5, "cameras": 8}
    assert obj["unparsed"] == 1 and obj["unparsed_examples"] == ["query/bad.jpg"]
    assert "train: expected 16,522 images / 702 ids, found 30 images / 5 ids" in err
    assert "query/bad.jpg" in err
    code, out, _ = _run(["datasets", "verify", "dukemtmc", "--root", str(tmp_path)], capsys)
    assert code == 0 and "16,522" in out and "differs" in out


def test_verify_missing_folder_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["datasets", "verify", "occluded_duke", "--root", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "Occluded_Duke" / "bounding_box_train") in lines[0]
    assert "expected layout Occluded_Duke/{bounding_box_train,query,bounding_box_test}" in lines[0]


def test_verify_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cross_set(tmp_path, {"partial_body_images": 10, "whole_body_images": 10}, ids=2)
    code, out, _ = _run(["datasets", "verify", "partial_reid", "--root", str(tmp_path), "--option",
                         "query_folder=partial", "--json"], capsys)
    assert code == 0 and json.loads(out)["splits"]["query"]["images"] == 10
    code, _, err = _run(["datasets", "verify", "partial_reid", "--root", str(tmp_path), "--option", "oops"], capsys)
    assert code == 2 and "expected KEY=VALUE" in err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["datasets", "list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert code == 0 and rows["occluded_duke"]["known_counts"]["query"] == {"images": 2210, "ids": 519}
    assert rows["partial_reid"]["splits"] == ["query", "gallery"] and rows["opreid"]["protocol"] == "opreid"
    code, out, _ = _run(["datasets", "list"], capsys)
    assert code == 0 and "market1501" in out and "12,936/751" in out
