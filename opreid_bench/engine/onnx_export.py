"""Export a trained checkpoint's inference graph to ONNX ("ONNX out").

What is traced is exactly ``ReIDModel``'s eval-mode forward: backbone (+ non-local / DNL) -> pooling -> the retrieval
feature (BNNeck output for bot / baseline / ablation rows; for ``ours`` the pooled feature with ME folded in,
normalise(normalise(f_g) - mu), Eq. 6). The RP branch (Eq. 2) and the classifiers are never called in eval mode, so
they are not in the graph. The batch axis is dynamic; height and width are fixed at the training size.

The crop preprocessing (input size, ImageNet mean/std on [0, 1] RGB pixels) and the method's distance metric go into
the model's ``metadata_props`` (``opreid_bench.*``), so ``evaluate --onnx`` / ``extract --onnx`` need no options for
our own exports. Before the file is written, onnxruntime's features on a seeded random batch are compared with
PyTorch's (max abs difference of L2-normalised features); an export above the tolerance is refused.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``; still shipped in torch 2.13,
needs no ``onnxscript``); ``onnx`` edits the metadata and checks the graph. Opset 17.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opreid_bench.errors import OnnxModelError, OpreidError, OutputError

PRODUCER = "opreid-bench"
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "features"


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise OpreidError("onnx is not installed; install the extra: pip install 'opreid-bench[onnx]'") from None
    return onnx


def refuse_foreign_file(out: Path) -> None:
    """``out`` may be replaced only when it is missing or an ONNX model that ``opreid-bench export`` wrote."""
    if not out.exists():
        return
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; --out needs a file name such as model.onnx")
    onnx = _import_onnx()
    try:
        producer = onnx.load(str(out), load_external_data=False).producer_name
    except Exception:  # not an ONNX file at all
        producer = None
    if producer != PRODUCER:
        raise OutputError(f"{out}: exists and was not written by `opreid-bench export`; choose another --out")


def trace_to_onnx(model: torch.nn.Module, height: int, width: int, opset: int = OPSET) -> bytes:
    """Serialized ONNX of ``model``'s eval forward on (batch, 3, height, width) float32, dynamic batch axis."""
    model.eval()
    dummy = torch.zeros(2, 3, height, width)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, (dummy,), buf, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                          do_constant_folding=True)
    return buf.getvalue()


def parity(model: torch.nn.Module, onnx_bytes: bytes, height: int, width: int, batch: int = 4, seed: int = 0) -> float:
    """Max abs difference between PyTorch's and onnxruntime's L2-normalised features on a seeded random batch."""
    import onnxruntime as ort

    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, 3, height, width)).astype(np.float32))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.eval()(x).float(), dim=1).numpy()
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (got,) = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    got = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    return float(np.abs(got - ref).max())


def export_checkpoint(weights: str | Path, out: str | Path, *, opset: int = OPSET, tolerance: float = 1e-4
                      ) -> dict[str, Any]:
    """Export the checkpoint ``weights`` to ``out`` (atomically) and return what was written.

    Refuses (one line) a file at ``out`` that this command did not write, and an export whose onnxruntime features
    differ from PyTorch's by more than ``tolerance`` (max abs, L2-normalised).
    """
    from opreid_bench import __version__
    from opreid_bench.atomic import atomic_write_bytes
    from opreid_bench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.onnx_runner import META_PREFIX, preprocessing_metadata

    onnx = _import_onnx()
    out = Path(out)
    refuse_foreign_file(out)
    model, cfg, state = load_model_from_checkpoint(weights)
    h, w = cfg.data.height, cfg.data.width
    me = cfg.model.retrieval_feature == "pooled" and cfg.model.momentum_elimination
    feature = "bnneck" if cfg.model.retrieval_feature == "bnneck" else ("pooled+ME" if me else "pooled")
    try:
        raw = trace_to_onnx(model, h, w, opset)
    except Exception as exc:  # the exporter raises many types for an unsupported op
        raise OnnxModelError(f"{weights}: torch.onnx export failed ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from exc
    proto = onnx.load_from_string(raw)
    proto.producer_name, proto.producer_version = PRODUCER, __version__
    proto.doc_string = (f"opreid-bench {state['method']} ({cfg.model.backbone}) inference graph: retrieval feature "
                        f"{feature}; no RP branch, no classifiers")
    meta = preprocessing_metadata(h, w, IMAGENET_MEAN, IMAGENET_STD, "RGB", OUTPUT_NAME)
    meta.update({f"{META_PREFIX}{k}": str(v) for k, v in {
        "method": state["method"], "backbone": cfg.model.backbone, "retrieval_feature": feature,
        "metric": cfg.eval.metric, "trained_on": state.get("dataset", ""), "epoch": int(state["epoch"]),
        "opreid_bench_version": __version__}.items()})
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    diff = parity(model, data, h, w)
    if not diff <= tolerance:
        raise OnnxModelError(f"{weights}: onnxruntime's features differ from PyTorch's by {diff:.3g} (max abs, "
                             f"L2-normalised) > tolerance {tolerance:g}; nothing written")
    atomic_write_bytes(out, data)
    dim = int(model.feat_dim)
    return {"out": str(out), "weights": str(weights), "method": str(state["method"]), "backbone": cfg.model.backbone,
            "input_size": f"{h}x{w}", "feature": feature, "dim": dim, "opset": opset, "max_abs_diff": diff,
            "bytes": len(data), "metric": cfg.eval.metric}


__all__ = ["export_checkpoint", "parity", "refuse_foreign_file", "trace_to_onnx"]
