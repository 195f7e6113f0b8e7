"""`opreid-bench datasets list|verify`: what loaders exist, and whether a folder on disk is the dataset it claims."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from opreid_bench.cli.options import parse_key_values


def _counts_text(splits: tuple[str, ...], known: dict[str, tuple[int, int]], split: str) -> str:
    if split not in splits:
        return "-"
    if split not in known:
        return "?"
    images, ids = known[split]
    return f"{images:,}/{ids:,}"


@click.group("datasets")
def datasets() -> None:
    """List the dataset loaders and verify a dataset folder against its known counts.

    \b
    Examples:
      opreid-bench datasets list
      opreid-bench datasets verify partial_reid --root ~/data/partial_reid --json
    """


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Every registered dataset: its splits, known counts (images / ids), options and evaluation protocol.

    \b
    Example:
      opreid-bench datasets list
      opreid-bench datasets list --json
    """
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.data.protocols import list_protocols
    from opreid_bench.resources import resource_dir

    protocols = set(list_protocols())
    cards = resource_dir("data_cards")
    rows = []
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        rows.append({
            "name": name,
            "splits": list(cls.splits),
            "known_counts": {s: {"images": i, "ids": n} for s, (i, n) in cls.known_counts.items()},
            "options": dict(cls.option_defaults),
            "protocol": cls.protocol if cls.protocol in protocols else None,
            "layout": cls.layout,
            "data_card": f"data_cards/{name}.md" if (cards / f"{name}.md").is_file() else None,
        })
    if as_json:
        click.echo(json.dumps({"datasets": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="opreid-bench datasets: known counts (images/ids) per split",
                  caption="-: no such split; ?: split read from your data, no known counts")
    table.add_column("name", no_wrap=True)
    for split in ("train", "query", "gallery"):
        table.add_column(split, justify="right", no_wrap=True)
    table.add_column("protocol", no_wrap=True)
    for row in rows:
        cls = DATASETS.get(row["name"])
        table.add_row(row["name"], *(_counts_text(cls.splits, cls.known_counts, s) for s in ("train", "query", "gallery")),
                      row["protocol"] or "-")
    console = Console()
    console.print(table)
    for row in rows:
        if row["options"]:
            opts = " ".join(f"{k}={v}" for k, v in row["options"].items())
            console.print(f"{row['name']} options (--option KEY=VALUE): {opts}", highlight=False, markup=False)


@datasets.command("verify")
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path), required=True,
              help="Folder holding the dataset folder (or the dataset folder itself; the manifest file for 'manifest').")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Loader option, repeatable (e.g. query_folder=partial for partial_reid; pattern=REGEX for folder).")
@click.option("--decode", is_flag=True,
              help="Also decode every image: truncated, undecodable and wrongly named files are listed, exit 2.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (warnings go to stderr).")
def verify_cmd(name: str, root: Path, options: tuple[str, ...], decode: bool, as_json: bool) -> None:
    """Count images, ids and cameras per split and compare them with the dataset's known counts.

    A missing folder is an error (exit 2) naming the expected path and layout, and so is a dataset of which no image
    was read (every file name fails to parse, or the folders are empty). Counts that differ from the known ones and
    some file names that do not parse are warnings on stderr (exit 0).

    \b
    JSON keys: dataset, splits {SPLIT: {images, ids, cameras}}, matches_known_counts (false when the dataset has no
    known counts), plus known_counts ({SPLIT: {images, ids}} or null), root (the dataset folder found), unparsed
    (count), unparsed_examples (first 10, relative paths), junk (images dropped by the junk rule, e.g. Market pid -1),
    ignored (non-image files passed over), notes (other warnings); with --decode also decode {checked, failed,
    counts {truncated, undecodable, wrong_format}, problems [{path, problem, detail}] (first 100)}.

    \b
    --decode opens and fully decodes every image the loader reads (slower: seconds per 10,000 crops). A file that is
    truncated, not decodable, or of another format than its extension (PNG data in a .jpg) is listed and the
    command ends with one error line, exit code 2.

    \b
    Examples:
      opreid-bench datasets verify market1501 --root ~/data
      opreid-bench datasets verify partial_reid --root ~/data/partial_reid --option query_folder=partial --json
      opreid-bench datasets verify folder --root my_crops --option 'pattern=(?P<pid>\\d+)_c(?P<camid>\\d+)'
    """
    from opreid_bench.data.datasets import get_dataset

    dataset = get_dataset(name, root, **parse_key_values(options))
    report = dataset.verify()
    decoded = _decode_all(dataset, progress=not as_json) if decode else None
    for line in report.mismatches():
        click.echo(f"warning: {report.dataset} at {report.root}: counts differ from the known ones: {line}", err=True)
    if report.unparsed:
        examples = ", ".join(report.unparsed[:5])
        click.echo(f"warning: {len(report.unparsed):,} file(s) were left out: {examples}"
                   + (" ..." if len(report.unparsed) > 5 else ""), err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps({**report.to_json(), **({"decode": decoded.to_json()} if decoded else {})}))
    else:
        _print_verify(report, decoded)
    if (empty := report.empty_reason()) is not None:
        from opreid_bench.errors import DataError

        raise DataError(empty)
    if decoded is not None and decoded.problems:
        from opreid_bench.errors import DataError

        first = decoded.problems[0]
        raise DataError(f"{report.root}: {len(decoded.problems):,} of {decoded.checked:,} images failed to decode "
                        f"{decoded.counts()}; first: {first['path']}: {first['problem']} ({first['detail']})")


def _decode_all(dataset, progress: bool):  # noqa: ANN001, ANN202 - a ReIDDataset -> DecodeReport
    """Decode every image the loader reads (all splits), with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opreid_bench.data.decode import decode_images

    raw = dataset.read()
    paths = sorted({r.path for split in dataset.splits for r in getattr(raw, split)})
    with Progress(TextColumn("decoding images"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True),
                  disable=not progress) as bar:
        task = bar.add_task("decode", total=len(paths))
        return decode_images(paths, on_done=lambda n: bar.advance(task, n))


def _print_verify(report, decoded) -> None:  # noqa: ANN001 - VerificationReport, DecodeReport | None
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.dataset} at {report.root}")
    for col in ("split", "images", "ids", "cameras", "expected images", "expected ids", "status"):
        table.add_column(col, justify="left" if col in ("split", "status") else "right")
    for split, stats in report.splits.items():
        known = report.known_counts.get(split)
        ok = known is not None and (stats["images"], stats["ids"]) == known
        status = "[green]ok[/]" if ok else ("-" if known is None else "[yellow]differs[/]")
        table.add_row(split, f"{stats['images']:,}", f"{stats['ids']:,}", f"{stats['cameras']:,}",
                      f"{known[0]:,}" if known else "-", f"{known[1]:,}" if known else "-", status)
    console = Console()
    console.print(table)
    extras = [f"unparsed: {len(report.unparsed):,}", f"junk dropped: {report.junk:,}",
              f"non-image files: {report.ignored:,}"]
    verdict = ("[green]matches the known counts[/]" if report.matches_known_counts
               else "[yellow]does not match the known counts[/]" if report.known_counts else "no known counts")
    console.print(f"{verdict}  ({', '.join(extras)})")
    if decoded is None:
        return
    counts = ", ".join(f"{k}: {v:,}" for k, v in decoded.counts().items())
    console.print(f"decoded {decoded.checked:,} images: {len(decoded.problems):,} failed" + (f" ({counts})" if counts
                                                                                              else ""))
    if decoded.problems:
        bad = Table(title=f"images that failed to decode (first 20; paths under {report.root})")
        bad.add_column("path", no_wrap=True)
        bad.add_column("problem", no_wrap=True)
        bad.add_column("detail")
        for item in decoded.problems[:20]:
            bad.add_row(os.path.relpath(item["path"], report.root), item["problem"], item["detail"])
        console.print(bad)


COMMANDS = [datasets]
