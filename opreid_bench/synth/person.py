"""Draw one pedestrian and return its exact COCO-17 keypoints and silhouette mask."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from opreid_bench.splits.keypoints import COCO17_NAMES as COCO17
from opreid_bench.synth.appearance import Color, Identity


@dataclass
class Pose:
    """Keypoints (17, 2) in image pixels, the head centre/radius, and the viewpoint they were made for."""

    xy: np.ndarray
    head_center: tuple[float, float]
    head_radius: float
    view: str


def make_pose(ident: Identity, view: str, *, cx: float, feet_y: float, height_px: float,
              rng: np.random.Generator) -> Pose:
    """Place a standing/walking skeleton: body proportions from ``ident``, limb swing jittered per image."""
    h = height_px * ident.height
    w = ident.width * (0.35 if view == "side" else 1.0)
    # x offsets towards the person's LEFT side (positive = person's left); the view decides the image direction.
    side = {"front": 1.0, "back": -1.0, "side": 1.0}[view]  # front: the person's left is the image right
    swing = rng.uniform(-0.35, 0.35)
    stride = rng.uniform(0.0, 0.22) * (1.0 if view == "side" else 0.5)

    def at(dx: float, dy: float) -> tuple[float, float]:
        return (cx + side * dx * h, feet_y - dy * h)

    pts: dict[str, tuple[float, float]] = {}
    head_y = 0.915
    pts["nose"] = at(0.0 if view != "side" else 0.045, 0.925)
    pts["left_eye"] = at(0.028 * w if view != "side" else 0.035, 0.94)
    pts["right_eye"] = at(-0.028 * w if view != "side" else 0.03, 0.94)
    pts["left_ear"] = at(0.055 * w if view != "side" else -0.01, 0.93)
    pts["right_ear"] = at(-0.055 * w if view != "side" else -0.02, 0.93)
    sh, hip = 0.125 * w, 0.085 * w
    pts["left_shoulder"] = at(sh, 0.815)
    pts["right_shoulder"] = at(-sh, 0.815)
    pts["left_hip"] = at(hip, 0.5)
    pts["right_hip"] = at(-hip, 0.5)
    for s, sign in (("left", 1.0), ("right", -1.0)):
        a = swing * sign
        ex = sign * (sh + 0.02 * w) + math.sin(a) * 0.17 * (1.0 if view == "side" else 0.3)
        pts[f"{s}_elbow"] = at(ex, 0.815 - 0.17 * math.cos(a))
        wx = ex + math.sin(a * 1.3) * 0.16 * (1.0 if view == "side" else 0.3)
        pts[f"{s}_wrist"] = at(wx, 0.815 - 0.17 * math.cos(a) - 0.16 * math.cos(a * 1.3))
        leg = -stride * sign
        pts[f"{s}_knee"] = at(sign * hip * 0.9 + leg * 0.5, 0.27)
        pts[f"{s}_ankle"] = at(sign * hip * 0.85 + leg, 0.035)
    xy = np.array([pts[n] for n in COCO17], dtype=np.float32)
    head = at(0.0 if view != "side" else 0.02, head_y)
    return Pose(xy=xy, head_center=head, head_radius=0.07 * h, view=view)


def _pattern_layer(size: tuple[int, int], c1: Color, c2: Color, pattern: str, scale: float) -> Image.Image:
    """A full-size image filled with a clothing pattern; the caller pastes it through a body-part mask."""
    img = Image.new("RGB", size, c1)
    if pattern == "solid":
        return img
    d = ImageDraw.Draw(img)
    step = max(3, int(scale))
    w, h = size
    if pattern == "hstripes":
        for y in range(0, h, 2 * step):
            d.rectangle([0, y, w, y + step - 1], fill=c2)
    elif pattern == "vstripes":
        for x in range(0, w, 2 * step):
            d.rectangle([x, 0, x + step - 1, h], fill=c2)
    elif pattern == "checks":
        for y in range(0, h, step):
            for x in range((y // step) % 2 * step, w, 2 * step):
                d.rectangle([x, y, x + step - 1, y + step - 1], fill=c2)
    return img


def draw_person(canvas: Image.Image, ident: Identity, pose: Pose) -> Image.Image:
    """Draw the person onto ``canvas`` (in place) and return its silhouette as an 'L' mask (255 = person)."""
    size = canvas.size
    mask = Image.new("L", size, 0)
    md = ImageDraw.Draw(mask)
    d = ImageDraw.Draw(canvas)
    p = {n: tuple(map(float, pose.xy[i])) for i, n in enumerate(COCO17)}
    r = pose.head_radius
    limb = max(2, int(r * 0.75))

    def line(a: str, b: str, color: Color, width: int) -> None:
        d.line([p[a], p[b]], fill=color, width=width, joint="curve")
        md.line([p[a], p[b]], fill=255, width=width, joint="curve")

    far, near = ("right", "left") if pose.view == "side" else ("left", "right")
    # Backpack behind the body (seen from the back or side).
    if ident.bag == "backpack" and pose.view != "front":
        sx = (p["left_shoulder"][0] + p["right_shoulder"][0]) / 2
        off = -r * 0.9 if pose.view == "side" else 0.0
        box = [sx - r * 1.1 + off, p["left_shoulder"][1] + r * 0.2, sx + r * 1.1 + off, p["left_hip"][1] - r * 0.3]
        d.rounded_rectangle(box, radius=int(r * 0.4), fill=ident.bag_color)
        md.rounded_rectangle(box, radius=int(r * 0.4), fill=255)
    # Legs (trousers or shorts), far leg first.
    for s in (far, near):
        lower = ident.lower_color if s == near else tuple(int(c * 0.85) for c in ident.lower_color)
        line(f"{s}_hip", f"{s}_knee", lower, int(limb * 1.35))
        knee_color = ident.skin if ident.shorts else lower
        line(f"{s}_knee", f"{s}_ankle", knee_color, int(limb * 1.15))
        ax, ay = p[f"{s}_ankle"]
        shoe = [ax - r * 0.55, ay - r * 0.25, ax + r * 0.55, ay + r * 0.35]
        d.ellipse(shoe, fill=ident.shoe_color)
        md.ellipse(shoe, fill=255)
    # Torso: a polygon between shoulders and hips, filled with the upper-body pattern.
    torso = [p["left_shoulder"], p["right_shoulder"], p["right_hip"], p["left_hip"]]
    if pose.view == "side":
        cx = (p["left_shoulder"][0] + p["right_shoulder"][0]) / 2
        torso = [(cx - r * 0.9, p["left_shoulder"][1]), (cx + r * 0.9, p["left_shoulder"][1]),
                 (cx + r * 0.75, p["left_hip"][1] + r * 0.3), (cx - r * 0.75, p["left_hip"][1] + r * 0.3)]
    else:
        torso = [(x, y) for x, y in torso]
        torso[2] = (torso[2][0], torso[2][1] + r * 0.3)
        torso[3] = (torso[3][0], torso[3][1] + r * 0.3)
    tmask = Image.new("L", size, 0)
    ImageDraw.Draw(tmask).polygon(torso, fill=255)
    pattern = ident.upper_pattern
    layer = _pattern_layer(size, ident.upper_color, ident.upper_color2,
                           pattern if pattern in ("hstripes", "vstripes", "checks") else "solid", r * 0.45)
    if pattern == "twotone":
        mid = (p["left_shoulder"][1] + p["left_hip"][1]) / 2
        ImageDraw.Draw(layer).rectangle([0, mid, size[0], size[1]], fill=ident.upper_color2)
    elif pattern == "logo" and pose.view == "front":
        cx = (p["left_shoulder"][0] + p["right_shoulder"][0]) / 2
        cy = p["left_shoulder"][1] + r * 1.3
        ImageDraw.Draw(layer).rectangle([cx - r * 0.5, cy - r * 0.4, cx + r * 0.5, cy + r * 0.4],
                                        fill=ident.upper_color2)
    canvas.paste(layer, (0, 0), tmask)
    mask.paste(255, (0, 0), tmask)
    # Arms: sleeves then skin.
    for s in (far, near):
        sleeve = ident.upper_color if s == near else tuple(int(c * 0.85) for c in ident.upper_color)
        line(f"{s}_shoulder", f"{s}_elbow", sleeve, limb)
        line(f"{s}_elbow", f"{s}_wrist", ident.skin if ident.short_sleeves else sleeve, int(limb * 0.9))
        wx, wy = p[f"{s}_wrist"]
        d.ellipse([wx - r * 0.3, wy - r * 0.3, wx + r * 0.3, wy + r * 0.3], fill=ident.skin)
    if ident.bag == "handbag":
        wx, wy = p[f"{near}_wrist"]
        box = [wx - r * 0.7, wy, wx + r * 0.7, wy + r * 1.2]
        d.rectangle(box, fill=ident.bag_color)
        md.rectangle(box, fill=255)
    elif ident.bag == "shoulder":
        sx, sy = p[f"{near}_shoulder"]
        hx, hy = p[f"{far}_hip"]
        d.line([(sx, sy), (hx, hy)], fill=ident.bag_color, width=max(1, int(r * 0.2)))
        box = [hx - r * 0.6, hy - r * 0.5, hx + r * 0.6, hy + r * 0.4]
        d.rectangle(box, fill=ident.bag_color)
        md.rectangle(box, fill=255)
    # Neck, head and hair.
    hx, hy = pose.head_center
    d.rectangle([hx - r * 0.35, hy + r * 0.6, hx + r * 0.35, p["left_shoulder"][1] + 1], fill=ident.skin)
    head = [hx - r * 0.85, hy - r, hx + r * 0.85, hy + r]
    d.ellipse(head, fill=ident.skin)
    md.ellipse([hx - r * 0.85, hy - r, hx + r * 0.85, p["left_shoulder"][1]], fill=255)
    if ident.hair_style != "bald":
        color = ident.hair_color if ident.hair_style != "cap" else ident.upper_color2
        top = [hx - r * 0.9, hy - r * 1.08, hx + r * 0.9, hy + (r * 0.9 if pose.view == "back" else -r * 0.05)]
        d.chord(top, 180, 360, fill=color) if pose.view != "back" else d.ellipse(top, fill=color)
        if ident.hair_style == "long":
            d.rectangle([hx - r * 0.9, hy - r * 0.2, hx + r * 0.9, hy + r * 1.3], fill=ident.hair_color)
            if pose.view == "front":
                d.ellipse([hx - r * 0.6, hy - r * 0.55, hx + r * 0.6, hy + r * 0.85], fill=ident.skin)
    if pose.view == "front":
        for name in ("left_eye", "right_eye"):
            ex, ey = p[name]
            d.ellipse([ex - 1, ey - 1, ex + 1, ey + 1], fill=(30, 30, 30))
    return mask
