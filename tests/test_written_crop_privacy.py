"""What a written crop may carry: its masked pixels and nothing else, and never a face its own verification flags."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from opreid_bench.errors import DataError
from opreid_bench.splits.writer import encode_crop


def _crop() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8), "RGB")


def _segments(jpeg: bytes) -> list[int]:
    """The JPEG's marker codes up to the start of scan."""
    out, i = [], 2
    while i < len(jpeg) and jpeg[i] == 0xFF:
        marker = jpeg[i + 1]
        out.append(marker)
        if marker == 0xDA:
            break
        i += 2 + int.from_bytes(jpeg[i + 2:i + 4], "big")
    return out


@pytest.mark.parametrize("mask", ["fill", None])
def test_a_comment_holding_the_unmasked_face_is_not_written(tmp_path: Path, mask: str | None) -> None:
    img = _crop()
    preview = io.BytesIO()
    img.crop((0, 0, 64, 32)).save(preview, "JPEG")  # an app's preview of the head, kept in the comment
    jpg = tmp_path / "with_comment.jpg"
    img.save(jpg, comment=preview.getvalue())
    assert Image.open(jpg).info.get("comment")
    png = tmp_path / "with_text.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 70_000)  # longer than a JPEG comment can hold
    img.save(png, pnginfo=info)
    for source in (jpg, png):
        data, *_ = encode_crop(str(source), None, mask)
        written = Image.open(io.BytesIO(data))
        assert "comment" not in written.info and "exif" not in written.info
        # SOI's successors: APP0 (JFIF), DQT, SOF0, DHT, SOS only
        assert set(_segments(data)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}, [hex(m) for m in _segments(data)]


def test_faces_boxed_by_hand_are_never_written_unmasked(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    _crop().save(src)
    with pytest.raises(DataError, match="a.png: faces boxed by hand cannot go unmasked"):
        encode_crop(str(src), None, None, [(0, 0, 10, 10)])


def test_a_face_the_written_crop_still_shows_is_filled_or_the_crop_refused(tmp_path: Path, monkeypatch) -> None:
    import opreid_bench.splits.all_faces as all_faces

    src = tmp_path / "a.png"
    pixels = np.asarray(_crop()).copy()
    pixels[60:80, 40:48], pixels[60:80, 48:56] = 0, 255  # half black, half white: a blur keeps the step, a fill not
    Image.fromarray(pixels).save(src)
    box = (40, 60, 56, 80)
    calls = {"n": 0}

    def still_there(image, kp, *, masked=None, verify=False):  # noqa: ANN001, ANN202
        if not verify:
            return []
        calls["n"] += 1
        return [(box, "verify")] if calls["n"] <= 3 else []  # the masking's own check, then two rounds

    monkeypatch.setattr(all_faces, "find_faces", still_there)
    data, masked, method, masks = encode_crop(str(src), None, "blur+all")
    assert masked and method.endswith("+verify") and masks.count("verify@40,60,56,80") >= 1
    region = np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float64)[63:77, 43:53]
    assert region.std() < 4 and abs(region.mean() - 128) < 4  # the last round fills the box flat, not blurred again

    calls["n"] = -100  # found every time: the crop is refused, never written with a face on it
    with pytest.raises(DataError, match="a.png: a plausible face is still found after masking it"):
        encode_crop(str(src), None, "blur+all")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from opreid_bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_an_image_the_command_did_not_write_is_never_published_unchecked(tmp_path: Path, monkeypatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A crop copied into a masked folder is neither carried into the next output nor passed by --verify, and no
    review sheet of unmasked crops is written inside it."""
    import json
    import shutil

    pytest.importorskip("mediapipe")
    monkeypatch.chdir(tmp_path)
    assert _cli(["synth", "--out", "pool", "--ids", "4", "--size", "32", "64", "--seed", "0"], capsys)[0] == 0
    assert _cli(["mask", "--pool", "pool/manifest.csv", "--out", "masked"], capsys)[0] == 0
    code, out, _ = _cli(["mask", "--verify", "--out", "masked", "--json"], capsys)
    assert code == 0 and json.loads(out)["unlisted"] == []
    stray = tmp_path / "masked" / "sub" / "extra.PNG"
    stray.parent.mkdir()
    shutil.copy(sorted((tmp_path / "pool" / "images").iterdir())[0], stray)
    code, out, err = _cli(["mask", "--verify", "--out", "masked", "--json"], capsys)
    assert code == 1 and json.loads(out)["unlisted"] == ["sub/extra.PNG"] and "not checked: 1 file(s)" in err
    code, _, err = _cli(["mask", "--pool", "pool/manifest.csv", "--out", "masked"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: {stray}: not written by opreid-bench")
    assert stray.is_file()  # refused, not deleted
    assert _cli(["annotate", "--pool", "pool/manifest.csv", "--pose", "precomputed:pool/keypoints.csv", "--out",
                 "ann"], capsys)[0] == 0
    code, _, err = _cli(["classify", "--keypoints", "ann", "--out", "labels.csv", "--review", "masked/review.html"],
                        capsys)
    assert code == 2 and "a split or masked folder: the sheet shows the pool's crops unmasked" in err
    assert not (tmp_path / "masked" / "review.html").exists()
    code, _, err = _cli(["mask", "--pool", "pool/manifest.csv", "--out", "m2", "--review-faces", "masked/faces.html"],
                        capsys)
    assert code == 2 and "a split or masked folder, which is published as it is" in err
    assert not (tmp_path / "masked" / "faces.html").exists()


def test_mask_outside_body_from_the_command_line(tmp_path: Path, monkeypatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from opreid_bench.splits.datacard import _masking_lines
    from opreid_bench.splits.writer import parse_masks

    pytest.importorskip("mediapipe")
    monkeypatch.chdir(tmp_path)
    assert _cli(["synth", "--out", "pool", "--ids", "2", "--size", "32", "64", "--seed", "0"], capsys)[0] == 0
    code, _, err = _cli(["mask", "--pool", "pool/manifest.csv", "--out", "m", "--mask-outside-body",
                         "--main-face-only"], capsys)
    assert code == 2 and "--mask-outside-body masks every face and more; --main-face-only" in err
    (tmp_path / "x.csv").write_text("source_path,occluded\n", encoding="utf-8")
    code, _, err = _cli(["sample", "--labels", "x.csv", "--pool", "pool/manifest.csv", "--protocol", "opreid-tiny",
                         "--out", "s", "--seed", "0", "--mask", "none", "--mask-outside-body"], capsys)
    assert code == 2 and "--mask-outside-body masks, but --mask none copies the crops unmasked" in err
    code, _, err = _cli(["sample", "--labels", "x.csv", "--pool", "pool/manifest.csv", "--protocol", "opreid-tiny",
                         "--out", "s", "--seed", "0", "--mask", "none", "--main-face-only"], capsys)
    assert code == 2 and "--main-face-only masks, but --mask none copies the crops unmasked" in err
    assert _cli(["mask", "--pool", "pool/manifest.csv", "--out", "m", "--mask-outside-body", "--mask", "fill"],
                capsys)[0] == 0
    table = pd.read_csv(tmp_path / "m" / "masks.csv")
    assert all("outside" in {k for k, _ in parse_masks(m)} for m in table["masks"])
    card = " ".join(_masking_lines("blur+outside", "blazeface+person"))
    assert "`--mask-outside-body`, kind `outside`" in card and "3 of 50" in card


def test_any_file_but_text_that_the_command_did_not_write_is_refused(tmp_path: Path) -> None:
    """Hidden files, other image formats and archives count too; text is carried over; a killed first run's folder
    (an incomplete marker without a written list) is checked as well."""
    import os

    from opreid_bench.errors import OutputError
    from opreid_bench.outputs import output_folder, stray_media, write_marker

    out = tmp_path / "masked"
    with output_folder(out, "mask", kind="masked", swap=True) as new:
        (new / "a.jpg").write_bytes(b"crop")
    png = io.BytesIO()
    _crop().save(png, "PNG")
    picture = png.getvalue()
    files = {".face.jpg": picture, "sub/.hid/f.png": picture, "x.heic": b"\x00\x00\x00\x18ftypheic",
             "bundle.zip": b"PK\x03\x04\x14\x00", "photo_notes.TXT": picture, "page.md": b"<html><img src=x>",
             "notes.txt": b"my notes", "query/readme.md": "Übersicht".encode(), "README": b"plain text, no suffix"}
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (tmp_path / "mine").mkdir()
    os.symlink(tmp_path / "mine", out / "linked")
    stray = [".face.jpg", "bundle.zip", "linked", "page.md", "photo_notes.TXT", "sub/.hid/f.png", "x.heic"]
    assert stray_media(out) == stray  # by content, not by name: a picture named .TXT counts, plain text never
    with (pytest.raises(OutputError, match=r"\.face\.jpg \(and 6 more\): not written by opreid-bench"),
          output_folder(out, "mask", kind="masked", swap=True)):
        pass
    for rel in stray:
        if rel != "linked":
            (out / rel).unlink()
    os.unlink(out / "linked")
    with output_folder(out, "mask", kind="masked", swap=True) as new:  # text only: carried over, never lost
        (new / "a.jpg").write_bytes(b"crop")
    assert (out / "notes.txt").is_file() and (out / "query" / "readme.md").is_file() and (out / "README").is_file()
    killed = tmp_path / "killed"
    killed.mkdir()
    write_marker(killed, command="mask", kind="masked", fingerprint="", complete=False)
    (killed / "face.jpg").write_bytes(picture)
    assert stray_media(killed) == ["face.jpg"]


def test_a_symlinked_folder_in_an_output_survives_a_rebuild(tmp_path: Path) -> None:
    import os

    from opreid_bench.outputs import output_folder

    out = tmp_path / "clever"
    with output_folder(out, "synth-clever-hans", kind="clever_hans", swap=True) as new:
        (new / "a.txt").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    os.symlink(tmp_path / "mine", out / "linked")
    with output_folder(out, "synth-clever-hans", kind="clever_hans", swap=True) as new:
        (new / "a.txt").write_text("y")
    assert os.path.islink(out / "linked") and (out / "linked" / "keep.txt").read_text() == "mine"


def test_the_written_crop_is_judged_with_the_pose_the_masking_used(tmp_path: Path, monkeypatch) -> None:
    """An upside-down pose counts as no person found (mask.effective_pose) in the masking, so the check of the
    written crop must not take a detection on the chest for a face above that pose's "shoulders"."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from split_helpers import STANDING

    import opreid_bench.splits.all_faces as all_faces
    from opreid_bench.splits.keypoints import Keypoints

    src = tmp_path / "a.png"
    _crop().save(src)
    flipped = Keypoints(np.column_stack([STANDING[:, 0], 127 - STANDING[:, 1]]), np.full(17, 0.95, np.float32),
                        image_size=(64, 128))
    chest = (24, 60, 40, 76)
    monkeypatch.setattr(all_faces, "detect_faces_mediapipe_scored",
                        lambda image, min_confidence=0.5: [(chest, 0.4)] if min_confidence < 0.5 else [])
    monkeypatch.setattr(all_faces, "mtcnn_weights_dir", lambda: None)
    _, _, method, masks = encode_crop(str(src), flipped, "blur")
    assert masks.startswith("prior@") and "24,60,40,76" not in masks, masks


def test_sample_with_mask_outside_body_writes_and_says_so(tmp_path: Path, monkeypatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from opreid_bench.outputs import read_marker

    pytest.importorskip("mediapipe")
    monkeypatch.chdir(tmp_path)
    for args in (["synth", "--out", "pool", "--ids", "40", "--size", "32", "64", "--seed", "0"],
                 ["annotate", "--pool", "pool/manifest.csv", "--pose", "precomputed:pool/keypoints.csv", "--out", "ann"],
                 ["classify", "--keypoints", "ann", "--out", "labels.csv"],
                 ["sample", "--labels", "labels.csv", "--pool", "pool/manifest.csv", "--protocol", "opreid-tiny",
                  "--out", "split", "--seed", "0", "--keypoints", "ann", "--mask-outside-body"]):
        code, _, err = _cli(args, capsys)
        assert code == 0, (args, err[-2000:])
    masks = pd.read_csv(tmp_path / "split" / "face_masks.csv")["masks"].fillna("")
    assert masks.str.contains("outside@").all()
    assert read_marker(tmp_path / "split")["options"]["mask"] == "blur+outside"
    card = (tmp_path / "split" / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "(`--mask-outside-body`, kind `outside`)" in card and "outside " in card
    code, _, err = _cli(["sample", "--labels", "labels.csv", "--pool", "pool/manifest.csv", "--protocol", "opreid-tiny",
                         "--out", "split_main", "--seed", "0", "--keypoints", "ann", "--main-face-only"], capsys)
    assert code == 0, err[-2000:]
    assert read_marker(tmp_path / "split_main")["options"]["mask"] == "blur+main"
    from opreid_bench.data.datasets import get_dataset

    assert get_dataset("pool", "pool/manifest.csv").verify().root == "pool/manifest.csv"  # named as given


def test_a_reviewed_mask_left_partly_open_is_masked_again(tmp_path: Path) -> None:
    """Every pixel the reviewer saw covered stays covered: 90% under the new masks is not enough."""
    from opreid_bench.splits.writer import parse_masks

    src = tmp_path / "a.png"
    _crop().save(src)
    _, _, method, masks = encode_crop(str(src), None, "fill+main", hand=[(10, 43, 50, 76)], reviewed=[(10, 40, 50, 76)])
    assert ("reviewed", (10, 40, 50, 76)) in parse_masks(masks) and method.endswith("+reviewed")
    _, _, _, masks = encode_crop(str(src), None, "fill+main", hand=[(10, 40, 50, 76)], reviewed=[(10, 40, 50, 76)])
    assert "reviewed" not in masks  # wholly covered already: not masked twice


def test_what_may_show_a_face_is_judged_by_content(tmp_path: Path) -> None:
    import os

    from opreid_bench.outputs import may_show_a_face

    png = io.BytesIO()
    _crop().save(png, "PNG")
    cases = {"notes.txt": (b"my notes\n", False), "utf8.md": ("Übersicht\n".encode(), False),
             "ppm.txt": (b"P3\n2 1\n255\n255 0 0 0 255 0\n", True), "x.xpm": (b"/* XPM */\nstatic char *x[] = {};\n", True),
             "eps.txt": (b"%!PS-Adobe-3.0 EPSF-3.0\n", True), "svg.txt": (b"x" * 9000 + b"<svg></svg>", True),
             ".DS_Store": (png.getvalue(), True), "big.txt": (b"a" * (1024 * 1024 + 1), True),
             "latin1.txt": ("caf\xe9".encode("latin-1"), True)}
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert may_show_a_face(tmp_path / name) is expected, name
    real = tmp_path / "real" / ".DS_Store"
    real.parent.mkdir()
    real.write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    assert may_show_a_face(real) is False
    os.mkfifo(tmp_path / "pipe")
    assert may_show_a_face(tmp_path / "pipe") is True  # judged without opening it (a FIFO would block)


def test_the_review_sheet_download_keeps_the_crops_it_does_not_show(tmp_path: Path) -> None:
    """With --review-limit the sheet shows some crops; its download still holds every crop's earlier hand boxes and
    the reviewed masking's masks, so masking again with it takes nothing away."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from browser_helpers import chromium_or_skip, download_from_page

    chromium_or_skip()
    import pandas as pd

    from opreid_bench.splits.face_boxes import read_face_box_file
    from opreid_bench.splits.face_review import write_face_review_html

    (tmp_path / "m").mkdir()
    sources = []
    for name in ("a", "b"):
        src = tmp_path / "pool" / f"{name}.png"
        src.parent.mkdir(exist_ok=True)
        _crop().save(src)
        _crop().save(tmp_path / "m" / f"{name}.jpg")
        sources.append(str(src))
    table = pd.DataFrame({"source_path": sources, "path": ["a.jpg", "b.jpg"],
                          "masks": ["keypoints@4,0,28,14;hand@20,0,30,8", "prior@0,0,30,20;hand@1,30,11,40"]})
    sheet = write_face_review_html(table, tmp_path / "m", tmp_path / "faces.html", limit=1, progress=False)
    assert sheet.read_text().count("<figure") == 1
    text, _ = download_from_page(sheet, "", "downloadBoxes", tmp_path)
    (tmp_path / "dl.csv").write_text(text, encoding="utf-8")
    hand, reviewed = read_face_box_file(tmp_path / "dl.csv", sources)
    assert hand == {sources[0]: [(20, 0, 30, 8)], sources[1]: [(1, 30, 11, 40)]}
    assert reviewed == {sources[0]: [(4, 0, 28, 14)], sources[1]: [(0, 0, 30, 20)]}
