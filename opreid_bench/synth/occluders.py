"""Occluders of the kinds the paper names, each drawn with its own mask so keypoint visibility is exact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from opreid_bench.synth.appearance import _color, sample_identity

OCCLUDER_KINDS = ("cart", "sign", "rack", "wall", "car", "bush", "person")

DrawFn = Callable[[Image.Image, Image.Image, np.random.Generator, dict], None]


def _both(d: ImageDraw.ImageDraw, md: ImageDraw.ImageDraw, method: str, box, color, **kw) -> None:
    getattr(d, method)(box, fill=color, **kw)
    getattr(md, method)(box, fill=255, **kw)


def _cart(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    x0 = params.get("x0", rng.uniform(-0.3, 0.4) * w)
    cw = params.get("width", rng.uniform(0.55, 0.95) * w)
    top = params.get("top", rng.uniform(0.5, 0.68) * h)
    color = params.get("color", _color(rng))
    bottom = h * 0.93
    dark = tuple(int(c * 0.55) for c in color)
    _both(d, md, "rectangle", [x0, top, x0 + cw, top + (bottom - top) * 0.72], dark)  # plastic basket
    for i in range(6):
        y = top + (bottom - top) * 0.7 * i / 5
        d.line([(x0, y), (x0 + cw, y)], fill=color, width=2)
    d.rectangle([x0, top, x0 + cw, top + (bottom - top) * 0.72], outline=color, width=3)
    for k in range(1, 8):
        x = x0 + cw * k / 8
        d.line([(x, top), (x, top + (bottom - top) * 0.72)], fill=color, width=2)
    d.line([(x0 + cw, top), (x0 + cw * 1.1, top - h * 0.06)], fill=color, width=3)
    for wx in (x0 + cw * 0.15, x0 + cw * 0.85):
        _both(d, md, "ellipse", [wx - 6, bottom - 6, wx + 6, bottom + 6], (30, 30, 30))
    d.rectangle([x0 + 4, top + (bottom - top) * 0.72, x0 + cw - 4, top + (bottom - top) * 0.76], fill=color)


def _sign(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    sw = params.get("width", rng.uniform(0.45, 0.8) * w)
    x0 = params.get("x0", rng.uniform(-0.1, 0.6) * w - sw / 3)
    top = params.get("top", rng.uniform(0.25, 0.6) * h)
    sh = params.get("height", rng.uniform(0.22, 0.4) * h)
    color = params.get("color", _color(rng))
    _both(d, md, "rectangle", [x0, top, x0 + sw, top + sh], color)
    for k in range(3):  # text-like bars
        y = top + sh * (0.2 + 0.25 * k)
        d.rectangle([x0 + sw * 0.12, y, x0 + sw * (0.5 + 0.35 * rng.random()), y + sh * 0.08], fill=(250, 250, 250))
    _both(d, md, "rectangle", [x0 + sw * 0.45, top + sh, x0 + sw * 0.55, h], (80, 80, 80))


def _rack(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    left = params.get("left", rng.random() < 0.5)
    rw = params.get("width", rng.uniform(0.35, 0.6) * w)
    x0, x1 = (0, rw) if left else (w - rw, w)
    color = params.get("color", _color(rng))
    _both(d, md, "rectangle", [x0, 0, x1, h], tuple(int(c * 0.6) for c in color))
    n = int(rng.integers(4, 7))
    for k in range(n):
        y = h * (k + 1) / (n + 1)
        d.rectangle([x0, y, x1, y + 3], fill=(200, 200, 200))
        bx = x0 + 2
        while bx < x1 - 6:
            bw = rng.uniform(8, 20)
            box_h = rng.uniform(0.4, 0.85) * h / (n + 1)  # boxes fit between two shelves
            d.rectangle([bx, min(y - box_h, y - 1), min(bx + bw, x1 - 2), y - 1], fill=_color(rng))
            bx += bw + 2


def _wall(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    left = params.get("left", rng.random() < 0.5)
    ww = params.get("width", rng.uniform(0.3, 0.55) * w)
    x0, x1 = (0, ww) if left else (w - ww, w)
    color = params.get("color", (int(rng.integers(150, 230)),) * 3)
    _both(d, md, "rectangle", [x0, 0, x1, h], color)
    seam = (x0 + x1) / 2  # elevator doors
    d.line([(seam, 0), (seam, h)], fill=(90, 90, 90), width=2)


def _car(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    top = params.get("top", rng.uniform(0.5, 0.68) * h)
    color = params.get("color", _color(rng))
    x0, x1 = -0.2 * w, 1.2 * w
    _both(d, md, "rounded_rectangle", [x0, top + h * 0.1, x1, h * 1.05], color, radius=12)
    _both(d, md, "rounded_rectangle", [x0 + w * 0.2, top, x1 - w * 0.3, top + h * 0.14], color, radius=10)
    d.rectangle([x0 + w * 0.3, top + h * 0.02, x1 - w * 0.4, top + h * 0.1], fill=(150, 190, 220))
    for wx in (w * 0.1, w * 0.9):
        d.ellipse([wx - h * 0.07, h * 0.9, wx + h * 0.07, h * 1.04], fill=(25, 25, 25))


def _bush(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    w, h = canvas.size
    top = params.get("top", rng.uniform(0.5, 0.75) * h)
    u = h / 256.0  # sizes below are for a 256-pixel-high crop
    base = params.get("color", (int(rng.integers(20, 70)), int(rng.integers(90, 160)), int(rng.integers(20, 70))))
    for _ in range(40):
        cx = rng.uniform(-0.1, 1.1) * w
        cy = rng.uniform(top + 8 * u, h)
        r = rng.uniform(8, 22) * u
        shade = tuple(int(np.clip(c * rng.uniform(0.7, 1.2), 0, 255)) for c in base)
        _both(d, md, "ellipse", [cx - r, cy - r, cx + r, cy + r], shade)
    md.rectangle([0, top + 16 * u, w, h], fill=255)
    d.rectangle([0, min(h, (top + 16 * u + h) / 2 + 10 * u), w, h], fill=base)


def _person(canvas: Image.Image, mask: Image.Image, rng: np.random.Generator, params: dict) -> None:
    # A passer-by in front of the target: a whole drawn person, half off the frame on one side.
    from opreid_bench.synth.person import draw_person, make_pose

    w, h = canvas.size
    other = sample_identity(int(rng.integers(10**6, 10**7)), int(rng.integers(1 << 30)))
    view = ("front", "back", "side")[int(rng.integers(3))]
    left = params.get("left", rng.random() < 0.5)
    cx = (rng.uniform(-0.05, 0.2) if left else rng.uniform(0.8, 1.05)) * w
    pose = make_pose(other, view, cx=cx, feet_y=h * 1.08, height_px=h * rng.uniform(0.95, 1.15), rng=rng)
    silhouette = draw_person(canvas, other, pose)
    mask.paste(255, (0, 0), silhouette)


_DRAW: dict[str, DrawFn] = {
    "cart": _cart, "sign": _sign, "rack": _rack, "wall": _wall, "car": _car, "bush": _bush, "person": _person,
}  # fmt: skip


def draw_occluder(canvas: Image.Image, kind: str, rng: np.random.Generator, params: dict | None = None) -> np.ndarray:
    """Draw an occluder of ``kind`` onto ``canvas`` in place; return its boolean mask (H, W), True = hidden.

    ``params`` pins the occluder's placement/colour; unspecified values and the kind's random details are drawn from
    ``rng``. To fix the whole geometry and choose the appearance (the Clever Hans test), use
    :func:`draw_pinned_occluder`.
    """
    if kind not in _DRAW:
        raise ValueError(f"unknown occluder kind {kind!r}; known: {', '.join(OCCLUDER_KINDS)}")
    mask = Image.new("L", canvas.size, 0)
    _DRAW[kind](canvas, mask, rng, dict(params or {}))
    return np.asarray(mask) > 0


def keypoint_visibility(xy: np.ndarray, occluder_mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """Ground-truth visibility of each keypoint: inside the frame and not under the occluder mask."""
    w, h = size
    x = np.round(xy[:, 0]).astype(int)
    y = np.round(xy[:, 1]).astype(int)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    vis = inside.copy()
    if occluder_mask is not None:
        idx = np.flatnonzero(inside)
        vis[idx] = ~occluder_mask[y[idx], x[idx]]
    return vis


# ------------------------------------------------------------------------------ pinned geometry, chosen appearance
APPEARANCE_PATTERNS = ("native", "stripes", "checks")


@dataclass(frozen=True)
class OccluderAppearance:
    """What an occluder looks like, apart from its shape: a colour and a surface pattern.

    ``native`` is the kind's own drawing in ``color`` (a cart's mesh, a sign's text bars, a bush's leaves);
    ``stripes`` / ``checks`` paint the whole silhouette with ``color`` and a dark shade of it.
    """

    color: tuple[int, int, int]
    pattern: str = "native"

    def label(self) -> str:
        """A short text for manifests, e.g. ``stripes#c83232``."""
        return f"{self.pattern}#{self.color[0]:02x}{self.color[1]:02x}{self.color[2]:02x}"


@dataclass(frozen=True)
class PinnedOccluder:
    """An occluder with a fixed geometry and a chosen appearance (the Clever Hans test's building block).

    The geometry is the kind's silhouette at the ``placement`` values (e.g. ``x0``, ``width``, ``top``) with every
    other random choice drawn from ``shape_seed``: the mask depends on (kind, placement, shape_seed, crop size) only,
    never on the appearance nor on the crop it is drawn onto, so one geometry filled with two appearances hides
    exactly the same pixels.
    """

    kind: str
    placement: tuple[tuple[str, float], ...]
    shape_seed: int
    appearance: OccluderAppearance

    def with_appearance(self, appearance: OccluderAppearance) -> PinnedOccluder:
        """The same geometry filled with another appearance."""
        return PinnedOccluder(self.kind, self.placement, self.shape_seed, appearance)


def _paint_pattern(layer: Image.Image, mask: Image.Image, appearance: OccluderAppearance) -> None:
    w, h = layer.size
    period = max(4, round(h / 24))
    dark = tuple(int(c * 0.3) for c in appearance.color)
    tile = Image.new("RGB", (w, h), appearance.color)
    d = ImageDraw.Draw(tile)
    if appearance.pattern == "stripes":
        for y in range(0, h, 2 * period):
            d.rectangle([0, y, w, y + period - 1], fill=dark)
    else:  # checks
        for y in range(0, h, period):
            for x in range((y // period) % 2 * period, w, 2 * period):
                d.rectangle([x, y, x + period - 1, y + period - 1], fill=dark)
    layer.paste(tile, (0, 0), mask)


def occluder_layer(size: tuple[int, int], occluder: PinnedOccluder) -> tuple[Image.Image, np.ndarray]:
    """The occluder drawn alone: (RGB layer, boolean mask (H, W), True = hidden); only mask pixels count."""
    if occluder.kind not in _DRAW:
        raise ValueError(f"unknown occluder kind {occluder.kind!r}; known: {', '.join(OCCLUDER_KINDS)}")
    if occluder.appearance.pattern not in APPEARANCE_PATTERNS:
        raise ValueError(f"unknown occluder pattern {occluder.appearance.pattern!r}; known: "
                         f"{', '.join(APPEARANCE_PATTERNS)}")
    layer = Image.new("RGB", size, (0, 0, 0))
    mask = Image.new("L", size, 0)
    params = {**dict(occluder.placement), "color": occluder.appearance.color}
    # every draw function consumes the same random numbers whatever the colour, so the mask is appearance-free
    _DRAW[occluder.kind](layer, mask, np.random.default_rng(occluder.shape_seed), params)
    if occluder.appearance.pattern != "native":
        _paint_pattern(layer, mask, occluder.appearance)
    return layer, np.asarray(mask) > 0


def draw_pinned_occluder(canvas: Image.Image, occluder: PinnedOccluder) -> np.ndarray:
    """Paste ``occluder`` onto ``canvas`` in place (exactly its mask's pixels) and return the mask (H, W)."""
    layer, mask = occluder_layer(canvas.size, occluder)
    canvas.paste(layer, (0, 0), Image.fromarray((mask * 255).astype(np.uint8)))
    return mask
