"""Do the offline people detectors see the other people in a crowded crop? Measured against hand labels.

The occlusion rule counts a keypoint of the main person as missing when it falls inside another person standing in
front (``opreid_bench.splits.people``), so the rule can only be as good as the detector that finds that person. The
hand-labelled sets ``grid_occlusion.csv``, ``prid2011_occlusion.csv`` and ``viper_occlusion.csv``
(``benchmarks/labels/README.md``) say for every crop whether any part of another person is visible
(``other_person``) and whether the main person is occluded (``occluded``). Two detectors that run offline:

- ``blazepose``: the person detector of BlazePose that the pose stage runs (``annotate``'s default backend; keypoints
  cached under ``--cache``, keyed by content): another person is found when it returns two people or more.
- ``hog``: OpenCV's HOG people detector with its default people SVM (``cv2.HOGDescriptor_getDefaultPeopleDetector``),
  on the crop scaled to 256 px high and padded by a grey border (64 px left and right, 32 px top and bottom, so people
  at the border fit its 64 x 128 window); detections with an SVM weight of at least 0.5 count, and one counts as
  another person when its centre lies outside the crop's central half or it is less than 60% of the crop's height
  (the main person fills the crop's centre from top to bottom).

For each set and detector: ``found_other``, the share of crops with another person (by hand) where the detector finds
one; ``found_on_occluded``, the same on the occluded crops; ``false_other``, the share of crops with nobody else
where it reports someone. Counts with each share, and a 95% Wilson interval.

\\b
Examples:
  python benchmarks/bench_people.py
  python benchmarks/bench_people.py --json
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from opreid_bench.evaluation.proportions import wilson_interval

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
LABELS = REPO / "benchmarks" / "labels"
SETS = {"grid": "grid_occlusion.csv", "prid2011": "prid2011_occlusion.csv", "viper": "viper_occlusion.csv"}
DETECTORS = ("blazepose", "hog")
HOG_HEIGHT = 256
HOG_PAD = (32, 64)  # top/bottom, left/right
HOG_MIN_WEIGHT = 0.5


def read_set(name: str) -> list[dict[str, str]]:
    """The hand-labelled rows of one set (``file``, ``occluded``, ``other_person``)."""
    with open(LABELS / SETS[name], newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["occluded"] in ("0", "1")]


def hog_finds_another(path: Path) -> bool:
    """True when OpenCV's HOG people detector finds a person other than the one the crop is centred on."""
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        raise click.ClickException(f"{path}: cannot read image")
    h, w = img.shape[:2]
    scale = HOG_HEIGHT / h
    img = cv2.resize(img, (max(1, round(w * scale)), HOG_HEIGHT), interpolation=cv2.INTER_CUBIC)
    (pt, pl), width = HOG_PAD, img.shape[1]
    padded = cv2.copyMakeBorder(img, pt, pt, pl, pl, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, weights = hog.detectMultiScale(padded, winStride=(8, 8), padding=(16, 16), scale=1.05)
    for (x, _y, rw, rh), weight in zip(rects, np.ravel(weights) if len(rects) else []):
        if weight < HOG_MIN_WEIGHT:
            continue
        centre = x + rw / 2 - pl
        if abs(centre - width / 2) > width / 4 or rh < 0.6 * HOG_HEIGHT:
            return True
    return False


def share(hits: int, n: int) -> dict[str, object]:
    """A count as a share with its 95% Wilson interval."""
    return {"found": hits, "of": n, "share": round(hits / n, 3) if n else None,
            "ci95": [round(v, 3) for v in wilson_interval(hits, n)] if n else None}


def measure(data_root: Path, cache: Path, workers: int, progress: bool) -> dict[str, dict[str, object]]:
    """Per set and detector: found_other, found_on_occluded, false_other (module docstring)."""
    from opreid_bench.splits.annotate import annotate_pool
    from opreid_bench.splits.cache import read_keypoints

    rows = {name: read_set(name) for name in SETS}
    paths = [str(data_root / r["file"]) for rs in rows.values() for r in rs]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise click.ClickException(f"{missing[0]}: listed in {LABELS} but not found (--data)")
    kp_dir = cache / "kp_mediapipe"
    annotate_pool(sorted(set(paths)), kp_dir, backend="mediapipe", workers=workers, progress=progress)
    kps = read_keypoints(kp_dir)
    result: dict[str, dict[str, object]] = {}
    for name, rs in rows.items():
        other = np.array([r["other_person"] == "1" for r in rs])
        occluded = np.array([r["occluded"] == "1" for r in rs])
        found = {
            "blazepose": np.array([
                (kp := kps.get(str(data_root / r["file"]))) is not None and kp.people is not None
                and len(kp.people) >= 2 for r in rs]),
            "hog": np.array([hog_finds_another(data_root / r["file"]) for r in rs]),
        }
        result[name] = {"crops": len(rs), "with_other_person": int(other.sum()), "occluded": int(occluded.sum()),
                        **{d: {"found_other": share(int((f & other).sum()), int(other.sum())),
                               "found_on_occluded": share(int((f & occluded).sum()), int(occluded.sum())),
                               "false_other": share(int((f & ~other).sum()), int((~other).sum()))}
                           for d, f in found.items()}}
    return result


def _cell(s: dict[str, object]) -> str:
    ci = s["ci95"]
    return f"{s['found']}/{s['of']} ({s['share']:.0%}; {ci[0]:.0%}-{ci[1]:.0%})" if s["of"] else "-"  # type: ignore[index]


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, help=__doc__)
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="folder the label files' paths are relative to (../shared/data)")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="keypoint cache folder (default: a folder in the system temp dir; keyed by content)")
@click.option("--workers", default=2, show_default=True, help="pose worker processes")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
def main(data_root: Path, cache: Path | None, workers: int, as_json: bool) -> None:
    """Other people found by each detector on the hand-labelled crowded sets: a table, and JSON with ``--json``."""
    from rich.console import Console
    from rich.table import Table

    if not data_root.is_dir():
        raise click.ClickException(f"{data_root}: data folder not found (--data)")
    cache = cache or Path(tempfile.gettempdir()) / "opreid_bench_people"
    cache.mkdir(parents=True, exist_ok=True)
    result = measure(data_root, cache, workers, progress=not as_json)
    table = Table(title="other people found by offline detectors, against hand labels")
    for col in ("set", "detector", "crops with another person: found", "occluded crops: another found",
                "crops with nobody else: someone reported"):
        table.add_column(col, justify="right")
    for name, row in result.items():
        for d in DETECTORS:
            r = row[d]
            table.add_row(name, d, _cell(r["found_other"]), _cell(r["found_on_occluded"]),  # type: ignore[index]
                          _cell(r["false_other"]))  # type: ignore[index]
    Console(stderr=as_json, width=150).print(table)
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
