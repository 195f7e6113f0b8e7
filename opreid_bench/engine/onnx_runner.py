"""Run any ONNX ReID model on a dataset's query and gallery crops with onnxruntime ("ONNX in").

A model from another codebase (torchreid, fast-reid, transformer research code) needs only its ONNX export: the
crops go through the same decode -> bilinear resize -> [0, 1] -> (x - mean) / std path as ``opreid-bench``'s own
models (:class:`opreid_bench.data.transforms.ReIDTransform`), so a model exported by ``opreid-bench export`` gives
the features of ``--weights`` to float rounding.

Preprocessing is resolved per field, first hit wins: the command's options, the model's ``metadata_props`` (keys
``opreid_bench.*``, written by :mod:`opreid_bench.engine.onnx_export`), the input's static shape (height/width only).
Mean and std are never guessed (a wrong normalisation gives plausible but wrong numbers); channel order defaults to
RGB. Mean/std are per channel on [0, 1] pixel values, listed in the model's channel order; a model normalising 0-255
pixels with (x - m) / s is the same as m/255, s/255 here. The resize is bilinear unless the metadata names another
filter (``opreid_bench.interpolation``: bicubic for fast-reid zoo exports, whose test transform resizes bicubically).

Every fault is one line naming the model file: a missing or unreadable model, an input that is not one rank-4
(batch, 3, height, width) float tensor, a dynamic height/width with no size given, an unknown output name, an
output that is not (batch, ...) or holds NaN/inf (naming the image).

Speed: crops are decoded and transformed by a thread pool (Pillow and numpy release the GIL) while onnxruntime runs
the previous batch; a model with a dynamic batch axis takes ``batch_size`` crops per run. onnxruntime's threads are
set, not left to its defaults: intra-op threads = the CPU cores this process may use (not the machine's count, which
a container or ``taskset`` may not grant), one inter-op thread (sequential execution). Torch is not imported.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import OnnxModelError, OpreidError, OutputError
from opreid_bench.outputs import content_digest

META_PREFIX = "opreid_bench."  # metadata_props keys written by `opreid-bench export`
CHANNEL_ORDERS = ("RGB", "BGR")
FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
RUN_WRITER = "opreid-bench evaluate --onnx"  # run.json's "written_by": a file evaluate may add results to


@dataclass(frozen=True)
class PreprocessingOptions:
    """What the user gave on the command line (None: read it from the model)."""

    height: int | None = None
    width: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class Preprocessing:
    """The resolved preprocessing of one model; ``sources`` says where each field came from."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str
    input_name: str
    output_name: str
    sources: dict[str, str]
    interpolation: str = "bilinear"  # the resize filter (from the metadata; bilinear when it names none)

    def to_attrs(self) -> dict[str, Any]:
        """Feature-file / report attributes (str, int, float or lists of them); ``interpolation`` only when it is
        not bilinear."""
        return {"height": self.height, "width": self.width, "mean": list(self.mean), "std": list(self.std),
                "channel_order": self.channel_order, "onnx_input": self.input_name, "onnx_output": self.output_name,
                "preprocessing_from": json.dumps(self.sources, sort_keys=True),
                **({"interpolation": self.interpolation} if self.interpolation != "bilinear" else {})}

    def to_json(self) -> dict[str, Any]:
        """The preprocessing as a JSON object (run.json, reports)."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out


def parse_input_size(text: str, where: str = "--input-size") -> tuple[int, int]:
    """``"256x128"`` -> (256, 128); anything else is a one-line OpreidError."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise OpreidError(f"{where}={text!r} is not HEIGHTxWIDTH (e.g. 256x128)") from None
    if h <= 0 or w <= 0:
        raise OpreidError(f"{where}={text!r}: height and width must be positive")
    return h, w


def parse_triple(text: str, where: str) -> tuple[float, float, float]:
    """``"0.485,0.456,0.406"`` -> three finite floats (std: positive), else a one-line OpreidError."""
    try:
        values = tuple(float(p) for p in text.replace(" ", "").split(","))
    except ValueError:
        raise OpreidError(f"{where}={text!r} is not three comma-separated numbers (e.g. 0.485,0.456,0.406)") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise OpreidError(f"{where}={text!r} must be three finite comma-separated numbers, one per channel")
    if where.endswith("std") and min(values) <= 0:
        raise OpreidError(f"{where}={text!r}: every std must be > 0")
    return values  # type: ignore[return-value]


def _format_triple(values: Sequence[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def preprocessing_metadata(height: int, width: int, mean: Sequence[float], std: Sequence[float],
                           channel_order: str = "RGB", output: str = "features", interpolation: str = "bilinear"
                           ) -> dict[str, str]:
    """The ``metadata_props`` that make ``--onnx`` need no options (written by ``opreid-bench export``); the resize
    filter only when it is not bilinear (the default of every reader)."""
    props = {f"{META_PREFIX}input_size": f"{height}x{width}", f"{META_PREFIX}mean": _format_triple(mean),
             f"{META_PREFIX}std": _format_triple(std), f"{META_PREFIX}channel_order": channel_order,
             f"{META_PREFIX}pixel_range": "0-1", f"{META_PREFIX}output": output}
    if interpolation != "bilinear":
        props[f"{META_PREFIX}interpolation"] = interpolation
    return props


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise OpreidError("onnxruntime is not installed; install the extra: pip install 'opreid-bench[onnx]'") from None
    return onnxruntime


def providers_for(device: str, path: str | Path) -> list[str]:
    """onnxruntime execution providers for ``cpu`` or ``cuda`` (CUDA needs the onnxruntime-gpu build)."""
    ort = _import_ort()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OpreidError(f"{path}: --device {device}: this onnxruntime has no CUDAExecutionProvider "
                              "(install onnxruntime-gpu instead of onnxruntime)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise OpreidError(f"--device {device!r}: use cpu or cuda")


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def open_session(path: str | Path, device: str = "cpu", threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession of ``path``; a missing or unreadable file is one line.

    ``threads``: onnxruntime's intra-op threads (default: :func:`cpu_cores`); one inter-op thread (the graph runs
    sequentially). Spin-waiting stays on: with crops decoded alongside on 2 cores, turning it off made a static
    batch-1 OSNet x0.25 up to a third slower and the batch-64 one no faster (measured 2026-12-06).
    """
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: ONNX model not found")
    ort = _import_ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads) if threads else cpu_cores()
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(device, path))
    except OpreidError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise OnnxModelError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None


def _dim(d: Any) -> int | None:
    """A static dimension, or None for a symbolic/unknown one."""
    return d if isinstance(d, int) and d > 0 else None


def resolve_preprocessing(session: Any, path: str | Path, given: PreprocessingOptions) -> Preprocessing:
    """Options, then the model's metadata, then its input shape; see the module docstring."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}'" for i in inputs)
        raise OnnxModelError(f"{path}: the model has {len(inputs)} inputs ({names}); an image model takes exactly one "
                             "(batch, 3, height, width) input")
    inp = inputs[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise OnnxModelError(f"{path}: input '{inp.name}' has rank {len(shape)} (shape {shape}); an image model takes "
                             "rank 4 (batch, 3, height, width)")
    if inp.type not in FLOAT_INPUTS:
        raise OnnxModelError(f"{path}: input '{inp.name}' is {inp.type}; a float tensor (batch, 3, height, width) "
                             "is needed")
    channels = _dim(shape[1])
    if channels not in (None, 3):
        raise OnnxModelError(f"{path}: input '{inp.name}' has shape {shape}: {channels} channels at axis 1; an image "
                             "model takes (batch, 3, height, width) (channels first)")
    meta = session.get_modelmeta().custom_metadata_map or {}
    sources: dict[str, str] = {}

    def pick(field: str, option: Any, key: str, parse: Any) -> Any:
        if option is not None:
            sources[field] = "options"
            return option
        if META_PREFIX + key in meta:
            sources[field] = "metadata"
            return parse(meta[META_PREFIX + key], f"{path}: metadata {META_PREFIX}{key}")
        return None

    size = pick("input_size", (given.height, given.width) if given.height else None, "input_size", parse_input_size)
    static = (_dim(shape[2]), _dim(shape[3]))
    if size is None:
        if None in static:
            axis = 2 if static[0] is None else 3
            raise OnnxModelError(f"{path}: input '{inp.name}' has a dynamic axis {axis} ({shape[axis]!r}, "
                                 f"shape {shape}) and the model's metadata gives no input size; pass --input-size "
                                 "HEIGHTxWIDTH")
        size, sources["input_size"] = static, "input shape"
    for axis, (want, have) in enumerate(zip(size, static), start=2):
        if have is not None and have != want:
            raise OnnxModelError(f"{path}: input '{inp.name}' is fixed at {static[0]}x{static[1]} (shape {shape}) "
                                 f"but the input size is {size[0]}x{size[1]} (axis {axis}); drop --input-size or "
                                 "match it")
    mean = pick("mean", given.mean, "mean", parse_triple)
    std = pick("std", given.std, "std", parse_triple)
    if mean is None or std is None:
        raise OnnxModelError(f"{path}: the model's metadata gives no normalisation; pass --mean and --std (per "
                             "channel on [0, 1] pixels, e.g. ImageNet: --mean 0.485,0.456,0.406 --std "
                             "0.229,0.224,0.225)")
    order = pick("channel_order", given.channel_order, "channel_order", lambda v, _w: str(v))
    if order is None:
        order, sources["channel_order"] = "RGB", "default"
    order = order.upper()
    if order not in CHANNEL_ORDERS:
        raise OnnxModelError(f"{path}: channel order {order!r} is not RGB or BGR")
    outputs = [o.name for o in session.get_outputs()]
    output = pick("output", given.output, "output", lambda v, _w: str(v))
    if output is None:
        if len(outputs) != 1:
            raise OnnxModelError(f"{path}: the model has {len(outputs)} outputs ({', '.join(outputs)}); choose the "
                                 "feature with --output NAME")
        output, sources["output"] = outputs[0], "only output"
    if output not in outputs:
        raise OnnxModelError(f"{path}: no output named '{output}'; the model's outputs: {', '.join(outputs)}")
    interpolation = meta.get(META_PREFIX + "interpolation", "bilinear")
    if META_PREFIX + "interpolation" in meta:
        from opreid_bench.engine.zoo_extract import PIL_FILTERS

        if interpolation not in PIL_FILTERS:
            raise OnnxModelError(f"{path}: metadata {META_PREFIX}interpolation={interpolation!r} is not one of "
                                 f"{', '.join(PIL_FILTERS)}")
        sources["interpolation"] = "metadata"
    return Preprocessing(height=int(size[0]), width=int(size[1]), mean=tuple(mean), std=tuple(std),
                         channel_order=order, input_name=inp.name, output_name=output, sources=sources,
                         interpolation=interpolation)


class OnnxFeatureExtractor:
    """Features of image records from one ONNX model: ``extractor(records)`` -> (N, D) float32.

    ``workers``: threads that decode and transform crops while the model runs (None: one per CPU core, at most 2;
    0: decode in the calling thread, between runs). ``threads``: onnxruntime's intra-op threads (see
    :func:`open_session`).
    """

    def __init__(self, path: str | Path, given: PreprocessingOptions | None = None, *, device: str = "cpu",
                 batch_size: int = 64, workers: int | None = None, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, threads)
        self.prep = resolve_preprocessing(self.session, self.path, given or PreprocessingOptions())
        inp = self.session.get_inputs()[0]
        self.dtype = FLOAT_INPUTS[inp.type]
        fixed = _dim(inp.shape[0])
        self.fixed_batch = fixed  # a model exported with a static batch gets exactly that many images per run
        self.batch_size = fixed or int(batch_size)
        self.workers = min(2, cpu_cores()) if workers is None else int(workers)
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.providers: list[str] = list(self.session.get_providers())

    def transform(self) -> Any:
        """The crop transform: decode, resize (bilinear, or the metadata's filter), [0, 1], (x - mean) / std (in
        RGB; BGR flips afterwards)."""
        from opreid_bench.data.transforms import ReIDTransform

        p = self.prep
        mean, std = (p.mean, p.std) if p.channel_order == "RGB" else (p.mean[::-1], p.std[::-1])
        base = ReIDTransform(height=p.height, width=p.width, train=False, mean=tuple(mean), std=tuple(std))
        if p.interpolation == "bilinear":
            return base
        from opreid_bench.engine.zoo_extract import ResizeFirst

        return ResizeFirst(base, p.interpolation)

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) normalised RGB float32 -> (B, D) float32 features (padding to a static batch if needed)."""
        if self.prep.channel_order == "BGR":
            images = images[:, ::-1]
        n = images.shape[0]
        if self.fixed_batch is not None and n < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - n, *images.shape[1:]), dtype=images.dtype)
            images = np.concatenate([images, pad], axis=0)
        feed = {self.prep.input_name: np.ascontiguousarray(images, dtype=self.dtype)}
        try:
            (out,) = self.session.run([self.prep.output_name], feed)
        except Exception as exc:  # onnxruntime's own error types
            raise OnnxModelError(f"{self.path}: running the model on a {list(feed[self.prep.input_name].shape)} "
                                 f"batch failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        out = np.asarray(out)
        if out.ndim < 2 or out.shape[0] != images.shape[0]:
            raise OnnxModelError(f"{self.path}: output '{self.prep.output_name}' has shape {list(out.shape)} for a "
                                 f"batch of {images.shape[0]}; a feature output is (batch, D)")
        if not np.issubdtype(out.dtype, np.floating):
            raise OnnxModelError(f"{self.path}: output '{self.prep.output_name}' is {out.dtype}, not a float feature")
        return out[:n].reshape(n, -1).astype(np.float32)

    def batches(self, records: Sequence[ImageRecord]) -> Iterator[tuple[np.ndarray, None, None, np.ndarray]]:
        """``(images, None, None, indices)`` per batch of ``records`` in order, images (B, 3, H, W) float32 from
        :meth:`transform`; ``workers`` threads prepare the next batches while the caller runs this one."""
        from opreid_bench.data.decode import load_rgb

        transform = self.transform()
        p = self.prep
        n, size = len(records), self.batch_size

        def fill(images: np.ndarray, row0: int, start: int, stop: int) -> None:
            for row, i in enumerate(range(start, stop), row0):
                transform.array(load_rgb(records[i].path), out=images[row])

        def new_batch(start: int) -> tuple[np.ndarray, np.ndarray]:
            stop = min(start + size, n)
            return np.empty((stop - start, 3, p.height, p.width), dtype=np.float32), np.arange(start, stop)

        if self.workers <= 0:
            for start in range(0, n, size):
                images, idx = new_batch(start)
                fill(images, 0, start, start + len(idx))
                yield images, None, None, idx
            return
        from concurrent.futures import Future, ThreadPoolExecutor

        # a batch is split into pieces of a few crops, so that the pool shares even the first batch out
        piece = max(1, min(8, -(-size // self.workers)))
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="onnx-decode")

        def submit(start: int) -> tuple[np.ndarray, np.ndarray, list[Future]]:
            images, idx = new_batch(start)
            stop = start + len(idx)
            return images, idx, [pool.submit(fill, images, s - start, s, min(s + piece, stop))
                                 for s in range(start, stop, piece)]

        starts = iter(range(0, n, size))
        ahead: deque[tuple[np.ndarray, np.ndarray, list[Future]]] = deque()  # batches being decoded, in order
        try:
            for start in starts:
                ahead.append(submit(start))
                if len(ahead) > self.workers:  # workers + 1 batches ahead of the model at most
                    break
            while ahead:
                images, idx, pieces = ahead.popleft()
                for f in pieces:
                    f.result()  # a crop's DataError surfaces here, in record order
                for start in starts:
                    ahead.append(submit(start))
                    break
                yield images, None, None, idx
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __call__(self, records: Sequence[ImageRecord], *, progress: bool = True, description: str = "extract"
                 ) -> np.ndarray:
        """(N, D) float32 features of ``records`` in record order; NaN/inf in a row names its image."""
        from opreid_bench.engine.extract import collect_features

        def features_of(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
            feats = self.run_batch(images)
            bad = np.flatnonzero(~np.isfinite(feats).all(axis=1))
            if bad.size:
                rec = records[int(idx[bad[0]])]
                raise OnnxModelError(f"{self.path}: output '{self.prep.output_name}' holds NaN/inf for image "
                                     f"{rec.path} ({bad.size} of {feats.shape[0]} rows in its batch)")
            return feats

        return collect_features(self.batches(records), features_of, len(records), progress=progress,
                                description=f"{description} (onnxruntime)")


def onnx_feature_sets(
    onnx_path: str | Path,
    dataset: str,
    root: str | Path,
    *,
    given: PreprocessingOptions | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    options: dict[str, str] | None = None,
    progress: bool = True,
    metric: str | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Query/gallery FeatureSets of ``dataset`` under ``root`` from an ONNX model, and the attributes that record
    where they came from (model file and hash, resolved preprocessing, providers, the dataset's junk rule, the
    backbone and epochs that ``opreid-bench export`` wrote into the metadata, and the metric: ``metric`` when given,
    else the model's when its metadata names one)."""
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.extract import dataset_junk, default_junk, feature_set, options_text
    from opreid_bench.errors import DataError

    extractor = OnnxFeatureExtractor(onnx_path, given, device=device, batch_size=batch_size)
    splits = load_dataset(dataset, root, **(options or {}))
    if not splits.query or not splits.gallery:
        raise DataError(f"{root}: dataset '{dataset}' has no query/gallery split to extract")
    query = feature_set(splits.query, extractor(splits.query, progress=progress, description="query"))
    gallery = feature_set(splits.gallery, extractor(splits.gallery, progress=progress, description="gallery"))
    meta = extractor.metadata
    attrs: dict[str, Any] = {
        "dataset": dataset,
        "junk": dataset_junk(dataset) or default_junk(splits.query, splits.gallery),
        "model_format": "onnx",
        "onnx": str(onnx_path),
        "onnx_sha256": content_digest(onnx_path),
        "method": meta.get(META_PREFIX + "method", Path(onnx_path).stem),
        "providers": extractor.providers,
        **extractor.prep.to_attrs(),
    }
    if meta.get(META_PREFIX + "backbone"):  # written by `opreid-bench export`: the leaderboard shows them
        attrs["backbone"] = str(meta[META_PREFIX + "backbone"])
    if re.fullmatch(r"[0-9]{1,9}", str(meta.get(META_PREFIX + "epoch", ""))):  # ASCII digits only ('²' is a digit too)
        attrs["epochs"] = int(meta[META_PREFIX + "epoch"])
    metric = metric or meta.get(META_PREFIX + "metric")
    if metric in ("euclidean", "cosine"):
        attrs["metric"] = metric
    if options:
        attrs["dataset_options"] = options_text(options)
    return query, gallery, attrs


def write_onnx_run(run_dir: str | Path, *, name: str, attrs: dict[str, Any], metrics: dict[str, Any],
                   hardware: str = "") -> Path:
    """Record an ``--onnx`` evaluation as a leaderboard run: ``RUN_DIR/run.json`` (metrics as fractions).

    A run.json this command wrote for the same model (same SHA-256) gains the new dataset's results, under
    :func:`opreid_bench.engine.extract.result_key` (a dataset read with loader options is kept apart from the
    standard protocol); any other run.json is refused (never overwritten). Written atomically.
    """
    from opreid_bench.atomic import atomic_write_text

    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    info: dict[str, Any] = {}
    if path.exists():
        try:
            info = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            info = {}
        if not isinstance(info, dict) or info.get("written_by") != RUN_WRITER:
            raise OutputError(f"{path}: exists and was not written by `{RUN_WRITER}`; choose another --run-dir")
        if info.get("onnx_sha256") != attrs["onnx_sha256"] or info.get("method") != name:
            raise OutputError(f"{path}: records another model ({info.get('method')!r}, {info.get('onnx')}); choose "
                              "another --run-dir")
    from opreid_bench.engine.extract import result_key

    results = dict(info.get("results") or {})
    options = str(attrs.get("dataset_options") or "")
    results[result_key(str(attrs["dataset"]), options)] = {**metrics, **({"dataset_options": options} if options
                                                                         else {})}
    keep = ("onnx", "onnx_sha256", "backbone", "epochs", "height", "width", "channel_order", "mean", "std",
            "onnx_output", "providers")
    info = {
        "written_by": RUN_WRITER,
        "method": name,
        "model_format": "onnx",
        "source": f"onnx: {attrs['onnx']}",
        **{k: attrs[k] for k in keep if k in attrs},
        "preprocessing": {k: attrs[k] for k in ("height", "width", "mean", "std", "channel_order", "interpolation")
                          if k in attrs},
        "metric": attrs.get("metric"),
        "junk": attrs.get("junk"),
        "hardware": hardware or f"{platform.processor() or platform.machine()} ({', '.join(attrs.get('providers', []))})",
        "metrics_unit": "fraction",  # leaderboard.rows reads it: results are fractions in [0, 1]
        "results": results,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


__all__ = ["OnnxFeatureExtractor", "Preprocessing", "PreprocessingOptions", "onnx_feature_sets",
           "open_session", "parse_input_size", "parse_triple", "preprocessing_metadata", "resolve_preprocessing",
           "write_onnx_run"]
