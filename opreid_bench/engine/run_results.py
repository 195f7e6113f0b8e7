"""Results of a trained run on other datasets, recorded in its own ``run.json`` (``evaluate --weights RUN/model.pt
--run-dir RUN``).

Why: the standard occluded ReID protocols train on one dataset and report on others (Market-1501 -> Occluded-REID,
Partial-REID), and ``leaderboard --runs`` reads what a run's ``run.json`` records. ``train`` records the training
dataset's own query/gallery; this adds the others, under the same keys and with the same provenance record
(``evaluated``) as ``reproduce`` writes, so ``reproduce`` does not evaluate them again and a later ``train --resume``
(new weights) replaces them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opreid_bench.errors import OpreidError, OutputError


def check_run_record(run_dir: str | os.PathLike[str], weights: str | os.PathLike[str]) -> Path:
    """Before anything is computed: ``run_dir`` must be the folder of the checkpoint ``weights`` and hold the
    ``run.json`` that ``train`` wrote there; returns that file. One line otherwise."""
    run_dir, weights = Path(run_dir), Path(weights)
    if os.path.realpath(run_dir) != os.path.realpath(weights.parent):
        raise OpreidError(f"--run-dir {run_dir}: with --weights the results go into the checkpoint's own run folder "
                          f"({weights.parent}), next to the run.json `train` wrote there")
    path = run_dir / "run.json"
    info = read_run_json(path)
    if info is None:
        raise OutputError(f"{path}: no run.json that `opreid-bench train` wrote (the run has not finished, or the "
                          "folder is not a run folder)")
    return path


def record_run_result(run_dir: str | os.PathLike[str], *, dataset: str, options: str, metrics: dict[str, Any],
                      metric: str, junk: str, root: str) -> Path:
    """Add ``metrics`` (fractions) for ``dataset`` read with loader ``options`` to ``run_dir/run.json`` under
    :func:`opreid_bench.engine.extract.result_key`, with its ``evaluated`` record; atomically, under the run
    folder's lock (a run still training there is refused)."""
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.engine.extract import result_key
    from opreid_bench.outputs import lock_inside

    path = Path(run_dir) / "run.json"
    with lock_inside(run_dir, "evaluate"):
        info = read_run_json(path)
        if info is None:
            raise OutputError(f"{path}: no run.json that `opreid-bench train` wrote")
        key = result_key(dataset, options)
        results = dict(info.get("results") or {})
        evaluated = dict(info.get("evaluated") or {})
        results[key] = {**metrics, **({"dataset_options": options} if options else {})}
        evaluated[key] = {"protocol": key, "dataset": dataset, "junk": junk, "metric": metric, "root": root,
                          "epochs": info.get("epochs"), "source": "evaluate"}
        info = {**info, "results": results, "evaluated": evaluated}
        atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def read_run_json(path: Path) -> dict[str, Any] | None:
    """A run.json that ``train`` wrote (it holds the run's config), else None (missing, unreadable, another file)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("config"), dict) else None
