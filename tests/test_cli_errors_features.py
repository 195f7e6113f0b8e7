"""Found by ``benchmarks/fuzz_cli.py``: a feature file with corrupted bytes made h5py raise KeyError (a traceback
from `evaluate`); any corruption must be a one-line FeatureFileError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opreid_bench.errors import FeatureFileError
from opreid_bench.evaluation import FeatureSet, read_feature_file, write_feature_file


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(0)
    q = FeatureSet(rng.standard_normal((6, 4)).astype(np.float32), np.arange(6), np.zeros(6, int),
                   paths=[f"q{i}.jpg" for i in range(6)], occluded=np.arange(6) % 2 == 0)
    g = FeatureSet(rng.standard_normal((9, 4)).astype(np.float32), np.arange(9) % 6, np.ones(9, int))
    path = tmp_path_factory.mktemp("feat") / "f.h5"
    write_feature_file(path, q, g, {"junk": "market"})
    return path.read_bytes()


def test_flipped_bytes_give_a_feature_file_error_or_a_valid_read(tmp_path: Path, good_bytes: bytes) -> None:
    path = tmp_path / "f.h5"
    errors = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        data = bytearray(good_bytes)
        for i in rng.integers(0, 2048, 6):  # the superblock and object headers live in the first 2 KiB
            data[int(i)] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        try:
            read_feature_file(path)
        except FeatureFileError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            errors += 1
    assert errors > 0

