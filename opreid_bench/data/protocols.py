"""Evaluation protocols as data: which loader, which folders are query and gallery, the junk rule, the training set.

Each protocol is a YAML file in the repository's ``protocols/evaluation/`` folder with ``kind: evaluation``. (They
live in a subfolder because ``protocols/`` itself holds the split protocols of ``build-split`` -- ``kind: split``,
e.g. ``protocols/opreid.yaml`` -- and both kinds want names such as ``opreid``.)::

    kind: evaluation
    name: occluded_reid
    dataset: occluded_reid          # a name in DATASETS
    options: {}                     # loader options, e.g. {query_folder: partial} for Partial-REID
    query: occluded_body_images     # the folder the loader reads as query (checked against the loader)
    gallery: whole_body_images
    junk: none                      # market: drop same pid + same camera gallery items; none: cross-set, drop nothing
    train_dataset: market1501       # what models evaluated under this protocol are trained on
    metrics: [rank1, rank5, rank10, mAP, mINP]
    max_rank: 50

``load_protocol("occluded_reid")`` reads ``protocols/evaluation/occluded_reid.yaml``; an explicit path works too.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opreid_bench.data.records import DatasetSplits
from opreid_bench.errors import ProtocolError
from opreid_bench.resources import resource_dir

KIND = "evaluation"
JUNK_RULES = ("market", "none")
_METRIC = re.compile(r"^(rank\d+|mAP|mINP)$")
_REQUIRED = ("name", "dataset", "query", "gallery", "junk")
DEFAULT_METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def protocols_dir() -> Path:
    """The evaluation protocols shipped with the package (``protocols/evaluation/``)."""
    return resource_dir("protocols") / "evaluation"


@dataclass
class EvalProtocol:
    """One evaluation protocol (see the module docstring for the YAML it is read from)."""

    name: str
    dataset: str
    query: str
    gallery: str
    junk: str
    train_dataset: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    max_rank: int = 50
    description: str = ""
    source: str | None = None  # the YAML file it was read from

    def load_data(self, root: str | os.PathLike[str]) -> DatasetSplits:
        """The protocol's dataset under ``root``, loaded with the protocol's options."""
        from opreid_bench.data.datasets import load_dataset

        return load_dataset(self.dataset, root, **self.options)

    def to_dict(self) -> dict[str, Any]:
        """The protocol as a plain dict (what the YAML holds, plus ``source``)."""
        return asdict(self)


def _validate(data: dict[str, Any], where: str) -> EvalProtocol:
    from opreid_bench.data.datasets import DATASETS

    if data.get("kind") != KIND:
        raise ProtocolError(f"{where}: not an evaluation protocol (kind: {data.get('kind')!r}, expected '{KIND}')")
    missing = [k for k in _REQUIRED if not data.get(k)]
    if missing:
        raise ProtocolError(f"{where}: missing key(s) {', '.join(missing)}")
    known = {"kind", *EvalProtocol.__dataclass_fields__} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key in ("dataset", "train_dataset"):
        value = data.get(key)
        if value is not None and value not in DATASETS:
            raise ProtocolError(f"{where}: {key} '{value}' is not a dataset; known: {', '.join(DATASETS)}")
    if data["junk"] not in JUNK_RULES:
        raise ProtocolError(f"{where}: junk '{data['junk']}' must be one of {', '.join(JUNK_RULES)}")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ProtocolError(f"{where}: options must be a mapping")
    options = {str(k): str(v) for k, v in options.items()}
    metrics = data.get("metrics") or list(DEFAULT_METRICS)
    bad = [m for m in metrics if not isinstance(m, str) or not _METRIC.match(m)]
    if bad:
        raise ProtocolError(f"{where}: unknown metric(s) {bad}; use rankK, mAP, mINP")
    max_rank = data.get("max_rank", 50)
    if not isinstance(max_rank, int) or max_rank < 1:
        raise ProtocolError(f"{where}: max_rank must be a positive integer, got {max_rank!r}")
    # The folders the protocol names must be the ones the loader reads with these options.
    try:
        folders = DATASETS.get(data["dataset"])(".", **options).split_folders()
    except Exception as exc:  # noqa: BLE001 - an OpreidError from the loader's option check
        raise ProtocolError(f"{where}: {exc}") from None
    for split in ("query", "gallery"):
        if split in folders and str(data[split]).lower() != folders[split].lower():
            raise ProtocolError(f"{where}: {split} '{data[split]}' but loader {data['dataset']} with options "
                                f"{options or '{}'} reads {split} from '{folders[split]}'")
    return EvalProtocol(name=str(data["name"]), dataset=data["dataset"], query=str(data["query"]),
                        gallery=str(data["gallery"]), junk=data["junk"], train_dataset=data.get("train_dataset"),
                        options=options, metrics=list(metrics), max_rank=max_rank,
                        description=str(data.get("description") or "").strip(), source=where)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProtocolError(f"{path}: cannot read protocol ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{path}: a protocol must be a YAML mapping")
    return data


def load_protocol(name_or_path: str | os.PathLike[str]) -> EvalProtocol:
    """The protocol ``protocols/evaluation/<name>.yaml`` or the YAML file at a path; a ProtocolError otherwise."""
    text = str(name_or_path)
    given = Path(text).expanduser()
    if given.is_file():
        path = given
    elif text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        raise ProtocolError(f"{given}: protocol file not found")
    else:
        path = protocols_dir() / f"{text}.yaml"
        if not path.is_file():
            raise ProtocolError(f"unknown protocol '{text}' ({path} not found); known: {', '.join(list_protocols())}")
    return _validate(_read_yaml(path), str(path))


def list_protocols() -> list[str]:
    """Names of the evaluation protocols in ``protocols/evaluation/`` (files of another kind are left out), sorted."""
    folder = protocols_dir()
    if not folder.is_dir():
        return []
    names = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = _read_yaml(path)
        except ProtocolError:
            continue
        if data.get("kind") == KIND:
            names.append(path.stem)
    return names
