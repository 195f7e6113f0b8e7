from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from opreid_bench.leaderboard import load_published, load_runs
from opreid_bench.leaderboard import render as R
from opreid_bench.leaderboard.rows import PARTIAL_PROBES, PUBLISHED_DIR


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opreid_bench", "leaderboard", *args], capture_output=True, text=True)


def test_published_rows_match_the_csv_exactly() -> None:
    rows = load_published()
    by_key = {(r.table, r.method, r.dataset): r for r in rows}
    with (PUBLISHED_DIR / "paper_tables.csv").open() as f:
        recs = list(csv.DictReader(f))
    assert len(recs) == 170
    for rec in recs:
        assert getattr(by_key[(rec["table"], rec["method"], rec["dataset"])], rec["metric"]) == float(rec["value"])
    # Spot checks against the paper (Table 3, 4, 5).
    assert (by_key[("Table 3", "Ours", "occluded_reid")].rank1, by_key[("Table 3", "Ours", "occluded_reid")].mAP) == (
        78.5, 72.9)
    assert by_key[("Table 4", "Baseline", "dukemtmc")].mAP == 79.8
    assert by_key[("Table 5", "+CBE+BED", "opreid")].rank1 == 64.1
    assert by_key[("Table 3", "FD-GAN", "occluded_duke")].mAP is None
    assert all(r.citation for r in rows)


def test_runs_join_as_measured_rows(tmp_path: Path) -> None:
    run = tmp_path / "run1"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "method": "ours", "backbone": "mobilenetv2", "height": 128, "width": 64, "epochs": 3, "hardware": "cpu",
        "metrics_unit": "fraction", "results": {"occluded_duke": {"rank1": 0.5, "mAP": 0.25}}}))
    rows = load_runs([run])
    assert len(rows) == 1 and rows[0].rank1 == 50.0 and rows[0].mAP == 25.0 and rows[0].source == str(run)
    out = _cli("--runs", str(run), "--dataset", "occluded_duke", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"method", "dataset", "rank1", "mAP", "source"} <= set(data[0])
    measured = [d for d in data if d["source"] != "published"]
    assert measured == [pytest.approx(measured[0])] and measured[0]["mAP"] == 25.0


def test_missing_run_dir_is_one_line_error(tmp_path: Path) -> None:
    out = _cli("--runs", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "nope" in out.stderr and "Traceback" not in out.stderr


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._cls: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        cls = dict(attrs).get("class", "")
        self._cls = cls.split()[-1] if tag == "td" and "num" in cls else None

    def handle_data(self, data: str) -> None:
        if self._cls:
            self.values.append((self._cls, data))
            self._cls = None


def test_html_numbers_equal_the_data(tmp_path: Path) -> None:
    rows = R.sort_rows(load_published())
    page = R.to_html(rows)
    parser = _Cells()
    parser.feed(page)
    expected = []
    by_ds: dict[str, list] = {}
    for r in rows:
        by_ds.setdefault(r.dataset, []).append(r)
    for ds_rows in by_ds.values():
        for r in ds_rows:
            expected += [("rank1", R._fmt(r.rank1)), ("map", R._fmt(r.mAP))]
    assert parser.values == expected
    assert "<script" not in page and "src=" not in page and "href=" not in page  # self-contained


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed")
    page = tmp_path / "lb.html"
    page.write_text(R.to_html(R.sort_rows(load_published())))
    shot = tmp_path / "shot.png"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert "Occluded-Duke" in dom.stdout and "78.5" in dom.stdout
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=900,700",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000


def test_plots_written(tmp_path: Path) -> None:
    paths = R.plot_bars([r for r in load_published() if r.dataset == "opreid"], tmp_path)
    assert [p.name for p in paths] == ["leaderboard_opreid.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_later_work_rows_carry_their_sources() -> None:
    from opreid_bench.leaderboard.rows import LATER_WORK_TABLE, load_later_work

    rows = load_later_work()
    methods = {r.method.split(" ")[0] for r in rows}
    assert len(methods) >= 10  # at least ten published methods of 2021-2025
    for r in rows:
        assert r.details["reference"].strip() and r.details["year"] and r.details["backbone"], r.method
        assert 2021 <= int(r.details["year"]) <= 2025 and r.table == LATER_WORK_TABLE
    pfd = [r for r in rows if r.method.startswith("PFD*") and r.dataset == "occluded_duke"]
    assert [(r.rank1, r.mAP) for r in pfd] == [(69.5, 61.8)]  # the authors' README, AAAI 2022
    assert {r.dataset for r in rows} >= {"occluded_duke", "occluded_reid", PARTIAL_PROBES, "market1501", "dukemtmc"}


def test_later_work_without_a_source_is_refused(tmp_path: Path) -> None:
    from opreid_bench.errors import DataError
    from opreid_bench.leaderboard.rows import LATER_WORK_CSV, load_later_work

    header = "method,year,venue,citation,backbone,pretraining,dataset,protocol,metric,value,source\n"
    (tmp_path / LATER_WORK_CSV).write_text(header + "X,2022,CVPR,x2022,R50,IN-1k,occluded_duke,,mAP,50.0,\n")
    with pytest.raises(DataError, match=r":2: X on occluded_duke has no source"):
        load_later_work(tmp_path)


def test_occluded_duke_sorted_by_map_with_best_and_measured_marked(tmp_path: Path) -> None:
    run = tmp_path / "mine"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"method": "mine", "metrics_unit": "percent",
                                              "results": {"occluded_duke": {"rank1": 70.0, "mAP": 60.0}}}))
    out = _cli("--runs", str(run), "--dataset", "occluded_duke", "--format", "markdown")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("| Occluded-Duke")]
    maps = [float(line.split("|")[4]) for line in lines if line.split("|")[4].strip() != "-"]
    assert maps == sorted(maps, reverse=True) and len(lines) > 20
    assert sum("★ best published" in line for line in lines) == 1 and "★" in lines[0]
    mine = [line for line in lines if "▶ measured" in line]
    assert len(mine) == 1 and "| mine |" in mine[0]
    assert any("Ours" in line and "57.2" in line for line in lines)  # the paper's row stays


def test_a_run_on_another_split_of_a_published_dataset_says_so(tmp_path: Path) -> None:
    from opreid_bench.leaderboard.rows import other_split_note

    for name, queries in (("tiny", (3, 1)), ("full", (2_210, 0))):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(json.dumps({
            "method": "ours", "metrics_unit": "fraction",
            "results": {"occluded_duke": {"rank1": 0.5, "mAP": 0.25, "num_valid_queries": queries[0],
                                          "num_skipped_queries": queries[1]}}}))
    tiny, full = load_runs([tmp_path / "tiny"])[0], load_runs([tmp_path / "full"])[0]
    assert tiny.details["other_split"] == "another split: 4 queries, the published one has 2,210"
    assert "other_split" not in full.details  # Occluded-Duke's own 2,210 queries
    assert "(another split: 4 queries, the published one has 2,210)" in R._source_label(tiny)
    assert other_split_note("my_folder", {"num_valid_queries": 4, "num_skipped_queries": 0}) is None  # nothing known
    assert other_split_note("occluded_duke", {"rank1": 0.5}) is None  # counts not recorded
    out = _cli("--runs", str(tmp_path / "tiny"), "--dataset", "occluded_duke")
    assert out.returncode == 0 and "another split: 4 queries" in out.stdout


def test_published_partial_reid_numbers_sit_with_the_partial_probes_not_the_occluded_ones(tmp_path: Path) -> None:
    """The published Partial-REID numbers read the partial-body probes; the loader's default reads the occluded ones.
    A run on the default must not be ranked against them, and a run with query_folder=partial (or reproduce_cpu.py's
    partial_reid_partial) must be."""
    from opreid_bench.engine.extract import result_key
    from opreid_bench.leaderboard.rows import load_later_work, select_rows

    assert result_key("partial_reid", "query_folder=partial") == PARTIAL_PROBES
    published = [r for r in load_later_work() if r.dataset.startswith("partial_reid")]
    assert published and {r.dataset for r in published} == {PARTIAL_PROBES}
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"method": "mine", "metrics_unit": "fraction", "results": {
        "partial_reid": {"rank1": 0.5, "mAP": 0.4}, PARTIAL_PROBES: {"rank1": 0.6, "mAP": 0.5}}}))
    rows = select_rows(load_runs([tmp_path / "runs"]) + published, datasets=["partial_reid"])
    by_set = {r.dataset: sorted(x.source == "published" for x in rows if x.dataset == r.dataset) for r in rows}
    assert by_set["partial_reid"] == [False]  # the occluded probes: the run alone
    assert by_set[PARTIAL_PROBES] == [False] + [True] * len(published)


def test_an_ablation_a_run_from_scratch_and_capped_epochs_do_not_read_as_the_method(tmp_path: Path) -> None:
    from opreid_bench.engine.config import load_method_config

    runs = tmp_path / "runs"
    for name, sets in (("full", []), ("no_dnl", ["model.dnl=false", "model.non_local=true"]),
                       ("capped", ["optim.max_iters_per_epoch=3"])):
        (runs / name).mkdir(parents=True)
        config = load_method_config("ours", sets).to_dict()
        (runs / name / "run.json").write_text(json.dumps({"method": "ours", "config": config, "metrics_unit": "fraction",
                                                          "results": {"cuhk03_labeled": {"rank1": 0.5, "mAP": 0.4}}}))
    rows = {Path(r.source).name: r for r in load_runs([runs])}
    assert rows["full"].method == "ours" and "changed" not in rows["full"].details
    assert rows["full"].details["init"] == "random"
    assert rows["no_dnl"].method == "ours*" and "model.dnl: False" in rows["no_dnl"].details["changed"]
    assert rows["capped"].method == "ours" and rows["capped"].details["iterations"] == "at most 3 per epoch"


def test_runs_without_results_are_named_not_silently_left_out(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from opreid_bench.cli import main

    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "run.json").write_text(json.dumps({"method": "bot", "results": {}}))
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "--runs", str(tmp_path / "runs"), "--no-published", "--json"])
    assert exc.value.code == 0
    err = capsys.readouterr().err
    assert "note: 1 run(s) hold no evaluation results and give no row" in err and "runs/a/run.json" in err


def test_a_measured_run_shows_the_digit_evaluate_shows(tmp_path: Path) -> None:
    """mAP 0.5105441 is 51.1 at one decimal (the demo's table); rounding to two decimals first (51.05) would print
    51.0 here, and 0.5134996 would print 51.4 after 51.35."""
    from opreid_bench.leaderboard import render as R

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"method": "mine", "metrics_unit": "fraction", "results": {
        "occluded_duke": {"rank1": 0.5134996, "mAP": 0.5105441247842963}}}))
    rows = load_runs([run])
    assert "| mine | 51.3 | 51.1 |" in R.to_markdown(rows)
