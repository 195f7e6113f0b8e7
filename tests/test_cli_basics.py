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


def test_a_mistyped_option_or_value_is_one_line_naming_the_help() -> None:
    for args, says in ((["evaluate", "--nope"], "error: No such option '--nope'"),
                       (["mask", "--pool", "p", "--out", "o", "--face-boxes", "nofile.csv"],
                        "error: Invalid value for '--face-boxes': File 'nofile.csv' does not exist."),
                       (["nocommand"], "error: No such command 'nocommand'.")):
        done = subprocess.run([sys.executable, "-m", "opreid_bench", *args], capture_output=True, text=True)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(says), done.stderr
        assert lines[0].endswith("--help`)") and not done.stdout
