"""Issue 11, sections 1-2: `opreid-bench visualize` rank lists, --compare counts, errors, HTML render, Grad-CAM."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opreid_bench.cli import main
from opreid_bench.evaluation import FeatureSet, evaluate_features, read_feature_file, write_feature_file
from opreid_bench.evaluation.ranklists import compute_rank_lists

Q_PIDS = np.array([0, 1, 2, 3, 4, 0])
Q_CAMS = np.array([0, 0, 0, 0, 0, 1])
G_PIDS = np.array([0, 0, 1, 1, 2, 2, 3, 5, 5, 6, 6, 7, 4, 0])
G_CAMS = np.array([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1])  # query 3's only match is junk: invalid


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _data(tmp: Path, seed: int = 0, noise: float = 0.7, paths: bool = True, name: str = "a.h5",
          method: str = "ours") -> Path:
    rng = np.random.default_rng(seed)
    tmp.mkdir(parents=True, exist_ok=True)

    def crops(prefix: str, pids: np.ndarray) -> list[str]:
        out = []
        for i, p in enumerate(pids):
            f = tmp / f"{prefix}{i}.png"
            if not f.exists():
                Image.new("RGB", (16, 32), (int(p) * 30 % 255, 90, 40)).save(f)
            out.append(str(f))
        return out

    centres = np.random.default_rng(99).normal(size=(8, 12))
    qf = centres[Q_PIDS] + noise * rng.normal(size=(len(Q_PIDS), 12))
    gf = centres[G_PIDS] + noise * rng.normal(size=(len(G_PIDS), 12))
    q = FeatureSet(qf.astype(np.float32), Q_PIDS, Q_CAMS, crops("q", Q_PIDS) if paths else None,
                   np.arange(len(Q_PIDS)) % 2 == 0)
    g = FeatureSet(gf.astype(np.float32), G_PIDS, G_CAMS, crops("g", G_PIDS) if paths else None)
    write_feature_file(tmp / name, q, g, {"method": method, "junk": "market"})
    return tmp / name


def _expected_lists(h5: Path, topk: int) -> tuple[dict[int, list[str]], dict]:
    """Brute force: full stable sort, market junk rule; kinds of the first topk non-junk items (junk kept)."""
    q, g, _ = read_feature_file(h5)
    d = np.linalg.norm(q.features[:, None, :].astype(np.float64) - g.features[None, :, :], axis=2)
    kinds = {}
    for i in range(len(q)):
        out, n = [], 0
        for j in np.argsort(d[i], kind="stable"):
            if n == topk:
                break
            same = g.pids[j] == q.pids[i]
            junk = same and g.camids[j] == q.camids[i]
            out.append("junk" if junk else ("true" if same else "wrong"))
            n += not junk
        kinds[i] = out
    report = evaluate_features(q, g, junk="market", device="cpu")
    return kinds, {"ap": report.overall.ap, "first_hit": report.overall.first_hit,
                   "valid": report.overall.valid_query_index}


def _page_frames(html: str) -> list[tuple[int, list[str]]]:
    """(query index, frame kinds per row) for every shown row of the page."""
    rows = []
    for block in re.findall(r'<div class="q" data-query="(\d+)">(.*?)</div></div>', html, flags=re.S):
        for row in block[1].split('<div class="row"')[1:]:
            rows.append((int(block[0]), re.findall(r'data-kind="(\w+)"', row)))
    return rows


def test_green_frames_are_true_matches_and_numbers_are_the_evaluators(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    h5 = _data(tmp_path / "d")
    code, out, err = _cli(["visualize", "--features", str(h5), "--out", str(tmp_path / "vis"), "--topk", "4",
                           "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == {"html", "queries_shown", "true_matches_in_topk", "a_wins", "b_wins"}
    page = Path(summary["html"]).read_text()
    kinds, ev = _expected_lists(h5, 4)
    rows = _page_frames(page)
    assert [q for q, _ in rows] and 3 not in [q for q, _ in rows]  # the invalid query is not shown
    assert summary["queries_shown"] == len(rows) == len(ev["valid"])
    for q, frames in rows:
        assert frames == kinds[q]
    green = sum(frames.count("true") for _, frames in rows)
    assert green == page.count('class="true"') == summary["true_matches_in_topk"] > 0
    # worst AP first, AP and first-hit rank equal the evaluator's
    ap = dict(zip(ev["valid"].tolist(), ev["ap"].tolist(), strict=True))
    fh = dict(zip(ev["valid"].tolist(), ev["first_hit"].tolist(), strict=True))
    shown = [q for q, _ in rows]
    assert shown == sorted(shown, key=lambda q: (ap[q], shown.index(q)))
    for q in shown:
        assert f"AP {ap[q]:.3f} · first true match: rank {fh[q] + 1}" in page
    assert (tmp_path / "vis" / "grids" / "page_001.png").stat().st_size > 500
    assert "src=\"file:" not in page and "<script" not in page  # self-contained
    assert ("occluded" in page) and ("holistic" in page)


def test_rank_lists_chunked_equal_unchunked(tmp_path: Path) -> None:
    q, g, _ = read_feature_file(_data(tmp_path / "d"))
    a = compute_rank_lists(q, g, topk=3, chunk_rows=1)
    b = compute_rank_lists(q, g, topk=3)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.first_hit, b.first_hit)
    assert np.allclose(np.nan_to_num(a.ap), np.nan_to_num(b.ap))


def test_compare_counts_equal_the_evaluators(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _data(tmp_path / "d", seed=0, noise=0.5)
    b = _data(tmp_path / "d", seed=5, noise=2.5, name="b.h5", method="bot")
    code, out, err = _cli(["visualize", "--features", str(a), "--compare", str(b), "--out", str(tmp_path / "v"),
                           "--topk", "3", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    _, ea = _expected_lists(a, 3)
    _, eb = _expected_lists(b, 3)
    assert np.array_equal(ea["valid"], eb["valid"])
    a_right, b_right = ea["first_hit"] == 0, eb["first_hit"] == 0
    assert summary["a_wins"] == int(np.sum(a_right & ~b_right))
    assert summary["b_wins"] == int(np.sum(b_right & ~a_right))
    assert summary["a_wins"] + summary["b_wins"] > 0
    page = Path(summary["html"]).read_text()
    assert "A right, B wrong" in page and "B right, A wrong" in page
    assert f"wins {summary['a_wins']}" in page
    rows = _page_frames(page)
    assert len(rows) == 2 * summary["queries_shown"]
    assert sum(f.count("true") for _, f in rows) == summary["true_matches_in_topk"]


def test_same_inputs_same_bytes_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5 = _data(tmp_path / "d")
    for n in ("v1", "v2"):
        assert _cli(["visualize", "--features", str(h5), "--out", str(tmp_path / n), "--sort", "random", "--seed",
                     "3", "--only", "failures", "--limit", "2"], capsys)[0] == 0
    assert (tmp_path / "v1/index.html").read_bytes() == (tmp_path / "v2/index.html").read_bytes()
    assert (tmp_path / "v1/grids/page_001.png").read_bytes() == (tmp_path / "v2/grids/page_001.png").read_bytes()
    code, out, _ = _cli(["visualize", "--features", str(h5), "--out", str(tmp_path / "v3"), "--query", "q1.png",
                         "--json", "--link-images"], capsys)
    assert code == 0 and json.loads(out)["queries_shown"] == 1
    page = (tmp_path / "v3/index.html").read_text()
    assert 'data-query="1"' in page and "file://" in page


@pytest.mark.parametrize("case", ["no_paths", "bad_query", "attention", "incomparable", "not_empty", "missing"])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    h5 = _data(tmp_path / "d")
    out = tmp_path / "vis"
    args = ["visualize", "--features", str(h5), "--out", str(out)]
    expect = {"no_paths": "has no /query/paths", "bad_query": "--query nope.png: no query has",
              "attention": "--attention needs --weights", "incomparable": "not comparable",
              "not_empty": "not empty", "missing": "no such feature file"}[case]
    if case == "no_paths":
        args[2] = str(_data(tmp_path / "e", paths=False))
    elif case == "bad_query":
        args += ["--query", "nope.png"]
    elif case == "attention":
        args += ["--attention"]
    elif case == "incomparable":
        q, g, _ = read_feature_file(h5)
        g.pids = g.pids[::-1].copy()
        write_feature_file(tmp_path / "other.h5", q, g)
        args += ["--compare", str(tmp_path / "other.h5")]
    elif case == "not_empty":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    else:
        args[2] = str(tmp_path / "missing.h5")
    code, _, err = _cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], err
    if case == "not_empty":
        assert (out / "mine.txt").read_text() == "keep" and sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    else:
        assert not (out / "index.html").exists()


def test_html_renders_in_headless_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed")
    h5 = _data(tmp_path / "d")
    code, out, _ = _cli(["visualize", "--features", str(h5), "--out", str(tmp_path / "vis"), "--json"], capsys)
    summary = json.loads(out)
    page = Path(summary["html"])
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert dom.stdout.count('class="true"') == summary["true_matches_in_topk"] > 0
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=900,700",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000


class _TinyReID(torch.nn.Module):
    """A ReIDModel-shaped net (backbone, pool, bnneck, retrieval_feature, extract) small enough for a unit test."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
        self.bnneck = torch.nn.Identity()

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean(dim=(2, 3))

    def retrieval_feature(self, pooled: torch.Tensor, bn: torch.Tensor) -> torch.Tensor:
        return pooled

    @torch.no_grad()
    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone(x))


def test_gradcam_marks_the_region_that_makes_the_feature(tmp_path: Path) -> None:
    from opreid_bench.visualize.attention import GradCam

    img = tmp_path / "x.png"
    pixels = np.zeros((32, 16, 3), dtype=np.uint8)
    pixels[:16] = 255  # bright top half activates the (positive) filters, the black bottom half does not
    Image.fromarray(pixels).save(img)
    model = _TinyReID()
    with torch.no_grad():
        model.backbone[0].weight.fill_(1.0)
        model.backbone[0].bias.zero_()
    cam = GradCam(model, 32, 16).for_crop(img, None)
    assert cam.shape == (32, 16) and cam.max() == pytest.approx(1.0)
    assert cam[18:].max() == 0.0 and cam[:14].min() > 0.5
    ref = GradCam(model, 32, 16).for_crop(img, img)  # scored against a query: the same picture here
    assert np.allclose(ref, cam, atol=1e-5)


def test_compare_accepts_the_same_crops_spelled_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from opreid_bench.evaluation.ranklists import same_labels

    a = _data(tmp_path / "d", seed=0, noise=0.5)
    b = _data(tmp_path / "d", seed=5, noise=2.5, name="b.h5", method="bot")
    monkeypatch.chdir(tmp_path)
    bq, bg, attrs = read_feature_file(b)
    bq.paths, bg.paths = [os.path.relpath(p) for p in bq.paths], [os.path.relpath(p) for p in bg.paths]
    assert bq.paths[0] == os.path.join("d", "q0.png")  # extracted with a relative --root
    write_feature_file(tmp_path / "b_rel.h5", bq, bg, dict(attrs))
    code, out, err = _cli(["visualize", "--features", str(a), "--compare", "b_rel.h5", "--out", "v", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["a_wins"] is not None
    aq, ag, _ = read_feature_file(a)
    renamed = list(bg.paths)
    renamed[3] = os.path.join("d", "other.png")  # another crop: not the same gallery
    bg.paths = renamed
    assert same_labels(aq, ag, bq, bg) == f"/gallery/paths differ (item 3: {renamed[3]!r}, not {ag.paths[3]!r})"
