"""The "Clever Hans" test (paper, Sec. 4): does a model match the person or the occluder's appearance?

Two test sets, ``same`` and ``different``, are rendered from one plan and differ in one thing only: the appearance
(colour and surface pattern) of the occluder on the true gallery matches.

- Every query identity gets one occluder *geometry* (a kind's silhouette at a fixed place and size, its random
  details fixed by a seed). The query and all its true matches are occluded by that geometry in BOTH sets, so the
  visible body region is the same between the sets, crop by crop (the occluder masks are identical pixel for pixel;
  ``occluders.csv`` records a digest of each mask).
- ``same``: the true matches' occluder has the query's appearance. ``different``: the same silhouette is filled with
  another appearance (a hue at least 120 degrees away and another pattern).
- Queries and gallery distractors (other identities, occluded at random or not at all) are byte-identical between
  the sets; person, pose, background and camera noise of every crop are too.

So the gap ``mAP(same) - mAP(different)`` over the same queries (a paired difference) measures how much a model
relies on the occluder's *appearance* to match. A model that matches only the visible person scores alike on both
(up to the few pixels where JPEG blocks and camera blur mix occluder and person), whatever it makes of the occluded
body part. What the gap does not measure: matching on the occluder's shape or position, which is kept equal in both
sets on purpose (changing it would change the visible body region too).
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_path, atomic_write_text
from opreid_bench.synth.appearance import sample_camera, sample_identity
from opreid_bench.synth.occluders import APPEARANCE_PATTERNS, OccluderAppearance, PinnedOccluder
from opreid_bench.synth.render import Crop, render_crop

# Occluders whose placement can be pinned so that "the same place" is well defined.
PINNABLE = ("cart", "sign", "car", "bush")
VARIANTS = ("same", "different")
DESIGN = 2  # 1: other kind at another place in "different"; 2: same geometry, other appearance (this module)

_HUES = 12  # appearance palette: 12 hues x 2 brightness levels x the patterns
_MIN_HUE_STEPS = 4  # "different" appearance: at least 4 of 12 hue steps (120 degrees) away from the query's


@dataclass(frozen=True)
class CleverHansConfig:
    """Sizes of the two sets: query identities (1 query + ``gallery_per_id`` true matches each), distractor
    identities (``gallery_per_id`` gallery crops each), crop size and seed."""

    num_ids: int = 100
    num_cameras: int = 4
    gallery_per_id: int = 2
    distractor_ids: int = 100
    width: int = 128
    height: int = 256
    seed: int = 0
    design: int = DESIGN  # part of the sets' fingerprint: sets of the first design are never reused as these


@dataclass(frozen=True)
class CropSpec:
    """One crop of one set: where it goes, who and which camera, its occluder (None: holistic) and its role."""

    folder: str  # "query" | "bounding_box_test"
    name: str  # Market-1501 file name
    pid: int
    camid: int
    index: int  # per-identity crop index: seeds the crop's person, pose, background and camera noise
    occluder: PinnedOccluder | None
    role: str  # "query" | "match" | "distractor"

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.name}"


def _look(hue: int, bright: int, pattern: str) -> OccluderAppearance:
    r, g, b = colorsys.hsv_to_rgb(hue / _HUES, 0.8, (0.55, 0.9)[bright])
    return OccluderAppearance((int(r * 255), int(g * 255), int(b * 255)), pattern)


def _sample_look(rng: np.random.Generator) -> tuple[int, int, str]:
    return int(rng.integers(_HUES)), int(rng.integers(2)), str(rng.choice(APPEARANCE_PATTERNS))


def _contrasting_look(look: tuple[int, int, str], rng: np.random.Generator) -> tuple[int, int, str]:
    hue, _, pattern = look
    shift = int(rng.integers(_MIN_HUE_STEPS, _HUES - _MIN_HUE_STEPS + 1))
    others = [p for p in APPEARANCE_PATTERNS if p != pattern]
    return (hue + shift) % _HUES, int(rng.integers(2)), str(others[int(rng.integers(len(others)))])


def _geometry(rng: np.random.Generator, size: tuple[int, int]) -> tuple[str, tuple[tuple[str, float], ...], int]:
    """A kind, its pinned placement and the seed of its remaining random details (kind-independent draws)."""
    w, h = size
    kind = str(rng.choice(PINNABLE))
    if kind == "sign":
        place = {"x0": rng.uniform(-0.1, 0.4) * w, "width": rng.uniform(0.5, 0.8) * w,
                 "top": rng.uniform(0.3, 0.55) * h, "height": rng.uniform(0.25, 0.35) * h}
    else:
        place = {"x0": rng.uniform(-0.2, 0.3) * w, "width": rng.uniform(0.6, 0.95) * w,
                 "top": rng.uniform(0.5, 0.65) * h}
    shape_seed = int(rng.integers(1 << 31))
    return kind, tuple((k, float(v)) for k, v in sorted(place.items())), shape_seed


def _pinned(geometry: tuple[str, tuple[tuple[str, float], ...], int], look: tuple[int, int, str]) -> PinnedOccluder:
    kind, place, shape_seed = geometry
    return PinnedOccluder(kind, place, shape_seed, _look(*look))


def plan_clever_hans(cfg: CleverHansConfig) -> dict[str, list[CropSpec]]:
    """Both sets' crops, in writing order: the two lists differ only in the true matches' occluder appearance."""
    if cfg.design != DESIGN:
        raise ValueError(f"Clever Hans design {cfg.design} is not built by this version (only design {DESIGN})")
    size = (cfg.width, cfg.height)
    plans: dict[str, list[CropSpec]] = {v: [] for v in VARIANTS}
    for pid in range(1, cfg.num_ids + cfg.distractor_ids + 1):
        rng = np.random.default_rng([cfg.seed, 11, pid, cfg.design])
        cams = rng.choice(np.arange(1, cfg.num_cameras + 1), size=min(cfg.num_cameras, 1 + cfg.gallery_per_id),
                          replace=False)
        items: dict[str, list[tuple[str, int, PinnedOccluder | None, str]]] = {v: [] for v in VARIANTS}
        if pid <= cfg.num_ids:
            geometry = _geometry(rng, size)
            look = _sample_look(rng)
            other = _contrasting_look(look, rng)
            for v in VARIANTS:
                items[v].append(("query", int(cams[0]), _pinned(geometry, look), "query"))
            for j in range(cfg.gallery_per_id):
                cam = int(cams[1 + j % (len(cams) - 1)])
                items["same"].append(("bounding_box_test", cam, _pinned(geometry, look), "match"))
                items["different"].append(("bounding_box_test", cam, _pinned(geometry, other), "match"))
        else:
            for j in range(cfg.gallery_per_id):
                holistic = rng.random() < 0.2
                geometry, look = _geometry(rng, size), _sample_look(rng)
                occ = None if holistic else _pinned(geometry, look)
                for v in VARIANTS:
                    items[v].append(("bounding_box_test", int(cams[j % len(cams)]), occ, "distractor"))
        for v in VARIANTS:
            for idx, (folder, cam, occ, role) in enumerate(items[v]):
                plans[v].append(CropSpec(folder, f"{pid:04d}_c{cam}s1_{idx:06d}_00.jpg", pid, cam, idx, occ, role))
    return plans


def render_spec(spec: CropSpec, cfg: CleverHansConfig) -> Crop:
    """Render one planned crop (deterministic: the crop's own seed, the identity's look, the camera's style)."""
    crng = np.random.default_rng([cfg.seed, 12, spec.pid, spec.index])
    return render_crop(sample_identity(spec.pid, cfg.seed + 1000), sample_camera(spec.camid, cfg.seed + 1000), crng,
                       size=(cfg.width, cfg.height), pinned_occluder=spec.occluder)


def mask_digest(mask: np.ndarray | None) -> str:
    """A short digest of an occluder mask ("" for none): equal digests, equal masks pixel for pixel."""
    if mask is None:
        return ""
    return hashlib.sha1(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).hexdigest()[:16]


def build_clever_hans(out_dir: str | Path, cfg: CleverHansConfig = CleverHansConfig()) -> dict[str, Path]:
    """Write ``out_dir/same`` and ``out_dir/different`` as Market-style folders (``query/``, ``bounding_box_test/``).

    File names follow Market-1501 (``PPPP_cC_s1_IIIIII_00.jpg``) so the ``market1501``-style loaders and the
    Market junk rule apply (query and true matches always come from different cameras). Each set's
    ``occluders.csv`` lists per crop the occluder kind, its appearance, the crop's role and a digest of its mask.
    JPEGs are written without chroma subsampling so an occluder's colour stays within the 8x8 blocks it touches.
    The sets are built in a temporary sibling and swapped in whole (``opreid_bench.outputs``): a rerun with fewer
    identities leaves no stale crop, a killed run leaves the previous sets, and a folder that another command wrote
    is refused.
    """
    from dataclasses import asdict

    from opreid_bench.outputs import fingerprint, output_folder

    out = Path(out_dir)
    options = asdict(cfg)
    with output_folder(out, "synth-clever-hans", kind="clever-hans", fingerprint=fingerprint(options),
                       options=options, swap=True) as new:
        _build_into(new, cfg)
    return {variant: out / variant for variant in VARIANTS}


def _build_into(out: Path, cfg: CleverHansConfig) -> None:
    plans = plan_clever_hans(cfg)
    rendered: dict[tuple[int, int, PinnedOccluder | None], Crop] = {}
    for variant in VARIANTS:
        root = out / variant
        rows = ["path,pid,camid,occluder,appearance,role,mask"]
        for spec in plans[variant]:
            key = (spec.pid, spec.index, spec.occluder)
            crop = rendered.pop(key, None) or render_spec(spec, cfg)
            if variant == VARIANTS[0] and spec.role != "match":
                rendered[key] = crop  # queries and distractors are the same in both sets: drawn once
            with atomic_path(root / spec.folder / spec.name, durable=False) as tmp:  # synced before the swap
                crop.image.save(tmp, format="JPEG", quality=90, subsampling=0)
            look = spec.occluder.appearance.label() if spec.occluder else ""
            rows.append(f"{spec.path},{spec.pid},{spec.camid},{crop.occluder},{look},{spec.role},"
                        f"{mask_digest(crop.occluder_mask)}")
        (root / "bounding_box_train").mkdir(parents=True, exist_ok=True)  # test-only set: no training images
        atomic_write_text(root / "occluders.csv", "\n".join(rows) + "\n", durable=False)


def read_occluders(root: str | Path) -> dict[str, dict[str, str]]:
    """``occluders.csv`` of one set: relative path -> its columns (occluder, appearance, role, mask, ...)."""
    lines = Path(root, "occluders.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    return {row[0]: dict(zip(header, row)) for row in (ln.split(",") for ln in lines[1:] if ln)}
