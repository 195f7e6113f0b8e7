"""Stage 1 of build-split: pose keypoints for every crop of a pool, cached, resumable, on 1..N processes or Ray.

``annotate_pool`` hashes every crop (sha1 of its bytes), reuses cached keypoints whose hash is unchanged, runs the
pose backend on the rest (in this process, in ``workers`` spawned processes with one model each, or on Ray Data with
one model per actor), flushes results in batches (see ``cache``), and writes ``keypoints.h5`` plus
``annotate_report.json`` (counts, skipped files with the reason, speed). Unreadable and non-image files are skipped
and listed, never a crash. Results do not depend on the engine, the worker count or interruptions: rows are keyed and
sorted by source path, and each crop's keypoints depend only on that crop.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opreid_bench.atomic import atomic_write_text
from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import OpreidError
from opreid_bench.splits.cache import Entry, KeypointStore, stack_people
from opreid_bench.splits.keypoints import KEYPOINT_SIGNALS, NUM_KEYPOINTS, Keypoints, stack_signal

REPORT_NAME = "annotate_report.json"
ENGINES = ("local", "ray")


@dataclass
class Result:
    """What one crop gave: its hash and keypoints, or the reason it was skipped."""

    source_path: str
    sha1: str | None
    keypoints: Keypoints | None
    error: str | None = None


@dataclass
class AnnotateStats:
    """Counters that end up in ``annotate_report.json``."""

    total: int = 0
    cached: int = 0
    annotated: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to an (H, W, 3) uint8 RGB array, upright and 8-bit as every stage sees the crop
    (:func:`opreid_bench.data.decode.upright_rgb`); raises ValueError for anything that is not an image (a
    decompression bomb included)."""
    from opreid_bench.data.decode import decode_errors, decode_rgb

    try:
        rgb = decode_rgb(data)
    except decode_errors() as exc:
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def file_sha1(path: str) -> str:
    """sha1 of a file's bytes (the content half of the cache key)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def process_one(backend: Any, source_path: str) -> Result:
    """Read, hash, decode and annotate one crop; any fault of the file becomes ``Result.error``."""
    try:
        data = Path(source_path).read_bytes()
    except OSError as exc:
        return Result(source_path, None, None, f"unreadable: {exc.strerror or exc}")
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        image = decode_image(data)
    except ValueError as exc:
        return Result(source_path, sha1, None, str(exc))
    kp = backend.predict(image, source_path)
    if kp is None:
        return Result(source_path, sha1, None, f"backend {backend.name} has no keypoints for this crop")
    return Result(source_path, sha1, kp)


# ---- local engine: this process or spawned worker processes (one model per process) ----

_WORKER_BACKEND: Any = None


def _init_worker(spec: str) -> None:
    global _WORKER_BACKEND
    os.environ.setdefault("GLOG_minloglevel", "2")
    from opreid_bench.splits.pose_backends import make_backend

    _WORKER_BACKEND = make_backend(spec)


def _worker_process(source_path: str) -> Result:
    return process_one(_WORKER_BACKEND, source_path)


def _run_local(spec: str, paths: Sequence[str], workers: int, batch_size: int) -> Iterator[Result]:
    if workers <= 1:
        from opreid_bench.splits.pose_backends import make_backend

        backend = make_backend(spec)
        try:
            for p in paths:
                yield process_one(backend, p)
        finally:
            backend.close()
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked model or thread state
    chunk = max(1, min(batch_size, len(paths) // (workers * 4) or 1))
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        yield from pool.imap_unordered(_worker_process, paths, chunksize=chunk)


# ---- ray engine: Ray Data map_batches with one pose model per actor ----


class PoseActor:
    """A Ray Data callable class: builds one pose backend per actor and annotates batches of source paths."""

    def __init__(self, spec: str) -> None:
        from opreid_bench.splits.pose_backends import make_backend

        self.backend = make_backend(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.annotate(batch)

    def annotate(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Annotate a batch ``{"source_path": array of paths}`` into the columnar result form."""
        results = [process_one(self.backend, str(p)) for p in batch["source_path"]]
        return results_to_batch(results)


def results_to_batch(results: Sequence[Result]) -> dict[str, np.ndarray]:
    """Columnar form of results (what Ray Data moves between actors and the driver)."""
    n = len(results)
    xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
    score = np.zeros((n, NUM_KEYPOINTS), np.float32)
    size = np.zeros((n, 2), np.int32)
    detected = np.zeros(n, bool)
    for i, r in enumerate(results):
        if r.keypoints is not None:
            xy[i], score[i], detected[i] = r.keypoints.xy, r.keypoints.score, r.keypoints.detected
            size[i] = r.keypoints.image_size or (0, 0)
    out = {
        "source_path": np.array([r.source_path for r in results], dtype=object),
        "sha1": np.array([r.sha1 or "" for r in results], dtype=object),
        "error": np.array([r.error or "" for r in results], dtype=object),
        "xy": xy,
        "score": score,
        "image_size": size,
        "detected": detected,
        **{name: stack_signal([r.keypoints for r in results], name) for name in KEYPOINT_SIGNALS},
    }
    people = stack_people([r.keypoints.people if r.keypoints is not None else None for r in results])
    if people is not None:
        out["people"] = people
    return out


def batch_to_results(batch: dict[str, np.ndarray]) -> list[Result]:
    """Inverse of ``results_to_batch``."""
    out = []
    for i, p in enumerate(batch["source_path"]):
        err = str(batch["error"][i]) or None
        sha1 = str(batch["sha1"][i]) or None
        kp = None
        if err is None:
            w, h = (int(v) for v in batch["image_size"][i])
            kp = Keypoints(
                batch["xy"][i], batch["score"][i], image_size=(w, h) if w and h else None,
                detected=bool(batch["detected"][i]),
                people=batch["people"][i] if "people" in batch else None,
                **{name: batch[name][i] for name in KEYPOINT_SIGNALS if name in batch},
            )
        out.append(Result(str(p), sha1, kp, err))
    return out


def _check_pyarrow() -> bool:
    """True when pyarrow (which Ray Data needs) imports; an installed-but-broken pyarrow breaks Ray itself."""
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        return False
    except ImportError as exc:
        raise OpreidError(
            f"--engine ray: pyarrow is installed but does not import ({exc}); Ray cannot serialise data with it. "
            "Install a pyarrow built for this numpy (or uninstall pyarrow), or use --engine local"
        ) from None
    return True


def _run_ray(spec: str, paths: Sequence[str], workers: int, batch_size: int) -> Iterator[Result]:
    try:
        import ray
    except ImportError:
        raise OpreidError("--engine ray needs ray (pip install 'opreid-bench[ray]')") from None
    has_arrow = _check_pyarrow()
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()  # join the cluster named by RAY_ADDRESS
        else:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
    try:
        if not has_arrow:
            raise ImportError("pyarrow is not installed")
        import ray.data
    except ImportError as exc:
        yield from _run_ray_actors(ray, spec, paths, workers, batch_size, reason=str(exc))
        return
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"source_path": p} for p in paths])
    ds = ds.map_batches(
        PoseActor,
        fn_constructor_kwargs={"spec": spec},
        concurrency=max(1, workers),
        batch_size=batch_size,
        num_cpus=1,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield from batch_to_results(batch)


def _run_ray_actors(ray: Any, spec: str, paths: Sequence[str], workers: int, batch_size: int,
                    reason: str) -> Iterator[Result]:
    """Fallback when Ray Data is unavailable: the same PoseActor on plain Ray actors, batches round-robin."""
    import sys

    from ray.util.actor_pool import ActorPool

    print(f"Ray Data unavailable ({reason}); using {workers} plain Ray actor(s), one pose model each",
          file=sys.stderr)
    remote_actor = ray.remote(num_cpus=1)(PoseActor)
    actors = [remote_actor.remote(spec) for _ in range(max(1, workers))]
    try:
        pool = ActorPool(actors)
        chunks = [{"source_path": np.array(paths[i : i + batch_size], dtype=object)}
                  for i in range(0, len(paths), batch_size)]
        for out in pool.map_unordered(lambda actor, chunk: actor.annotate.remote(chunk), chunks):
            yield from batch_to_results(out)
    finally:
        for actor in actors:
            ray.kill(actor)


# ---- the stage ----


def _unique_paths(records: Iterable[ImageRecord | str]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen[str(r.path if isinstance(r, ImageRecord) else r)] = None
    return list(seen)


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def pose_inputs(pose: str) -> list[tuple[str, Path]]:
    """The files a pose spec reads (a precomputed keypoint file, mmpose config and checkpoint): inputs of a run."""
    name, _, arg = pose.partition(":")
    if name == "precomputed" and arg:
        return [("keypoint file", Path(arg))]
    if name == "mmpose" and arg:
        return [("mmpose file", Path(p.strip())) for p in arg.split(",") if p.strip()]
    return []


def annotate_pool(
    records: Sequence[ImageRecord | str],
    out_dir: str | os.PathLike[str],
    *,
    backend: str = "mediapipe",
    workers: int = 1,
    engine: str = "local",
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> Path:
    """Annotate every crop of ``records`` with COCO-17 keypoints into ``out_dir/keypoints.h5``; return its path.

    ``backend`` is a pose spec (``mediapipe``, ``precomputed:FILE``, ``mmpose:CONFIG,CHECKPOINT``). Crops already in
    the cache with the same content hash (and backend key, see ``cache``) are not run again, so a killed run resumes
    where it stopped. ``limit`` stops after that many newly annotated crops (the file then holds what is done; the
    report says ``complete: false``). ``on_batch(n_done)`` is called after each flushed batch (tests use it to
    simulate a kill). ``out_dir`` is locked for the run and must be new, empty or an earlier annotate folder, and
    must not hold or be inside an input (``opreid_bench.outputs``).
    """
    from opreid_bench.outputs import fingerprint, output_folder, record_folders
    from opreid_bench.splits.pose_backends import make_backend

    if engine not in ENGINES:
        raise OpreidError(f"unknown engine '{engine}'; use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise OpreidError(f"--workers must be >= 1, got {workers}")
    probe = make_backend(backend)  # validates the spec and gives the cache key before any work starts
    cache_key, by_path = probe.cache_key, probe.keyed_by_path
    probe.close()
    inputs = record_folders(_unique_paths(records), "pool's crop folder") + pose_inputs(backend)
    with output_folder(out_dir, "annotate", kind="keypoints", inputs=inputs, fingerprint=fingerprint(cache_key),
                       options={"backend": cache_key}):
        return _annotate_into(records, out_dir, backend=backend, cache_key=cache_key, by_path=by_path,
                              workers=workers, engine=engine, batch_size=batch_size, limit=limit, progress=progress,
                              on_batch=on_batch)


def _annotate_into(
    records: Sequence[ImageRecord | str],
    out_dir: str | os.PathLike[str],
    *,
    backend: str = "mediapipe",
    workers: int = 1,
    engine: str = "local",
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    cache_key: str,
    by_path: bool,
) -> Path:
    """The body of :func:`annotate_pool`, run while it holds ``out_dir``'s lock.

    ``backend`` is a pose spec (``mediapipe``, ``precomputed:FILE``, ``mmpose:CONFIG,CHECKPOINT``). Crops already in
    the cache with the same content hash are not run again, so a killed run resumes where it stopped. ``limit`` stops
    after that many newly annotated crops (the file then holds what is done; the report says ``complete: false``).
    ``on_batch(n_done)`` is called after each flushed batch (tests use it to simulate a kill).
    """
    if engine not in ENGINES:
        raise OpreidError(f"unknown engine '{engine}'; use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise OpreidError(f"--workers must be >= 1, got {workers}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = KeypointStore(out_dir, cache_key, by_path=by_path)
    paths = _unique_paths(records)
    stats = AnnotateStats(total=len(paths))
    t0 = time.perf_counter()

    pending: list[str] = []
    with _progress(progress) as bar:
        task = bar.add_task("hashing crops", total=len(paths))
        for p in paths:
            try:
                sha1 = file_sha1(p)
            except OSError as exc:
                stats.skipped.append({"source_path": p, "reason": f"unreadable: {exc.strerror or exc}"})
            else:
                if store.lookup(p, sha1) is not None:
                    stats.cached += 1
                else:
                    pending.append(p)
            bar.advance(task)
        if limit is not None:
            pending = pending[: max(0, limit)]
        complete = limit is None or len(pending) + stats.cached + len(stats.skipped) >= len(paths)

        model = cache_key.split(":", 1)[0]  # the full key is in annotate_report.json
        where = f"{workers} Ray actor(s)" if engine == "ray" else f"{workers} process(es)"
        task = bar.add_task(f"pose ({model}, {where})", total=len(pending))
        runner = _run_ray if engine == "ray" else _run_local
        batch: dict[str, Entry] = {}
        t_pose = time.perf_counter()
        if pending:
            for result in runner(backend, pending, workers, batch_size):
                if result.error is not None or result.keypoints is None or result.sha1 is None:
                    stats.skipped.append({"source_path": result.source_path, "reason": result.error or "no result"})
                else:
                    batch[result.source_path] = Entry(result.sha1, result.keypoints)
                    stats.annotated += 1
                bar.advance(task)
                if len(batch) >= batch_size:
                    store.add_batch(batch)
                    batch = {}
                    if on_batch is not None:
                        on_batch(stats.annotated)
            store.add_batch(batch)
            if on_batch is not None and batch:
                on_batch(stats.annotated)
        pose_s = time.perf_counter() - t_pose

    keep = set(paths)
    out = store.finalize(keep)
    skipped = sorted(stats.skipped, key=lambda s: s["source_path"])
    no_person = sum(1 for p in paths if (e := store.get(p)) is not None and not e.keypoints.detected)
    report = {
        "keypoints": str(out),
        "backend": cache_key,
        "engine": engine,
        "workers": workers,
        "total": stats.total,
        "annotated": stats.annotated,
        "cached": stats.cached,
        "stored": sum(1 for p in paths if store.get(p) is not None),
        "no_person_detected": no_person,
        "skipped": skipped,
        "complete": complete,
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "crops_per_s": round(stats.annotated / pose_s, 3) if stats.annotated and pose_s > 0 else None,
    }
    atomic_write_text(out_dir / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return out


def read_report(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``annotate_report.json`` of an annotate folder."""
    path = Path(out_dir) / REPORT_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OpreidError(f"{path}: no readable annotate report ({exc})") from None
