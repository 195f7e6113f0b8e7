"""Random but seeded looks: what makes an identity recognisable and what makes a camera different."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Color = tuple[int, int, int]

PATTERNS = ("solid", "hstripes", "vstripes", "checks", "twotone", "logo")
BAGS = ("none", "none", "backpack", "handbag", "shoulder")
HAIR = ("short", "long", "bald", "cap")
VIEWS = ("front", "back", "side")

_SKIN = [(255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (96, 60, 30)]
_HAIR_COLORS = [(20, 20, 20), (60, 40, 20), (110, 70, 30), (200, 170, 90), (150, 150, 150), (120, 30, 20)]


def _color(rng: np.random.Generator) -> Color:
    """A clothing colour: saturated or neutral, spread over hue so identities differ."""
    if rng.random() < 0.3:
        v = int(rng.integers(20, 235))
        return (v, v, v)
    hue = rng.random()
    sat = rng.uniform(0.35, 0.95)
    val = rng.uniform(0.3, 0.95)
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    r, g, b = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return (int(r * 255), int(g * 255), int(b * 255))


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same for one person across cameras."""

    pid: int
    height: float  # relative body height (1.0 = average)
    width: float  # relative shoulder/hip width
    skin: Color
    hair_style: str
    hair_color: Color
    upper_color: Color
    upper_color2: Color
    upper_pattern: str
    short_sleeves: bool
    lower_color: Color
    lower_color2: Color
    lower_pattern: str
    shorts: bool
    shoe_color: Color
    bag: str
    bag_color: Color


def sample_identity(pid: int, seed: int) -> Identity:
    """The look of identity ``pid`` under ``seed`` (independent of every other identity)."""
    rng = np.random.default_rng([seed, 1, pid])
    return Identity(
        pid=pid,
        height=float(rng.uniform(0.88, 1.08)),
        width=float(rng.uniform(0.85, 1.2)),
        skin=_SKIN[int(rng.integers(len(_SKIN)))],
        hair_style=HAIR[int(rng.integers(len(HAIR)))],
        hair_color=_HAIR_COLORS[int(rng.integers(len(_HAIR_COLORS)))],
        upper_color=_color(rng),
        upper_color2=_color(rng),
        upper_pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        short_sleeves=bool(rng.random() < 0.4),
        lower_color=_color(rng),
        lower_color2=_color(rng),
        lower_pattern=("solid", "solid", "hstripes", "vstripes")[int(rng.integers(4))],
        shorts=bool(rng.random() < 0.2),
        shoe_color=_color(rng),
        bag=BAGS[int(rng.integers(len(BAGS)))],
        bag_color=_color(rng),
    )


@dataclass(frozen=True)
class CameraStyle:
    """Everything that one camera adds: scene, light, colour cast, preferred viewpoints, scale and blur."""

    camid: int
    wall: Color
    floor: Color
    horizon: float  # fraction of the image height where the floor starts
    texture: str  # "shelves", "tiles", "plain", "windows"
    gain: float
    cast: tuple[float, float, float]
    view_probs: tuple[float, float, float]
    scale: tuple[float, float]
    blur: float


def _muted(rng: np.random.Generator) -> Color:
    """A scene colour: mostly grey with a tint, so that the scene is never a stronger cue than the clothing."""
    c = _color(rng)
    g = float(rng.uniform(90, 200))
    return tuple(int(0.75 * g + 0.25 * v) for v in c)  # type: ignore[return-value]


def sample_camera(camid: int, seed: int) -> CameraStyle:
    """The style of camera ``camid`` under ``seed``."""
    rng = np.random.default_rng([seed, 2, camid])
    probs = rng.dirichlet([1.5, 1.5, 1.5])
    lo = float(rng.uniform(0.82, 0.9))
    return CameraStyle(
        camid=camid,
        wall=_muted(rng),
        floor=_muted(rng),
        horizon=float(rng.uniform(0.55, 0.8)),
        texture=("shelves", "tiles", "plain", "windows")[int(rng.integers(4))],
        gain=float(rng.uniform(0.8, 1.15)),
        cast=(float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.9, 1.1))),
        view_probs=(float(probs[0]), float(probs[1]), float(probs[2])),
        scale=(lo, min(0.98, lo + 0.08)),
        blur=float(rng.choice([0.0, 0.0, 0.5, 1.0, 1.5])),
    )
