"""Shared test fixtures: where ../shared lives and the skip rule for tests that need its real images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("OPREID_SHARED_DIR", REPO_ROOT.parent / "shared"))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("OPREID_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{path} is missing but OPREID_REQUIRE_SHARED_DATA=1 requires it")
    pytest.skip(f"{path} not available")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (CUHK03-labeled, Partial-REID); skips when absent unless CI requires it."""
    return _require(SHARED_DIR / "data")


@pytest.fixture(scope="session")
def partial_reid_root(shared_data: Path) -> Path:
    return _require(shared_data / "partial_reid")


@pytest.fixture(scope="session")
def cuhk03_root(shared_data: Path) -> Path:
    return _require(shared_data / "cuhk03_labeled")


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    return _require(SHARED_DIR / "weights" / "mobilenet_v2-b0353104.pth")


@pytest.fixture(scope="session")
def mtcnn_weights() -> Path:
    """MTCNN's weight folder (``make install`` puts facenet-pytorch's wheel in place for them); skips when absent
    unless CI requires it."""
    from opreid_bench.splits.mtcnn import weights_dir

    folder = weights_dir()
    if folder is not None:
        return folder
    if os.environ.get("OPREID_REQUIRE_SHARED_DATA") == "1":
        pytest.fail("MTCNN's weights are missing (pip install --no-deps facenet-pytorch==2.6.0) but "
                    "OPREID_REQUIRE_SHARED_DATA=1 requires them")
    pytest.skip("MTCNN's weights not installed")


@pytest.fixture(scope="session")
def yunet_installed() -> str:
    """The installed yuface version (YuNet, face masking's second small-face detector; the ``pose`` extra installs it
    on x86-64 Linux); skips when absent unless CI requires it."""
    import tomllib
    from packaging.requirements import Requirement

    from opreid_bench.splits.yunet import PACKAGE, version

    found = version()
    if found is not None:
        return found
    with (REPO_ROOT / "pyproject.toml").open("rb") as fh:
        pose = tomllib.load(fh)["project"]["optional-dependencies"]["pose"]
    marker = next(Requirement(r).marker for r in pose if Requirement(r).name == PACKAGE)
    wheel_here = marker is None or marker.evaluate()  # the pose extra installs it on this platform and Python
    if wheel_here and os.environ.get("OPREID_REQUIRE_SHARED_DATA") == "1":
        pytest.fail("YuNet is missing (pip install yuface==2023.5.1) but OPREID_REQUIRE_SHARED_DATA=1 requires it")
    pytest.skip("yuface not installed (or no wheel of it for this platform and Python)")


def pytest_configure(config: pytest.Config) -> None:
    """One torch intra-op thread for the whole suite: the tests use tiny tensors, where a second OpenMP thread only
    adds hand-off cost (and on a busy 2-core machine spin-waiting makes it many times slower)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(1)
