"""Occluded-REID (Zhuo et al., ICME 2018): 200 people, 5 occluded and 5 whole-body images each.

Layout ``Occluded_REID/{occluded_body_images,whole_body_images}/<pid>/<pid>_<idx>.tif`` (some copies are ``.jpg``
or flat, ``<pid>_<idx>.jpg`` with no per-person folder). The pid is the person folder's name, or the name's prefix
in a flat copy. There are no camera labels: query and gallery are different sets, so query images get camid 0 and
gallery images camid 1 (nothing is junk under the ``none`` rule and no true match is ever dropped). The image index
is never read as a camera. No training split: the literature trains on Market-1501.
"""

from __future__ import annotations

import re
from pathlib import Path

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, parse_folder

_PREFIX = re.compile(r"^(\d+)(?:_|\.)")
QUERY_CAMID = 0
GALLERY_CAMID = 1


def cross_set_parser(camid: int, pattern: re.Pattern[str] = _PREFIX):
    """A parser for ``<pid>/<pid>_<idx>.ext`` (a person's folder; a file whose prefix is another pid is not read) or
    ``<pid>_<idx>.ext`` (pid = prefix), fixed ``camid``."""

    def parse(relpath: str) -> tuple[int, int] | None:
        parts = relpath.split("/")
        if len(parts) == 2 and parts[0].isdigit():  # a person's folder: its files are named <pid>_<idx>
            m = pattern.match(parts[1])
            return (int(parts[0]), camid) if m and int(m.group(1)) == int(parts[0]) else None
        if len(parts) == 1:
            m = pattern.match(parts[0])
            return (int(m.group(1)), camid) if m else None
        return None

    return parse


class OccludedREID(ReIDDataset):
    """Occluded-REID: query = 1,000 occluded images, gallery = 1,000 whole-body images, 200 ids each."""

    name = "occluded_reid"
    layout = "Occluded_REID/{occluded_body_images,whole_body_images}/<pid>/<pid>_<idx>.tif"
    folder_names = ("Occluded_REID", "OccludedREID", "Occluded-REID", "occluded_reid")
    known_counts = {"query": (1_000, 200), "gallery": (1_000, 200)}
    splits = ("query", "gallery")
    protocol = "occluded_reid"

    def split_folders(self) -> dict[str, str]:
        return {"query": "occluded_body_images", "gallery": "whole_body_images"}

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = RawSplits()
        raw.add("query", parse_folder(self.folder("query"), dataset_dir, cross_set_parser(QUERY_CAMID),
                                      recursive=True, occluded=True))
        raw.add("gallery", parse_folder(self.folder("gallery"), dataset_dir, cross_set_parser(GALLERY_CAMID),
                                        recursive=True, occluded=False))
        return raw
