"""The `opreid-bench` command line.

Every module in ``opreid_bench.cli.commands`` that defines a module-level ``COMMANDS`` list of click commands is
added to the group, so each command lives in its own small module. Command modules import heavy libraries (torch,
h5py, mediapipe) inside their functions so that ``opreid-bench --help`` stays fast.
"""

from __future__ import annotations

import errno
import importlib
import os
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


_ERRNO_TEXT = {
    errno.EEXIST: "already exists (a file where a folder is needed?)",
    errno.ENOTDIR: "a file is in the way (a folder was expected there)",
    errno.EISDIR: "is a folder (a file was expected)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.ENOENT: "no such file or folder",
}


def os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: the path(s) it names and what went wrong, without the Python exception type."""
    what = _ERRNO_TEXT.get(exc.errno or -1) or exc.strerror or " ".join(str(exc).split())
    if exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        return f"{where}: {what}"
    if exc.strerror is None or exc.errno is None:  # e.g. h5py and Pillow put the path in the message
        return " ".join(str(exc).split()) or type(exc).__name__
    return f"{what} ({' '.join(str(exc).split())})"


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the group and turns user errors into one line on stderr with exit code 2.

    User errors are the project's :class:`OpreidError` and any ``OSError`` (an unwritable or full output folder, a
    file where a folder should be): commands do not catch ``OSError`` themselves, it is handled here, once.
    """
    try:
        cli.main(args=argv, prog_name="opreid-bench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a mistyped option or value: one line too, naming where help is
        help_hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{help_hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OpreidError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the one place file-system faults (read-only, full disk, a file in the way) become a line
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
