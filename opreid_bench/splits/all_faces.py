"""Every face in a crop, bystanders' included, and nothing else: detections accepted only where a head is plausible.

A missed face costs someone's privacy; a mask on a bag or a sleeve costs the benchmark the appearance it measures.
Pedestrian crops are small (faces of 12-25 px) and crowded, so no single detector finds every face, and the ones
that find small faces also fire on clothing. Candidates therefore come from three sources, and each is accepted only
where a head is plausible.

Candidates (the *kind* names counted in ``masks.csv``, the manifest and the data card):

- ``blazeface``: mediapipe's BlazeFace, full range, on windows down the crop
  (:func:`opreid_bench.splits.face_detect.detect_faces_mediapipe`);
- ``mtcnn``: MTCNN on the crop upscaled 3x, faces down to :data:`MTCNN_MIN_FACE` times the main head's height
  (:mod:`opreid_bench.splits.mtcnn`; only when its weights are installed, :func:`face_sources` says which ran). On the
  hand-boxed crops its smallest box on a face was 0.43 of the main head (searched down to 0.05); on a crop of random
  pixels it fired at 0.26. Its scores never let a box onto the main person's body: letting confident ones through, as
  BlazeFace's are, found no face more on the hand-boxed crops and put two more masks off heads;
- ``person``: the head of another person found by the person detector (``Keypoints.people``): where that person's
  body alignment puts its head (:mod:`opreid_bench.splits.people`), masked whether or not a face detector fires there
  (where a head is plausible, like every other candidate);
- ``yunet``: YuNet, a face detector trained on small and crowded faces, on the crop upscaled 2x, boxes scoring at
  least :data:`YUNET_CONFIDENCE` (:mod:`opreid_bench.splits.yunet`; only where the ``yuface`` wheel is installed),
  each scaled by :data:`YUNET_GROW` about its centre (its box is the face; the mask must hide the head around it). A
  box scoring at least :data:`YUNET_CONFIDENT` passes the body rule below: bystanders walking in front of the main
  person show their faces over its body, and YuNet's confident boxes there were faces on the hand-boxed crops.
  These four settings were chosen on the first five hand-boxed sets (``faces_heads.csv`` to
  ``faces_heads_heldout4.csv``: the fewest faces left visible with masks off every head in at most 2% of their
  crops); ``faces_heads_heldout8.csv`` was boxed blind and scored after the choice (docs/concepts/occlusion-rule.md).

Plausible head (:func:`plausible_head`): the box's height lies within [:data:`MIN_HEAD_SCALE`, :data:`MAX_HEAD_SCALE`]
times the main person's head height (its keypoint face box, else a seventh of the crop's height), and the box's centre
is not on the main person's body below the shoulders: the column spanned by the main person's body keypoints
(shoulders to ankles, arms included, grown by a quarter of its width on each side), from :data:`BODY_MARGIN` of the
crop's height under the shoulder line down. Without keypoints the main body is taken as the crop's central half from
:data:`NO_POSE_SHOULDER` of its height down. A bystander in front of the main person's legs is not masked unless the
person detector found it, BlazeFace scores it at least :data:`CONFIDENT_FACE` (a clear face) or YuNet at least
:data:`YUNET_CONFIDENT`: the gate trades the faint cases for clothing, bags and hands, where face detectors fire
most, with low scores.

Measured and left out, on the same crops: OpenCV's frontal-face cascade and BlazeFace's short-range model (on 3x
upscaled crops) each found one more face and put masks on clothing in four to five more crops; OpenCV's profile-face
cascade (both directions) placed no mask the sources above had not, at five times BlazeFace's cost. For bystanders'
faces at the border (docs/concepts/occlusion-rule.md has the figures): BlazeFace on side strips mirrored outwards,
the upper-body cascade, BlazePose's landmark model on regions centred on the side borders and the person detector on
the crop's halves each found few of them, or put masks off heads, or both (the last found none held out).

A candidate counts as already masked only when :data:`COVERED` of it lies under earlier masks: the main person's
mask can cover the chin of a face just above it and leave its eyes in view. For YuNet's grown box the question is
asked of the face it boxed, so a head already masked (most often the main person's) is not masked twice.

The settings were chosen on the hand-boxed crops of ``benchmarks/labels/faces_heads.csv``; ``benchmarks/bench_faces.py``
measures them there (in-sample) and on ``faces_heads_heldout.csv`` (docs/concepts/occlusion-rule.md has both; the
:data:`CONFIDENT_FACE` rule was chosen with the held-out set in view, so figures with it are in-sample there too).

The closing verification (:func:`find_faces` with ``verify=True``) runs BlazeFace again, more permissively (at
:data:`VERIFY_BLAZEFACE_CONFIDENCE`), on the masked crop (MTCNN's boxes do not move when the crop is masked, and it
would triple its cost: the writer verifies the written JPEG too): any plausible face it still finds is masked
too (kind ``verify``). ``mask --verify`` runs the same check over a folder and fails when a plausible face is left.

What it cannot do, measured: a bystander's head cut by the crop's border (half a face at the edge) is rarely found,
by MTCNN if by any of these detectors; on the hand-boxed crops such heads are most of the faces left visible
(``bench_faces.py`` lists them; ``faces_heads_heldout2.csv``, boxed after every setting here was fixed, has 16 of 23
bystanders' faces left visible). Look at the review sheet for crowded pools.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from opreid_bench.splits.face_detect import Box, detect_faces_mediapipe_scored
from opreid_bench.splits.keypoints import COCO17_INDEX, Keypoints
from opreid_bench.splits.mtcnn import detect_faces_mtcnn
from opreid_bench.splits.mtcnn import weights_digest as mtcnn_weights_digest
from opreid_bench.splits.mtcnn import weights_dir as mtcnn_weights_dir
from opreid_bench.splits.people import expected_xy, main_person
from opreid_bench.splits.yunet import detect_faces_yunet
from opreid_bench.splits.yunet import version as yunet_version

FACE_KINDS = ("blazeface", "person", "mtcnn", "yunet", "verify")
BLAZEFACE_CONFIDENCE = 0.5
VERIFY_BLAZEFACE_CONFIDENCE = 0.3
CONFIDENT_FACE = 0.7  # a BlazeFace score this high is a face even on the main person's body (someone in front)
MIN_HEAD_SCALE = 0.25  # x the main person's head height
MTCNN_MIN_FACE = 0.4  # x the main person's head height: MTCNN's smallest face (module docstring)
MAX_HEAD_SCALE = 2.5
BODY_MARGIN = 0.05  # x the crop's height below the shoulder line where the main body starts
NO_POSE_SHOULDER = 0.25  # x the crop's height: the shoulder line when no keypoints are known
PERSON_HEAD = 0.3  # x a detected person's R: the side of its head box
SAME_PERSON = 0.5  # x the main person's R: a detection whose hips lie nearer is the main person found twice
YUNET_CONFIDENCE = 0.7  # YuNet's score floor
YUNET_CONFIDENT: float | None = 0.9  # a YuNet score this high passes the body rule (None: never)
YUNET_GROW = 1.5  # YuNet's face box is scaled about its centre by this much: the head around the face
COVERED = 0.9  # a candidate at least this much under boxes already masked adds nothing (half a face is a face)
_BODY = [COCO17_INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                                    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                                    "right_ankle")]
_HEAD = [COCO17_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def _visible_main(kp: Keypoints | None) -> bool:
    return kp is not None and kp.detected


def main_head_height(kp: Keypoints | None, size: tuple[int, int]) -> float:
    """Height in pixels of the main person's head: its keypoint face box, else a seventh of the crop."""
    from opreid_bench.splits.mask import face_box_from_keypoints

    if _visible_main(kp):
        box = face_box_from_keypoints(kp, size)  # type: ignore[arg-type]
        if box is not None:
            return float(box[3] - box[1])
    return size[1] / 7.0


def _placed(pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Which points lie in the crop or within a tenth of its size beyond it (a pose places a cut limb just outside)."""
    w, h = size
    return (pts[:, 0] > -0.1 * w) & (pts[:, 0] < 1.1 * w) & (pts[:, 1] > -0.1 * h) & (pts[:, 1] < 1.1 * h)


def main_body(kp: Keypoints | None, size: tuple[int, int], margin: float = BODY_MARGIN) -> tuple[float, float, float]:
    """(left, right, top) of the main person's body below the shoulders, in the crop's pixels (module docstring);
    ``top`` is the shoulder line plus ``margin`` times the crop's height."""
    w, h = size
    if _visible_main(kp):
        pts = kp.xy[_BODY].astype(np.float64)  # type: ignore[union-attr]
        inside = _placed(pts, size)
        if inside[:2].all():  # both shoulders placed: the body is every placed point below them
            x0, x1 = float(pts[inside, 0].min()), float(pts[inside, 0].max())
            grow = 0.25 * max(x1 - x0, 0.1 * w)
            top = float(pts[:2, 1].mean()) + margin * h
            return x0 - grow, x1 + grow, top
    return 0.25 * w, 0.75 * w, (NO_POSE_SHOULDER + margin) * h


FOOT_LENGTH = 0.15  # x a person's height: a foot's length (anthropometry), how far a stride reaches past the ankle


def kept_body(kp: Keypoints | None, size: tuple[int, int]) -> tuple[float, float, float]:
    """(left, right, top) of what ``--mask-outside-body`` leaves as it is: the head gate's body column
    (:func:`main_body`), widened on each side by :data:`FOOT_LENGTH` times the height of the main person's keypoints
    (a foot or a bag swung past the ankle keypoint in a side view, where the keypoints bunch into a few pixels) and
    never narrower than the crop's central half (pedestrian crops are cut around the person). Its top is the
    shoulder line itself, without the head gate's margin: below the shoulder keypoints lie the collar and the upper
    chest, which the margin would mask (``bench_faces.py --bodies``), while faces beside the main head mostly lie
    outside the column, in the sides that are masked from the shoulder line down."""
    w = size[0]
    left, right, top = main_body(kp, size, margin=0.0)
    if _visible_main(kp):
        pts = kp.xy.astype(np.float64)  # type: ignore[union-attr]
        inside = _placed(pts, size)
        body = pts[_BODY][inside[_BODY]]
        if inside.sum() >= 2 and len(body):
            reach = FOOT_LENGTH * float(pts[inside, 1].max() - pts[inside, 1].min())
            left = min(left, float(body[:, 0].min()) - reach)
            right = max(right, float(body[:, 0].max()) + reach)
    return min(left, 0.25 * w), max(right, 0.75 * w), top


def outside_body_boxes(kp: Keypoints | None, size: tuple[int, int]) -> list[Box]:
    """Boxes that cover everything outside the main person's body (:func:`kept_body`): the band above its body's
    top (the shoulder line) across the whole crop, and the crop's sides left and right of its body's column below
    that band (``--mask-outside-body``).

    Why: the faces every detector misses are mostly bystanders' heads cut by the crop's border or beside the main
    person's head (``benchmarks/bench_faces.py``); a mask that does not depend on finding them covers them. What it
    costs is the background and the other people there. The main person's body below the shoulders stays as it is
    where it lies within the column; a limb, a bag or a foot reaching further (a long stride seen from the side, an
    arm stretched out) is masked with the background. A bystander in front of or behind the body is left to the
    detectors."""
    w, h = size
    left, right, top = kept_body(kp, size)
    band = int(np.ceil(min(max(top, 0.0), h)))
    x0, x1 = int(np.floor(min(max(left, 0.0), w))), int(np.ceil(min(max(right, 0.0), w)))
    boxes = [(0, 0, w, band)] if band > 0 else []
    if band < h and x0 > 0:
        boxes.append((0, band, x0, h))
    if band < h and x1 < w:
        boxes.append((x1, band, w, h))
    return boxes


def head_gate(kp: Keypoints | None, size: tuple[int, int]) -> Callable[..., bool]:
    """The plausible-head test of one crop (module docstring), its main head and body measured once:
    ``(box, score=0.0) -> bool``; a face found with at least :data:`CONFIDENT_FACE` passes the body rule."""
    head = main_head_height(kp, size)
    left, right, top = main_body(kp, size)

    def plausible(box: Box, score: float = 0.0) -> bool:
        if not MIN_HEAD_SCALE * head <= box[3] - box[1] <= MAX_HEAD_SCALE * head:
            return False
        if score >= CONFIDENT_FACE:
            return True
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return not (left <= cx <= right and cy >= top)

    return plausible


def plausible_head(box: Box, kp: Keypoints | None, size: tuple[int, int]) -> bool:
    """Is ``box`` where a head can be: a head's size against the main person's, and not on the main body below the
    shoulders (module docstring)?"""
    return head_gate(kp, size)(box)


def person_heads(kp: Keypoints | None, size: tuple[int, int]) -> list[Box]:
    """Head boxes of the other people the person detector found (not the main person, nor a second detection of it:
    hips within :data:`SAME_PERSON` of the main person's scale), inside the crop."""
    if kp is None or kp.people is None or len(kp.people) < 2:
        return []
    main = main_person(kp)
    if main is None:
        return []
    w, h = size
    main_hip, main_r = kp.people[main][1:3], float(np.linalg.norm(kp.people[main][1:3] - kp.people[main][3:5]))
    out = []
    for j, row in enumerate(kp.people):
        if j == main or float(np.linalg.norm(row[1:3] - main_hip)) < SAME_PERSON * main_r:
            continue
        exp = expected_xy(row)[_HEAD]
        cx, cy = float(exp[:, 0].mean()), float(exp[:, 1].mean())
        r = float(np.linalg.norm(row[1:3] - row[3:5]))
        half = PERSON_HEAD * r / 2
        box = (max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(np.ceil(cx + half))),
               min(h, int(np.ceil(cy + half))))
        if box[2] > box[0] and box[3] > box[1]:
            out.append(box)
    return out


def _scaled(box: Box, factor: float, size: tuple[int, int]) -> Box:
    """``box`` scaled about its centre by ``factor`` in width and height, inside the crop."""
    if factor == 1.0:
        return box
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = factor * (box[2] - box[0]) / 2, factor * (box[3] - box[1]) / 2
    return (max(0, int(cx - hw)), max(0, int(cy - hh)), min(size[0], int(np.ceil(cx + hw))),
            min(size[1], int(np.ceil(cy + hh))))


def covered_share(box: Box, masks: list[Box]) -> float:
    """Share of ``box``'s pixels already under the union of ``masks``."""
    left, top, right, bottom = box
    if right <= left or bottom <= top:
        return 1.0
    grid = np.zeros((bottom - top, right - left), bool)
    for m in masks:
        x0, y0 = max(m[0], left) - left, max(m[1], top) - top
        x1, y1 = min(m[2], right) - left, min(m[3], bottom) - top
        if x1 > x0 and y1 > y0:
            grid[y0:y1, x0:x1] = True
    return float(grid.mean())


MTCNN_MISSING = ("MTCNN's weights were not installed (or OPREID_MTCNN_WEIGHTS=off), so bystanders' small faces "
                 "(12-25 px, often cut by the border) were searched for by BlazeFace and the person detector alone, "
                 "which miss more of them. Install them (`pip install --no-deps facenet-pytorch==2.6.0`, or set "
                 "OPREID_MTCNN_WEIGHTS to a folder with pnet.pt, rnet.pt and onet.pt) and mask again.")


YUNET_MISSING = ("YuNet (the yuface package) was not installed (or OPREID_YUNET=off), so bystanders' small faces in "
                 "front of or beside the main person were searched for without it, which misses more of them. Install "
                 "it (`pip install yuface==2023.5.1`; Linux and Windows, x86-64, Python up to 3.11) and mask again.")


def face_source_names(sources: str) -> list[str]:
    """The detector names in a :func:`face_sources` text (``blazeface+person+mtcnn:<digest>`` -> blazeface, person,
    mtcnn)."""
    return [part.split(":")[0] for part in sources.split("+")]


def missing_face_detectors(sources: str) -> list[str]:
    """The warning of each small-face detector that :func:`face_sources` text ``sources`` lacks (MTCNN, YuNet)."""
    names = face_source_names(sources)
    return [text for name, text in (("mtcnn", MTCNN_MISSING), ("yunet", YUNET_MISSING)) if name not in names]


def face_sources() -> str:
    """The candidate sources :func:`find_faces` runs on this installation, as one text for options, fingerprints and
    the data card: ``blazeface+person+mtcnn:<weights digest>+yunet:<yuface version>``, each of the last two left out
    where it is not installed."""
    folder = mtcnn_weights_dir()
    yunet = yunet_version()
    return ("blazeface+person" + (f"+mtcnn:{mtcnn_weights_digest(folder)}" if folder is not None else "")
            + (f"+yunet:{yunet}" if yunet is not None else ""))


def find_faces(image: Image.Image, kp: Keypoints | None, *, masked: list[Box] | None = None,
               verify: bool = False) -> list[tuple[Box, str]]:
    """Plausible faces in ``image`` not already under ``masked``, each with the kind that found it (module
    docstring); ``verify`` runs the detectors at the closing verification's more permissive settings."""
    rgb = image.convert("RGB")
    size = rgb.size
    conf = VERIFY_BLAZEFACE_CONFIDENCE if verify else BLAZEFACE_CONFIDENCE
    # (mask, kind, score for the gate, the face the detector boxed: already hidden when that is under the masks)
    found = [(b, "blazeface", score, b) for b, score in detect_faces_mediapipe_scored(rgb, min_confidence=conf)]
    if not verify:
        found += [(b, "person", 0.0, b) for b in person_heads(kp, size)]
        folder = mtcnn_weights_dir()
        if folder is not None:  # smaller faces are not searched: most of MTCNN's time, and its false finds
            min_face = MTCNN_MIN_FACE * main_head_height(kp, size)
            found += [(b, "mtcnn", 0.0, b) for b, _ in detect_faces_mtcnn(rgb, folder, min_face=min_face)
                      if b[3] - b[1] >= min_face]
        if yunet_version() is not None:  # a confident YuNet box passes the body rule as a confident BlazeFace one
            found += [(_scaled(b, YUNET_GROW, size), "yunet",
                       CONFIDENT_FACE if YUNET_CONFIDENT is not None and score >= YUNET_CONFIDENT else 0.0, b)
                      for b, score in detect_faces_yunet(rgb, min_confidence=YUNET_CONFIDENCE)]
    plausible = head_gate(kp, size)
    accepted = [(b, k, face) for b, k, score, face in found if plausible(b, score)]
    taken = list(masked or [])
    out: list[tuple[Box, str]] = []
    for box, kind, face in accepted:
        if any(covered_share(b, taken) >= COVERED for b in {box, face}):
            continue
        out.append((box, "verify" if verify else kind))
        taken.append(box)
    return out
