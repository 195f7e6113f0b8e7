"""Helpers of the tests/test_onnx_*.py files: a tiny CUHK03-style tree (the real loader reads it) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from opreid_bench.cli import cli, main


def cuhk03_tree(root: Path, train_ids: int = 6, val_ids: int = 4) -> Path:
    """64x32 noisy per-identity patterns; cameras A (kk 0, 1) and B (kk 5, 6): query A, gallery B on val."""
    rng = np.random.default_rng(0)
    for split, ids in (("train", train_ids), ("val", val_ids)):
        folder = root / "cuhk03_labeled" / split
        folder.mkdir(parents=True)
        for pid in range(ids):
            base = rng.integers(0, 256, size=(64, 32, 3))
            for kk in (0, 1, 5, 6):
                img = np.clip(base + rng.integers(-40, 41, size=base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{pid:04d}_{kk:02d}.png")
    return root


def cli_ok(args: list) -> dict:
    """Run the CLI (click's runner: usable in module-scoped fixtures), expect success, return the last stdout line
    as JSON."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit code 2 and exactly one stderr line; return it."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]
