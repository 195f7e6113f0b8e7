"""build-split end to end: keypoints -> occluded label -> sampling -> masked Market-style folder + data card.

``build_split`` runs the four stages of paper Section 4 over a pool of crops:

1. ``annotate_pool`` (pose keypoints, cached and resumable in ``OUT/.annotate/``),
2. ``classify_store`` (occluded or holistic, optional manual corrections),
3. ``sample_split`` (query/gallery/train by the protocol, seeded),
4. ``write_split`` (faces masked, Market names, ``manifest.csv``) plus ``keypoints.h5`` (the sampled crops'
   keypoints) and ``DATA_CARD.md`` with ``occlusion_stats.png``.

A rerun into the same folder reuses the keypoint cache and rewrites only what changed; the same pool, protocol and
seed give byte-identical outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import DataError, ProtocolError
from opreid_bench.splits.protocol import SplitProtocol

WORK_DIR = ".annotate"


@dataclass
class BuildResult:
    """What build_split produced: the output folder, the manifest rows and summary numbers."""

    out_dir: Path
    manifest: pd.DataFrame
    summary: dict[str, dict[str, float]]
    same_camera_queries: int
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``build-split --json`` object."""
        masked = self.manifest["face_masked"].astype(bool)
        return {
            "out": str(self.out_dir),
            "splits": self.summary,
            "faces_masked": int(masked.sum()),
            "mask_methods": {k: int(v) for k, v in self.manifest["mask_method"].value_counts().sort_index().items()},
            "same_camera_queries": self.same_camera_queries,
            "skipped": len(self.skipped),
        }


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Any]:
    """A rich Progress on stderr (or a no-op stand-in) shared by the stages."""
    if not enabled:
        class _Null:
            def add_task(self, *a: Any, **k: Any) -> int:
                return 0

            def update(self, *a: Any, **k: Any) -> None:
                pass

            def advance(self, *a: Any, **k: Any) -> None:
                pass

        yield _Null()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    ) as prog:
        yield prog


def labels_for_pool(records: Sequence[ImageRecord], labels: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    """Join occlusion labels (keyed by ``source_path``) with the pool's pid and camid; unlabelled crops are dropped.

    A label's ``source_path`` matches a record's path as given, else as an absolute path.
    """
    if "source_path" not in labels.columns or "occluded" not in labels.columns:
        raise DataError(f"{where}: needs columns source_path and occluded")
    pool = pd.DataFrame(
        {"source_path": [r.path for r in records], "pid": [r.pid for r in records], "camid": [r.camid for r in records]}
    ).drop_duplicates("source_path")
    lab = labels.drop(columns=[c for c in ("pid", "camid") if c in labels.columns]).copy()
    lab["source_path"] = lab["source_path"].astype(str)
    merged = pool.merge(lab, on="source_path", how="inner")
    if len(merged) < len(pool):
        abs_pool = pool.assign(_key=[os.path.abspath(p) for p in pool["source_path"]])
        abs_lab = lab.assign(_key=[os.path.abspath(p) for p in lab["source_path"]]).drop(columns="source_path")
        merged = abs_pool.merge(abs_lab, on="_key", how="inner").drop(columns="_key")
    if merged.empty:
        raise DataError(f"{where}: no label matches a crop of the pool (compare their source_path columns)")
    return merged.reset_index(drop=True)


def _default_rule() -> Any:
    from opreid_bench.splits.classify import OcclusionRule

    return OcclusionRule()


def filtered_keypoints_copy(src_h5: Path, dest_h5: Path, keep: set[str]) -> None:
    """Write the keypoints of the crops in ``keep`` from ``src_h5`` to ``dest_h5`` (atomic, sorted rows)."""
    from opreid_bench.splits.cache import read_h5, write_h5

    entries, backend = read_h5(src_h5)
    write_h5(dest_h5, {k: v for k, v in entries.items() if k in keep}, backend)


def build_split(
    pool: Sequence[ImageRecord],
    protocol: SplitProtocol,
    out_dir: str | os.PathLike[str],
    seed: int,
    *,
    pose: str = "mediapipe",
    workers: int = 1,
    engine: str = "local",
    mask: str = "blur",
    rule: Any = None,
    corrections: str | os.PathLike[str] | None = None,
    pool_name: str = "pool",
    progress: bool = True,
) -> BuildResult:
    """Build an OPReID-style split from ``pool`` into ``out_dir`` (see the module docstring)."""
    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.cache import read_keypoints
    from opreid_bench.splits.classify import classify_store
    from opreid_bench.splits.datacard import write_data_card
    from opreid_bench.splits.sample import same_camera_queries, sample_split, split_summary
    from opreid_bench.splits.writer import write_split

    if not pool:
        raise DataError(f"{pool_name}: the pool has no crops")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / WORK_DIR
    print(f"[1/4] keypoints ({pose}) for {len(pool):,} crops", file=sys.stderr)
    kp_h5 = annotate_pool(list(pool), work, backend=pose, workers=workers, engine=engine, progress=progress)
    skipped: list[str] = list(getattr(pool, "skipped", []))
    report = work / "annotate_report.json"
    if report.is_file():
        for s in json.loads(report.read_text(encoding="utf-8")).get("skipped", []):
            skipped.append(f"{s['source_path']}: {s.get('reason', 'skipped')}")
    print("[2/4] occluded or holistic", file=sys.stderr)
    labels = classify_store(kp_h5, rule if rule is not None else _default_rule(), corrections)
    labelled = labels_for_pool(pool, labels, where=str(kp_h5))
    check_protocol_fits(labelled, protocol)
    print(f"[3/4] sampling by protocol '{protocol.name}' (seed {seed})", file=sys.stderr)
    split = sample_split(labelled, protocol, seed)
    keypoints = read_keypoints(kp_h5)
    with stage_progress(progress) as prog:
        task = prog.add_task(f"[4/4] writing {len(split):,} crops (mask: {mask})", total=len(split))
        written = write_split(
            split, out, keypoints=keypoints, mask=mask, workers=workers,
            on_done=lambda n: prog.advance(task, n),
        )
    filtered_keypoints_copy(kp_h5, out / "keypoints.h5", set(written["source_path"]))
    write_data_card(
        out, written, protocol, seed=seed, pose=pose, mask=mask, pool=pool_name, pool_size=len(pool), skipped=skipped
    )
    return BuildResult(out, written, split_summary(split), same_camera_queries(split), skipped)


def check_protocol_fits(labels: pd.DataFrame, protocol: SplitProtocol) -> None:
    """Quick pre-check before any image is written: enough crops overall (the sampler checks the rest)."""
    need = protocol.query_images + protocol.gallery_images + protocol.train_images
    if len(labels) < need:
        raise ProtocolError(
            f"pool too small for protocol '{protocol.name}': it needs {need:,} crops, the pool has {len(labels):,}"
        )
