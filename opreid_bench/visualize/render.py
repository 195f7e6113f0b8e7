"""Rank-list pages: one self-contained HTML file (images embedded as downscaled JPEG, or linked) and PNG grids.

Each query is a row: the query crop, then its ranked gallery crops framed green (true match), red (wrong) or grey
dashed (junk, not counted), with the query's AP and the rank of its first true match (the evaluator's values) and
occluded/holistic tags where the feature file has flags. Output is deterministic: same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opreid_bench.errors import DataError
from opreid_bench.evaluation.features import FeatureSet
from opreid_bench.evaluation.ranklists import RankLists

THUMB_H, THUMB_W = 128, 64
COLORS = {"true": (30, 160, 60), "wrong": (210, 40, 40), "junk": (150, 150, 150), "query": (40, 90, 200)}


@dataclass
class Model:
    """One model's lists on the shared query/gallery sets, with a display name."""

    name: str
    lists: RankLists


@dataclass
class Section:
    """A titled group of query indices (e.g. "A right, B wrong")."""

    title: str
    queries: list[int] = field(default_factory=list)


class Crops:
    """Loads crops once, downscaled to ``THUMB_H`` high; optional heat maps (0..1) are blended over them."""

    def __init__(self, image_root: Path | None = None,
                 heatmap: Callable[[str, int, str | None], np.ndarray | None] | None = None) -> None:
        self.image_root = image_root
        self.heatmap = heatmap
        self._cache: dict[str, object] = {}

    def resolve(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute() and self.image_root is not None:
            p = self.image_root / p
        return p

    def thumb(self, path: str) -> object:
        """The downscaled RGB PIL image of ``path``; a missing/unreadable image is a :class:`DataError`."""
        from PIL import Image, UnidentifiedImageError

        if path not in self._cache:
            p = self.resolve(path)
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    w = max(1, round(im.width * THUMB_H / max(im.height, 1)))
                    self._cache[path] = im.resize((w, THUMB_H), Image.BILINEAR)
            except FileNotFoundError:
                raise DataError(f"{p}: image listed in the feature file's paths does not exist "
                                "(pass --image-root for relative paths)") from None
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{p}: unreadable image ({' '.join(str(exc).split())})") from None
        return self._cache[path]

    def shown(self, path: str, model: int, reference: str | None) -> object:
        """The thumbnail with model ``model``'s heat map (scored against query ``reference``) blended in, if any."""
        im = self.thumb(path)
        if self.heatmap is None:
            return im
        cam = self.heatmap(path, model, reference)
        return im if cam is None else overlay(im, cam)


def overlay(image: object, cam: np.ndarray, alpha: float = 0.45) -> object:
    """``image`` with ``cam`` (h x w, 0..1, any size) resized over it as a blue-to-red heat map."""
    from PIL import Image

    im = np.asarray(image, dtype=np.float32)
    c = np.asarray(Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(
        (im.shape[1], im.shape[0]), Image.BILINEAR), dtype=np.float32) / 255.0
    heat = np.stack([np.clip(2 * c, 0, 1), 1 - np.abs(2 * c - 1), np.clip(2 - 2 * c, 0, 1)],
                    axis=-1) * 255
    return Image.fromarray(((1 - alpha) * im + alpha * heat).astype(np.uint8))


def _jpeg_b64(image: object) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85, optimize=False)  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _tag(fs: FeatureSet, i: int) -> str:
    if fs.occluded is None:
        return ""
    return "occluded" if bool(fs.occluded[i]) else "holistic"


CSS = """body{font-family:sans-serif;margin:16px;background:#fafafa}h1{font-size:20px}h2{font-size:17px;margin-top:24px}
.q{margin:10px 0;padding:6px;background:#fff;border:1px solid #ddd}.meta{font-size:12px;margin-bottom:4px}
.row{display:flex;flex-wrap:nowrap;align-items:flex-start;gap:4px;overflow-x:auto}.model{font-size:12px;width:56px}
figure{margin:0;text-align:center;font-size:10px}figure img{display:block;border:4px solid transparent}
figure.true img{border-color:#1ea03c}figure.wrong img{border-color:#d22828}
figure.junk img{border:4px dashed #969696;opacity:.6}figure.query img{border-color:#2a5ac8}
.tag{display:inline-block;padding:0 4px;border-radius:3px;background:#eee;margin-left:4px}
.summary{font-size:14px;padding:6px;background:#fff;border:1px solid #ccc}"""


def _img(crops: Crops, path: str, model: int, role: str | None, link: bool) -> str:
    if link:
        return f'<img src="{html.escape(crops.resolve(path).resolve().as_uri())}" height="{THUMB_H}" alt="">'
    return f'<img src="data:image/jpeg;base64,{_jpeg_b64(crops.shown(path, model, role))}" alt="">'


def _row(crops: Crops, m: int, model: Model, q: int, query: FeatureSet, gallery: FeatureSet, link: bool,
         label: bool) -> tuple[str, str]:
    lists = model.lists
    fh = int(lists.first_hit[q])
    qtag = _tag(query, q)
    cells = [f'<div class="model">{html.escape(model.name)}</div>'] if label else []
    cells.append(f'<figure class="query">{_img(crops, query.paths[q], m, None, link)}'
                 f'<figcaption>query{" · " + qtag if qtag else ""}</figcaption></figure>')
    rank = 0
    for gi, d, kind in lists.shown(q):
        rank += kind != "junk"
        gtag = _tag(gallery, gi)
        cap = ("junk" if kind == "junk" else f"{rank}") + f" · id {int(gallery.pids[gi])} · {d:.3f}"
        cap += f" · {gtag}" if gtag else ""
        cells.append(f'<figure class="{kind}" data-kind="{kind}">{_img(crops, gallery.paths[gi], m, query.paths[q], link)}'
                     f'<figcaption>{html.escape(cap)}</figcaption></figure>')
    stats = (f"AP {lists.ap[q]:.3f} · first true match: rank {fh + 1}" if fh >= 0
             else "no true match in the gallery (not counted by the evaluator)")
    return f'<div class="row" data-model="{m}" data-first-hit="{fh}">{"".join(cells)}</div>', stats


def render_html(title: str, sections: Sequence[Section], models: Sequence[Model], query: FeatureSet,
                gallery: FeatureSet, crops: Crops, *, summary: str = "", link_images: bool = False) -> str:
    """The whole page as a string (no scripts, no external resources unless ``link_images``)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if summary:
        parts.append(f'<p class="summary">{html.escape(summary)}</p>')
    parts.append('<p class="meta">Frames: <b style="color:#1ea03c">green</b> true match, '
                 '<b style="color:#d22828">red</b> wrong, grey dashed junk (same identity and camera; not counted). '
                 'Caption: rank · identity · distance.</p>')
    label = len(models) > 1
    for sec in sections:
        parts.append(f"<section><h2>{html.escape(sec.title)} ({len(sec.queries)})</h2>")
        if not sec.queries:
            parts.append('<p class="meta">none</p>')
        for q in sec.queries:
            tag = _tag(query, q)
            rows, stats = [], []
            for m, model in enumerate(models):
                row, st = _row(crops, m, model, q, query, gallery, link_images, label)
                rows.append(row)
                stats.append(f"{model.name}: {st}" if label else st)
            head = (f'{html.escape(Path(query.paths[q]).name)} · id {int(query.pids[q])} · cam '
                    f'{int(query.camids[q])}' + (f'<span class="tag">{tag}</span>' if tag else ""))
            parts.append(f'<div class="q" data-query="{q}"><div class="meta">{head}<br>'
                         f'{html.escape(" | ".join(stats))}</div>{"".join(rows)}</div>')
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def render_grid(queries: Sequence[int], models: Sequence[Model], query: FeatureSet, gallery: FeatureSet,
                crops: Crops, title: str = "") -> object:
    """A PNG-ready PIL image: one row per (query, model), crops resized to ``THUMB_W x THUMB_H`` and framed. With two
    models each query's rows are marked A and B (named in the title line), and its caption takes two lines (AP, then
    the rank of the first true match) so that it stays inside its cell."""
    from PIL import Image, ImageDraw

    pad, frame, text_h = 4, 3, 26
    cell_w, cell_h = THUMB_W + 2 * frame + pad, THUMB_H + 2 * frame + pad + text_h
    ncols = 1 + max((len(m.lists.shown(q)) for q in queries for m in models), default=0)
    nrows = len(queries) * len(models)
    names = "   ".join(f"{'AB'[i]} = {m.name}" for i, m in enumerate(models[:2])) if len(models) > 1 else ""
    lines = [t for t in (title, names) if t]
    head = len(lines) * 13 + pad if lines else 0
    canvas = Image.new("RGB", (max(ncols * cell_w + pad, 200), nrows * cell_h + pad + head), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((pad, pad + 13 * i), line, fill=(0, 0, 0))

    def cell(r: int, c: int, image: object, color: tuple[int, int, int], text: str, dashed: bool = False) -> None:
        x, y = pad + c * cell_w, head + pad + r * cell_h
        draw.rectangle([x, y, x + THUMB_W + 2 * frame - 1, y + THUMB_H + 2 * frame - 1], fill=color)
        if dashed:
            for yy in range(y, y + THUMB_H + 2 * frame, 8):
                draw.rectangle([x, yy, x + THUMB_W + 2 * frame - 1, yy + 3], fill=(255, 255, 255))
        canvas.paste(image.resize((THUMB_W, THUMB_H), Image.BILINEAR), (x + frame, y + frame))  # type: ignore[attr-defined]
        draw.text((x, y + THUMB_H + 2 * frame + 1), text, fill=(0, 0, 0))

    r = 0
    for q in queries:
        for m, model in enumerate(models):
            lists = model.lists
            fh = int(lists.first_hit[q])
            mark = f"{'AB'[m]}: " if len(models) > 1 else ""
            label = f"{mark}AP {lists.ap[q]:.2f}\nfirst r{fh + 1}" if fh >= 0 else f"{mark}no match"
            cell(r, 0, crops.shown(query.paths[q], m, None), COLORS["query"], label)
            rank = 0
            for c, (gi, _d, kind) in enumerate(lists.shown(q), start=1):
                rank += kind != "junk"
                cell(r, c, crops.shown(gallery.paths[gi], m, query.paths[q]), COLORS[kind],
                     "junk" if kind == "junk" else f"{rank}", dashed=kind == "junk")
            r += 1
    return canvas
