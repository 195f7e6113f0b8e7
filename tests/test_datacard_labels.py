"""The data card says how the pool was labelled: the rule, and how many crops were undetermined (no person found)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from split_helpers import image_pool, tiny_protocol_yaml

from opreid_bench.cli import cli


def test_data_card_counts_labels_and_names_undetermined_crops(tmp_path: Path) -> None:
    manifest, keypoints = image_pool(tmp_path / "pool")
    rows = list(csv.reader(keypoints.open()))
    lost = []
    for row in rows[1:3]:  # two crops where "the backend found no person": every score 0
        row[3::3] = ["0"] * 17
        lost.append(row[0])
    with keypoints.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    protocol = tiny_protocol_yaml(tmp_path / "tiny.yaml")
    out = tmp_path / "split"
    res = CliRunner().invoke(cli, ["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}",
                                   "--protocol", str(protocol), "--out", str(out), "--seed", "0",
                                   "--support-threshold", "none", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    json.loads(res.stdout.strip().splitlines()[-1])
    card = (out / "DATA_CARD.md").read_text()
    assert "## Occlusion labels of the pool" in card
    # 400 crops: 134 drawn occluded, of which the first two (crops 0 and 1 of the first id) are now lost
    assert "| 400 | 132 | 266 | 2 | 0 |" in card
    assert "left out of sampling" in card and all(f"`{p}`" in card for p in lost)
    assert "visibility only" in card


def test_support_threshold_option_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from opreid_bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["classify", "--keypoints", str(tmp_path / "k.h5"), "--out", str(tmp_path / "l.csv"),
              "--support-threshold", "high"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--support-threshold" in err and "Traceback" not in err
