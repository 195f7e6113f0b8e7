"""What a split is built from, read the way the user meant it: labels written as words, crops changed after
`annotate`, crops stored sideways (EXIF) or at 16 bits, images too large to decode, and what the data card and
`sample --json` then say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import invoke
from PIL import Image
from split_helpers import draw_crop, image_pool, tiny_protocol_yaml

from opreid_bench.data.decode import load_rgb, upright_size
from opreid_bench.errors import DataError
from opreid_bench.splits.annotate import decode_image
from opreid_bench.splits.writer import encode_crop


def _labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path, Path]:
    """A generated pool, its annotate folder and labels.csv, and a tiny protocol."""
    manifest, keypoints = image_pool(tmp_path / "pool")
    ann, labels = tmp_path / "ann", tmp_path / "labels.csv"
    assert invoke(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose", f"precomputed:{keypoints}"],
                  capsys)[0] == 0
    assert invoke(["classify", "--keypoints", str(ann), "--out", str(labels)], capsys)[0] == 0
    return manifest, ann, labels, tiny_protocol_yaml(tmp_path / "tiny.yaml")


def _sample(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return invoke(["sample", "--seed", "0", *args], capsys)


def test_occluded_written_as_words_is_read_as_the_words_say(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _, labels, protocol = _labelled(tmp_path, capsys)
    table = pd.read_csv(labels)
    truth = table["occluded"].astype(bool)
    words = table[["source_path"]].assign(occluded=np.where(truth, "yes", "no"))
    words.to_csv(tmp_path / "words.csv", index=False)
    code, out, err = _sample(["--labels", str(tmp_path / "words.csv"), "--pool", str(manifest), "--protocol",
                              str(protocol), "--out", str(tmp_path / "s"), "--dry-run", "--json"], capsys)
    assert code == 0, err
    drawn = pd.read_csv(tmp_path / "s" / "split.csv")
    by_path = dict(zip(table["source_path"].map(lambda p: str(Path(p).resolve())), truth, strict=True))
    assert [by_path[str(Path(p).resolve())] for p in drawn["source_path"]] == drawn["occluded"].tolist()
    assert json.loads(out)["splits"]["query"]["occluded_share"] == 1.0  # queries are occluded crops, as labelled
    # a value that is no verdict is named with its row, not read as True
    words.loc[5, "occluded"] = "maybe"
    words.to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = _sample(["--labels", str(tmp_path / "bad.csv"), "--pool", str(manifest), "--protocol",
                            str(protocol), "--out", str(tmp_path / "b"), "--dry-run"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'bad.csv'}: row 7, column occluded: 'maybe' is not a verdict (true/false, 1/0, yes/no, "
        "occluded/holistic)")


def test_a_crop_changed_after_annotate_is_refused_not_masked_where_its_head_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ann, labels, protocol = _labelled(tmp_path, capsys)
    changed = tmp_path / "pool" / "images" / "102_4.png"
    with Image.open(changed) as im:
        im.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(changed)
    code, _, err = _sample(["--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol),
                            "--out", str(tmp_path / "s"), "--keypoints", str(ann)], capsys)
    assert code == 2, err
    assert f"{changed}" in err and "changed after `annotate`" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_sample_json_counts_cameras_as_build_split_and_the_data_card(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ann, labels, protocol = _labelled(tmp_path, capsys)
    pool = pd.read_csv(manifest)
    pool.loc[pool["camid"] == 2, "camid"] = -1  # one camera unknown
    pool.to_csv(manifest, index=False)
    args = ["--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol), "--json"]
    code, dry, err = _sample([*args, "--out", str(tmp_path / "d"), "--dry-run"], capsys)
    assert code == 0, err
    code, full, err = _sample([*args, "--out", str(tmp_path / "s"), "--keypoints", str(ann)], capsys)
    assert code == 0, err
    dry_json, full_json = json.loads(dry), json.loads(full)
    assert full_json["splits"] == dry_json["splits"]
    assert full_json["splits"]["overall"]["cameras"] == 2  # the unknown camera is no camera
    assert full_json["queries_without_cross_camera_match"] == dry_json["queries_without_cross_camera_match"]
    card = (tmp_path / "s" / "DATA_CARD.md").read_text(encoding="utf-8")
    overall = full_json["splits"]["overall"]
    assert f"| {overall['ids']:,} | {overall['images']:,} | 2 |" in card


def test_the_data_card_says_when_faces_were_not_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ann, labels, protocol = _labelled(tmp_path, capsys)
    code, _, err = _sample(["--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol),
                            "--out", str(tmp_path / "s"), "--mask", "none"], capsys)
    assert code == 0, err
    card = (tmp_path / "s" / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "**Warning: no face was masked (`--mask none`)" in card
    assert "Every face found was masked" not in card


def _sideways(upright: Image.Image, path: Path) -> None:
    """Store ``upright`` turned a quarter and tagged EXIF orientation 6: viewers show it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)


def test_a_crop_stored_sideways_with_an_exif_tag_is_read_upright_everywhere(tmp_path: Path) -> None:
    upright = draw_crop(np.random.default_rng(0), occluded=False)  # 64x128, head at the top
    path = tmp_path / "side.jpg"
    _sideways(upright, path)
    with Image.open(path) as im:
        assert im.size == (128, 64) and upright_size(im) == (64, 128)
    assert load_rgb(path).size == (64, 128)
    assert decode_image(path.read_bytes()).shape == (128, 64, 3)
    data, masked, method, masks = encode_crop(str(path), None, "blur")
    with Image.open(__import__("io").BytesIO(data)) as written:
        assert written.size == (64, 128) and not written.getexif().get(0x0112)
        head = np.asarray(written.convert("RGB"))[6:26, 25:39].astype(float)
    before = np.asarray(load_rgb(path))[6:26, 25:39].astype(float)
    assert masked and method == "prior" and masks.startswith("prior@")
    assert np.abs(head - before).mean() > 10  # the head prior fell on the head, at the top of the upright crop


def test_a_16_bit_crop_keeps_its_picture(tmp_path: Path) -> None:
    gray = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (128, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(gray).save(path)  # 16-bit grayscale PNG
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    rgb = np.asarray(load_rgb(path))
    assert rgb[:, 0].max() == 0 and rgb[:, -1].min() == 255 and 100 < rgb.mean() < 155
    assert np.array_equal(decode_image(path.read_bytes()), rgb)


def test_an_image_too_large_to_decode_is_one_line_or_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x128 is then a decompression bomb
    (tmp_path / "crops").mkdir()
    crop = tmp_path / "crops" / "big.png"
    draw_crop(np.random.default_rng(1), occluded=False).save(crop)
    with pytest.raises(DataError, match="big.png: cannot decode image"):
        encode_crop(str(crop), None, "blur")
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(crop.read_bytes())
    (tmp_path / "pool.csv").write_text(f"path,pid,camid\n{crop},1,0\n", encoding="utf-8")
    code, _, err = invoke(["mask", "--pool", str(tmp_path / "pool.csv"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "Traceback" not in err and "big.png: cannot decode image" in err


def test_keypoints_of_another_pool_are_refused_and_missing_ones_are_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ann, labels, protocol = _labelled(tmp_path, capsys)
    other_manifest, other_kp = image_pool(tmp_path / "other", n_ids=3, per_id=2, seed=5)
    other_ann = tmp_path / "other_ann"
    assert invoke(["annotate", "--pool", str(other_manifest), "--out", str(other_ann), "--pose",
                   f"precomputed:{other_kp}"], capsys)[0] == 0
    base = ["--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol)]
    code, _, err = _sample([*base, "--out", str(tmp_path / "s"), "--keypoints", str(other_ann)], capsys)
    assert code == 2 and "holds the keypoints of none of the" in err.strip().splitlines()[-1]
    assert not (tmp_path / "s").exists()
    code, _, err = _sample([*base, "--out", str(tmp_path / "s")], capsys)
    assert code == 0 and "warning: no --keypoints: the main faces are located without pose" in err
    # keypoints of some crops only: how many have none is said
    pool = pd.read_csv(manifest)
    pool.head(5).to_csv(tmp_path / "few.csv", index=False)
    few_ann = tmp_path / "few_ann"
    assert invoke(["annotate", "--pool", str(tmp_path / "few.csv"), "--out", str(few_ann), "--pose",
                   f"precomputed:{tmp_path / 'pool' / 'keypoints.csv'}"], capsys)[0] == 0
    code, _, err = invoke(["mask", "--pool", str(manifest), "--keypoints", str(few_ann), "--out",
                           str(tmp_path / "m")], capsys)
    assert code == 0 and f"{len(pool) - 5:,} of {len(pool):,} crops have no keypoints in {few_ann}" in err


def test_the_split_fingerprint_follows_the_crops_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _, labels, protocol = _labelled(tmp_path, capsys)
    base = ["--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol), "--dry-run"]

    def marker_fingerprint(out: Path) -> str:
        assert _sample([*base, "--out", str(out)], capsys)[0] == 0
        return json.loads((out / ".opreid-output.json").read_text(encoding="utf-8"))["fingerprint"]

    first = marker_fingerprint(tmp_path / "a")
    assert marker_fingerprint(tmp_path / "b") == first
    crop = tmp_path / "pool" / "images" / "105_3.png"
    with Image.open(crop) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(crop)
    assert marker_fingerprint(tmp_path / "c") != first
