"""ImageDataset: item layout, per-(seed, epoch, index) determinism independent of workers, decode errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from opreid_bench.data.records import ImageRecord
from opreid_bench.data.torch_dataset import ImageDataset
from opreid_bench.data.transforms import build_test_transform, build_train_transform
from opreid_bench.errors import DataError


def _records(tmp_path: Path, n: int = 6) -> list[ImageRecord]:
    recs = []
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 256, size=(40, 20, 3), dtype=np.uint8)
        path = tmp_path / f"{i:04d}_c{i % 2}.jpg"
        Image.fromarray(arr).save(path)
        recs.append(ImageRecord(str(path), pid=i // 2, camid=i % 2))
    return recs


def test_item_layout(tmp_path: Path) -> None:
    ds = ImageDataset(_records(tmp_path), build_test_transform(32, 16))
    x, pid, camid, index = ds[3]
    assert x.shape == (3, 32, 16) and (pid, camid, index) == (1, 1, 3)
    assert ds.pids == [0, 0, 1, 1, 2, 2] and len(ds) == 6


def test_plain_callable_transform(tmp_path: Path) -> None:
    ds = ImageDataset(_records(tmp_path, 2), lambda img: torch.zeros(3, img.size[1], img.size[0]))
    assert ds[0][0].shape == (3, 40, 20)


def test_train_augmentation_reproducible_across_workers(tmp_path: Path) -> None:
    recs = _records(tmp_path)
    ds = ImageDataset(recs, build_train_transform(32, 16, padding=3), seed=4)
    first = torch.stack([ds[i][0] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=3, num_workers=2)
    via_workers = torch.cat([b[0] for b in loader])
    assert torch.equal(first, via_workers)
    ds.set_epoch(1)
    assert not torch.equal(first, torch.stack([ds[i][0] for i in range(len(ds))]))


def test_decode_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "0001_c1s1_000151_00.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = ImageDataset([ImageRecord(str(bad), 1, 0)], build_test_transform(32, 16))
    with pytest.raises(DataError, match="0001_c1s1_000151_00.jpg: cannot decode image"):
        ds[0]


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    good = _records(tmp_path, 1)[0]
    data = Path(good.path).read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(data[: len(data) // 3])
    missing = tmp_path / "missing.jpg"
    ds = ImageDataset([ImageRecord(str(trunc), 0, 0), ImageRecord(str(missing), 0, 0)], build_test_transform(32, 16))
    with pytest.raises(DataError, match="trunc.jpg"):
        ds[0]
    with pytest.raises(DataError, match="missing.jpg: image file not found"):
        ds[1]


@pytest.mark.shared_data
def test_real_partial_reid_images(partial_reid_root: Path) -> None:
    paths = sorted((partial_reid_root / "occluded_body_images").glob("*.jpg"))[:4]
    assert paths, "no Partial-REID images"
    recs = [ImageRecord(str(p), pid=int(p.name.split("_")[0]), camid=0) for p in paths]
    train = ImageDataset(recs, build_train_transform(256, 128), seed=1)
    test = ImageDataset(recs, build_test_transform(256, 128))
    for i in range(len(recs)):
        x, pid, _, index = train[i]
        assert x.shape == (3, 256, 128) and torch.isfinite(x).all() and index == i
        assert torch.equal(x, train[i][0])
        y = test[i][0]
        assert y.shape == (3, 256, 128) and float(y.min()) > -2.2 and float(y.max()) < 2.7


def test_decoded_cache_decodes_once_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import opreid_bench.data.torch_dataset as td

    recs = _records(tmp_path)
    plain = ImageDataset(recs, build_train_transform(32, 16, padding=3), seed=4)
    cached = ImageDataset(recs, build_train_transform(32, 16, padding=3), seed=4, cache_mb=1)
    small = ImageDataset(recs, build_train_transform(32, 16, padding=3), seed=4, cache_mb=5 * 40 * 20 * 3 / 2**20)
    decoded = []
    real = td.load_rgb
    monkeypatch.setattr(td, "load_rgb", lambda path: decoded.append(path) or real(path))
    for epoch in range(3):
        for ds in (plain, cached, small):
            ds.set_epoch(epoch)
        for i in range(len(recs)):
            x = plain[i][0]
            assert torch.equal(cached[i][0], x) and torch.equal(small[i][0], x)  # the same augmented images
    # plain: 6 per epoch; cached: 6 in the first epoch only; small: room for 5, so the sixth each epoch
    assert len(decoded) == 3 * 6 + 6 + (5 + 3)
