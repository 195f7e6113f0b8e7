"""Build hook: the wheel carries the top-level data folders (``baselines/``, ``protocols/``, ``data_cards/``) inside
the package as ``opreid_bench/_shipped/``, where :mod:`opreid_bench.resources` finds them. Everything else about the
package is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("baselines", "protocols", "data_cards")
SUFFIXES = {".yaml", ".yml", ".csv", ".md"}


class BuildWithData(build_py):
    """build_py that also copies the data folders into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "opreid_bench" / "_shipped"
        for name in SHIPPED:
            for src in sorted((ROOT / name).rglob("*")):
                if src.is_file() and src.suffix in SUFFIXES:
                    dst = target / src.relative_to(ROOT)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildWithData})
