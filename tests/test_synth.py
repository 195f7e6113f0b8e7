from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from opreid_bench.synth.appearance import sample_camera, sample_identity
from opreid_bench.synth.generator import SynthConfig, generate_pool, plan_pool, render_spec
from opreid_bench.synth.occluders import OCCLUDER_KINDS, draw_occluder, keypoint_visibility
from opreid_bench.synth.render import render_crop


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_any_workers(tmp_path: Path) -> None:
    cfg = SynthConfig(num_ids=6, num_cameras=3, min_images=3, max_images=4, seed=7)
    generate_pool(tmp_path / "a", cfg, workers=1)
    generate_pool(tmp_path / "b", cfg, workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate_pool(tmp_path / "c", SynthConfig(num_ids=6, num_cameras=3, min_images=3, max_images=4, seed=8))
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_a_smaller_rerun_leaves_only_its_own_crops(tmp_path: Path) -> None:
    big = SynthConfig(num_ids=6, num_cameras=3, min_images=3, max_images=4, seed=7)
    small = SynthConfig(num_ids=3, num_cameras=3, min_images=3, max_images=4, seed=7)
    generate_pool(tmp_path / "pool", big)
    (tmp_path / "pool" / "images" / "notes.txt").write_text("mine")  # not a name synth writes: kept
    generate_pool(tmp_path / "pool", small)
    listed = {line.split(",")[0] for line in (tmp_path / "pool" / "manifest.csv").read_text().splitlines()[1:]}
    on_disk = {f"images/{p.name}" for p in (tmp_path / "pool" / "images").iterdir()}
    assert on_disk == listed | {"images/notes.txt"}
    generate_pool(tmp_path / "fresh", small)
    (tmp_path / "pool" / "images" / "notes.txt").unlink()
    assert _digest(tmp_path / "pool" / "images") == _digest(tmp_path / "fresh" / "images")


def test_pool_layout_and_keypoints(tmp_path: Path) -> None:
    cfg = SynthConfig(num_ids=5, num_cameras=4, min_images=4, max_images=4, occlusion_rate=0.5, seed=1)
    manifest = generate_pool(tmp_path, cfg)
    lines = manifest.read_text().splitlines()
    assert lines[0].startswith("path,pid,camid")
    assert len(lines) - 1 == 20
    kp = (tmp_path / "keypoints.csv").read_text().splitlines()
    assert len(kp) == 21 and len(kp[0].split(",")) == 1 + 17 * 3
    for line in lines[1:]:
        path, pid, camid = line.split(",")[:3]
        assert (tmp_path / path).exists()
    # every identity is seen by at least two cameras
    cams: dict[str, set] = {}
    for line in lines[1:]:
        _, pid, camid = line.split(",")[:3]
        cams.setdefault(pid, set()).add(camid)
    assert all(len(c) >= 2 for c in cams.values())


def test_pool_images_are_synced_once_before_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image is fsync-ed (once, in one parallel pass over the folder) before the manifest that lists it is
    written; not two syncs per image, which made writing a 10k-crop pool slower than rendering it."""
    import opreid_bench.atomic as atomic
    import opreid_bench.outputs as outputs

    events: list[str] = []
    real_file, real_dir, real_replace = atomic.fsync_file, atomic.fsync_dir, atomic.os.replace

    def fsync_file(path: str) -> None:
        events.append(f"sync {Path(path).name}")
        real_file(path)

    def fsync_dir(path: str) -> None:
        events.append("sync dir")
        real_dir(path)

    def replace(src: str, dst: str) -> None:
        events.append(f"write {Path(dst).name}")
        real_replace(src, dst)

    for module in (atomic, outputs):
        monkeypatch.setattr(module, "fsync_file", fsync_file)
        monkeypatch.setattr(module, "fsync_dir", fsync_dir)
    monkeypatch.setattr(atomic.os, "replace", replace)
    generate_pool(tmp_path, SynthConfig(num_ids=4, num_cameras=2, min_images=3, max_images=3, seed=2))
    images = [p.name for p in (tmp_path / "images").rglob("*.jpg")]
    assert len(images) == 12
    manifest_at = events.index("write manifest.csv")
    for name in images:
        assert events.count(f"sync {name}") == 1 and events.index(f"sync {name}") < manifest_at
    assert events.count("sync dir") < len(images)


def test_visibility_follows_the_occluder_mask() -> None:
    ident, cam = sample_identity(3, 0), sample_camera(1, 0)
    for kind in OCCLUDER_KINDS:
        rng = np.random.default_rng(5)
        crop = render_crop(ident, cam, rng, occluder=kind)
        assert crop.visible.shape == (17,)
        assert 0.0 <= crop.hidden_body_fraction <= 1.0
    holistic = render_crop(ident, cam, np.random.default_rng(0))
    assert holistic.visible.all() and holistic.hidden_body_fraction == 0.0


def test_keypoint_visibility_rule() -> None:
    mask = np.zeros((20, 10), dtype=bool)
    mask[10:, :] = True
    xy = np.array([[5, 5], [5, 15], [-1, 5], [5, 25]] + [[1, 1]] * 13, dtype=np.float32)
    vis = keypoint_visibility(xy, mask, (10, 20))
    assert vis[:4].tolist() == [True, False, False, False]


def test_pinned_occluder_is_reproducible() -> None:
    from PIL import Image

    a, b = Image.new("RGB", (128, 256)), Image.new("RGB", (128, 256))
    params = {"top": 150.0, "x0": 10.0, "width": 90.0, "color": (200, 0, 0)}
    ma = draw_occluder(a, "cart", np.random.default_rng(1), params)
    mb = draw_occluder(b, "cart", np.random.default_rng(2), params)
    assert (ma == mb).all()


def test_plan_is_cheap_and_render_deterministic() -> None:
    cfg = SynthConfig(num_ids=3, seed=2)
    specs = plan_pool(cfg)
    assert specs == plan_pool(cfg)
    assert render_spec(specs[0], cfg)[0] == render_spec(specs[0], cfg)[0]


def _market_tree(root: Path) -> Path:
    """A tiny Market-style tree with real (drawn) JPEGs."""
    from PIL import Image

    base = root / "Market-1501-v15.09.15"
    rng = np.random.default_rng(0)
    for folder, pids in (("bounding_box_train", (1, 2)), ("query", (3, 4)), ("bounding_box_test", (3, 4, 5))):
        for pid in pids:
            for cam in (1, 2):
                arr = rng.integers(0, 255, size=(128, 64, 3), dtype=np.uint8)
                p = base / folder / f"{pid:04d}_c{cam}s1_{pid * 10 + cam:06d}_00.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(p, quality=95)
    return root


def test_synth_occlude_keeps_layout_and_occludes_only_chosen_split(tmp_path: Path) -> None:
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.synth.occlude_dataset import occlude_dataset

    src = _market_tree(tmp_path / "src")
    out = tmp_path / "occ"
    manifest = occlude_dataset("market1501", src, out, splits=("query",), rate=1.0, seed=3)
    rows = manifest.read_text().splitlines()[1:]
    assert len(rows) == 4 and all(",query," in r for r in rows)
    a, b = load_dataset("market1501", src), load_dataset("market1501", out)
    assert [(r.pid, r.camid) for r in a.query] == [(r.pid, r.camid) for r in b.query]
    for ra, rb in zip(a.gallery, b.gallery):  # untouched splits are byte-identical copies
        assert Path(ra.path).read_bytes() == Path(rb.path).read_bytes()
    assert all(Path(ra.path).read_bytes() != Path(rb.path).read_bytes() for ra, rb in zip(a.query, b.query))
    again = tmp_path / "occ2"
    occlude_dataset("market1501", src, again, splits=("query",), rate=1.0, seed=3)
    assert _digest(out) == _digest(again)


def test_synth_occlude_cli_rejects_bad_split(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = _market_tree(tmp_path / "src")
    out = subprocess.run([sys.executable, "-m", "opreid_bench", "synth-occlude", "--dataset", "market1501", "--root",
                          str(src), "--out", str(tmp_path / "o"), "--splits", "probe"], capture_output=True, text=True)
    assert out.returncode == 2 and "probe" in out.stderr and "Traceback" not in out.stderr


def test_clever_hans_sets_load_and_differ_only_in_true_match_occluders(tmp_path: Path) -> None:
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.synth.clever_hans import CleverHansConfig, build_clever_hans

    paths = build_clever_hans(tmp_path, CleverHansConfig(num_ids=4, distractor_ids=3, width=64, height=128))
    same, diff = (load_dataset("market1501", paths[v]) for v in ("same", "different"))
    assert len(same.query) == len(diff.query) == 4
    assert len(same.gallery) == len(diff.gallery) == 4 * 2 + 3 * 2
    q_cams = {r.pid: r.camid for r in same.query}
    assert all(r.camid != q_cams[r.pid] for r in same.gallery if r.pid in q_cams)  # matches from other cameras

    def occ(root: Path) -> dict[str, tuple[str, str]]:  # path -> (kind, appearance)
        lines = (root / "occluders.csv").read_text().splitlines()[1:]
        return {ln.split(",")[0]: (ln.split(",")[3], ln.split(",")[4]) for ln in lines}

    o_same, o_diff = occ(paths["same"]), occ(paths["different"])
    for path, (kind, look) in o_same.items():
        pid = int(Path(path).name[:4])
        if path.startswith("bounding_box_test") and pid <= 4:
            q_kind, q_look = next(v for p, v in o_same.items() if p.startswith("query") and int(Path(p).name[:4]) == pid)
            # same geometry in both sets; only the appearance of the true matches' occluder differs
            assert kind == q_kind == o_diff[path][0] and look == q_look != o_diff[path][1]


@pytest.mark.parametrize("size", [(16, 16), (300, 16), (16, 300), (64, 32)])
def test_every_occluder_and_scene_draws_at_any_allowed_size(size: tuple[int, int]) -> None:
    """--size accepts any side from 16 px: every camera texture and occluder kind must draw there (a wall too low for
    windows, shelves too close for their boxes), not raise."""
    from dataclasses import replace

    ident = sample_identity(1, seed=0)
    for texture in ("shelves", "tiles", "plain", "windows"):
        cam = replace(sample_camera(1, seed=0), texture=texture)
        for kind in ("", *OCCLUDER_KINDS):
            for seed in range(3):
                crop = render_crop(ident, cam, np.random.default_rng(seed), size=size, occluder=kind)
                assert crop.image.size == size
