"""Occluded-Duke (Miao et al., ICCV 2019): a re-split of DukeMTMC-reID whose query images are mostly occluded.

Same Market-style names and cameras as DukeMTMC-reID. The release has no per-image occlusion label, so the
``occluded`` flag stays unknown (None). Built from DukeMTMC-reID, which its authors withdrew in 2019.
"""

from __future__ import annotations

from opreid_bench.data.datasets.market1501 import MarketStyleDataset


class OccludedDuke(MarketStyleDataset):
    """Occluded-Duke: train 15,618/702, query 2,210/519, gallery 17,661/1,110 (images/ids), 8 cameras."""

    name = "occluded_duke"
    layout = "Occluded_Duke/{bounding_box_train,query,bounding_box_test}/0005_c2_f0046985.jpg"
    folder_names = ("Occluded_Duke", "Occluded-Duke", "occluded_duke", "OccludedDuke")
    known_counts = {"train": (15_618, 702), "query": (2_210, 519), "gallery": (17_661, 1_110)}
    num_cameras = 8
    protocol = "occluded_duke"
