"""A command never overwrites a file it did not write: every file output (reports, feature files, result CSVs,
leaderboards, labels, review sheets) replaces only its own earlier output, and a typo in a filter is an error, not an
empty table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke, small_feature_file
from split_helpers import image_pool

from opreid_bench.evaluation.features import EXTRACT_WRITER

_cli = invoke


@pytest.fixture()
def features(tmp_path: Path) -> Path:
    return small_feature_file(tmp_path / "feats.h5")


def _refused(code: int, err: str, target: Path, before: bytes, command: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(target) in lines[0] and f"was not written by `opreid-bench {command}`" in lines[0], lines[0]
    assert target.read_bytes() == before


@pytest.mark.parametrize("command", ["evaluate", "search"])
def test_a_report_replaces_only_its_own_earlier_report(tmp_path: Path, features: Path, command: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes\n")
    code, _, err = _cli([command, "--features", str(features), "--out", str(notes)], capsys)
    _refused(code, err, notes, b"my notes\n", command)
    out = tmp_path / "report.out"
    for _ in range(2):  # the second run replaces the first run's file
        code, _, err = _cli([command, "--features", str(features), "--out", str(out)], capsys)
        assert code == 0, err
    if command == "evaluate":
        assert json.loads(out.read_text())["written_by"] == "opreid-bench evaluate"


def test_extract_replaces_only_a_feature_file_it_wrote(tmp_path: Path, features: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "dataset"
    root.mkdir()
    manifest = root / "manifest.csv"
    manifest.write_bytes(b"path,pid,camid\n")
    args = ["extract", "--weights", str(tmp_path / "missing.pt"), "--dataset", "manifest", "--root", str(root)]
    code, _, err = _cli([*args, "--out", str(manifest)], capsys)
    _refused(code, err, manifest, b"path,pid,camid\n", "extract")
    before = features.read_bytes()  # a feature file made by other means (no written_by) is the user's too
    code, _, err = _cli([*args, "--out", str(features)], capsys)
    _refused(code, err, features, before, "extract")
    import h5py

    with h5py.File(features, "a") as h5:
        h5.attrs["written_by"] = EXTRACT_WRITER
    code, _, err = _cli([*args, "--out", str(features)], capsys)
    assert code == 2 and "missing.pt" in err and "was not written by" not in err  # past the --out check


def test_leaderboard_out_and_plot_dir_replace_only_their_own(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "board.md"
    notes.write_bytes(b"# my leaderboard notes\n")
    code, _, err = _cli(["leaderboard", "--format", "markdown", "--out", str(notes)], capsys)
    _refused(code, err, notes, b"# my leaderboard notes\n", "leaderboard")
    board = tmp_path / "board.out"
    for fmt in ("csv", "html", "json", "markdown", "csv"):  # any format it wrote may be replaced by any other
        code, _, err = _cli(["leaderboard", "--dataset", "occluded_duke", "--format", fmt, "--out", str(board)],
                            capsys)
        assert code == 0, (fmt, err)
    mine = tmp_path / "plots"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"not a plot")
    code, _, err = _cli(["leaderboard", "--dataset", "occluded_duke", "--plot-dir", str(mine)], capsys)
    assert code == 2 and str(mine) in err and (mine / "holiday.png").read_bytes() == b"not a plot"
    plots = tmp_path / "board_plots"
    for _ in range(2):
        code, _, err = _cli(["leaderboard", "--dataset", "occluded_duke", "--plot-dir", str(plots)], capsys)
        assert code == 0, err
    assert (plots / "occluded_duke.png").is_file() or any(plots.glob("*.png"))


@pytest.mark.parametrize(("flag", "value", "names"), [("--dataset", "occluded_dukee", "occluded_duke"),
                                                      ("--table", "Table 9", "'Table 5'")])
def test_a_leaderboard_filter_nothing_has_is_an_error(flag: str, value: str, names: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["leaderboard", flag, value, "--json"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert value in err and names in err


def test_classify_keeps_the_users_files_and_the_verdicts_typed_into_its_template(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, keypoints = image_pool(tmp_path / "pool", n_ids=6, per_id=4)
    ann = tmp_path / "ann"
    code, _, err = _cli(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose",
                         f"precomputed:{keypoints}"], capsys)
    assert code == 0, err
    before = manifest.read_bytes()
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(manifest)], capsys)
    _refused(code, err, manifest, before, "classify")
    labels, sheet = tmp_path / "labels.csv", tmp_path / "review.html"
    template = tmp_path / "review.corrections.csv"
    notes = tmp_path / "notes.html"
    notes.write_bytes(b"<p>mine</p>")
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(labels), "--review", str(notes)], capsys)
    _refused(code, err, notes, b"<p>mine</p>", "classify")
    assert not labels.exists()  # refused before anything was written
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(labels), "--review", str(sheet)], capsys)
    assert code == 0, err
    # a reviewer types a verdict into the template; a second --review must not wipe it
    table = pd.read_csv(template, dtype=str, keep_default_na=False)
    flipped = table.loc[0, "source_path"]
    table.loc[0, "occluded"] = "holistic" if table.loc[0, "occluded"] == "occluded" else "occluded"
    table.to_csv(template, index=False)
    typed = template.read_bytes()
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(labels), "--review", str(sheet)], capsys)
    assert code == 2 and str(template) in err and "--corrections" in err and template.read_bytes() == typed
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(labels), "--corrections", str(labels)],
                        capsys)
    assert code == 2 and "would overwrite its own input" in err
    # passed back as --corrections, the verdict is a label, and the template may be written again
    code, _, err = _cli(["classify", "--keypoints", str(ann), "--out", str(labels), "--review", str(sheet),
                         "--corrections", str(template)], capsys)
    assert code == 0, err
    got = pd.read_csv(labels, keep_default_na=False).set_index("source_path")
    assert got.loc[flipped, "label_source"] == "hand"


def test_mask_review_sheet_replaces_only_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = image_pool(tmp_path / "pool", n_ids=2, per_id=2)
    notes = tmp_path / "faces.html"
    notes.write_bytes(b"<p>mine</p>")
    code, _, err = _cli(["mask", "--pool", str(manifest), "--out", str(tmp_path / "masked"), "--review-faces",
                         str(notes)], capsys)
    _refused(code, err, notes, b"<p>mine</p>", "mask")
    assert not (tmp_path / "masked").exists()


def test_a_failed_first_build_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = image_pool(tmp_path / "pool", n_ids=4, per_id=4)
    out = tmp_path / "split"
    code, _, err = _cli(["build-split", "--pool", str(manifest), "--pose", f"precomputed:{tmp_path / 'nope.csv'}",
                         "--protocol", "opreid-mini", "--out", str(out), "--seed", "0"], capsys)
    assert code == 2 and "nope.csv" in err
    assert not out.exists() and not any(p.name.startswith(".split") for p in tmp_path.iterdir())


def test_evaluate_features_refuses_options_it_would_ignore(features: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["evaluate", "--features", str(features), "--dataset", "folder", "--root", "own"], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "--dataset, --root would be ignored" in line
    code, _, err = _cli(["evaluate", "--features", str(features), "--option", "pattern=x"], capsys)
    assert code == 2 and "--option would be ignored" in err.strip().splitlines()[-1]


def test_a_foreign_run_json_is_refused_before_any_feature_is_computed(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"mine": true}\n')
    # the model file does not even exist: the run directory is checked first
    code, _, err = _cli(["evaluate", "--onnx", str(tmp_path / "model.onnx"), "--dataset", "market1501", "--root",
                         str(tmp_path), "--run-dir", str(run)], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and f"{run / 'run.json'}: exists and was not written by `opreid-bench evaluate`" in line
    assert (run / "run.json").read_text() == '{"mine": true}\n'


def test_evaluate_features_refuses_onnx_preprocessing_it_would_ignore(features: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["evaluate", "--features", str(features), "--input-size", "256x128", "--mean", "0.5,0.5,0.5"],
                        capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "--input-size, --mean set the preprocessing of an --onnx model" in line


def test_features_too_large_for_float32_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from opreid_bench.evaluation import FeatureSet, write_feature_file

    rng = np.random.default_rng(0)
    big = tmp_path / "big.h5"
    q = FeatureSet((rng.random((3, 8)) * 1e20).astype(np.float32), np.arange(3), np.zeros(3, int))
    g = FeatureSet((rng.random((6, 8)) * 1e20).astype(np.float32), np.arange(6) % 3, np.ones(6, int))
    write_feature_file(big, q, g)
    code, _, err = _cli(["evaluate", "--features", str(big)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {big}: gallery features are too large")
