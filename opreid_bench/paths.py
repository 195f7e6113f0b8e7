"""Matching the paths two files give for the same crops, however each was spelled.

A labels file or a keypoint file records each crop's path as the command that wrote it saw it: relative to the
working folder of that command. Read from another folder, the same crop is spelled differently (``pool/crops/a.png``
against ``../pool/crops/a.png``). :func:`match_paths` finds, for each path one side needs, the path the other side
gave for the same file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

_AMBIGUOUS = ""


def _parts(path: str) -> tuple[str, ...]:
    """The path's folders and name, normalised, without leading ``.``/``..`` (what two spellings share)."""
    parts = os.path.normpath(path.replace("\\", "/")).replace(os.sep, "/").split("/")
    return tuple(p for p in parts if p not in ("", ".", ".."))


def match_paths(wanted: Iterable[str], known: Sequence[str], bases: Iterable[str | os.PathLike[str]] = ()
                ) -> dict[str, str]:
    """For each path of ``wanted``, the path of ``known`` naming the same file: the same spelling; else the same
    absolute path, a relative ``known`` path read against the working folder, then against each of ``bases``; else
    a relative ``known`` path that is, whole (less leading ``..``; a folder and the name at least), the end of the
    wanted one, when exactly one fits and no other wanted path claims it. Paths without a match are left out."""
    wanted = list(dict.fromkeys(wanted))
    known_set = set(known)
    out = {w: w for w in wanted if w in known_set}
    rest = [w for w in wanted if w not in out]
    if not rest:
        return out
    for base in (None, *bases):
        by_abs: dict[str, str] = {}
        for k in known:
            resolved = k if base is None or os.path.isabs(k) else os.path.join(os.fspath(base), k)
            by_abs.setdefault(os.path.abspath(resolved), k)
        for w in rest:
            hit = by_abs.get(os.path.abspath(w))
            if hit is not None:
                out[w] = hit
        rest = [w for w in rest if w not in out]
        if not rest:
            return out
    whole: dict[tuple[str, ...], str] = {}  # a relative known path's own parts
    for k in known:
        if not os.path.isabs(k):
            parts = _parts(k)
            whole[parts] = k if whole.get(parts, k) == k else _AMBIGUOUS
    claimed: dict[str, list[str]] = {}
    for w in rest:
        parts = _parts(w)
        # a relative known path that is, whole, the end of this one (``pool/a.png`` in ``../pool/a.png``: written from
        # the folder above); never two paths that share only an ending
        hit = next((whole[parts[-n:]] for n in range(len(parts), 1, -1) if parts[-n:] in whole), None)
        if hit:
            claimed.setdefault(hit, []).append(w)
    for k, ws in claimed.items():
        if len(ws) == 1:  # a known path two wanted paths end like is no match for either
            out[ws[0]] = k
    return out
