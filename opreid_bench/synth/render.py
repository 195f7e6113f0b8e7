"""Render one crop: background of the camera, the person, an optional occluder, camera effects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from opreid_bench.synth.appearance import VIEWS, CameraStyle, Identity
from opreid_bench.synth.occluders import PinnedOccluder, draw_occluder, draw_pinned_occluder, keypoint_visibility
from opreid_bench.synth.person import draw_person, make_pose


@dataclass
class Crop:
    """A rendered crop with its exact annotation."""

    image: Image.Image
    keypoints: np.ndarray  # (17, 2) float32 pixels
    visible: np.ndarray  # (17,) bool: inside the frame and not hidden by the occluder
    view: str
    occluder: str  # "" when none
    hidden_body_fraction: float  # share of the person's silhouette under the occluder
    occluder_mask: np.ndarray | None = None  # (H, W) bool, True = hidden by the occluder; None when holistic
    person_mask: np.ndarray | None = None  # (H, W) bool, the target person's silhouette before occlusion


def _background(cam: CameraStyle, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, cam.wall)
    d = ImageDraw.Draw(img)
    hz = int(h * (cam.horizon + rng.uniform(-0.04, 0.04)))
    d.rectangle([0, hz, w, h], fill=cam.floor)
    brng = np.random.default_rng([cam.camid, 99])  # the camera's fixed scene layout
    if cam.texture == "shelves":
        for k in range(4):
            y = int(hz * (k + 1) / 5)
            d.rectangle([0, y, w, y + 2], fill=tuple(int(c * 0.7) for c in cam.wall))
            for _ in range(6):
                x = int(brng.uniform(0, w))
                d.rectangle([x, y - int(brng.uniform(6, 16)), x + int(brng.uniform(6, 18)), y], fill=tuple(
                    int(v) for v in brng.integers(40, 230, 3)))
    elif cam.texture == "tiles":
        for y in range(hz, h, 12):
            d.line([(0, y), (w, y)], fill=tuple(int(c * 0.8) for c in cam.floor))
        for x in range(0, w, 16):
            d.line([(x, hz), (x, h)], fill=tuple(int(c * 0.8) for c in cam.floor))
    elif cam.texture == "windows" and hz - 20 > 10:  # a wall too low for windows (a small crop) has none
        for x in range(8, w, 40):
            d.rectangle([x, 10, x + 26, hz - 20], fill=(min(255, cam.wall[0] + 60), min(255, cam.wall[1] + 60),
                                                         min(255, cam.wall[2] + 70)))
    return img


def _camera_effects(img: Image.Image, cam: CameraStyle, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    gain = cam.gain * rng.uniform(0.92, 1.08)
    arr = arr * gain * np.asarray(cam.cast, dtype=np.float32)
    arr += rng.normal(0.0, 3.0, size=arr.shape).astype(np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if cam.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(cam.blur))
    return out


def render_crop(ident: Identity, cam: CameraStyle, rng: np.random.Generator, *, size: tuple[int, int] = (128, 256),
                occluder: str = "", occluder_params: dict | None = None, view: str | None = None,
                pinned_occluder: PinnedOccluder | None = None) -> Crop:
    """Draw ``ident`` as seen by ``cam``; ``occluder`` names the kind (or "" for a holistic crop).

    ``pinned_occluder`` (instead of ``occluder``) draws an occluder of fixed geometry and chosen appearance that
    takes no random number from ``rng``: two renders with the same ``rng`` seed and the same geometry differ only
    in the occluder's pixels (the Clever Hans test, ``opreid_bench.synth.clever_hans``).
    """
    if pinned_occluder is not None and occluder:
        raise ValueError("pass either occluder or pinned_occluder, not both")
    w, h = size
    if view is None:
        view = VIEWS[int(rng.choice(3, p=np.asarray(cam.view_probs)))]
    img = _background(cam, size, rng)
    scale = rng.uniform(*cam.scale)
    feet_y = h * rng.uniform(0.95, 0.99)
    cx = w * rng.uniform(0.44, 0.56)
    pose = make_pose(ident, view, cx=cx, feet_y=feet_y, height_px=h * scale * 0.98, rng=rng)
    silhouette = np.asarray(draw_person(img, ident, pose)) > 0
    occ_mask = None
    if pinned_occluder is not None:
        occluder = pinned_occluder.kind
        occ_mask = draw_pinned_occluder(img, pinned_occluder)
    elif occluder:
        occ_mask = draw_occluder(img, occluder, rng, occluder_params)
    visible = keypoint_visibility(pose.xy, occ_mask, size)
    hidden = float((silhouette & occ_mask).sum() / max(1, silhouette.sum())) if occ_mask is not None else 0.0
    img = _camera_effects(img, cam, rng)
    return Crop(image=img, keypoints=pose.xy, visible=visible, view=view, occluder=occluder,
                hidden_body_fraction=hidden, occluder_mask=occ_mask, person_mask=silhouette)
