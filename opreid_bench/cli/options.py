"""Option parsing shared by several commands."""

from __future__ import annotations

from opreid_bench.errors import OpreidError


def parse_key_values(pairs: tuple[str, ...] | list[str], flag: str = "--option") -> dict[str, str]:
    """``KEY=VALUE`` strings (a repeatable option such as a dataset loader's ``--option``) -> dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OpreidError(f"{flag} {pair!r}: expected KEY=VALUE (e.g. query_folder=partial; see "
                              "`opreid-bench datasets list`)")
        out[key.strip()] = value
    return out
