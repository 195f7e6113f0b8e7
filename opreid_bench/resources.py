"""The project's data files that commands read at run time: method configs and recipes (``baselines/``), split and
evaluation protocols (``protocols/``), published tables and citations (``baselines/published/``) and data cards
(``data_cards/``).

They live in the project's top-level folders, where a reader looks for them, and a built wheel carries copies inside
the package (``opreid_bench/_shipped/``, written by ``setup.py`` at build time). :func:`resource_dir` finds them
through the package (:mod:`importlib.resources`) whatever the working directory, and falls back to the checkout's
folders for an editable install.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from opreid_bench.errors import DataError

#: The top-level folders shipped inside the wheel.
SHIPPED = ("baselines", "protocols", "data_cards")
PACKAGED = "_shipped"
CHECKOUT = Path(__file__).resolve().parents[1]


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of :data:`SHIPPED`): the wheel's copy, or the checkout's folder."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not a shipped folder (known: {', '.join(SHIPPED)})")
    packaged = resources.files("opreid_bench").joinpath(PACKAGED, name)
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = CHECKOUT / name
    if checkout.is_dir():
        return checkout
    raise DataError(f"{name}/: the package's data files are missing (reinstall opreid-bench)")


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or ``None`` for an installed wheel."""
    return CHECKOUT if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "opreid_bench").is_dir() else None
