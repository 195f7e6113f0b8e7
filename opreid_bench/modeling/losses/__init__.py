"""Training losses: label-smoothed CE, batch-hard triplet (BoT), and the paper's BED loss (Eq. 3)."""

from opreid_bench.modeling.losses.bed import BEDLoss
from opreid_bench.modeling.losses.cross_entropy import CrossEntropyLabelSmooth
from opreid_bench.modeling.losses.distances import euclidean_dist, pair_masks
from opreid_bench.modeling.losses.triplet import TripletLoss

__all__ = ["BEDLoss", "CrossEntropyLabelSmooth", "TripletLoss", "euclidean_dist", "pair_masks"]
