"""Atomic, durable file output: a reader never sees a half-written file, and a killed job leaves the old file intact.

Every temporary file is named ``.{target name}.opreid-{random}.tmp`` beside its target, so that a run that holds the
folder's lock (see ``opreid_bench.outputs``) can tell a killed run's leftovers from anything else and delete them
(:func:`clean_stale_tmp`). The data is ``fsync``-ed before the rename and the folder after it, so a power loss leaves
either the old or the new file, never a zero-length one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_INFIX = ".opreid-"
TMP_SUFFIX = ".tmp"


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's data to disk (a no-op where the platform cannot open files read-only for that)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename inside it) to disk; silently skipped where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in one rename, else it is removed.

    Use it for writers that want a path (h5py, torch.save, matplotlib): ``with atomic_path(out) as tmp: save(tmp)``.
    ``durable=False`` skips the fsyncs, for files written into a temporary folder that is synced as a whole before
    it is swapped in (see ``opreid_bench.outputs.fsync_tree``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TMP_INFIX}", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        if durable:
            fsync_file(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    if durable:
        fsync_dir(target.parent)


def is_our_tmp(name: str) -> bool:
    """True for a temporary name that :func:`atomic_path` makes (``.NAME.opreid-XXXX.tmp``)."""
    return name.startswith(".") and TMP_INFIX in name and name.endswith(TMP_SUFFIX)


def clean_stale_tmp(folder: str | os.PathLike[str], *, recursive: bool = False) -> int:
    """Delete killed runs' temporary files (only names :func:`atomic_path` makes) in ``folder``; returns how many.

    Call it only while holding the folder's lock: then no other run can be writing one of them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames:
            if is_our_tmp(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    n += 1
        if not recursive:
            break
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return n


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8", *,
                      durable: bool = True) -> None:
    """Write ``text`` to ``target`` atomically (and durably unless ``durable=False``)."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``target`` atomically (and durably unless ``durable=False``)."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_bytes(data)
