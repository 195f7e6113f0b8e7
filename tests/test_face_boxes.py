"""Faces boxed by hand (``--face-boxes``) and the face review sheet (``mask --review-faces``): the remedy for a face
every detector missed, its file's errors, its place in the fingerprint, and the sheet's order and box drawing."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import chromium_or_skip, download_from_page
from PIL import Image

from opreid_bench.cli import main
from opreid_bench.errors import DataError
from opreid_bench.splits.face_boxes import read_face_box_file, read_face_boxes, read_reviewed_masks
from opreid_bench.splits.face_review import face_review_order
from opreid_bench.splits.writer import encode_crop, parse_masks


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _crop(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(path)
    return path


def _boxes(path: Path, rows: list[str]) -> Path:
    path.write_text("source_path,left,top,right,bottom\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_file_is_read_and_every_fault_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    a, b = _crop(tmp_path / "pool" / "a.png"), _crop(tmp_path / "pool" / "b.png", 1)
    monkeypatch.chdir(tmp_path)
    ok = _boxes(tmp_path / "ok.csv", ["pool/a.png,1,2,10,12", f"{a},0.6,0.4,4.4,5", f"{b},20,50,40,70",
                                      f"{b},-0.4,4,10,9"])
    got = read_face_boxes(ok, [str(a), str(b)])
    # relative = absolute path; fractional boxes widen to whole pixels, never shrink (nor start before the crop)
    assert got == {str(a): [(1, 2, 10, 12), (0, 0, 5, 5)], str(b): [(20, 50, 40, 70), (0, 4, 10, 9)]}
    cases = {
        "source_path,left,top\n": "missing right, bottom",
        "source_path,left,top,right,bottom\npool/a.png,1,2,x,12\n": "row 2: left, top, right, bottom must be finite",
        "source_path,left,top,right,bottom\npool/a.png,1,2,1e400,12\n": "row 2: left, top, right, bottom must be finite",
        "source_path,left,top,right,bottom\npool/a.png,10,2,10,12\n": "row 2: box 10,2,10,12 is empty",
        "source_path,left,top,right,bottom\npool/a.png,3.2,4,3.2,9\n": "row 2: box 3.2,4,3.2,9 is empty",
        "source_path,left,top,right,bottom\npool/a.png,-1,4,10,9\n": "row 2: box -1,4,10,9 is empty or negative",
        "source_path,left,top,right,bottom\npool/c.png,1,2,10,12\n": "row 2: pool/c.png is not a crop of the pool",
        "source_path,left,top,right,bottom\npool/a.png,40,2,50,12\n": "the face box 40,2,50,12 lies outside the 32x64",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=str(bad)) as exc:
            read_face_boxes(bad, [str(a), str(b)])
        assert message in str(exc.value), (text, str(exc.value))
    with pytest.raises(DataError, match="cannot read the face boxes"):
        read_face_boxes(tmp_path / "nowhere.csv", [str(a)])


def test_a_hand_box_is_masked_and_recorded_as_hand(tmp_path: Path) -> None:
    src = _crop(tmp_path / "a.png")
    plain, _, _, _ = encode_crop(str(src), None, "fill")
    data, masked, method, masks = encode_crop(str(src), None, "fill", [(2, 40, 14, 60)])
    assert masked and method.endswith("+hand")
    assert ("hand", (2, 40, 14, 60)) in parse_masks(masks)
    import io

    before = np.asarray(Image.open(io.BytesIO(plain)).convert("RGB"), dtype=float)
    after = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)
    assert np.abs(after[42:58, 4:12] - before[42:58, 4:12]).mean() > 30  # the boxed pixels are filled
    assert np.abs(after[0:30, 20:32] - before[0:30, 20:32]).mean() < 8  # the rest is as it was (JPEG aside)


def test_mask_takes_the_boxes_and_writes_the_review_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        _crop(tmp_path / "pool" / f"{100 + i}_c1.png", i)
    pattern = r"(?P<pid>\d+)_c(?P<camid>\d+)"
    pool = ["--pool", str(tmp_path / "pool"), "--pool-format", "folder", "--pattern", pattern]
    target = tmp_path / "pool" / "101_c1.png"
    boxes = _boxes(tmp_path / "face_boxes.csv", [f"{target},3,30,20,50"])
    code, out, err = _cli(["mask", *pool, "--out", str(tmp_path / "m"), "--face-boxes", str(boxes),
                           "--review-faces", str(tmp_path / "faces.html"), "--json"], capsys)
    assert code == 0, err
    with (tmp_path / "m" / "masks.csv").open(newline="") as fh:
        rows = {Path(r["source_path"]).name: r for r in csv.DictReader(fh)}
    assert "hand@3,30,20,50" in rows["101_c1.png"]["masks"] and "hand" not in rows["100_c1.png"]["masks"]
    page = (tmp_path / "faces.html").read_text(encoding="utf-8")
    assert page.count("<figure data-path=") == 3 and "downloadBoxes" in page
    assert 'src="m/101_c1.jpg"' in page and "base64" not in page  # links the masked crops, copies none
    assert json.loads(out)["review_faces"] == str(tmp_path / "faces.html")
    code, _, err = _cli(["mask", "--verify", "--out", str(tmp_path / "m"), "--face-boxes", str(boxes)], capsys)
    assert code == 2 and "need --pool" in err and "Traceback" not in err
    before = boxes.read_bytes()
    for sheet, message in ((boxes, "is the face boxes file"), (tmp_path / "m" / "faces.html", "lies inside --out")):
        code, _, err = _cli(["mask", *pool, "--out", str(tmp_path / "m"), "--face-boxes", str(boxes),
                             "--review-faces", str(sheet)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert boxes.read_bytes() == before
    code, _, err = _cli(["mask", *pool, "--out", str(tmp_path / "m"), "--review-limit", "5"], capsys)
    assert code == 2 and "give --review-faces too" in err


def test_the_review_order_puts_the_likeliest_face_first() -> None:
    # risk first, then the crowd (other people's faces masked), then the path
    order = face_review_order([0.0, 0.9, 0.0, 0.3, 0.0], [0, 0, 2, 5, 0], ["e", "d", "c", "b", "a"])
    assert order == [1, 3, 2, 4, 0]


def test_face_boxes_enter_the_split_and_its_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from split_helpers import image_pool, tiny_protocol_yaml

    manifest, keypoints = image_pool(tmp_path / "pool")
    protocol = tiny_protocol_yaml(tmp_path / "tiny.yaml")
    assert _cli(["annotate", "--pool", str(manifest), "--out", str(tmp_path / "ann"), "--pose",
                 f"precomputed:{keypoints}"], capsys)[0] == 0
    labels = tmp_path / "labels.csv"
    assert _cli(["classify", "--keypoints", str(tmp_path / "ann"), "--out", str(labels), "--min-missing-run", "2"],
                capsys)[0] == 0
    files = sorted((tmp_path / "pool" / "images").iterdir())
    boxes = tmp_path / "fb.csv"  # a hand box per crop, and a mask the reviewed masking had placed (kind keypoints)
    boxes.write_text("source_path,left,top,right,bottom,kind\n" + "".join(
        f"{f},0,90,20,110,hand\n{f},40,100,50,110,keypoints\n" for f in files), encoding="utf-8")
    base = ["sample", "--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol), "--seed", "0",
            "--keypoints", str(tmp_path / "ann"), "--mask"]
    code, _, err = _cli([*base, "fill", "--out", str(tmp_path / "plain")], capsys)
    assert code == 0, err
    code, _, err = _cli([*base, "fill", "--out", str(tmp_path / "boxed"), "--face-boxes", str(boxes)], capsys)
    assert code == 0, err
    marker = {name: json.loads((tmp_path / name / ".opreid-output.json").read_text()) for name in ("plain", "boxed")}
    assert marker["plain"]["fingerprint"] != marker["boxed"]["fingerprint"]
    assert "hand@0,90,20,110" in (tmp_path / "boxed" / "face_masks.csv").read_text()
    assert "reviewed@40,100,50,110" in (tmp_path / "boxed" / "face_masks.csv").read_text()  # not covered otherwise
    assert "hand@" not in (tmp_path / "plain" / "face_masks.csv").read_text()
    card = (tmp_path / "boxed" / "DATA_CARD.md").read_text()
    assert "hand " in card  # "Masks by kind: ..., hand N, ..."
    assert "mask --review-faces" in card and "16 of 70" in card  # the residual risk, and what to do about it
    code, _, err = _cli([*base, "none", "--out", str(tmp_path / "none"), "--face-boxes", str(boxes)], capsys)
    assert code == 2 and "--mask none" in err and not (tmp_path / "none").exists()
    from opreid_bench.outputs import content_digest

    code, _, err = _cli(["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}", "--protocol",
                         str(protocol), "--seed", "0", "--mask", "fill", "--min-missing-run", "2", "--out",
                         str(tmp_path / "built"), "--face-boxes", str(boxes)], capsys)
    assert code == 0, err
    built = json.loads((tmp_path / "built" / ".opreid-output.json").read_text())
    assert built["options"]["face_boxes"] == content_digest(boxes)
    assert "hand@0,90,20,110" in (tmp_path / "built" / "face_masks.csv").read_text()
    assert "reviewed@40,100,50,110" in (tmp_path / "built" / "face_masks.csv").read_text()
    code, _, err = _cli(["mask", "--pool", str(manifest), "--keypoints", str(tmp_path / "ann"), "--out",
                         str(tmp_path / "masked"), "--face-boxes", str(boxes)], capsys)
    assert code == 0, err
    assert "reviewed@40,100,50,110" in (tmp_path / "masked" / "masks.csv").read_text()


def test_boxes_drawn_on_the_sheet_download_in_crop_pixels(tmp_path: Path) -> None:
    """The sheet's own script, run in headless Chromium: a drag over the enlarged crop becomes a box in the crop's
    pixels, keyed by the pool path, in the CSV that --face-boxes reads."""
    chromium_or_skip()
    import pandas as pd

    from opreid_bench.splits.face_review import write_face_review_html

    src = _crop(tmp_path / "pool" / "a.png")
    (tmp_path / "m").mkdir()
    Image.open(src).convert("RGB").save(tmp_path / "m" / "a.jpg")
    table = pd.DataFrame({"source_path": [str(src)], "path": ["a.jpg"],
                          "masks": ["keypoints@4,0,28,14;hand@20,0,30,8"]})
    sheet = write_face_review_html(table, tmp_path / "m", tmp_path / "faces.html", thumb_height=256, progress=False)
    # the crop is 32x64 shown 256 high (scale 4): a drag from (8, 40) to (48, 120) on screen is the box 2,10,12,30
    text, _ = download_from_page(sheet, """
  const fig = document.querySelector("figure[data-path]");
  const r = fig.querySelector(".box-area").getBoundingClientRect();
  fig.querySelector(".box-area").dispatchEvent(new MouseEvent("mousedown", {clientX: r.left + 8, clientY: r.top + 40,
                                                                           bubbles: true}));
  window.dispatchEvent(new MouseEvent("mouseup", {clientX: r.left + 48, clientY: r.top + 120}));""", "downloadBoxes",
                                 tmp_path)
    drawn = tmp_path / "drawn.csv"
    drawn.write_text(text, encoding="utf-8")
    boxes = read_face_boxes(drawn, [str(src)])[str(src)]  # the pool path, and boxes inside the crop
    assert len(boxes) == 2 and boxes[0] == (20, 0, 30, 8), boxes  # an earlier round's box is kept
    assert np.abs(np.array(boxes[1]) - (2, 10, 12, 30)).max() <= 1, boxes  # the drawn one (sub-pixel layout)
    # the reviewed masking's own masks come along, so a split masked otherwise still covers them
    assert read_reviewed_masks(drawn, [str(src)]) == {str(src): [(4, 0, 28, 14)]}


def test_workers_rank_the_sheet_as_one_process_does(shared_data: Path, mtcnn_weights: Path, tmp_path: Path) -> None:
    """PRID 2011 crops, camera B (crowded street): ranked in two processes, every crop gets the size, risk,
    candidate boxes and crowd count that one process gives it, in the same order; an unreadable crop among them is
    a one-line error naming it."""
    from opreid_bench.splits.face_review import rank_crops

    crops = sorted((shared_data / "prid2011").glob("*_b.png"))[:70]
    jobs = [(str(p), None, "") for p in crops]
    one = rank_crops(jobs, workers=1, progress=False)
    two = rank_crops(jobs, workers=2, progress=False)
    assert two == one
    assert sum(risk > 0 for _, risk, _, _ in one) >= 3, "the test needs crops with face candidates"
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        rank_crops([*jobs[:63], (str(bad), None, "")], workers=2, progress=False)


def test_a_reviewed_mask_the_new_masking_does_not_cover_is_masked_too(tmp_path: Path) -> None:
    """The reviewer saw these covered: a split masked with other settings may not show them (kind reviewed); one the
    new masks already cover is not masked twice."""
    src = _crop(tmp_path / "a.png")
    data, masked, method, masks = encode_crop(str(src), None, "fill+main", reviewed=[(0, 40, 12, 60), (8, 0, 24, 8)])
    kinds = parse_masks(masks)
    assert ("reviewed", (0, 40, 12, 60)) in kinds and method.endswith("+reviewed")
    assert ("reviewed", (8, 0, 24, 8)) not in kinds  # under the head prior already
    with pytest.raises(DataError, match="cannot go unmasked"):
        encode_crop(str(src), None, None, reviewed=[(0, 40, 12, 60)])
    rows = ["source_path,left,top,right,bottom,kind", f"{src},1,2,10,12,hand", f"{src},0,40,12,60,keypoints",
            f"{src},3,3,9,9,"]
    both = _boxes(tmp_path / "both.csv", rows[1:])
    both.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert read_face_boxes(both, [str(src)]) == {str(src): [(1, 2, 10, 12), (3, 3, 9, 9)]}  # empty kind: by hand
    assert read_reviewed_masks(both, [str(src)]) == {str(src): [(0, 40, 12, 60)]}
    upper = _boxes(tmp_path / "upper.csv", [])
    upper.write_text(f"source_path,left,top,right,bottom,kind\n{src},1,2,10,12,HAND\n{src},1,2,10,12,Outside\n",
                     encoding="utf-8")
    assert read_face_box_file(upper, [str(src)]) == ({str(src): [(1, 2, 10, 12)]}, {str(src): [(1, 2, 10, 12)]})
    odd = _boxes(tmp_path / "odd.csv", [])
    odd.write_text(f"source_path,left,top,right,bottom,kind\n{src},1,2,10,12,face\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"odd.csv: row 2: kind 'face' is none of keypoints, haar"):
        read_face_boxes(odd, [str(src)])


def test_the_known_mask_kinds_are_every_kind_the_masking_records() -> None:
    from opreid_bench.splits.all_faces import FACE_KINDS
    from opreid_bench.splits.face_boxes import MASK_KINDS
    from opreid_bench.splits.mask import OUTSIDE_KIND

    assert {*FACE_KINDS, OUTSIDE_KIND, "keypoints", "haar", "prior", "hand", "reviewed"} == set(MASK_KINDS)
