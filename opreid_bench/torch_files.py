"""Reading PyTorch files (checkpoints, state dicts) as data: ``torch.load(weights_only=True)`` with one short line
for any file it cannot read.

Why: torch reports a bad file in many ways (a zip reader error of several sentences, a bare ``KeyError: 101`` for a
text file, an unpickler's advice to turn ``weights_only`` off, a warning on stderr before the error). A user needs the
file's name and what is wrong with it, in one line, and never the advice to run untrusted code.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

from opreid_bench.errors import CheckpointError


def unreadable_reason(exc: BaseException) -> str:
    """A short, whole-sentence reason why ``torch.load`` could not read a file."""
    text = str(exc)
    if "central directory" in text or "zip archive" in text:
        return "truncated or damaged: its zip archive cannot be read"
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"it holds Python objects besides tensors{what}, which are not loaded for safety; save the model's "
                "state_dict() instead")
    if isinstance(exc, (KeyError, EOFError)) or "invalid load key" in text or "magic number" in text:
        return "not a PyTorch file"
    first = text.splitlines()[0] if text else type(exc).__name__
    sentence = first.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= 160 else sentence[:157].rstrip() + "..."


def load_torch_file(path: str | os.PathLike[str], what: str = "PyTorch checkpoint",
                    error: type[Exception] = CheckpointError) -> Any:
    """The object in ``path`` (tensors and plain containers only, on CPU); a file torch cannot read raises ``error``
    with one line: ``{path}: not a readable {what} ({reason})``. torch's warnings are not printed."""
    import torch

    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_scalars()):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types (pickle, zip, runtime, key) for a bad file
        reason = unreadable_reason(exc) if _looks_like_torch(path) else "not a PyTorch file"
        raise error(f"{path}: not a readable {what} ({reason})") from exc


def _numpy_scalars() -> list[Any]:
    """numpy scalars and dtypes, allowed besides tensors: torchreid's engine saves ``rank1`` as a ``numpy.float32``
    in every checkpoint it writes, and a scalar or a dtype runs no code when it is loaded. numpy arrays stay refused.
    Files written under numpy 2 name the scalar ``numpy._core.multiarray.scalar``; both names are allowed."""
    import numpy as np

    try:
        from numpy.core import multiarray  # numpy < 2
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core import multiarray
    scalar = multiarray.scalar
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype,
            *{type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)}]


def _looks_like_torch(path: str | os.PathLike[str]) -> bool:
    """A zip archive (torch.save since 1.6, also when truncated: its local header) or a pickle (older torch.save)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return True  # let torch's own reason stand
    return head in (b"PK", b"\x80\x02") or head[:1] == b"\x80"
