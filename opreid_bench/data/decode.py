"""Decode every image of a dataset (``datasets verify --decode``): truncated, mislabelled and unreadable files.

Counting files (``datasets verify``) cannot see a JPEG cut short by an interrupted copy, or PNG data saved under a
``.jpg`` name; training would then fail hours in, or a toolkit that trusts the extension would misread it. This
check opens and fully decodes each file with Pillow (truncated data is an error, never padded) and compares the
format found in the bytes with the file's extension.

Problems, one per file: ``truncated`` (the data ends early), ``undecodable`` (not an image Pillow can read, or
corrupt), ``wrong_format`` (decodes, but the bytes are another format than the extension says, e.g. PNG data in a
``.jpg`` file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Pillow's format name for each extension whose format is checked.
EXPECTED_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
                   ".tif": "TIFF", ".tiff": "TIFF"}


@dataclass
class DecodeReport:
    """How many images were decoded and every file that failed, as ``{"path", "problem", "detail"}``."""

    checked: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of files per problem kind (sorted by kind)."""
        return dict(sorted(Counter(p["problem"] for p in self.problems).items()))

    def to_json(self, max_examples: int = 100) -> dict[str, Any]:
        """The ``decode`` object of ``datasets verify --decode --json``."""
        return {"checked": self.checked, "failed": len(self.problems), "counts": self.counts(),
                "problems": self.problems[:max_examples]}


def decode_problem(path: str | Path) -> tuple[str, str] | None:
    """``(problem, detail)`` when ``path`` does not decode cleanly as the format its extension names, else None."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    path = Path(path)
    padded = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail here, not be padded with grey
    try:
        with Image.open(path) as im:
            found = im.format
            im.load()
    except UnidentifiedImageError:
        return "undecodable", "not an image Pillow can identify"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        text = " ".join(str(exc).split())
        return ("truncated" if "truncated" in text.lower() else "undecodable"), text
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = padded
    expected = EXPECTED_FORMAT.get(path.suffix.lower())
    if expected is not None and found != expected:
        return "wrong_format", f"{found} data in a {path.suffix} file"
    return None


def load_rgb(path: str | Path) -> Any:
    """Open and fully decode an image as an RGB PIL image; a missing or undecodable file raises DataError naming it.

    What every crop goes through before its transform (training, extraction, ``--onnx``); needs Pillow, not torch.
    """
    from PIL import Image, UnidentifiedImageError

    from opreid_bench.errors import DataError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def decode_images(paths: Iterable[str | Path], on_done: Callable[[int], None] | None = None) -> DecodeReport:
    """Decode each file of ``paths`` (sorted, duplicates once) and collect the ones that fail."""
    report = DecodeReport()
    for p in sorted({str(p) for p in paths}):
        found = decode_problem(p)
        report.checked += 1
        if found is not None:
            report.problems.append({"path": p, "problem": found[0], "detail": found[1]})
        if on_done is not None:
            on_done(1)
    return report
