"""Stage 3: mask faces for privacy (the paper masks every face in OPReID).

Where the face is found, in this order (the first that gives a box wins; ``MaskResult.method`` says which):

1. ``keypoints``: the face box from the head keypoints (documented geometry, :func:`face_box_from_keypoints`),
   unless the pose puts the head low in the crop or below the shoulders (:func:`upright_pose`): such a pose is not
   used for the main face at all;
2. ``haar``: for a crop with no pose result at all (``mask`` or ``build-split`` without keypoints, or a crop the
   keypoint file lacks), OpenCV's Haar face cascade (:mod:`opreid_bench.splits.face_detect`), its boxes taken where
   the main person's head can be: a plausible head (:func:`opreid_bench.splits.all_faces.plausible_head`) centred in
   the upper :data:`HEAD_LOWEST` of the crop, as for the keypoints' head (:func:`upright_pose`): low in a crop the
   cascade fires near the feet. Where the pose stage ran and placed no head, the cascade is not asked: on the crops
   where it then gave such a box (low-resolution GRID crops; ``benchmarks/labels/faces_heads_heldout6.csv``), masking
   with it put a mask off every head in 12 of 28 and left 7 main faces visible; with the head prior, 3 and none;
3. ``prior``: where neither locates the head, a **head prior** is masked (:func:`head_prior_box`): the top of the
   person's box from the keypoints that were found, or, when no person was found, the top of the crop (pedestrian
   crops are cut around the person, head up). Leaving a face visible is never the silent default: such crops are
   listed for review (``method == "prior"``) and the data card counts them.

Then every other face is masked, bystanders' included (the default; the paper masks every face): BlazeFace, the
profile cascade and the person detector's other people, each accepted only where a head is plausible
(:mod:`opreid_bench.splits.all_faces`; method gets ``+faces`` when they found any), and a closing verification on
the masked crop masks any plausible face still found (``+verify``). ``MaskResult.kinds`` says what placed each mask.
``MODE+main`` (``--main-face-only``) masks the main person's face only; the data card then warns. ``MODE+outside``
(``--mask-outside-body``) masks every face and, besides, everything outside the main person's body below its
shoulders (kind ``outside``, :func:`opreid_bench.splits.all_faces.outside_body_boxes`): the bystanders' faces that no
detector finds are mostly there. Only pixels inside the masked boxes change.

Modes: ``blur`` (Gaussian blur, radius a quarter of the box's short side), ``pixelate`` (about 4 blocks across the
box's short side, nearest-neighbour upscaled), ``fill`` (flat mid grey). All are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageFilter

from opreid_bench.errors import OpreidError
from opreid_bench.splits.face_detect import Box, detect_faces
from opreid_bench.splits.keypoints import COCO17_INDEX, Keypoints

MASK_MODES = ("blur", "pixelate", "fill")
OUTSIDE_KIND = "outside"  # the mode suffix and the mask kind of --mask-outside-body
HEAD_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FILL_COLOR = (128, 128, 128)


@dataclass
class MaskResult:
    """A masked crop, whether a face was masked, how the face was found, and the boxes that were masked."""

    image: Image.Image
    masked: bool
    method: str  # "keypoints", "haar", "prior" or "none" (no head prior asked for); "+faces", "+verify" (docstring)
    boxes: list[Box] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # per box: what placed it (module docstring)


# Face box geometry, in units of the head scale s (see :func:`face_box_from_keypoints`). Fitted to the 40 main
# persons' hand-boxed heads of ``benchmarks/labels/faces_heads.csv`` (fewest faces left less than half covered, then
# the smallest box) and measured on ``faces_heads_heldout.csv`` by ``benchmarks/bench_faces.py``.
FACE_BOX_WIDTH = 1.6  # x s, centred on the head keypoints
FACE_BOX_ABOVE = 1.2  # x s above the head keypoints' mean (forehead and hair)
FACE_BOX_BELOW = 1.0  # x s below it (chin)
SHOULDER_SCALE = 0.45  # s is at least this x the shoulder distance (a head is about half as wide as the shoulders)
TORSO_SCALE = 0.25  # s is at least this x the torso (shoulder centre to hip centre): profile views


def face_box_from_keypoints(
    kp: Keypoints, image_size: tuple[int, int], *, score_threshold: float = 0.5, min_head_points: int = 2
) -> Box | None:
    """Estimate the face box from the head keypoints (nose, eyes, ears); None when too few are visible.

    Geometry: let P be the head keypoints with score >= ``score_threshold`` that lie inside the crop (10% margin),
    and s the larger of P's x- and y-extent (ear to ear is about one face width). In a profile view the head points
    nearly coincide, so s is raised to :data:`SHOULDER_SCALE` x the shoulder distance when both shoulders are
    visible, to :data:`TORSO_SCALE` x the torso length (the shoulders' centre to the hips' centre, as placed), and
    to at least 5% of the crop height and 3 px. The box is :data:`FACE_BOX_WIDTH` s wide, centred at P's mean x,
    and runs from :data:`FACE_BOX_ABOVE` s above P's mean y to :data:`FACE_BOX_BELOW` s below it (eyes and ears sit
    in the head's lower half; the hair above them identifies a person too), clipped to the crop.

    Why the torso: in side views of larger heads the head points span a third of the head, and the box from them
    alone left the forehead, and on some crops the eyes, outside the mask (``benchmarks/bench_faces.py``).
    """
    w, h = image_size
    names = [COCO17_INDEX[n] for n in HEAD_KEYPOINTS]
    inside = kp.inside(0.1) if kp.image_size is not None else np.ones(len(kp.score), dtype=bool)
    vis = [i for i in names if kp.score[i] >= score_threshold and inside[i]]
    if len(vis) < max(1, min_head_points):
        return None
    pts = kp.xy[vis].astype(np.float64)
    s = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))
    ls, rs = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]
    lh, rh = COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]
    if kp.score[ls] >= score_threshold and kp.score[rs] >= score_threshold:
        s = max(s, SHOULDER_SCALE * float(np.linalg.norm(kp.xy[ls] - kp.xy[rs])))
    torso = np.linalg.norm((kp.xy[ls] + kp.xy[rs]) / 2.0 - (kp.xy[lh] + kp.xy[rh]) / 2.0)
    if np.isfinite(torso):
        s = max(s, TORSO_SCALE * float(torso))
    s = max(s, 0.05 * h, 3.0)
    cx, cy = float(pts[:, 0].mean()), float(pts[:, 1].mean())
    left, right = int(np.floor(cx - FACE_BOX_WIDTH / 2 * s)), int(np.ceil(cx + FACE_BOX_WIDTH / 2 * s))
    top, bottom = int(np.floor(cy - FACE_BOX_ABOVE * s)), int(np.ceil(cy + FACE_BOX_BELOW * s))
    left, top, right, bottom = max(0, left), max(0, top), min(w, right), min(h, bottom)
    if right <= left or bottom <= top:
        return None
    return (left, top, right, bottom)


HEAD_LOWEST = 0.5  # of the crop's height: a main head found below this is not trusted (upright_pose, Haar)


def upright_pose(kp: Keypoints, image_size: tuple[int, int], score_threshold: float = 0.5) -> bool:
    """Whether the head the keypoints place can be the main person's: its visible head points lie in the upper
    :data:`HEAD_LOWEST` of the crop and above the shoulders when both are visible.

    Why: a pedestrian crop is cut around an upright person, head up. BlazePose sometimes returns a confident pose
    that is upside down (nose on the feet) or slid down the body (head on the chest); a face mask placed from it
    covers feet or clothing and leaves the real face visible. Such a pose is not used to place the main face's mask:
    the head prior of the crop's top does (``method == "prior"``). The 0.5 line was set from
    the geometry of pedestrian crops (a standing person's head is in the top fifth), not fitted to any data."""
    w, h = image_size
    head = [COCO17_INDEX[n] for n in HEAD_KEYPOINTS]
    vis = [i for i in head if kp.score[i] >= score_threshold]
    if not vis:
        return True  # no head placed: nothing to distrust (face_box_from_keypoints finds no box)
    head_y = float(kp.xy[vis, 1].mean())
    if head_y > HEAD_LOWEST * h:
        return False
    ls, rs = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]
    if kp.score[ls] >= score_threshold and kp.score[rs] >= score_threshold:
        return head_y < float(kp.xy[[ls, rs], 1].mean())
    return True


# Head prior geometry: a head is about 1/7.5 of a standing person's height; the box is taken generously.
PRIOR_HEAD_FRACTION = 0.22  # of the person's (or crop's) height, from its top
PRIOR_WIDTH_FRACTION = 0.8  # of the person's (or crop's) width, centred


def effective_pose(kp: Keypoints | None, image_size: tuple[int, int], score_threshold: float = 0.5) -> Keypoints | None:
    """The keypoints the masking judges a crop with: a pose with the head low or upside down (:func:`upright_pose`)
    places no mask and counts as no person found, while the person detector's other people are kept (their heads
    are still masked). The masking, the writer's check of the written crop and ``mask --verify`` all use it, so that
    they judge a detection against the same main body."""
    if kp is not None and kp.detected and not upright_pose(kp, image_size, score_threshold):
        return replace(kp, detected=False, score=np.zeros_like(kp.score), support=None, flip_shift=None)
    return kp


def _haar_asked(kp: Keypoints | None) -> bool:
    """Whether the Haar cascade may place the main face: only for a crop with no pose result (module docstring)."""
    return kp is None


def _main_face_candidates(boxes: list[Box], kp: Keypoints | None, size: tuple[int, int],
                          lowest: float = HEAD_LOWEST) -> list[Box]:
    """The Haar boxes that can be the main person's face: a plausible head centred in the upper ``lowest`` (by default
    :data:`HEAD_LOWEST`) of the crop (module docstring). A box lower down is not masked at all: the head prior takes the main face, and a
    bystander's face low in the crop is left to the all-faces detectors (the frontal cascade is none of them)."""
    from opreid_bench.splits.all_faces import head_gate

    plausible = head_gate(kp, size)
    return [b for b in boxes if plausible(b) and (b[1] + b[3]) / 2 <= lowest * size[1]]


def head_prior_box(kp: Keypoints | None, image_size: tuple[int, int]) -> Box:
    """Where the head should be when nothing located it (see the module docstring).

    With keypoints of a found person: the person's box is the extent of the keypoints that lie in the crop (any
    score; BlazePose places occluded joints plausibly), its top ``PRIOR_HEAD_FRACTION`` of the height above the
    shoulders' line is the head band, ``PRIOR_WIDTH_FRACTION`` of the box width (at least the shoulder width)
    centred on the shoulders. Without: the top ``PRIOR_HEAD_FRACTION`` of the crop, ``PRIOR_WIDTH_FRACTION`` of its
    width, centred. Always a non-empty box inside the crop.
    """
    w, h = image_size
    if kp is not None and kp.detected:
        inside = kp.inside(0.0)
        if inside.sum() >= 3:
            pts = kp.xy[inside].astype(np.float64)
            x0, y0 = float(pts[:, 0].min()), float(pts[:, 1].min())
            x1, y1 = float(pts[:, 0].max()), float(pts[:, 1].max())
            ls, rs = kp.xy[COCO17_INDEX["left_shoulder"]], kp.xy[COCO17_INDEX["right_shoulder"]]
            cx = float((ls[0] + rs[0]) / 2) if inside[COCO17_INDEX["left_shoulder"]] else (x0 + x1) / 2
            height = max(y1 - y0, 0.3 * h)
            half = max(PRIOR_WIDTH_FRACTION * (x1 - x0), abs(float(ls[0] - rs[0])), 0.3 * w) / 2
            top = max(0.0, y0 - 0.1 * height)
            bottom = min(float(h), top + PRIOR_HEAD_FRACTION * height + 0.1 * height)
            box = (max(0, int(np.floor(cx - half))), int(np.floor(top)), min(w, int(np.ceil(cx + half))),
                   int(np.ceil(bottom)))
            if box[2] > box[0] and box[3] > box[1]:
                return box
    half = PRIOR_WIDTH_FRACTION * w / 2
    return (max(0, int(np.floor(w / 2 - half))), 0, min(w, int(np.ceil(w / 2 + half))),
            max(1, int(np.ceil(PRIOR_HEAD_FRACTION * h))))


def parse_mask_mode(mode: str) -> tuple[str, bool]:
    """``blur`` or ``blur+all`` -> (``blur``, True: every face in the crop, the default); ``blur+main`` -> (``blur``,
    False: the main person's face only, an opt-out the data card warns about); ``blur+outside`` -> (``blur``, True),
    every face and everything outside the main person's body too (:func:`masks_outside_body`)."""
    base, sep, extra = mode.partition("+")
    if base not in MASK_MODES or (sep and extra not in ("all", "main", OUTSIDE_KIND)):
        raise OpreidError(f"unknown mask mode '{mode}'; known: {', '.join(MASK_MODES)} (optionally +all, +main or "
                          f"+{OUTSIDE_KIND})")
    return base, extra != "main"


def mask_spec(mask: str | None, main_face_only: bool, outside_body: bool) -> str | None:
    """The mask mode the command-line options ask for: ``blur``, ``blur+main`` (``--main-face-only``) or
    ``blur+outside`` (``--mask-outside-body``); None for no masking. Contradicting options are one line."""
    if outside_body and main_face_only:
        raise OpreidError("--mask-outside-body masks every face and more; --main-face-only masks fewer: choose one")
    if mask is None:
        for flag, given in (("--mask-outside-body", outside_body), ("--main-face-only", main_face_only)):
            if given:
                raise OpreidError(f"{flag} masks, but --mask none copies the crops unmasked: choose one")
        return None
    return f"{mask}+main" if main_face_only else f"{mask}+{OUTSIDE_KIND}" if outside_body else mask


def masks_outside_body(mode: str) -> bool:
    """Does ``mode`` (``blur+outside``, ``--mask-outside-body``) also mask everything outside the main person's body
    (:func:`opreid_bench.splits.all_faces.outside_body_boxes`)?"""
    return mode.partition("+")[2] == OUTSIDE_KIND


def mask_box(image: Image.Image, box: Box, mode: str = "blur") -> Image.Image:
    """Return a copy of ``image`` (RGB) with ``box`` masked by ``mode``; pixels outside the box are unchanged."""
    if mode not in MASK_MODES:
        raise OpreidError(f"unknown mask mode '{mode}'; known: {', '.join(MASK_MODES)}")
    out = image.convert("RGB")
    out = out.copy() if out is image else out
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    region = out.crop(box)
    if mode == "fill":
        patch = Image.new("RGB", (bw, bh), FILL_COLOR)
    elif mode == "pixelate":
        block = max(2, min(bw, bh) // 4)
        small = region.resize((max(1, round(bw / block)), max(1, round(bh / block))), Image.Resampling.BOX)
        patch = small.resize((bw, bh), Image.Resampling.NEAREST)
    else:
        radius = max(2.0, 0.25 * min(bw, bh))
        patch = region.filter(ImageFilter.GaussianBlur(radius))
        # A blur of a tiny region keeps its mean colour and coarse layout; blur twice for a stronger mask.
        patch = patch.filter(ImageFilter.GaussianBlur(radius))
    out.paste(patch, (left, top))
    return out


def mask_face_detailed(
    image: Image.Image,
    kp: Keypoints | None,
    mode: str = "blur",
    *,
    score_threshold: float = 0.5,
    min_head_points: int = 2,
    haar_fallback: bool = True,
    head_prior: bool = True,
    all_faces: bool | None = None,
    verify: bool = True,
) -> MaskResult:
    """Mask the faces of one crop: the main person's (keypoint box; else, for a crop without keypoints, the Haar
    cascade; else the head prior), then every other plausible face, then what the closing verification still finds
    (module docstring). ``all_faces`` None follows ``mode`` (``+main`` turns it off)."""
    from opreid_bench.splits.all_faces import find_faces

    outside_body = masks_outside_body(mode)
    mode, spec_all = parse_mask_mode(mode)
    all_faces = spec_all if all_faces is None else all_faces
    rgb = image.convert("RGB")
    box = None
    boxes: list[Box] = []
    kinds: list[str] = []
    method = "none"
    kp = effective_pose(kp, rgb.size, score_threshold)
    if kp is not None and kp.detected:
        box = face_box_from_keypoints(kp, rgb.size, score_threshold=score_threshold, min_head_points=min_head_points)
    if box is not None:
        boxes, method = [box], "keypoints"
    elif haar_fallback and _haar_asked(kp) and (found := _main_face_candidates(detect_faces(rgb), kp, rgb.size)):
        boxes, method = found, "haar"
    elif head_prior:
        boxes, method = [head_prior_box(kp, rgb.size)], "prior"
    kinds = [method] * len(boxes)
    if all_faces:
        extra = find_faces(rgb, kp, masked=boxes)
        if extra:
            boxes += [b for b, _ in extra]
            kinds += [k for _, k in extra]
            method = "faces" if method == "none" else f"{method}+faces"
    if outside_body:
        from opreid_bench.splits.all_faces import outside_body_boxes

        around = outside_body_boxes(kp, rgb.size)
        if around:
            boxes += around
            kinds += [OUTSIDE_KIND] * len(around)
            method = OUTSIDE_KIND if method == "none" else f"{method}+{OUTSIDE_KIND}"
    out = rgb
    for b in boxes:
        out = mask_box(out, b, mode)
    if all_faces and verify:
        late = find_faces(out, kp, masked=boxes, verify=True)
        for b, k in late:
            out = mask_box(out, b, mode)
            boxes.append(b)
            kinds.append(k)
        if late:
            method = "verify" if method == "none" else f"{method}+verify"
    if not boxes:
        return MaskResult(rgb.copy(), False, "none", [], [])
    return MaskResult(out if out is not rgb else rgb.copy(), True, method, boxes, kinds)


def mask_face(image: Image.Image, kp: Keypoints | None, mode: str = "blur", **kwargs: object) -> tuple[Image.Image, bool]:
    """Contract form of :func:`mask_face_detailed`: (masked image, whether a face was masked)."""
    res = mask_face_detailed(image, kp, mode, **kwargs)  # type: ignore[arg-type]
    return res.image, res.masked
