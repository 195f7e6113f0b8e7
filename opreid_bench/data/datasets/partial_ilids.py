"""Partial-iLIDS (Zheng et al., 2011; partial version by He et al., CVPR 2018): 119 people, one probe and one
gallery image each.

Layout ``Partial_iLIDS/{Probe,Gallery}/N.jpg`` with pid ``N``; copies in the wild also name the folders
``{query,gallery}`` or, as PVPM's release does, ``{partial_body_images,whole_body_images}`` (read only inside a folder
named ``Partial_iLIDS`` or the like, since Partial-REID uses those names too; ``Probe.txt``/``Gallery.txt`` may be
present and are passed over). The probes are occluded/partial crops, the gallery images whole-body. No camera labels: probe camid 0,
gallery camid 1. No training split: the literature trains on Market-1501.
"""

from __future__ import annotations

import re
from pathlib import Path

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, parse_folder
from opreid_bench.data.datasets.occluded_reid import GALLERY_CAMID, QUERY_CAMID, cross_set_parser

_NUMBER = re.compile(r"^(\d+)\.[A-Za-z]+$")


_PVPM_NAMES = {"partial_body_images", "whole_body_images"}


class PartialILIDS(ReIDDataset):
    """Partial-iLIDS: query = 119 probe images, gallery = 119 whole-body images, 119 ids each."""

    name = "partial_ilids"
    layout = "Partial_iLIDS/{Probe,Gallery}/N.jpg (or {query,gallery}, {partial_body_images,whole_body_images})"
    folder_names = ("Partial_iLIDS", "Partial-iLIDS", "PartialiLIDS", "partial_ilids")
    known_counts = {"query": (119, 119), "gallery": (119, 119)}
    splits = ("query", "gallery")
    protocol = "partial_ilids"
    folder_aliases = {"Probe": ("query", "partial_body_images"), "Gallery": ("gallery", "whole_body_images")}

    def split_folders(self) -> dict[str, str]:
        return {"query": "Probe", "gallery": "Gallery"}

    def _find_split_dir(self, parent: Path, rel: str) -> Path | None:
        # PVPM's folder names are Partial-REID's too: read them only inside a folder named as Partial-iLIDS is, so a
        # Partial-REID folder is never taken for this dataset
        found = super()._find_split_dir(parent, rel)
        if found is not None and found.name.lower() in _PVPM_NAMES and parent.name.lower() not in _OWN_NAMES:
            return None
        return found

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = RawSplits()
        raw.add("query", parse_folder(self.folder("query"), dataset_dir, cross_set_parser(QUERY_CAMID, _NUMBER),
                                      occluded=True))
        raw.add("gallery", parse_folder(self.folder("gallery"), dataset_dir,
                                        cross_set_parser(GALLERY_CAMID, _NUMBER), occluded=False))
        return raw


_OWN_NAMES = {n.lower() for n in PartialILIDS.folder_names}
