"""A split written with every face masked passes `mask --verify`: the writer verifies the crop as written (after
JPEG), and the check of a split folder judges each face with the keypoints the masking used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")
pytestmark = pytest.mark.slow


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opreid_bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("size", [("32", "64"), ("64", "128")])
def test_a_sampled_split_passes_its_own_verification(tmp_path: Path, size: tuple[str, str]) -> None:
    # SynthOcc figures: drawn heads that BlazeFace scores as faces once JPEG has touched the blurred region, on these
    # seeds (found by running `mask --verify` on such splits)
    for args in (["synth", "--out", "pool", "--ids", "40", "--size", *size, "--seed", "0"],
                 ["annotate", "--pool", "pool/manifest.csv", "--pose", "precomputed:pool/keypoints.csv", "--out", "ann"],
                 ["classify", "--keypoints", "ann", "--out", "labels.csv"],
                 ["sample", "--labels", "labels.csv", "--pool", "pool/manifest.csv", "--protocol", "opreid-tiny",
                  "--out", "split", "--seed", "1", "--keypoints", "ann"]):
        done = _run(tmp_path, *args)
        assert done.returncode == 0, f"{args}\n{done.stderr[-2000:]}"
    verify = _run(tmp_path, "mask", "--verify", "--out", "split", "--json")
    assert verify.returncode == 0, verify.stderr[-2000:]
    assert json.loads(verify.stdout)["faces_found"] == 0
