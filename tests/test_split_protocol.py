"""Split protocol YAML: the shipped files load, the paper's numbers are data, bad files give one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from opreid_bench.errors import ProtocolError
from opreid_bench.splits.protocol import PROTOCOLS_DIR, load_protocol


def test_shipped_protocols_load() -> None:
    p = load_protocol(PROTOCOLS_DIR / "opreid.yaml")
    assert (p.query_ids, p.query_images, p.gallery_ids, p.train_ids, p.train_images) == (3515, 4200, 6174, 1744, 27228)
    assert p.distractor_occluded == (1, 3) and p.train_images_per_id == (5, 20)
    assert p.published["gallery"]["images"] == 41014
    lo, hi = p.gallery_range()
    assert lo <= p.gallery_images <= hi < 41014  # the paper's gallery size is unreachable under its own rule
    assert load_protocol("opreid-mini").name == "opreid-mini"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """kind: split
query: {ids: 6, images: 8}
gallery: {ids: 14, images: 44}
train: {ids: 8, images: 64}
"""


def test_errors_name_file_and_fault(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="not found"):
        load_protocol(tmp_path / "nope.yaml")
    with pytest.raises(ProtocolError, match=r"p\.yaml: not a split protocol"):
        load_protocol(write(tmp_path, BASE.replace("kind: split", "kind: evaluation")))
    with pytest.raises(ProtocolError, match=r"gallery\.images 100 unreachable.*gives 28-60"):
        load_protocol(write(tmp_path, BASE.replace("images: 44", "images: 100")))
    with pytest.raises(ProtocolError, match=r"query\.images 20 unreachable"):
        load_protocol(write(tmp_path, BASE.replace("images: 8", "images: 20")))
    with pytest.raises(ProtocolError, match="missing query.ids"):
        load_protocol(write(tmp_path, BASE.replace("ids: 6, ", "")))
    with pytest.raises(ProtocolError, match="invalid YAML"):
        load_protocol(write(tmp_path, "kind: [split"))
