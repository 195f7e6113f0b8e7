"""A tiny name -> constructor registry (timm-style), so that configs and the CLI refer to components by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from opreid_bench.errors import OpreidError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a lower-case name to an object (usually a class or factory); unknown names give a one-line error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def deco(obj: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object registered under ``name`` or raise an error listing the known names."""
        key = name.lower()
        if key not in self._items:
            raise OpreidError(f"unknown {self.kind} '{name}'; known: {', '.join(sorted(self._items))}")
        return self._items[key]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
