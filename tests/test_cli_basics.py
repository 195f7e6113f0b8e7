from __future__ import annotations

import subprocess
import sys

from opreid_bench.registry import Registry


def test_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "opreid_bench", "--help"], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout


def test_registry_unknown_name_lists_known() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    assert reg.get("A") == 1
    try:
        reg.get("b")
    except Exception as exc:  # noqa: BLE001
        assert "known: a" in str(exc)
    else:
        raise AssertionError("expected an error")
