"""Evaluation protocols: the shipped YAMLs load and agree with their loaders; malformed ones give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opreid_bench.data.datasets import DATASETS
from opreid_bench.data.protocols import list_protocols, load_protocol, protocols_dir
from opreid_bench.errors import ProtocolError

CROSS_SET = {"occluded_reid", "partial_reid", "partial_reid_partial", "partial_ilids"}


def test_every_protocol_is_shipped_and_loads() -> None:
    names = list_protocols()
    assert names == sorted(["market1501", "dukemtmc", "occluded_duke", "occluded_reid", "partial_reid",
                            "partial_reid_partial", "partial_ilids", "opreid", "cuhk03_labeled"])
    for name in names:
        proto = load_protocol(name)
        assert proto.name == name and proto.dataset in DATASETS
        assert proto.junk == ("none" if name in CROSS_SET or name == "cuhk03_labeled" else "market")
        assert proto.train_dataset == ("market1501" if name in CROSS_SET else proto.dataset)
        assert {"rank1", "mAP"} <= set(proto.metrics)
    assert load_protocol("partial_reid_partial").options == {"query_folder": "partial"}


def test_every_dataset_protocol_exists() -> None:
    for name in DATASETS.names():
        proto = DATASETS.get(name).protocol
        assert proto is None or proto in list_protocols()


def test_protocol_loads_its_data(tmp_path: Path) -> None:
    from data_trees import write_cross_set

    write_cross_set(tmp_path, {"partial_body_images": 10, "whole_body_images": 10}, ids=2)
    data = load_protocol("partial_reid_partial").load_data(tmp_path)
    assert len(data.query) == 10 and all("partial_body_images" in r.path for r in data.query)


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((protocols_dir() / "occluded_reid.yaml").read_text())
    data.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"junk": "cuhk"}, "junk 'cuhk' must be one of market, none"),
    ({"dataset": "viper"}, "dataset 'viper' is not a dataset"),
    ({"query": "whole_body_images"}, "reads query from 'occluded_body_images'"),
    ({"kind": "split"}, "not an evaluation protocol"),
    ({"metrics": ["rank1", "top1"]}, "unknown metric"),
    ({"extra": 1}, "unknown key"),
    ({"options": {"query_folder": "x"}}, "unknown option"),
])
def test_malformed_protocols(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        load_protocol(_write(tmp_path, **changes))


def test_protocol_by_path_and_unknown_name(tmp_path: Path) -> None:
    assert load_protocol(_write(tmp_path)).dataset == "occluded_reid"
    with pytest.raises(ProtocolError, match="unknown protocol 'viper'.*known: cuhk03_labeled"):
        load_protocol("viper")
    with pytest.raises(ProtocolError, match="protocol file not found"):
        load_protocol(tmp_path / "missing.yaml")


def test_every_benchmark_has_a_data_card() -> None:
    cards = protocols_dir().parents[1] / "data_cards"
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        if not cls.known_counts:
            continue  # folder / manifest: the user's own data
        text = (cards / f"{name}.md").read_text()
        for images, _ in cls.known_counts.values():
            assert f"{images:,}" in text, (name, images)
        assert "Terms of use" in text and "Obtain" in text
        if "duke" in name:
            assert "withdr" in text.lower() and "2019" in text
