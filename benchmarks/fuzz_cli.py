"""Fuzz the real CLI with generated malformed inputs and count the tracebacks (there must be none).

Each case writes one family of input files, breaks them (a key deleted, renamed with a typo or added; a value
replaced by the wrong type, NaN, inf, a huge or negative number; a file truncated, emptied or filled with noise), runs
one ``opreid-bench`` command on them in-process (``opreid_bench.cli.main``, exactly what the console script runs) and
records the exit code. A *traceback* is any exception that escapes ``main`` (the console script would print a
Python traceback and exit 1) or a ``Traceback`` in the captured output (e.g. from a worker process). Exit code 2 with
one ``error:`` line is the expected answer to bad input; 0 means the input was still valid.

Families (cases are spread over them round-robin, each drawn from ``--seed`` and its index, so a run is
reproducible case by case): pool manifest CSVs (``datasets verify manifest``, ``annotate``, ``mask``,
``build-split``), split protocols (``build-split``), method configs (``train --config``) and ``--set`` values
(``train``), keypoint files in the three precomputed formats -- COCO JSON, an OpenPose folder, CSV -- (``annotate``
and ``build-split``), HDF5 feature files (``evaluate``, ``search``), run directories and ``results.json``
(``leaderboard``), labels and corrections CSVs (``sample``, ``classify``), face boxes CSVs (``mask --face-boxes``,
with and without ``--review-faces``, and ``sample --face-boxes``), pool formats, ``--pattern`` regexes and
dataset ``--option`` values (``annotate``, ``datasets verify``), and output paths that cannot be written (a file where a folder belongs, a folder where a file
belongs, the input itself). ``train`` cases stop at the dataset (a missing ``--root``) so that a valid config costs
no training; model construction is covered by the engine's tests.

Usage::

    python benchmarks/fuzz_cli.py --json                 # 1,200 cases on 2 processes, a few minutes
    python benchmarks/fuzz_cli.py --cases 200 --seed 3 --keep /tmp/fuzz   # keep failing cases' files

Before the cases, the unbroken base inputs run through each command once ("controls"): all must exit 0, so that a
fixture gone stale (every case failing early for one reason) or a command refusing valid input shows up.

Prints ``{"cases": n, "tracebacks": 0, "controls_ok": "12/12", "exit_codes": {...}, ...}`` with ``--json``;
otherwise a table per family. Exit status 1 when a case gave a traceback or a control failed.
Every traceback lists the family, the command line and the exception; with ``--keep`` the inputs stay on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CASE_TIMEOUT_S = 60

# Values that break a field of the wrong type or range.
JUNK: list[Any] = [None, True, False, "abc", "", "-1", "1e9", -1, 0, 1, 2, 7, 10**12, -(10**12), 0.5, -0.5, 1e308,
                   float("nan"), float("inf"), -float("inf"), [], {}, [1, 2], [1, 2, 3], [[1]], {"a": 1}, "x" * 300,
                   "../../etc/passwd", "ü", [None], ["a", "b"]]


# --------------------------------------------------------------------------------------------------- mutations
def _junk(rng: np.random.Generator) -> Any:
    return copy.deepcopy(JUNK[int(rng.integers(len(JUNK)))])


def _typo(key: str, rng: np.random.Generator) -> str:
    if not key:
        return "x"
    i = int(rng.integers(len(key)))
    kind = int(rng.integers(3))
    if kind == 0:
        return key[:i] + key[i + 1:]  # a letter dropped
    if kind == 1:
        return key[:i] + key[i] + key[i:]  # a letter doubled
    return key + "_"


def _nodes(tree: Any, path: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON-like tree, the root included."""
    out = [path]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree[:8]):  # long lists: their first entries stand for the rest
            out += _nodes(v, (*path, i))
    return out


def _get(tree: Any, path: tuple) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def mutate_tree(tree: Any, rng: np.random.Generator, n: int | None = None) -> Any:
    """1-3 random structural or value mutations of a JSON/YAML-like tree (a deep copy)."""
    tree = copy.deepcopy(tree)
    for _ in range(n or int(rng.integers(1, 4))):
        nodes = _nodes(tree)
        path = nodes[int(rng.integers(len(nodes)))]
        if not path:
            if rng.random() < 0.3:
                return _junk(rng)  # the whole file is of the wrong kind
            continue
        parent, key = _get(tree, path[:-1]), path[-1]
        op = int(rng.integers(6))
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 1 and isinstance(parent, dict):
            parent[_typo(str(key), rng)] = parent.pop(key)
        elif op == 2 and isinstance(parent, dict):
            parent[_typo(str(key), rng) + "_extra"] = _junk(rng)
        elif op == 3:
            parent[key] = [parent[key]]
        elif op == 4 and isinstance(parent, list):
            del parent[key]
        else:
            parent[key] = _junk(rng)
    return tree


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """A text-level fault: truncated, emptied, noise inserted, bytes flipped, a BOM, or binary garbage."""
    op = int(rng.integers(6))
    if op == 0 and data:
        return data[: int(rng.integers(len(data)))]
    if op == 1:
        return b""
    if op == 2:
        i = int(rng.integers(len(data) + 1))
        return data[:i] + bytes(rng.integers(0, 256, int(rng.integers(1, 20))).astype(np.uint8)) + data[i:]
    if op == 3 and data:
        arr = bytearray(data)
        for i in rng.integers(0, len(arr), int(rng.integers(1, 10))):
            arr[int(i)] = int(rng.integers(0, 256))
        return bytes(arr)
    if op == 4:
        return b"\xef\xbb\xbf" + data
    return bytes(rng.integers(0, 256, 200).astype(np.uint8))


def _dump_yaml(tree: Any) -> str:
    import yaml

    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------------------------------- fixtures
def build_base(base: Path) -> dict[str, Any]:
    """The valid inputs every case starts from: a pool with keypoints in 3 formats, a protocol, features, runs."""
    import yaml
    from PIL import Image, ImageDraw

    from opreid_bench.evaluation import FeatureSet, write_feature_file
    from opreid_bench.splits.keypoints import COCO17_NAMES

    rng = np.random.default_rng(0)
    img_dir = base / "pool" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    standing = np.array([[32, 16], [30, 14], [34, 14], [27, 15], [37, 15], [24, 32], [40, 32], [21, 50], [43, 50],
                         [20, 66], [44, 66], [27, 68], [37, 68], [27, 92], [37, 92], [27, 116], [37, 116]], np.float32)
    rows, kps = [], {}
    for i in range(16):
        for j in range(8):
            occluded = j % 3 == 0
            path = img_dir / f"{100 + i}_c{j % 3 + 1}_{j}.png"
            img = Image.new("RGB", (64, 128), tuple(int(v) for v in rng.integers(60, 200, 3)))
            d = ImageDraw.Draw(img)
            d.ellipse([25, 6, 39, 26], fill=(224, 172, 140))
            d.rectangle([22, 28, 42, 68], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            if occluded:
                d.rectangle([0, 80, 63, 127], fill=(90, 90, 90))
            img.save(path)
            score = np.full(17, 0.99, np.float32)
            if occluded:
                score[11:] = 0.05  # hips, knees, ankles missing
            rows.append({"path": str(path), "pid": 100 + i, "camid": j % 3, "split": "train"})
            kps[str(path)] = np.concatenate([standing + rng.normal(0, 0.5, standing.shape), score[:, None]], axis=1)
    for k, r in enumerate(rows):  # a few query / gallery rows so that a manifest *dataset* has all splits
        r["split"] = ("query", "gallery", "train")[k % 3] if r["pid"] >= 112 else "train"
    _write_csv(base / "manifest.csv", rows)
    _write_csv(base / "small_manifest.csv", rows[:6])
    names = [f"{n}_{c}" for n in COCO17_NAMES for c in ("x", "y", "score")]
    kp_rows = [{"source_path": p, **dict(zip(names, [round(float(v), 3) for v in kp.reshape(-1)], strict=True))}
               for p, kp in kps.items()]
    _write_csv(base / "keypoints.csv", kp_rows)
    coco = {"images": [{"id": i, "file_name": p} for i, p in enumerate(kps)],
            "results": [{"image_id": i, "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                             "score": 0.9} for i, kp in enumerate(kps.values())]}
    (base / "keypoints_coco.json").write_text(json.dumps(coco))
    body25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    op_dir = base / "openpose"
    op_dir.mkdir(exist_ok=True)
    openpose = {}
    for p, kp in kps.items():
        flat = np.zeros((25, 3), np.float32)
        flat[body25] = kp
        openpose[Path(p).stem] = {"version": 1.3, "people": [{"pose_keypoints_2d": [round(float(v), 3)
                                                                                    for v in flat.reshape(-1)]}]}
        (op_dir / f"{Path(p).stem}_keypoints.json").write_text(json.dumps(openpose[Path(p).stem]))
    protocol = {"kind": "split", "name": "micro",
                "query": {"ids": 3, "images": 4, "images_per_id": [1, 2]},
                "gallery": {"ids": 6, "images": 18, "per_query_id": {"occluded": 1, "holistic": 1},
                            "distractor_per_id": {"occluded": [1, 2], "holistic": [1, 2]}},
                "train": {"ids": 4, "images": 24, "images_per_id": [5, 8], "occluded_fraction": 0.15},
                "published": {"train": {"ids": 4, "images": 24}, "cameras": 3, "source": "fuzz"}}
    (base / "protocol.yaml").write_text(_dump_yaml(protocol))
    q = FeatureSet(rng.standard_normal((12, 8)).astype(np.float32), np.arange(12) % 6, np.zeros(12, int),
                   paths=[f"q/{i}.jpg" for i in range(12)], occluded=np.arange(12) % 2 == 0)
    g = FeatureSet(rng.standard_normal((30, 8)).astype(np.float32), np.arange(30) % 6, np.ones(30, int),
                   paths=[f"g/{i}.jpg" for i in range(30)], occluded=np.arange(30) % 3 == 0)
    write_feature_file(base / "features.h5", q, g, {"dataset": "fuzz", "junk": "market", "metric": "euclidean"})
    run_json = {"method": "ours", "metrics_unit": "fraction", "backbone": "mobilenetv2", "height": 128, "width": 64, "epochs": 2,
                "results": {"partial_reid": {"rank1": 0.5, "mAP": 0.4}, "cuhk03_labeled": {"rank1": 0.3, "mAP": 0.2}}}
    results_json = {"ours": {"partial_reid": {"rank1": 0.5, "mAP": 0.4}, "minutes": 2.0, "epochs": 2,
                             "complete": True},
                    "bot": {"partial_reid": {"rank1": 0.4, "mAP": 0.3}, "backbone": "mobilenetv2"},
                    "meta": {"units": "fraction"}}
    method = yaml.safe_load((REPO / "baselines" / "bot.yaml").read_text())
    labels = _base_labels(base)
    return {"base": str(base), "rows": rows, "protocol": protocol, "coco": coco, "openpose": openpose,
            "kp_rows": kp_rows, "run_json": run_json, "results_json": results_json, "method": method,
            "labels": labels, "corrections": [{"source_path": r["source_path"], "occluded": "true"}
                                              for r in labels[:5]],
            "face_boxes": [{"source_path": r["path"], "left": 10 + k, "top": 4, "right": 30, "bottom": 26}
                           for k, r in enumerate(rows[:4])]}


def _base_labels(base: Path) -> list[dict[str, str]]:
    """base/ann (keypoints.h5 from the CSV keypoints) and its labels.csv rows, made by the CLI itself."""
    for argv in (["annotate", "--pool", str(base / "manifest.csv"), "--out", str(base / "ann"),
                  "--pose", f"precomputed:{base / 'keypoints.csv'}"],
                 ["classify", "--keypoints", str(base / "ann"), "--out", str(base / "labels.csv")]):
        res = run_cli(argv)
        if res["exit"] != 0:
            raise RuntimeError(f"building the fuzz base failed: opreid-bench {' '.join(argv)}: {res}")
    with (base / "labels.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def _csv_bytes(rows: list[dict[str, Any]], rng: np.random.Generator) -> bytes:
    """Rows as CSV with 1-3 cell/column faults, or a text-level fault."""
    rows = copy.deepcopy(rows)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(7))
        if op == 0 and cols:  # a column dropped
            cols.pop(int(rng.integers(len(cols))))
        elif op == 1 and cols:  # a column renamed
            i = int(rng.integers(len(cols)))
            old, cols[i] = cols[i], _typo(cols[i], rng)
            for r in rows:
                r[cols[i]] = r.pop(old, "")
        elif op == 2:  # an extra column
            cols.append("extra")
            for r in rows:
                r["extra"] = str(_junk(rng))
        elif op == 3 and rows:  # a duplicated row
            rows.append(dict(rows[int(rng.integers(len(rows)))]))
        elif op == 4:  # all rows gone
            rows = []
        elif rows and cols:  # a cell of the wrong type
            for _ in range(int(rng.integers(1, 6))):
                r = rows[int(rng.integers(len(rows)))]
                r[cols[int(rng.integers(len(cols)))]] = _junk(rng)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    return mutate_bytes(data, rng) if rng.random() < 0.15 else data


# --------------------------------------------------------------------------------------------------- families
# Each family: (ctx, case dir, rng) -> argv (list of str). ctx holds the base inputs.

def fam_manifest(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    small = rng.random() < 0.5
    rows = ctx["rows"][:6] if small else ctx["rows"]
    m = d / "manifest.csv"
    m.write_bytes(_csv_bytes(rows, rng))
    kp = Path(ctx["base"]) / "keypoints.csv"
    choice = int(rng.integers(4))
    if choice == 0:
        return ["datasets", "verify", "manifest", "--root", str(m), *(["--json"] if rng.random() < 0.5 else [])]
    if choice == 1:
        return ["annotate", "--pool", str(m), "--out", str(d / "ann"), "--pose", f"precomputed:{kp}", "--json"]
    if choice == 2 and small:
        return ["mask", "--pool", str(m), "--out", str(d / "masked"), "--mask", "fill", "--json"]
    return ["build-split", "--pool", str(m), "--protocol", str(Path(ctx["base"]) / "protocol.yaml"),
            "--out", str(d / "split"), "--seed", str(int(rng.integers(5))), "--pose", f"precomputed:{kp}",
            "--mask", "fill", "--json"]


def fam_protocol(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    p = d / "protocol.yaml"
    if rng.random() < 0.1:
        p.write_bytes(mutate_bytes(_dump_yaml(ctx["protocol"]).encode(), rng))
    else:
        p.write_text(_dump_yaml(mutate_tree(ctx["protocol"], rng)))
    base = Path(ctx["base"])
    return ["build-split", "--pool", str(base / "manifest.csv"), "--protocol", str(p), "--out", str(d / "split"),
            "--seed", "0", "--pose", f"precomputed:{base / 'keypoints.csv'}", "--mask", "fill", "--json"]


def _train_argv(d: Path, extra: list[str]) -> list[str]:
    # --root does not exist: a config that parses ends at the dataset with one line (no training in the fuzzer)
    return ["train", *extra, "--dataset", "manifest", "--root", str(d / "no_such_manifest.csv"),
            "--out", str(d / "run")]


def fam_method_config(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    cfg = d / "method.yaml"
    tree = copy.deepcopy(ctx["method"])
    if rng.random() < 0.3:
        child = mutate_tree({k: tree[k] for k in ("model", "optim") if k in tree}, rng)
        tree = {"inherit": str(rng.choice(["bot", "ours", "baseline", "nope", "method.yaml"])),
                **(child if isinstance(child, dict) else {"model": child})}
    else:
        tree = mutate_tree(tree, rng)
    if rng.random() < 0.1:
        cfg.write_bytes(mutate_bytes(_dump_yaml(ctx["method"]).encode(), rng))
    else:
        cfg.write_text(_dump_yaml(tree))
    return _train_argv(d, ["--config", str(cfg)])


def _flat_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix]
    out = []
    for k, v in tree.items():
        out += _flat_keys(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def fam_set_values(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    keys = _flat_keys(ctx["method"])
    sets = []
    for _ in range(int(rng.integers(1, 4))):
        key = str(rng.choice(keys))
        if rng.random() < 0.15:
            key = _typo(key, rng)
        value = _junk(rng)
        text = json.dumps(value) if not isinstance(value, str) or rng.random() < 0.5 else value
        if rng.random() < 0.1:
            text = str(rng.choice(["[1,", "{a: ", "!!python/object:os.system", "'", "- a\n- b", "=", "1=2"]))
        sets.append(f"{key}={text}" if rng.random() > 0.05 else key)
    flags: list[str] = []
    for _ in range(int(rng.integers(0, 3))):
        flag, val = [("--epochs", str(int(rng.integers(-2, 3)))), ("--height", str(rng.choice(["0", "-1", "1", "abc"]))),
                     ("--batch-p", str(rng.choice(["1", "2", "x"]))), ("--device", str(rng.choice(["bogus", "cuda",
                      "cpu", "cuda:7", ""]))), ("--backbone", str(rng.choice(["resnet50", "vgg"]))),
                     ("--method", str(rng.choice(["bot", "nope", ""])))][int(rng.integers(6))]
        flags += [flag, val]
    method = [] if "--method" in flags else ["--method", str(rng.choice(["bot", "ours", "baseline"]))]
    return _train_argv(d, [*method, *flags, *(x for s in sets for x in ("--set", s))])


def _kp_target(ctx: dict, d: Path, rng: np.random.Generator, pose: str) -> list[str]:
    base = Path(ctx["base"])
    if rng.random() < 0.6:
        return ["annotate", "--pool", str(base / "manifest.csv"), "--out", str(d / "ann"), "--pose", pose, "--json"]
    return ["build-split", "--pool", str(base / "manifest.csv"), "--protocol", str(base / "protocol.yaml"),
            "--out", str(d / "split"), "--seed", "1", "--pose", pose, "--mask", "fill", "--json"]


def fam_keypoints_coco(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    f = d / "keypoints.json"
    coco = ctx["coco"]
    if rng.random() < 0.2:  # the results-list form
        names = {i["id"]: i["file_name"] for i in coco["images"]}
        coco = [{**a, "image_id": names[a["image_id"]]} for a in coco["results"]]
    if rng.random() < 0.1:
        f.write_bytes(mutate_bytes(json.dumps(coco).encode(), rng))
    else:
        f.write_text(json.dumps(_mutate_some(coco, rng)))
    return _kp_target(ctx, d, rng, f"precomputed:{f}")


def _mutate_some(tree: Any, rng: np.random.Generator) -> Any:
    """Mutations aimed at one random entry of the file's main list (long lists would otherwise hide them)."""
    tree = copy.deepcopy(tree)
    lists = [p for p in _nodes(tree) if isinstance(_get(tree, p), list) and len(_get(tree, p)) > 8]
    if lists and rng.random() < 0.7:
        path = lists[int(rng.integers(len(lists)))]
        target = _get(tree, path)
        i = int(rng.integers(len(target)))
        target[i] = mutate_tree(target[i], rng)
        return tree
    return mutate_tree(tree, rng)


def fam_keypoints_openpose(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    op = d / "openpose"
    op.mkdir()
    stems = sorted(ctx["openpose"])
    broken = set(rng.choice(len(stems), int(rng.integers(1, 4)), replace=False).tolist())
    for i, stem in enumerate(stems):
        data = ctx["openpose"][stem]
        target = op / f"{stem}_keypoints.json"
        if i not in broken:
            target.write_text(json.dumps(data))
        elif rng.random() < 0.2:
            target.write_bytes(mutate_bytes(json.dumps(data).encode(), rng))
        else:
            target.write_text(json.dumps(mutate_tree(data, rng)))
    if rng.random() < 0.05:
        shutil.rmtree(op)
        op.mkdir()  # a folder without any keypoint file
    return _kp_target(ctx, d, rng, f"precomputed:{op}")


def fam_keypoints_csv(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    f = d / "keypoints.csv"
    f.write_bytes(_csv_bytes(ctx["kp_rows"], rng))
    return _kp_target(ctx, d, rng, f"precomputed:{f}")


def _feature_file(path: Path, rng: np.random.Generator) -> None:
    """A feature file with 1-3 layout or value faults."""
    import h5py

    sides: dict[str, dict[str, Any]] = {}
    for side, n in (("query", 12), ("gallery", 30)):
        sides[side] = {"features": rng.standard_normal((n, 8)).astype(np.float32), "pids": np.arange(n) % 6,
                       "camids": np.full(n, 0 if side == "query" else 1), "paths": [f"{side}/{i}.jpg" for i in range(n)],
                       "occluded": np.arange(n) % 2 == 0}
    attrs: dict[str, Any] = {"format": "opreid-bench-features", "format_version": 1, "junk": "market"}
    bad_values: list[Any] = [np.array([]), np.zeros((0, 8), np.float32), np.zeros((3, 8), np.float32),
                             np.full((12, 8), np.nan, np.float32), np.full((12, 8), np.inf, np.float32),
                             np.full((12, 8), 1e30, np.float32), np.full((12, 8), 1e38, np.float64),
                             np.zeros((12, 0), np.float32), np.zeros((12, 8, 2), np.float32), np.zeros(12, np.float32),
                             np.array(["a"] * 12, dtype=object), np.full(12, -1), np.full(12, 2**40),
                             np.arange(12) + 0.5, np.full(12, 3), np.zeros((12, 8), np.complex64),
                             np.zeros((12, 8), np.bool_), np.int64(5), np.zeros((12, 4), np.float32),
                             np.zeros((30, 8), np.float32), np.full((30, 8), 1e20, np.float32)]
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(5))
        if not sides:
            break
        side = str(rng.choice(list(sides)))
        if op == 0:
            if sides[side]:
                del sides[side][str(rng.choice(list(sides[side])))]
        elif op == 1:
            sides.pop(side)
        elif op == 2:
            attrs[str(rng.choice(["metric", "junk", "format", "format_version", "dataset"]))] = str(rng.choice(
                ["cosine", "euclidean", "bogus", "market", "none", "7"]))
        else:
            key = str(rng.choice(["features", "pids", "camids", "paths", "occluded"]))
            sides[side][key] = bad_values[int(rng.integers(len(bad_values)))]
    with h5py.File(path, "w") as h5:
        for k, v in attrs.items():
            h5.attrs[k] = v
        for side, fields in sides.items():
            g = h5.create_group(side)
            for key, value in fields.items():
                if key == "paths" and isinstance(value, list):
                    g.create_dataset(key, data=np.array(value, dtype=object), dtype=h5py.string_dtype("utf-8"))
                elif isinstance(value, np.ndarray) and value.dtype == object:
                    g.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8"))
                else:
                    g.create_dataset(key, data=value)
        if rng.random() < 0.1:
            h5.create_group("query/features_group")
    if rng.random() < 0.08:
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))


def fam_features(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    f = d / "features.h5"
    if rng.random() < 0.1:
        f = Path(ctx["base"]) / "features.h5"  # a valid file with odd options
    else:
        _feature_file(f, rng)
    if rng.random() < 0.5:
        argv = ["evaluate", "--features", str(f), "--json"]
        if rng.random() < 0.3:
            argv += ["--rerank", "--k1", str(int(rng.integers(1, 40))), "--k2", str(int(rng.integers(1, 10)))]
        if rng.random() < 0.2:
            argv += ["--bootstrap", str(int(rng.integers(0, 5))), "--seed", "1"]
        if rng.random() < 0.2:
            argv += ["--max-rank", str(int(rng.integers(1, 100)))]
        if rng.random() < 0.2:
            argv += ["--out", str(d / "report.json")]
    else:
        argv = ["search", "--features", str(f), "--topk", str(int(rng.integers(1, 60))), "--out", str(d / "r.csv"),
                "--json"]
        if rng.random() < 0.3:
            argv += ["--rerank"]
        if rng.random() < 0.1:
            argv += ["--ann", "flat"]
    if rng.random() < 0.3:
        argv += ["--metric", str(rng.choice(["euclidean", "cosine"]))]
    if rng.random() < 0.1:
        argv += ["--device", str(rng.choice(["bogus", "cuda", "cpu", "cuda:3", "meta"]))]
    return argv


def fam_leaderboard(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    runs = d / "runs"
    runs.mkdir()
    which = int(rng.integers(3))
    if which in (0, 2):
        run = runs / "run1"
        run.mkdir()
        data = json.dumps(mutate_tree(ctx["run_json"], rng))
        (run / "run.json").write_bytes(mutate_bytes(data.encode(), rng) if rng.random() < 0.15 else data.encode())
    if which in (1, 2):
        data = json.dumps(mutate_tree(ctx["results_json"], rng))
        (runs / "results.json").write_bytes(mutate_bytes(data.encode(), rng) if rng.random() < 0.15
                                            else data.encode())
    argv = ["leaderboard", "--runs", str(runs)]
    fmt = str(rng.choice(["table", "markdown", "csv", "html", "json"]))
    argv += ["--format", fmt]
    if rng.random() < 0.3:
        argv += ["--out", str(d / f"board.{fmt}")]
    if rng.random() < 0.1:
        argv += ["--plot-dir", str(d / "plots")]
    if rng.random() < 0.3:
        argv += ["--no-published"]
    if rng.random() < 0.2:
        argv += ["--metric", str(rng.choice(["rank1", "mAP"]))]
    return argv


def fam_labels(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    """labels.csv for `sample`, or a corrections CSV for `classify`."""
    base = Path(ctx["base"])
    if rng.random() < 0.6:
        labels = d / "labels.csv"
        labels.write_bytes(_csv_bytes(ctx["labels"], rng))
        argv = ["sample", "--labels", str(labels), "--pool", str(base / "manifest.csv"), "--protocol",
                str(base / "protocol.yaml"), "--out", str(d / "split"), "--seed", "0", "--json"]
        if rng.random() < 0.5:
            return [*argv, "--dry-run"]
        return [*argv, "--mask", str(rng.choice(["none", "fill"])), "--keypoints", str(base / "ann")]
    corrections = d / "corrections.csv"
    corrections.write_bytes(_csv_bytes(ctx["corrections"], rng))
    return ["classify", "--keypoints", str(base / "ann"), "--out", str(d / "labels.csv"), "--corrections",
            str(corrections), "--json"]


def fam_face_boxes(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    """A face boxes CSV for `mask --face-boxes` (sometimes with the face review sheet) or `sample --face-boxes`."""
    base = Path(ctx["base"])
    boxes = d / "face_boxes.csv"
    boxes.write_bytes(_csv_bytes(ctx["face_boxes"], rng))
    if rng.random() < 0.7:
        argv = ["mask", "--pool", str(base / "small_manifest.csv"), "--out", str(d / "masked"), "--mask", "fill",
                "--face-boxes", str(boxes), "--json"]
        return [*argv, "--review-faces", str(d / "faces.html")] if rng.random() < 0.3 else argv
    return ["sample", "--labels", str(base / "labels.csv"), "--pool", str(base / "manifest.csv"), "--protocol",
            str(base / "protocol.yaml"), "--out", str(d / "split"), "--seed", "0", "--mask", "fill", "--keypoints",
            str(base / "ann"), "--face-boxes", str(boxes), "--json"]


PATTERNS = ["(?P<pid>\\d+)_c(?P<camid>\\d+)", "(", "(?P<pid>\\d+)", "(?P<pid>x)(?P<camid>y)", "", ".*",
            "(?P<pid>[a-z]+)_c(?P<camid>\\d+)", "(?P<pid>-?\\d+)_c(?P<camid>\\d+)_(?P<pid2>\\d)", "[", "(?P<camid>\\d+)"]


def fam_pool_options(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    """Pool formats, --pattern regexes and dataset --option values that do not fit."""
    base = Path(ctx["base"])
    pattern = str(rng.choice(PATTERNS))
    fmt = str(rng.choice(["folder", "folder", "manifest", "market1501", "partial_reid", "bogus", ""]))
    pool = str(rng.choice([str(base / "pool" / "images"), str(base / "manifest.csv"), str(base), str(d / "none")]))
    if rng.random() < 0.5:
        argv = ["annotate", "--pool", pool, "--pool-format", fmt, "--out", str(d / "ann"),
                "--pose", f"precomputed:{base / 'keypoints.csv'}", "--json"]
        return [*argv, "--pattern", pattern] if rng.random() < 0.8 else argv
    option = str(rng.choice(["pattern=" + pattern, "query_folder=partial", "query_folder=", "bogus=1", "=x",
                             "pattern", "split_column=zzz"]))
    name = str(rng.choice(["folder", "manifest", "partial_reid", "opreid", "market1501", "nope"]))
    return ["datasets", "verify", name, "--root", pool, "--option", option, "--json"]


def fam_outputs(ctx: dict, d: Path, rng: np.random.Generator) -> list[str]:
    """Output paths that cannot be written: a file where a folder belongs, a folder where a file belongs, an input."""
    base = Path(ctx["base"])
    a_file = d / "a_file.txt"
    a_file.write_text("not a folder\n")
    a_dir = d / "a_dir"
    a_dir.mkdir()
    under_file = a_file / "sub" / "x"
    folder_out = str(rng.choice([str(a_file), str(under_file)]))
    file_out = str(rng.choice([str(a_dir), str(under_file), str(a_file / "r.csv")]))
    feats = d / "features.h5"
    shutil.copy(base / "features.h5", feats)
    choices = [
        ["search", "--features", str(feats), "--out", file_out],
        ["search", "--features", str(feats), "--out", str(feats)],
        ["evaluate", "--features", str(feats), "--out", file_out],
        ["evaluate", "--features", str(feats), "--out", str(feats)],
        ["leaderboard", "--format", "csv", "--out", file_out],
        ["leaderboard", "--plot-dir", folder_out],
        ["annotate", "--pool", str(base / "small_manifest.csv"), "--out", folder_out,
         "--pose", f"precomputed:{base / 'keypoints.csv'}"],
        ["mask", "--pool", str(base / "small_manifest.csv"), "--out", folder_out, "--mask", "fill"],
        ["mask", "--pool", str(base / "small_manifest.csv"), "--out", str(base / "pool" / "images"), "--mask", "fill"],
        ["mask", "--verify", "--out", folder_out],
        ["build-split", "--pool", str(base / "manifest.csv"), "--protocol", str(base / "protocol.yaml"),
         "--out", folder_out, "--seed", "0", "--pose", f"precomputed:{base / 'keypoints.csv'}", "--mask", "fill"],
        ["classify", "--keypoints", str(d / "no_ann"), "--out", file_out],
        ["train", "--method", "bot", "--dataset", "manifest", "--root", str(base / "manifest.csv"),
         "--out", folder_out, "--epochs", "1"],
        ["datasets", "verify", "manifest", "--root", folder_out, "--decode"],
    ]
    return choices[int(rng.integers(len(choices)))]


def control_argvs(ctx: dict, d: Path) -> list[list[str]]:
    """The unbroken base inputs through each command: all must exit 0, else the fuzzer would be testing nothing
    but its own broken fixtures (or a command refuses valid input -- as bad as a traceback)."""
    b = Path(ctx["base"])
    split = ["--protocol", str(b / "protocol.yaml"), "--seed", "0", "--mask", "fill"]
    runs = d / "runs"
    (runs / "run1").mkdir(parents=True, exist_ok=True)
    (runs / "run1" / "run.json").write_text(json.dumps(ctx["run_json"]))
    (runs / "results.json").write_text(json.dumps(ctx["results_json"]))
    _write_csv(d / "face_boxes.csv", ctx["face_boxes"])
    return [
        ["build-split", "--pool", str(b / "manifest.csv"), "--out", str(d / "s1"), "--pose",
         f"precomputed:{b / 'keypoints.csv'}", *split],
        ["build-split", "--pool", str(b / "manifest.csv"), "--out", str(d / "s2"), "--pose",
         f"precomputed:{b / 'keypoints_coco.json'}", *split],
        ["build-split", "--pool", str(b / "manifest.csv"), "--out", str(d / "s3"), "--pose",
         f"precomputed:{b / 'openpose'}", *split],
        ["sample", "--labels", str(b / "labels.csv"), "--pool", str(b / "manifest.csv"), "--out", str(d / "s4"),
         "--keypoints", str(b / "ann"), *split],
        ["classify", "--keypoints", str(b / "ann"), "--out", str(d / "labels.csv")],
        ["mask", "--pool", str(b / "small_manifest.csv"), "--out", str(d / "masked"), "--mask", "fill"],
        ["mask", "--pool", str(b / "small_manifest.csv"), "--out", str(d / "masked_boxes"), "--mask", "fill",
         "--face-boxes", str(d / "face_boxes.csv"), "--review-faces", str(d / "faces.html")],
        ["datasets", "verify", "manifest", "--root", str(b / "manifest.csv"), "--decode"],
        ["evaluate", "--features", str(b / "features.h5"), "--json"],
        ["search", "--features", str(b / "features.h5"), "--out", str(d / "r.csv"), "--rerank", "--k1", "5"],
        ["leaderboard", "--runs", str(runs), "--format", "csv"],
        ["annotate", "--pool", str(b / "pool" / "images"), "--pool-format", "folder", "--pattern",
         PATTERNS[0], "--out", str(d / "ann"), "--pose", f"precomputed:{b / 'keypoints.csv'}"],
    ]


FAMILIES = {
    "manifest": fam_manifest,
    "split_protocol": fam_protocol,
    "method_config": fam_method_config,
    "set_values": fam_set_values,
    "keypoints_coco": fam_keypoints_coco,
    "keypoints_openpose": fam_keypoints_openpose,
    "keypoints_csv": fam_keypoints_csv,
    "features_h5": fam_features,
    "leaderboard": fam_leaderboard,
    "labels_corrections": fam_labels,
    "face_boxes": fam_face_boxes,
    "pool_options": fam_pool_options,
    "outputs": fam_outputs,
}


# --------------------------------------------------------------------------------------------------- running
class _CaseTimeout(BaseException):
    """Raised by SIGALRM when a case runs longer than CASE_TIMEOUT_S."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _CaseTimeout()


def run_cli(argv: list[str]) -> dict[str, Any]:
    """Run ``opreid-bench ARGV`` in this process: exit code, or the exception that escaped, and the stderr tail."""
    from opreid_bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    result: dict[str, Any] = {}
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
        result["exit"] = 0
    except SystemExit as exc:
        code = exc.code
        result["exit"] = code if isinstance(code, int) else (0 if code is None else 1)
    except _CaseTimeout:
        result["exit"] = "timeout"
    except BaseException as exc:  # noqa: BLE001 - the very thing counted: an exception escaping the CLI
        import traceback

        result["exit"] = "traceback"
        result["exception"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        result["where"] = traceback.format_exc().strip().splitlines()[-3:]
    finally:
        signal.alarm(0)
    text = out.getvalue() + err.getvalue()
    if result["exit"] != "traceback" and "Traceback (most recent call last)" in text:
        result["exit"] = "traceback"
        result["exception"] = "a Traceback in the output"
    errors = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")]
    result["error"] = errors[-1][:300] if errors else ""
    return result


_CTX: dict[str, Any] = {}


def _init_worker(ctx: dict[str, Any]) -> None:
    _CTX.update(ctx)
    os.environ.setdefault("OPREID_FUZZ", "1")


def run_case(job: tuple[int, int, str, str]) -> dict[str, Any]:
    """Generate case ``index`` of ``family`` (seeded by ``seed`` and ``index``) under ``work`` and run it."""
    index, seed, family, work = job
    rng = np.random.default_rng([seed, index])
    d = Path(work) / f"case-{index:05d}"
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        argv = FAMILIES[family](_CTX, d, rng)
    except Exception as exc:  # noqa: BLE001 - a generator fault is the fuzzer's bug, not the CLI's
        return {"index": index, "family": family, "argv": [], "exit": "generator-error", "exception": repr(exc)}
    res = run_cli(argv)
    res.update(index=index, family=family, argv=argv, seconds=round(time.perf_counter() - t0, 3))
    if res["exit"] not in ("traceback", "timeout"):
        shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the fuzzer; returns (and prints) the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1200, help="number of cases (default 1200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families (repeatable)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (failing cases' inputs stay there)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    families = args.family or list(FAMILIES)
    work = args.keep or Path(tempfile.mkdtemp(prefix="opreid-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ctx = build_base(work / "base")
    _init_worker(ctx)
    controls = [(argv, run_cli(argv)) for argv in control_argvs(ctx, work / "controls")]
    jobs = [(i, args.seed, families[i % len(families)], str(work / "cases")) for i in range(args.cases)]
    results: list[dict[str, Any]] = []
    progress = None if args.json else _progress(len(jobs))
    if args.workers <= 1:  # in this process (tests, debugging)
        _init_worker(ctx)
        for res in map(run_case, jobs):
            results.append(res)
            if progress is not None:
                progress[1]()
    else:
        # spawn, not fork: the parent has run torch and OpenCV (base, controls), whose thread pools a forked child
        # inherits locked -- a deadlock no SIGALRM can interrupt
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker, initargs=(ctx,),
                                 mp_context=spawn) as ex:
            for res in ex.map(run_case, jobs, chunksize=4):
                results.append(res)
                if progress is not None:
                    progress[1]()
    if progress is not None:
        progress[0].stop()
    tracebacks = [r for r in results if r["exit"] in ("traceback", "generator-error")]
    summary = {
        "cases": len(results),
        "tracebacks": len(tracebacks),
        "controls_ok": f"{sum(r['exit'] == 0 for _, r in controls)}/{len(controls)}",
        "timeouts": sum(r["exit"] == "timeout" for r in results),
        "exit_codes": {str(k): v for k, v in sorted(Counter(str(r["exit"]) for r in results).items())},
        "families": {f: dict(sorted(Counter(str(r["exit"]) for r in results if r["family"] == f).items()))
                     for f in families},
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "case_seconds_by_family": {f: round(sum(r.get("seconds", 0.0) for r in results if r["family"] == f), 1)
                                   for f in families},
        "failures": [{k: r.get(k) for k in ("index", "family", "argv", "exception", "where")} for r in tracebacks][:50],
        "failed_controls": [{"argv": a, **r} for a, r in controls if r["exit"] != 0],
    }
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return summary


def _progress(total: int) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("fuzzing the CLI"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True))
    task = prog.add_task("fuzz", total=total)
    prog.start()
    return prog, lambda: prog.advance(task, 1)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    codes = sorted({c for fam in summary["families"].values() for c in fam})
    table = Table(title=f"fuzz_cli: {summary['cases']} cases, {summary['tracebacks']} tracebacks, "
                        f"{summary['seconds']} s (seed {summary['seed']})")
    table.add_column("family")
    for c in codes:
        table.add_column(f"exit {c}", justify="right")
    for fam, counts in summary["families"].items():
        table.add_row(fam, *(str(counts.get(c, 0)) for c in codes))
    console = Console()
    console.print(table)
    console.print(f"controls (unbroken inputs, must exit 0): {summary['controls_ok']}", highlight=False)
    for c in summary["failed_controls"]:
        console.print(f"[red]control failed[/red]: opreid-bench {' '.join(c['argv'])}: {c['exit']} {c['error']}",
                      highlight=False)
    for f in summary["failures"]:
        console.print(f"[red]traceback[/red] case {f['index']} ({f['family']}): {f['exception']}", highlight=False)
        console.print("  opreid-bench " + " ".join(f["argv"]), highlight=False, markup=False)


if __name__ == "__main__":
    out = main()
    sys.exit(1 if out["tracebacks"] or out["failed_controls"] else 0)
