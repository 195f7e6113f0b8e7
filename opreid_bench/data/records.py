"""The records every loader returns and every consumer (evaluator, engine, split builder) reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ImageRecord:
    """One person crop: where it is, who it is, which camera took it, and whether it is occluded (if known).

    ``scene`` is an optional free-text site label (e.g. a shop) that raw pools may carry for scene-aware sampling.
    """

    path: str
    pid: int
    camid: int
    occluded: bool | None = None
    scene: str | None = None


@dataclass
class DatasetSplits:
    """Train/query/gallery records of one dataset.

    ``train`` pids are relabelled to 0..N-1 (what a classifier needs); query/gallery keep the dataset's own pids so
    that evaluation and reports speak the dataset's language. ``unparsed`` lists files whose names did not parse.
    """

    name: str
    train: list[ImageRecord] = field(default_factory=list)
    query: list[ImageRecord] = field(default_factory=list)
    gallery: list[ImageRecord] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[ImageRecord]:
        """The records of split ``name`` (train, query or gallery)."""
        if name not in ("train", "query", "gallery"):
            raise KeyError(name)
        return getattr(self, name)

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def stats(self) -> dict[str, dict[str, int]]:
        """``split_stats`` of every non-empty split (train is left out for test-only datasets)."""
        return {s: split_stats(self.split(s)) for s in ("train", "query", "gallery") if self.split(s)}


def relabel_pids(records: Sequence[ImageRecord]) -> list[ImageRecord]:
    """Map the pids of ``records`` to 0..N-1 in ascending order of the original pid (deterministic)."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [replace(r, pid=mapping[r.pid]) for r in records]


def split_stats(records: Iterable[ImageRecord]) -> dict[str, int]:
    """Images, identities and cameras in a list of records (what the known-count checks compare)."""
    records = list(records)
    return {
        "images": len(records),
        "ids": len({r.pid for r in records}),
        "cameras": len({r.camid for r in records}),
    }
