"""Export a trained checkpoint's inference graph to ONNX ("ONNX out").

What is traced is exactly ``ReIDModel``'s eval-mode forward: backbone (+ non-local / DNL) -> pooling -> the retrieval
feature (BNNeck output for bot / baseline / ablation rows; for ``ours`` the pooled feature with ME folded in,
normalise(normalise(f_g) - mu), Eq. 6). The RP branch (Eq. 2) and the classifiers are never called in eval mode, so
they are not in the graph. The batch axis is dynamic; height and width are fixed at the training size.

The crop preprocessing (input size, mean/std on [0, 1] RGB pixels: ImageNet's for our own models; the resize filter
when it is not bilinear, e.g. bicubic for fast-reid zoo exports) and the method's distance metric go into the
model's ``metadata_props`` (``opreid_bench.*``), so ``evaluate --onnx`` / ``extract --onnx`` need no options for our
own exports. Before the file is written, onnxruntime's features on a seeded random batch are compared with
PyTorch's (max abs difference of L2-normalised features); an export above the tolerance is refused.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``; still shipped in torch 2.13,
needs no ``onnxscript``); ``onnx`` edits the metadata and checks the graph. Opset 17.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opreid_bench.errors import OnnxModelError, OpreidError

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
    from opreid_bench.outputs import refuse_foreign_file as refuse

    def ours(path: Path) -> bool:
        onnx = _import_onnx()
        try:
            return onnx.load(str(path), load_external_data=False).producer_name == PRODUCER
        except Exception:  # noqa: BLE001 - not an ONNX file at all
            return False

    refuse(out, "export", ours)


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


def parity(model: torch.nn.Module, onnx_bytes: bytes, height: int, width: int, batch: int = 4, seed: int = 0,
           providers: Sequence[str] = ("CPUExecutionProvider",)) -> float:
    """Max abs difference between PyTorch's and onnxruntime's L2-normalised features on a seeded random batch
    (onnxruntime on ``providers``, in order of preference)."""
    import onnxruntime as ort

    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, 3, height, width)).astype(np.float32))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.eval()(x).float(), dim=1).numpy()
    sess = ort.InferenceSession(onnx_bytes, providers=list(providers))
    (got,) = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    got = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    return float(np.abs(got - ref).max())


def export_checkpoint(weights: str | Path, out: str | Path, *, opset: int = OPSET, tolerance: float = 1e-4
                      ) -> dict[str, Any]:
    """Export the checkpoint ``weights`` to ``out`` (atomically) and return what was written.

    Refuses (one line) a file at ``out`` that this command did not write, and an export whose onnxruntime features
    differ from PyTorch's by more than ``tolerance`` (max abs, L2-normalised).
    """
    from opreid_bench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from opreid_bench.engine.checkpoint import load_model_from_checkpoint

    out = Path(out)
    refuse_foreign_file(out)
    model, cfg, state = load_model_from_checkpoint(weights)
    h, w = cfg.data.height, cfg.data.width
    me = cfg.model.retrieval_feature == "pooled" and cfg.model.momentum_elimination
    feature = "bnneck" if cfg.model.retrieval_feature == "bnneck" else ("pooled+ME" if me else "pooled")
    doc = (f"opreid-bench {state['method']} ({cfg.model.backbone}) inference graph: retrieval feature {feature}; no RP "
           "branch, no classifiers")
    info = write_onnx(model, weights, out, height=h, width=w, mean=IMAGENET_MEAN, std=IMAGENET_STD, doc=doc,
                      meta={"method": state["method"], "backbone": cfg.model.backbone, "retrieval_feature": feature,
                            "metric": cfg.eval.metric, "trained_on": state.get("dataset", ""),
                            "epoch": int(state["epoch"])}, opset=opset, tolerance=tolerance)
    return {**info, "method": str(state["method"]), "backbone": cfg.model.backbone, "feature": feature,
            "dim": int(model.feat_dim), "metric": cfg.eval.metric}


def export_zoo(spec: str, weights: str | Path, out: str | Path, *, opset: int = OPSET, tolerance: float = 1e-4,
               input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Export a model-zoo checkpoint (``--zoo torchreid:ARCH`` or ``fastreid:CONFIG.yml``) with its preprocessing
    (size, mean/std, resize filter) and distance in the metadata, so that ``evaluate --onnx`` needs no options;
    ``input_size`` (height, width) replaces the toolkit's test size; refusals as :func:`export_checkpoint`."""
    from opreid_bench.modeling.zoo import load_zoo_model

    out = Path(out)
    refuse_foreign_file(out)
    model, prep = load_zoo_model(spec, weights, input_size=input_size)
    backbone = getattr(model, "description", None) or spec.split(":", 1)[1]
    doc = f"{spec} (model zoo) eval-mode forward, rebuilt by opreid-bench with the zoo's parameter names"
    info = write_onnx(model, weights, out, height=prep.height, width=prep.width, mean=prep.mean, std=prep.std, doc=doc,
                      meta={"method": spec, "backbone": backbone, "retrieval_feature": "zoo", "metric": prep.metric},
                      opset=opset, tolerance=tolerance, interpolation=prep.interpolation)
    return {**info, "method": spec, "backbone": backbone, "feature": "zoo", "dim": int(model.feature_dim),
            "metric": prep.metric}


def write_onnx(model: torch.nn.Module, source: str | Path, out: Path, *, height: int, width: int,
               mean: Any, std: Any, doc: str, meta: dict[str, Any], opset: int, tolerance: float,
               interpolation: str = "bilinear") -> dict[str, Any]:
    """Trace ``model``, write the preprocessing (``interpolation``: the resize filter the model expects) and
    ``meta`` into the ONNX metadata, check onnxruntime against PyTorch (``tolerance``, else nothing is written) and
    write ``out`` atomically."""
    from opreid_bench import __version__
    from opreid_bench.atomic import atomic_write_bytes
    from opreid_bench.engine.onnx_runner import META_PREFIX, preprocessing_metadata

    onnx = _import_onnx()
    try:
        raw = trace_to_onnx(model, height, width, opset)
    except Exception as exc:  # the exporter raises many types for an unsupported op
        raise OnnxModelError(f"{source}: torch.onnx export failed ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from exc
    proto = onnx.load_from_string(raw)
    proto.producer_name, proto.producer_version = PRODUCER, __version__
    proto.doc_string = doc
    props = preprocessing_metadata(height, width, mean, std, "RGB", OUTPUT_NAME, interpolation=interpolation)
    props.update({f"{META_PREFIX}{k}": str(v) for k, v in {**meta, "opreid_bench_version": __version__}.items()})
    del proto.metadata_props[:]
    for key, value in sorted(props.items()):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    diff = parity(model, data, height, width)
    if math.isnan(diff):
        raise OnnxModelError(f"{source}: the model gives NaN/inf features on a random batch (NaN/inf in the "
                             "checkpoint's weights?); nothing written")
    if not diff <= tolerance:
        raise OnnxModelError(f"{source}: onnxruntime's features differ from PyTorch's by {diff:.3g} (max abs, "
                             f"L2-normalised) > tolerance {tolerance:g}; nothing written")
    atomic_write_bytes(out, data)
    return {"out": str(out), "weights": str(source), "input_size": f"{height}x{width}", "opset": opset,
            "max_abs_diff": diff, "bytes": len(data)}


__all__ = ["export_checkpoint", "export_zoo", "parity", "refuse_foreign_file", "trace_to_onnx", "write_onnx"]
