"""Reproduce the paper's claim at CPU scale, with error bars: bot vs baseline vs ours, and the Table 5 rows.

MobileNetV2 from the local ImageNet checkpoint, trained on ``../shared/data/cuhk03_labeled/train`` at 128x64, every
method with the same data, input size, epochs and learning-rate schedule (``--schedule short``: one warm-up epoch,
x0.1 at 60 % and 85 % of the budget, so the zero-initialised non-local/DNL blocks get most epochs at the full
rate). Every checkpoint is evaluated on every real test at hand:

- ``cuhk03_val``: CUHK03 val, camera A query vs camera B gallery (holistic; also the per-epoch validation curve);
- ``partial_reid``: Partial-REID occluded query vs whole-body gallery (real occlusions, cross-domain);
- ``partial_reid_partial``: Partial-REID partial query vs whole-body gallery.

Runs: ``--methods`` x ``--seeds`` (default bot, baseline, ours x 0, 1, 2) and the Table 5 rows ``--ablations`` x
``--ablation-seeds`` (baseline -> +CBE -> +BED -> +DNL -> +RP -> +ME = ours; rows already in the first set are not
trained twice). ``ours_no_me`` (ours without ME, same classifier and retrieval feature) is evaluated on each ``ours``
checkpoint with ME switched off at inference: ME is a no-gradient buffer, so that *is* the ``ours_no_me.yaml`` model
(tested in ``tests/test_model_reid.py``), and the pair differs only in ME.

Resumable and keyed by content: each run lives in ``OUT/runs/METHOD-sSEED-FINGERPRINT`` where the fingerprint
hashes the full method config (with the pretrained file's SHA-256 instead of its path), the training records and
the smoke options; a changed ``--epochs`` or ``--set`` trains a new run, never reuses a stale one. A half-trained
run resumes from its ``checkpoints/last.pt``; evaluations are cached in the run folder keyed by the test's records.

Writes ``OUT/results.json`` (one object; metrics as fractions)::

    {METHOD: {TEST: {"rank1", "mAP", "mINP"},              # mean over seeds
              "std": {TEST: {"rank1", "mAP"}},               # std over seeds (ddof=1; 0 with one seed)
              "ci95": {TEST: {"rank1": [lo, hi], "mAP": [lo, hi]}},   # bootstrap over queries of the seed mean
              "seeds": {SEED: {TEST: {...}, "run_dir": PATH, "epochs": E, "minutes": M, "complete": bool}},
              "minutes": mean minutes, "epochs": E, "complete": bool, ...},
     "comparisons": {"ours_vs_strongest_baseline": {TEST: {"baseline": NAME, "mAP": {"diff", "ci95",
                     "p_not_positive"}, "rank1": {...}}}, "me_effect": {...}, "table5_steps": {...}},
     "meta": {...}}

and ``docs/reproduce_cpu.png`` (bars with CI whiskers) and ``docs/reproduce_cpu_curves.png`` (CUHK03 val mAP per
epoch, one line per method) when ``--plots`` is given.

\b
Examples:
  python benchmarks/reproduce_cpu.py --out runs/cpu --seeds 0,1,2 --json
  python benchmarks/reproduce_cpu.py --out /tmp/smoke --epochs 1 --seeds 0 --train-ids 32 --max-iters 3 \\
      --ablations none --json
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
METHODS = ("bot", "baseline", "ours")
TABLE5 = ("baseline", "ours_ablation_1_cbe", "ours_ablation_2_bed", "ours_ablation_3_dnl", "ours_ablation_4_rp",
          "ours")
TESTS = (("cuhk03_val", "cuhk03_labeled"), ("partial_reid", "partial_reid"),
         ("partial_reid_partial", "partial_reid_partial"))
ME_OFF = "ours_no_me"  # ours' checkpoint with ME off at inference
BOOTSTRAP = 2000


def _records_digest(records: Any) -> str:
    """Content key of a list of ImageRecords: relative names, labels and file sizes (no absolute paths)."""
    h = hashlib.sha256()
    for r in records:
        p = Path(r.path)
        h.update(f"{p.parent.name}/{p.name}|{r.pid}|{r.camid}|{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _load_tests(data_root: Path) -> dict[str, Any]:
    """The evaluation protocols' query/gallery records (with their junk rules)."""
    from opreid_bench.data.protocols import load_protocol

    out = {}
    for key, protocol_name in TESTS:
        protocol = load_protocol(protocol_name)
        splits = protocol.load_data(data_root)
        out[key] = (splits.query, splits.gallery, protocol.junk)
    return out


def _train_splits(data_root: Path, train_ids: int | None) -> Any:
    """CUHK03 train (optionally its first ``train_ids`` identities, relabelled) with val as query/gallery."""
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.data.records import relabel_pids

    splits = load_dataset("cuhk03_labeled", data_root)
    if train_ids is not None:
        splits.train = relabel_pids([r for r in splits.train if r.pid < train_ids])
    return splits


def _overrides(args: dict[str, Any], seed: int) -> list[str]:
    from opreid_bench.engine.optim import scaled_schedule, short_schedule

    sched = (short_schedule if args["schedule"] == "short" else scaled_schedule)(args["epochs"])
    out = ["model.backbone=mobilenetv2", f"model.pretrained={json.dumps(str(args['weights']))}",
           f"data.height={args['height']}", f"data.width={args['width']}", f"optim.epochs={args['epochs']}",
           f"optim.warmup_epochs={sched['warmup_epochs']}", f"optim.milestones={sched['milestones']}",
           f"data.workers={args['workers']}", f"eval.period={1 if args['curves'] else 0}", "eval.at_end=true",
           f"seed={seed}"]
    if args["max_iters"]:
        out.append(f"optim.max_iters_per_epoch={args['max_iters']}")
    return out + list(args["sets"])


def _fingerprint(cfg: Any, args: dict[str, Any], train_digest: str, weights_sha: str) -> str:
    """Content key of a run: the whole config (pretrained file by content), the training records, smoke options."""
    data = cfg.to_dict()
    data["model"]["pretrained"] = weights_sha
    data["data"].pop("workers", None)  # how fast, not what
    key = {"config": data, "train": train_digest, "train_ids": args["train_ids"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _extract(model: Any, cfg: Any, test: tuple) -> tuple[np.ndarray, np.ndarray]:
    from opreid_bench.engine.extract import extract_features

    query, gallery, _ = test
    return (extract_features(model, query, cfg, progress=False, description="query"),
            extract_features(model, gallery, cfg, progress=False, description="gallery"))


def _evaluate(feats: Any, cfg: Any, test: tuple, cache: Path, test_key: str) -> dict[str, Any]:
    """Metrics and per-query AP / rank-1 hits on one test; cached in ``cache`` by the test's content.

    ``feats`` is a callable giving (query features, gallery features); it runs only on a cache miss.
    """
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.engine.extract import feature_set
    from opreid_bench.evaluation.evaluator import evaluate_features

    query, gallery, junk = test
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == test_key:
            return stored
    qx, gx = feats()
    report = evaluate_features(feature_set(query, qx), feature_set(gallery, gx), metric=cfg.eval.metric, junk=junk)
    r = report.overall
    result = {"key": test_key, "rank1": r.rank(1), "rank5": r.rank(5), "mAP": r.mAP, "mINP": r.mINP,
              "num_valid_queries": r.num_valid_queries, "ap": [round(float(x), 6) for x in r.ap],
              "hit1": [int(x == 0) for x in r.first_hit]}
    atomic_write_text(cache, json.dumps(result) + "\n")
    return result


def _me_variants(model: Any, cfg: Any, test: tuple) -> Any:
    """Feature callables for ME on and off from one extraction (ME on = ME applied to the ME-off pooled feature)."""
    import torch

    memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def off() -> tuple[np.ndarray, np.ndarray]:
        if "off" not in memo:
            model.me_at_inference = False
            memo["off"] = _extract(model, cfg, test)
        return memo["off"]

    def on() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            return tuple(model.me(torch.from_numpy(x)).numpy() for x in off())  # ME, Eq. (6) at inference

    return on, off


def _train_run(method: str, seed: int, args: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or reuse) one (method, seed) run and evaluate it on every test."""
    import torch

    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.hardware import hardware_description
    from opreid_bench.engine.train import train

    cfg = load_method_config(method, _overrides(args, seed))
    fp = _fingerprint(cfg, args, ctx["train_digest"], ctx["weights_sha"])
    run_dir = Path(args["out"]) / "runs" / f"{method}-s{seed}-{fp}"
    done_marker = run_dir / "complete.json"
    if not done_marker.exists():
        resume = (run_dir / "checkpoints" / "last.pt").exists()
        result = train(cfg, ctx["splits"], run_dir, resume=resume, junk="none", time_limit_minutes=args["minutes"])
        if result.stopped_early:  # the safety cap: the next call resumes it
            return {method: {"run_dir": str(run_dir), "complete": False, "epochs": result.epochs_done,
                             "minutes": round(result.minutes, 3)}}
        from opreid_bench.atomic import atomic_write_text

        atomic_write_text(done_marker, json.dumps({"epochs": result.epochs_done, "minutes": result.minutes,
                                                   "fingerprint": fp}) + "\n")
    done = json.loads(done_marker.read_text())
    model, cfg, _ = load_model_from_checkpoint(run_dir / "model.pt", expect_method=method)
    lines = [json.loads(t) for t in (run_dir / "metrics.jsonl").read_text().splitlines() if t.strip()]
    entry: dict[str, Any] = {"run_dir": str(run_dir), "complete": True, "epochs": done["epochs"],
                             "minutes": round(done["minutes"], 3), "fingerprint": fp,
                             "train_img_s": round(sum(h["img_per_s"] for h in lines) / max(len(lines), 1), 2),
                             "curve": [{"epoch": h["epoch"], "mAP": h["eval"]["mAP"], "rank1": h["eval"]["rank1"]}
                                       for h in lines if "eval" in h],
                             "hardware": hardware_description(torch.device("cpu"))}
    out: dict[str, Any] = {method: {**entry, "tests": {}}}
    if getattr(model, "me", None) is not None:
        out[ME_OFF] = {**entry, "tests": {}}
    for key, test in ctx["tests"].items():
        if ME_OFF in out:
            on, off = _me_variants(model, cfg, test)
            out[ME_OFF]["tests"][key] = _evaluate(off, cfg, test, run_dir / f"eval_{key}_no_me.json",
                                                  ctx["test_keys"][key])
        else:
            on = lambda test=test: _extract(model, cfg, test)  # noqa: E731
        out[method]["tests"][key] = _evaluate(on, cfg, test, run_dir / f"eval_{key}.json", ctx["test_keys"][key])
    return out


def _imagenet_floor(args: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """The ImageNet MobileNetV2 with no ReID training (bot's head: average pooling + fresh BNNeck, identity map)."""
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.modeling import build_model

    cfg = load_method_config("bot", _overrides(args, 0))
    model = build_model(cfg.model, 0).eval()
    cache = Path(args["out"]) / "imagenet"
    cache.mkdir(parents=True, exist_ok=True)
    tests = {key: _evaluate(lambda test=test: _extract(model, cfg, test), cfg, test, cache / f"eval_{key}.json",
                            ctx["test_keys"][key] + ctx["weights_sha"]) for key, test in ctx["tests"].items()}
    return {"imagenet": {"run_dir": None, "complete": True, "epochs": 0, "minutes": 0.0, "tests": tests}}


def _aggregate(per_seed: dict[str, dict[int, dict[str, Any]]], details: dict[str, Any]) -> dict[str, Any]:
    """results.json's per-method entries: mean over seeds, std, bootstrap CI of the seed mean, the seeds."""
    from opreid_bench.evaluation.bootstrap import seed_mean_ci

    results: dict[str, Any] = {}
    for method, seeds in per_seed.items():
        done = {s: r for s, r in seeds.items() if r.get("complete")}
        entry: dict[str, Any] = {"seeds": {}, "std": {}, "ci95": {}, "complete": len(done) == len(seeds), **details}
        for s, r in seeds.items():
            row = {k: v for k, v in r.items() if k not in ("tests", "curve")}
            for key, t in r.get("tests", {}).items():
                row[key] = {m: t[m] for m in ("rank1", "rank5", "mAP", "mINP")}
            entry["seeds"][str(s)] = row
        if done:
            for key, _ in TESTS:
                ap = np.array([r["tests"][key]["ap"] for r in done.values()])
                hit = np.array([r["tests"][key]["hit1"] for r in done.values()], dtype=np.float64)
                entry[key] = {m: float(np.mean([r["tests"][key][m] for r in done.values()]))
                              for m in ("rank1", "rank5", "mAP", "mINP")}
                ddof = 1 if len(done) > 1 else 0
                entry["std"][key] = {"rank1": float(np.std(hit.mean(axis=1), ddof=ddof)),
                                     "mAP": float(np.std(ap.mean(axis=1), ddof=ddof))}
                entry["ci95"][key] = {"rank1": seed_mean_ci(hit, BOOTSTRAP), "mAP": seed_mean_ci(ap, BOOTSTRAP)}
            entry["minutes"] = round(float(np.mean([r["minutes"] for r in done.values()])), 3)
            entry["epochs"] = int(max(r["epochs"] for r in done.values()))
            entry["num_seeds"] = len(done)
            imgs = [r["train_img_s"] for r in done.values() if r.get("train_img_s")]
            if imgs:
                entry["train_img_s"] = round(float(np.mean(imgs)), 2)
            entry["curves"] = {str(s): r.get("curve", []) for s, r in done.items()}
        results[method] = entry
    return results


def _per_query(per_seed: dict[str, dict[int, dict[str, Any]]], method: str, key: str, metric: str,
               seeds: list[int] | None = None) -> np.ndarray | None:
    runs = [r for s, r in sorted(per_seed.get(method, {}).items())
            if r.get("complete") and (seeds is None or s in seeds)]
    if not runs:
        return None
    field = "ap" if metric == "mAP" else "hit1"
    return np.array([r["tests"][key][field] for r in runs], dtype=np.float64)


def _paired(per_seed: dict, a: str, b: str, key: str, seeds: list[int] | None = None) -> dict[str, Any] | None:
    from opreid_bench.evaluation.bootstrap import paired_difference_ci

    out: dict[str, Any] = {}
    for metric in ("mAP", "rank1"):
        va, vb = _per_query(per_seed, a, key, metric, seeds), _per_query(per_seed, b, key, metric, seeds)
        if va is None or vb is None:
            return None
        out[metric] = paired_difference_ci(va, vb, BOOTSTRAP)
    return out


def _comparisons(per_seed: dict, results: dict[str, Any], ablation_seeds: list[int]) -> dict[str, Any]:
    """ours minus the strongest baseline per test (paired bootstrap), ME's own effect, each Table 5 step."""
    comp: dict[str, Any] = {"ours_vs_strongest_baseline": {}, "me_effect": {}, "table5_steps": {}}
    for key, _ in TESTS:
        candidates = [m for m in ("bot", "baseline") if key in results.get(m, {})]
        if candidates and key in results.get("ours", {}):
            strongest = max(candidates, key=lambda m: results[m][key]["mAP"])
            paired = _paired(per_seed, "ours", strongest, key)
            if paired:
                comp["ours_vs_strongest_baseline"][key] = {"baseline": strongest, **paired}
        me = _paired(per_seed, "ours", ME_OFF, key)
        if me:
            comp["me_effect"][key] = me
        steps = {}
        for prev, row in zip(TABLE5, TABLE5[1:]):
            step = _paired(per_seed, row, prev, key, ablation_seeds)
            if step:
                steps[f"{row} - {prev}"] = step
        if steps:
            comp["table5_steps"][key] = steps
    return comp


TEST_LABELS = {"cuhk03_val": "CUHK03 val", "partial_reid": "P-REID occluded", "partial_reid_partial": "P-REID partial"}


def _print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="CPU reproduction: MobileNetV2 trained on CUHK03 train; R-1 / mAP in %, mean ± std over seeds")
    table.add_column("method")
    table.add_column("seeds", justify="right")
    for key, _ in TESTS:
        table.add_column(f"{TEST_LABELS[key]} R-1 / mAP", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("min/run", justify="right")
    for method, r in results.items():
        if method in ("comparisons", "meta") or TESTS[0][0] not in r:
            continue
        cells = []
        for key, _ in TESTS:
            std = r.get("std", {}).get(key, {})
            cells.append(" / ".join(f"{100 * r[key][m]:.1f}±{100 * std.get(m, 0.0):.1f}" for m in ("rank1", "mAP")))
        table.add_row(method, str(r.get("num_seeds", 1)), *cells, str(r.get("epochs", "")),
                      f"{r.get('minutes', 0.0):.1f}")
    console = Console(stderr=True, width=160)
    console.print(table)
    for name, per_test in results.get("comparisons", {}).items():
        for key, c in per_test.items():
            # table5_steps holds one paired difference per step ("row - previous row"); the others one per test
            pairs = c.items() if name == "table5_steps" else [(None, c)]
            for step, pc in pairs:
                d = pc["mAP"]
                what = f"Table 5 step {step}" if step else name + (f" vs {pc['baseline']}" if "baseline" in pc else "")
                console.print(f"{what} on {TEST_LABELS[key]}: mAP {100 * d['diff']:+.2f} "
                              f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] (paired bootstrap 95% CI)")


def _plot(results: dict[str, Any], plot_dir: Path) -> None:
    """Bars with 95 % CI whiskers per test and method; CUHK03 val mAP per epoch, one line per method and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opreid_bench.atomic import atomic_path

    methods = [m for m in results if m not in ("comparisons", "meta") and TESTS[0][0] in results[m]]
    fig, axes = plt.subplots(1, len(TESTS), figsize=(5 * len(TESTS), 4.2), sharey=True)
    for ax, (key, _) in zip(np.atleast_1d(axes), TESTS):
        vals = [100 * results[m][key]["mAP"] for m in methods]
        lo = [100 * (results[m][key]["mAP"] - results[m]["ci95"].get(key, {}).get("mAP", [results[m][key]["mAP"]] * 2)[0])
              for m in methods]
        hi = [100 * (results[m]["ci95"].get(key, {}).get("mAP", [results[m][key]["mAP"]] * 2)[1] - results[m][key]["mAP"])
              for m in methods]
        ax.bar(range(len(methods)), vals, yerr=[lo, hi], capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{key} (mAP %, 95% CI over queries)", fontsize=9)
    fig.tight_layout()
    with atomic_path(plot_dir / "reproduce_cpu.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, m in enumerate(m for m in methods if results[m].get("curves") and m != ME_OFF):  # ME_OFF: ours' run
        for s, curve in results[m]["curves"].items():
            if curve:
                ax.plot([c["epoch"] for c in curve], [100 * c["mAP"] for c in curve], color=f"C{i}",
                        label=m if s == min(results[m]["curves"]) else None, alpha=0.8, marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("CUHK03 val mAP (%)")
    ax.set_title("Validation curves (one line per method and seed)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(plot_dir / "reproduce_cpu_curves.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give seeds as comma-separated integers, e.g. 0,1,2") from None


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=SHARED / "data", show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              default=SHARED / "weights" / "mobilenet_v2-b0353104.pth", show_default=True)
@click.option("--methods", default=",".join(METHODS), show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True, help="Seeds for --methods.")
@click.option("--ablations", default=",".join(TABLE5), show_default=True,
              help="Table 5 rows to train ('none' for none); rows also in --methods reuse those runs.")
@click.option("--ablation-seeds", default="0", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True,
              help="Epochs for every run (same schedule shape for every method).")
@click.option("--schedule", type=click.Choice(["short", "scaled"]), default="short", show_default=True,
              help="short: warm-up 1 epoch, x0.1 at 60%% and 85%%; scaled: the 120-epoch schedule squeezed.")
@click.option("--minutes-per-run", "minutes", type=float, default=60.0, show_default=True,
              help="Safety cap per run (stops after the epoch that crosses it; resumes next call).")
@click.option("--height", type=int, default=128, show_default=True)
@click.option("--width", type=int, default=64, show_default=True)
@click.option("--train-ids", type=int, default=None, help="Train on the first N identities only (smoke runs).")
@click.option("--max-iters", type=int, default=None, help="Iterations per epoch cap (smoke runs).")
@click.option("--workers", type=int, default=0, show_default=True)
@click.option("--curves/--no-curves", default=True, show_default=True,
              help="Evaluate CUHK03 val after every epoch (the validation curve).")
@click.option("--set", "sets", multiple=True, help="Extra --set override for every run (e.g. loss.bed_alpha=0.5).")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write reproduce_cpu.png and reproduce_cpu_curves.png here (e.g. docs).")
@click.option("--json", "json_out", is_flag=True, help="Print results.json as one JSON object on stdout.")
@click.option("--report-only", is_flag=True,
              help="Train nothing: print the table (and --plots) of OUT/results.json as it stands, e.g. while a sweep "
                   "is still running (results.json is rewritten after every run).")
def main(**args: Any) -> None:
    """Train and evaluate bot, baseline, ours (several seeds) and the Table 5 rows; write OUT/results.json."""
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.outputs import content_digest

    out = Path(args["out"])
    if args["report_only"]:
        path = out / "results.json"
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{path}: no readable results.json to report ({exc})") from None
        _print_table(results)
        if args["plot_dir"]:
            _plot(results, args["plot_dir"])
        if args["json_out"]:
            click.echo(json.dumps(results, sort_keys=True))
        return
    out.mkdir(parents=True, exist_ok=True)
    seeds, ablation_seeds = _seed_list(args["seeds"]), _seed_list(args["ablation_seeds"])
    methods = [m for m in args["methods"].split(",") if m]
    ablations = [] if args["ablations"] in ("", "none") else [m for m in args["ablations"].split(",") if m]
    plan: list[tuple[str, int]] = []
    for seed in seeds:  # seed 0 of every method first: the first comparison and curves come early
        plan += [(m, seed) for m in methods]
    for seed in ablation_seeds:
        plan += [(m, seed) for m in ablations if (m, seed) not in plan]
    tests = _load_tests(args["data_root"])
    splits = _train_splits(args["data_root"], args["train_ids"])
    ctx = {"tests": tests, "splits": splits, "train_digest": _records_digest(splits.train),
           "weights_sha": content_digest(args["weights"]),
           "test_keys": {k: _records_digest(list(q) + list(g)) + junk for k, (q, g, junk) in tests.items()}}
    t0 = time.perf_counter()
    per_seed: dict[str, dict[int, dict[str, Any]]] = {}
    floor = _imagenet_floor(args, ctx)
    per_seed["imagenet"] = {0: floor["imagenet"]}
    for i, (method, seed) in enumerate(plan):
        print(f"[{i + 1}/{len(plan)}] {method} seed {seed}", file=sys.stderr, flush=True)
        for name, entry in _train_run(method, seed, args, ctx).items():
            per_seed.setdefault(name, {})[seed] = entry
        results = _aggregate(per_seed, {"backbone": "mobilenetv2", "height": args["height"], "width": args["width"]})
        results["comparisons"] = _comparisons(per_seed, results, ablation_seeds)
        results["meta"] = {"epochs": args["epochs"], "schedule": args["schedule"], "seeds": seeds,
                           "ablation_seeds": ablation_seeds, "height": args["height"], "width": args["width"],
                           "bootstrap_resamples": BOOTSTRAP, "units": "fraction",
                           "plan": [f"{m}:{s}" for m, s in plan], "minutes_this_call": round(
                               (time.perf_counter() - t0) / 60, 2)}
        atomic_write_text(out / "results.json", json.dumps(results, indent=1, sort_keys=True) + "\n")
    results = _aggregate(per_seed, {"backbone": "mobilenetv2", "height": args["height"], "width": args["width"]})
    results["comparisons"] = _comparisons(per_seed, results, ablation_seeds)
    results["meta"] = json.loads((out / "results.json").read_text())["meta"] if plan else {"units": "fraction"}
    _print_table(results)
    if args["plot_dir"]:
        _plot(results, args["plot_dir"])
    if args["json_out"]:
        click.echo(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
