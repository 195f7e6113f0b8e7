"""The evaluator: distances, ranking metrics (CMC/mAP/mINP, equal to ``eval_market1501``), breakdowns, bootstrap
CIs and HDF5 feature files.

Typical use::

    from opreid_bench.evaluation import read_feature_file, evaluate_features
    query, gallery, attrs = read_feature_file("feats.h5")
    report = evaluate_features(query, gallery, metric="cosine", junk="market", bootstrap=1000, seed=0)
    print(report.to_dict())

Importing this package does not import torch or h5py: h5py loads when files are read or written, torch only for
distances on a GPU (and for re-ranking and top-k search); CPU distances are numpy.
"""

from opreid_bench.evaluation.bootstrap import bootstrap_ci
from opreid_bench.evaluation.distances import compute_distances, iter_distance_chunks
from opreid_bench.evaluation.evaluator import EvaluationReport, evaluate_features
from opreid_bench.evaluation.features import FeatureSet, read_feature_file, write_feature_file
from opreid_bench.evaluation.metrics import RankingResult, evaluate_distmat, merge_results

__all__ = [
    "EvaluationReport",
    "FeatureSet",
    "RankingResult",
    "bootstrap_ci",
    "compute_distances",
    "evaluate_distmat",
    "evaluate_features",
    "iter_distance_chunks",
    "merge_results",
    "read_feature_file",
    "write_feature_file",
]
