"""The package installs like one: a wheel built from this checkout, installed into a fresh virtual environment, runs
the manual's quick tour (docs/getting-started.md) from an empty folder outside the checkout.

The fresh environment gets the wheel alone (``--no-deps``); the dependencies it imports are the test environment's
own, reached through a ``.pth`` line, so the test needs no network and no second copy of torch. The editable install
of the test environment is not active there (``.pth`` files inside an added folder are not processed), which the test
checks: ``opreid_bench`` must come from the fresh environment's site-packages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def tour_commands() -> list[str]:
    """The command lines of the quick tour and of "Every command once", as the manual prints them."""
    text = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
    lines: list[str] = []
    for heading in ("## Quick tour", "## Every command once"):
        block = re.search(r"```bash\n(.*?)```", text.split(heading, 1)[1], re.S)
        assert block, f"docs/getting-started.md: {heading!r} has no bash block"
        lines += [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines


def test_the_tour_runs_every_command() -> None:
    from opreid_bench.cli import cli

    used = {" ".join(line.split()[1:3]) if line.split()[1] == "datasets" else line.split()[1]
            for line in tour_commands() if len(line.split()) > 1}
    expected = {name for name, cmd in cli.commands.items() if not hasattr(cmd, "commands") and not cmd.hidden}
    expected |= {f"datasets {sub}" for sub in ("list", "verify")}
    assert expected <= used, sorted(expected - used)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(REPO)], check=True, cwd=root, timeout=300)
    wheel = next((root / "dist").glob("opreid_bench-*.whl"))
    env = root / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    return env


def test_wheel_carries_the_data_files(wheel_env: Path, tmp_path: Path) -> None:
    py = wheel_env / "bin" / "python"
    code = ("import opreid_bench, opreid_bench.resources as r; print(opreid_bench.__file__); "
            "print(*(r.resource_dir(n) for n in r.SHIPPED), sep='\\n')")
    lines = subprocess.check_output([str(py), "-c", code], text=True, cwd=tmp_path).splitlines()
    assert str(wheel_env) in lines[0] and str(REPO) not in lines[0]  # the wheel's copy, not the checkout
    for folder in lines[1:]:
        assert str(wheel_env) in folder and "_shipped" in folder
    shipped = Path(lines[1]).parent
    for rel in ("baselines/ours.yaml", "baselines/published/paper_tables.csv", "baselines/recipes/cpu_cuhk03.yaml",
                "protocols/opreid-mini.yaml", "protocols/evaluation/occluded_duke.yaml", "data_cards/opreid.md"):
        assert (shipped / rel).read_bytes() == (REPO / rel).read_bytes(), rel


def test_quick_tour_runs_from_an_empty_folder(wheel_env: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{wheel_env / 'bin'}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env.pop("OPREID_BASELINES_DIR", None)
    env.pop("OPREID_RECIPES_DIR", None)
    for line in tour_commands():
        assert line.startswith("opreid-bench "), line
        done = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "split" / "DATA_CARD.md").is_file() and (tmp_path / "runs" / "ours" / "model.pt").is_file()
    assert (tmp_path / "demo_tiny" / "demo_summary.json").is_file()
    assert (tmp_path / "vis" / "index.html").is_file() and (tmp_path / "ours.onnx").is_file()
    assert (tmp_path / "split2" / "manifest.csv").is_file() and (tmp_path / "ch" / "same").is_dir()
