"""DATA_CARD.md and occlusion_stats.png for a built split: the paper's Table 2 columns for this split.

The table has, per split, identities and images, plus cameras and the occluded share (Table 2's "Cams" and
"Occlusion" columns, here as numbers). When the protocol carries the paper's ``published`` numbers they are shown in a
second row for comparison. The plot shows the occluded share per split, the distribution of the longest run of
missing keypoints, and how often each COCO-17 keypoint is missing.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opreid_bench.atomic import atomic_path, atomic_write_text
from opreid_bench.splits.keypoints import COCO17_NAMES
from opreid_bench.splits.protocol import SplitProtocol
from opreid_bench.splits.sample import queries_without_cross_camera_match, split_summary
from opreid_bench.splits.writer import market_name, parse_masks

PLOT_NAME = "occlusion_stats.png"
SPLITS = ("train", "query", "gallery")


def plot_occlusion(manifest: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Three panels: occluded share per split, longest missing run histogram, missing rate per keypoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    occ = manifest["occluded"].astype(str).str.lower().isin(["true", "1"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    shares = [float(occ[manifest["split"] == s].mean()) if (manifest["split"] == s).any() else 0.0 for s in SPLITS]
    axes[0].bar(SPLITS, shares, color=["tab:blue", "tab:red", "tab:green"])
    axes[0].set_ylim(0, 1.12)
    axes[0].set_ylabel("occluded share")
    axes[0].set_title("Occluded crops per split")
    for i, v in enumerate(shares):
        axes[0].text(i, v + 0.02, f"{v:.1%}", ha="center")
    runs = manifest["longest_missing_run"].astype(int)
    bins = np.arange(0, max(int(runs.max()) if len(runs) else 0, 17) + 2) - 0.5
    for s in SPLITS:
        axes[1].hist(runs[manifest["split"] == s], bins=bins, alpha=0.5, label=s)
    axes[1].set_xlabel("longest run of missing keypoints")
    axes[1].set_ylabel("crops")
    axes[1].set_title("Longest missing run")
    axes[1].legend()
    missing = manifest["missing_keypoints"].fillna("").astype(str)
    counts = {n: 0 for n in COCO17_NAMES}
    for entry in missing:
        for name in filter(None, entry.split(";")):
            if name in counts:
                counts[name] += 1
    rates = [counts[n] / max(1, len(manifest)) for n in COCO17_NAMES]
    axes[2].barh(COCO17_NAMES[::-1], rates[::-1], color="tab:gray")
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("share of crops where missing")
    axes[2].set_title("Missing keypoints")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def _mask_counts(df: pd.DataFrame) -> str:
    """How the masks were placed; crops masked by the head prior (no head located) are named for review."""
    method = df["mask_method"].astype(str)
    base = method.str.split("+").str[0]
    parts = [f"{int((base == 'keypoints').sum()):,} from head keypoints",
             f"{int((base == 'haar').sum()):,} by the Haar face detector",
             f"{int((base == 'prior').sum()):,} by the head prior (no head located: check these crops)"]
    extra = int(method.str.contains("faces").sum())
    if extra:
        parts.append(f"{extra:,} with further faces masked (bystanders)")
    hand = int(method.str.contains("hand").sum())
    if hand:
        parts.append(f"{hand:,} with faces boxed by hand (`--face-boxes`)")
    reviewed = int(method.str.contains("reviewed").sum())
    if reviewed:
        parts.append(f"{reviewed:,} with masks of the reviewed masking that this masking had left open, masked again "
                     "(`--face-boxes`, kind `reviewed`)")
    late = int(method.str.contains("verify").sum())
    if late:
        parts.append(f"{late:,} with a face the closing verification found and masked")
    none = int((method == "none").sum())
    text = " (" + ", ".join(parts) + (f"; {none:,} left unmasked" if none else "") + ")."
    if "masks" in df.columns:
        kinds = Counter(k for row in df["masks"].fillna("").astype(str) for k, _ in parse_masks(row))
        if kinds:
            text += " Masks by kind: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())) + "."
    prior = df.loc[base == "prior", "path"].astype(str).tolist() if "path" in df.columns else []
    if prior:
        text += " Head prior: " + ", ".join(f"`{p}`" for p in prior[:20]) + (" ..." if len(prior) > 20 else "") + "."
    return text


def _masking_lines(mask: str | None, faces: str | None) -> list[str]:
    """What the Privacy section says of the masking that ran: every face (with the verification), the main face only,
    or none (the crops were copied as they were)."""
    verify = ("`opreid-bench mask --verify --out` this folder checks the images and exits non-zero when a plausible "
              "face is left.")
    if not mask:
        return ["", "**Warning: no face was masked (`--mask none`): the crops were copied as the pool holds them. "
                "Publish this split only if the pool's faces were masked before (e.g. by `opreid-bench mask`).** "
                + verify]
    if str(mask).endswith("+main"):
        return ["", "**Warning: only the main person's face was masked (`--main-face-only`), and what the "
                "`--face-boxes` file listed (faces boxed by hand, masks of a reviewed masking). Bystanders' faces were not searched for, and no closing verification ran; a "
                "split that shows a bystander's face cannot be published.** " + verify]
    if str(mask).endswith("+outside"):
        return ["Every face found was masked, bystanders' included, and everything outside the main person's body "
                "below the shoulders was masked too (`--mask-outside-body`, kind `outside`): the band above the "
                "shoulders across the whole crop and the crop's sides beside the body. Bystanders' faces left there "
                "by the detectors are covered; a bystander in front of or behind the main person's body is not. "
                f"A closing verification looked again on the masked crops. {verify} {FACES_OUTSIDE_MEASURED}",
                *_face_source_lines(faces)]
    return ["Every face found was masked, bystanders' included, and a closing verification looked again on the "
            f"masked crops. {verify} {FACES_MEASURED}", *_face_source_lines(faces)]


def _face_source_lines(faces: str | None) -> list[str]:
    """The face detectors that ran, and a warning for each small-face detector (MTCNN, YuNet) that was not installed."""
    if not faces:
        return []
    from opreid_bench.splits.all_faces import face_source_names, missing_face_detectors

    names = face_source_names(faces)
    lines = ["", f"Face detectors: {', '.join(names)} (`{faces}`)."]
    for warning in missing_face_detectors(faces):
        lines += ["", f"**Warning: {warning}**"]
    return lines


def _fmt(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def render_data_card(
    manifest: pd.DataFrame,
    protocol: SplitProtocol,
    *,
    seed: int,
    pose: str,
    mask: str | None,
    pool: str,
    pool_size: int,
    skipped: list[str] | None = None,
    labelling: dict[str, Any] | None = None,
    faces: str | None = None,
    labels_file: str | None = None,
    set_aside_unstable: int | None = None,
) -> str:
    """The markdown text of DATA_CARD.md (deterministic: no timestamps).

    ``labels_file`` names the labels ``sample`` sampled from (``pose`` is then not used: no pose ran).
    ``set_aside_unstable``: crops with an unstable label left out before sampling (``--unstable exclude``; None when
    they were kept).

    ``labelling`` (from :func:`labelling_summary`) adds how the pool was labelled: the rule, and how many crops were
    occluded, holistic and *undetermined* (no person found; left out of sampling unless the user decided).
    ``faces`` (:func:`opreid_bench.splits.all_faces.face_sources`) names the face detectors that ran; without MTCNN
    the card warns that small bystanders' faces are more often missed.
    """
    df = manifest.copy()
    df["occluded"] = df["occluded"].astype(str).str.lower().isin(["true", "1"])
    if "source_camid" in df.columns:  # count the pool's cameras (unknown cameras are not a camera)
        df["camid"] = df["source_camid"]
    stats = split_summary(df)
    sc = queries_without_cross_camera_match(df) if "role" in df.columns else None
    masked = df["face_masked"].astype(str).str.lower().isin(["true", "1"])
    lines = [
        f"# Data card: {protocol.name} split",
        "",
        (f"Built by `opreid-bench build-split` from the pool `{pool}` ({pool_size:,} crops) with protocol "
         f"`{Path(protocol.source).name}`, seed {seed}, pose backend `{pose}`, face mask `{mask or 'none'}`."
         if labels_file is None else
         f"Built by `opreid-bench sample` from the pool `{pool}` ({pool_size:,} crops) and the labels file "
         f"`{labels_file}`, with protocol `{Path(protocol.source).name}`, seed {seed}, face mask `{mask or 'none'}`."),
        ("The same pool (its path spelled the same way), protocol, seed and options rebuild this folder byte for "
         "byte." if labels_file is None else
         "The same pool and labels file (their paths spelled the same way), protocol, seed and options rebuild this "
         "folder byte for byte."),
        "",
        "## Statistics (the columns of the paper's Table 2)",
        "",
        "| | Train #IDs | Train #Imgs | Query #IDs | Query #Imgs | Gallery #IDs | Gallery #Imgs | Overall #IDs | "
        "Overall #Imgs | Cams |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    s = stats
    lines.append(
        f"| this split | {s['train']['ids']:,} | {s['train']['images']:,} | {s['query']['ids']:,} | "
        f"{s['query']['images']:,} | {s['gallery']['ids']:,} | {s['gallery']['images']:,} | {s['overall']['ids']:,} | "
        f"{s['overall']['images']:,} | {s['overall']['cameras']:,} |"
    )
    pub = protocol.published
    if pub:
        def g(k: str, f: str) -> str:
            return _fmt((pub.get(k) or {}).get(f, "-"))

        lines.append(
            f"| published | {g('train', 'ids')} | {g('train', 'images')} | {g('query', 'ids')} | "
            f"{g('query', 'images')} | {g('gallery', 'ids')} | {g('gallery', 'images')} | {g('overall', 'ids')} | "
            f"{g('overall', 'images')} | {_fmt(pub.get('cameras', '-'))} |"
        )
    lines += [
        "",
        "| split | occluded share | cameras |",
        "|---|---|---|",
    ]
    for name in ("train", "query", "gallery", "overall"):
        lines.append(f"| {name} | {s[name]['occluded_share']:.1%} | {s[name]['cameras']:,} |")
    if pub.get("source"):
        lines += ["", f"Published numbers: {pub['source']}."]
    p = protocol
    lines += [
        "",
        "## How it was sampled",
        "",
        "- Occluded: at least the classifier's `min_missing_run` sequential keypoints missing (see `classify`).",
        f"- Query: occluded crops, {p.query_images_per_id[0]}-{p.query_images_per_id[1]} per identity.",
        f"- Gallery: per query identity exactly {p.per_query_occluded} occluded + {p.per_query_holistic} holistic crop "
        "that are not its query crops, from another camera where the pool has one"
        + (_cross_camera_text(sc) if sc is not None else "")
        + f"; each distractor identity adds {p.distractor_occluded[0]}-{p.distractor_occluded[1]} occluded and "
        f"{p.distractor_holistic[0]}-{p.distractor_holistic[1]} holistic crops.",
        f"- Train: identities disjoint from all test identities, {p.train_images_per_id[0]}-{p.train_images_per_id[1]} "
        f"crops each, {_share(p.train_occluded_fraction)} occluded.",
        *(_labelling_lines(labelling) if labelling else
          ["", "## Occlusion labels of the pool", "",
           f"Read from `{labels_file}`. Where `classify`'s rule gave them: {MEASURED_ACCURACY}"] if labels_file else []),
        *_reliability_lines(df, set_aside_unstable),
        "",
        "## Privacy",
        "",
        f"Faces masked: {int(masked.sum()):,} of {len(df):,} crops" + (_mask_counts(df) if "mask_method" in df.columns
                                                                        else "."),
        *_masking_lines(mask, faces),
        "",
        "## Files",
        "",
        "- `bounding_box_train/`, `query/`, `bounding_box_test/`: crops named "
        f"`{{pid:04d}}_c{{camid}}s1_{{index:06d}}_00.jpg` (e.g. `{market_name(1, 2, 3)}`); pid relabelled 1..N "
        "(`pid_map.csv`), camera 1..C (`camera_map.csv`; unknown cameras: C+1 in the query, C+2 elsewhere).",
        "- `manifest.csv`: path, source_path, pid, camid, split, occluded, missing_keypoints, longest_missing_run, "
        "face_masked, label_stability, label_source (rule, hand or policy; both empty when the labels file did not "
        "say).",
        "- `face_masks.csv`: path, masks (each mask as kind@left,top,right,bottom; `mask --verify` skips faces under "
        "them).",
        "- `keypoints.h5`: COCO-17 keypoints of the crops in this split, keyed by source path (the pool's path).",
        f"- `{PLOT_NAME}`: occluded share per split, longest missing run, missing rate per keypoint.",
        "",
        "Before publishing: `.annotate/` (when `build-split` ran the pose stage) is a cache of the whole pool's "
        "keypoints, not part of the split; leave it out. `manifest.csv`, `keypoints.h5` and `split.csv` (when "
        "`sample` wrote one: every chosen crop with its split, role and pool pid) name each crop's path in the pool: "
        "drop or rewrite those paths if they say more than they should.",
    ]
    if skipped:
        lines += ["", f"## Skipped crops ({len(skipped)})", "", "Unreadable or non-image files, left out:", ""]
        lines += [f"- `{x}`" for x in skipped[:200]]
        if len(skipped) > 200:
            lines.append(f"- ... and {len(skipped) - 200} more")
    lines += ["", f"![occlusion statistics]({PLOT_NAME})", ""]
    return "\n".join(lines)


def labelling_summary(labels: pd.DataFrame, rule: Any, undetermined: str) -> dict[str, Any]:
    """What the data card says about the pool's labels: the rule's settings and the label counts before sampling."""
    label = labels["label"].astype(str)
    return {
        "crops": len(labels),
        "occluded": int((label == "occluded").sum()),
        "holistic": int((label == "holistic").sum()),
        "undetermined": int((label == "undetermined").sum()),
        "undetermined_policy": undetermined,
        "corrected": int(labels.attrs.get("corrected", 0)),
        "score_threshold": rule.score_threshold,
        "support_threshold": rule.support_threshold,
        "min_missing_run": rule.min_missing_run,
        "chains": rule.chains if isinstance(rule.chains, str) else "custom",
        "cut_margin": getattr(rule, "cut_margin", None),
        "people_cover": bool(getattr(rule, "people_cover", False)),
        "flip_threshold": getattr(rule, "flip_threshold", None),
        "flip_measured": int(labels.attrs.get("flip_measured", 0)),
        "undetermined_paths": labels.loc[label == "undetermined", "source_path"].astype(str).tolist(),
    }


# What benchmarks/bench_occlusion.py measured for the default rule, one hand-labelled set left out at a time (its
# settings chosen on the others); docs/concepts/occlusion-rule.md has the table.
MEASURED_ACCURACY = (
    "Measured accuracy of the default rule with BlazePose, one labelled set left out at a time "
    "(`benchmarks/bench_occlusion.py`, 2026-12-07, opreid-bench 0.2.0): balanced accuracy Partial-REID 0.85, "
    "CUHK03 0.84, GRID 0.56, PRID 2011 0.59, VIPeR 0.45. It holds on "
    "sharp crops and is near chance on low-resolution crowded ones (GRID, PRID 2011, VIPeR): on such a pool check "
    "the labels on the review sheet (`classify --review`, least stable labels first) and correct them "
    "(`--corrections`)."
)


# What benchmarks/bench_occlusion.py (``errors_by_stability`` of ``review_budget``) measured for unstable labels, one
# hand-labelled set left out at a time; docs/concepts/occlusion-rule.md has the table.
STABILITY_MEASURED = (
    "On the hand-labelled sets, each left out in turn (`benchmarks/bench_occlusion.py`, 2026-12-07, opreid-bench "
    "0.2.0), unstable labels were wrong for 61% (Partial-REID), 68% (CUHK03), 73% (GRID), 63% (PRID 2011) and 80% "
    "(VIPeR) of their crops, the other labels for 12%, 5%, 33%, 18% and 3%."
)


# What benchmarks/bench_faces.py measured for the default masking on the hand-boxed crowded crops
# (benchmarks/labels/faces_heads*.csv); docs/concepts/occlusion-rule.md has the tables.
FACES_MEASURED = (
    "Face detectors miss faces, above all bystanders' heads cut by the crop's border or in front of the main "
    "person: on hand-boxed crowded crops of GRID, Partial-REID, CUHK03, PRID 2011 and VIPeR the default masking left "
    "5 of 50, 5 of 27, 19 of 61, 13 of 58, 14 of 58, 16 of 70 and 15 of 52 faces visible (`benchmarks/bench_faces.py`, "
    "2026-12-07, opreid-bench 0.2.0, with MTCNN and YuNet; YuNet's settings were chosen on the first five sets, the "
    "last was held out for them). Before publishing a crowded split, look at every crop on the sheet of "
    "`opreid-bench mask --review-faces`, box what is left, and build again with `--face-boxes` (counted above as kind "
    "`hand`)."
)


# The same crops masked with --mask-outside-body (benchmarks/bench_faces.py --outside-body-too).
FACES_OUTSIDE_MEASURED = (
    "On the same hand-boxed crowded crops it left 3 of 50, 3 of 27, 6 of 61, 9 of 58, 10 of 58, 11 of 70 and 7 of 52 "
    "faces visible by the head box (all but one of them bystanders' beside, over or in front of the main person's "
    "body) where the default left 5, 5, 19, 13, 14, 16 and 15, and masked 25-35% of a crop's area on average; below "
    "the shoulders it kept at least half the crop's width in every crop (median 83-100% by set); on the last four "
    "sets it masked a median 5.4% (in-sample), 6.9%, 5.4% and 8.1% of the main person's hand-boxed body (the top of "
    "the shoulders, and a limb or bag beyond the column), more than a tenth in 10 of 52, 10 of 52, 6 of 52 and 17 of "
    "50 crops (`benchmarks/bench_faces.py --outside-body-too --bodies`, 2026-12-07, opreid-bench 0.2.0, with MTCNN "
    "and YuNet). Look at the sheet of `opreid-bench mask --review-faces` all the same."
)


def _share(x: float) -> str:
    """A share as a percentage, with one decimal where the whole number would round it (5.5%, not 6%)."""
    return f"{100 * x:.0f}%" if abs(100 * x - round(100 * x)) < 1e-9 else f"{100 * x:.1f}%"


def _cross_camera_text(sc: dict[str, int]) -> str:
    """What the card says of the query crops without a match from another camera (the junk rule drops the rest)."""
    if not (sc["occluded"] or sc["holistic"] or sc["any"]):
        return f" (every one of the {sc['queries']:,} query crops has its matches from another camera)"
    return (f". Of the {sc['queries']:,} query crops, {sc['occluded']:,} have no occluded match and {sc['holistic']:,} "
            f"no holistic match from another camera ({sc['any']:,} none at all): the Market-1501 junk rule drops a "
            "match from the query's own camera, so `evaluate` skips those queries in that part of the gallery")


def _reliability_lines(df: pd.DataFrame, set_aside_unstable: int | None = None) -> list[str]:
    """Per split: labelled crops, how many a person checked, how many the rule is unsure of and no one checked; and
    how many unstable labels were left out before sampling (``--unstable exclude``)."""
    from opreid_bench.splits.classify import UNSTABLE_BELOW, label_reliability

    rows = {name: label_reliability(df[df["split"] == name]) for name in SPLITS}
    rows["overall"] = label_reliability(df)
    if all(r["checked_by_hand"] is None and r["unstable"] is None for r in rows.values()):
        return ["", "## How far to trust the occlusion labels", "",
                "The labels file carries neither `label_stability` nor `label_source` (`classify` writes both), so "
                "this card cannot say how many labels were checked by hand or how sure the rule was of them."]

    def cell(v: int | None, n: int) -> str:
        return "unknown" if v is None else f"{v:,}" + (f" ({v / n:.0%})" if n else "")

    lines = [
        "",
        "## How far to trust the occlusion labels",
        "",
        "A label's stability is the share of nearby settings of the rule (its score and support thresholds) that give "
        f"the same label. Below {UNSTABLE_BELOW:g}, a quarter or more of them give the other label: such a label is "
        f"*unstable*. {STABILITY_MEASURED}",
        "",
        f"| split | labelled crops | checked by hand | unstable (stability < {UNSTABLE_BELOW:g}), not checked |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        n = int(r["crops"] or 0)
        lines.append(f"| {name} | {n:,} | {cell(r['checked_by_hand'], n)} | {cell(r['unstable'], n)} |")
    if set_aside_unstable is not None:
        lines += ["", f"{set_aside_unstable:,} crops of the pool whose label the rule gave with stability below "
                  f"{UNSTABLE_BELOW:g}, checked by no one, were left out before sampling (`--unstable exclude`)."]
    if rows["query"]["unstable"]:
        lines += ["", "The query's occluded labels are what this benchmark stands on: check its unstable ones on the "
                  "review sheet (`classify --review`, least stable first), correct them (`--corrections`) and build "
                  "again, or leave them out (`--unstable exclude`). `manifest.csv` has each crop's `label_stability` "
                  "and `label_source`."]
    return lines


def _labelling_lines(lab: dict[str, Any]) -> list[str]:
    support = ("visibility only" if lab["support_threshold"] is None
               else f"person-segmentation support below {lab['support_threshold']:g}")
    policy = {"exclude": "left out of sampling",
              "occluded": "counted as occluded (--undetermined occluded)",
              "holistic": "counted as holistic (--undetermined holistic)"}[lab["undetermined_policy"]]
    extra = []
    if lab.get("cut_margin") is not None:
        extra.append(f"placed more than {lab['cut_margin']:g} of the crop beyond its border by the detected body "
                     "(a body cut by the border)")
    if lab.get("people_cover"):
        extra.append("inside another person standing in front")
    if lab.get("flip_threshold") is not None and lab.get("flip_measured"):
        extra.append(f"moved more than {lab['flip_threshold']:g} of the crop's height between the crop and its "
                     f"mirror image (measured on {lab['flip_measured']} crops: `--pose mediapipe:flip=1`)")
    reasons = [f"score below {lab['score_threshold']:g}", "outside the crop", support, *extra]
    lines = [
        "",
        "## Occlusion labels of the pool",
        "",
        f"Rule: occluded when at least {lab['min_missing_run']} sequential keypoints (chains `{lab['chains']}`) are "
        f"missing: {', '.join(reasons[:-1])}, or {reasons[-1]}.",
        "",
        MEASURED_ACCURACY,
        "",
        "| crops | occluded | holistic | undetermined (no person found) | corrected by hand |",
        "|---|---|---|---|---|",
        f"| {lab['crops']:,} | {lab['occluded']:,} | {lab['holistic']:,} | {lab['undetermined']:,} | "
        f"{lab['corrected']:,} |",
        "",
        f"Undetermined crops are {policy}."
        + (" Review them: " + ", ".join(f"`{x}`" for x in lab["undetermined_paths"][:20])
           + (" ..." if len(lab["undetermined_paths"]) > 20 else "") + "." if lab["undetermined_paths"] else ""),
    ]
    return lines


def write_data_card(out_dir: str | os.PathLike[str], manifest: pd.DataFrame, protocol: SplitProtocol, **kw: Any) -> Path:
    """Write DATA_CARD.md and occlusion_stats.png into ``out_dir``; returns the card's path."""
    out = Path(out_dir)
    plot_occlusion(manifest, out / PLOT_NAME)
    card = out / "DATA_CARD.md"
    atomic_write_text(card, render_data_card(manifest, protocol, **kw))
    return card
