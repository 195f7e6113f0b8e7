"""The "Clever Hans" test (paper, Sec. 4): does a model match the person or the occluder?

Two test sets share identities, cameras and looks and differ in one thing only:
- ``same``: each query and its true gallery matches are hidden by the same kind of object at the same place;
- ``different``: the true matches are hidden by another kind of object (or by none), placed elsewhere.
Gallery distractors are occluded at random in both. A model that matches persons scores alike on both; the gap
``same - different`` measures how much it matches occluders instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_path, atomic_write_text
from opreid_bench.synth.appearance import sample_camera, sample_identity
from opreid_bench.synth.occluders import OCCLUDER_KINDS
from opreid_bench.synth.render import render_crop

# Occluders whose placement can be pinned so that "the same place" is well defined.
PINNABLE = ("cart", "sign", "car", "bush")


@dataclass(frozen=True)
class CleverHansConfig:
    num_ids: int = 100
    num_cameras: int = 4
    gallery_per_id: int = 2
    distractor_ids: int = 100
    width: int = 128
    height: int = 256
    seed: int = 0


def _pin(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> dict:
    w, h = size
    if kind == "sign":
        return {"x0": float(rng.uniform(-0.1, 0.4) * w), "width": float(rng.uniform(0.5, 0.8) * w),
                "top": float(rng.uniform(0.3, 0.55) * h), "height": float(rng.uniform(0.25, 0.35) * h),
                "color": tuple(int(c) for c in rng.integers(0, 255, 3))}
    return {"x0": float(rng.uniform(-0.2, 0.3) * w), "width": float(rng.uniform(0.6, 0.95) * w),
            "top": float(rng.uniform(0.5, 0.65) * h), "color": tuple(int(c) for c in rng.integers(0, 255, 3))}


def build_clever_hans(out_dir: str | Path, cfg: CleverHansConfig = CleverHansConfig()) -> dict[str, Path]:
    """Write ``out_dir/same`` and ``out_dir/different`` as Market-style folders (``query/``, ``bounding_box_test/``).

    File names follow Market-1501 (``PPPP_cC_s1_IIIIII_00.jpg``) so the ``market1501``-style loaders and the
    Market junk rule apply (query and true matches always come from different cameras). The sets are built in a
    temporary sibling and swapped in whole (``opreid_bench.outputs``): a rerun with fewer identities leaves no stale
    crop, a killed run leaves the previous sets, and a folder that another command wrote is refused.
    """
    from dataclasses import asdict

    from opreid_bench.outputs import fingerprint, output_folder

    out = Path(out_dir)
    options = asdict(cfg)
    with output_folder(out, "synth-clever-hans", kind="clever-hans", fingerprint=fingerprint(options),
                       options=options, swap=True) as new:
        _build_into(new, cfg)
    return {variant: out / variant for variant in ("same", "different")}


def _build_into(out: Path, cfg: CleverHansConfig) -> None:
    size = (cfg.width, cfg.height)
    for variant in ("same", "different"):
        root = out / variant
        rows = ["path,pid,camid,occluder"]
        for pid in range(1, cfg.num_ids + cfg.distractor_ids + 1):
            rng = np.random.default_rng([cfg.seed, 11, pid])  # identical plan in both variants
            ident = sample_identity(pid, cfg.seed + 1000)
            cams = rng.choice(np.arange(1, cfg.num_cameras + 1), size=min(cfg.num_cameras, 1 + cfg.gallery_per_id),
                              replace=False)
            kind = str(rng.choice(PINNABLE))
            pinned = _pin(kind, rng, size)
            other = str(rng.choice([k for k in OCCLUDER_KINDS if k != kind] + [""]))
            is_query_id = pid <= cfg.num_ids
            items = []
            if is_query_id:
                items.append(("query", int(cams[0]), kind, pinned))
                for j in range(cfg.gallery_per_id):
                    if variant == "same":
                        items.append(("bounding_box_test", int(cams[1 + j % (len(cams) - 1)]), kind, pinned))
                    else:
                        items.append(("bounding_box_test", int(cams[1 + j % (len(cams) - 1)]), other, None))
            else:
                for j in range(cfg.gallery_per_id):
                    k = str(rng.choice(list(PINNABLE) + [""]))
                    items.append(("bounding_box_test", int(cams[j % len(cams)]), k, _pin(k, rng, size) if k else None))
            for idx, (folder, cam, occ, params) in enumerate(items):
                crng = np.random.default_rng([cfg.seed, 12, pid, idx])
                crop = render_crop(ident, sample_camera(cam, cfg.seed + 1000), crng, size=size, occluder=occ,
                                   occluder_params=params)
                name = f"{pid:04d}_c{cam}s1_{idx:06d}_00.jpg"
                target = root / folder / name
                with atomic_path(target, durable=False) as tmp:  # the whole folder is synced before its swap
                    crop.image.save(tmp, format="JPEG", quality=90)
                rows.append(f"{folder}/{name},{pid},{cam},{occ}")
        (root / "bounding_box_train").mkdir(parents=True, exist_ok=True)  # test-only set: no training images
        atomic_write_text(root / "occluders.csv", "\n".join(rows) + "\n", durable=False)
