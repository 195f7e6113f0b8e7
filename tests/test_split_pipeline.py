"""End to end: build-split on a generated pool with precomputed keypoints; the opreid loader reads it back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from split_helpers import image_pool, tiny_protocol_yaml

from opreid_bench.cli import cli
from opreid_bench.data.datasets import get_dataset, load_dataset
from opreid_bench.splits.writer import MANIFEST_COLUMNS


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    }


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("pool")
    manifest, keypoints = image_pool(root)
    return manifest, keypoints, tiny_protocol_yaml(root / "tiny.yaml")


def run(args: list[str]) -> dict:
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def build(pool: tuple[Path, Path, Path], out: Path, seed: int, *extra: str) -> dict:
    manifest, keypoints, protocol = pool
    return run(["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}", "--protocol",
                str(protocol), "--out", str(out), "--seed", str(seed), "--json", *extra])


def test_build_split_end_to_end(pool: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "split"
    info = build(pool, out, 0)
    assert info["splits"]["query"] == {"ids": 6, "images": 8, "cameras": 3, "occluded_share": 1.0}
    assert info["splits"]["gallery"]["images"] == 44 and info["splits"]["train"]["images"] == 64
    assert info["faces_masked"] == 116 and info["same_camera_queries"] == 0
    cross = info["queries_without_cross_camera_match"]
    assert cross["queries"] == 8 and cross["any"] == 0
    for name in ("manifest.csv", "keypoints.h5", "DATA_CARD.md", "occlusion_stats.png", "pid_map.csv"):
        assert (out / name).is_file(), name
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["path"].str.match(r"^(query|bounding_box_test|bounding_box_train)/\d{4}_c\d+s1_\d{6}_00\.jpg$").all()
    assert manifest["occluded"].dtype == bool and manifest["face_masked"].all()
    assert (manifest.loc[manifest["split"] == "query", "occluded"]).all()

    # the opreid loader reads it back (names and manifest agree), and verify accepts the folder
    data = load_dataset("opreid", out)
    assert (len(data.train), len(data.query), len(data.gallery)) == (64, 8, 44)
    assert not data.unparsed and all(r.occluded for r in data.query)
    report = get_dataset("opreid", out).verify()
    assert report.splits["query"] == {"images": 8, "ids": 6, "cameras": 3} and not report.unparsed
    # checked against the counts of the protocol it was drawn by, not the published OPReID's
    assert report.matches_known_counts and report.known_counts["query"] == (8, 6)
    assert len(report.notes) == 1 and "protocol 'tiny'" in report.notes[0] and "27,228/1,744" in report.notes[0]
    res = CliRunner().invoke(cli, ["datasets", "verify", "opreid", "--root", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["unparsed"] == 0
    assert json.loads(res.stdout)["matches_known_counts"] is True

    card = (out / "DATA_CARD.md").read_text()
    assert "| this split | 8 | 64 | 6 | 8 | 14 | 44 | 22 | 116 | 3 |" in card
    assert ("every one of the 8 query crops has its matches from another camera" in card
            or f"Of the 8 query crops, {cross['occluded']} have no occluded match" in card)

    # a rerun into the same folder changes nothing; another folder with the same seed is byte-identical
    before = tree_hashes(out)
    build(pool, out, 0)
    assert tree_hashes(out) == before
    build(pool, tmp_path / "again", 0)
    assert tree_hashes(tmp_path / "again") == before

    # another seed into the same folder: a different split, and no stale crops are left behind
    build(pool, out, 1)
    after = tree_hashes(out)
    assert after != before
    listed = set(pd.read_csv(out / "manifest.csv")["path"])
    on_disk = {k for k in after if k.endswith(".jpg")}
    assert listed == on_disk


def test_stage_commands_sample_and_mask(pool: tuple[Path, Path, Path], tmp_path: Path) -> None:
    manifest, keypoints, protocol = pool
    ann = tmp_path / "ann"
    from opreid_bench.data.datasets import load_pool
    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.classify import classify_store

    annotate_pool(list(load_pool(manifest)), ann, backend=f"precomputed:{keypoints}", progress=False)
    labels = classify_store(ann)
    labels.to_csv(tmp_path / "labels.csv", index=False)

    info = run(["sample", "--labels", str(tmp_path / "labels.csv"), "--pool", str(manifest), "--protocol",
                str(protocol), "--out", str(tmp_path / "s"), "--seed", "0", "--keypoints", str(ann), "--json"])
    assert info["splits"]["overall"]["images"] == 116 and info["faces_masked"] == 116
    # the stage commands give the same split as build-split with the same seed
    full = tmp_path / "full"
    build(pool, full, 0)
    assert (tmp_path / "s" / "manifest.csv").read_bytes() == (full / "manifest.csv").read_bytes()

    dry = run(["sample", "--labels", str(tmp_path / "labels.csv"), "--pool", str(manifest), "--protocol",
               str(protocol), "--out", str(tmp_path / "dry"), "--seed", "0", "--dry-run", "--json"])
    assert dry["splits"]["train"]["images"] == 64 and not (tmp_path / "dry" / "query").exists()

    masked = run(["mask", "--pool", str(manifest), "--keypoints", str(ann), "--out", str(tmp_path / "m"),
                  "--mask", "fill", "--json"])
    # every main face from the keypoints; the drawn crops may give the bystander detectors an odd extra find
    assert masked["crops"] == 400 and masked["faces_masked"] == 400
    assert sum(n for m, n in masked["methods"].items() if m.split("+")[0] == "keypoints") == 400
    assert (tmp_path / "m" / "masks.csv").is_file()
    header = (tmp_path / "m" / "masks.csv").read_text().splitlines()[0]
    assert header == "source_path,path,face_masked,method,masks"
    verify_only = run(["mask", "--verify", "--out", str(full), "--json"])
    assert verify_only["verified"] == 116


def test_pool_too_small_is_a_one_line_error(pool: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from opreid_bench.cli import main

    manifest, keypoints, _ = pool
    args = ["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}", "--protocol",
            "opreid-mini", "--out", str(tmp_path / "x"), "--seed", "0"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_face_detectors_are_named_fingerprinted_and_warned_about(pool: tuple[Path, Path, Path], tmp_path: Path,
                                                                 mtcnn_weights: Path, monkeypatch) -> None:
    manifest, keypoints, protocol = pool
    args = ["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}", "--protocol", str(protocol),
            "--out", str(tmp_path / "split"), "--seed", "0", "--json"]
    marker = tmp_path / "split" / ".opreid-output.json"
    with_mtcnn = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert with_mtcnn.exit_code == 0, with_mtcnn.output
    assert json.loads(with_mtcnn.stdout.strip().splitlines()[-1])["face_detectors"].startswith("blazeface+person+mtcnn:")
    assert "warning: MTCNN" not in with_mtcnn.output
    assert "Warning: MTCNN" not in (tmp_path / "split" / "DATA_CARD.md").read_text()
    first = json.loads(marker.read_text())["fingerprint"]

    monkeypatch.setenv("OPREID_MTCNN_WEIGHTS", "off")
    without = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert without.exit_code == 0, without.output
    assert "mtcnn" not in json.loads(without.stdout.strip().splitlines()[-1])["face_detectors"]
    assert "warning: MTCNN's weights were not installed" in without.output
    assert "Warning: MTCNN" in (tmp_path / "split" / "DATA_CARD.md").read_text()
    assert json.loads(marker.read_text())["fingerprint"] != first
