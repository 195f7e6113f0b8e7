"""Issue 10, items 6-7: `mask` through a symlinked pool folder, into the pool's own folder, with two crops that
would share a name, over an unreadable image, and without OpenCV -- one line each, never a traceback, never a
pool file overwritten."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
from PIL import Image

from opreid_bench.cli import main
from opreid_bench.errors import DataError, OpreidError
from opreid_bench.splits import face_detect


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _pool(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (32, 64), (40 * i % 255, 90, 120)).save(folder / name)
    return folder


def _manifest(path: Path, files: list[Path]) -> Path:
    path.write_text("path,pid,camid\n" + "".join(f"{f},{100 + i},0\n" for i, f in enumerate(files)), encoding="utf-8")
    return path


def test_pool_through_a_symlinked_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = _pool(tmp_path / "real" / "images", ["100_0.png", "101_0.png"])
    (tmp_path / "link").symlink_to(tmp_path / "real")
    files = [tmp_path / "link" / "images" / n for n in ("100_0.png", "101_0.png")]
    code, _, err = _cli(["mask", "--pool", str(_manifest(tmp_path / "m.csv", files)), "--out", str(tmp_path / "out"),
                         "--mask", "fill"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["100_0.jpg", "101_0.jpg"]
    assert sorted(p.name for p in real.iterdir()) == ["100_0.png", "101_0.png"]


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_out_equal_to_the_pool_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 suffix: str) -> None:
    images = _pool(tmp_path / "images", [f"100_0.{suffix}", f"101_0.{suffix}"])
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    manifest = _manifest(tmp_path / "m.csv", sorted(images.iterdir()))
    code, _, err = _cli(["mask", "--pool", str(manifest), "--out", str(images), "--mask", "fill"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --out {images} is the pool's image folder {images}")
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before  # nothing re-encoded, nothing added


def test_out_inside_the_pool_folder_or_through_a_link_is_refused(tmp_path: Path) -> None:
    from opreid_bench.splits.mask_plan import mask_output_names

    images = _pool(tmp_path / "images", ["100_0.jpg"])
    paths = [str(images / "100_0.jpg")]
    with pytest.raises(DataError, match="image folder .* or inside it"):
        mask_output_names(paths, images / "masked")
    (tmp_path / "alias").symlink_to(images)
    with pytest.raises(DataError, match="image folder"):
        mask_output_names(paths, tmp_path / "alias")


def test_two_crops_with_one_stem_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _pool(tmp_path / "images", ["a.jpg", "a.png"])
    manifest = _manifest(tmp_path / "m.csv", [images / "a.jpg", images / "a.png"])
    code, _, err = _cli(["mask", "--pool", str(manifest), "--out", str(tmp_path / "out"), "--mask", "fill"], capsys)
    assert code == 2
    assert f"{images / 'a.jpg'} and {images / 'a.png'} would both be written to {tmp_path / 'out' / 'a.jpg'}" in err
    assert not (tmp_path / "out").exists()


def test_names_keep_their_folders(tmp_path: Path) -> None:
    from opreid_bench.splits.mask_plan import mask_output_names

    a = _pool(tmp_path / "pool" / "cam1", ["a.png"])
    b = _pool(tmp_path / "pool" / "cam2", ["a.png"])
    assert mask_output_names([str(a / "a.png"), str(b / "a.png")], tmp_path / "out") == ["cam1/a.jpg", "cam2/a.jpg"]


def test_verify_over_an_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _pool(tmp_path / "split", ["ok.jpg"])
    (folder / "bad.jpg").write_bytes(b"not an image")
    code, _, err = _cli(["mask", "--verify", "--out", str(folder)], capsys)
    assert code == 2
    assert f"error: {folder / 'bad.jpg'}: cannot read image to verify" in err
    assert "Traceback" not in err


def test_face_detection_without_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_cv2(name: str, *args: object, **kwargs: object) -> object:
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    face_detect._cascade.cache_clear()
    try:
        with pytest.raises(OpreidError, match=r"face detection needs opencv: pip install 'opreid-bench\[pose\]'"):
            face_detect.detect_faces(Image.new("RGB", (32, 64)))
    finally:
        face_detect._cascade.cache_clear()


def test_mask_without_opencv_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _pool(tmp_path / "split", ["ok.jpg"])
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "cv2" else real_import(name, *a, **k))
    face_detect._cascade.cache_clear()
    try:
        code, _, err = _cli(["mask", "--verify", "--out", str(folder)], capsys)
    finally:
        face_detect._cascade.cache_clear()
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: face detection needs opencv")
    assert os.path.exists(folder / "ok.jpg")
