"""Stage 3: mask faces for privacy (the paper masks every face in OPReID).

Face box from head keypoints (documented geometry, see :func:`face_box_from_keypoints`); where fewer than
``min_head_points`` head keypoints are visible, OpenCV's Haar face cascade is the fallback
(:mod:`opreid_bench.splits.face_detect`). Only pixels inside the face box(es) change.

Modes: ``blur`` (Gaussian blur, radius a quarter of the box's short side), ``pixelate`` (about 4 blocks across the
box's short side, nearest-neighbour upscaled), ``fill`` (flat mid grey). All are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from opreid_bench.errors import OpreidError
from opreid_bench.splits.face_detect import Box, detect_faces
from opreid_bench.splits.keypoints import COCO17_INDEX, Keypoints

MASK_MODES = ("blur", "pixelate", "fill")
HEAD_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FILL_COLOR = (128, 128, 128)


@dataclass
class MaskResult:
    """A masked crop, whether a face was masked, how the face was found, and the boxes that were masked."""

    image: Image.Image
    masked: bool
    method: str  # "keypoints", "haar" or "none"
    boxes: list[Box] = field(default_factory=list)


def face_box_from_keypoints(
    kp: Keypoints, image_size: tuple[int, int], *, score_threshold: float = 0.5, min_head_points: int = 2
) -> Box | None:
    """Estimate the face box from the head keypoints (nose, eyes, ears); None when too few are visible.

    Geometry: let P be the head keypoints with score >= ``score_threshold`` that lie inside the crop (10% margin),
    and s the larger of P's x- and y-extent (ear to ear is about one face width). s is raised to 0.45 x the shoulder
    distance when both shoulders are visible (a head is about half as wide as the shoulders; this covers profile
    views, where the head points nearly coincide), and to at least 5% of the crop height and 3 px. The box is
    1.6 s wide and 2.0 s tall, centred at P's mean x and 0.15 s below P's mean y (eyes and ears sit above the face's
    centre; the chin is further below than the forehead is above), clipped to the crop.
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
    if kp.score[ls] >= score_threshold and kp.score[rs] >= score_threshold:
        s = max(s, 0.45 * float(np.linalg.norm(kp.xy[ls] - kp.xy[rs])))
    s = max(s, 0.05 * h, 3.0)
    cx, cy = float(pts[:, 0].mean()), float(pts[:, 1].mean()) + 0.15 * s
    left, right = int(np.floor(cx - 0.8 * s)), int(np.ceil(cx + 0.8 * s))
    top, bottom = int(np.floor(cy - 1.0 * s)), int(np.ceil(cy + 1.0 * s))
    left, top, right, bottom = max(0, left), max(0, top), min(w, right), min(h, bottom)
    if right <= left or bottom <= top:
        return None
    return (left, top, right, bottom)


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
) -> MaskResult:
    """Mask the face of one crop: keypoint box first, Haar cascade when the head keypoints are missing."""
    if mode not in MASK_MODES:
        raise OpreidError(f"unknown mask mode '{mode}'; known: {', '.join(MASK_MODES)}")
    rgb = image.convert("RGB")
    box = None
    if kp is not None and kp.detected:
        box = face_box_from_keypoints(kp, rgb.size, score_threshold=score_threshold, min_head_points=min_head_points)
    if box is not None:
        return MaskResult(mask_box(rgb, box, mode), True, "keypoints", [box])
    if haar_fallback:
        boxes = detect_faces(rgb)
        if boxes:
            out = rgb
            for b in boxes:
                out = mask_box(out, b, mode)
            return MaskResult(out, True, "haar", boxes)
    return MaskResult(rgb.copy(), False, "none", [])


def mask_face(image: Image.Image, kp: Keypoints | None, mode: str = "blur", **kwargs: object) -> tuple[Image.Image, bool]:
    """Contract form of :func:`mask_face_detailed`: (masked image, whether a face was masked)."""
    res = mask_face_detailed(image, kp, mode, **kwargs)  # type: ignore[arg-type]
    return res.image, res.masked
