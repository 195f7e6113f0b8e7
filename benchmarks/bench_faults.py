"""Fault injection: SIGKILL `build-split`, `annotate` and `train` at random moments, resume, and check the outputs.

For every kill (a seeded random moment within the time an uninterrupted run takes) it checks:

(a) consistent: right after the kill the output is a complete old or a complete new result, never a mix:
    build-split: the split folder equals the previous split or the new one file by file (sha1 of every file but the
    keypoint cache, which is not part of the result); annotate: ``keypoints.h5`` is absent, the previous file or the
    new one; train: every checkpoint present loads (never zero-length or truncated) and ``metrics.jsonl`` parses;
(b) byte-identical: after a resume (the same command again; ``train --resume`` when a checkpoint exists) the result
    equals an uninterrupted run's: the split folder and ``keypoints.h5`` byte for byte, the trained weights tensor by
    tensor (``model.pt`` also holds wall-clock timings, so its bytes differ by design).

Finally it counts temporary files left anywhere under the work folder (``*.tmp`` and temporary split siblings):
resumed runs must have cleaned every one a killed run left.

    python benchmarks/bench_faults.py --json            # 12 + 10 + 10 kills, a few minutes on 2 cores
    python benchmarks/bench_faults.py --kills 4 4 4     # a quicker smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "opreid_bench"]
TINY_PROTOCOL = (
    "kind: split\nname: tiny\n"
    "query: {ids: 6, images: 8, images_per_id: [1, 2]}\n"
    "gallery: {ids: 14, images: 44, per_query_id: {occluded: 1, holistic: 1},\n"
    "          distractor_per_id: {occluded: [1, 3], holistic: [1, 3]}}\n"
    "train: {ids: 8, images: 64, images_per_id: [5, 20], occluded_fraction: 0.15}\n"
)
TRAIN_ARGS = ["--method", "bot", "--dataset", "opreid", "--backbone", "mobilenetv2", "--height", "32", "--width", "16",
              "--epochs", "5", "--batch-p", "4", "--batch-k", "2", "--set", "optim.max_iters_per_epoch=2",
              "--set", "data.workers=0", "--set", "eval.period=0", "--set", "eval.at_end=false",
              "--set", "optim.warmup_epochs=0", "--set", "optim.milestones=[]", "--json"]


def run(args: list[str], cwd: Path) -> float:
    """Run a command to completion (it must succeed); returns its wall time."""
    t = time.perf_counter()
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=_env())
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return time.perf_counter() - t


REPO = Path(__file__).resolve().parents[1]
CODE: list[Path] = [REPO]  # where the commands import opreid_bench from (a snapshot, see ``snapshot_code``)


def snapshot_code(work: Path) -> None:
    """Copy the package (and the YAML it reads) so that every run of the benchmark uses one version of the code:
    the references and the resumed runs must come from the same code for "byte-identical" to mean anything."""
    code = work / "_code"
    for name in ("opreid_bench", "baselines", "protocols"):
        shutil.copytree(REPO / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    CODE[0] = code
    sys.path.insert(0, str(code))


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(CODE[0]), env.get("PYTHONPATH", "")])
    return env


def run_and_kill(args: list[str], cwd: Path, after_s: float, full_s: list[float]) -> bool:
    """Start a command in its own process group and SIGKILL the group after ``after_s``; False if it ended first
    (then ``full_s[0]`` shrinks to the time it took: reruns with a warm cache are faster than the first run)."""
    t = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    try:
        proc.wait(timeout=after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    full_s[0] = min(full_s[0], time.perf_counter() - t)
    return False


def tree(root: Path) -> dict[str, str]:
    """sha1 of every file of a result folder, leaving out the keypoint cache and lock files (not the result)."""
    if not root.is_dir():
        return {}
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(".annotate") and not p.name.endswith(".lock"):
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def file_sha(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None


def leftover_tmp(root: Path, skip: Path | None = None) -> list[str]:
    """Temporary files and folders a killed run may leave (``*.tmp``, ``.NAME.opreid-new-*``, ``.NAME.opreid-old-*``)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip:
            dirnames[:] = []
            continue
        found += [os.path.join(dirpath, n) for n in filenames if n.endswith(".tmp")]
        found += [os.path.join(dirpath, d) for d in dirnames if ".opreid-new-" in d or ".opreid-old-" in d]
    return found


def weights_of(path: Path):  # noqa: ANN201 - a torch state dict
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = weights_of(a), weights_of(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def train_dir_consistent(run_dir: Path) -> bool:
    """Every checkpoint present loads and metrics.jsonl parses (the old or the new state, never a torn file)."""
    from opreid_bench.engine.checkpoint import load_checkpoint
    from opreid_bench.errors import CheckpointError

    for p in (run_dir / "checkpoints" / "last.pt", run_dir / "model.pt"):
        if p.exists():
            try:
                load_checkpoint(p)
            except CheckpointError:
                return False
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        try:
            [json.loads(t) for t in metrics.read_text().splitlines() if t.strip()]
        except ValueError:
            return False
    return True


def kill_moment(rng: random.Random, full_s: list[float]) -> float:
    return rng.uniform(0.15, 0.98) * full_s[0]


def bench_build_split(work: Path, rng: random.Random, kills: int, log) -> dict[str, int]:  # noqa: ANN001
    def cmd(out: str, seed: int) -> list[str]:
        return [*CLI, "build-split", "--pool", "pool/manifest.csv", "--pose", "precomputed:pool/keypoints.csv",
                "--protocol", "tiny.yaml", "--out", out, "--seed", str(seed), "--json"]

    full_s = [max(run(cmd("ref0", 0), work), run(cmd("ref1", 1), work))]
    refs = {0: tree(work / "ref0"), 1: tree(work / "ref1")}
    run(cmd("split", 1), work)  # the previous complete split
    current, stats = 1, {"kills": 0, "consistent": 0, "byte_identical": 0}
    attempts = 0
    while stats["kills"] < kills and attempts < kills * 4:
        attempts += 1
        seed = 1 - current
        if not run_and_kill(cmd("split", seed), work, kill_moment(rng, full_s), full_s):
            current = seed  # it finished before the kill: the new split is in place; try again from it
            continue
        stats["kills"] += 1
        after = tree(work / "split")
        stats["consistent"] += after in (refs[current], refs[seed])
        run(cmd("split", seed), work)
        stats["byte_identical"] += tree(work / "split") == refs[seed]
        current = seed
        log(f"build-split kill {stats['kills']}: {stats}")
    return stats


def bench_annotate(work: Path, rng: random.Random, kills: int, log) -> dict[str, int]:  # noqa: ANN001
    lines = (work / "pool" / "manifest.csv").read_text().splitlines()
    (work / "pool" / "half.csv").write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # the old result's pool
    pools = {0: "pool/manifest.csv", 1: "pool/half.csv"}

    def cmd(out: str, which: int) -> list[str]:
        return [*CLI, "annotate", "--pool", pools[which], "--out", out, "--pose", "precomputed:pool/keypoints.csv",
                "--batch-size", "4", "--json"]

    full_s = [max(run(cmd("ann_ref0", 0), work), run(cmd("ann_ref1", 1), work))]
    refs = {w: file_sha(work / f"ann_ref{w}" / "keypoints.h5") for w in (0, 1)}
    run(cmd("ann", 1), work)
    current, stats = 1, {"kills": 0, "consistent": 0, "byte_identical": 0}
    attempts = 0
    while stats["kills"] < kills and attempts < kills * 4:
        attempts += 1
        which = 1 - current
        if not run_and_kill(cmd("ann", which), work, kill_moment(rng, full_s), full_s):
            current = which
            continue
        stats["kills"] += 1
        stats["consistent"] += file_sha(work / "ann" / "keypoints.h5") in (refs[current], refs[which])
        run(cmd("ann", which), work)
        stats["byte_identical"] += file_sha(work / "ann" / "keypoints.h5") == refs[which]
        current = which
        log(f"annotate kill {stats['kills']}: {stats}")
    return stats


def bench_train(work: Path, rng: random.Random, kills: int, log) -> dict[str, int]:  # noqa: ANN001
    def cmd(out: str, resume: bool) -> list[str]:
        return [*CLI, "train", "--root", "ref0", "--out", out, *TRAIN_ARGS, *(["--resume"] if resume else [])]

    full_s = [run(cmd("run_ref", False), work)]
    stats = {"kills": 0, "consistent": 0, "byte_identical": 0}
    attempts = 0
    while stats["kills"] < kills and attempts < kills * 4:
        attempts += 1
        out = work / f"run{attempts}"
        if not run_and_kill(cmd(out.name, False), work, kill_moment(rng, full_s), full_s):
            shutil.rmtree(out)
            continue
        stats["kills"] += 1
        stats["consistent"] += train_dir_consistent(out)
        run(cmd(out.name, (out / "checkpoints" / "last.pt").exists()), work)
        stats["byte_identical"] += same_weights(work / "run_ref" / "model.pt", out / "model.pt")
        log(f"train kill {stats['kills']}: {stats}")
        shutil.rmtree(out)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, nargs=3, default=(12, 10, 10), metavar=("BUILD", "ANNOTATE", "TRAIN"),
                    help="kills per command (at least 30 in all for the issue's check)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_faults_"))
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        snapshot_code(work)
        run([*CLI, "synth", "--out", "pool", "--ids", "40", "--images-per-id", "8", "12", "--size", "64", "128",
             "--occlusion-rate", "0.5", "--seed", "0"], work)
        (work / "tiny.yaml").write_text(TINY_PROTOCOL)
        parts = {"build-split": bench_build_split(work, rng, args.kills[0], log),
                 "annotate": bench_annotate(work, rng, args.kills[1], log),
                 "train": bench_train(work, rng, args.kills[2], log)}
        left = leftover_tmp(work, skip=work / "_code")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {key: sum(p[key] for p in parts.values()) for key in ("kills", "consistent", "byte_identical")}
    result["leftover_tmp_files"] = len(left)
    result["per_command"] = parts
    result["seconds"] = round(time.perf_counter() - t0, 1)
    for p in left[:20]:
        log(f"left over: {p}")
    if args.json:
        print(json.dumps(result))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"fault injection ({result['seconds']} s)")
        for col in ("command", "kills", "consistent", "byte-identical after resume"):
            table.add_column(col, justify="left" if col == "command" else "right")
        for name, p in parts.items():
            table.add_row(name, str(p["kills"]), str(p["consistent"]), str(p["byte_identical"]))
        table.add_row("all", str(result["kills"]), str(result["consistent"]), str(result["byte_identical"]))
        Console().print(table)
        Console().print(f"temporary files left over: {result['leftover_tmp_files']}")


if __name__ == "__main__":
    main()
