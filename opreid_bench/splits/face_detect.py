"""Face detectors for masking and for checking masks, all shipped inside wheels the project already needs.

- OpenCV's frontal-face Haar cascade (:func:`detect_faces`): where the masking locates the main person's face in a
  crop with no pose result, and ``verify --verify-detector haar``. Person crops are small (a face is often 8-20 px wide),
  below the cascade's 24 px window, so the crop is upscaled (``upscale``, default 3x) before detection and the boxes
  are mapped back.
- mediapipe's BlazeFace, full range (:func:`detect_faces_mediapipe`, ``mediapipe.solutions.face_detection``, shipped
  in the mediapipe 0.10.21 wheel, no download). The model sees its input at 192 x 192, where the face
  of a 64-px-wide pedestrian crop would be a few pixels, so it runs on overlapping square windows (side = the crop's
  width, stride half of it) that reach the model at about 3x their size.

Which detections become masks (only where a head is plausible) is decided in :mod:`opreid_bench.splits.all_faces`;
:func:`verify_faces` is the ``mask --verify`` check of a folder.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from opreid_bench.data.decode import decode_errors, upright_rgb
from opreid_bench.errors import OpreidError
from opreid_bench.native_logs import quiet_native_logs

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels, right/bottom exclusive

CASCADE_NAME = "haarcascade_frontalface_default.xml"


def _cv2() -> Any:
    """The ``cv2`` module, or one line saying how to install it (opencv is in the [pose] extra)."""
    try:
        import cv2
    except ImportError:
        raise OpreidError("face detection needs opencv: pip install 'opreid-bench[pose]'") from None
    return cv2


@functools.lru_cache(maxsize=1)
def _cascade() -> Any:
    cv2 = _cv2()
    path = cv2.data.haarcascades + CASCADE_NAME
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise OpreidError(f"{path}: OpenCV could not load the Haar face cascade")
    return clf


def detect_faces(image: Image.Image, *, upscale: float = 3.0, min_neighbors: int = 4) -> list[Box]:
    """Faces the Haar cascade finds in ``image`` as (left, top, right, bottom) boxes in the crop's pixels.

    Deterministic: the cascade has no randomness, and boxes are returned sorted.
    """
    cv2 = _cv2()
    gray = np.asarray(image.convert("L"))
    if upscale != 1.0:
        gray = cv2.resize(gray, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    gray = cv2.equalizeHist(gray)
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(24, 24))
    boxes: list[Box] = []
    w, h = image.size
    for x, y, bw, bh in np.asarray(found).reshape(-1, 4).tolist():
        left, top = int(x / upscale), int(y / upscale)
        right, bottom = min(w, int(np.ceil((x + bw) / upscale))), min(h, int(np.ceil((y + bh) / upscale)))
        if right > left and bottom > top:
            boxes.append((left, top, right, bottom))
    return sorted(boxes)


@functools.lru_cache(maxsize=4)
def _face_model(min_confidence: float) -> Any:
    try:
        import mediapipe as mp
    except ImportError:  # pragma: no cover - mediapipe is in the [pose] extra
        raise OpreidError("the mediapipe face detector needs mediapipe: pip install 'opreid-bench[pose]'") from None
    return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)


def detect_faces_mediapipe(image: Image.Image, *, min_confidence: float = 0.5) -> list[Box]:
    """Faces BlazeFace (full range) finds in ``image`` as (left, top, right, bottom) boxes in the crop's pixels.

    Runs on overlapping square windows down the crop (see the module docstring) and merges boxes that overlap by
    more than half. Deterministic.
    """
    return [box for box, _ in detect_faces_mediapipe_scored(image, min_confidence=min_confidence)]


def detect_faces_mediapipe_scored(image: Image.Image, *, min_confidence: float = 0.5) -> list[tuple[Box, float]]:
    """:func:`detect_faces_mediapipe`'s boxes, each with BlazeFace's score (the highest of the merged windows)."""
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    h, w = rgb.shape[:2]
    side = max(2, min(w, h))
    tops = list(range(0, max(1, h - side + 1), max(1, side // 2)))
    if tops[-1] + side < h:
        tops.append(h - side)
    lefts = list(range(0, max(1, w - side + 1), max(1, side // 2)))
    if lefts[-1] + side < w:
        lefts.append(w - side)
    found: list[tuple[Box, float]] = []
    with quiet_native_logs():  # mediapipe's native log lines stay off the terminal
        model = _face_model(float(min_confidence))
        for top in tops:
            for left in lefts:
                result = model.process(np.ascontiguousarray(rgb[top : top + side, left : left + side]))
                for det in result.detections or []:
                    bb = det.location_data.relative_bounding_box
                    l0 = max(0, int(np.floor(left + bb.xmin * side)))
                    t0 = max(0, int(np.floor(top + bb.ymin * side)))
                    r0 = min(w, int(np.ceil(left + (bb.xmin + bb.width) * side)))
                    b0 = min(h, int(np.ceil(top + (bb.ymin + bb.height) * side)))
                    if r0 > l0 and b0 > t0:
                        found.append(((l0, t0, r0, b0), float(det.score[0])))
    return _merge_scored(sorted(found))


def _merge(boxes: list[Box]) -> list[Box]:
    """Union boxes that overlap by more than half of the smaller one (the same face seen in two windows)."""
    return [box for box, _ in _merge_scored([(b, 0.0) for b in sorted(boxes)])]


def _merge_scored(items: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """:func:`_merge` for scored boxes; a merged box keeps the highest score."""
    out: list[tuple[Box, float]] = []
    for b, score in items:
        for k, (o, o_score) in enumerate(out):
            iw = min(b[2], o[2]) - max(b[0], o[0])
            ih = min(b[3], o[3]) - max(b[1], o[1])
            small = min((b[2] - b[0]) * (b[3] - b[1]), (o[2] - o[0]) * (o[3] - o[1]))
            if iw > 0 and ih > 0 and iw * ih > 0.5 * small:
                out[k] = ((min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3])), max(score, o_score))
                break
        else:
            out.append((b, score))
    return sorted(out)


VERIFY_DETECTORS = ("mediapipe", "haar")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def verify_faces(
    folder: str | Path, *, min_neighbors: int = 8, progress: bool = True, detector: str = "mediapipe"
) -> dict[str, Any]:
    """The ``verify`` step: look for plausible faces left in the crops under ``folder``.

    ``detector``: ``mediapipe`` (the default: the detectors of the masking at its verification settings,
    :func:`opreid_bench.splits.all_faces.find_faces`) or ``haar`` (OpenCV's frontal cascade at the strict
    ``min_neighbors=8``, a detector the masking does not use for bystanders). Either way a detection counts only where
    a head is plausible (:func:`opreid_bench.splits.all_faces.head_gate`), so clothing and bags are not reported. A
    split folder carries its crops' keypoints (``keypoints.h5``, keyed by the manifest's ``source_path``): the gate
    then judges each detection against the main person's head and body exactly as the masking did when it wrote the
    crop. Without keypoints the gate takes the crop's central column below its top quarter as the main body.

    The crops are those listed in the ``path`` column of ``folder/manifest.csv`` (a built split) or
    ``folder/masks.csv`` (the ``mask`` command's output); without either, every image under ``folder`` (hidden
    folders skipped). A face at least :data:`opreid_bench.splits.all_faces.COVERED` under a mask recorded in
    ``folder/face_masks.csv`` (a split) or the ``masks`` column of ``masks.csv`` is not a face left: a blurred face
    can still look like one to a detector. One less covered is: half a face shows eyes.

    Returns ``{"checked": N, "detector": name, "faces": [{"path": relative path, "boxes": [[l, t, r, b], ...]}, ...],
    "unlisted": [relative paths]}`` (sorted): ``unlisted`` names the images and pages in ``folder`` that are not its
    command's output (by its marker; without one, the images its listing leaves out), which nothing checked.
    """
    from opreid_bench.splits.all_faces import COVERED, covered_share, find_faces, head_gate
    from opreid_bench.splits.mask import effective_pose

    if detector not in VERIFY_DETECTORS:
        raise OpreidError(f"unknown face detector '{detector}'; use {', '.join(VERIFY_DETECTORS)}")
    _cv2()  # every detector here needs opencv (mediapipe imports it too): say so first, in one line
    root = Path(folder)
    if not root.is_dir():
        raise OpreidError(f"{root}: folder to verify not found")
    files = _listed_images(root)
    unlisted = _unlisted_media(root, files)
    if files is None:
        files = sorted(
            p for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    recorded = _recorded_masks(root)
    keypoints = _split_keypoints(root)
    faces = []
    advance = _progress(len(files), "verify: looking for faces") if progress else None
    try:
        for p in files:
            try:
                with Image.open(p) as im:
                    rgb = upright_rgb(im)
            except decode_errors() as exc:  # missing, truncated, oversized or not an image
                raise OpreidError(f"{p}: cannot read image to verify ({exc})") from None
            rel = p.relative_to(root).as_posix()
            masks = recorded.get(rel, [])
            kp = keypoints.get(rel)
            if kp is not None and kp.image_size is not None and tuple(kp.image_size) != rgb.size:
                kp = None  # not the crop the keypoints were found on
            kp = effective_pose(kp, rgb.size)  # judged as the masking judged it
            if detector == "haar":
                plausible = head_gate(kp, rgb.size)
                boxes = [b for b in detect_faces(rgb, min_neighbors=min_neighbors)
                         if plausible(b) and covered_share(b, masks) < COVERED]
            else:
                boxes = [b for b, _ in find_faces(rgb, kp, masked=masks, verify=True)]
            if boxes:
                faces.append({"path": p.relative_to(root).as_posix(), "boxes": [list(b) for b in sorted(boxes)]})
            if advance:
                advance[1]()
    finally:
        if advance:
            advance[0].stop()
    return {"checked": len(files), "detector": detector, "faces": faces, "unlisted": unlisted}


def _unlisted_media(root: Path, listed: list[Path] | None) -> list[str]:
    """Files in ``root`` that may show a face and are no crop of its listing: those its command did not write (by its
    marker), else every file but text that the listing leaves out. They would be published with the folder, yet
    nothing checked them."""
    from opreid_bench.outputs import folder_entries, may_show_a_face, stray_media
    from opreid_bench.splits.datacard import PLOT_NAME

    stray = stray_media(root)
    if stray is not None or listed is None:
        return stray or []
    names = {p.relative_to(root).as_posix() for p in listed} | {PLOT_NAME, "keypoints.h5"}  # a split's non-crops
    return sorted(r for r in folder_entries(root) if r not in names and may_show_a_face(root / r))


def _progress(total: int, label: str) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True))
    task = prog.add_task(label, total=total)
    prog.start()
    return prog, lambda n=1: prog.advance(task, n)


def _recorded_masks(root: Path) -> dict[str, list[Box]]:
    """Relative path -> the mask boxes recorded for it (``face_masks.csv`` of a split, ``masks.csv`` of ``mask``)."""
    import csv

    from opreid_bench.splits.writer import parse_masks

    for name in ("face_masks.csv", "masks.csv"):
        listing = root / name
        if listing.is_file():
            with listing.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if not {"path", "masks"} <= set(reader.fieldnames or []):
                    continue
                try:
                    return {row["path"]: [box for _, box in parse_masks(row["masks"])] for row in reader}
                except ValueError:
                    raise OpreidError(f"{listing}: a masks entry is not kind@left,top,right,bottom") from None
    return {}


def _split_keypoints(root: Path) -> dict[str, Any]:
    """Relative crop path -> the keypoints it was masked with, for a split folder (``manifest.csv`` with
    ``source_path`` and ``keypoints.h5``); empty for any other folder."""
    import csv

    from opreid_bench.splits.cache import read_keypoints

    manifest, kp_file = root / "manifest.csv", root / "keypoints.h5"
    if not (manifest.is_file() and kp_file.is_file()):
        return {}
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "source_path"} <= set(reader.fieldnames or []):
            return {}
        sources = {row["path"]: row["source_path"] for row in reader}
    try:
        kps = read_keypoints(kp_file)
    except OpreidError as exc:
        raise OpreidError(f"{kp_file}: the split's keypoints cannot be read ({exc})") from None
    return {path: kps[src] for path, src in sources.items() if src in kps}


def _listed_images(root: Path) -> list[Path] | None:
    import csv

    for name in ("manifest.csv", "masks.csv"):
        listing = root / name
        if listing.is_file():
            with listing.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if "path" not in (reader.fieldnames or []):
                    continue
                return sorted(root / row["path"] for row in reader)
    return None
