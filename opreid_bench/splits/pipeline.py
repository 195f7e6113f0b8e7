"""build-split end to end: keypoints -> occluded label -> sampling -> masked Market-style folder + data card.

``build_split`` runs the four stages of paper Section 4 over a pool of crops:

1. ``annotate_pool`` (pose keypoints, cached and resumable in ``OUT/.annotate/``),
2. ``classify_store`` (occluded or holistic, optional manual corrections),
3. ``sample_split`` (query/gallery/train by the protocol, seeded),
4. ``write_split`` (faces masked, Market names, ``manifest.csv``) plus ``keypoints.h5`` (the sampled crops'
   keypoints) and ``DATA_CARD.md`` with ``occlusion_stats.png``.

The split is built in a temporary sibling of the output folder and swapped in whole at the end (see
``opreid_bench.outputs``): a killed run leaves the previous complete split, a folder the command did not write or one
that holds an input is refused, and two runs into one folder cannot race. A rerun reuses the keypoint cache (keyed by
content, see ``cache``); the same pool, protocol and seed give byte-identical outputs.
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
from opreid_bench.errors import DataError, OpreidError, ProtocolError
from opreid_bench.splits.protocol import SplitProtocol
from opreid_bench.splits.sample import (
    queries_without_cross_camera_match,
    same_camera_queries,
    sample_split,
    split_summary,
)

WORK_DIR = ".annotate"


@dataclass
class BuildResult:
    """What build_split produced: the output folder, the manifest rows and summary numbers."""

    out_dir: Path
    manifest: pd.DataFrame
    summary: dict[str, dict[str, float]]
    same_camera_queries: int
    skipped: list[str] = field(default_factory=list)
    face_detectors: str | None = None  # the face detectors that ran (None: the main face only, or no masking)
    set_aside_unstable: int | None = None  # crops left out for an unstable label (None: --unstable keep)
    cross_camera: dict[str, int] = field(default_factory=dict)  # sample.queries_without_cross_camera_match

    def to_json(self) -> dict[str, Any]:
        """The ``build-split --json`` object."""
        masked = self.manifest["face_masked"].astype(bool)
        return {
            "out": str(self.out_dir),
            "splits": self.summary,
            "faces_masked": int(masked.sum()),
            "mask_methods": {k: int(v) for k, v in self.manifest["mask_method"].value_counts().sort_index().items()},
            "same_camera_queries": self.same_camera_queries,
            "queries_without_cross_camera_match": self.cross_camera,
            "skipped": len(self.skipped),
            "face_detectors": self.face_detectors,
            **({} if self.set_aside_unstable is None else {"set_aside_unstable": self.set_aside_unstable}),
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


def labels_for_pool(records: Sequence[ImageRecord], labels: pd.DataFrame, where: str = "labels",
                    labels_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Join occlusion labels (keyed by ``source_path``) with the pool's pid and camid; unlabelled crops are dropped.

    A label's ``source_path`` names a record's crop as :func:`opreid_bench.paths.match_paths` finds it: the same
    spelling, the same absolute path (a relative one read against the working folder, else against ``labels_dir``,
    the labels file's folder), else a relative label path that is the end of the record's: a ``labels.csv`` written
    with paths relative to where ``annotate`` ran still fits its pool when ``sample`` runs from another folder.
    """
    from opreid_bench.paths import match_paths
    from opreid_bench.splits.classify import LABEL_SOURCES, occluded_verdicts

    if "source_path" not in labels.columns or "occluded" not in labels.columns:
        raise DataError(f"{where}: needs columns source_path and occluded")
    pool = pd.DataFrame(
        {"source_path": [r.path for r in records], "pid": [r.pid for r in records], "camid": [r.camid for r in records]}
    ).drop_duplicates("source_path")
    lab = labels.drop(columns=[c for c in ("pid", "camid") if c in labels.columns]).copy()
    lab["source_path"] = lab["source_path"].astype(str)
    verdicts = occluded_verdicts(lab["occluded"])
    _refuse_first_bad(lab, "occluded", verdicts.isna() & lab["occluded"].notna(),
                      "is not a verdict (true/false, 1/0, yes/no, occluded/holistic)", where)
    lab["occluded"] = verdicts  # an empty cell stays empty: the sampler refuses it unless the crop is undetermined
    if "longest_missing_run" in lab.columns:  # a count of COCO-17 keypoints, written as an integer
        values = pd.to_numeric(lab["longest_missing_run"], errors="coerce")
        _refuse_first_bad(lab, "longest_missing_run", (values.isna() & lab["longest_missing_run"].notna())
                          | (values.notna() & (~values.between(0, 17) | (values % 1 != 0))),
                          "is not a keypoint count (an integer 0-17)", where)
        lab["longest_missing_run"] = values
    if "label_stability" in lab.columns:  # a share of rule settings (classify.label_stability)
        values = pd.to_numeric(lab["label_stability"], errors="coerce")
        _refuse_first_bad(lab, "label_stability", (values.isna() & lab["label_stability"].notna())
                          | (values.notna() & ~values.between(0, 1)), "is not a share between 0 and 1", where)
        lab["label_stability"] = values
    if "label_source" in lab.columns:
        lab["label_source"] = lab["label_source"].fillna("").astype(str)
        _refuse_first_bad(lab, "label_source", ~lab["label_source"].isin((*LABEL_SOURCES, "")),
                          f"is not one of {', '.join(LABEL_SOURCES)}", where)
    found = match_paths(pool["source_path"], list(lab["source_path"]), [labels_dir] if labels_dir is not None else [])
    keyed = pool.assign(_key=pool["source_path"].map(found)).dropna(subset=["_key"]).astype({"_key": str})
    merged = keyed.merge(lab.rename(columns={"source_path": "_key"}), on="_key", how="inner").drop(columns="_key")
    if merged.empty:
        example = (f"; e.g. it has {lab['source_path'].iloc[0]!r}, the pool {pool['source_path'].iloc[0]!r}"
                   if len(lab) and len(pool) else "")
        raise DataError(f"{where}: no label matches a crop of the pool (compare their source_path columns{example}; a "
                        "relative path is read against the working folder and against the labels file's folder)")
    merged = merged.reset_index(drop=True)
    merged.attrs["unlabelled"] = int(len(pool) - merged["source_path"].nunique())
    return merged


def _refuse_first_bad(table: pd.DataFrame, column: str, bad: pd.Series, what: str, where: str) -> None:
    """One line naming the file, the first bad row (as a spreadsheet numbers it) and its value; nothing when none."""
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{where}: row {i + 2}, column {column}: {table[column].iloc[i]!r} {what}")


def _default_rule() -> Any:
    from opreid_bench.splits.classify import OcclusionRule

    return OcclusionRule()


def labelled_pool(records: Sequence[ImageRecord], labels: pd.DataFrame, where: str, unstable: str = "keep",
                  labels_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The pool's crops with their labels (:func:`labels_for_pool`), less the unstable rule labels when ``unstable``
    is ``exclude`` (:func:`opreid_bench.splits.classify.set_aside_unstable`; ``attrs["set_aside_unstable"]`` counts
    them): what the sampler draws from."""
    from opreid_bench.splits.classify import UNSTABLE_POLICIES, set_aside_unstable

    if unstable not in UNSTABLE_POLICIES:
        raise OpreidError(f"unknown unstable-label policy '{unstable}'; use {', '.join(UNSTABLE_POLICIES)}")
    labelled = labels_for_pool(records, labels, where=where, labels_dir=labels_dir)
    return set_aside_unstable(labelled, where) if unstable == "exclude" else labelled  # attrs carried over


def filtered_keypoints_copy(src_h5: Path, dest_h5: Path, keep: set[str], durable: bool = True) -> None:
    """Write the keypoints of the crops in ``keep`` (spelled as the pool spells them) from ``src_h5`` to ``dest_h5``
    (atomic, sorted rows), under the pool's spelling (:func:`opreid_bench.paths.match_paths`)."""
    from opreid_bench.paths import match_paths
    from opreid_bench.splits.cache import read_h5, write_h5

    entries, backend = read_h5(src_h5)
    found = match_paths(sorted(keep), list(entries))
    write_h5(dest_h5, {p: entries[k] for p, k in found.items()}, backend, durable=durable)


def keypoints_for_pool(paths: Sequence[str], keypoints: str | os.PathLike[str]) -> dict[str, Any]:
    """The keypoints of a keypoint file (or annotate folder) under the pool's spelling of each crop: the file records
    paths as ``annotate`` saw them, from its own working folder (:func:`opreid_bench.paths.match_paths`). Why: a
    command run from another folder must still find each crop's head, or its face falls back to a rougher mask.

    Each crop's bytes must still be those the keypoints were found on (the sha1 ``annotate`` recorded): a crop
    changed since (re-cropped, flipped, replaced) is refused with one line naming it, since its face mask would go
    where the head was in the old image, and its occlusion label would describe that image."""
    from opreid_bench.paths import match_paths
    from opreid_bench.splits.annotate import file_sha1
    from opreid_bench.splits.cache import read_h5, resolve_keypoints_path

    kp_file = resolve_keypoints_path(keypoints)
    entries, _ = read_h5(kp_file)
    found = match_paths(paths, list(entries))
    if paths and not found:
        example = (f" (e.g. it has {next(iter(entries))!r}, the pool {paths[0]!r})" if entries else " (it is empty)")
        raise DataError(f"{kp_file}: holds the keypoints of none of the {len(set(paths)):,} crops{example}: the "
                        "keypoints of another pool? Without them faces would be masked from a rough guess")
    out = {}
    for p, k in found.items():
        try:
            now = file_sha1(p)
        except OSError:  # unreadable crops are named by the stage that reads them
            now = entries[k].sha1
        if now != entries[k].sha1:
            raise DataError(f"{kp_file}: the keypoints of {p} were found on other bytes than the crop holds now (it "
                            "changed after `annotate`); run `opreid-bench annotate` again (it redoes changed crops "
                            "only) and `classify`")
        out[p] = entries[k].keypoints
    return out


def keypoints_warning(crops: int, with_keypoints: int | None, source: str | os.PathLike[str] | None) -> str | None:
    """One line for the user when faces of some crops will be located without keypoints (``with_keypoints`` None:
    no keypoint file was given): the Haar face detector or the head prior then places the main face's mask, which
    misses more faces and falls on more clothing than a head located by keypoints. None when every crop has them."""
    if with_keypoints is None:
        return ("no --keypoints: the main faces are located without pose (the Haar face detector, else the head "
                "prior), less surely; give the `annotate` folder of this pool")
    if with_keypoints >= crops:
        return None
    return (f"{crops - with_keypoints:,} of {crops:,} crops have no keypoints in {source}: their main faces are "
            "located by the Haar face detector or the head prior (check those crops; the data card counts them)")


def pool_inputs(pool: Sequence[ImageRecord | str], pool_name: str | None = None) -> list[tuple[str, Path]]:
    """What a pool reads: its manifest (or folder) and every folder holding one of its crops."""
    from opreid_bench.outputs import record_folders

    inputs: list[tuple[str, Path]] = []
    if pool_name and os.path.exists(pool_name):
        inputs.append(("pool", Path(pool_name)))
    inputs += record_folders((r.path if isinstance(r, ImageRecord) else r for r in pool), "pool's crop folder")
    return inputs


def pool_fingerprint(pool: Sequence[ImageRecord]) -> str:
    """sha256 of the pool's crops (absolute path, pid, camid and the sha1 of the crop's bytes): what the split is
    drawn from, so that a crop changed in place gives another fingerprint (the marker's, see ``outputs``)."""
    from opreid_bench.outputs import fingerprint
    from opreid_bench.splits.annotate import file_sha1

    def content(path: str) -> str:
        try:
            return file_sha1(path)
        except OSError:  # unreadable: the stage that reads it names it
            return "unreadable"

    return fingerprint(sorted((os.path.abspath(r.path), int(r.pid), int(r.camid), content(r.path)) for r in pool))


def _marker_options(options: dict[str, Any], protocol: SplitProtocol) -> dict[str, Any]:
    """The options a split's marker records: the protocol by name and the counts it sets (what ``datasets verify``
    compares the folder with), the rest as given."""
    return {**{k: v for k, v in options.items() if k != "protocol"},
            "protocol": {"name": protocol.name, "counts": protocol.expected_counts()}}


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
    undetermined: str = "exclude",
    face_boxes: str | os.PathLike[str] | None = None,
    unstable: str = "keep",
) -> BuildResult:
    """Build an OPReID-style split from ``pool`` into ``out_dir`` (see the module docstring). ``face_boxes``: a CSV
    of faces boxed by hand (:mod:`opreid_bench.splits.face_boxes`), masked as well."""
    from opreid_bench.outputs import content_digest, fingerprint, output_folder
    from opreid_bench.splits.annotate import pose_inputs

    if not pool:
        raise DataError(f"{pool_name}: the pool has no crops")
    out = Path(out_dir)
    inputs = pool_inputs(pool, pool_name) + pose_inputs(pose)
    if corrections is not None:
        inputs.append(("corrections file", Path(corrections)))
    hand, reviewed = _read_face_boxes(face_boxes, pool, inputs)
    options = {"protocol": protocol.to_dict(), "seed": seed, "pose": pose, "mask": mask, "rule": repr(rule),
               "undetermined": undetermined, "unstable": unstable, "faces": _face_sources(mask),
               "corrections": content_digest(corrections) if corrections is not None else None,
               "face_boxes": content_digest(face_boxes) if face_boxes is not None else None}
    fp = fingerprint({"pool": pool_fingerprint(pool), **options})
    with output_folder(out, "build-split", kind="split", inputs=inputs, fingerprint=fp, swap=True,
                       options=_marker_options(options, protocol)) as new:
        written, split, skipped, set_aside = _build_into(
            new, out / WORK_DIR, pool, protocol, seed, pose=pose, workers=workers, engine=engine, mask=mask, rule=rule,
            corrections=corrections, pool_name=pool_name, progress=progress, undetermined=undetermined,
            face_boxes=hand, reviewed_masks=reviewed, unstable=unstable)
    return BuildResult(out, written, split_summary(split), same_camera_queries(split), skipped,
                       face_detectors=options["faces"], set_aside_unstable=set_aside,
                       cross_camera=queries_without_cross_camera_match(split))


def _build_into(new: Path, work: Path, pool: Sequence[ImageRecord], protocol: SplitProtocol, seed: int, *,
                pose: str, workers: int, engine: str, mask: str, rule: Any, corrections: str | os.PathLike[str] | None,
                pool_name: str, progress: bool, undetermined: str = "exclude",
                face_boxes: dict[str, list[tuple[int, int, int, int]]] | None = None, unstable: str = "keep",
                reviewed_masks: dict[str, list[tuple[int, int, int, int]]] | None = None,
                ) -> tuple[pd.DataFrame, pd.DataFrame, list[str], int | None]:
    """Stages 1-4 of :func:`build_split`: the keypoint cache in ``work``, the split's files in the fresh ``new``."""
    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.cache import read_keypoints
    from opreid_bench.splits.classify import classify_store
    from opreid_bench.splits.datacard import labelling_summary, write_data_card
    from opreid_bench.splits.writer import write_split

    print(f"[1/4] keypoints ({pose}) for {len(pool):,} crops", file=sys.stderr)
    kp_h5 = annotate_pool(list(pool), work, backend=pose, workers=workers, engine=engine, progress=progress)
    skipped: list[str] = list(getattr(pool, "skipped", []))
    report = work / "annotate_report.json"
    if report.is_file():
        for s in json.loads(report.read_text(encoding="utf-8")).get("skipped", []):
            skipped.append(f"{s['source_path']}: {s.get('reason', 'skipped')}")
    print("[2/4] occluded or holistic", file=sys.stderr)
    rule = rule if rule is not None else _default_rule()
    labels = classify_store(kp_h5, rule, corrections, undetermined)
    labelled = labelled_pool(pool, labels, where=str(kp_h5), unstable=unstable)
    check_protocol_fits(labelled, protocol)
    print(f"[3/4] sampling by protocol '{protocol.name}' (seed {seed})", file=sys.stderr)
    split = sample_split(labelled, protocol, seed)
    keypoints = read_keypoints(kp_h5)
    with stage_progress(progress) as prog:
        task = prog.add_task(f"[4/4] writing {len(split):,} crops (mask: {mask})", total=len(split))
        written = write_split(
            split, new, keypoints=keypoints, mask=mask, workers=workers,
            on_done=lambda n: prog.advance(task, n), durable=False, face_boxes=face_boxes,
            reviewed_masks=reviewed_masks,
        )
    filtered_keypoints_copy(kp_h5, new / "keypoints.h5", set(written["source_path"]), durable=False)
    write_data_card(
        new, written, protocol, seed=seed, pose=pose, mask=mask, pool=pool_name, pool_size=len(pool), skipped=skipped,
        labelling=labelling_summary(labels, rule, undetermined), faces=_face_sources(mask),
        set_aside_unstable=labelled.attrs.get("set_aside_unstable"),
    )
    return written, split, skipped, labelled.attrs.get("set_aside_unstable")


@dataclass
class SampleResult:
    """What :func:`sample_from_labels` produced: the drawn rows (the pool's pids and cameras), the written manifest
    rows (None for a dry run) and what was left out before sampling."""

    out_dir: Path
    split: pd.DataFrame
    written: pd.DataFrame | None
    unlabelled: int
    set_aside_unstable: int | None = None  # None: --unstable keep

    @property
    def summary(self) -> dict[str, dict[str, float]]:
        return split_summary(self.split)

    @property
    def cross_camera(self) -> dict[str, int]:
        return queries_without_cross_camera_match(self.split)

    def to_json(self) -> dict[str, Any]:
        """The ``sample --json`` object, counted on the pool's cameras as ``build-split --json`` and the data card
        count them."""
        return {
            "out": str(self.out_dir),
            "split_csv": str(self.out_dir / "split.csv"),
            "unlabelled": self.unlabelled,
            **({} if self.set_aside_unstable is None else {"set_aside_unstable": self.set_aside_unstable}),
            "splits": self.summary,
            "same_camera_queries": same_camera_queries(self.split),
            "queries_without_cross_camera_match": self.cross_camera,
            **({} if self.written is None else {"faces_masked": int(self.written["face_masked"].sum())}),
        }


def sample_from_labels(
    labels_path: str | os.PathLike[str],
    pool: Sequence[ImageRecord],
    protocol: SplitProtocol,
    out_dir: str | os.PathLike[str],
    seed: int,
    *,
    pool_path: str | os.PathLike[str],
    unstable: str = "keep",
    **write_options: Any,
) -> SampleResult:
    """Stage 4 on its own (``opreid-bench sample``): read a ``labels.csv``, join it with the pool, leave out what
    ``unstable`` says, sample by ``protocol`` and write the split (:func:`write_sampled_split`, which takes
    ``write_options``: keypoints, mask, workers, dry_run, face_boxes)."""
    labels_path = Path(labels_path)
    try:
        labels = pd.read_csv(labels_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{labels_path}: not a readable CSV ({exc})") from None
    labelled = labelled_pool(pool, labels, where=str(labels_path), unstable=unstable, labels_dir=labels_path.parent)
    check_protocol_fits(labelled, protocol)
    split = sample_split(labelled, protocol, seed, where=str(labels_path))
    set_aside = labelled.attrs.get("set_aside_unstable") if unstable == "exclude" else None
    written = write_sampled_split(split, out_dir, protocol, seed, pool=pool, pool_path=pool_path,
                                  labels_path=labels_path, unstable=unstable, set_aside_unstable=set_aside,
                                  **write_options)
    return SampleResult(Path(out_dir), split, written, int(labelled.attrs.get("unlabelled", 0)),
                        None if set_aside is None else int(set_aside))


def write_sampled_split(
    split: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    protocol: SplitProtocol,
    seed: int,
    *,
    pool: Sequence[ImageRecord],
    pool_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    keypoints: str | os.PathLike[str] | None = None,
    mask: str | None = "blur",
    workers: int = 1,
    dry_run: bool = False,
    face_boxes: str | os.PathLike[str] | None = None,
    unstable: str = "keep",
    set_aside_unstable: int | None = None,
) -> pd.DataFrame | None:
    """``sample``'s output: ``split.csv`` and (unless ``dry_run``) the split folder, built aside and swapped in whole.
    ``face_boxes``: a CSV of faces boxed by hand, masked as well. ``unstable``: the ``--unstable`` policy the split
    was drawn under (:func:`labelled_pool`), ``set_aside_unstable`` the crops it left out (for the data card).

    Returns the written manifest rows (None for a dry run).
    """
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.outputs import content_digest, fingerprint, output_folder
    from opreid_bench.splits.cache import resolve_keypoints_path
    from opreid_bench.splits.datacard import write_data_card
    from opreid_bench.splits.writer import write_split

    if dry_run:
        _refuse_dry_run_over_built_split(Path(out_dir))
    kp_file = resolve_keypoints_path(keypoints) if keypoints is not None else None
    inputs = pool_inputs(pool, str(pool_path)) + [("labels file", Path(labels_path))]
    if kp_file is not None:
        inputs.append(("keypoint file", kp_file))
    hand, reviewed = _read_face_boxes(face_boxes, pool, inputs)
    options = {"protocol": protocol.to_dict(), "seed": seed, "mask": mask,
               "faces": None if dry_run else _face_sources(mask), "dry_run": dry_run,
               "labels": content_digest(labels_path), "unstable": unstable,
               "keypoints": content_digest(kp_file) if kp_file is not None else None,
               "face_boxes": content_digest(face_boxes) if face_boxes is not None and not dry_run else None}
    fp = fingerprint({"pool": pool_fingerprint(pool), **options})
    written = None
    with output_folder(out_dir, "sample", kind="split", inputs=inputs, fingerprint=fp, swap=True,
                       options=_marker_options(options, protocol)) as new:
        atomic_write_text(new / "split.csv", split.to_csv(index=False, lineterminator="\n"), durable=False)
        if not dry_run:
            kps = keypoints_for_pool(list(split["source_path"]), kp_file) if kp_file is not None else None
            if mask is not None and (warning := keypoints_warning(len(split), None if kps is None else len(kps),
                                                                  kp_file)):
                print(f"warning: {warning}", file=sys.stderr)
            with stage_progress() as prog:
                task = prog.add_task(f"writing {len(split):,} crops (mask: {mask or 'none'})", total=len(split))
                written = write_split(split, new, keypoints=kps, mask=mask, workers=workers,
                                      on_done=lambda n: prog.advance(task, n), durable=False, face_boxes=hand,
                                      reviewed_masks=reviewed)
            if kp_file is not None:
                filtered_keypoints_copy(kp_file, new / "keypoints.h5", set(written["source_path"]), durable=False)
            write_data_card(new, written, protocol, seed=seed, pose="", mask=mask, pool=str(pool_path),
                            pool_size=len(pool), faces=_face_sources(mask), labels_file=str(labels_path),
                            set_aside_unstable=set_aside_unstable)
    return written


def write_masked_pool(
    pool: Sequence[ImageRecord],
    pool_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    keypoints: dict[str, Any] | None = None,
    mask: str = "blur",
    main_face_only: bool = False,
    workers: int = 1,
    face_boxes: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """``mask``'s output: every pool crop with its face masked under ``out_dir`` (the pool's relative names, .jpg)
    and ``masks.csv`` (source, output, whether a face was masked, how, and each mask's kind and box), built aside and
    swapped in whole. Every face is masked, bystanders' included, unless ``main_face_only``; so are the faces boxed
    by hand in the ``face_boxes`` CSV (kind ``hand``).
    """
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.outputs import output_folder
    from opreid_bench.splits.mask_plan import mask_output_names
    from opreid_bench.splits.writer import write_images

    out = Path(out_dir)
    kps = keypoints or {}
    paths = sorted({r.path for r in pool})
    rels = mask_output_names(paths, out)
    spec = f"{mask}+main" if main_face_only else mask
    inputs = pool_inputs(pool, str(pool_path))
    hand, reviewed = _read_face_boxes(face_boxes, pool, inputs)
    # built in a temporary sibling and swapped in whole: a killed or failed run leaves the previous output as it was
    with output_folder(out, "mask", kind="masked", inputs=inputs, swap=True) as new:
        jobs = [(p, str(new / rel), kps.get(p), spec, False, tuple(hand.get(p, ())), tuple(reviewed.get(p, ())))
                for p, rel in zip(paths, rels)]
        with stage_progress() as prog:
            task = prog.add_task(f"masking {len(jobs):,} crops ({mask})", total=len(jobs))
            res = write_images(jobs, workers=workers, on_done=lambda n: prog.advance(task, n), durable=False)
        table = pd.DataFrame({"source_path": paths, "path": rels, "face_masked": [m for m, _, _ in res],
                              "method": [h for _, h, _ in res], "masks": [k for _, _, k in res]})
        atomic_write_text(new / "masks.csv", table.to_csv(index=False, lineterminator="\n"), durable=False)
    return table


def _read_face_boxes(path: str | os.PathLike[str] | None, pool: Sequence[ImageRecord],
                     inputs: list[tuple[str, Path]]
                     ) -> tuple[dict[str, list[tuple[int, int, int, int]]], dict[str, list[tuple[int, int, int, int]]]]:
    """The faces boxed by hand in ``path`` and the masks of the reviewed masking it lists (none without a file),
    keyed by pool path; the file joins ``inputs``."""
    if path is None:
        return {}, {}
    from opreid_bench.splits.face_boxes import read_face_box_file

    inputs.append(("face boxes file", Path(path)))
    return read_face_box_file(path, [r.path for r in pool])


def _face_sources(mask: str | None) -> str | None:
    """The face detectors that masking with ``mask`` runs here (None when only the main face, or none, is masked):
    an option of the output, since a newly installed detector changes the masks."""
    from opreid_bench.splits.all_faces import face_sources
    from opreid_bench.splits.mask import parse_mask_mode

    return face_sources() if mask and parse_mask_mode(mask)[1] else None


def face_masking_warning(mask: str | None) -> str | None:
    """The warning that masking every face with ``mask`` gives here: MTCNN or YuNet is not installed (or turned off),
    so bystanders' small faces are more often missed; None when both run or not every face is masked."""
    from opreid_bench.splits.all_faces import missing_face_detectors

    sources = _face_sources(mask)
    if sources is None:
        return None
    return " ".join(missing_face_detectors(sources)) or None


def _refuse_dry_run_over_built_split(out: Path) -> None:
    """A dry run writes split.csv alone: it must not replace a built split (its images, manifest and data card)."""
    from opreid_bench.errors import OutputError
    from opreid_bench.outputs import read_marker

    marker = read_marker(out) if out.is_dir() else None
    if marker and marker.get("kind") == "split" and not marker.get("options", {}).get("dry_run", False):
        raise OutputError(f"{out}: holds a built split; a --dry-run would replace it with split.csv alone: choose "
                          "another --out for the dry run (nothing was changed)")


def check_protocol_fits(labels: pd.DataFrame, protocol: SplitProtocol) -> None:
    """Quick pre-check before any image is written: enough crops overall (the sampler checks the rest)."""
    need = protocol.query_images + protocol.gallery_images + protocol.train_images
    if len(labels) < need:
        raise ProtocolError(
            f"pool too small for protocol '{protocol.name}': it needs {need:,} crops, and {len(labels):,} of the "
            "pool's crops have a label row"
        )
