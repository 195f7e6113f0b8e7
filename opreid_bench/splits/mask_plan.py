"""Where the ``mask`` command writes each masked crop, and the checks that keep it from touching the pool.

Output names: every crop keeps its path relative to the pool's common folder, with the suffix ``.jpg`` (masked
crops are always JPEG). Paths are made absolute without resolving symlinks, so a pool reached through a symlinked
folder keeps the names it is listed with. Two crops that would get the same name (``a.jpg`` and ``a.png``) are
refused -- one would silently overwrite the other -- and so is an ``--out`` that is the pool's image folder or lies
inside it, or any output that is (after resolving symlinks) one of the pool's files: masking there would re-encode
the originals in place.
"""

from __future__ import annotations

import os
from pathlib import Path

from opreid_bench.errors import DataError


def mask_output_names(paths: list[str], out: str | os.PathLike[str]) -> list[str]:
    """Relative output path (``.jpg``) of each crop in ``paths`` under ``out``; a DataError when it is unsafe."""
    if not paths:
        return []
    absolute = [Path(os.path.abspath(p)) for p in paths]
    root = Path(os.path.commonpath([str(a.parent) for a in absolute]))
    rels = [a.relative_to(root).with_suffix(".jpg").as_posix() for a in absolute]
    out = Path(out)
    out_real, root_real = Path(os.path.realpath(out)), Path(os.path.realpath(root))
    if out_real == root_real or root_real in out_real.parents:
        raise DataError(f"--out {out} is the pool's image folder {root} or inside it; masked crops would replace or "
                        "mix with the originals: choose another folder")
    seen: dict[str, str] = {}
    for p, rel in zip(paths, rels, strict=True):
        if rel in seen:
            raise DataError(f"{seen[rel]} and {p} would both be written to {out / rel} (masked crops are JPEG); "
                            "rename one of them")
        seen[rel] = p
    sources = {os.path.realpath(p) for p in paths}
    for p, rel in zip(paths, rels, strict=True):
        dest = os.path.realpath(out / rel)
        if dest in sources:
            raise DataError(f"--out {out}: the masked crop of {p} would overwrite the pool's file {dest}; "
                            "choose another folder")
    return rels
