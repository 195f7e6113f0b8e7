"""The `opreid-bench` command line.

Every module in ``opreid_bench.cli.commands`` that defines a module-level ``COMMANDS`` list of click commands is
added to the group, so each command lives in its own small module. Command modules import heavy libraries (torch,
h5py, mediapipe) inside their functions so that ``opreid-bench --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from opreid_bench import __version__
from opreid_bench.errors import OpreidError


def _load_commands(group: click.Group) -> None:
    from opreid_bench.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            group.add_command(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="opreid-bench")
def cli() -> None:
    """opreid-bench: occluded person re-identification toolkit and benchmark.

    \b
    Examples:
      opreid-bench datasets list
      opreid-bench evaluate --features feats.h5 --json
    """


_load_commands(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the group and turns user errors into one line on stderr with exit code 2."""
    try:
        cli.main(args=argv, prog_name="opreid-bench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OpreidError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
