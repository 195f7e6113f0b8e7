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
EXPECTED_FORMAT = {".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO"), ".png": ("PNG",), ".bmp": ("BMP",),
                   ".webp": ("WEBP",), ".tif": ("TIFF",), ".tiff": ("TIFF",)}  # MPO: a JPEG with more pictures


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
    if expected is not None and found not in expected:
        return "wrong_format", f"{found} data in a {path.suffix} file"
    return None


def decode_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this file is not an image we can read" (Pillow's decompression-bomb error is not an
    OSError, so a plain ``except OSError`` lets a huge image through as a traceback)."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


_HIGH_BIT_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def upright_rgb(image: Any) -> Any:
    """An opened PIL image as 8-bit RGB the way an image viewer shows it: the EXIF orientation applied, 16-bit
    or 32-bit values scaled to 8 bits instead of clipped, and no metadata (``info`` empty).

    Why: every stage must see the same pixels. A crop stored sideways with an EXIF orientation tag would otherwise
    be posed, masked and written sideways, and Pillow's plain ``convert("RGB")`` turns a 16-bit crop all white."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_BIT_DEPTH:
        import numpy as np

        values = np.asarray(image).astype(np.float64)
        top = float(values.max(initial=0.0))
        if image.mode.startswith("I;16"):
            scale = 257.0  # 65535 -> 255
        else:  # 32-bit integer or float: the range in use
            scale = 1.0 if top <= 255 else 257.0 if top <= 65535 else top / 255.0
        image = Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8), "L")
    rgb = image.convert("RGB")
    rgb.info = {}  # pixels only: a comment or text chunk may hold a copy of them (an unmasked preview), never passed on
    return rgb


def upright_size(image: Any) -> tuple[int, int]:
    """(width, height) of an opened image as :func:`upright_rgb` returns it, read from the header alone."""
    orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation; 5-8 turn the image by 90 degrees
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def decode_rgb(data: bytes) -> Any:
    """Image bytes as :func:`upright_rgb` returns them; raises one of :func:`decode_errors` for anything else."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return upright_rgb(image)


def load_rgb(path: str | Path) -> Any:
    """Open and fully decode an image as an RGB PIL image (:func:`upright_rgb`); a missing or undecodable file raises
    DataError naming it.

    What every crop goes through: training, extraction, ``--onnx``, and every stage of a split (pose, masking,
    review sheets); needs Pillow, not torch.
    """
    from PIL import Image

    from opreid_bench.errors import DataError

    try:
        with Image.open(path) as img:
            img.load()
            return upright_rgb(img)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except decode_errors() as exc:
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
