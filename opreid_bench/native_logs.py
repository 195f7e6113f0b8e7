"""Keeps mediapipe's native start-up chatter off the user's terminal, and passes everything else through.

mediapipe's C++ graphs write TensorFlow Lite and absl log lines straight to file descriptor 2 when a model is
built or first run ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires a model with a single
signature", ...). They say nothing a user can act on and bury the command's own output; Python's logging and
environment variables such as ``GLOG_minloglevel`` do not reach them. :func:`quiet_native_logs` sends descriptor 2 to
a temporary file while a model call runs, then writes back everything except the lines in :data:`NATIVE_CHATTER`,
byte for byte and in order: an error from the native code, a Python warning or a progress bar frame written in the
meantime still reaches the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

# The known lines, each matched whole: a native log line (severity I/W, date, thread, source file:line) from one of
# the named sources, and the two fixed notices TensorFlow Lite and absl print once per process.
NATIVE_CHATTER = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\r?\n"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\r?\n"
    rb"|[IW]\d{4} [\d:.]+ +\d+ (?:inference_feedback_manager|landmark_projection_calculator|gl_context"
    rb"|face_landmarker_graph|tflite_model_loader|resource_util)\.cc:\d+\][^\n]*\n"
)

_lock = threading.Lock()
_active = 0
_spool: IO[bytes] | None = None


def drop_native_chatter(data: bytes) -> bytes:
    """``data`` without the lines of :data:`NATIVE_CHATTER` (everything else unchanged)."""
    return NATIVE_CHATTER.sub(b"", data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Run the block with descriptor 2 spooled and :data:`NATIVE_CHATTER` dropped from it (see the module docstring).

    Re-entrant and safe across threads: only the outermost block of a process redirects; a block entered while
    another thread holds the redirection runs unchanged (its native lines, if any, are filtered by the outer one).
    Where descriptor 2 cannot be duplicated (no such descriptor), the block runs as it is.
    """
    global _active, _spool
    with _lock:
        outer = _active == 0
        _active += 1
    if not outer:
        try:
            yield
        finally:
            with _lock:
                _active -= 1
        return
    saved = None
    try:
        with contextlib.suppress(OSError, ValueError):
            if _spool is None:
                _spool = tempfile.TemporaryFile(prefix="opreid-native-")  # noqa: SIM115 - kept for the process
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            saved = os.dup(2)
            _spool.seek(0)
            _spool.truncate()
            os.dup2(_spool.fileno(), 2)
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            assert _spool is not None
            _spool.seek(0)
            kept = drop_native_chatter(_spool.read())
            if kept:
                _write_all(2, kept)
        with _lock:
            _active -= 1
