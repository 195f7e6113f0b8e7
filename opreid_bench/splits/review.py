"""A self-contained HTML contact sheet for checking the occluded/holistic labels by hand (``classify --review``).

Each crop is shown as a base64-embedded JPEG thumbnail with its keypoints drawn (visible: green dots and skeleton;
missing: red crosses) and **why it got its label**: the longest run of missing keypoints drawn as a thick red line
on the crop and named under it, "no person found" for undetermined crops, "back view" when the face points were
exempted, and the label's stability (the share of the threshold settings that agree with it). By default the crops
are in review order: undetermined first, then from the least stable label up, which is where the rule's errors gather
(``classify.label_stability``); ``order="label"`` groups them by label (occluded, holistic, undetermined). With
``masks`` the masked crop is shown next to each one with how its face was found (``prior`` = nothing located the
head, check it), so that a reviewer can confirm "no face visible" at the same time.

Round trip: every crop has a verdict selector; the page's "download corrections" button writes the changed verdicts
as ``source_path,occluded`` CSV, which ``classify --corrections`` reads back. :func:`write_corrections_template`
writes the same CSV without a browser (all crops in review order, current labels and their stability, undetermined
left as ``undetermined`` = no decision). The HTML embeds images of the user's own data: keep it out of version control.
"""

from __future__ import annotations

import base64
import html
import io
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from opreid_bench.atomic import atomic_write_text
from opreid_bench.splits.classify import OcclusionRule
from opreid_bench.splits.keypoints import COCO17_INDEX, COCO17_NAMES, COCO17_SKELETON, Keypoints

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

THUMB_HEIGHT = 192
VISIBLE = (40, 220, 90)
MISSING = (235, 50, 50)
GROUPS = ("occluded", "holistic", "undetermined")


def draw_keypoints(
    image: Image.Image, kp: Keypoints | None, missing: np.ndarray | None, height: int = THUMB_HEIGHT,
    run: list[str] | None = None,
) -> Image.Image:
    """A thumbnail of ``image`` (PIL) scaled to ``height`` with the keypoints, and the missing ``run``, drawn on it."""
    from PIL import Image, ImageDraw

    scale = height / image.height
    thumb = image.convert("RGB").resize((max(1, round(image.width * scale)), height), Image.BILINEAR)
    if kp is None or not kp.detected or missing is None:
        return thumb
    draw = ImageDraw.Draw(thumb)
    pts = kp.xy * scale
    r = max(2, height // 64)
    for a, b in COCO17_SKELETON:
        i, j = COCO17_INDEX[a], COCO17_INDEX[b]
        if not missing[i] and not missing[j]:
            draw.line([tuple(pts[i]), tuple(pts[j])], fill=VISIBLE, width=max(1, r // 2))
    for i in range(len(COCO17_NAMES)):
        x, y = float(pts[i, 0]), float(pts[i, 1])
        if missing[i]:
            draw.line([(x - r, y - r), (x + r, y + r)], fill=MISSING, width=1)
            draw.line([(x - r, y + r), (x + r, y - r)], fill=MISSING, width=1)
        else:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=VISIBLE)
    if run:
        line = [tuple(float(v) for v in pts[COCO17_INDEX[n]]) for n in run if n in COCO17_INDEX]
        if len(line) >= 2:
            draw.line(line, fill=MISSING, width=max(2, r))
    return thumb


def _jpeg_src(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _reason(row: object) -> str:
    label = str(getattr(row, "label", "occluded" if bool(getattr(row, "occluded", False)) else "holistic"))
    if label == "undetermined":
        return "no person found"
    run = str(getattr(row, "missing_run", "") or "")
    text = f"run {int(getattr(row, 'longest_missing_run', 0))}"
    if run:
        text += ": " + run.replace(";", "-").replace("left_", "l.").replace("right_", "r.")
    if bool(getattr(row, "back_view", False)):
        text += " (back view)"
    return text


def _figure(row, kp: Keypoints | None, rule: OcclusionRule, height: int, masks: str | None) -> str:
    from PIL import Image

    path = str(row.source_path)
    label = str(getattr(row, "label", "occluded" if bool(row.occluded) else "holistic"))
    run = [n for n in str(getattr(row, "missing_run", "") or "").split(";") if n]
    caption = f"{html.escape(Path(path).name)}<br>{html.escape(_reason(row))} · visible {float(row.visible_fraction):.0%}"
    stability = getattr(row, "label_stability", None)
    if stability is not None and label != "undetermined":
        caption += f"<br>{label}, stability {float(stability):.2f}"
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        thumb = draw_keypoints(rgb, kp, rule.missing_mask(kp) if kp is not None else None, height, run)
        img = f'<img src="{_jpeg_src(thumb)}" alt="{html.escape(path)}">'
        if masks is not None:
            from opreid_bench.splits.mask import mask_face_detailed

            res = mask_face_detailed(rgb, kp, masks)
            scale = height / rgb.height
            masked = res.image.resize((max(1, round(rgb.width * scale)), height), Image.BILINEAR)
            img += f'<img src="{_jpeg_src(masked)}" alt="masked" title="face: {html.escape(res.method)}">'
            caption += f"<br>face: {html.escape(res.method)}"
    except (OSError, ValueError) as exc:
        img = f'<div class="err">cannot read<br>{html.escape(type(exc).__name__)}</div>'
    missing = html.escape(str(row.missing_keypoints) or "none")
    options = "".join(
        f'<option value="{v}"{" selected" if v == label else ""}>{v}</option>' for v in GROUPS
    )
    select = f'<select data-path="{html.escape(path)}" data-auto="{label}">{options}</select>'
    return (f'<figure title="{html.escape(path)}&#10;missing: {missing}">{img}<figcaption>{caption}<br>{select}'
            "</figcaption></figure>")


def write_corrections_template(labels: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """A ``source_path,occluded,label_stability`` CSV of every crop with its current label, in review order
    (undetermined first, then the least stable label up), for a reviewer to edit from the top (atomic).

    Undetermined crops are written as ``undetermined`` (no decision: ``classify --corrections`` skips them until the
    reviewer writes occluded or holistic); ``--corrections`` ignores the stability column.
    """
    import numpy as np
    import pandas as pd

    from opreid_bench.splits.classify import review_order

    label = labels["label"] if "label" in labels.columns else labels["occluded"].map(
        {True: "occluded", False: "holistic"})
    stability = (labels["label_stability"].to_numpy(float) if "label_stability" in labels.columns
                 else np.ones(len(labels)))
    table = pd.DataFrame({"source_path": labels["source_path"].astype(str), "occluded": label.astype(str),
                          "label_stability": stability})
    idx = review_order(table["occluded"].to_numpy(), stability, table["source_path"].tolist())
    out = Path(out)
    atomic_write_text(out, table.iloc[idx].to_csv(index=False, lineterminator="\n"))
    return out


REVIEW_ORDERS = ("stability", "label")


def _sections(labels: pd.DataFrame, group_of: pd.Series, order: str, limit: int | None, seed: int,
              figure) -> list[str]:  # noqa: ANN001
    """The sheet's sections: by label (each in path order, ``limit`` a seeded random sample per label), or one list
    in review order (undetermined first, then the least stable label up; ``limit`` the first crops of that order)."""
    if order == "stability":
        import numpy as np

        from opreid_bench.splits.classify import review_order

        stability = labels["label_stability"].to_numpy(float) if "label_stability" in labels.columns else np.ones(
            len(labels))
        idx = review_order(group_of.to_numpy(), stability, labels["source_path"].astype(str).tolist())
        rows = list(labels.iloc[idx].itertuples(index=False))
        shown = rows[:limit] if limit is not None else rows
        figures = "\n".join(figure(r) for r in shown)
        note = f" (showing the first {len(shown)})" if len(shown) < len(rows) else ""
        return [f'<h2 id="review">{len(rows)} crops, undetermined first, then the least stable label first{note}</h2>'
                f'\n<div class="sheet">{figures}</div>']
    sections = []
    for title in GROUPS:
        group = labels[group_of == title].sort_values("source_path")
        if title == "undetermined" and group.empty:
            continue
        shown = list(group.itertuples(index=False))
        if limit is not None and len(shown) > limit:
            shown = sorted(random.Random(seed).sample(shown, limit), key=lambda r: r.source_path)
        figures = "\n".join(figure(r) for r in shown)
        note = f" (showing {len(shown)})" if len(shown) < len(group) else ""
        sections.append(f'<h2 id="{title}">{title}: {len(group)} crops{note}</h2>\n<div class="sheet">{figures}</div>')
    return sections


def write_review_html(
    labels: pd.DataFrame,
    keypoints: dict[str, Keypoints],
    out: str | os.PathLike[str],
    rule: OcclusionRule | None = None,
    *,
    limit_per_group: int | None = None,
    seed: int = 0,
    thumb_height: int = THUMB_HEIGHT,
    masks: str | None = None,
    order: str = "stability",
) -> Path:
    """Write the contact sheet to ``out`` (atomic).

    ``order`` ``stability`` (default) shows every crop in one list, undetermined crops first and then from the least
    stable label up (``label_stability``: where the rule's errors gather, so a reviewer who stops early has checked
    the likeliest mistakes); ``limit_per_group`` then keeps the first N. ``label`` groups the crops by label in path
    order, and ``limit_per_group`` shows a seeded random sample per label (an unbiased audit of each label).
    ``masks`` (a mask mode such as ``blur``) also shows each crop masked."""
    from opreid_bench.errors import OpreidError

    if order not in REVIEW_ORDERS:
        raise OpreidError(f"unknown review order '{order}'; use {', '.join(REVIEW_ORDERS)}")
    rule = rule or OcclusionRule()
    if "label" in labels.columns:
        group_of = labels["label"].astype(str)
    else:
        group_of = labels["occluded"].map({True: "occluded", False: "holistic"})
    sections = _sections(labels, group_of, order, limit_per_group, seed,
                         lambda r: _figure(r, keypoints.get(str(r.source_path)), rule, thumb_height, masks))
    nav = ('<a href="#review">review list</a>' if order == "stability" else
           '<a href="#occluded">occluded</a> · <a href="#holistic">holistic</a> · <a href="#undetermined">undetermined</a>')
    chains = rule.chains if isinstance(rule.chains, str) else "custom"
    support_text = ("" if rule.support_threshold is None else
                    f", or person-segmentation support below {rule.support_threshold:g} (on an occluder)")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>opreid-bench occlusion review</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
.sheet {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; padding: 4px; background: #fff; border: 1px solid #ddd; text-align: center; }}
figcaption {{ font-size: 11px; color: #333; max-width: 140px; overflow-wrap: anywhere; }}
.err {{ width: 80px; height: {thumb_height}px; background: #eee; font-size: 11px; }}
</style></head><body>
<h1>Occlusion labels for review</h1>
<p>Rule: occluded when at least {rule.min_missing_run} sequential keypoints (chains: {html.escape(chains)}) are
missing: a score below {rule.score_threshold:g}, outside the crop{support_text}. Green dots: visible keypoints; red crosses: missing; thick red line: the
longest missing run (why the crop is occluded). Undetermined: no person found (left out of sampling until decided).
Stability: the share of the threshold settings that give the same label; the least stable labels are the likeliest
to be wrong. Hover a crop for its path and missing keypoints. Set a wrong verdict with its selector, then
<button onclick="downloadCorrections()">download corrections</button> and pass the CSV to
<code>opreid-bench classify --corrections</code>.</p>
<p>{nav}</p>
{"".join(sections)}
<script>
function downloadCorrections() {{
  const rows = ["source_path,occluded"];
  for (const s of document.querySelectorAll("select[data-path]")) {{
    if (s.value !== s.dataset.auto && s.value !== "undetermined") {{
      rows.push('"' + s.dataset.path.replace(/"/g, '""') + '",' + s.value);
    }}
  }}
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([rows.join("\\n") + "\\n"], {{type: "text/csv"}}));
  a.download = "corrections.csv";
  a.click();
}}
</script>
</body></html>
"""
    out = Path(out)
    atomic_write_text(out, page)
    return out
