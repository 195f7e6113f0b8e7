"""Choose the queries to show, and write the rank-list page and its PNG grids into an output folder.

One model: queries in ``--sort`` order (worst AP first by default), optionally only failures or one ``--query``.
Two models (``--compare``): sections "A right, B wrong" and "B right, A wrong" (rank-1 right for one model and
wrong for the other, the evaluator's junk rule), and a summary of how many valid queries each wins.
The folder is written through :func:`opreid_bench.outputs.output_folder` (marker, lock, swapped in whole).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_path, atomic_write_text
from opreid_bench.errors import OpreidError
from opreid_bench.evaluation.features import FeatureSet
from opreid_bench.evaluation.ranklists import compare_wins, order_queries
from opreid_bench.visualize.render import Crops, Model, Section, render_grid, render_html


@dataclass
class Selection:
    """What to show: sort order, filters and how many."""

    sort: str = "ap"
    seed: int = 0
    only_failures: bool = False
    query: str | None = None
    limit: int = 50


def find_query(query: FeatureSet, wanted: str) -> int:
    """Index of the query whose path equals ``wanted`` (or ends with it as a path suffix); exactly one must match."""
    paths = query.paths or []
    hits = [i for i, p in enumerate(paths) if p == wanted]
    if not hits:
        suffix = "/" + wanted.lstrip("/")
        hits = [i for i, p in enumerate(paths) if ("/" + p).endswith(suffix)]
    if len(hits) != 1:
        what = "no query has" if not hits else f"{len(hits)} queries have"
        raise OpreidError(f"--query {wanted}: {what} this path (give the path as stored in /query/paths)")
    return hits[0]


def choose_sections(models: Sequence[Model], query: FeatureSet, sel: Selection) -> tuple[list[Section], dict]:
    """The sections to show and the counts for the summary (``a_wins``/``b_wins`` None for one model)."""
    a = models[0].lists
    counts: dict = {"a_wins": None, "b_wins": None}
    if sel.query is not None:
        q = find_query(query, sel.query)
        return [Section(f"query {sel.query}", [q])], counts | (_wins(models) if len(models) > 1 else {})
    if len(models) == 1:
        order = order_queries(a, sort=sel.sort, seed=sel.seed, only_failures=sel.only_failures)
        title = {"ap": "worst AP first", "rank1": "latest first true match first", "random": "random order"}[sel.sort]
        if sel.only_failures:
            title += ", rank-1 wrong only"
        return [Section(f"Queries, {title}", [int(i) for i in order[:sel.limit]])], counts
    a_right, b_right = compare_wins(a, models[1].lists)
    names = models[0].name, models[1].name
    sections = []
    for title, cand in ((f"A right, B wrong (A = {names[0]}, B = {names[1]})", a_right),
                        (f"B right, A wrong (A = {names[0]}, B = {names[1]})", b_right)):
        ranked_by = models[1].lists if cand is a_right else a  # the loser's worst AP first
        order = order_queries(ranked_by, sort=sel.sort, seed=sel.seed, candidates=cand)
        sections.append(Section(title, [int(i) for i in order[:sel.limit]]))
    return sections, counts | _wins(models)


def _wins(models: Sequence[Model]) -> dict:
    a_right, b_right = compare_wins(models[0].lists, models[1].lists)
    return {"a_wins": int(a_right.size), "b_wins": int(b_right.size)}


def write_pages(folder: Path, models: Sequence[Model], query: FeatureSet, gallery: FeatureSet, crops: Crops,
                sections: Sequence[Section], counts: dict, *, title: str, link_images: bool = False,
                per_page: int = 10) -> dict:
    """Write ``index.html`` and ``grids/page_NNN.png`` into ``folder`` (inside an output_folder block).

    Returns the summary: html path, queries shown, green frames shown (junk excluded, all models' rows), wins.
    """
    shown = [q for s in sections for q in s.queries]
    summary_line = ""
    if counts.get("a_wins") is not None:
        valid = int(np.count_nonzero(models[0].lists.valid & models[1].lists.valid))
        summary_line = (f"Rank-1 over {valid} valid queries: {models[0].name} (A) wins {counts['a_wins']}, "
                        f"{models[1].name} (B) wins {counts['b_wins']}.")
    page = render_html(title, sections, models, query, gallery, crops, summary=summary_line,
                       link_images=link_images)
    html_path = folder / "index.html"
    atomic_write_text(html_path, page, durable=False)
    grids = []
    pages = [(s.title, s.queries[i:i + per_page]) for s in sections for i in range(0, len(s.queries), per_page)]
    for n, (section, chunk) in enumerate(pages, start=1):  # a page never mixes sections; its title names its own
        image = render_grid(chunk, models, query, gallery, crops, title=f"{title} - {section} - page {n}")
        out = folder / "grids" / f"page_{n:03d}.png"
        with atomic_path(out, durable=False) as tmp:
            image.save(tmp, format="PNG")  # type: ignore[attr-defined]
        grids.append(out.name)
    green = sum(m.lists.true_in_topk(q) for q in shown for m in models)
    summary = {"html": str(html_path), "queries_shown": len(shown), "true_matches_in_topk": int(green),
               "a_wins": counts.get("a_wins"), "b_wins": counts.get("b_wins")}
    atomic_write_text(folder / "summary.json", json.dumps({**summary, "html": "index.html", "grids": grids},
                                                          indent=1) + "\n", durable=False)
    return summary
