"""Smoke test of benchmarks/fuzz_cli.py: one case of every family runs through the real CLI without a traceback,
and the fuzzer does count an exception that escapes the CLI as a traceback (so its 0 can be trusted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cli.py"


@pytest.fixture(scope="module")
def fuzz():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("fuzz_cli", FUZZ)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_cli"] = module
    spec.loader.exec_module(module)
    return module


def test_one_case_per_family_without_tracebacks(fuzz, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    n = len(fuzz.FAMILIES)
    summary = fuzz.main(["--cases", str(n), "--seed", "7", "--workers", "1", "--json", "--keep", str(tmp_path)])
    assert summary["cases"] == n and set(summary["families"]) == set(fuzz.FAMILIES)
    assert summary["tracebacks"] == 0, summary["failures"]
    assert summary["failed_controls"] == [], summary["failed_controls"]
    assert sum(summary["exit_codes"].values()) == n
    assert '"tracebacks": 0' in capsys.readouterr().out


def test_an_escaping_exception_is_counted(fuzz, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import opreid_bench.cli as cli_module

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("escaped")

    monkeypatch.setattr(cli_module.cli, "main", boom)
    res = fuzz.run_cli(["datasets", "list"])
    assert res["exit"] == "traceback" and res["exception"].startswith("KeyError")


def test_mutations_are_seeded(fuzz) -> None:  # noqa: ANN001
    import numpy as np

    tree = {"a": {"b": [1, 2, 3]}, "c": "x"}
    one = fuzz.mutate_tree(tree, np.random.default_rng(3))
    two = fuzz.mutate_tree(tree, np.random.default_rng(3))
    assert repr(one) == repr(two) and tree == {"a": {"b": [1, 2, 3]}, "c": "x"}
