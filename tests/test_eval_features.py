"""HDF5 feature files: round trip, determinism, and one-line errors naming the file and the fault."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from opreid_bench.errors import FeatureFileError
from opreid_bench.evaluation import FeatureSet, read_feature_file, write_feature_file


def sets(with_optional: bool = True):
    rng = np.random.default_rng(0)
    q = FeatureSet(rng.standard_normal((5, 4)).astype(np.float32), np.array([1, 2, 3, 4, 5]), np.array([0, 1, 0, 1, 0]),
                   paths=[f"q/{i}_é.jpg" for i in range(5)] if with_optional else None,
                   occluded=np.array([True, False, True, False, False]) if with_optional else None)
    g = FeatureSet(rng.standard_normal((7, 4)), np.arange(7), np.zeros(7, dtype=np.int32),
                   paths=[f"g/{i}.jpg" for i in range(7)] if with_optional else None,
                   occluded=np.zeros(7, dtype=bool) if with_optional else None)
    return q, g


@pytest.mark.parametrize("with_optional", [True, False])
def test_round_trip(tmp_path, with_optional):
    q, g = sets(with_optional)
    path = tmp_path / "f.h5"
    write_feature_file(path, q, g, {"dataset": "toy", "junk": "none", "dim": 4, "scales": [1.0, 0.5]})
    q2, g2, attrs = read_feature_file(path)
    for a, b in ((q, q2), (g, g2)):
        np.testing.assert_array_equal(a.features, b.features)
        assert b.features.dtype == np.asarray(a.features).dtype
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.camids, b.camids)
        assert b.pids.dtype == np.int64 and b.camids.dtype == np.int64
        assert a.paths == b.paths
        if with_optional:
            assert b.occluded.dtype == bool
            np.testing.assert_array_equal(a.occluded, b.occluded)
        else:
            assert b.occluded is None
    assert attrs == {"format": "opreid-bench-features", "format_version": 1, "dataset": "toy", "junk": "none",
                     "dim": 4, "scales": [1.0, 0.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]  # no temporary file left behind


def test_same_input_same_bytes(tmp_path):
    q, g = sets()
    write_feature_file(tmp_path / "a.h5", q, g, {"dataset": "toy"})
    write_feature_file(tmp_path / "b.h5", q, g, {"dataset": "toy"})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def _write_raw(path, drop: str | None = None, **override):
    q, g = sets(False)
    with h5py.File(path, "w") as h5:
        for side, fs in (("query", q), ("gallery", g)):
            for name in ("features", "pids", "camids"):
                key = f"{side}/{name}"
                if key != drop:
                    h5.create_dataset(key, data=override.get(key.replace("/", "_"), getattr(fs, name)))


@pytest.mark.parametrize(("drop", "override", "message"), [
    ("gallery/camids", {}, "missing dataset /gallery/camids"),
    ("query/features", {}, "missing dataset /query/features"),
    (None, {"query_pids": np.arange(4)}, "/query/pids: expected 5 entries"),
    (None, {"gallery_pids": np.linspace(0, 1, 7)}, "/gallery/pids: must be integers"),
    (None, {"query_features": np.zeros(5)}, "/query/features: must be 2-D"),
    (None, {"gallery_features": np.zeros((7, 3))}, "dimension 4 but /gallery/features has 3"),
    (None, {"query_features": np.full((5, 4), np.nan)}, "/query/features: NaN/inf in row 0"),
])
def test_layout_errors_name_file_and_dataset(tmp_path, drop, override, message):
    path = tmp_path / "bad.h5"
    _write_raw(path, drop, **override)
    with pytest.raises(FeatureFileError) as info:
        read_feature_file(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_group_missing_file_and_not_hdf5(tmp_path):
    path = tmp_path / "nogallery.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("query")
    with pytest.raises(FeatureFileError, match="missing dataset /query/features"):
        read_feature_file(path)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("query/features", data=np.zeros((1, 2)))
        h5.create_dataset("query/pids", data=[0])
        h5.create_dataset("query/camids", data=[0])
    with pytest.raises(FeatureFileError, match="missing group /gallery"):
        read_feature_file(path)
    with pytest.raises(FeatureFileError, match="no such feature file"):
        read_feature_file(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FeatureFileError, match="not an HDF5 file"):
        read_feature_file(tmp_path / "text.h5")


def test_integer_occluded_flags_are_accepted(tmp_path):
    path = tmp_path / "f.h5"
    _write_raw(path)
    with h5py.File(path, "a") as h5:
        h5.create_dataset("query/occluded", data=np.array([1, 0, 1, 0, 0], dtype=np.uint8))
        h5.create_dataset("gallery/occluded", data=np.array([0, 2, 0, 0, 0, 0, 0]))
    with pytest.raises(FeatureFileError, match="/gallery/occluded must hold booleans"):
        read_feature_file(path)
    with h5py.File(path, "a") as h5:
        del h5["gallery/occluded"]
        h5.create_dataset("gallery/occluded", data=np.array([0, 1, 0, 0, 0, 0, 1]))
    q, g, _ = read_feature_file(path)
    assert q.occluded.tolist() == [True, False, True, False, False]
    assert g.occluded.dtype == bool and g.occluded.sum() == 2


def test_write_rejects_inconsistent_sets(tmp_path):
    q, g = sets()
    g.camids = g.camids[:3]
    with pytest.raises(FeatureFileError, match="cannot write /gallery: camids: expected 7 entries"):
        write_feature_file(tmp_path / "x.h5", q, g)
    q, g = sets()
    with pytest.raises(FeatureFileError, match="attribute 'meta' has an unsupported type"):
        write_feature_file(tmp_path / "x.h5", q, g, {"meta": {"a": 1}})
    assert not list(tmp_path.iterdir())


def test_paths_that_are_not_strings_are_named(tmp_path):
    path = tmp_path / "intpaths.h5"
    q, g = sets(False)
    write_feature_file(path, q, g)
    with h5py.File(path, "a") as h5:
        h5.create_dataset("query/paths", data=np.arange(len(q.pids)))
    with pytest.raises(FeatureFileError, match=r"intpaths.h5: /query/paths must hold strings \(the image paths\), "
                                               r"got int64"):
        read_feature_file(path)
