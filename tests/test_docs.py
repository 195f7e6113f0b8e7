"""The manual: README length, no development diary anywhere, the API reference's examples run, every public name and
command documented, and the MkDocs site builds strictly and opens in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import opreid_bench

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

# Wording that tells who worked on the software when, rather than what it does and what was measured.
DIARY = re.compile(
    r"(?i:\b(?:(?:this|last|previous|next|earlier|later|a new|another) session|sessions? \d+"
    r"|(?:we|I) (?:tried|added|changed|decided|found|chose|measured)|not adopted|leads? for (?:later|next)"
    r"|used to (?:report|be|give|run)|the previous (?:default|version|main|recipe)|previous `?main`?"
    r"|for the first time for this table|round of development|no longer a held-out|now overrides"
    r"|chosen after seeing)\b)|\b(?:TODO|FIXME)\b")
DIARY_ROOTS = ("README.md", "CHANGELOG.md", "CONTRIBUTING.md", "docs", "opreid_bench", "benchmarks", "baselines", "protocols",
               "data_cards", "tests")


def _texts() -> list[Path]:
    out = []
    for root in DIARY_ROOTS:
        p = REPO / root
        out += [p] if p.is_file() else [f for f in p.rglob("*") if f.suffix in {".md", ".py", ".yaml", ".yml"}]
    return [p for p in out if p.resolve() != Path(__file__).resolve()]


def test_readme_is_short() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_no_development_diary() -> None:
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()[:100]}" for p in _texts()
            for i, line in enumerate(p.read_text(encoding="utf-8", errors="ignore").splitlines(), 1)
            if DIARY.search(line)]
    assert not hits, "\n".join(hits)


def test_diary_pattern_catches_diary_wording() -> None:
    # samples of the wording the pattern must flag, joined from pieces so that this file does not itself read as
    # a development diary to a plain text search
    flagged = [" ".join(words) for words in (("Measured in this", "session."), ("a lead for next", "time"),
                                             ("the previous", "default left 9"), ("TO" + "DO:", "tune"),
                                             ("we tried", "a larger margin"))]
    for text in flagged:
        assert DIARY.search(text), text
    for text in ("an onnxruntime session", "todo = {}", "the occluded session folder"):
        assert not DIARY.search(text), text


def test_every_public_name_is_in_the_api_reference() -> None:
    api = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: ([\w.]+)$", api, re.M))
    for name in opreid_bench.__all__:
        if name == "__version__":
            continue
        module, attr = opreid_bench._API[name]
        assert f"{module}.{attr}" in documented, name
        assert f"ob.{name}" in api, f"{name} has no example on the API page"


@pytest.mark.slow
def test_api_examples_run(tmp_path: Path) -> None:
    api = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", api, re.S)
    assert len(blocks) >= 4
    script = tmp_path / "examples.py"
    script.write_text("\n".join(f"exec(compile({b!r}, 'api.md example {i}', 'exec'), {{}})"
                                for i, b in enumerate(blocks)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_command_has_an_example_in_its_help() -> None:
    from opreid_bench.cli import cli

    def walk(group, prefix=""):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, f"{prefix}{name} ")
            elif not cmd.hidden:
                yield f"{prefix}{name}", cmd

    missing = [name for name, cmd in walk(cli) if "opreid-bench" not in (cmd.help or "")]
    assert not missing, f"commands without an example in --help: {missing}"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_site_builds_strictly_and_opens_in_chromium(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                                                                            "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    home, api = site / "index.html", site / "reference" / "api.html"  # the offline plugin: no directory URLs
    assert home.is_file() and api.is_file()
    page = api.read_text(encoding="utf-8")
    assert "evaluate_features" in page and "fonts.googleapis" not in page
    cli_page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    from opreid_bench.cli import cli

    for name in cli.commands:  # every command's own --help, examples included
        assert f"opreid-bench {name}" in cli_page, name
    assert "Examples:" in cli_page and "Sentinel" not in cli_page
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed")
    for target, expect in ((home, "Where to start"), (api, "evaluate_distmat")):
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                              target.as_uri()], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-500:]
        assert expect in dom.stdout


@pytest.mark.slow
def test_feature_file_route_of_the_tutorial_runs(tmp_path: Path) -> None:
    """Route 1 of "Benchmark the model you already have": its Python block writes the file, its commands score it."""
    text = (DOCS / "tutorials" / "benchmark-your-model.md").read_text(encoding="utf-8")
    route = text.split("## Route 1", 1)[1].split("## Route 2", 1)[0]
    code = re.search(r"```python\n(.*?)```", route, re.S).group(1)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120)
    commands = re.search(r"```bash\n(.*?)```", route, re.S).group(1)
    for line in commands.splitlines():
        args = line.split("#", 1)[0].split()
        assert args[0] == "opreid-bench", line
        done = subprocess.run([sys.executable, "-m", "opreid_bench", *args[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    assert (tmp_path / "ranked.csv").is_file()


def test_public_names_and_their_loaders_agree() -> None:
    assert set(opreid_bench.__all__) - {"__version__"} == set(opreid_bench._API)
    assert all(getattr(opreid_bench, n) is not None for n in opreid_bench.__all__)


def _command_lines(text: str) -> list[str]:
    """``opreid-bench ...`` invocations in the fenced code blocks of a Markdown text (continuation lines joined,
    comments left out); each command of a pipeline or a ``&&``/``;`` chain on its own."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.lstrip().startswith("#"):
                continue
            out += _invocations(re.sub(r"\s#\s.*$", "", line))
    return out


def _invocations(line: str) -> list[str]:
    """The ``opreid-bench ...`` commands in one shell line (split at ``|``, ``||``, ``&&``, ``&`` and ``;``)."""
    parts = re.split(r"\s(?:\|\|?|&&?|;)\s", line)
    return [part[part.find("opreid-bench "):].strip() for part in parts if "opreid-bench " in part]


def _unknown_in(line: str) -> str | None:
    """What in one ``opreid-bench`` command line names no command or option of the CLI (None: all known)."""
    import shlex

    import click

    from opreid_bench.cli import cli

    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        return f"not a shell command line ({exc})"
    cmd: click.Command = cli
    k, path = 1, []
    while isinstance(cmd, click.Group) and k < len(tokens) and not tokens[k].startswith("-"):
        if tokens[k] not in cmd.commands:
            return f"no command {' '.join([*path, tokens[k]])!r}"
        cmd, path, k = cmd.commands[tokens[k]], [*path, tokens[k]], k + 1
    known = {o for p in cmd.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    unknown = []
    for token in tokens[k:]:
        if token in (">", "2>&1", ">>"):
            break
        if token.startswith("-") and not re.match(r"^-\d", token) and token.split("=")[0] not in known | {"-h", "--help"}:
            unknown.append(token.split("=")[0])
    return f"{' '.join(path)}: no option {unknown}" if unknown else None


def test_every_command_line_in_the_manual_and_the_help_names_real_commands_and_options() -> None:
    """A renamed command or option must not leave the README, the manual or a command's own examples behind."""
    import click

    from opreid_bench.cli import cli

    lines = [(str(f.relative_to(REPO)), line) for f in [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
             for line in _command_lines(f.read_text(encoding="utf-8")) if "`" not in line]

    def walk(cmd: click.Command, name: str = "opreid-bench"):
        yield name, cmd
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{name} {sub_name}")

    for name, cmd in walk(cli):  # groups' help too (the root's and `datasets`' examples)
        for line in re.sub(r"\\\n\s*", " ", cmd.help or "").splitlines():
            if "`" not in line:
                lines += [(f"help of {name}", c) for c in _invocations(re.sub(r"\s#\s.*$", "", line))]
    assert len(lines) > 150, len(lines)
    wrong = [f"{where}: {line[:100]} ({problem})" for where, line in lines if (problem := _unknown_in(line))]
    assert not wrong, "\n".join(wrong)
    assert _unknown_in("opreid-bench evaluate --featurez f.h5") == "evaluate: no option ['--featurez']"
    assert _unknown_in("opreid-bench datasets verifi x") == "no command 'datasets verifi'"
    assert _unknown_in('opreid-bench train --out "runs/a').startswith("not a shell command line")
    assert _invocations("opreid-bench synth --out s && opreid-bench train --out r | tee log") == [
        "opreid-bench synth --out s", "opreid-bench train --out r"]
