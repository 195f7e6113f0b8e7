"""The command line imports torch only for the commands that run torch: importing the CLI, resolving `evaluate`,
and running `evaluate --features` and `evaluate --onnx` (onnxruntime, Pillow, numpy) leave it unloaded.

Each check runs in a fresh interpreter, with an import hook that refuses torch and records the attempt, so a
module that brings torch back at import time (or inside the command) fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from opreid_bench.evaluation.features import FeatureSet, write_feature_file

REPO = Path(__file__).resolve().parents[1]

# Runs before anything of the project: refuse torch (and its submodules) and remember who asked.
_GUARD = """
import importlib.abc, sys
ASKED = []

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            ASKED.append(name)
            raise ImportError(f"{name} is refused in this check")
        return None

sys.meta_path.insert(0, NoTorch())
"""

_REPORT = """
print(json.dumps({"asked": ASKED, "loaded": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def _run(body: str) -> dict:
    """Run ``body`` after the guard in a fresh interpreter; the last stdout line is the guard's report."""
    code = _GUARD + "import json\n" + textwrap.dedent(body) + _REPORT
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli(args: list[str]) -> str:
    """A body that runs ``opreid-bench ARGS`` in-process and fails unless it exits with 0."""
    return f"""
    from opreid_bench.cli import main
    try:
        main({args!r})
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    """


def _clean(report: dict) -> None:
    assert report == {"asked": [], "loaded": []}, f"torch was imported: {report}"


def test_the_guard_sees_torch() -> None:
    """The check itself works: importing a module that needs torch is seen."""
    report = json.loads(subprocess.run(
        [sys.executable, "-c", _GUARD + "import json\ntry:\n    import opreid_bench.modeling.backbones\n"
         "except ImportError:\n    pass\n" + _REPORT],
        capture_output=True, text=True, cwd=REPO, check=True, timeout=300).stdout.strip().splitlines()[-1])
    assert report["asked"]


def test_importing_the_cli_and_resolving_evaluate_needs_no_torch() -> None:
    _clean(_run("""
    import click
    from opreid_bench.cli import cli
    with click.Context(cli) as ctx:
        command = cli.get_command(ctx, "evaluate")
    assert command is not None and command.name == "evaluate"
    import opreid_bench.modeling
    from opreid_bench.modeling.config import BACKBONE_NAMES, ModelConfig
    """))


def _feature_set(rng: np.random.Generator, n: int, pids: int) -> FeatureSet:
    labels = rng.integers(0, pids, n)
    centers = np.eye(pids, 8, dtype=np.float32) * 4
    feats = (centers[labels] + rng.standard_normal((n, 8))).astype(np.float32)
    return FeatureSet(feats, labels, rng.integers(0, 3, n))


def test_evaluate_features_needs_no_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "feats.h5"
    write_feature_file(path, _feature_set(rng, 20, 5), _feature_set(rng, 60, 5))
    out = tmp_path / "report.json"
    for extra in ([], ["--metric", "cosine", "--bootstrap", "20", "--device", "cpu"]):
        _clean(_run(_cli(["evaluate", "--features", str(path), "--json", "--out", str(out), *extra])))
        assert json.loads(out.read_text())["num_valid_queries"] > 0


def _tiny_onnx(path: Path) -> Path:
    """(batch, 3, 32, 16) -> per-channel mean and max (batch, 6), dynamic batch, no metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["avg"]),
             helper.make_node("GlobalMaxPool", ["x"], ["max"]),
             helper.make_node("Concat", ["avg", "max"], ["both"], axis=1),
             helper.make_node("Flatten", ["both"], ["emb"], axis=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 16])],
                              [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["n", 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_evaluate_onnx_needs_no_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from onnx_helpers import cuhk03_tree

    root = cuhk03_tree(tmp_path / "data")
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "report.json"
    for batch in ("64", "3"):
        _clean(_run(_cli(["evaluate", "--onnx", str(model), "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                          "--batch-size", batch, "--dataset", "cuhk03_labeled", "--root", str(root), "--json",
                          "--out", str(out)])))
        assert json.loads(out.read_text())["num_valid_queries"] > 0
