"""Running the CLI as a user does inside a test, and a small feature file to run it on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opreid_bench.cli import main
from opreid_bench.evaluation import FeatureSet, write_feature_file


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``opreid-bench ARGS`` (errors become one line on stderr, as for a user)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def small_feature_file(path: Path) -> Path:
    """A valid feature file of 4 queries and 8 gallery items (every query has two matches in another camera)."""
    rng = np.random.default_rng(0)
    q = FeatureSet(rng.standard_normal((4, 3)).astype(np.float32), np.arange(4), np.zeros(4, int))
    g = FeatureSet(rng.standard_normal((8, 3)).astype(np.float32), np.arange(8) % 4, np.ones(8, int))
    write_feature_file(path, q, g)
    return path
