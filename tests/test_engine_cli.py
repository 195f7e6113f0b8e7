"""`opreid-bench train / extract / evaluate --weights` end to end on a generated CUHK03-style tree (real loader)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from opreid_bench.cli import cli


def _tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, ids in (("train", 6), ("val", 3)):
        folder = root / "cuhk03_labeled" / split
        folder.mkdir(parents=True)
        for pid in range(ids):
            base = rng.integers(0, 256, size=(64, 32, 3))
            for kk in (0, 1, 5, 6):  # 00-04 camera A, 05-09 camera B
                img = np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{pid:04d}_{kk:02d}.jpg")
    return root


def _run(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_extract_evaluate(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    run = tmp_path / "run"
    summary = _run(["train", "--method", "ours", "--dataset", "cuhk03_labeled", "--root", str(root), "--out", str(run),
                    "--backbone", "mobilenetv2", "--epochs", "1", "--height", "64", "--width", "32", "--batch-p", "3",
                    "--batch-k", "4", "--set", "optim.max_iters_per_epoch=1", "--json"])
    assert summary["epochs"] == 1 and set(summary["metrics"]) >= {"rank1", "mAP"}
    info = json.loads((run / "run.json").read_text())
    assert info["results"]["cuhk03_labeled"]["mAP"] == summary["metrics"]["mAP"]

    feats = tmp_path / "feats.h5"
    written = _run(["extract", "--weights", str(run / "model.pt"), "--dataset", "cuhk03_labeled", "--root", str(root),
                    "--out", str(feats), "--json"])
    assert written["query"] == 6 and written["gallery"] == 6 and written["junk"] == "none"
    by_weights = _run(["evaluate", "--method", "ours", "--weights", str(run / "model.pt"), "--dataset",
                       "cuhk03_labeled", "--root", str(root), "--json"])
    by_file = _run(["evaluate", "--features", str(feats), "--json"])
    assert by_weights == by_file  # same keys, same numbers (the file carries junk rule and metric)
    assert by_weights["mAP"] == pytest.approx(summary["metrics"]["mAP"])

    wrong = CliRunner().invoke(cli, ["evaluate", "--method", "bot", "--weights", str(run / "model.pt"), "--dataset",
                                     "cuhk03_labeled", "--root", str(root)])
    assert wrong.exit_code != 0 and "method 'ours', not 'bot'" in str(wrong.exception)
    # --option reaches the dataset loader (one it does not know is named)
    opt = CliRunner().invoke(cli, ["evaluate", "--weights", str(run / "model.pt"), "--dataset", "cuhk03_labeled",
                                   "--root", str(root), "--option", "nope=1"])
    assert opt.exit_code != 0 and "dataset cuhk03_labeled: unknown option(s) nope" in str(opt.exception)

    # The loader's note on the protocol it read is printed where the numbers are: Partial-REID's default occluded
    # probes are no published Partial-REID figure.
    rng = np.random.default_rng(1)
    for folder in ("occluded_body_images", "partial_body_images", "whole_body_images"):
        (root / "Partial_REID" / folder).mkdir(parents=True)
        for pid in (1, 2):
            img = rng.integers(0, 256, size=(64, 32, 3)).astype(np.uint8)
            Image.fromarray(img).save(root / "Partial_REID" / folder / f"{pid:03d}_001.jpg")
    note = "note (partial_reid): query: the occluded probes (query_folder=occluded, the default)"
    for command in ("evaluate", "extract"):
        for options in ([], ["--option", "query_folder=partial"]):
            out = ["--out", str(tmp_path / f"partial{len(options)}.h5")] if command == "extract" else []
            res = CliRunner().invoke(cli, [command, *out, "--weights", str(run / "model.pt"), "--dataset",
                                           "partial_reid", "--root", str(root), *options, "--json"],
                                     catch_exceptions=False)
            assert res.exit_code == 0 and json.loads(res.stdout)  # stdout still holds one JSON object
            assert (note in res.stderr) == (not options)


def test_train_errors_are_one_line(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    res = CliRunner().invoke(cli, ["train", "--method", "nope", "--dataset", "cuhk03_labeled", "--root", str(root),
                                   "--out", str(tmp_path / "r")])
    assert "unknown method 'nope'" in str(res.exception)
    res = CliRunner().invoke(cli, ["train", "--method", "bot", "--dataset", "cuhk03_labeled", "--root", str(root),
                                   "--out", str(tmp_path / "r"), "--pretrained", str(tmp_path / "missing.pth")])
    assert "missing.pth" in str(res.exception) and "not found" in str(res.exception)
    res = CliRunner().invoke(cli, ["train", "--method", "bot", "--dataset", "cuhk03_labeled", "--root", str(root),
                                   "--out", str(tmp_path / "r"), "--set", "model.dnll=true"])
    assert "unknown key 'model.dnll'" in str(res.exception)


@pytest.mark.slow
def test_a_run_stopped_by_the_time_limit_says_how_to_continue(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--method", "bot", "--dataset", "cuhk03_labeled", "--root", str(root),
                                      "--out", str(run), "--backbone", "resnet_mini", "--epochs", "3", "--height", "32",
                                      "--width", "16", "--batch-p", "3", "--batch-k", "4", "--set",
                                      "optim.max_iters_per_epoch=1", "--set", "eval.at_end=false",
                                      "--time-limit", "0.00001", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["stopped_early"] is True
    assert f"stopped by --time-limit after 1 epoch(s): `opreid-bench train --resume --out {run}" in result.stderr


@pytest.mark.parametrize("finished_epoch", [False, True])
def test_ctrl_c_says_whether_there_is_an_epoch_to_resume(tmp_path: Path, monkeypatch, finished_epoch: bool) -> None:
    import opreid_bench.engine.train as engine_train

    root = _tree(tmp_path / "data")
    run = tmp_path / "run"

    def interrupted(cfg, splits, out, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if finished_epoch:
            (Path(out) / "checkpoints").mkdir(parents=True)
            (Path(out) / "checkpoints" / "last.pt").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_train, "train", interrupted)
    result = CliRunner().invoke(cli, ["train", "--method", "bot", "--dataset", "cuhk03_labeled", "--root", str(root),
                                      "--out", str(run), "--backbone", "resnet_mini"])
    if finished_epoch:
        assert f"stopped: `opreid-bench train --resume --out {run}" in result.stderr
    else:
        assert "stopped before the first epoch finished: there is nothing to resume" in result.stderr
        assert "--resume" not in result.stderr


def test_evaluate_records_another_datasets_result_in_the_runs_own_run_json(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    run = tmp_path / "run"
    base = ["--dataset", "cuhk03_labeled", "--root", str(root)]
    trained = CliRunner().invoke(cli, ["train", "--method", "bot", *base, "--out", str(run), "--backbone", "resnet_mini",
                                       "--epochs", "1", "--height", "32", "--width", "16", "--batch-p", "3",
                                       "--batch-k", "4", "--set", "optim.max_iters_per_epoch=1", "--set",
                                       "eval.at_end=false"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    assert json.loads((run / "run.json").read_text())["results"] == {}
    evaluate = ["evaluate", "--weights", str(run / "model.pt"), *base]
    for extra, message in ((["--run-dir", str(tmp_path)], "the results go into the checkpoint's own run folder"),
                           (["--run-dir", str(run), "--metric", "cosine"], "leave out --metric and --junk"),
                           (["--run-dir", str(run), "--rerank"], "without --rerank")):
        res = CliRunner().invoke(cli, [*evaluate, *extra])
        assert res.exit_code != 0 and message in str(res.exception), (extra, res.output)
    res = CliRunner().invoke(cli, [*evaluate, "--run-dir", str(run), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout.strip().splitlines()[-1])
    info = json.loads((run / "run.json").read_text())
    assert info["results"]["cuhk03_labeled"]["mAP"] == pytest.approx(printed["mAP"])
    assert info["evaluated"]["cuhk03_labeled"]["source"] == "evaluate" and info["config"]["method"] == "bot"
    board = CliRunner().invoke(cli, ["leaderboard", "--runs", str(run), "--no-published", "--json"],
                               catch_exceptions=False)
    rows = json.loads(board.stdout)
    assert [(r["method"], r["dataset"]) for r in rows] == [("bot", "cuhk03_labeled")]
    assert rows[0]["mAP"] == pytest.approx(100 * printed["mAP"], abs=1e-3)
    # a --resume of the finished run trains nothing (same weights): what evaluate recorded stays
    resumed = CliRunner().invoke(cli, ["train", "--resume", *base, "--out", str(run)], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "run.json").read_text()) == info  # results, provenance, hardware and minutes alike
    # one more epoch: new weights, so what was measured with the old ones is gone
    longer = CliRunner().invoke(cli, ["train", "--resume", *base, "--out", str(run), "--epochs", "2"],
                                catch_exceptions=False)
    assert longer.exit_code == 0, longer.output
    after = json.loads((run / "run.json").read_text())
    assert after["epochs"] == 2 and after["results"] == {} and "evaluated" not in after
