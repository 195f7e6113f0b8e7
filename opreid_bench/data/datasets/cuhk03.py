"""CUHK03-labeled (Li et al., CVPR 2014), as the ``train/`` + ``val/`` extraction kept in ``../shared/data``.

Layout ``cuhk03_labeled/{train,val}/IIII_KK.jpg``: ``IIII`` identity, ``KK`` image index; ``00``-``04`` come from
camera A of the pair (camid 0), ``05``-``09`` from camera B (camid 1). Train = ``train/``; query = camera-A images
of ``val/``, gallery = camera-B images of ``val/`` (so query and gallery never share a camera: nothing is junk).
Identity numbers restart in each folder (``train/0000`` and ``val/0000`` are different people), which only matters
for pools: :meth:`CUHK03Labeled.pool_records` shifts val pids by ``VAL_PID_OFFSET``.

Note this is not the widely used "CUHK03-NP new protocol" split (767/700 ids); it is the split this extraction has.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, parse_folder
from opreid_bench.data.records import ImageRecord

_NAME = re.compile(r"^(\d+)_(\d+)\.[A-Za-z]+$")
VAL_PID_OFFSET = 10_000


def parse_cuhk03_name(relpath: str) -> tuple[int, int] | None:
    """(pid, camid) of ``IIII_KK.jpg``: camid 0 for KK 00-04 (camera A), 1 for KK 05-09 (camera B)."""
    m = _NAME.match(relpath)
    if m is None or int(m.group(2)) > 9:
        return None
    return int(m.group(1)), int(m.group(2)) // 5


class CUHK03Labeled(ReIDDataset):
    """CUHK03-labeled (this extraction): train 7,239/743; val 938/100 split by camera into query and gallery."""

    name = "cuhk03_labeled"
    layout = "cuhk03_labeled/{train,val}/IIII_KK.jpg (KK 00-04 camera A, 05-09 camera B)"
    folder_names = ("cuhk03_labeled", "CUHK03_labeled", "cuhk03-labeled", "cuhk03")
    known_counts = {"train": (7_239, 743), "query": (451, 100), "gallery": (487, 100)}
    protocol = "cuhk03_labeled"

    def split_folders(self) -> dict[str, str]:
        return {"train": "train", "query": "val", "gallery": "val"}

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = RawSplits()
        raw.add("train", parse_folder(self.folder("train"), dataset_dir, parse_cuhk03_name))
        val = parse_folder(self.folder("query"), dataset_dir, parse_cuhk03_name)
        raw.unparsed.extend(val.unparsed)
        raw.ignored += val.ignored
        raw.query = [r for r in val.records if r.camid == 0]
        raw.gallery = [r for r in val.records if r.camid == 1]
        return raw

    def pool_records(self) -> list[ImageRecord]:
        """Train pids as they are, val pids + ``VAL_PID_OFFSET`` (ids restart in val: different people)."""
        raw = self.read()
        val = [replace(r, pid=r.pid + VAL_PID_OFFSET) for r in (*raw.query, *raw.gallery)]
        return [*raw.train, *sorted(val, key=lambda r: r.path)]
