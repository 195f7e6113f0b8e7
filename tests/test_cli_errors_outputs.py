"""Issue 10, items 7-8: OSError on an output path is one line from the CLI's entry point (exit 2), and a command
refuses to write its output over its own input."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from cli_helpers import invoke, small_feature_file

_cli = invoke


@pytest.fixture()
def features(tmp_path: Path) -> Path:
    return small_feature_file(tmp_path / "feats.h5")


def test_out_under_an_existing_file(tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("mine\n")
    code, _, err = _cli(["search", "--features", str(features), "--out", str(blocker / "r.csv")], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {blocker}: already exists (a file where a folder is needed?)"]
    assert blocker.read_text() == "mine\n"


@pytest.mark.parametrize("flag", ["--out", "--plot-dir"])
def test_leaderboard_output_in_the_way_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 flag: str) -> None:
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("mine\n")
    target = blocker / "board.csv" if flag == "--out" else blocker
    code, _, err = _cli(["leaderboard", "--format", "csv", flag, str(target)], capsys)
    assert code == 2
    expected = (f"error: {blocker}: already exists (a file where a folder is needed?)" if flag == "--out" else
                f"error: {blocker}: exists and is not a folder; choose another --plot-dir")
    assert err.strip().splitlines()[-1] == expected
    assert blocker.read_text() == "mine\n"


def test_unwritable_output_folder(tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions cannot be tested as root, so the rename into the folder fails as it would on a read-only one."""
    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    out = tmp_path / "ro" / "r.csv"
    code, _, err = _cli(["search", "--features", str(features), "--out", str(out)], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == f"error: {out}: permission denied"
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "ro").iterdir())


def test_os_error_line_names_paths() -> None:
    from opreid_bench.cli import os_error_line

    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == "/x/y: no space left on device"
    assert os_error_line(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == \
        "/a -> /b: Invalid cross-device link"
    assert os_error_line(OSError("Unable to create file (name = '/x.h5')")) == "Unable to create file (name = '/x.h5')"


@pytest.mark.parametrize("command", ["evaluate", "search"])
def test_out_equal_to_features_is_refused(features: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    before = features.read_bytes()
    code, _, err = _cli([command, "--features", str(features), "--out", str(features)], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: --out {features} is the --features file {features}: it would "
                                        "overwrite its own input; choose another --out"]
    assert features.read_bytes() == before


def test_out_through_a_symlink_to_features_is_refused(tmp_path: Path, features: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "alias.h5").symlink_to(features)
    before = features.read_bytes()
    code, _, err = _cli(["evaluate", "--features", str(features), "--out", str(tmp_path / "alias.h5")], capsys)
    assert code == 2 and "overwrite its own input" in err
    assert features.read_bytes() == before
