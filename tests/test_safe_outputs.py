"""Issue 10, part A: output folders are never lost, never half-written, never raced (markers, swap, locks)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from split_helpers import image_pool, tiny_protocol_yaml

from opreid_bench.cli import main as cli_main
from opreid_bench.errors import OutputError
from opreid_bench.outputs import MARKER, NEW_INFIX, lock_beside, output_folder, read_marker, write_marker


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("safe_pool")
    manifest, keypoints = image_pool(root)
    return manifest, keypoints, tiny_protocol_yaml(root / "tiny.yaml")


@pytest.fixture(scope="module")
def built(pool: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seed-0 split (with its marker and keypoint cache); tests copy it instead of building again."""
    out = tmp_path_factory.mktemp("built") / "split"
    with pytest.raises(SystemExit) as exc:
        cli_main(build_args(pool, out, 0))
    assert exc.value.code in (0, None)
    return out


def copy_of(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "split", symlinks=True)
    return tmp_path / "split"


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def build_args(pool: tuple[Path, Path, Path], out: Path, seed: int) -> list[str]:
    manifest, keypoints, protocol = pool
    # --min-missing-run 2: the generated pool hides knees and ankles, a run of two on each leg chain
    return ["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}", "--protocol", str(protocol),
            "--out", str(out), "--seed", str(seed), "--min-missing-run", "2", "--json"]


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file, leaving out our marker, lock and cache (not part of the result)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(".annotate") and p.name not in (MARKER, ".opreid.lock"):
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def test_a_foreign_folder_is_refused_and_left_untouched(pool, tmp_path, capsys) -> None:
    victim = tmp_path / "victim"
    (victim / "query").mkdir(parents=True)
    crop = victim / "query" / "0001_c1s1_000001_00.jpg"
    crop.write_bytes(b"the user's crop")
    code, _, err = cli(build_args(pool, victim, 0), capsys)
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert str(victim) in line and "not empty" in line
    assert crop.read_bytes() == b"the user's crop" and sorted(p.name for p in victim.rglob("*")) == ["0001_c1s1_000001_00.jpg", "query"]


def test_out_equal_to_around_or_inside_an_input_is_refused(pool, tmp_path, capsys) -> None:
    manifest, keypoints, _ = pool
    before = manifest.read_bytes()
    for out in (manifest.parent, manifest.parent / "images", manifest.parent / "images" / "split"):
        code, _, err = cli(build_args(pool, out, 0), capsys)
        line = err.strip().splitlines()[-1]
        assert code == 2 and "Traceback" not in err, err
        assert str(out) in line and str(manifest.parent) in line, line  # names both paths
    assert manifest.read_bytes() == before and not (manifest.parent / "images" / "split").exists()
    assert not (manifest.parent / "manifest.csv.tmp").exists() and not (manifest.parent / "query").exists()


def test_rerun_replaces_own_split_whole_and_keeps_files_it_did_not_write(pool, built, tmp_path, capsys) -> None:
    out = copy_of(built, tmp_path)
    marker = read_marker(out)
    assert marker is not None and marker["command"] == "build-split" and marker["complete"]
    (out / "notes.txt").write_text("mine")
    (out / "query" / "keep.txt").write_text("mine too")
    assert cli(build_args(pool, out, 1), capsys)[0] == 0  # its own output: no flag needed
    assert (out / "notes.txt").read_text() == "mine" and (out / "query" / "keep.txt").read_text() == "mine too"
    listed = set(pd.read_csv(out / "manifest.csv")["path"])
    assert {k for k in tree(out) if k.endswith(".jpg")} == listed  # no stale crop of seed 0
    assert not list(tmp_path.glob(f".split{NEW_INFIX}*"))


def test_a_failure_mid_build_leaves_the_previous_split_whole(pool, built, tmp_path, capsys, monkeypatch) -> None:
    out = copy_of(built, tmp_path)
    before = tree(out)
    import opreid_bench.splits.datacard as datacard

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # a Ctrl-C after every image of the new split is written

    monkeypatch.setattr(datacard, "write_data_card", die)
    code, _, _ = cli(build_args(pool, out, 1), capsys)
    assert code == 130
    assert tree(out) == before  # the old split, whole: not seed-1 images under a seed-0 manifest
    assert not list(tmp_path.glob(f".split{NEW_INFIX}*"))


def test_a_killed_runs_temporary_sibling_is_cleaned_only_when_it_is_ours(pool, built, tmp_path, capsys) -> None:
    out = copy_of(built, tmp_path)
    ours = tmp_path / f".split{NEW_INFIX}99999"  # as a SIGKILL-ed run leaves it
    (ours / "query").mkdir(parents=True)
    (ours / "query" / "half.jpg").write_bytes(b"x")
    write_marker(ours, command="build-split", kind="split", fingerprint="", complete=False)
    foreign = tmp_path / f".split{NEW_INFIX}12345"
    foreign.mkdir()
    (foreign / "user.txt").write_text("not ours")
    assert cli(build_args(pool, out, 0), capsys)[0] == 0
    assert not ours.exists() and (foreign / "user.txt").read_text() == "not ours"


def test_a_second_run_into_a_locked_folder_gets_one_line_naming_the_holder(pool, tmp_path, capsys) -> None:
    out = tmp_path / "split"
    with lock_beside(out, "build-split"):
        code, _, err = cli(build_args(pool, out, 0), capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "in use by another opreid-bench run" in line and f"pid {os.getpid()}" in line
    assert not out.exists() and not (tmp_path / ".split.opreid-lock").exists()  # gone with its holder
    lock_beside(out, "build-split").acquire().release()


def test_sample_builds_aside_and_refuses_foreign_folders(pool, tmp_path, capsys) -> None:
    manifest, keypoints, protocol = pool
    code, _, err = cli(["annotate", "--pool", str(manifest), "--out", str(tmp_path / "ann"), "--pose",
                        f"precomputed:{keypoints}", "--json"], capsys)
    assert code == 0, err
    labels = tmp_path / "labels.csv"
    assert cli(["classify", "--keypoints", str(tmp_path / "ann"), "--out", str(labels), "--min-missing-run", "2"],
               capsys)[0] == 0
    args = ["sample", "--labels", str(labels), "--pool", str(manifest), "--protocol", str(protocol), "--seed", "0",
            "--mask", "none"]
    mine = tmp_path / "mine"
    (mine / "bounding_box_test").mkdir(parents=True)
    (mine / "bounding_box_test" / "0002_c1s1_000002_00.jpg").write_bytes(b"user")
    code, _, err = cli([*args, "--out", str(mine)], capsys)
    assert code == 2 and str(mine) in err.strip().splitlines()[-1]
    assert (mine / "bounding_box_test" / "0002_c1s1_000002_00.jpg").read_bytes() == b"user"
    assert cli([*args, "--out", str(tmp_path / "s")], capsys)[0] == 0
    assert read_marker(tmp_path / "s")["command"] == "sample"
    before = sorted(p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*"))
    code, _, err = cli([*args, "--out", str(tmp_path / "s"), "--dry-run"], capsys)
    assert code == 2 and "--dry-run" in err  # a dry run never replaces a built split
    assert sorted(p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*")) == before
    assert cli([*args, "--out", str(tmp_path / "dry"), "--dry-run"], capsys)[0] == 0
    assert cli([*args, "--out", str(tmp_path / "dry"), "--dry-run"], capsys)[0] == 0  # own dry run: replaced
    # annotate's folder is not a split: sample refuses to write over it
    code, _, err = cli([*args, "--out", str(tmp_path / "ann")], capsys)
    assert code == 2 and "annotate" in err


def test_output_folder_refuses_a_file_and_marks_in_place_folders(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"), output_folder(tmp_path / "f", "synth"):
        pass
    with output_folder(tmp_path / "pool", "synth", fingerprint="abc") as folder:
        assert read_marker(folder)["complete"] is False
        (folder / "a.txt").write_text("a")
    assert read_marker(tmp_path / "pool")["complete"] is True
    assert json.loads((tmp_path / "pool" / MARKER).read_text())["fingerprint"] == "abc"
    with pytest.raises(OutputError, match="synth"), output_folder(tmp_path / "pool", "train", kind="run"):
        pass


def test_a_first_in_place_run_that_fails_before_writing_leaves_no_folder(tmp_path) -> None:
    with pytest.raises(RuntimeError), output_folder(tmp_path / "run", "train", kind="run"):
        raise RuntimeError("a wrong --pretrained, say")
    assert not (tmp_path / "run").exists()
    # nor when it made only empty folders (synth's images/ before the first crop)
    with pytest.raises(RuntimeError), output_folder(tmp_path / "pool", "synth", kind="pool") as folder:
        (folder / "images" / "a").mkdir(parents=True)
        raise RuntimeError("a drawing error")
    assert not (tmp_path / "pool").exists()
    # one that wrote something keeps it (a resume continues from it), marked incomplete
    with pytest.raises(RuntimeError), output_folder(tmp_path / "run", "train", kind="run") as folder:
        (folder / "metrics.jsonl").write_text("{}\n")
        raise RuntimeError("killed")
    assert read_marker(tmp_path / "run")["complete"] is False and (tmp_path / "run" / "metrics.jsonl").exists()
    # and a folder that existed before is never removed
    (tmp_path / "mine").mkdir()
    with pytest.raises(RuntimeError), output_folder(tmp_path / "mine", "train", kind="run"):
        raise RuntimeError("x")
    assert (tmp_path / "mine").is_dir()


def test_an_output_file_edited_by_hand_is_kept_on_a_rebuild(tmp_path) -> None:
    """A data card or CSV the command wrote and a person then edited is not replaced silently: the edited copy is
    carried into the new output as NAME.kept; files left as written are simply replaced."""
    out = tmp_path / "split"
    for round_ in range(3):
        with output_folder(out, "sample", kind="split", swap=True) as new:
            (new / "DATA_CARD.md").write_text(f"card {round_}\n")
            (new / "manifest.csv").write_text("path\n")
            (new / "query").mkdir()
            (new / "query" / "a.jpg").write_bytes(b"\xff\xd8crop")
        if round_ == 0:
            (out / "DATA_CARD.md").write_text("card 0\nmy notes on this split\n")
    assert (out / "DATA_CARD.md").read_text() == "card 2\n"
    assert (out / "DATA_CARD.md.kept").read_text() == "card 0\nmy notes on this split\n"
    assert not (out / "manifest.csv.kept").exists() and not (out / "DATA_CARD.md.kept.kept").exists()


def test_a_rebuild_that_fails_at_the_swap_loses_no_users_file(tmp_path, monkeypatch) -> None:
    import opreid_bench.outputs as outputs

    out = tmp_path / "split"
    with output_folder(out, "sample", kind="split", swap=True) as new:
        (new / "manifest.csv").write_text("path\n")
    (out / "notes.txt").write_text("mine")

    def broken(a, b):  # noqa: ANN001, ANN202
        raise OSError("the disk went away")

    monkeypatch.setattr(outputs, "_exchange", broken)
    with pytest.raises(OSError, match="the disk went away"), output_folder(out, "sample", kind="split", swap=True) as new:
        (new / "manifest.csv").write_text("path\nnew\n")
    assert (out / "notes.txt").read_text() == "mine" and (out / "manifest.csv").read_text() == "path\n"


def test_two_edits_of_one_output_file_are_both_kept(tmp_path) -> None:
    out = tmp_path / "split"
    for round_ in range(3):
        with output_folder(out, "sample", kind="split", swap=True) as new:
            (new / "DATA_CARD.md").write_text(f"card {round_}\n")
        if round_ < 2:
            (out / "DATA_CARD.md").write_text(f"edit {round_}\n")
    assert (out / "DATA_CARD.md.kept").read_text() == "edit 0\n"
    assert (out / "DATA_CARD.md.kept.1").read_text() == "edit 1\n"


def test_an_output_file_replaced_by_a_picture_is_refused(tmp_path) -> None:
    from opreid_bench.errors import OutputError

    out = tmp_path / "split"
    with output_folder(out, "sample", kind="split", swap=True) as new:
        (new / "DATA_CARD.md").write_text("card\n")
    (out / "DATA_CARD.md").write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    with pytest.raises(OutputError, match="DATA_CARD.md: not written by opreid-bench"), \
            output_folder(out, "sample", kind="split", swap=True):
        pass
