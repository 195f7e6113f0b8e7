"""Any folder of person crops: pid and camid come from a regular expression with named groups ``pid`` and ``camid``.

Options (strings, as from ``--option k=v``): ``pattern`` (searched in each image's path relative to its split
folder, so groups may come from subfolder names; optional groups ``scene`` and ``occluded``), ``train``, ``query``,
``gallery`` (split subfolder names; set ``train=`` empty for a test-only folder) and ``recursive`` (default true).
Negative pids are junk by the Market convention (dropped and counted); names the pattern does not match are listed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, bool_option, scan_images
from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import DataError

DEFAULT_PATTERN = r"(?P<pid>-?\d+)_c(?P<camid>\d+)"


def compile_pattern(pattern: str, where: str) -> re.Pattern[str]:
    """Compile a user regex and check it has the named groups ``pid`` and ``camid``."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"{where}: pattern {pattern!r} is not a valid regular expression ({exc})") from None
    missing = {"pid", "camid"} - set(regex.groupindex)
    if missing:
        raise DataError(f"{where}: pattern {pattern!r} lacks the named group(s) {', '.join(sorted(missing))} "
                        r"(e.g. '(?P<pid>\d+)_c(?P<camid>\d+)')")
    return regex


def record_from_match(regex: re.Pattern[str], path: str, relpath: str) -> ImageRecord | None:
    """The record of one image whose relative path ``relpath`` matches ``regex``; None if it does not match."""
    m = regex.search(relpath)
    if m is None:
        return None
    try:
        pid, camid = int(m.group("pid")), int(m.group("camid"))
    except (TypeError, ValueError):
        return None
    groups = m.groupdict()
    scene = groups.get("scene") or None
    occluded = None
    if groups.get("occluded") is not None:
        occluded = groups["occluded"].lower() in ("1", "true", "yes", "y", "t", "occluded", "o")
    return ImageRecord(path, pid, camid, occluded, scene)


class FolderDataset(ReIDDataset):
    """A user's own folder: ``<root>/{train,query,gallery}/...`` parsed with a regex (see the module docstring)."""

    name = "folder"
    layout = "<root>/{train,query,gallery}/<files whose path matches --option pattern=REGEX>"
    option_defaults: ClassVar[dict[str, str]] = {
        "pattern": DEFAULT_PATTERN,
        "train": "train",
        "query": "query",
        "gallery": "gallery",
        "recursive": "true",
    }

    def split_folders(self) -> dict[str, str]:
        return {s: self.options[s] for s in ("train", "query", "gallery") if self.options[s].strip()}

    def _read(self, dataset_dir: Path) -> RawSplits:
        regex = compile_pattern(self.options["pattern"], f"dataset {self.name}")
        recursive = bool_option(self.name, "recursive", self.options["recursive"])
        raw = RawSplits()
        for split in self.split_folders():
            folder = self.folder(split)
            scan = scan_images(folder, recursive=recursive)
            raw.ignored += len(scan.ignored)
            records = getattr(raw, split)
            prefix = folder.relative_to(dataset_dir).as_posix() + "/"
            for rel in scan.images:
                rec = record_from_match(regex, scan.full_path(rel), rel)
                if rec is None:
                    raw.unparsed.append(prefix + rel)
                elif rec.pid < 0:
                    raw.junk += 1
                else:
                    records.append(rec)
        return raw
