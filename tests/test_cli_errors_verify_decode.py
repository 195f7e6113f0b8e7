"""Issue 10, item 8: `datasets verify --decode` decodes every image and names the truncated, undecodable and
wrongly-formatted ones (exit 2); without --decode such files pass the count check unnoticed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opreid_bench.cli import main


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _jpeg() -> bytes:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "crops"
    folder.mkdir()
    good = _jpeg()
    files = {"ok_q.jpg": good, "ok_g.jpg": good, "ok_t.jpg": good, "cut.jpg": good[: len(good) // 2],
             "noise.jpg": b"\x00" * 64}
    png = io.BytesIO()
    Image.new("RGB", (32, 64)).save(png, "PNG")
    files["png_named.jpg"] = png.getvalue()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    rows = [("ok_q.jpg", "query"), ("ok_g.jpg", "gallery"), ("ok_t.jpg", "train"), ("cut.jpg", "train"),
            ("noise.jpg", "gallery"), ("png_named.jpg", "gallery")]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,pid,camid,split\n" + "".join(f"crops/{n},{i % 2},{i % 3},{s}\n"
                                                           for i, (n, s) in enumerate(rows)), encoding="utf-8")
    return manifest


def test_decode_names_every_bad_file(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _cli(["datasets", "verify", "manifest", "--root", str(dataset), "--json"], capsys)
    assert code == 0  # counting alone passes the bad files
    code, out, err = _cli(["datasets", "verify", "manifest", "--root", str(dataset), "--decode", "--json"], capsys)
    assert code == 2
    report = json.loads(out)["decode"]
    assert report["checked"] == 6 and report["failed"] == 3
    assert report["counts"] == {"truncated": 1, "undecodable": 1, "wrong_format": 1}
    found = {Path(p["path"]).name: p["problem"] for p in report["problems"]}
    assert found == {"cut.jpg": "truncated", "noise.jpg": "undecodable", "png_named.jpg": "wrong_format"}
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "3 of 6 images failed to decode" in line


def test_decode_table_and_clean_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(_jpeg())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,pid,camid,split\ncrops/0.jpg,1,0,query\ncrops/1.jpg,1,1,gallery\n"
                        "crops/2.jpg,2,0,train\n", encoding="utf-8")
    code, out, _ = _cli(["datasets", "verify", "manifest", "--root", str(manifest), "--decode"], capsys)
    assert code == 0 and "decoded 3 images: 0 failed" in out


def test_decode_problem_kinds(tmp_path: Path) -> None:
    from opreid_bench.data.decode import decode_problem

    ok = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(ok)
    assert decode_problem(ok) is None
    jpeg_as_png = tmp_path / "b.png"
    jpeg_as_png.write_bytes(_jpeg())
    assert decode_problem(jpeg_as_png) == ("wrong_format", "JPEG data in a .png file")
    assert decode_problem(tmp_path / "missing.jpg")[0] == "undecodable"
    # a JPEG carrying a second picture (phones, Ultra HDR) is read by Pillow as MPO: still a JPEG, .jpg is right
    mpo = tmp_path / "two.jpg"
    Image.new("RGB", (16, 32), (1, 2, 3)).save(mpo, format="MPO", save_all=True,
                                                append_images=[Image.new("RGB", (16, 32), (9, 9, 9))])
    with Image.open(mpo) as im:
        assert im.format == "MPO"
    assert decode_problem(mpo) is None
