"""Building blocks of the reference models: GeM, BNNeck, non-local, DNL (Eq. 1), RP (Eq. 2), ME (Eq. 6); the fused
training stem of the ResNets is ``stem_pool.bn_relu_maxpool``."""

from opreid_bench.modeling.layers.bnneck import BNNeck
from opreid_bench.modeling.layers.dnl import DNLBlock
from opreid_bench.modeling.layers.gem import AvgPool, GeM, build_pooling
from opreid_bench.modeling.layers.momentum_elimination import MomentumElimination
from opreid_bench.modeling.layers.non_local import NonLocalBlock
from opreid_bench.modeling.layers.reconstructive_pooling import ReconstructivePooling, RPBranch

__all__ = [
    "AvgPool",
    "BNNeck",
    "DNLBlock",
    "GeM",
    "MomentumElimination",
    "NonLocalBlock",
    "RPBranch",
    "ReconstructivePooling",
    "build_pooling",
]
