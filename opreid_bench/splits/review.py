"""A self-contained HTML contact sheet for checking the occluded/holistic labels by hand (``classify --review``).

Each crop is shown as a base64-embedded JPEG thumbnail with its keypoints drawn (visible: green dots and skeleton;
missing: red crosses) and **why it got its label**: the longest run of missing keypoints drawn as a thick red line
on the crop and named under it, "no person found" for undetermined crops, "back view" when the face points were
exempted, and the label's stability (the share of the threshold settings that agree with it). By default the crops
are in review order: undetermined first, then from the least stable label up, which is where the rule's errors gather
(``classify.label_stability``); ``order="label"`` groups them by label (occluded, holistic, undetermined). With
``masks`` the masked crop is shown next to each one with how its face was found (``prior`` = nothing located the
head, check it), so that a reviewer can confirm "no face visible" at the same time.

Round trip: every crop has a verdict selector and a "checked" box; the page's "download corrections" button writes the
changed verdicts and the checked ones as ``source_path,occluded,checked`` CSV, which ``classify --corrections`` reads
back. :func:`write_corrections_template`
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
from opreid_bench.data.decode import load_rgb
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
        rgb = load_rgb(path)
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
    # a correction decides occluded or holistic; "undetermined" decides nothing, so only a crop the rule left
    # undetermined shows it (as its current state), never as a choice that would look like leaving a crop out
    choices = GROUPS if label == "undetermined" else GROUPS[:2]
    options = "".join(
        f'<option value="{v}"{" selected" if v == label else ""}>{v}</option>' for v in choices
    )
    select = f'<select data-path="{html.escape(path)}" data-auto="{label}">{options}</select>'
    check = f'<label><input type="checkbox" data-checked="{html.escape(path)}"> checked</label>'
    return (f'<figure title="{html.escape(path)}&#10;missing: {missing}">{img}<figcaption>{caption}<br>{select}'
            f"<br>{check}</figcaption></figure>")


REVIEW_TITLE = "<title>opreid-bench occlusion review</title>"
TEMPLATE_HEADER = "source_path,occluded,checked,label_stability"
OLD_TEMPLATE_HEADER = "source_path,occluded,label_stability"  # templates written before the checked column


def is_review_page(path: Path) -> bool:
    """True when ``path`` is a review sheet ``classify --review`` wrote (its title); ``--review`` replaces only those."""
    from opreid_bench.outputs import file_head_contains

    return file_head_contains(path, REVIEW_TITLE)


def is_corrections_template(path: Path) -> bool:
    """True when ``path`` starts with the corrections template's header."""
    from opreid_bench.outputs import file_starts_with

    return file_starts_with(path, TEMPLATE_HEADER) or file_starts_with(path, OLD_TEMPLATE_HEADER)


def refuse_classify_outputs(out: Path, review: Path | None, template: Path | None,
                            inputs: dict[str, Path | None]) -> None:
    """Before ``classify`` writes anything: its labels file, review sheet and corrections template may not be one of
    its inputs, nor an existing file it did not write (one line naming it)."""
    from opreid_bench.outputs import file_starts_with, refuse_foreign_file, refuse_output_over_input
    from opreid_bench.splits.classify import LABEL_COLUMNS

    refuse_output_over_input(out, "--out", inputs)
    refuse_foreign_file(out, "classify", lambda p: file_starts_with(p, ",".join(LABEL_COLUMNS))
                        or file_starts_with(p, ",".join(LABEL_COLUMNS[:-1])))
    if review is not None and template is not None:
        from opreid_bench.errors import OpreidError
        from opreid_bench.outputs import published_folder_above

        published = published_folder_above(review)
        if published is not None:
            raise OpreidError(f"--review {review} lies inside {published}, a split or masked folder: the sheet shows "
                              "the pool's crops unmasked and would be published with it; write it elsewhere")
        refuse_output_over_input(review, "--review", {**inputs, "--out": out})
        refuse_foreign_file(review, "classify", is_review_page, "--review")
        refuse_output_over_input(template, "--review (its corrections template)", {"--out": out})
        refuse_foreign_file(template, "classify", is_corrections_template, "--review")


def refuse_to_lose_verdicts(template: Path, labels: pd.DataFrame, previous: Path | None = None) -> None:
    """Refuse (one line) to replace a corrections template that holds verdicts a reviewer typed and no label carries
    yet: a verdict that differs from ``labels`` (what the new template would say) and from the labels file
    ``previous`` (the labels the old template was written from, when given and readable).

    Why: the template is the file a reviewer edits in a spreadsheet; running ``classify --review`` again before
    passing it back as ``--corrections`` would otherwise wipe the review."""
    import pandas as pd

    from opreid_bench.errors import OutputError
    from opreid_bench.splits.classify import is_checked, verdict_of

    if not template.exists():
        return
    try:
        old = pd.read_csv(template, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return  # not ours: refuse_foreign_file has said so already
    if not {"source_path", "occluded"} <= set(old.columns):
        return
    typed = dict(zip(old["source_path"], old["occluded"].str.strip().str.lower(), strict=True))
    new = dict(zip(labels["source_path"].astype(str), labels["label"].astype(str), strict=True))
    if "checked" in old.columns and "label_source" in labels.columns:  # a crop marked checked but not yet a hand label
        hand = set(labels.loc[labels["label_source"].astype(str) == "hand", "source_path"].astype(str))
        marked = [p for p, c in zip(old["source_path"], old["checked"], strict=True) if is_checked(c) and p not in hand]
        if marked:
            raise OutputError(f"{template}: marks {len(marked)} crop(s) checked that no label carries yet (e.g. "
                              f"{marked[0]}); pass it back with --corrections, or move it away, before a new template "
                              "replaces it")
    before: dict[str, str] = {}
    if previous is not None and previous.is_file():
        try:
            prev = pd.read_csv(previous, dtype=str, keep_default_na=False)
            before = dict(zip(prev["source_path"], prev["label"], strict=True))
        except (OSError, ValueError, KeyError):
            before = {}
    def norm(v: str | None) -> str | None:
        verdict = None if v is None else verdict_of(v)
        return v if verdict is None else "occluded" if verdict else "holistic"

    edited = [p for p, v in typed.items()
              if v not in ("", "undetermined") and norm(v) not in (new.get(p), norm(before.get(p)))]
    if edited:
        raise OutputError(f"{template}: holds {len(edited)} verdict(s) that no label carries yet (e.g. {edited[0]}); "
                          "pass it back with --corrections, or move it away, before a new template replaces it")


def write_corrections_template(labels: pd.DataFrame, out: str | os.PathLike[str], *, order: str = "stability",
                               limit: int | None = None, seed: int = 0) -> Path:
    """A ``source_path,occluded,checked,label_stability`` CSV of the crops on the review sheet (the same crops in the
    same order: :func:`sheet_groups`), each with its current label, for a reviewer to edit from the top (atomic).

    The reviewer changes ``occluded`` where the label is wrong and writes ``y`` under ``checked`` for a crop looked
    at and found right; ``classify --corrections`` counts both as checked by hand (``label_source`` hand) and leaves
    the untouched rows to the rule. Undetermined crops are written as ``undetermined`` (no decision until the reviewer
    writes occluded or holistic); ``--corrections`` ignores the stability column.
    """
    import pandas as pd

    label = _group_of(labels).astype(str)
    if "label_source" in labels.columns:  # the --undetermined policy decided nothing: the reviewer does
        label = label.where(labels["label_source"].astype(str) != "policy", "undetermined")
    stability = (labels["label_stability"].astype(float) if "label_stability" in labels.columns
                 else pd.Series(1.0, index=labels.index))
    table = pd.DataFrame({"source_path": labels["source_path"].astype(str), "occluded": label.astype(str),
                          "checked": "", "label_stability": stability})
    rows = [i for _, _, shown in sheet_groups(labels, order, limit, seed) for i in shown]
    out = Path(out)
    atomic_write_text(out, table.iloc[rows].to_csv(index=False, lineterminator="\n"))
    return out


REVIEW_ORDERS = ("stability", "label")


def _group_of(labels: pd.DataFrame) -> pd.Series:
    if "label" in labels.columns:
        return labels["label"].astype(str)
    return labels["occluded"].map({True: "occluded", False: "holistic"})


def sheet_groups(labels: pd.DataFrame, order: str = "stability", limit: int | None = None,
                 seed: int = 0) -> list[tuple[str, int, list[int]]]:
    """What the review sheet shows: (section, crops in it, row positions shown in sheet order) per section. By label
    (each in path order, ``limit`` a seeded random sample per label), or one ``review`` list in review order
    (undetermined first, then the least stable label up; ``limit`` the first crops of that order). The corrections
    template lists the same crops in the same order."""
    import numpy as np

    from opreid_bench.errors import OpreidError

    if order not in REVIEW_ORDERS:
        raise OpreidError(f"unknown review order '{order}'; use {', '.join(REVIEW_ORDERS)}")
    group_of = _group_of(labels).to_numpy()
    paths = labels["source_path"].astype(str).tolist()
    if order == "stability":
        from opreid_bench.splits.classify import review_order

        stability = labels["label_stability"].to_numpy(float) if "label_stability" in labels.columns else np.ones(
            len(labels))
        idx = [int(i) for i in review_order(group_of, stability, paths)]
        return [("review", len(idx), idx[:limit] if limit is not None else idx)]
    groups = []
    for title in GROUPS:
        members = sorted((i for i in range(len(paths)) if group_of[i] == title), key=lambda i: paths[i])
        if title == "undetermined" and not members:
            continue
        shown = members
        if limit is not None and len(members) > limit:
            shown = sorted(random.Random(seed).sample(members, limit), key=lambda i: paths[i])
        groups.append((title, len(members), shown))
    return groups


def _sections(labels: pd.DataFrame, order: str, limit: int | None, seed: int, figure) -> list[str]:  # noqa: ANN001
    """The sheet's HTML sections (:func:`sheet_groups`)."""
    sections = []
    for title, size, shown in sheet_groups(labels, order, limit, seed):
        figures = "\n".join(figure(r) for r in labels.iloc[shown].itertuples(index=False))
        if title == "review":
            note = f" (showing the first {len(shown)})" if len(shown) < size else ""
            sections.append(f'<h2 id="review">{size} crops, undetermined first, then the least stable label first'
                            f'{note}</h2>\n<div class="sheet">{figures}</div>')
        else:
            note = f" (showing {len(shown)})" if len(shown) < size else ""
            sections.append(f'<h2 id="{title}">{title}: {size} crops{note}</h2>\n<div class="sheet">{figures}</div>')
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
    rule = rule or OcclusionRule()
    sections = _sections(labels, order, limit_per_group, seed,
                         lambda r: _figure(r, keypoints.get(str(r.source_path)), rule, thumb_height, masks))
    nav = ('<a href="#review">review list</a>' if order == "stability" else
           '<a href="#occluded">occluded</a> · <a href="#holistic">holistic</a> · <a href="#undetermined">undetermined</a>')
    chains = rule.chains if isinstance(rule.chains, str) else "custom"
    support_text = ("" if rule.support_threshold is None else
                    f", or person-segmentation support below {rule.support_threshold:g} (on an occluder)")
    if rule.flip_threshold is not None and any(kp.flip_shift is not None for kp in keypoints.values()):
        support_text += (f", or moved more than {rule.flip_threshold:g} of the crop's height between the crop and "
                         "its mirror image")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{REVIEW_TITLE}
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
to be wrong. Hover a crop for its path and missing keypoints. Set a wrong verdict with its selector, tick
"checked" under a verdict you looked at and found right (the data card counts it as checked by hand), then
<button onclick="downloadCorrections()">download corrections</button> and pass the CSV to
<code>opreid-bench classify --corrections</code>.</p>
<p>{nav}</p>
{"".join(sections)}
<script>
function downloadCorrections() {{
  const rows = ["source_path,occluded,checked"];
  for (const s of document.querySelectorAll("select[data-path]")) {{
    const box = s.closest("figcaption").querySelector("input[data-checked]");
    const checked = box !== null && box.checked;
    if (s.value !== "undetermined" && (s.value !== s.dataset.auto || checked)) {{
      rows.push('"' + s.dataset.path.replace(/"/g, '""') + '",' + s.value + "," + (checked ? "y" : ""));
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
