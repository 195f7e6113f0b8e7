"""opreid-bench: occluded person re-identification toolkit and benchmark.

Build occluded splits from your own camera data, load every standard ReID benchmark, evaluate any model with one
trusted evaluator, and train/compare the reference models of Yan, Pang et al. (ICCV 2021).

The names in ``__all__`` are the public Python API (documented in the manual's API reference); everything else is
internal. They load on first use, so ``import opreid_bench`` stays light (no torch until a model is needed).

Example:
    >>> import numpy as np
    >>> import opreid_bench as ob
    >>> rng = np.random.default_rng(0)
    >>> q = ob.FeatureSet(rng.normal(size=(4, 8)), np.arange(4), np.zeros(4, int))
    >>> g = ob.FeatureSet(q.features + 0.01, np.arange(4), np.ones(4, int))
    >>> report = ob.evaluate_features(q, g, metric="cosine")
    >>> report.to_dict()["mAP"], report.to_dict()["rank1"]
    (1.0, 1.0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: Public name -> (module, attribute).
_API: dict[str, tuple[str, str]] = {
    # evaluation
    "FeatureSet": ("opreid_bench.evaluation.features", "FeatureSet"),
    "read_feature_file": ("opreid_bench.evaluation.features", "read_feature_file"),
    "write_feature_file": ("opreid_bench.evaluation.features", "write_feature_file"),
    "evaluate_features": ("opreid_bench.evaluation.evaluator", "evaluate_features"),
    "evaluate_distmat": ("opreid_bench.evaluation.metrics", "evaluate_distmat"),
    "re_ranking": ("opreid_bench.evaluation.rerank", "re_ranking"),
    "rerank_features": ("opreid_bench.evaluation.rerank", "rerank_features"),
    "bootstrap_ci": ("opreid_bench.evaluation.bootstrap", "bootstrap_ci"),
    "paired_difference_ci": ("opreid_bench.evaluation.bootstrap", "paired_difference_ci"),
    # datasets
    "DATASETS": ("opreid_bench.data.datasets", "DATASETS"),
    "load_dataset": ("opreid_bench.data.datasets", "load_dataset"),
    "load_pool": ("opreid_bench.data.datasets", "load_pool"),
    "load_eval_protocol": ("opreid_bench.data.protocols", "load_protocol"),
    # split stages
    "annotate_pool": ("opreid_bench.splits.annotate", "annotate_pool"),
    "Keypoints": ("opreid_bench.splits.keypoints", "Keypoints"),
    "OcclusionRule": ("opreid_bench.splits.classify", "OcclusionRule"),
    "classify_keypoints": ("opreid_bench.splits.classify", "classify_keypoints"),
    "load_split_protocol": ("opreid_bench.splits.protocol", "load_protocol"),
    "sample_split": ("opreid_bench.splits.sample", "sample_split"),
    "build_split": ("opreid_bench.splits.pipeline", "build_split"),
    # models
    "ModelConfig": ("opreid_bench.modeling.config", "ModelConfig"),
    "build_model": ("opreid_bench.modeling.model", "build_model"),
    "load_method_config": ("opreid_bench.engine.config", "load_method_config"),
    "load_zoo_model": ("opreid_bench.modeling.zoo", "load_zoo_model"),
}

__all__ = [
    "__version__",
    "FeatureSet",
    "read_feature_file",
    "write_feature_file",
    "evaluate_features",
    "evaluate_distmat",
    "re_ranking",
    "rerank_features",
    "bootstrap_ci",
    "paired_difference_ci",
    "DATASETS",
    "load_dataset",
    "load_pool",
    "load_eval_protocol",
    "annotate_pool",
    "Keypoints",
    "OcclusionRule",
    "classify_keypoints",
    "load_split_protocol",
    "sample_split",
    "build_split",
    "ModelConfig",
    "build_model",
    "load_method_config",
    "load_zoo_model",
]

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from opreid_bench.data.datasets import DATASETS, load_dataset, load_pool
    from opreid_bench.data.protocols import load_protocol as load_eval_protocol
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.evaluation.bootstrap import bootstrap_ci, paired_difference_ci
    from opreid_bench.evaluation.evaluator import evaluate_features
    from opreid_bench.evaluation.features import FeatureSet, read_feature_file, write_feature_file
    from opreid_bench.evaluation.metrics import evaluate_distmat
    from opreid_bench.evaluation.rerank import re_ranking, rerank_features
    from opreid_bench.modeling.config import ModelConfig
    from opreid_bench.modeling.model import build_model
    from opreid_bench.modeling.zoo import load_zoo_model
    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.classify import OcclusionRule, classify_keypoints
    from opreid_bench.splits.keypoints import Keypoints
    from opreid_bench.splits.pipeline import build_split
    from opreid_bench.splits.protocol import load_protocol as load_split_protocol
    from opreid_bench.splits.sample import sample_split


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'opreid_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
