"""Issue 10, items 7-8: a malformed split protocol is one line naming the file and the key (exit 2), never a
traceback, and a misspelt key is refused instead of silently falling back to the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from opreid_bench.cli import main
from opreid_bench.errors import ProtocolError
from opreid_bench.splits.protocol import PROTOCOLS_DIR, load_protocol

BASE = (
    "kind: split\nname: tiny\n"
    "query: {ids: 6, images: 8, images_per_id: [1, 2]}\n"
    "gallery: {ids: 14, images: 44, per_query_id: {occluded: 1, holistic: 1},\n"
    "          distractor_per_id: {occluded: [1, 3], holistic: [1, 3]}}\n"
    "train: {ids: 8, images: 64, images_per_id: [5, 20], occluded_fraction: 0.15}\n"
)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(("text", "message"), [
    (BASE.replace("per_query_id: {occluded: 1, holistic: 1}", "per_query_id: 5"),
     r"p\.yaml: gallery\.per_query_id must be a mapping, got 5"),
    (BASE.replace("{occluded: 1, holistic: 1}", "{occluded: one, holistic: 1}"),
     r"p\.yaml: gallery\.per_query_id\.occluded must be an integer, got 'one'"),
    (BASE + "published: [1, 2]\n", r"p\.yaml: published must be a mapping, got \[1, 2\]"),
    (BASE + "published: {train: {ids: many}}\n", r"published\.train\.ids must be a non-negative integer"),
    (BASE + "published: {train: [1]}\n", r"published\.train must be a mapping"),
    (BASE.replace("images_per_id: [1, 2]", "images_per_id: [true, 2]"), r"query\.images_per_id must be an integer"),
])
def test_wrong_types_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        load_protocol(_write(tmp_path, text))


@pytest.mark.parametrize(("text", "key"), [
    (BASE.replace("occluded_fraction", "occluded_fracton"), "train.occluded_fracton"),
    (BASE.replace("kind: split\n", "kind: split\nseed: 3\n"), "seed"),
    (BASE.replace("{occluded: 1, holistic: 1}", "{occluded: 1, holistic: 1, partial: 2}"),
     "gallery.per_query_id.partial"),
    (BASE.replace("images_per_id: [1, 2]}", "images_per_id: [1, 2], image_per_id: 3}"), "query.image_per_id"),
    (BASE + "published: {source: x, galery: {ids: 1}}\n", "published.galery"),
])
def test_unknown_keys_are_refused_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ProtocolError, match=rf"p\.yaml: unknown key '{key}'; known: "):
        load_protocol(_write(tmp_path, text))


def test_the_shipped_protocols_pass_the_strict_schema() -> None:
    for path in sorted(PROTOCOLS_DIR.glob("*.yaml")):
        assert load_protocol(path).name


def test_build_split_answers_a_bad_protocol_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, BASE.replace("{occluded: 1, holistic: 1}", "{occluded: one, holistic: 1}"))
    pool = tmp_path / "pool.csv"
    pool.write_text("path,pid,camid\n", encoding="utf-8")
    code, err = _cli(["build-split", "--pool", str(pool), "--protocol", str(bad), "--out", str(tmp_path / "o"),
                      "--seed", "0"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {bad}: gallery.per_query_id.occluded must be an integer, got 'one'"]


def test_a_protocol_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_bytes(b"kind: split\nname: \xff\xfe\n")
    with pytest.raises(ProtocolError, match="not UTF-8"):
        load_protocol(p)
