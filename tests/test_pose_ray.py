"""`--engine ray`: the annotate stage on a local Ray instance (Ray Data map_batches, one pose model per actor).

Ray Data needs pyarrow. Where pyarrow cannot be used, the stage falls back to plain Ray actors running the same
``PoseActor``; where pyarrow is installed but broken (e.g. built for numpy 2 next to numpy 1.26), Ray itself cannot
serialise, and the stage says so in one line. Each test starts at most one local Ray instance (about 20-30 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from opreid_bench.errors import OpreidError
from opreid_bench.splits.annotate import annotate_pool, read_report
from opreid_bench.splits.keypoints import COCO17_NAMES

ray = pytest.importorskip("ray")


def _pyarrow_state() -> str:
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        return "absent"
    except ImportError:
        return "broken"
    return "ok"


PYARROW = _pyarrow_state()


def tiny_pool(tmp_path) -> tuple[list[str], str]:
    rng = np.random.default_rng(1)
    paths, rows = [], []
    crops = tmp_path / "pool"  # not tmp_path itself: an annotate --out may not lie inside the crops' folder
    crops.mkdir()
    for i in range(7):
        p = crops / f"{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 20, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
        rows.append([str(p)] + rng.uniform(0, 1, 51).round(4).tolist())
    bad = crops / "bad.jpg"
    bad.write_bytes(b"nope")
    csv = tmp_path / "kp.csv"
    columns = ["source_path"] + [f"{k}_{c}" for k in COCO17_NAMES for c in ("x", "y", "score")]
    pd.DataFrame(rows, columns=columns).to_csv(csv, index=False)
    return paths + [str(bad)], f"precomputed:{csv}"


def check_same_as_local(tmp_path, paths, spec) -> None:
    local = annotate_pool(paths, tmp_path / "local", backend=spec, progress=False)
    assert (tmp_path / "ray" / "keypoints.h5").read_bytes() == local.read_bytes()
    report = read_report(tmp_path / "ray")
    assert report["engine"] == "ray" and report["annotated"] == 7
    assert [s["source_path"] for s in report["skipped"]] == [paths[-1]]


@pytest.mark.skipif(PYARROW != "broken", reason="pyarrow imports or is absent here")
def test_broken_pyarrow_is_a_one_line_error(tmp_path):
    paths, spec = tiny_pool(tmp_path)
    with pytest.raises(OpreidError, match="pyarrow is installed but does not import"):
        annotate_pool(paths, tmp_path / "ray", backend=spec, engine="ray", progress=False)


@pytest.mark.skipif(PYARROW != "ok", reason="Ray Data needs a working pyarrow")
def test_ray_data_engine_equals_local_engine(tmp_path):
    paths, spec = tiny_pool(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        annotate_pool(paths, tmp_path / "ray", backend=spec, engine="ray", workers=2, batch_size=3, progress=False)
    finally:
        ray.shutdown()
    check_same_as_local(tmp_path, paths, spec)


@pytest.mark.skipif(PYARROW == "ok", reason="Ray Data is tested instead")
def test_ray_actor_fallback_equals_local_engine(tmp_path):
    """Without (usable) pyarrow: hide it from driver and workers, as on a machine where it is not installed."""
    paths, spec = tiny_pool(tmp_path)
    shim = tmp_path / "shim" / "pyarrow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ModuleNotFoundError("pyarrow hidden by the test", name="pyarrow")\n')
    script = textwrap.dedent(f"""
        import ray
        from opreid_bench.splits.annotate import annotate_pool
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        annotate_pool({paths!r}, {str(tmp_path / "ray")!r}, backend={spec!r}, engine="ray", workers=2,
                      batch_size=3, progress=False)
        ray.shutdown()
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plain Ray actor(s)" in proc.stderr
    check_same_as_local(tmp_path, paths, spec)
