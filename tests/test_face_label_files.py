"""The hand-boxed face label files that bench_faces.py scores the masking on: well formed, boxes inside their crops,
and the held-out sets share no crop with the set the masking's settings were chosen on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

LABELS = Path(__file__).resolve().parents[1] / "benchmarks" / "labels"
SETS = ("faces_heads.csv", "faces_heads_heldout.csv", "faces_heads_heldout2.csv", "faces_heads_heldout3.csv",
        "faces_heads_heldout4.csv", "faces_heads_heldout5.csv", "faces_heads_heldout6.csv",
        "faces_heads_heldout7.csv", "faces_heads_heldout8.csv")
BODIES = {f"faces_heads_heldout{k}.csv": f"body_heldout{k}.csv" for k in (3, 4, 5, 6, 7, 8)}
BODY_COLUMNS = ["file", "left", "top", "right", "bottom", "note"]
COLUMNS = ["file", "n_heads", "person", "left", "top", "right", "bottom", "face_visible", "note"]


def _rows(name: str) -> list[dict[str, str]]:
    with (LABELS / name).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS, name
        return list(reader)


@pytest.mark.parametrize("name", SETS)
def test_rows_are_well_formed_and_head_counts_agree(name: str) -> None:
    rows = _rows(name)
    assert rows
    per_file: dict[str, int] = {}
    for row in rows:
        assert row["person"] in {"main", "other", "none"}, row
        if row["person"] == "none":  # a crop with no head in view: no box
            assert not row["left"] and row["n_heads"] == "0", row
            continue
        assert row["face_visible"] in {"0", "1"}, row
        left, top, right, bottom = (int(row[k]) for k in ("left", "top", "right", "bottom"))
        assert 0 <= left < right and 0 <= top < bottom, row
        per_file[row["file"]] = per_file.get(row["file"], 0) + 1
    for row in rows:
        assert int(row["n_heads"]) == per_file.get(row["file"], 0), row["file"]


def test_held_out_sets_share_no_crop_with_the_tuning_set() -> None:
    tuning = {r["file"] for r in _rows(SETS[0])}
    for name in SETS[1:]:
        assert not tuning & {r["file"] for r in _rows(name)}, name
    files = [{r["file"] for r in _rows(name)} for name in SETS]
    for i, a in enumerate(files):
        for j in range(i + 1, len(files)):
            assert not a & files[j], (SETS[i], SETS[j])


def _bodies(name: str) -> list[dict[str, str]]:
    with (LABELS / name).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == BODY_COLUMNS, name
        return list(reader)


@pytest.mark.parametrize("heads", sorted(BODIES))
def test_each_crop_of_a_body_file_has_one_main_body_box(heads: str) -> None:
    bodies = _bodies(BODIES[heads])
    assert sorted(r["file"] for r in bodies) == sorted({r["file"] for r in _rows(heads)})
    for row in bodies:
        left, top, right, bottom = (int(row[k]) for k in ("left", "top", "right", "bottom"))
        assert 0 <= left < right and 0 <= top < bottom, row


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SETS)
def test_boxes_lie_inside_their_crops(name: str, shared_data: Path) -> None:
    sizes: dict[str, tuple[int, int]] = {}
    for row in _rows(name):
        if row["person"] == "none":
            continue
        if row["file"] not in sizes:
            with Image.open(shared_data / row["file"]) as im:
                sizes[row["file"]] = im.size
        w, h = sizes[row["file"]]
        assert int(row["right"]) <= w and int(row["bottom"]) <= h, row
    for row in _bodies(BODIES[name]) if name in BODIES else []:
        with Image.open(shared_data / row["file"]) as im:
            assert int(row["right"]) <= im.size[0] and int(row["bottom"]) <= im.size[1], row
