"""The annotate stage: keypoint cache, resume after a kill, bad files listed, workers, and the two CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from opreid_bench.cli import main as cli_main
from opreid_bench.splits.annotate import annotate_pool, read_report
from opreid_bench.splits.cache import read_h5, read_keypoints
from opreid_bench.splits.classify import LABEL_COLUMNS
from opreid_bench.splits.keypoints import COCO17_NAMES


def make_pool(root, n: int) -> tuple[list[str], str]:
    """``n`` small JPEG crops and a precomputed CSV with keypoints for each (every 3rd one has its legs hidden)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths, rows = [], []
    for i in range(n):
        p = root / f"{i:04d}_c{i % 3 + 1}_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (48, 24, 3), dtype=np.uint8)).save(p, quality=90)
        xy = np.stack([np.full(17, 12.0), np.linspace(2, 46, 17)], axis=1) + rng.normal(0, 0.5, (17, 2))
        score = np.full(17, 0.99)
        if i % 3 == 0:
            score[13:] = 0.05  # knees and ankles hidden
        rows.append([str(p)] + np.concatenate([xy, score[:, None]], axis=1).reshape(-1).round(4).tolist())
        paths.append(str(p))
    header = ["source_path"] + [f"{k}_{c}" for k in COCO17_NAMES for c in ("x", "y", "score")]
    csv = root / "keypoints.csv"
    pd.DataFrame(rows, columns=header).to_csv(csv, index=False)
    return paths, f"precomputed:{csv}"


def arrays(h5) -> dict:
    entries, backend = read_h5(h5)
    return {k: (e.sha1, e.keypoints.xy.tolist(), e.keypoints.score.tolist(), e.keypoints.image_size)
            for k, e in entries.items()}


def test_bad_files_are_skipped_and_listed_never_a_crash(tmp_path):
    paths, spec = make_pool(tmp_path / "pool", 4)
    corrupt = tmp_path / "pool" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    text = tmp_path / "pool" / ".DS_Store"
    text.write_bytes(b"\x00\x00\x00\x01Bud1")
    gone = str(tmp_path / "pool" / "gone.jpg")
    unlisted = tmp_path / "pool" / "unlisted.jpg"
    Image.new("RGB", (20, 40), "gray").save(unlisted)
    out = annotate_pool(paths + [str(corrupt), str(text), gone, str(unlisted)], tmp_path / "ann", backend=spec,
                        batch_size=2, progress=False)
    kps = read_keypoints(out)
    assert sorted(kps) == sorted(paths)
    assert kps[paths[1]].image_size == (24, 48)
    report = read_report(tmp_path / "ann")
    reasons = {s["source_path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {str(corrupt), str(text), gone, str(unlisted)}
    assert "not a readable image" in reasons[str(corrupt)] and "not a readable image" in reasons[str(text)]
    assert reasons[gone].startswith("unreadable") and "no keypoints" in reasons[str(unlisted)]
    assert report["complete"] and report["annotated"] == 4 and report["stored"] == 4
    assert not (tmp_path / "ann" / "keypoints.h5.parts").exists()


def test_a_killed_run_resumes_and_equals_an_uninterrupted_run(tmp_path):
    paths, spec = make_pool(tmp_path / "pool", 10)
    full = annotate_pool(paths, tmp_path / "full", backend=spec, batch_size=3, progress=False)

    def kill_after_first_batch(done: int) -> None:
        raise KeyboardInterrupt  # what Ctrl-C or a kill between two batches leaves behind

    with pytest.raises(KeyboardInterrupt):
        annotate_pool(paths, tmp_path / "killed", backend=spec, batch_size=3, progress=False,
                      on_batch=kill_after_first_batch)
    assert not (tmp_path / "killed" / "keypoints.h5").exists()
    assert len(list((tmp_path / "killed" / "keypoints.h5.parts").glob("part-*.h5"))) == 1
    resumed = annotate_pool(paths, tmp_path / "killed", backend=spec, batch_size=3, progress=False)
    report = read_report(tmp_path / "killed")
    assert (report["cached"], report["annotated"]) == (3, 7)
    assert arrays(resumed) == arrays(full)
    assert resumed.read_bytes() == full.read_bytes()  # sorted rows, no timestamps: the very same file


def test_limit_stops_early_and_a_rerun_completes(tmp_path):
    paths, spec = make_pool(tmp_path / "pool", 6)
    annotate_pool(paths, tmp_path / "ann", backend=spec, limit=4, progress=False)
    report = read_report(tmp_path / "ann")
    assert not report["complete"] and report["stored"] == 4
    annotate_pool(paths, tmp_path / "ann", backend=spec, progress=False)
    report = read_report(tmp_path / "ann")
    assert report["complete"] and (report["cached"], report["annotated"]) == (4, 2)


def test_changed_content_is_annotated_again_and_backends_do_not_mix(tmp_path):
    paths, spec = make_pool(tmp_path / "pool", 4)
    annotate_pool(paths, tmp_path / "ann", backend=spec, progress=False)
    before = read_h5(tmp_path / "ann" / "keypoints.h5")[0][paths[0]].sha1
    Image.new("RGB", (24, 48), "red").save(paths[0])
    annotate_pool(paths, tmp_path / "ann", backend=spec, progress=False)
    report = read_report(tmp_path / "ann")
    assert (report["cached"], report["annotated"]) == (3, 1)
    assert read_h5(tmp_path / "ann" / "keypoints.h5")[0][paths[0]].sha1 != before
    # the cache is keyed by the keypoint file's content: a copy hits it, an edited file is annotated again
    other = tmp_path / "other.csv"
    other.write_text((tmp_path / "pool" / "keypoints.csv").read_text())
    annotate_pool(paths, tmp_path / "ann", backend=f"precomputed:{other}", progress=False)
    assert (read_report(tmp_path / "ann")["cached"], read_report(tmp_path / "ann")["annotated"]) == (4, 0)
    other.write_text(other.read_text().replace("0.99", "0.98"))
    annotate_pool(paths, tmp_path / "ann", backend=f"precomputed:{other}", progress=False)
    assert (read_report(tmp_path / "ann")["cached"], read_report(tmp_path / "ann")["annotated"]) == (0, 4)


def test_worker_processes_give_the_same_file(tmp_path):
    paths, spec = make_pool(tmp_path / "pool", 8)
    one = annotate_pool(paths, tmp_path / "one", backend=spec, progress=False)
    two = annotate_pool(paths, tmp_path / "two", backend=spec, workers=2, batch_size=3, progress=False)
    assert two.read_bytes() == one.read_bytes()


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_annotate_and_classify_commands(tmp_path, capsys):
    paths, spec = make_pool(tmp_path / "pool", 6)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": paths, "pid": [int(p.split("/")[-1][:4]) for p in paths],
                  "camid": [1, 2, 3, 1, 2, 3]}).to_csv(manifest, index=False)
    code, out, err = run_cli(["annotate", "--pool", str(manifest), "--out", str(tmp_path / "ann"), "--pose", spec,
                              "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["stored"] == 6 and report["complete"]
    labels = tmp_path / "labels.csv"
    fixes = tmp_path / "fixes.csv"
    fixes.write_text(f"source_path,occluded\n{paths[1]},1\n")
    code, out, err = run_cli(["classify", "--keypoints", str(tmp_path / "ann"), "--out", str(labels),
                              "--threshold", "0.5", "--corrections", str(fixes), "--review",
                              str(tmp_path / "review.html"), "--review-order", "label", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["crops"], summary["occluded"], summary["corrected"]) == (6, 3, 1)
    df = pd.read_csv(labels)
    assert list(df.columns) == LABEL_COLUMNS
    assert df["occluded"].tolist() == [True, True, False, True, False, False]
    page = (tmp_path / "review.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 6 and "occluded: 3 crops" in page and "holistic: 3 crops" in page
    code, out, err = run_cli(["classify", "--keypoints", str(tmp_path / "ann"), "--out", str(labels), "--review",
                              str(tmp_path / "head.html"), "--review-limit", "2"], capsys)
    assert code == 0, err
    head = (tmp_path / "head.html").read_text()
    assert head.count("<select data-path=") == 2 and "6 crops, undetermined first" in head
    code, out, err = run_cli(["classify", "--keypoints", str(tmp_path / "nothing"), "--out", str(labels)], capsys)
    assert code == 2 and "keypoint file not found" in err and "Traceback" not in err
