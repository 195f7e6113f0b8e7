"""Faces boxed by hand (``--face-boxes``): the remedy for a face that every detector missed.

No detector finds every face in crowded, low-resolution crops: bystanders' heads cut by the crop's border are what the
default masking leaves visible most often (docs/concepts/occlusion-rule.md). A split that shows a face cannot be
published, so a reviewer who sees one on the face review sheet (``mask --review-faces``) boxes it there, downloads the
boxes, and passes the file to ``mask``, ``sample`` or ``build-split``. Each box is masked like a detected face, recorded
with the kind ``hand`` (``masks.csv``, ``face_masks.csv``, the data card), counts as masked for the closing
verification and ``mask --verify``, and the file's content enters the output's fingerprint.

The file is a CSV with the columns ``source_path,left,top,right,bottom``: the crop as the pool lists it (a relative
path is taken from the current folder, as the pool's own relative paths are) and a box in its pixels (right and bottom
exclusive; fractional values are widened to whole pixels). A crop may have several rows. An optional ``kind`` column
tells a box drawn by hand (``hand``, the default) from a mask the reviewed masking had placed (its kind, e.g.
``keypoints``): the sheet downloads both, since the reviewer boxed only what that masking left visible. A later
masking with other settings (other keypoints, another mask mode, MTCNN missing) may place its masks elsewhere; any
reviewed mask it does not cover is masked as well, as kind ``reviewed``, so a split never shows less than what was
reviewed. Other columns are ignored. The face review sheet starts from the boxes
already masked as ``hand`` in the folder it shows, so the file it downloads holds every round's boxes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from opreid_bench.data.decode import decode_errors, upright_size
from opreid_bench.errors import DataError

Box = tuple[int, int, int, int]
HAND_KIND = "hand"
REVIEWED_KIND = "reviewed"  # a mask of the reviewed masking that the new masking did not cover
# Every kind a mask is recorded with (masks.csv, face_masks.csv): the main face's (keypoints, haar, prior), the other
# faces' (all_faces.FACE_KINDS), mask.OUTSIDE_KIND, and these two; a test keeps the list complete.
MASK_KINDS = ("keypoints", "haar", "prior", "blazeface", "person", "mtcnn", "yunet", "verify", "outside", HAND_KIND,
              REVIEWED_KIND)
COLUMNS = ("source_path", "left", "top", "right", "bottom")


def read_face_boxes(path: str | os.PathLike[str], pool_paths: Iterable[str]) -> dict[str, list[Box]]:
    """Pool path -> its hand-drawn face boxes, from the CSV at ``path``; a one-line DataError naming the file and row
    for an unreadable file, a missing column, a box that is not four integers with left < right and top < bottom, or a
    crop the pool does not hold (paths are compared as absolute paths, so ``./a.jpg`` and ``a.jpg`` are one crop).
    Rows of the reviewed masking (a ``kind`` other than ``hand``: :func:`read_reviewed_masks`) are not among them."""
    return read_face_box_file(path, pool_paths)[0]


def read_reviewed_masks(path: str | os.PathLike[str], pool_paths: Iterable[str]) -> dict[str, list[Box]]:
    """Pool path -> the masks the reviewed masking had placed (rows whose ``kind`` is not ``hand``; the sheet of
    ``mask --review-faces`` downloads them with the hand boxes). Why: the reviewer boxed only what that masking left
    visible, so a split masked with other settings must cover at least these too (kind :data:`REVIEWED_KIND`)."""
    return read_face_box_file(path, pool_paths)[1]


def read_face_box_file(path: str | os.PathLike[str], pool_paths: Iterable[str]
                       ) -> tuple[dict[str, list[Box]], dict[str, list[Box]]]:
    """(hand boxes, reviewed masks) of the CSV at ``path``, keyed by pool path (:func:`read_face_boxes`)."""
    import csv

    path = Path(path)
    by_abs = {os.path.abspath(p): p for p in pool_paths}
    out: dict[str, list[Box]] = {}
    reviewed: dict[str, list[Box]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: face boxes need the columns {','.join(COLUMNS)}; missing {', '.join(missing)}")
            for row_no, row in enumerate(reader, start=2):
                source = (row["source_path"] or "").strip()
                try:
                    left_f, top_f, right_f, bottom_f = (float(row[c]) for c in COLUMNS[1:])
                    if not all(math.isfinite(v) for v in (left_f, top_f, right_f, bottom_f)):
                        raise ValueError
                except (TypeError, ValueError, OverflowError):
                    raise DataError(f"{path}: row {row_no}: left, top, right, bottom must be finite numbers") from None
                given = ",".join(str(row[c]).strip() for c in COLUMNS[1:])
                # a drawn box may start a fraction of a pixel outside the crop; a whole pixel out is another crop's
                if left_f <= -1 or top_f <= -1 or right_f <= left_f or bottom_f <= top_f:
                    raise DataError(f"{path}: row {row_no}: box {given} is empty or negative (need 0 <= left < right "
                                    "and 0 <= top < bottom)")
                # widened to whole pixels (floor the left and top, ceil the right and bottom): never smaller
                left, top = max(0, math.floor(left_f)), max(0, math.floor(top_f))
                right, bottom = math.ceil(right_f), math.ceil(bottom_f)
                pool_path = by_abs.get(os.path.abspath(source))
                if pool_path is None:
                    raise DataError(f"{path}: row {row_no}: {source} is not a crop of the pool")
                kind = (row.get("kind") or HAND_KIND).strip().lower() or HAND_KIND
                if kind not in MASK_KINDS:
                    raise DataError(f"{path}: row {row_no}: kind {row.get('kind')!r} is none of "
                                    f"{', '.join(MASK_KINDS)} (hand: a box drawn by hand; the others: masks of the "
                                    "reviewed masking)")
                target = out if kind == HAND_KIND else reviewed
                target.setdefault(pool_path, []).append((left, top, right, bottom))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the face boxes ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the face boxes are not a UTF-8 CSV") from None
    _check_inside(out, path)
    _check_inside(reviewed, path)
    return out, reviewed


def _check_inside(boxes: dict[str, list[Box]], path: Path) -> None:
    """Every box overlaps its crop (read from the image's header), so that a wrong box stops a command before it
    writes anything."""
    from PIL import Image

    for source, found in boxes.items():
        try:
            with Image.open(source) as im:
                size = upright_size(im)  # boxes are drawn on the crop as a viewer shows it
        except decode_errors() as exc:
            raise DataError(f"{path}: {source}: cannot read the crop ({exc})") from None
        for box in found:
            try:
                clip_to_crop(box, size, source)
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from None


def clip_to_crop(box: Box, size: tuple[int, int], source: str) -> Box:
    """``box`` clipped to a crop of ``size`` (width, height); a DataError naming the crop when nothing of it is
    inside (most likely the box of another crop)."""
    w, h = size
    left, top, right, bottom = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if right <= left or bottom <= top:
        raise DataError(f"{source}: the face box {box[0]},{box[1]},{box[2]},{box[3]} lies outside the {w}x{h} crop")
    return left, top, right, bottom
