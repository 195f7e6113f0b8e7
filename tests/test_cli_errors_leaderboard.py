"""Issue 10, item 7: a corrupt `results.json` or `run.json` under `leaderboard --runs` is one line naming the file,
exit 2 -- never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from opreid_bench.cli import main
from opreid_bench.leaderboard import load_runs


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(("text", "message"), [
    ("{bad", "unreadable results file"),
    ("", "unreadable results file"),
    ("[1, 2]", r"a results file must hold a JSON object \(method -> results\), got list"),
    ('{"meta": {"units": "fraction"}, "ours": {"partial_reid": {"rank1": "x"}}}',
     r"ours\.partial_reid\.rank1 must be a finite number, got 'x'"),
    ('{"meta": {"units": "fraction"}, "ours": {"partial_reid": {"rank1": 0.5, "mAP": [1]}}}',
     r"ours\.partial_reid\.mAP must be a finite number"),
    ('{"meta": {"units": "fraction"}, "ours": {"partial_reid": {"rank1": Infinity}}}',
     "must be a finite number, got inf"),
    ('{"meta": {"units": []}, "ours": {"partial_reid": {"rank1": 0.5}}}', r"meta\.units=\[\] is not a metrics unit"),
])
def test_corrupt_results_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    (tmp_path / "results.json").write_text(text, encoding="utf-8")
    code, _, err = _cli(["leaderboard", "--runs", str(tmp_path), "--no-published"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'results.json'}: ")
    assert re.search(message, lines[0])


def test_results_json_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_bytes(b'{"ours": "\xff"}')
    with pytest.raises(Exception, match="unreadable results file") as exc:
        load_runs([tmp_path])
    assert exc.type.__name__ == "DataError"


@pytest.mark.parametrize(("info", "message"), [
    ([1], "a run file must hold a JSON object"),
    ({"method": "ours", "metrics_unit": "fraction", "results": [1]}, "'results' must map dataset -> metrics"),
    ({"method": "ours", "metrics_unit": "fraction", "results": {"partial_reid": 0.5}},
     r"results\.partial_reid must map metric -> value"),
    ({"method": "ours", "metrics_unit": "fraction", "results": {"partial_reid": {"rank1": "high"}}},
     r"results\.partial_reid\.rank1 must be"),
])
def test_corrupt_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], info: object, message: str) -> None:
    (tmp_path / "run.json").write_text(json.dumps(info), encoding="utf-8")
    code, _, err = _cli(["leaderboard", "--runs", str(tmp_path), "--no-published"], capsys)
    assert code == 2
    assert re.search(message, err.strip().splitlines()[-1])


def test_nan_metric_is_shown_as_not_measured(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"meta": {"units": "fraction"}, '
                                           '"ours": {"partial_reid": {"rank1": 0.5, "mAP": NaN}}}')
    rows = load_runs([tmp_path])
    assert [(r.method, r.rank1, r.mAP) for r in rows] == [("ours", 50.0, None)]
