"""Write a sampled split as a Market-1501-style folder any ReID toolkit can read, with faces masked.

Layout of the output folder::

    bounding_box_train/  query/  bounding_box_test/   the crops, JPEG (quality 95, no EXIF), faces masked
    manifest.csv      path,source_path,pid,camid,split,occluded,missing_keypoints,longest_missing_run,face_masked
    pid_map.csv       pid,source_pid          (output identity -> identity in the pool)
    camera_map.csv    camid,source_camid      (output camera -> camera in the pool)
    face_masks.csv    path,masks              (each mask as kind@left,top,right,bottom, ';'-joined; what
                                               ``mask --verify`` skips: a face under a mask is not a face left)

File names follow Market-1501: ``{pid:04d}_c{camid}s1_{index:06d}_00.jpg``. ``pid`` is the identity relabelled to
1..N in ascending order of the pool's identity (train and test identities are disjoint, so one numbering serves all
splits); ``camid`` is the pool's camera relabelled to 1..C in ascending order; a crop whose camera is unknown
(pool camid < 0) gets camera C+1 in the query and C+2 elsewhere, so that cross-camera evaluation (which drops
same-camera matches) keeps its true matches; ``index`` is the
crop's 1-based row in ``manifest.csv`` (rows sorted by split, pid, source path), unique over the whole folder. In
``manifest.csv`` booleans are ``true``/``false``, ``path`` is relative to the folder and ``pid``/``camid`` are the
numbers in the file name (the loaders' camid is zero-based: file camera - 1).

``write_split`` never deletes a file: commands build a split in a fresh temporary sibling of ``--out`` and swap it in
whole at the end (``opreid_bench.outputs.output_folder(..., swap=True)``), so ``--out`` holds the previous complete
split or the new one, never a mix, and files of the old folder that a command did not write are kept.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from PIL import Image

from opreid_bench.atomic import atomic_write_bytes, atomic_write_text
from opreid_bench.data.decode import load_rgb
from opreid_bench.errors import DataError
from opreid_bench.splits.face_boxes import HAND_KIND, REVIEWED_KIND, clip_to_crop
from opreid_bench.splits.keypoints import Keypoints
from opreid_bench.splits.mask import effective_pose, mask_box, mask_face_detailed, parse_mask_mode

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MANIFEST_COLUMNS = [
    "path",
    "source_path",
    "pid",
    "camid",
    "split",
    "occluded",
    "missing_keypoints",
    "longest_missing_run",
    "face_masked",
    "label_stability",
    "label_source",
]
JPEG_QUALITY = 95


def market_name(pid: int, camid: int, index: int) -> str:
    """Market-1501-style file name of one output crop."""
    return f"{pid:04d}_c{camid}s1_{index:06d}_00.jpg"


def format_masks(kinds: list[str], boxes: list[tuple[int, int, int, int]]) -> str:
    """The masks of one crop as text: ``kind@left,top,right,bottom`` per mask, ';'-joined."""
    return ";".join(f"{k}@{b[0]},{b[1]},{b[2]},{b[3]}" for k, b in zip(kinds, boxes, strict=True))


def parse_masks(text: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Inverse of :func:`format_masks` (an empty text: no mask)."""
    out = []
    for item in str(text or "").split(";"):
        if not item:
            continue
        kind, _, box = item.partition("@")
        left, top, right, bottom = (int(v) for v in box.split(","))
        out.append((kind, (left, top, right, bottom)))
    return out


def encode_crop(source: str, kp: Keypoints | None, mask: str | None,
                hand: Iterable[tuple[int, int, int, int]] = (),
                reviewed: Iterable[tuple[int, int, int, int]] = ()) -> tuple[bytes, bool, str, str]:
    """Read one crop, mask its faces (``mask`` None = leave as is), the faces boxed by hand (``hand``, kind
    ``hand``: :mod:`opreid_bench.splits.face_boxes`) and every mask of the reviewed masking (``reviewed``) that
    these masks do not cover (kind ``reviewed``), and return (JPEG bytes, face masked, method, the masks as
    :func:`format_masks` text)."""
    img = load_rgb(source)  # upright and 8-bit, as the pose stage saw it; a DataError naming the file otherwise
    masked, method, kinds = False, "none", ""
    hand, reviewed = list(hand), list(reviewed)
    if mask is None:
        if hand or reviewed:
            raise DataError(f"{source}: faces boxed by hand cannot go unmasked (mask None); choose a mask mode")
        return _jpeg(img), masked, method, kinds
    res = mask_face_detailed(img, kp, mask)
    img, boxes, box_kinds, method = res.image, list(res.boxes), list(res.kinds), res.method
    style, every_face = parse_mask_mode(mask)
    hand = [clip_to_crop(b, img.size, source) for b in hand]
    for box in hand:
        img = mask_box(img, box, style)
        boxes.append(box)
        box_kinds.append(HAND_KIND)
    if hand:
        method = HAND_KIND if method == "none" else f"{method}+{HAND_KIND}"
    from opreid_bench.splits.all_faces import covered_share, find_faces

    # every pixel the reviewer saw covered stays covered: a box the new masks leave even partly open is masked again
    uncovered = [b for b in (clip_to_crop(b, img.size, source) for b in reviewed) if covered_share(b, boxes) < 1.0]
    for box in uncovered:  # the reviewer signed off on these being masked: never show less
        img = mask_box(img, box, style)
        boxes.append(box)
        box_kinds.append(REVIEWED_KIND)
    if uncovered:
        method = REVIEWED_KIND if method == "none" else f"{method}+{REVIEWED_KIND}"
    data = _jpeg(img)
    if every_face:  # the closing verification again, on the crop as it is written
        judged = effective_pose(kp, img.size)
        for round_ in range(WRITTEN_VERIFY_ROUNDS + 1):
            with Image.open(io.BytesIO(data)) as written:
                late = find_faces(written.convert("RGB"), judged, masked=boxes, verify=True)
            if not late:
                break
            if round_ == WRITTEN_VERIFY_ROUNDS:  # fail closed: never write a crop its own verification flags
                raise DataError(f"{source}: a plausible face is still found after masking it {WRITTEN_VERIFY_ROUNDS} "
                                f"times (at {late[0][0]}); box it by hand with --face-boxes or leave the crop out")
            # the last round fills: a flat box cannot turn back into a face when the JPEG is encoded again
            last = round_ == WRITTEN_VERIFY_ROUNDS - 1
            for box, kind in late:
                img = mask_box(img, box, "fill" if last else style)
                boxes.append(box)
                box_kinds.append(kind)
            method = "verify" if method == "none" else (method if method.endswith("+verify") else f"{method}+verify")
            data = _jpeg(img)
    return data, bool(boxes), method if boxes else "none", format_masks(box_kinds, boxes)


# JPEG changes a blurred region enough that a detector can see a face in the written crop that it did not see in the
# masked image: ``mask --verify`` reads the written files, so the writer verifies its own output the same way.
WRITTEN_VERIFY_ROUNDS = 2


def _jpeg(img: Image.Image) -> bytes:
    """The crop's pixels as JPEG and nothing else: a comment, text chunk or EXIF thumbnail of the source could hold
    the unmasked face, so the image is rebuilt from its pixels before it is saved."""
    pixels = Image.frombytes("RGB", img.size, img.convert("RGB").tobytes())
    buf = io.BytesIO()
    pixels.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _write_one(job: tuple) -> tuple[bool, str, str]:  # type: ignore[type-arg]
    """One (source, dest, keypoints, mask[, durable[, hand boxes[, reviewed masks]]]) job."""
    source, dest, kp, mask = job[:4]
    durable = bool(job[4]) if len(job) > 4 else True
    hand = job[5] if len(job) > 5 else ()
    reviewed = job[6] if len(job) > 6 else ()
    data, masked, method, kinds = encode_crop(source, kp, mask, hand, reviewed)
    p = Path(dest)
    if not (p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data):
        atomic_write_bytes(p, data, durable=durable)
    return masked, method, kinds


def write_images(
    jobs: list[tuple],  # type: ignore[type-arg]
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
    durable: bool = True,
) -> list[tuple[bool, str, str]]:
    """Encode and write every (source, dest, keypoints, mask[, durable[, hand boxes[, reviewed masks]]]) job; results
    (face masked, method, mask kinds) in job order.

    ``durable=False`` skips the per-file fsync (for a temporary folder that is synced as a whole before its swap).
    """
    if not durable:
        jobs = [(*job[:4], False, *job[5:]) for job in jobs]  # type: ignore[misc]
    from opreid_bench.processes import map_in_order

    return map_in_order(_write_one, jobs, workers=workers, min_chunk=16, on_done=on_done)


def _bool_text(values: Iterable[bool]) -> list[str]:
    return ["true" if bool(v) else "false" for v in values]


def assign_names(split: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Output pid, camid and relative path of every row; returns (rows, pid map, camera map)."""
    df = split.reset_index(drop=True).copy()
    pids = sorted(df["pid"].unique().tolist())
    pid_map = {p: i + 1 for i, p in enumerate(pids)}
    cams = sorted(c for c in df["camid"].unique().tolist() if c >= 0)
    cam_map = {c: i + 1 for i, c in enumerate(cams)}
    unknown_query, unknown_other = len(cams) + 1, len(cams) + 2
    df["source_pid"], df["source_camid"] = df["pid"], df["camid"]
    df["pid"] = df["source_pid"].map(pid_map).astype(int)
    df["camid"] = [
        cam_map[c] if c >= 0 else (unknown_query if s == "query" else unknown_other)
        for c, s in zip(df["source_camid"], df["split"])
    ]
    df["path"] = [
        f"{SPLIT_DIRS[s]}/{market_name(p, c, i + 1)}"
        for i, (s, p, c) in enumerate(zip(df["split"], df["pid"], df["camid"]))
    ]
    pid_df = pd.DataFrame({"pid": list(pid_map.values()), "source_pid": list(pid_map.keys())})
    cam_rows = [(cam_map[c], c) for c in cams]
    if (df["source_camid"] < 0).any():
        cam_rows += [(unknown_query, -1), (unknown_other, -1)]
    cam_df = pd.DataFrame(cam_rows, columns=["camid", "source_camid"])
    return df, pid_df, cam_df


def write_split(
    split: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    keypoints: dict[str, Keypoints] | None = None,
    mask: str | None = "blur",
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
    durable: bool = True,
    face_boxes: dict[str, list[tuple[int, int, int, int]]] | None = None,
    reviewed_masks: dict[str, list[tuple[int, int, int, int]]] | None = None,
) -> pd.DataFrame:
    """Write the crops of ``split`` (from :func:`sample_split`) and ``manifest.csv``; returns the manifest rows.
    ``face_boxes`` (source path -> boxes drawn by hand) are masked too, as kind ``hand``, and so is every mask of the
    reviewed masking (``reviewed_masks``) that the masks here do not cover, as kind ``reviewed``.

    Writes into ``out_dir`` and deletes nothing; give it a fresh folder (see the module docstring).

    The returned frame has the manifest columns plus ``mask_method`` (keypoints/haar/prior/none, ``+faces`` when
    other faces were masked, ``+hand`` when faces boxed by hand were, ``+verify`` when the closing verification masked
    more), ``masks`` (each mask's kind and box,
    :func:`format_masks`; the kinds: ``opreid_bench.splits.all_faces``), ``role``,
    ``source_pid`` and ``source_camid`` for the data card.
    """
    out = Path(out_dir)
    df, pid_df, cam_df = assign_names(split)
    for sub in SPLIT_DIRS.values():
        (out / sub).mkdir(parents=True, exist_ok=True)
    kps = keypoints or {}
    boxes, seen = face_boxes or {}, reviewed_masks or {}
    jobs = [(src, str(out / rel), kps.get(src), mask, durable, tuple(boxes.get(src, ())), tuple(seen.get(src, ())))
            for src, rel in zip(df["source_path"], df["path"])]
    results = write_images(jobs, workers=workers, on_done=on_done, durable=durable)
    df["face_masked"] = [m for m, _, _ in results]
    df["mask_method"] = [how for _, how, _ in results]
    df["masks"] = [kinds for _, _, kinds in results]
    for col, default in (("missing_keypoints", ""), ("longest_missing_run", 0)):
        if col not in df.columns:
            df[col] = default
    for col in ("label_stability", "label_source"):  # empty: the labels file did not say (classify writes both)
        if col not in df.columns:
            df[col] = ""
    df["missing_keypoints"] = df["missing_keypoints"].fillna("").astype(str)
    df["longest_missing_run"] = df["longest_missing_run"].fillna(0).astype(int)
    manifest = df[MANIFEST_COLUMNS].copy()
    manifest["occluded"] = _bool_text(manifest["occluded"])
    manifest["face_masked"] = _bool_text(manifest["face_masked"])
    face_masks = df[["path", "masks"]].sort_values("path", kind="stable")
    for name, frame in (("pid_map.csv", pid_df), ("camera_map.csv", cam_df), ("face_masks.csv", face_masks),
                        ("manifest.csv", manifest)):
        atomic_write_text(out / name, frame.to_csv(index=False, lineterminator="\n"), durable=durable)
    return df
