"""A self-contained HTML contact sheet for checking the occluded/holistic labels by hand (``classify --review``).

Each crop is shown as a base64-embedded JPEG thumbnail with its keypoints drawn (visible: green dots and skeleton;
missing: red crosses), grouped by label, with the longest missing run and visible fraction under it. The paper had
its automatic labels checked by hand; a reviewer notes the wrong ones in a corrections CSV
(``source_path,occluded``) for ``classify --corrections``. The HTML embeds images of the user's own data: keep it
out of version control.
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


def draw_keypoints(
    image: Image.Image, kp: Keypoints | None, missing: np.ndarray | None, height: int = THUMB_HEIGHT
) -> Image.Image:
    """A thumbnail of ``image`` (PIL) scaled to ``height`` with the keypoints drawn on it."""
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
    return thumb


def _figure(row, kp: Keypoints | None, rule: OcclusionRule, height: int) -> str:
    from PIL import Image

    path = str(row.source_path)
    caption = (
        f"{html.escape(Path(path).name)}<br>run {int(row.longest_missing_run)} · "
        f"visible {float(row.visible_fraction):.0%}"
    )
    try:
        with Image.open(path) as im:
            thumb = draw_keypoints(im, kp, rule.missing_mask(kp) if kp is not None else None, height)
        buf = io.BytesIO()
        thumb.save(buf, format="JPEG", quality=80)
        src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        img = f'<img src="{src}" alt="{html.escape(path)}">'
    except (OSError, ValueError) as exc:
        img = f'<div class="err">cannot read<br>{html.escape(type(exc).__name__)}</div>'
    missing = html.escape(str(row.missing_keypoints) or "none")
    return f'<figure title="{html.escape(path)}&#10;missing: {missing}">{img}<figcaption>{caption}</figcaption></figure>'


def write_review_html(
    labels: pd.DataFrame,
    keypoints: dict[str, Keypoints],
    out: str | os.PathLike[str],
    rule: OcclusionRule | None = None,
    *,
    limit_per_group: int | None = None,
    seed: int = 0,
    thumb_height: int = THUMB_HEIGHT,
) -> Path:
    """Write the contact sheet to ``out`` (atomic). ``limit_per_group`` shows a seeded random sample per label."""
    rule = rule or OcclusionRule()
    sections = []
    for occluded, title in ((True, "occluded"), (False, "holistic")):
        group = labels[labels["occluded"] == occluded].sort_values("source_path")
        shown = list(group.itertuples(index=False))
        if limit_per_group is not None and len(shown) > limit_per_group:
            shown = sorted(random.Random(seed).sample(shown, limit_per_group), key=lambda r: r.source_path)
        figures = "\n".join(_figure(r, keypoints.get(str(r.source_path)), rule, thumb_height) for r in shown)
        note = f" (showing {len(shown)})" if len(shown) < len(group) else ""
        sections.append(f'<h2 id="{title}">{title}: {len(group)} crops{note}</h2>\n<div class="sheet">{figures}</div>')
    chains = rule.chains if isinstance(rule.chains, str) else "custom"
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
<p>Rule: occluded when at least {rule.min_missing_run} sequential keypoints (chains: {html.escape(chains)}) have a
score below {rule.score_threshold:g}. Green dots: visible keypoints; red crosses: missing. Hover a crop for its path
and missing keypoints. Write wrong labels to a CSV <code>source_path,occluded</code> and pass it to
<code>opreid-bench classify --corrections</code>.</p>
<p><a href="#occluded">occluded</a> · <a href="#holistic">holistic</a></p>
{"".join(sections)}
</body></html>
"""
    out = Path(out)
    atomic_write_text(out, page)
    return out
