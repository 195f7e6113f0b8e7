"""MkDocs hook: the command-line reference page, generated from the click commands themselves.

Each command's section is exactly what ``opreid-bench COMMAND --help`` prints (click's own formatting, 110 columns),
so the examples in the help keep their layout and the page cannot drift from the commands.
"""

from __future__ import annotations

from typing import Any

import click

MARKER = "<!-- cli-reference -->"


def _sections(group: click.Group, prefix: str) -> list[str]:
    out: list[str] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if cmd.hidden:
            continue
        path = f"{prefix} {name}"
        ctx = click.Context(cmd, info_name=path, max_content_width=110, terminal_width=110)
        out += [f"## `{path}`", "", "```text", cmd.get_help(ctx), "```", ""]
        if isinstance(cmd, click.Group):
            out += _sections(cmd, path)
    return out


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from opreid_bench.cli import cli

    ctx = click.Context(cli, info_name="opreid-bench", max_content_width=110, terminal_width=110)
    top = ["## `opreid-bench`", "", "```text", cli.get_help(ctx), "```", ""]
    return markdown.replace(MARKER, "\n".join(top + _sections(cli, "opreid-bench")))
