"""DukeMTMC-reID (Zheng et al., ICCV 2017): Market-style names ``0005_c2_f0046985.jpg``, cameras 1-8.

The gallery's 408 extra identities are distractors with their own pids (not pid 0000 as in Market-1501), so nothing
is dropped. The dataset was withdrawn by its authors in 2019; see ``data_cards/dukemtmc.md``.
"""

from __future__ import annotations

from opreid_bench.data.datasets.market1501 import MarketStyleDataset


class DukeMTMCReID(MarketStyleDataset):
    """DukeMTMC-reID: 8 cameras, 702 train ids, 702 query ids, 1,110 gallery ids (702 + 408 distractor ids)."""

    name = "dukemtmc"
    layout = "DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}/0005_c2_f0046985.jpg"
    folder_names = ("DukeMTMC-reID", "DukeMTMC-ReID", "dukemtmc-reid", "dukemtmc", "DukeMTMC")
    known_counts = {"train": (16_522, 702), "query": (2_228, 702), "gallery": (17_661, 1_110)}
    num_cameras = 8
    protocol = "dukemtmc"
