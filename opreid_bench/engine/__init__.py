"""Training engine: typed method configs, the training loop, checkpoints, feature extraction.

``load_method_config("ours")`` -> ``MethodConfig``; ``train(cfg, splits, out_dir)`` trains and writes a run
directory; ``load_model_from_checkpoint(path)`` rebuilds a trained model from its self-describing checkpoint.
Heavy modules (torch) are imported by the submodules, not here.
"""

from opreid_bench.engine.config import (
    DataConfig,
    EvalConfig,
    LossConfig,
    MethodConfig,
    OptimConfig,
    load_method_config,
)

__all__ = ["DataConfig", "EvalConfig", "LossConfig", "MethodConfig", "OptimConfig", "load_method_config"]
