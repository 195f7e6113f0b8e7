"""Leaderboard output formats: rich table, markdown, CSV, self-contained HTML, JSON, and bar plots."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

from opreid_bench.atomic import atomic_path
from opreid_bench.leaderboard.rows import DATASET_TITLES, LATER_WORK_TABLE, LeaderboardRow

COLUMNS = ("dataset", "method", "rank1", "mAP", "source", "table")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def sort_rows(rows: Sequence[LeaderboardRow]) -> list[LeaderboardRow]:
    """Group by dataset, then by mAP descending (rows without mAP last, by R-1), published and measured together."""
    def key(r: LeaderboardRow) -> tuple:
        return (r.dataset, r.mAP is None, -(r.mAP if r.mAP is not None else -1.0),
                -(r.rank1 if r.rank1 is not None else -1.0), r.source != "published", r.table, r.method)

    return sorted(rows, key=key)


def best_published(rows: Sequence[LeaderboardRow]) -> set[int]:
    """``id`` of the published row with the highest mAP on each dataset (the state of the art the table shows)."""
    best: dict[str, LeaderboardRow] = {}
    for r in rows:
        if r.source == "published" and r.mAP is not None and (r.dataset not in best or r.mAP > best[r.dataset].mAP):
            best[r.dataset] = r
    return {id(r) for r in best.values()}


def _source_label(r: LeaderboardRow, best: set[int] | frozenset[int] = frozenset()) -> str:
    mark = "★ best published, " if id(r) in best else ""
    if r.source == "published" and r.table == LATER_WORK_TABLE:
        d = r.details
        extra = f"; {d['protocol']}" if d.get("protocol") else ""
        return f"{mark}published {d.get('venue', '')} {d.get('year', '')}, {d.get('backbone', '')}{extra}".strip()
    if r.source == "published":
        return f"{mark}published ({r.table})"
    other = r.details.get("other_split")
    extra = ", ".join(f"{k}={v}" for k, v in r.details.items() if k != "other_split")
    return f"▶ measured: {r.source}" + (f" ({other})" if other else "") + (f" [{extra}]" if extra else "")


GENERATOR = "opreid-bench leaderboard"  # the HTML page's generator tag: how ``--out`` knows a page it wrote
CSV_HEADER = ["dataset", "method", "rank1", "mAP", "source", "table", "citation", "reference", "protocol"]
MARKDOWN_HEADER = "| dataset | method | R-1 | mAP | source |"


def is_leaderboard_output(path: Path) -> bool:
    """True when ``path`` is a file ``leaderboard --out`` wrote, in any format (its CSV or markdown head, its HTML
    generator tag, or a JSON array of its rows); ``--out`` replaces only such a file."""
    from opreid_bench.outputs import file_starts_with

    if file_starts_with(path, ",".join(CSV_HEADER)) or file_starts_with(path, MARKDOWN_HEADER):
        return True
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if text.startswith("<!DOCTYPE html>"):
        return f"<meta name='generator' content='{GENERATOR}'>" in text[:2000]
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, list) and all(isinstance(r, dict) and {"dataset", "method"} <= set(r) for r in data)


def to_json(rows: Sequence[LeaderboardRow]) -> str:
    """One JSON array of rows (percent values)."""
    return json.dumps([r.to_json() for r in rows], indent=None)


def to_csv(rows: Sequence[LeaderboardRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for r in rows:
        w.writerow([r.dataset, r.method, "" if r.rank1 is None else r.rank1, "" if r.mAP is None else r.mAP,
                    r.source, r.table, r.citation, r.details.get("reference", ""), r.details.get("protocol", "")])
    return buf.getvalue()


def to_markdown(rows: Sequence[LeaderboardRow]) -> str:
    lines = [MARKDOWN_HEADER, "|---|---|---:|---:|---|"]
    best = best_published(rows)
    for r in rows:
        lines.append(f"| {DATASET_TITLES.get(r.dataset, r.dataset)} | {r.method} | {_fmt(r.rank1)} | "
                     f"{_fmt(r.mAP)} | {_source_label(r, best)} |")
    return "\n".join(lines) + "\n"


def to_html(rows: Sequence[LeaderboardRow], title: str = "opreid-bench leaderboard") -> str:
    """A single self-contained page (inline CSS, no scripts or external files) with one table per dataset."""
    parts = [
        "<!DOCTYPE html>", f"<html lang='en'><head><meta charset='utf-8'><meta name='generator' content='{GENERATOR}'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:2em}th,td{border:1px solid #ccc;padding:4px 10px}"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}tr.measured{background:#eef6ff}"
        "caption{text-align:left;font-weight:bold;font-size:1.2em;margin-bottom:.3em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Published numbers: Yan, Pang et al., ICCV 2021 (Tables 3-5), and occluded-ReID methods of 2021-2025, each "
        "from the paper or the authors' repository it names. Measured rows come from run directories of this toolkit. "
        "R-1 and mAP in percent, sorted by mAP.</p>",
    ]
    best = best_published(rows)
    by_ds: dict[str, list[LeaderboardRow]] = {}
    for r in rows:
        by_ds.setdefault(r.dataset, []).append(r)
    for ds, ds_rows in by_ds.items():
        parts.append(f"<table data-dataset='{html.escape(ds)}'><caption>"
                     f"{html.escape(DATASET_TITLES.get(ds, ds))}</caption>")
        parts.append("<tr><th>method</th><th>R-1</th><th>mAP</th><th>source</th></tr>")
        for r in ds_rows:
            cls = "published" if r.source == "published" else "measured"
            cite = f" title='{html.escape(r.citation)}'" if r.citation else ""
            parts.append(f"<tr class='{cls}'><td{cite}>{html.escape(r.method)}</td>"
                         f"<td class='num rank1'>{_fmt(r.rank1)}</td><td class='num map'>{_fmt(r.mAP)}</td>"
                         f"<td>{html.escape(_source_label(r, best))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def print_rich(rows: Sequence[LeaderboardRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    best = best_published(rows)
    by_ds: dict[str, list[LeaderboardRow]] = {}
    for r in rows:
        by_ds.setdefault(r.dataset, []).append(r)
    for ds, ds_rows in by_ds.items():
        t = Table(title=DATASET_TITLES.get(ds, ds), title_justify="left")
        t.add_column("method")
        t.add_column("R-1", justify="right")
        t.add_column("mAP", justify="right")
        t.add_column("source")
        for r in ds_rows:
            style = None if r.source == "published" else "bold cyan"
            if id(r) in best:
                style = "bold"
            t.add_row(r.method, _fmt(r.rank1), _fmt(r.mAP), _source_label(r, best), style=style)
        console.print(t)


def plot_name(dataset: str) -> str:
    """A dataset key as a file name part: ``partial_reid (query_folder=partial)`` -> ``partial_reid-query_folder-partial``
    (no spaces or brackets, which shells and some file systems treat specially)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-")


def plot_bars(rows: Sequence[LeaderboardRow], out_dir: str | Path) -> list[Path]:
    """One PNG bar plot per dataset (R-1 and mAP per method; measured runs highlighted). Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    by_ds: dict[str, list[LeaderboardRow]] = {}
    for r in rows:
        by_ds.setdefault(r.dataset, []).append(r)
    for ds, ds_rows in sorted(by_ds.items()):
        labels = [r.method if r.source == "published" else f"{r.method} (ours, measured)" for r in ds_rows]
        labels = [f"{lab} [{r.table}]" if r.table and r.table != "Table 3" and r.table != "Table 4" else lab
                  for lab, r in zip(labels, ds_rows)]
        r1 = [r.rank1 or 0.0 for r in ds_rows]
        mp = [r.mAP or 0.0 for r in ds_rows]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(ds_rows) + 1.5))
        ys = range(len(ds_rows))
        ax.barh([y - 0.2 for y in ys], r1, height=0.4, label="R-1", color="#4c72b0")
        ax.barh([y + 0.2 for y in ys], mp, height=0.4, label="mAP", color="#dd8452")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=8)
        for y, r in zip(ys, ds_rows):
            if r.source != "published":
                ax.get_yticklabels()[y].set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        ax.set_title(DATASET_TITLES.get(ds, ds))
        ax.legend(loc="lower right")
        fig.tight_layout()
        target = out_dir / f"leaderboard_{plot_name(ds)}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        paths.append(target)
    return paths
