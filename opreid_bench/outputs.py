"""Output folders that are never lost, never half-written and never stale.

Every folder a command writes carries a marker, ``.opreid-output.json``::

    {"format": "opreid-output", "version": 1, "command": "build-split", "kind": "split",
     "fingerprint": "<sha256 of the inputs' content and the options>", "complete": true,
     "options": {...}, "written": [relative paths of the files the command wrote]}

Rules (:func:`output_folder` applies them all):

- a command writes into a new or empty folder, or into one whose marker says it holds this command's kind of output;
  any other non-empty folder is refused, and so is an ``--out`` equal to, inside or around an input (one line naming
  both paths);
- one run at a time: a lock file (``fcntl.flock``, released by the kernel even when the run is killed) names the
  holder, and a second run gets one line naming it;
- ``swap=True`` (splits, the Clever Hans sets): the new output is built in a temporary sibling
  ``.{name}.opreid-new-{pid}`` and swapped in at the end by one atomic rename (``renameat2(RENAME_EXCHANGE)`` where
  the kernel has it), so after a kill at any moment the folder holds the previous complete output or the new one.
  Files in the old folder that the command did not write are carried over, never deleted; a killed run's temporary
  sibling (one carrying our marker) is deleted by the next run;
- ``swap=False`` (resumable folders: keypoint caches, run directories, pools): files are written atomically in place,
  the marker says ``complete: false`` until the run ends, and killed runs' temporary files are deleted.

``fingerprint`` lets a command decide whether earlier output is still valid (``demo`` reuses a stage only when its
fingerprint matches): it hashes file *contents* (:func:`content_digest`) and options, never paths.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opreid_bench.atomic import atomic_write_text, clean_stale_tmp, fsync_dir, fsync_file, is_our_tmp
from opreid_bench.errors import OutputError

MARKER = ".opreid-output.json"
MARKER_FORMAT = "opreid-output"
MARKER_VERSION = 1
LOCK_INSIDE = ".opreid.lock"
NEW_INFIX = ".opreid-new-"
OLD_INFIX = ".opreid-old-"
KEEP_ACROSS_SWAP = (".annotate",)  # caches that live in an output folder and survive a swap

PathLike = str | os.PathLike[str]


# ---- content fingerprints ----


def content_digest(path: PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's files (sorted relative names and their bytes); never the path."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            h.update(content_digest(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """sha256 of a JSON-able object in canonical form (sorted keys): the options half of a cache or reuse key."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# ---- inputs vs output ----


def _resolved(p: PathLike) -> Path:
    return Path(os.path.abspath(p)).resolve()


def is_within(child: PathLike, parent: PathLike) -> bool:
    """True when ``child`` is ``parent`` or lies inside it (both resolved: symlinks and ``..`` followed)."""
    c, p = _resolved(child), _resolved(parent)
    return c == p or p in c.parents


def check_separate(out: PathLike, inputs: Iterable[tuple[str, PathLike]], option: str = "--out") -> None:
    """Refuse an output folder equal to, inside, or around any input; ``inputs`` are (what, path) pairs."""
    o = _resolved(out)
    for label, path in inputs:
        i = _resolved(path)
        if i == o:
            raise OutputError(f"{option} {out} is the same as the {label} {path}; choose another {option}")
        if i in o.parents:
            raise OutputError(f"{option} {out} is inside the {label} {path}; choose a folder outside it")
        if o in i.parents:
            raise OutputError(f"the {label} {path} is inside {option} {out}; choose an {option} that holds no input")


def record_folders(paths: Iterable[PathLike], label: str = "crop folder") -> list[tuple[str, Path]]:
    """(label, folder) for every distinct folder holding one of ``paths`` (the inputs a pool or dataset reads)."""
    seen: dict[str, None] = {}
    for p in paths:
        seen[os.path.dirname(os.path.abspath(p))] = None
    return [(label, Path(d)) for d in seen]


# ---- markers ----


def refuse_output_over_input(out: Path | None, out_flag: str, inputs: dict[str, Path | None]) -> None:
    """Raise an :class:`OutputError` when the output file ``out`` is one of the input files (symlinks resolved).

    Writing a report or a results CSV over the feature file or checkpoint it was computed from destroys the input.
    """
    if out is None:
        return
    target = os.path.realpath(out)
    for flag, path in inputs.items():
        if path is not None and os.path.realpath(path) == target:
            raise OutputError(f"{out_flag} {out} is the {flag} file {path}: it would overwrite its own input; "
                              f"choose another {out_flag}")


def refuse_foreign_file(out: PathLike, command: str, is_ours: Callable[[Path], bool], option: str = "--out") -> None:
    """A file output (a report, a feature file, a results CSV, a model) may replace ``out`` only when ``out`` is
    missing or ``is_ours`` recognises it as this command's own earlier output; anything else is refused with one line.

    Why: a command never overwrites a file it did not write. A typo in ``--out`` (the dataset's manifest, a query
    image, a notes file) must cost an error message, not the file. ``is_ours`` reads the file's own signature (an
    HDF5 or JSON ``written_by``, a CSV header, an ONNX producer) and returns False for anything it cannot read."""
    out = Path(out)
    if not os.path.lexists(out):
        return
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; {option} needs a file name")
    if not is_ours(out):
        raise OutputError(f"{out}: exists and was not written by `opreid-bench {command}`; choose another {option} "
                          "(nothing is overwritten that this command did not write)")


def foreign_entries(folder: PathLike, is_ours: Callable[[Path], bool]) -> list[str]:
    """Names of the entries of ``folder`` that ``is_ours`` does not recognise (sorted; none when the folder is
    missing). Why: a command that adds its outputs to a folder (runs of a recipe, a run.json) must not mix them into
    a folder of the user's own files; the caller refuses such a folder in one line."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in (".DS_Store", "Thumbs.db") and not is_ours(p))


def file_starts_with(path: Path, first_line: str) -> bool:
    """True when ``path``'s first line is ``first_line`` (a CSV header or a text table's head); False when unreadable."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.readline().rstrip("\r\n") == first_line
    except (OSError, UnicodeDecodeError):
        return False


def file_head_contains(path: Path, text: str, head: int = 2000) -> bool:
    """True when ``text`` occurs in the first ``head`` characters of ``path`` (a page's title); False when
    unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return text in fh.read(head)
    except (OSError, UnicodeDecodeError):
        return False


def json_written_by(path: Path, writer: str) -> bool:
    """True when ``path`` holds a JSON object whose ``written_by`` is ``writer``; False when unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("written_by") == writer


def read_marker(folder: PathLike) -> dict[str, Any] | None:
    """The marker of ``folder``, or None when it has none (or an unreadable one)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None


def write_marker(folder: PathLike, *, command: str, kind: str, fingerprint: str, complete: bool,
                 options: Mapping[str, Any] | None = None, written: list[str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
    """Write the marker of ``folder`` atomically (deterministic: no time, host or pid in it)."""
    data: dict[str, Any] = {"format": MARKER_FORMAT, "version": MARKER_VERSION, "command": command, "kind": kind,
                            "fingerprint": fingerprint, "complete": complete, "options": dict(options or {})}
    if extra:
        data.update(extra)
    if written is not None:
        data["written"] = written
    atomic_write_text(Path(folder) / MARKER, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def _foreign_entries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n not in (MARKER, LOCK_INSIDE) and not is_our_tmp(n))


def claim(out: PathLike, command: str, kind: str, option: str = "--out") -> dict[str, Any] | None:
    """Check that ``command`` may write ``out``: new, empty, or holding this kind of output. Returns its marker."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another {option}")
    if not out.exists():
        return None
    marker = read_marker(out)
    if marker is None:
        if _foreign_entries(out):
            raise OutputError(f"{out}: the folder is not empty and was not written by `opreid-bench {command}` "
                              f"(it has no {MARKER}); choose a new or empty {option} (nothing in it was changed)")
        return None
    if marker.get("kind") != kind:
        raise OutputError(f"{out}: holds the output of `opreid-bench {marker.get('command')}`, not of "
                          f"`opreid-bench {command}`; choose another {option} (nothing in it was changed)")
    return marker


# ---- locks ----


class FolderLock:
    """An exclusive lock on a lock file (``fcntl.flock``: the kernel drops it when the holder dies, even by SIGKILL).

    The file holds who has it (pid, host, command, start time), so a second run can name the holder. It is removed
    on release; acquiring checks that the locked file is still the one at the path, so removal cannot let two runs in.
    """

    def __init__(self, path: PathLike, target: PathLike, what: str) -> None:
        self.path, self.target, self.what = Path(path), Path(target), what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`OutputError` naming the holder."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_excl()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_fd(fd)
                os.close(fd)
                raise self._busy(holder) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder released and removed it between our open and flock: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, _holder_text(self.what).encode())
        self._fd = fd
        return self

    def _acquire_excl(self) -> FolderLock:  # pragma: no cover - exercised only where fcntl is missing
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.path.read_text(errors="replace") if self.path.exists() else ""
                if _holder_alive(holder):
                    raise self._busy(holder) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its holder is gone
                continue
            os.write(fd, _holder_text(self.what).encode())
            self._fd = fd
            return self
        raise self._busy(self.path.read_text(errors="replace"))

    def _busy(self, holder: str) -> OutputError:
        who = holder.strip() or "another process"
        return OutputError(f"{self.target}: in use by another opreid-bench run ({who}); wait for it to finish or "
                           "choose another --out")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_fd(fd: int) -> str:
    try:
        os.lseek(fd, 0, 0)
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return ""


def _holder_text(what: str) -> str:
    since = datetime.datetime.now().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()}, {what}, since {since}"


def _holder_alive(holder: str) -> bool:  # pragma: no cover - O_EXCL fallback only
    parts = holder.split()
    if len(parts) < 4 or parts[0] != "pid" or parts[3].rstrip(",") != socket.gethostname():
        return bool(holder.strip())
    try:
        os.kill(int(parts[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def lock_beside(folder: PathLike, what: str) -> FolderLock:
    """The lock of a folder that gets swapped: a file beside it (``.{name}.opreid-lock``), not in it."""
    folder = Path(os.path.abspath(folder))
    return FolderLock(folder.parent / f".{folder.name}.opreid-lock", folder, what)


def lock_inside(folder: PathLike, what: str) -> FolderLock:
    """The lock of a folder written in place: ``FOLDER/.opreid.lock``."""
    return FolderLock(Path(folder) / LOCK_INSIDE, folder, what)


# ---- swapping a folder in ----


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_tree(root: PathLike, workers: int = 8) -> None:
    """fsync every file under ``root`` and every folder (in parallel: the journal batches concurrent syncs)."""
    files, dirs = [], []
    for dirpath, _dirnames, filenames in os.walk(root):
        dirs.append(dirpath)
        files += [os.path.join(dirpath, n) for n in filenames]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(fsync_file, files))
    for d in dirs:
        fsync_dir(d)


def _written_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in KEEP_ACROSS_SWAP]
        out += [(rel / n).as_posix() for n in filenames if n != MARKER]
    return sorted(out)


# The marker key of the sha256 of each written file a person may edit by hand (a data card, a CSV): an edited one is
# kept on a rebuild (as NAME.kept) instead of being replaced silently.
EDITABLE_DIGESTS = "written_sha256"
EDITABLE_SUFFIXES = (".md", ".csv", ".txt", ".json", ".yaml", ".yml", ".html")
EDITABLE_MAX_BYTES = 8 * 1024 * 1024


def _editable_digests(folder: Path, written: list[str]) -> dict[str, str]:
    """sha256 of the files in ``written`` that a person may edit by hand (small text files)."""
    out = {}
    for rel in written:
        path = folder / rel
        if Path(rel).suffix.lower() in EDITABLE_SUFFIXES and path.stat().st_size <= EDITABLE_MAX_BYTES:
            out[rel] = content_digest(path)
    return out


def folder_entries(folder: Path) -> Iterator[str]:
    """Relative paths of the files and links in ``folder`` (links to folders are not entered), sorted per folder,
    leaving out its own bookkeeping: the marker, the lock, our temporary files and the caches kept across a swap."""
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in KEEP_ACROSS_SWAP]
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for n in sorted([*filenames, *links]):
            if n not in (MARKER, LOCK_INSIDE) and not is_our_tmp(n):
                yield (rel / n).as_posix()


def _carry_over(old: Path, new: Path, written: set[str], digests: Mapping[str, str] | None = None) -> None:
    """Give the new folder the files the command did not write in the old one (never delete a user's file), and the
    written ones a person edited since (their sha256 differs from ``digests``) as ``NAME.kept``.

    They are linked (copied where the file system has no hard links), not moved: until the swap the old folder still
    holds them, so a run that fails or is killed before it, whose temporary folder is then deleted, loses nothing."""
    digests = digests or {}
    entries = list(folder_entries(old))
    theirs = [r for r in entries if r not in written]
    edited = [r for r in entries if r in written and r in digests and _edited(old / r, digests[r])]
    for r in theirs:  # first the user's own files under their names (an earlier NAME.kept among them) ...
        _keep(str(old / r), new / r)
    for r in edited:  # ... then this round's edited copies, beside them
        _keep(str(old / r), new / r, kept_only=True)


def _edited(path: Path, digest: str) -> bool:
    """Did a person change a written file (its sha256 is not the recorded one)? Anything that is no longer a regular
    file, or cannot be read, counts as changed: it is kept rather than lost."""
    import stat

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return True
        return content_digest(path) != digest
    except OSError:
        return True


def _keep(src: str, dest: Path, *, kept_only: bool = False) -> None:
    """Link ``src`` (a file or a link, not followed) to ``dest``, or to the first free ``dest.kept``, ``dest.kept.1``,
    ... when ``dest`` is taken (or ``kept_only``); a copy where hard links are not supported."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    names = ([] if kept_only else [dest.name]) + [f"{dest.name}.kept"] + [f"{dest.name}.kept.{k}" for k in range(1, 10_000)]
    for name in names:
        target = dest.with_name(name)
        if os.path.lexists(target):
            continue
        try:
            os.link(src, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network or FUSE file systems): a copy, the original stays
            shutil.copy2(src, target, follow_symlinks=False)
        return
    raise OutputError(f"{dest}: too many kept copies beside it; move them out of the folder")


def _siblings(folder: Path, infix: str) -> list[Path]:
    prefix = f".{folder.name}{infix}"
    if not folder.parent.is_dir():
        return []
    return sorted(p for p in folder.parent.iterdir() if p.name.startswith(prefix) and p.is_dir())


def recover(folder: PathLike) -> int:
    """Undo what a run killed during a swap left behind; returns how many temporary siblings were removed.

    A temporary sibling is removed only when it carries our marker. A cache it holds is moved back when the folder
    lacks one; an old folder set aside by the two-rename fallback is moved back when the folder is missing.
    """
    folder = Path(os.path.abspath(folder))
    n = 0
    for old in _siblings(folder, OLD_INFIX):
        if read_marker(old) is None:
            continue
        if not folder.exists():
            os.rename(old, folder)
        else:
            shutil.rmtree(old)
            n += 1
    for tmp in _siblings(folder, NEW_INFIX):
        if read_marker(tmp) is None:
            continue
        for keep in KEEP_ACROSS_SWAP:
            if (tmp / keep).is_dir() and folder.is_dir() and not (folder / keep).exists():
                os.rename(tmp / keep, folder / keep)
        shutil.rmtree(tmp)
        n += 1
    return n


def swap_in(new: Path, folder: Path) -> None:
    """Replace ``folder`` by ``new`` (both ours) so that a reader sees one or the other, then delete the old one."""
    old_marker = read_marker(folder) if folder.is_dir() else None
    if folder.is_dir():
        for keep in KEEP_ACROSS_SWAP:
            if (folder / keep).is_dir() and not (new / keep).exists():
                os.rename(folder / keep, new / keep)
        _carry_over(folder, new, set((old_marker or {}).get("written", [])),
                    (old_marker or {}).get(EDITABLE_DIGESTS) or {})
    fsync_dir(new)
    if not folder.exists():
        os.rename(new, folder)
        fsync_dir(folder.parent)
        return
    if _exchange(new, folder):
        fsync_dir(folder.parent)
        shutil.rmtree(new)  # ``new`` now holds the old folder
        return
    old = folder.parent / f".{folder.name}{OLD_INFIX}{os.getpid()}"  # fallback: two renames; ``recover`` heals
    os.rename(folder, old)
    os.rename(new, folder)
    fsync_dir(folder.parent)
    shutil.rmtree(old)


# ---- the whole protocol ----


# Output kinds whose folder is published as it is (a split, masked crops): a file the command did not write there
# would be published with it, unmasked and unverified.
PUBLISHED_KINDS = ("split", "masked")
# A user may keep plain text in such a folder (it is carried into the next output): it shows no face. Anything else
# the command did not write (an image of any format or name, a page, an archive, a link) is refused.
_NO_CONTENT = (".DS_Store",)  # folder-view settings of macOS: no picture in them


def unwritten_files(folder: PathLike) -> list[str] | None:
    """Relative paths of the files in ``folder`` that its command did not write (its marker's ``written`` list), the
    folder's own bookkeeping (marker, lock, temporary files, the kept caches) left aside; hidden files and symbolic
    links count. An incomplete marker without that list (a run killed before its first output was swapped in) wrote
    nothing there. None when there is no marker, or a complete one without the list (an output of an older version)."""
    folder = Path(folder)
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is None:
        return None
    if isinstance(marker.get("written"), list):
        written = set(marker["written"])
    elif not marker.get("complete", False):
        written = set()
    else:
        return None
    return sorted(r for r in folder_entries(folder) if r not in written)


PLAIN_TEXT_MAX_BYTES = 1024 * 1024  # notes beside a split are small; a larger "text" file is not taken on trust
# Text formats that hold pictures: pages and vector drawings, NetPBM, X bitmaps and pixmaps, PostScript, PDF.
_PICTURE_TEXT = ("<html", "<img", "<svg", "data:image", "<!doctype", "/* xpm */", "%!ps", "%pdf", "#define")
_NETPBM = re.compile(rb"\AP[1-7]\s")
_DS_STORE = b"\x00\x00\x00\x01Bud1"  # the header of a macOS .DS_Store (folder-view settings, no picture)


def may_show_a_face(path: PathLike) -> bool:
    """False only for plain text, judged by the whole content whatever the file's name (a picture named notes.txt is
    a picture), and for a real macOS ``.DS_Store``. Anything else counts as able to show a face: a link, a special
    file, an unreadable or large file, binary data, a page, and the text formats that hold pictures (NetPBM, XPM,
    XBM, PostScript, PDF, SVG), or whatever Pillow opens as an image."""
    import stat

    path = Path(path)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > PLAIN_TEXT_MAX_BYTES:
            return True  # never opened: a FIFO would block
        data = path.read_bytes()
    except OSError:
        return True
    if path.name in _NO_CONTENT and data.startswith(_DS_STORE):
        return False
    if b"\x00" in data or _NETPBM.match(data):
        return True
    try:
        lowered = data.decode("utf-8").lower()
    except UnicodeDecodeError:
        return True
    if any(tag in lowered for tag in _PICTURE_TEXT):
        return True
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def stray_media(folder: PathLike) -> list[str] | None:
    """The files in a published output folder (:data:`PUBLISHED_KINDS`) that may show a face
    (:func:`may_show_a_face`: everything but plain text) and that its command did not write, or wrote and a person
    changed since (they would be carried into the next output as ``NAME.kept``); None when the folder's marker does
    not say what was written (:func:`unwritten_files`)."""
    folder = Path(folder)
    unwritten = unwritten_files(folder)
    if unwritten is None:
        return None
    digests = (read_marker(folder) or {}).get(EDITABLE_DIGESTS) or {}
    changed = [r for r, digest in sorted(digests.items()) if os.path.lexists(folder / r) and _edited(folder / r, digest)]
    return sorted(r for r in {*unwritten, *changed} if may_show_a_face(folder / r))


def published_folder_above(path: PathLike) -> Path | None:
    """The nearest folder above ``path`` that holds a published output (a split or masked crops), or None."""
    for parent in Path(os.path.abspath(path)).parents:
        marker = read_marker(parent) if parent.is_dir() else None
        if marker is not None and marker.get("kind") in PUBLISHED_KINDS:
            return parent
    return None


def _refuse_stray_media(out: Path, kind: str, option: str) -> None:
    """A published folder with files its command did not write that may show a face (anything but text) is refused
    before anything is written: they would be carried into the new output and published, unmasked and unverified."""
    if kind not in PUBLISHED_KINDS:
        return
    stray = stray_media(out) or []
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise OutputError(f"{out / stray[0]}{more}: not written by opreid-bench, yet inside {option} {out}; it would "
                          "be published with the new output, unmasked and unverified: move it out of the folder")


def _remove_if_only_marker(folder: Path) -> None:
    """Delete ``folder`` when it holds nothing but our marker and empty folders (what a failed first run created)."""
    with contextlib.suppress(OSError):
        files = [Path(d, n) for d, _, names in os.walk(folder) for n in names]
        if files != [folder / MARKER]:
            return
        (folder / MARKER).unlink()
        for d, _, _ in sorted(os.walk(folder), key=lambda entry: -len(Path(entry[0]).parts)):
            os.rmdir(d)  # deepest first; each is empty by now


@contextlib.contextmanager
def output_folder(
    out: PathLike,
    command: str,
    *,
    kind: str | None = None,
    inputs: Iterable[tuple[str, PathLike]] = (),
    fingerprint: str = "",
    options: Mapping[str, Any] | None = None,
    swap: bool = False,
    option: str = "--out",
) -> Iterator[Path]:
    """Claim, lock and mark ``out`` for ``command``; yield the folder to write into (see the module docstring).

    With ``swap=True`` the yielded folder is a temporary sibling that replaces ``out`` when the block ends without
    an error (an error deletes it and leaves ``out`` as it was).
    """
    out = Path(out)
    kind = kind or command
    check_separate(out, inputs, option)
    if swap:
        out = Path(os.path.realpath(out))  # swap the folder a symlink points to, never the link itself
    claim(out, command, kind, option)
    lock = lock_beside(out, command) if swap else None
    if lock is not None:
        lock.acquire()
    try:
        if swap:
            recover(out)
            clean_stale_tmp(out)  # e.g. a marker write killed half-way
        claim(out, command, kind, option)  # again, now that no other run can change it
        _refuse_stray_media(out, kind, option)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        marker_args: dict[str, Any] = dict(command=command, kind=kind, fingerprint=fingerprint, options=options)
        if not swap:
            try:
                with lock_inside(out, command):
                    write_marker(out, complete=False, **marker_args)
                    clean_stale_tmp(out, recursive=True)
                    yield out
                    write_marker(out, complete=True, **marker_args)
            except BaseException:
                if created:
                    _remove_if_only_marker(out)  # a first run that failed before writing anything leaves no folder
                raise
            return
        if created or read_marker(out) is None:
            write_marker(out, complete=False, **marker_args)  # so a killed first run's folder is still ours
        work = out.parent / f".{out.name}{NEW_INFIX}{os.getpid()}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        write_marker(work, complete=False, **marker_args)
        try:
            yield work
            clean_stale_tmp(work, recursive=True)
            written = _written_files(work)
            write_marker(work, complete=True, written=written,
                         extra={EDITABLE_DIGESTS: _editable_digests(work, written)}, **marker_args)
            fsync_tree(work)
            swap_in(work, Path(os.path.abspath(out)))
        except BaseException:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
            if created:
                _remove_if_only_marker(out)  # a first run that failed leaves no folder behind
            raise
    finally:
        if lock is not None:
            lock.release()
