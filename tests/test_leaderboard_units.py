"""Leaderboard figures say what unit they were stored in: read from the file, never guessed from a value's size.

The old rule (x <= 1 means a fraction) turned a near-chance run stored in percent (0.8 %) into 80 %. ``run.json``
now names its unit (``metrics_unit``), and so does ``results.json`` (``meta.units``); a file that names none is
read as fractions only when it is the old ``opreid-bench train`` output (its ``config`` section), else refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opreid_bench.engine.config import load_method_config
from opreid_bench.engine.train import write_run_json
from opreid_bench.errors import DataError
from opreid_bench.leaderboard import load_runs


def _run(tmp_path: Path, name: str, **fields: object) -> Path:
    run = tmp_path / name
    run.mkdir()
    info = {"method": "ours", "results": {"partial_reid": {"rank1": 0.8, "mAP": 0.5}}, **fields}
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_near_chance_run_in_percent_stays_percent(tmp_path: Path) -> None:
    (row,) = load_runs([_run(tmp_path, "pct", metrics_unit="percent")])
    assert (row.rank1, row.mAP) == (0.8, 0.5)  # 0.8 %, not 80 %
    (row,) = load_runs([_run(tmp_path, "frac", metrics_unit="fraction")])
    assert (row.rank1, row.mAP) == (80.0, 50.0)


def test_results_json_unit_from_meta(tmp_path: Path) -> None:
    d = tmp_path / "sweep"
    d.mkdir()
    entry = {"partial_reid": {"rank1": 0.8, "mAP": 0.6}, "run_dir": "r"}
    (d / "results.json").write_text(json.dumps({"ours": entry, "meta": {"units": "percent", "epochs": 3}}))
    (row,) = load_runs([d])
    assert (row.method, row.rank1, row.mAP) == ("ours", 0.8, 0.6)
    (d / "results.json").write_text(json.dumps({"ours": entry, "meta": {"units": "fraction"}}))
    assert load_runs([d])[0].rank1 == 80.0
    (d / "results.json").write_text(json.dumps({"ours": entry}))
    with pytest.raises(DataError, match=r'results\.json: no "meta": \{"units"'):
        load_runs([d])


def test_train_writes_the_unit_and_the_leaderboard_reads_it(tmp_path: Path) -> None:
    cfg = load_method_config("bot")
    run = tmp_path / "run"
    run.mkdir()
    write_run_json(run / "run.json", cfg, "partial_reid", 1, 0.1, {"rank1": 0.008, "mAP": 0.004}, "cpu")
    assert json.loads((run / "run.json").read_text())["metrics_unit"] == "fraction"
    (row,) = load_runs([run])
    assert (row.rank1, row.mAP) == (0.8, 0.4)


def test_legacy_train_output_is_fractions_anything_else_without_a_unit_is_refused(tmp_path: Path) -> None:
    # what opreid-bench train wrote before metrics_unit existed: its config section marks it (fractions)
    legacy = _run(tmp_path, "legacy", config=load_method_config("bot").to_dict())
    assert load_runs([legacy])[0].rank1 == 80.0
    bare = _run(tmp_path, "bare")
    with pytest.raises(DataError, match=r'run\.json: no "metrics_unit"'):
        load_runs([bare])
    out = subprocess.run([sys.executable, "-m", "opreid_bench", "leaderboard", "--runs", str(bare)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "metrics_unit" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("fields", "message"), [
    ({"metrics_unit": "percentage"}, r"metrics_unit='percentage' is not a metrics unit"),
    ({"metrics_unit": "fraction", "results": {"x": {"rank1": 80.0}}}, r"results\.x\.rank1=80\.0 is outside \[0, 1\]"),
    ({"metrics_unit": "percent", "results": {"x": {"rank1": 101.0}}}, r"outside \[0, 100\]"),
])
def test_bad_units_and_values_out_of_their_range(tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_runs([_run(tmp_path, "bad", **fields)])
