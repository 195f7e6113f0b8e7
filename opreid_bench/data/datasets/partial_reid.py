"""Partial-REID (Zheng et al., ICCV 2015): 60 people, 5 occluded, 5 partial and 5 whole-body images each.

Layout ``Partial_REID/{occluded_body_images,partial_body_images,whole_body_images}/PID_IDX.jpg`` (also found as
``Partial-REID_Dataset``). Query = the occluded folder (option ``query_folder=occluded``, the default) or the
partial folder (``query_folder=partial``: the occluded images cropped to the visible part); gallery = the whole-body
folder. No camera labels: query camid 0, gallery camid 1 (the index ``IDX`` is never read as a camera), so no true
match is dropped. No training split: the literature trains on Market-1501.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, parse_folder
from opreid_bench.data.datasets.occluded_reid import GALLERY_CAMID, QUERY_CAMID, cross_set_parser
from opreid_bench.errors import DataError

QUERY_FOLDERS = {"occluded": "occluded_body_images", "partial": "partial_body_images"}


class PartialREID(ReIDDataset):
    """Partial-REID: query 300 images / 60 ids (occluded or partial folder), gallery 300 / 60 (whole folder)."""

    name = "partial_reid"
    layout = "Partial_REID/{occluded_body_images,partial_body_images,whole_body_images}/001_001.jpg"
    folder_names = ("Partial_REID", "Partial-REID_Dataset", "Partial-REID", "PartialREID", "partial_reid")
    known_counts = {"query": (300, 60), "gallery": (300, 60)}
    splits = ("query", "gallery")
    option_defaults: ClassVar[dict[str, str]] = {"query_folder": "occluded"}
    protocol = "partial_reid"

    def split_folders(self) -> dict[str, str]:
        choice = self.options["query_folder"].strip().lower()
        if choice not in QUERY_FOLDERS:
            raise DataError(f"dataset {self.name}: query_folder={self.options['query_folder']!r}; "
                            f"use one of {', '.join(QUERY_FOLDERS)}")
        return {"query": QUERY_FOLDERS[choice], "gallery": "whole_body_images"}

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = RawSplits()
        raw.add("query", parse_folder(self.folder("query"), dataset_dir, cross_set_parser(QUERY_CAMID),
                                      occluded=True))
        raw.add("gallery", parse_folder(self.folder("gallery"), dataset_dir, cross_set_parser(GALLERY_CAMID),
                                        occluded=False))
        if self.split_folders()["query"] == QUERY_FOLDERS["occluded"]:
            raw.notes.append("query: the occluded probes (query_folder=occluded, the default); published Partial-REID "
                             "results use the partial probes: --option query_folder=partial")
        return raw
