"""Market-1501 (Zheng et al., ICCV 2015) and the Market-style layout shared by DukeMTMC-reID, Occluded-Duke, OPReID.

File names ``0002_c1s1_000451_03.jpg``: pid ``0002``, camera ``c1`` (camid 0, zero-based), then sequence/frame.
Market-1501's own rules: pid ``-1`` marks junk boxes (dropped and counted), pid ``0000`` marks distractors (bad
detections, kept in the gallery as the standard protocol does).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, parse_folder
from opreid_bench.data.records import ImageRecord

# pid (may be -1), then _c<camera>; the rest of the name is free (Market: s1_000451_03, Duke: _f0046985).
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def parse_market_name(relpath: str) -> tuple[int, int] | None:
    """(pid, zero-based camid) of a Market-style name such as ``0002_c1s1_000451_03.jpg``; None if it does not fit."""
    m = MARKET_NAME.match(relpath.rsplit("/", 1)[-1])
    if m is None or int(m.group(2)) < 1:
        return None
    return int(m.group(1)), int(m.group(2)) - 1


class MarketStyleDataset(ReIDDataset):
    """Three flat folders of Market-style names; subclasses set the folder names, cameras and known counts."""

    train_folder: ClassVar[str] = "bounding_box_train"
    query_folder: ClassVar[str] = "query"
    gallery_folder: ClassVar[str] = "bounding_box_test"
    #: number of cameras of the release; images with a camera outside 1..num_cameras are kept but noted
    num_cameras: ClassVar[int | None] = None
    #: pids that are not one person each (Market's 0000 distractors): kept in the gallery, left out of pools
    distractor_pids: ClassVar[frozenset[int]] = frozenset()

    def split_folders(self) -> dict[str, str]:
        return {"train": self.train_folder, "query": self.query_folder, "gallery": self.gallery_folder}

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = RawSplits()
        for split in ("train", "query", "gallery"):
            raw.add(split, parse_folder(self.folder(split), dataset_dir, parse_market_name, drop_negative_pids=True))
        if self.num_cameras is not None:
            outside = sum(r.camid >= self.num_cameras for s in ("train", "query", "gallery") for r in getattr(raw, s))
            if outside:
                raw.notes.append(f"{outside:,} images have a camera outside c1-c{self.num_cameras} of {self.name}; "
                                 "kept as they are")
        return raw

    def pool_records(self) -> list[ImageRecord]:
        """All splits with original pids, without the distractor pids (they are not one person each)."""
        return [r for r in super().pool_records() if r.pid not in self.distractor_pids]


class Market1501(MarketStyleDataset):
    """Market-1501: 6 cameras, 1,501 identities; pid -1 junk dropped, pid 0000 distractors kept in the gallery."""

    name = "market1501"
    layout = "Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}/0002_c1s1_000451_03.jpg"
    folder_names = ("Market-1501-v15.09.15", "Market-1501", "market1501", "Market1501")
    known_counts = {"train": (12_936, 751), "query": (3_368, 750), "gallery": (15_913, 751)}
    num_cameras = 6
    distractor_pids = frozenset({0})
    protocol = "market1501"
