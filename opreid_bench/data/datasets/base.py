"""The shared base of every dataset loader: folder resolution, file scanning, relabelling and count checks.

A loader subclass only says where its folders are and how a file name maps to (pid, camid); this module does the
rest the same way for all of them:

- the dataset folder is looked up under ``root`` by its usual names (case-insensitive), or ``root`` itself when it
  already holds the split folders; a missing folder is a :class:`DataError` naming the expected path and the layout;
- files are read in sorted order (deterministic records); files that are not images *by extension* (``.DS_Store``,
  ``Probe.txt``) are passed over and counted, image files whose names do not parse are counted and listed, never
  silently dropped;
- ``load()`` relabels train pids to 0..N-1, query/gallery keep the dataset's pids; ``verify()`` compares what was
  found with the dataset's known counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from opreid_bench.data.records import DatasetSplits, ImageRecord, relabel_pids, split_stats
from opreid_bench.errors import DataError

#: File extensions read as images (lower case). Anything else in a split folder is passed over.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

SPLITS = ("train", "query", "gallery")

#: ``parse(relative_posix_path) -> (pid, camid) | None``; None means the name does not follow the dataset's rule.
NameParser = Callable[[str], "tuple[int, int] | None"]


def is_image_name(name: str) -> bool:
    """True when ``name`` has an image extension (case-insensitive) and is not a macOS resource fork (``._NAME``,
    left beside every file by archives made on a Mac: an image extension, but no image)."""
    base = os.path.basename(name)
    return not base.startswith("._") and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def find_child(parent: Path, name: str) -> Path | None:
    """``parent/name`` if it is a folder, else a folder of ``parent`` whose name equals ``name`` ignoring case."""
    exact = parent / name
    if exact.is_dir():
        return exact
    if not parent.is_dir():
        return None
    lowered = name.lower()
    matches = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.lower() == lowered)
    return matches[0] if matches else None


@dataclass
class FolderScan:
    """The files of one folder as posix paths relative to it: images (sorted) and non-image files passed over."""

    folder: Path
    images: list[str]
    ignored: list[str]
    nested: list[str] = field(default_factory=list)  # images in subfolders of a folder not read recursively

    def full_path(self, rel: str) -> str:
        """The path of ``rel`` (a string; pathlib is too slow for 100k files)."""
        return os.path.join(str(self.folder), rel)


def scan_images(folder: Path, *, recursive: bool = False) -> FolderScan:
    """List the image files of ``folder`` (sorted by relative path); with ``recursive`` also in its subfolders."""
    images: list[str] = []
    ignored: list[str] = []
    nested: list[str] = []  # images below a folder not read recursively: listed, never dropped silently
    if recursive:
        top = str(folder)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            prefix = os.path.relpath(dirpath, top).replace(os.sep, "/")
            prefix = "" if prefix == "." else prefix + "/"
            for fname in filenames:
                (images if is_image_name(fname) else ignored).append(prefix + fname)
    else:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_file():
                    (images if is_image_name(entry.name) else ignored).append(entry.name)
                elif entry.is_dir():
                    nested += [f"{entry.name}/{rel}" for rel in scan_images(Path(entry.path), recursive=True).images]
    return FolderScan(folder, sorted(images), sorted(ignored), sorted(nested))


@dataclass
class RawSplits:
    """What a loader read, before relabelling: records with the dataset's own pids plus the bookkeeping."""

    train: list[ImageRecord] = field(default_factory=list)
    query: list[ImageRecord] = field(default_factory=list)
    gallery: list[ImageRecord] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)  # paths relative to the dataset folder
    junk: int = 0  # images dropped by the dataset's junk rule (Market-1501's pid -1)
    ignored: int = 0  # non-image files passed over
    notes: list[str] = field(default_factory=list)  # warnings worth showing (e.g. cameras out of range)

    def add(self, split: str, scan: ParsedFolder) -> None:
        """Append a parsed folder's records and bookkeeping to ``split``."""
        getattr(self, split).extend(scan.records)
        self.unparsed.extend(scan.unparsed)
        self.junk += scan.junk
        self.ignored += scan.ignored


@dataclass
class ParsedFolder:
    """One folder after parsing its file names."""

    records: list[ImageRecord]
    unparsed: list[str]
    junk: int
    ignored: int


def parse_folder(folder: Path, dataset_dir: Path, parse: NameParser, *, recursive: bool = False,
                 drop_negative_pids: bool = False, occluded: bool | None = None) -> ParsedFolder:
    """Read ``folder`` and map each image to a record with ``parse`` (given the path relative to ``folder``).

    Names ``parse`` rejects are returned as ``unparsed`` (paths relative to ``dataset_dir``). With
    ``drop_negative_pids`` images with pid < 0 are junk by the dataset's own definition: counted and dropped.
    """
    scan = scan_images(folder, recursive=recursive)
    records: list[ImageRecord] = []
    unparsed: list[str] = []
    junk = 0
    prefix = folder.relative_to(dataset_dir).as_posix() + "/" if folder != dataset_dir else ""
    for rel in scan.images:
        parsed = parse(rel)
        if parsed is None:
            unparsed.append(prefix + rel)
            continue
        pid, camid = parsed
        if drop_negative_pids and pid < 0:
            junk += 1
            continue
        records.append(ImageRecord(scan.full_path(rel), pid, camid, occluded))
    unparsed += [f"{prefix}{rel}: in a subfolder, not read (the images of {prefix or './'} lie directly in it)"
                 for rel in scan.nested]
    return ParsedFolder(records, unparsed, junk, len(scan.ignored))


def _fmt_counts(images: int, ids: int) -> str:
    return f"{images:,} images / {ids:,} ids"


@dataclass
class VerificationReport:
    """What ``verify()`` found: per-split counts, the comparison with the known counts, and the names that failed."""

    dataset: str
    root: str
    splits: dict[str, dict[str, int]]
    known_counts: dict[str, tuple[int, int]]
    unparsed: list[str]
    junk: int = 0
    ignored: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def matches_known_counts(self) -> bool:
        """True when the dataset has known counts and every split's images and ids equal them."""
        return bool(self.known_counts) and not self.mismatches()

    def mismatches(self) -> list[str]:
        """One line per split whose (images, ids) differ from the known counts: expected vs found."""
        lines = []
        for split, (images, ids) in self.known_counts.items():
            found = self.splits.get(split, {"images": 0, "ids": 0})
            if (found["images"], found["ids"]) != (images, ids):
                lines.append(f"{split}: expected {_fmt_counts(images, ids)}, "
                             f"found {_fmt_counts(found['images'], found['ids'])}")
        return lines

    def empty_reason(self) -> str | None:
        """Why no split holds an image (the folders exist but nothing was read), or None when some split has one:
        ``verify`` then exits non-zero, since an empty dataset is a layout or file-name problem, not a count."""
        if any(v.get("images", 0) for v in self.splits.values()):
            return None
        if self.unparsed:
            first = self.unparsed[0]
            if ": " in first and "pattern" not in first.split(": ", 1)[1]:  # a reason other than the name, e.g. missing
                return f"{self.root}: no image was read: {len(self.unparsed):,} file(s) left out (e.g. {first})"
            return (f"{self.root}: no image was read: {len(self.unparsed):,} file name(s) do not parse (e.g. "
                    f"{first}); the file-name pattern of '{self.dataset}' does not fit them (a folder or "
                    "manifest dataset takes --option pattern=REGEX with groups pid and camid)")
        return f"{self.root}: no image was read: the split folders of '{self.dataset}' hold no image"

    def to_json(self, max_examples: int = 10) -> dict[str, Any]:
        """The ``datasets verify --json`` object (documented keys; see the command's help)."""
        return {
            "dataset": self.dataset,
            "splits": self.splits,
            "matches_known_counts": self.matches_known_counts,
            "known_counts": {s: {"images": i, "ids": n} for s, (i, n) in self.known_counts.items()} or None,
            "root": self.root,
            "unparsed": len(self.unparsed),
            "unparsed_examples": self.unparsed[:max_examples],
            "junk": self.junk,
            "ignored": self.ignored,
            "notes": self.notes,
        }


class ReIDDataset:
    """Base class of every dataset loader (one small subclass per dataset, registered in ``DATASETS``).

    Subclasses set the class attributes and implement :meth:`split_folders` and :meth:`_read`.
    """

    name: ClassVar[str] = ""
    #: human text of the expected layout, shown in "missing folder" errors and in ``datasets list``
    layout: ClassVar[str] = ""
    #: split -> (images, ids) of the official release; {} when unknown
    known_counts: ClassVar[dict[str, tuple[int, int]]] = {}
    #: the splits this dataset has (test-only datasets have no train split)
    splits: ClassVar[tuple[str, ...]] = SPLITS
    #: usual names of the dataset folder under ``root``; ``root`` itself is tried last
    folder_names: ClassVar[tuple[str, ...]] = ()
    #: accepted ``**options`` and their defaults (values are strings, as from ``--option k=v``)
    option_defaults: ClassVar[dict[str, str]] = {}
    #: the evaluation protocol (``protocols/evaluation/<name>.yaml``) normally used with this dataset
    protocol: ClassVar[str | None] = None
    #: other names copies in the wild use for a split folder (e.g. Partial-iLIDS ``Probe`` -> ``query``)
    folder_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            known = ", ".join(sorted(self.option_defaults)) or "none"
            raise DataError(f"dataset {self.name}: unknown option(s) {', '.join(unknown)}; known options: {known}")
        self.root = Path(root).expanduser()
        self.options: dict[str, str] = {**self.option_defaults, **{k: str(v) for k, v in options.items()}}
        self._raw: RawSplits | None = None
        self._dir: Path | None = None

    # --- what a subclass provides -------------------------------------------------------------------------------
    def split_folders(self) -> dict[str, str]:
        """split -> folder (relative to the dataset folder) that holds it, given the options."""
        raise NotImplementedError

    def _read(self, dataset_dir: Path) -> RawSplits:
        """Read every split with the dataset's own pids (no relabelling)."""
        raise NotImplementedError

    # --- shared behaviour ---------------------------------------------------------------------------------------
    def _find_split_dir(self, parent: Path, rel: str) -> Path | None:
        for name in (rel, *self.folder_aliases.get(rel, ())):
            found = find_child(parent, name)
            if found is not None:
                return found
        return None

    def dataset_dir(self) -> Path:
        """The folder that holds the split folders: ``root/<usual name>`` or ``root`` itself; else a DataError."""
        if self._dir is not None:
            return self._dir
        if not self.root.is_dir():
            what = "a file, not a folder" if self.root.exists() else "no such folder"
            raise DataError(f"{self.root}: {what}; expected layout {self.layout}")
        required = list(dict.fromkeys(self.split_folders().values()))
        candidates = [c for c in (find_child(self.root, n) for n in self.folder_names) if c is not None]
        candidates.append(self.root)
        for cand in candidates:
            if all(self._find_split_dir(cand, sub) is not None for sub in required):
                self._dir = cand
                return cand
        # Name the dataset folder that is there but incomplete, or else the usual dataset folder under root.
        if len(candidates) > 1:
            base = candidates[0]
        elif any(self._find_split_dir(self.root, sub) is not None for sub in required) or not self.folder_names:
            base = self.root
        else:
            base = self.root / self.folder_names[0]
        missing = next((sub for sub in required if self._find_split_dir(base, sub) is None), required[0])
        raise DataError(f"{base / missing}: missing folder; expected layout {self.layout} under {self.root}")

    def folder(self, split: str) -> Path:
        """The existing folder of ``split`` (case-insensitive lookup under the dataset folder)."""
        rel = self.split_folders()[split]
        found = self._find_split_dir(self.dataset_dir(), rel)
        if found is None:  # dataset_dir() checked it, so only a race can get here
            raise DataError(f"{self.dataset_dir() / rel}: missing folder; expected layout {self.layout}")
        return found

    def read(self) -> RawSplits:
        """The records with the dataset's own pids (read once per instance)."""
        if self._raw is None:
            self._raw = self._read(self.dataset_dir())
        return self._raw

    def load(self) -> DatasetSplits:
        """Train relabelled to 0..N-1 (sorted by original pid); query/gallery with the dataset's pids."""
        raw = self.read()
        return DatasetSplits(name=self.name, train=relabel_pids(raw.train), query=list(raw.query),
                             gallery=list(raw.gallery), unparsed=list(raw.unparsed))

    def pool_records(self) -> list[ImageRecord]:
        """Every image of every split with the dataset's own pids (a raw pool for ``build-split``).

        Subclasses override this where the original pids are not one person each (Market's distractors) or are
        reused across splits (CUHK03's val).
        """
        raw = self.read()
        return [*raw.train, *raw.query, *raw.gallery]

    def verify(self) -> VerificationReport:
        """Counts per split compared with the known counts, plus unparsed names, junk and notes."""
        raw = self.read()
        stats = {s: split_stats(getattr(raw, s)) for s in self.splits}
        return VerificationReport(dataset=self.name, root=str(self.dataset_dir()), splits=stats,
                                  known_counts=dict(self.known_counts), unparsed=list(raw.unparsed), junk=raw.junk,
                                  ignored=raw.ignored, notes=list(raw.notes))


def bool_option(dataset: str, key: str, value: str) -> bool:
    """Parse a string option such as ``recursive=true``; anything but true/false/1/0/yes/no is a DataError."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise DataError(f"dataset {dataset}: option {key}={value!r} is not a boolean (use true or false)")


def pids_of(records: Iterable[ImageRecord]) -> set[int]:
    """The set of pids in ``records``."""
    return {r.pid for r in records}
