"""Recipes (baselines/recipes/) and `opreid-bench reproduce`: loading, validation, plans, and a tiny real run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from opreid_bench.cli import cli
from opreid_bench.engine.recipes import RECIPES_DIR, list_recipes, load_recipe, plan_recipe
from opreid_bench.errors import ConfigError, OpreidError

REPO = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
description: a tiny CPU recipe for the tests
hardware: any CPU, seconds
device: cpu
variables: {ROOT: null}
data:
  cuhk03_labeled: ${ROOT}
  partial_reid: ${ROOT}
train: {methods: [ours], datasets: [cuhk03_labeled]}
evaluate:
  cuhk03_labeled: [cuhk03_labeled, partial_reid]
overrides:
  - model.backbone=mobilenetv2
  - data.height=64
  - data.width=32
  - data.batch_p=3
  - data.batch_k=2
  - data.test_batch_size=32
  - optim.epochs=1
  - optim.warmup_epochs=0
  - "optim.milestones=[]"
  - optim.max_iters_per_epoch=2
  - eval.period=0
  - eval.at_end=false
published:
  tables: [Table 3]
  methods: {ours: Ours}
"""


def _image(path: Path, pid: int, rng: np.random.Generator, size: tuple[int, int] = (32, 64)) -> None:
    base = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated CUHK03-style folder (6 train ids x 10, 4 val ids x 10) and a Partial-REID-style one (4 ids)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for pid in range(6):
        for k in range(10):
            _image(root / "cuhk03_labeled" / "train" / f"{pid:04d}_{k:02d}.jpg", pid, rng)
    for pid in range(4):
        for k in range(10):
            _image(root / "cuhk03_labeled" / "val" / f"{pid:04d}_{k:02d}.jpg", pid + 10, rng)
        for k in range(1, 3):
            _image(root / "Partial_REID" / "occluded_body_images" / f"{pid + 1:03d}_{k:03d}.jpg", pid + 20, rng)
            _image(root / "Partial_REID" / "whole_body_images" / f"{pid + 1:03d}_{k:03d}.jpg", pid + 20, rng)
    return root


@pytest.fixture()
def tiny_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ loading/validation


def test_shipped_recipes_load_and_plan(tmp_path: Path) -> None:
    names = list_recipes()
    assert {"cpu_cuhk03", "paper_table3", "paper_table4", "paper_table5"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.description and recipe.hardware
        plan = plan_recipe(recipe, tmp_path / name)
        assert plan.runs and all(r.status == "new" for r in plan.runs)
    t5 = load_recipe("paper_table5")
    assert len(t5.train) == 24 and set(t5.published.methods) == {r.method for r in t5.train}
    t3 = plan_recipe(load_recipe("paper_table3"), tmp_path / "t3", roots=["/nowhere"],
                     pretrained=["resnet50=/w/r50.pth"])
    cfg = t3.runs[0].config
    assert (cfg.model.backbone, cfg.data.height, cfg.data.width, cfg.data.batch_p, cfg.data.batch_k,
            cfg.optim.epochs, cfg.model.pretrained) == ("resnet50", 256, 128, 16, 4, 120, "/w/r50.pth")
    assert load_recipe("paper_table3").protocols_for("market1501") == ["occluded_reid", "market1501"]


def test_cpu_recipe_matches_reproduce_cpu_defaults(tmp_path: Path) -> None:
    """The cpu_cuhk03 recipe trains exactly the configs of benchmarks/reproduce_cpu.py's defaults."""
    from opreid_bench.engine.config import load_method_config

    spec = importlib.util.spec_from_file_location("reproduce_cpu", REPO / "benchmarks" / "reproduce_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = module.main.make_context("reproduce_cpu", ["--out", str(tmp_path / "cpu")]).params
    weights = tmp_path / "mobilenet_v2.pth"
    plan = plan_recipe(load_recipe("cpu_cuhk03"), tmp_path / "out", pretrained=[f"mobilenetv2={weights}"])
    defaults["weights"] = weights
    assert [r.method for r in plan.runs] == defaults["methods"].split(",")
    for run in plan.runs:
        assert run.config.to_dict() == load_method_config(run.method, module._overrides(defaults, 0)).to_dict()
    assert plan.recipe.time_limit_minutes == defaults["minutes"]
    assert plan.runs[0].protocols == ["cuhk03_labeled", "partial_reid"]


@pytest.mark.parametrize(("text", "needle"), [
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\ncolour: red\n", "'colour'"),
    ("description: d\ntrain: {method: bot, dataset: market1501}\n", "'name' is missing"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: nowhere}\n", "names dataset 'nowhere'"),
    ("name: x\ndescription: d\ntrain: {method: nomethod, dataset: market1501}\n", "names method 'nomethod'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\nevaluate: {dukemtmc: [dukemtmc]}\n",
     "'evaluate.dukemtmc' is not a training dataset"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\nevaluate: {market1501: [nope]}\n",
     "names protocol 'nope'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\noverrides: [model.dnn=true]\n",
     "'overrides' do not fit method 'bot'"),
    ("name: x\ndescription: d\ntrain: [{method: bot, datasets: [market1501], epochs: 3}]\n", "'train[0].epochs'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\ndevice: tpu\n", "'device'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\ndata: {market: /d}\n", "'data.market'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\ntime_limit_minutes: -1\n",
     "'time_limit_minutes'"),
    ("name: x\ndescription: d\ntrain: {method: bot, dataset: market1501}\npublished: {table: [Table 4]}\n",
     "'published.table'"),
    ("name: [x\n", "invalid YAML"),
])
def test_validation_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_unknown_recipe_lists_known() -> None:
    with pytest.raises(ConfigError, match="known: .*cpu_cuhk03"):
        load_recipe("table9")


def test_train_forms_and_default_protocol(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ndescription: d\ntrain:\n  - {method: bot, dataset: market1501}\n"
                            "  - {methods: [baseline, ours], datasets: [market1501, dukemtmc]}\n")
    recipe = load_recipe(path)
    assert [(r.method, r.dataset) for r in recipe.train] == [
        ("bot", "market1501"), ("baseline", "market1501"), ("baseline", "dukemtmc"), ("ours", "market1501"),
        ("ours", "dukemtmc")]
    assert recipe.protocols_for("dukemtmc") == ["dukemtmc"]  # no evaluate entry: the dataset's own protocol
    dup = _write(tmp_path, "name: x\ndescription: d\ntrain: [{method: bot, dataset: market1501}, "
                           "{method: bot, dataset: market1501}]\n", "dup.yaml")
    with pytest.raises(ConfigError, match="twice"):
        load_recipe(dup)


# ------------------------------------------------------------------------------------------------------- plans


def test_dry_run_plan_lists_runs_commands_and_missing(tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(tiny_recipe), "--out", str(out), "--dry-run",
                                   "--json"])
    assert res.exit_code == 1, res.output  # something is missing: the plan is printed, and the check fails
    data = json.loads(res.output)
    assert data["dry_run"] is True and len(data["runs"]) == 1
    run = data["runs"][0]
    assert run["run_dir"] == str(out / "ours__cuhk03_labeled") and run["status"] == "new"
    assert run["commands"][0].startswith("opreid-bench train --method ours --dataset cuhk03_labeled")
    assert "--set data.height=64" in run["commands"][0]
    assert any("evaluate" in c and "partial_reid" in c for c in run["commands"])
    assert any("'cuhk03_labeled': not set (${ROOT})" in p and "--root cuhk03_labeled=PATH" in p
               for p in data["problems"])
    assert not out.exists()  # a dry run writes nothing
    # the rich plan prints the same problems; a real run refuses with one error naming them
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(tiny_recipe), "--out", str(out), "--dry-run"])
    assert res.exit_code == 1 and "missing (pass these before running)" in res.output
    with pytest.raises(OpreidError, match=r"cannot run: .*--root partial_reid=PATH"):
        CliRunner().invoke(cli, ["reproduce", "--recipe", str(tiny_recipe), "--out", str(out)],
                           catch_exceptions=False, standalone_mode=False)


def test_plan_roots_vars_and_status(tiny_recipe: Path, tiny_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe)
    plan = plan_recipe(recipe, tmp_path, variables=[f"ROOT={tiny_root}"])
    assert plan.problems == [] and plan.roots == {"cuhk03_labeled": str(tiny_root), "partial_reid": str(tiny_root)}
    plan = plan_recipe(recipe, tmp_path, roots=[str(tiny_root), "partial_reid=/no/such/dir"])
    assert plan.roots["cuhk03_labeled"] == str(tiny_root)
    assert len(plan.problems) == 1 and "/no/such/dir" in plan.problems[0]
    with pytest.raises(OpreidError, match="reads no dataset 'market1501'"):
        plan_recipe(recipe, tmp_path, roots=["market1501=/x"])
    with pytest.raises(OpreidError, match="BACKBONE=PATH"):
        plan_recipe(recipe, tmp_path, pretrained=["/x.pth"])
    with pytest.raises(OpreidError, match="--var 'ROOT': expected NAME=VALUE"):
        plan_recipe(recipe, tmp_path, variables=["ROOT"])
    (tmp_path / "ours__cuhk03_labeled" / "checkpoints").mkdir(parents=True)
    (tmp_path / "ours__cuhk03_labeled" / "checkpoints" / "last.pt").write_bytes(b"")
    plan = plan_recipe(recipe, tmp_path, variables=[f"ROOT={tiny_root}"], sets=["optim.epochs=2"])
    assert plan.runs[0].status == "partial" and plan.runs[0].config.optim.epochs == 2
    # the runs go into a folder of their own: a folder of the user's files is refused, before anything is written
    (tmp_path / "paper_draft.tex").write_text("mine\n")
    with pytest.raises(OpreidError, match=r"holds 1 entry that no `opreid-bench` run wrote \(e.g. paper_draft.tex\)"):
        plan_recipe(recipe, tmp_path, variables=[f"ROOT={tiny_root}"])
    assert "--resume" in plan.to_dict()["runs"][0]["commands"][0]


# ------------------------------------------------------------------------------------------ a tiny real run


def test_tiny_end_to_end_run_is_resumable_and_on_the_leaderboard(tiny_recipe: Path, tiny_root: Path,
                                                                   tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    out = tmp_path / "runs"
    args = ["reproduce", "--recipe", str(tiny_recipe), "--out", str(out), "--root", str(tiny_root), "--json"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["status"] for r in data["runs"]] == ["trained"] and data["runs"][0]["complete"]
    run_dir = out / "ours__cuhk03_labeled"
    info = json.loads((run_dir / "run.json").read_text())
    assert set(info["results"]) == {"cuhk03_labeled", "partial_reid"}
    for key in ("cuhk03_labeled", "partial_reid"):
        assert 0.0 <= info["results"][key]["mAP"] <= 1.0 and 0.0 <= info["results"][key]["rank1"] <= 1.0
        assert info["evaluated"][key]["junk"] == "none" and info["evaluated"][key]["epochs"] == 1
    assert info["results"]["partial_reid"]["num_valid_queries"] == 8
    assert info["recipe"] == "tiny" and info["method"] == "ours"
    measured = [r for r in data["leaderboard"] if r["source"] != "published"]
    assert {r["dataset"] for r in measured} == {"cuhk03_labeled", "partial_reid"}
    assert all(r["source"] != "published" or r["table"] == "Table 3" for r in data["leaderboard"])

    # second call: nothing trained or evaluated again, files untouched
    stamps = {p: p.stat().st_mtime_ns for p in (run_dir / "model.pt", run_dir / "run.json")}
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert [r["status"] for r in again["runs"]] == ["skipped"]
    assert again["runs"][0]["results"] == data["runs"][0]["results"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # `opreid-bench leaderboard --runs OUT` picks the rows up
    res = CliRunner().invoke(cli, ["leaderboard", "--runs", str(out), "--no-published", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {(r["method"], r["dataset"]) for r in rows} == {("ours", "cuhk03_labeled"), ("ours", "partial_reid")}
    pr = next(r for r in rows if r["dataset"] == "partial_reid")
    assert pr["mAP"] == pytest.approx(100 * info["results"]["partial_reid"]["mAP"], abs=0.01)

    # a finished run with another config is a conflict, not silently reused
    plan = plan_recipe(load_recipe(tiny_recipe), out, roots=[str(tiny_root)], sets=["loss.bed_alpha=0.5"])
    assert any("another config" in p and "loss.bed_alpha" in p for p in plan.problems)


def test_list_recipes_json() -> None:
    res = CliRunner().invoke(cli, ["reproduce", "--list", "--json"])
    assert res.exit_code == 0, res.output
    names = {r["name"] for r in json.loads(res.output)["recipes"]}
    assert names == {p.stem for p in RECIPES_DIR.glob("*.yaml")}


def test_comparison_puts_published_next_to_measured(tmp_path: Path) -> None:
    """A run of paper_table3 (ours trained on Market-1501, evaluated on Occluded-REID) meets Table 3's 'Ours' row."""
    from opreid_bench.engine.recipes import comparison, recipe_rows

    plan = plan_recipe(load_recipe("paper_table3"), tmp_path, roots=[str(tmp_path)],
                       pretrained=["resnet50=/w.pth"])
    run_dir = tmp_path / "ours__market1501"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({
        "method": "ours", "train_dataset": "market1501", "backbone": "resnet50", "epochs": 120, "metrics_unit": "fraction",
        "results": {"occluded_reid": {"rank1": 0.701, "mAP": 0.65}, "cuhk03_labeled": {"rank1": 0.5, "mAP": 0.4}}}))
    rows = recipe_rows(plan)
    assert {r.dataset for r in rows} <= {"opreid", "occluded_duke", "occluded_reid", "market1501"}
    assert all(r.table == "Table 3" for r in rows if r.source == "published")
    (entry,) = comparison(plan, rows)
    assert (entry["method"], entry["dataset"], entry["train_dataset"]) == ("ours", "occluded_reid", "market1501")
    assert (entry["rank1"], entry["mAP"]) == (70.1, 65.0)
    assert (entry["published_method"], entry["published_rank1"], entry["published_mAP"]) == ("Ours", 78.5, 72.9)


def test_time_capped_run_is_resumed_on_the_next_call(tiny_root: Path, tmp_path: Path) -> None:
    """A run stopped by time_limit_minutes is evaluated, reported incomplete, and resumed to the end by the next run."""
    import torch

    from opreid_bench.engine.recipes import run_plan

    torch.set_num_threads(1)
    text = TINY.replace("[ours]", "[bot]").replace("optim.epochs=1", "optim.epochs=2")
    recipe = load_recipe(_write(tmp_path, text + "time_limit_minutes: 0.000001\n", "capped.yaml"))
    out = tmp_path / "runs"
    plan = plan_recipe(recipe, out, roots=[str(tiny_root)])
    (first,) = run_plan(plan, progress=False)
    assert first["status"] == "trained" and not first["complete"] and first["epochs"] == 1
    run_dir = out / "bot__cuhk03_labeled"
    assert json.loads((run_dir / "run.json").read_text())["evaluated"]["partial_reid"]["epochs"] == 1
    plan = plan_recipe(recipe, out, roots=[str(tiny_root)])
    assert plan.runs[0].status == "stopped" and "--resume" in plan.to_dict()["runs"][0]["commands"][0]
    (second,) = run_plan(plan, progress=False)
    assert second["complete"] and second["epochs"] == 2
    info = json.loads((run_dir / "run.json").read_text())
    assert {k: v["epochs"] for k, v in info["evaluated"].items()} == {"cuhk03_labeled": 2, "partial_reid": 2}
    assert [json.loads(t)["epoch"] for t in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
