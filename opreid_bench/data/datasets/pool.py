"""A raw pool of crops, as ``build-split``, ``annotate`` and ``mask`` read it (``--pool``): a manifest
(``path,pid,camid[,scene]``, no split needed) or a folder whose files' relative paths carry pid and camid
(``--option pattern=REGEX``, files anywhere below it). For ``datasets verify pool``: every crop is counted under
``train`` (a pool has no query or gallery yet), and every file left out is listed with its reason.

Options: ``pattern`` (folder pools; default ``(?P<pid>-?\\d+)_c(?P<camid>\\d+)``) and ``format`` (``auto``: a file is a
manifest, a folder a folder pool; or ``manifest`` / ``folder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from opreid_bench.data.datasets.base import RawSplits, ReIDDataset, VerificationReport
from opreid_bench.data.datasets.folder import DEFAULT_PATTERN
from opreid_bench.data.datasets.manifest import MANIFEST_NAMES
from opreid_bench.errors import DataError

POOL_FORMATS = ("auto", "manifest", "folder")


class PoolDataset(ReIDDataset):
    """A raw pool for ``build-split`` (see the module docstring); all crops in ``train``."""

    name = "pool"
    layout = ("a pool: a CSV/parquet manifest path,pid,camid[,scene] (no split column needed), or a folder of crops "
              "whose relative paths match --option pattern=REGEX")
    splits: ClassVar[tuple[str, ...]] = ("train",)
    option_defaults: ClassVar[dict[str, str]] = {"pattern": DEFAULT_PATTERN, "format": "auto"}

    def split_folders(self) -> dict[str, str]:
        return {}

    def _format(self) -> str:
        fmt = self.options["format"].strip().lower()
        if fmt not in POOL_FORMATS:
            raise DataError(f"dataset pool: format must be one of {', '.join(POOL_FORMATS)}, got {fmt!r}")
        if fmt == "auto":
            fmt = "folder" if self.root.is_dir() and not any(
                (self.root / n).is_file() for n in MANIFEST_NAMES) else "manifest"
        return fmt

    def dataset_dir(self) -> Path:
        if self._dir is None:
            if not self.root.exists():
                raise DataError(f"{self.root}: no such file or folder; expected {self.layout}")
            self._dir = self.root if self.root.is_dir() else self.root.parent
        return self._dir

    def verify(self) -> VerificationReport:
        """As every loader's, naming the pool as given (the manifest file, or the folder)."""
        report = super().verify()
        report.root = str(self.root)
        return report

    def _read(self, dataset_dir: Path) -> RawSplits:
        from opreid_bench.data.datasets import load_pool

        fmt = self._format()
        pool = load_pool(self.root, fmt, pattern=self.options["pattern"] if fmt == "folder" else None)
        raw = RawSplits(train=list(pool))
        for skipped in pool.skipped:  # counted as every loader counts them: junk, non-image files, the rest named
            reason = skipped.rsplit(": ", 1)[-1]
            if reason == "not an image file":
                raw.ignored += 1
            elif reason == "junk (negative pid)":
                raw.junk += 1
            else:
                raw.unparsed.append(skipped)
        raw.notes.append("a pool: every crop is counted under train (query and gallery are drawn by build-split)")
        return raw
