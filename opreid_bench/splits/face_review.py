"""The face review sheet (``mask --review-faces``): the masked crops, ordered by a face detector's hints, on which a
reviewer boxes every face still visible and downloads the boxes for ``--face-boxes``.

Why: on crowded, low-resolution crops the detectors leave faces visible, mostly bystanders' heads cut by the crop's
border (``benchmarks/bench_faces.py``), and a split that shows a face cannot be published. Only a person can find
those; the sheet makes that review short and its result reproducible.

**Face risk** (the order): each masked crop is searched again by the detectors at permissive settings, BlazeFace at a
score of :data:`RISK_BLAZEFACE_CONFIDENCE` and MTCNN at the stage thresholds :data:`RISK_MTCNN_THRESHOLDS`, for
candidates outside the masks (less than :data:`opreid_bench.splits.all_faces.COVERED` under them) of a head's size
against the main person's (:data:`opreid_bench.splits.all_faces.MIN_HEAD_SCALE` to ``MAX_HEAD_SCALE``); the body rule
of the masking's gate is not applied, since a person judges them. A crop's risk is its best candidate's score (0
without one). The sheet lists crops from the highest risk down, then by the number of other people's faces masked in
the crop (a crowd), then by path; the candidates are drawn as dashed boxes where to look first. How well that order
finds the faces left visible on the hand-boxed crops (``benchmarks/bench_faces.py``, ``review``): of the crops with
a face left, its first quarter holds 2 of 7 on ``faces_heads.csv`` (a random order: 1.8), 4 of 5 on
``faces_heads_heldout.csv`` (1.2) and 4 of 17 on ``faces_heads_heldout2.csv`` (4.3). It is a hint, not a filter:
on a crowded pool look at every crop.

Boxing: drag a rectangle over a face on the enlarged crop (a second drag adds another box, "undo" removes the last);
the boxes masked by hand in an earlier round (kind ``hand`` in ``masks.csv``) are shown and kept, and "download face
boxes" saves all of them as ``face_boxes.csv`` (``source_path,left,top,right,bottom,kind`` in the crop's pixels,
kind ``hand``), with the masks the reviewed masking had placed on the crops shown (their own kinds), which ``mask``,
``sample`` and ``build-split`` take as ``--face-boxes`` (:mod:`opreid_bench.splits.face_boxes`): a masking with
other settings then still covers what the reviewer saw covered. The HTML
links the masked crops in ``--out`` (it shows them, it does not copy them), so keep it beside that folder; it shows
the user's own data: keep it out of version control.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from opreid_bench.atomic import atomic_write_text
from opreid_bench.splits.face_boxes import HAND_KIND
from opreid_bench.splits.face_detect import Box

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

    from opreid_bench.splits.keypoints import Keypoints

RISK_BLAZEFACE_CONFIDENCE = 0.05
RISK_MTCNN_THRESHOLDS = (0.5, 0.5, 0.3)
THUMB_HEIGHT = 256


FACE_REVIEW_TITLE = "<title>opreid-bench face review</title>"


def is_face_review_page(path: Path) -> bool:
    """True when ``path`` is a sheet ``mask --review-faces`` wrote (its title); only such a file is replaced."""
    from opreid_bench.outputs import file_head_contains

    return file_head_contains(path, FACE_REVIEW_TITLE)


def face_risk(image: Image.Image, kp: Keypoints | None, masks: list[Box]) -> tuple[float, list[Box]]:
    """(risk, candidate boxes) of one masked crop (module docstring): the best permissive detection of a head's size
    outside ``masks``."""
    from opreid_bench.splits.all_faces import COVERED, MAX_HEAD_SCALE, MIN_HEAD_SCALE, covered_share, main_head_height
    from opreid_bench.splits.face_detect import detect_faces_mediapipe_scored
    from opreid_bench.splits.mtcnn import detect_faces_mtcnn, weights_dir

    rgb = image.convert("RGB")
    head = main_head_height(kp, rgb.size)
    found = detect_faces_mediapipe_scored(rgb, min_confidence=RISK_BLAZEFACE_CONFIDENCE)
    folder = weights_dir()
    if folder is not None:
        found += detect_faces_mtcnn(rgb, folder, min_face=MIN_HEAD_SCALE * head, thresholds=RISK_MTCNN_THRESHOLDS)
    kept = [(b, s) for b, s in found
            if MIN_HEAD_SCALE * head <= b[3] - b[1] <= MAX_HEAD_SCALE * head and covered_share(b, masks) < COVERED]
    if not kept:
        return 0.0, []
    kept.sort(key=lambda bs: (-bs[1], bs[0]))
    return float(kept[0][1]), [b for b, _ in kept]


RankJob = tuple[str, Any, str]  # (masked crop's file, its keypoints or None, its masks.csv ``masks`` cell)
Ranked = tuple[tuple[int, int], float, list[Box], int]  # (size, risk, candidate boxes, bystanders' masks)


def rank_one(job: RankJob) -> Ranked:
    """:func:`face_risk` of one masked crop read from disk, with its size and its count of bystanders' masks; a
    crop that cannot be read is a one-line error naming it. Top level, so worker processes can run it."""
    from opreid_bench.data.decode import load_rgb
    from opreid_bench.errors import DataError
    from opreid_bench.splits.writer import parse_masks

    path, kp, masks = job
    parsed = parse_masks(masks)
    try:
        rgb = load_rgb(path)
    except DataError as exc:
        raise DataError(f"{exc} (a masked crop)") from None
    if kp is not None and kp.image_size is not None and tuple(kp.image_size) != rgb.size:
        kp = None  # not the crop the keypoints were found on
    risk, found = face_risk(rgb, kp, [b for _, b in parsed])
    return rgb.size, risk, found, _bystander_masks(parsed)


def rank_crops(jobs: list[RankJob], *, workers: int = 1, progress: bool = True) -> list[Ranked]:
    """:func:`rank_one` of every job, in job order; ``workers`` > 1 spreads them over processes (about 45 ms of
    detectors per crop on one core, the longest step of a review sheet), with the same results as one process."""
    from opreid_bench.processes import map_in_order

    advance = None
    if progress:
        from opreid_bench.splits.face_detect import _progress

        advance = _progress(len(jobs), "face review: ranking crops")
    try:
        return map_in_order(rank_one, jobs, workers=workers, on_done=advance[1] if advance else None)
    finally:
        if advance:
            advance[0].stop()


def face_review_order(risk: list[float], crowd: list[int], paths: list[str]) -> list[int]:
    """Indices from the likeliest face left down: highest risk, then most other people's faces masked, then path."""
    return sorted(range(len(paths)), key=lambda i: (-float(risk[i]), -int(crowd[i]), paths[i]))


def _bystander_masks(masks: list[tuple[str, Box]]) -> int:
    """Masks the face finders placed on other people's faces (``all_faces.FACE_KINDS``)."""
    from opreid_bench.splits.all_faces import FACE_KINDS

    return sum(kind in FACE_KINDS for kind, _ in masks)


def _figure(source: str, url: str, size: tuple[int, int], risk: float, candidates: list[Box], height: int,
            hand: list[Box]) -> str:
    """One crop: the masked JPEG from ``--out`` (linked, loaded when scrolled to), enlarged to ``height``, with the
    detector's candidates as dashed outlines and a box-drawing area."""
    w, h = size
    scale = height / h
    hints = "".join(
        f'<div class="hint" style="left:{b[0] * scale:.1f}px;top:{b[1] * scale:.1f}px;'
        f'width:{(b[2] - b[0]) * scale:.1f}px;height:{(b[3] - b[1]) * scale:.1f}px"></div>' for b in candidates[:5])
    name = html.escape(Path(url).name)
    drawn = ";".join(",".join(str(v) for v in b) for b in hand)
    return (f'<figure data-path="{html.escape(source)}" data-scale="{scale:.6f}" data-w="{w}" data-h="{h}" '
            f'data-hand="{drawn}" title="{html.escape(source)}"><div class="box-area">'
            f'<img src="{html.escape(url)}" alt="{name}" width="{round(w * scale)}" height="{height}" loading="lazy" '
            f'draggable="false">{hints}</div><figcaption>{name}<br>risk {risk:.2f}<br>'
            f'<button onclick="undoBox(this)">undo</button> <span class="count">0 boxes</span></figcaption></figure>')


def write_face_review_html(
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    sheet: str | os.PathLike[str],
    *,
    keypoints: dict[str, Any] | None = None,
    limit: int | None = None,
    thumb_height: int = THUMB_HEIGHT,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Write the face review sheet (module docstring) for the crops of a ``mask`` output: ``table`` is its
    ``masks.csv`` (source_path, path, masks), ``out_dir`` the folder holding the masked crops; ``limit`` keeps the
    first N crops of the order; ``workers`` processes rank the crops (the same sheet for any number). Atomic."""
    from opreid_bench.splits.writer import parse_masks

    out = Path(out_dir)
    kps = keypoints or {}
    rows = list(table[["source_path", "path", "masks"]].fillna("").astype(str).itertuples(index=False))
    hand = [[b for kind, b in parse_masks(r.masks) if kind == HAND_KIND] for r in rows]
    reviewed = [[(kind, b) for kind, b in parse_masks(r.masks) if kind != HAND_KIND] for r in rows]
    jobs = [(str(out / rel), kps.get(source), masks) for source, rel, masks in rows]
    ranked = rank_crops(jobs, workers=workers, progress=progress)
    sizes = [r[0] for r in ranked]
    risks = [r[1] for r in ranked]
    candidates = [r[2] for r in ranked]
    crowd = [r[3] for r in ranked]
    order = face_review_order(risks, crowd, [r.source_path for r in rows])
    shown = order[:limit] if limit is not None else order
    figures = []
    sheet = Path(sheet)
    for i in shown:
        source, rel, _ = rows[i]
        url = quote(Path(os.path.relpath(out.absolute() / rel, sheet.absolute().parent)).as_posix())
        figures.append(_figure(source, url, sizes[i], risks[i], candidates[i], thumb_height, hand[i]))
    note = f" (showing the first {len(shown)})" if len(shown) < len(rows) else ""
    # every crop's earlier hand boxes and masks, shown or not (--review-limit): the download keeps them all
    every = {r.source_path: {"hand": [list(b) for b in hand[i]],
                             "masked": [f"{kind}@{','.join(str(v) for v in b)}" for kind, b in reviewed[i]]}
             for i, r in enumerate(rows)}
    masks_json = json.dumps(every, sort_keys=True).replace("</", "<\\/")
    values = {"N": f"{len(rows):,}", "NOTE": note, "FIGURES": "\n".join(figures), "MASKS": masks_json}
    page = re.sub(r"\{(N|NOTE|FIGURES|MASKS)\}", lambda m: values[m.group(1)], _PAGE)  # one pass: no value re-read
    atomic_write_text(sheet, page)
    return sheet


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">""" + FACE_REVIEW_TITLE + """
<style>
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; }
.sheet { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; padding: 4px; background: #fff; border: 1px solid #ddd; text-align: center; }
figcaption { font-size: 11px; color: #333; max-width: 200px; overflow-wrap: anywhere; }
.box-area { position: relative; display: inline-block; cursor: crosshair; user-select: none; }
.box-area img { display: block; }
.hand { position: absolute; border: 2px solid #e0245e; background: rgba(224, 36, 94, 0.2); pointer-events: none; }
.hint { position: absolute; border: 1px dashed #ffd200; pointer-events: none; }
</style></head><body>
<h1>Faces left after masking</h1>
<p>{N} masked crops{NOTE}, ordered by risk: the best score of a permissive face detector outside the masks (dashed
yellow boxes: what it found). The order is a hint, not a filter: on hand-boxed crowded crops it put the crops with a
face left first no more reliably than chance on two sets of three, so look at every crop. Drag a rectangle over every
face you can still see, bystanders' too (boxes drawn in an earlier round are shown and kept); "undo" removes a crop's
last box. Then
<button onclick="downloadBoxes()">download face boxes</button> and pass the CSV to
<code>opreid-bench mask --face-boxes</code> (or <code>sample</code>, <code>build-split</code>).</p>
<div class="sheet">
{FIGURES}
</div>
<script type="application/json" id="masks">{MASKS}</script>
<script>
const boxes = new Map();
function refresh(fig) {
  const area = fig.querySelector(".box-area");
  area.querySelectorAll(".hand").forEach(e => e.remove());
  const s = parseFloat(fig.dataset.scale);
  for (const b of boxes.get(fig) || []) {
    const d = document.createElement("div");
    d.className = "hand";
    d.style.left = (b[0] * s) + "px"; d.style.top = (b[1] * s) + "px";
    d.style.width = ((b[2] - b[0]) * s) + "px"; d.style.height = ((b[3] - b[1]) * s) + "px";
    area.appendChild(d);
  }
  fig.querySelector(".count").textContent = (boxes.get(fig) || []).length + " boxes";
}
function undoBox(button) {
  const fig = button.closest("figure");
  (boxes.get(fig) || []).pop();
  refresh(fig);
}
for (const fig of document.querySelectorAll("figure[data-path]")) {
  if (fig.dataset.hand) {  // boxes of earlier rounds, already masked: kept in the download
    boxes.set(fig, fig.dataset.hand.split(";").map(b => b.split(",").map(Number)));
    refresh(fig);
  }
  const area = fig.querySelector(".box-area");
  let start = null;
  const at = e => {
    const r = area.getBoundingClientRect(), s = parseFloat(fig.dataset.scale);
    return [Math.min(Math.max((e.clientX - r.left) / s, 0), +fig.dataset.w),
            Math.min(Math.max((e.clientY - r.top) / s, 0), +fig.dataset.h)];
  };
  area.addEventListener("mousedown", e => { start = at(e); e.preventDefault(); });
  window.addEventListener("mouseup", e => {
    if (!start) return;
    const end = at(e);
    const b = [Math.floor(Math.min(start[0], end[0])), Math.floor(Math.min(start[1], end[1])),
               Math.ceil(Math.max(start[0], end[0])), Math.ceil(Math.max(start[1], end[1]))];
    start = null;
    if (b[2] - b[0] >= 2 && b[3] - b[1] >= 2) {
      if (!boxes.has(fig)) boxes.set(fig, []);
      boxes.get(fig).push(b);
      refresh(fig);
    }
  });
}
function downloadBoxes() {
  // every crop, shown or not: its hand boxes (drawn here, earlier rounds' included, else the earlier ones) and the
  // masks of the masking reviewed here, so that a split masked otherwise still covers them
  const rows = ["source_path,left,top,right,bottom,kind"];
  const quoted = path => '"' + path.replace(/"/g, '""') + '",';
  const every = JSON.parse(document.getElementById("masks").textContent);
  const shown = new Map();
  for (const fig of document.querySelectorAll("figure[data-path]")) shown.set(fig.dataset.path, fig);
  for (const [path, m] of Object.entries(every)) {
    const fig = shown.get(path);
    for (const b of (fig ? (boxes.get(fig) || []) : m.hand)) rows.push(quoted(path) + b.join(",") + ",hand");
    for (const mask of m.masked) {
      const [kind, box] = mask.split("@");
      rows.push(quoted(path) + box + "," + kind);
    }
  }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([rows.join("\\n") + "\\n"], {type: "text/csv"}));
  a.download = "face_boxes.csv";
  a.click();
}
</script>
</body></html>
"""
