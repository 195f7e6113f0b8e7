"""Who decided each occlusion label (rule, hand, policy), how stable it is, and what the data card says of both."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from browser_helpers import chromium_or_skip, download_from_page
from split_helpers import image_pool, tiny_protocol_yaml

from opreid_bench.cli import main
from opreid_bench.splits.classify import UNSTABLE_BELOW, label_reliability

LOWER_BODY_SCORES = slice(13 * 3 + 3, 17 * 3 + 1, 3)  # score cells of knees and ankles in a keypoints.csv row


def _invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command as a user runs it (errors become one line on stderr): exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    got = capsys.readouterr()
    return int(exc.value.code or 0), got.out, got.err


def _pool_with_doubtful_labels(root: Path) -> tuple[Path, Path, list[str], list[str]]:
    """The generated pool, with the lower body of every third identity's occluded crops scored 0.66 (the default
    threshold 0.74 calls them missing, lower thresholds of the stability grid visible: unstable labels) and two crops
    where no person was found."""
    manifest, keypoints = image_pool(root)
    rows = list(csv.reader(keypoints.open()))
    doubtful, lost = [], []
    for row in rows[1:]:
        pid = int(Path(row[0]).stem.split("_")[0])
        scores = [float(v) for v in row[LOWER_BODY_SCORES]]
        if pid % 3 == 0 and max(scores) < 0.5:
            row[LOWER_BODY_SCORES] = ["0.66"] * len(scores)
            doubtful.append(row[0])
    for row in rows[-2:]:
        row[3::3] = ["0"] * 17
        lost.append(row[0])
    with keypoints.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return manifest, keypoints, doubtful, lost


def test_classify_says_who_decided_each_label_and_counts_the_unstable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, keypoints, doubtful, lost = _pool_with_doubtful_labels(tmp_path / "pool")
    fix = tmp_path / "checked.csv"
    # a changed verdict and a verdict marked checked are hand labels; a row that repeats the rule decides nothing
    fix.write_text(f"source_path,occluded,checked\n{doubtful[0]},holistic,\n{doubtful[1]},occluded,y\n"
                   f"{doubtful[2]},occluded,\n", encoding="utf-8")
    ann = tmp_path / "ann"
    code, _, stderr = _invoke(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose",
                               f"precomputed:{keypoints}"], capsys)
    assert code == 0, stderr
    out = tmp_path / "labels.csv"
    code, stdout, stderr = _invoke(["classify", "--keypoints", str(ann), "--out", str(out),
                                    "--support-threshold", "none", "--undetermined", "holistic",
                                    "--corrections", str(fix), "--json"], capsys)
    assert code == 0, stderr
    labels = pd.read_csv(out, keep_default_na=False).set_index("source_path")
    assert (labels.loc[doubtful[:2], "label_source"] == "hand").all()
    assert labels.loc[doubtful[0], "label"] == "holistic"
    assert (labels.loc[lost, "label_source"] == "policy").all()
    rest = labels.drop(index=[*doubtful[:2], *lost])
    assert (rest["label_source"] == "rule").all()
    # the doubtful crops are occluded by the default threshold, but most of the grid says otherwise
    assert (labels.loc[doubtful[2:], "label"] == "occluded").all()
    assert (labels.loc[doubtful[2:], "label_stability"] < UNSTABLE_BELOW).all()
    assert (rest.drop(index=doubtful[2:])["label_stability"] == 1.0).all()
    summary = json.loads(stdout.strip().splitlines()[-1])
    # unstable: the doubtful crops no one checked, and the two undetermined crops the policy labelled
    assert summary["checked_by_hand"] == 2 and summary["unstable"] == len(doubtful) - 2 + len(lost)
    assert summary["corrected"] == 1


def test_the_template_passed_back_untouched_checks_nothing(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The corrections template lists the sheet's crops with their current labels: passed back as it is, it
    decides nothing and marks nothing checked; what the reviewer changed or marked is what counts."""
    manifest, keypoints, doubtful, lost = _pool_with_doubtful_labels(tmp_path / "pool")
    ann = tmp_path / "ann"
    code, _, stderr = _invoke(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose",
                               f"precomputed:{keypoints}"], capsys)
    assert code == 0, stderr
    labels, sheet = tmp_path / "labels.csv", tmp_path / "review.html"
    template = tmp_path / "review.corrections.csv"
    base = ["classify", "--keypoints", str(ann), "--support-threshold", "none", "--undetermined", "holistic"]
    code, _, stderr = _invoke([*base, "--out", str(labels), "--review", str(sheet), "--review-limit", "10"], capsys)
    assert code == 0, stderr
    table = pd.read_csv(template, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["source_path", "occluded", "checked", "label_stability"]
    # the sheet's crops in the sheet's order: the two with no person found first (undetermined, not the policy's
    # label), then the least stable
    assert len(table) == 10 and set(table["source_path"][:2]) == set(lost)
    assert (table["occluded"][:2] == "undetermined").all() and table["source_path"][2] in doubtful
    code, stdout, stderr = _invoke([*base, "--out", str(tmp_path / "again.csv"), "--corrections", str(template),
                                    "--json"], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["checked_by_hand"] == 0 and summary["corrected"] == 0
    code, stdout, stderr = _invoke(["classify", "--keypoints", str(ann), "--support-threshold", "none", "--out",
                                    str(tmp_path / "plain.csv"), "--json"], capsys)
    plain = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and plain["undetermined"] == 2  # the occluded share counts the crops with a label only
    assert plain["occluded_share"] == round(plain["occluded"] / (plain["occluded"] + plain["holistic"]), 4)
    table.loc[2, "checked"] = "y"
    table.loc[3, "occluded"] = "holistic" if table.loc[3, "occluded"] == "occluded" else "occluded"
    table.to_csv(template, index=False)
    code, stdout, stderr = _invoke([*base, "--out", str(tmp_path / "again.csv"), "--corrections", str(template),
                                    "--json"], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["checked_by_hand"] == 2 and summary["corrected"] == 1
    assert "checked" in stderr  # the console table shows it too, not only --json


def test_label_reliability_counts_only_what_the_table_says() -> None:
    table = pd.DataFrame({"label": ["occluded", "holistic", "holistic", "undetermined"],
                          "label_stability": [0.4, 0.9, 0.2, 0.0], "label_source": ["rule", "rule", "hand", "rule"]})
    assert label_reliability(table) == {"crops": 3, "checked_by_hand": 1, "unstable": 1}
    plain = pd.DataFrame({"occluded": [True, False]})
    assert label_reliability(plain) == {"crops": 2, "checked_by_hand": None, "unstable": None}


def test_data_card_and_manifest_say_how_far_to_trust_the_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, keypoints, doubtful, _ = _pool_with_doubtful_labels(tmp_path / "pool")
    protocol = tiny_protocol_yaml(tmp_path / "tiny.yaml")
    fix = tmp_path / "checked.csv"
    fix.write_text("source_path,occluded,checked\n" + "".join(f"{p},1,y\n" for p in doubtful[:3]), encoding="utf-8")
    out = tmp_path / "split"
    code, _, stderr = _invoke(["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}",
                               "--protocol", str(protocol), "--out", str(out), "--seed", "0",
                               "--support-threshold", "none", "--corrections", str(fix), "--json"], capsys)
    assert code == 0, stderr
    written = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert set(written["label_source"]) <= {"rule", "hand"}
    card = (out / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "## How far to trust the occlusion labels" in card and "unstable labels were wrong for" in card
    for name, sub in [*((s, written[written["split"] == s]) for s in ("train", "query", "gallery")),
                      ("overall", written)]:
        hand = sub["label_source"] == "hand"
        unstable = int(((sub["label_stability"].astype(float) < UNSTABLE_BELOW) & ~hand).sum())
        n = len(sub)
        expected = (f"| {name} | {n:,} | {int(hand.sum()):,} ({hand.sum() / n:.0%}) | "
                    f"{unstable:,} ({unstable / n:.0%}) |")
        assert expected in card, (expected, card)
    query = written[written["split"] == "query"]
    assert (query["label_stability"].astype(float) < UNSTABLE_BELOW).any(), "the tiny split should draw doubtful crops"
    assert "check its unstable ones on the review sheet" in card


def test_sample_with_a_plain_labels_file_says_it_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = image_pool(tmp_path / "pool")
    pool = pd.read_csv(manifest)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"source_path": pool["path"],
                  "occluded": [int(Path(p).stem.split("_")[1]) % 4 == 0 for p in pool["path"]]}).to_csv(labels,
                                                                                                       index=False)
    out = tmp_path / "split"
    code, _, stderr = _invoke(["sample", "--labels", str(labels), "--pool", str(manifest), "--protocol",
                               str(tiny_protocol_yaml(tmp_path / "tiny.yaml")), "--out", str(out), "--seed", "0",
                               "--mask", "none"], capsys)
    assert code == 0, stderr
    card = (out / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "cannot say how many labels were checked by hand" in card
    # the rule's measured accuracy is on the card of `sample` too, not only on build-split's
    assert f"Read from `{labels}`. Where `classify`'s rule gave them: Measured accuracy" in card
    written = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert (written["label_stability"] == "").all() and (written["label_source"] == "").all()


@pytest.mark.parametrize(("column", "value", "says"), [("label_stability", "high", "not a share between 0 and 1"),
                                                       ("label_stability", "1.5", "not a share between 0 and 1"),
                                                       ("label_source", "robot", "not one of rule, hand, policy")])
def test_a_labels_file_with_a_bad_reliability_column_is_refused(tmp_path: Path, column: str, value: str,
                                                                 says: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = image_pool(tmp_path / "pool", n_ids=4, per_id=4)
    pool = pd.read_csv(manifest)
    labels = tmp_path / "labels.csv"
    table = pd.DataFrame({"source_path": pool["path"], "occluded": 0, column: "1" if column != "label_source" else "rule"})
    table.loc[2, column] = value
    table.to_csv(labels, index=False)
    code, _, stderr = _invoke(["sample", "--labels", str(labels), "--pool", str(manifest), "--protocol",
                               str(tiny_protocol_yaml(tmp_path / "tiny.yaml")), "--out", str(tmp_path / "split"),
                               "--seed", "0", "--mask", "none"], capsys)
    assert code != 0 and "Traceback" not in stderr
    assert str(labels) in stderr and f"row 4, column {column}" in stderr and says in stderr
    assert not (tmp_path / "split").exists()


def test_set_aside_unstable_drops_only_the_rules_unstable_labels() -> None:
    from opreid_bench.errors import DataError
    from opreid_bench.splits.classify import set_aside_unstable

    table = pd.DataFrame({"source_path": list("abcdef"),
                          "label": ["occluded", "holistic", "holistic", "occluded", "undetermined", "holistic"],
                          "label_stability": [0.4, 0.9, 0.2, 0.0, 0.0, 0.74],
                          "label_source": ["rule", "rule", "hand", "policy", "rule", "rule"]})
    kept = set_aside_unstable(table, "labels.csv")
    # a and f are the rule's unstable labels; c (checked by hand) and d (the --undetermined policy) are decisions
    assert list(kept["source_path"]) == ["b", "c", "d", "e"] and kept.attrs["set_aside_unstable"] == 2
    with pytest.raises(DataError, match="labels.csv: --unstable exclude needs the column"):
        set_aside_unstable(table.drop(columns="label_source"), "labels.csv")


def test_build_split_can_leave_unstable_labels_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, keypoints, doubtful, _ = _pool_with_doubtful_labels(tmp_path / "pool")
    protocol = tiny_protocol_yaml(tmp_path / "tiny.yaml")
    ann, labels_csv = tmp_path / "ann", tmp_path / "labels.csv"
    assert _invoke(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose", f"precomputed:{keypoints}"],
                   capsys)[0] == 0
    assert _invoke(["classify", "--keypoints", str(ann), "--out", str(labels_csv), "--support-threshold", "none"],
                   capsys)[0] == 0
    labels = pd.read_csv(labels_csv)
    unstable = set(labels.loc[(labels["label_stability"] < UNSTABLE_BELOW) & (labels["label_source"] == "rule")
                              & labels["label"].isin(["occluded", "holistic"]), "source_path"])
    assert unstable and unstable <= set(labels["source_path"])
    out = tmp_path / "split"
    code, stdout, stderr = _invoke(["build-split", "--pool", str(manifest), "--pose", f"precomputed:{keypoints}",
                                    "--protocol", str(protocol), "--out", str(out), "--seed", "0",
                                    "--support-threshold", "none", "--unstable", "exclude", "--json"], capsys)
    assert code == 0, stderr
    assert json.loads(stdout)["set_aside_unstable"] == len(unstable)
    assert f"left out {len(unstable):,} crops with an unstable label (--unstable exclude)" in stderr
    written = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert not set(written["source_path"]) & unstable
    assert (written["label_stability"].astype(float) >= UNSTABLE_BELOW).all()
    card = (out / "DATA_CARD.md").read_text(encoding="utf-8")
    assert f"{len(unstable):,} crops of the pool whose label the rule gave with stability below" in card
    # sample does the same from the labels file; a labels file without the columns is refused in one line
    code, stdout, stderr = _invoke(["sample", "--labels", str(labels_csv), "--pool", str(manifest), "--protocol",
                                    str(protocol), "--out", str(tmp_path / "s"), "--seed", "0", "--dry-run",
                                    "--unstable", "exclude", "--json"], capsys)
    assert code == 0, stderr
    drawn = set(pd.read_csv(tmp_path / "s" / "split.csv")["source_path"])
    assert drawn and not drawn & unstable and json.loads(stdout)["set_aside_unstable"] == len(unstable)
    assert f"left out {len(unstable):,} crops with an unstable label (--unstable exclude)" in stderr
    plain = tmp_path / "plain.csv"
    labels[["source_path", "occluded"]].to_csv(plain, index=False)
    code, _, stderr = _invoke(["sample", "--labels", str(plain), "--pool", str(manifest), "--protocol", str(protocol),
                               "--out", str(tmp_path / "p"), "--seed", "0", "--unstable", "exclude"], capsys)
    assert code == 2 and stderr.strip().splitlines()[-1] == (
        f"error: {plain}: --unstable exclude needs the column(s) label_stability, label_source (classify writes them)")


def test_the_sheet_downloads_checked_marks_and_changed_verdicts(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The review sheet's own script, in headless Chromium: a verdict ticked "checked" and a changed verdict both come
    back through `classify --corrections` as labels checked by hand."""
    import html
    import re

    chromium_or_skip()
    manifest, keypoints, _, _ = _pool_with_doubtful_labels(tmp_path / "pool")
    ann, labels, sheet = tmp_path / "ann", tmp_path / "labels.csv", tmp_path / "sheet.html"
    assert _invoke(["annotate", "--pool", str(manifest), "--out", str(ann), "--pose", f"precomputed:{keypoints}"],
                   capsys)[0] == 0
    assert _invoke(["classify", "--keypoints", str(ann), "--out", str(labels), "--review", str(sheet),
                    "--review-limit", "12"], capsys)[0] == 0
    text, dom = download_from_page(sheet, """
  const selects = [...document.querySelectorAll("select[data-path]")].filter(s => s.dataset.auto !== "undetermined");
  selects[0].closest("figcaption").querySelector("input[data-checked]").checked = true;  // right as it is
  selects[1].value = selects[1].dataset.auto === "occluded" ? "holistic" : "occluded";  // wrong: changed
  document.body.setAttribute("data-first", selects[0].dataset.path);""", "downloadCorrections", tmp_path)
    downloaded = tmp_path / "corrections.csv"
    downloaded.write_text(text, encoding="utf-8")
    rows = downloaded.read_text(encoding="utf-8").splitlines()
    first = html.unescape(re.search(r'data-first="([^"]*)"', dom).group(1))
    assert rows[0] == "source_path,occluded,checked" and len(rows) == 3
    assert any(r.startswith(f'"{first}",') and r.endswith(",y") for r in rows[1:])
    code, stdout, err = _invoke(["classify", "--keypoints", str(ann), "--out", str(tmp_path / "fixed.csv"),
                                 "--corrections", str(downloaded), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["corrected"] == 1 and summary["checked_by_hand"] == 2


def test_the_review_sheet_offers_undetermined_only_where_the_rule_left_it(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """A correction decides occluded or holistic; "undetermined" decides nothing, so a labelled crop's selector must
    not offer it as if it left the crop out."""
    import re

    from opreid_bench.cli import main

    monkeypatch.chdir(tmp_path)
    for args in (["synth", "--out", "pool", "--ids", "4", "--size", "32", "64", "--seed", "0"],
                 ["annotate", "--pool", "pool/manifest.csv", "--pose", "precomputed:pool/keypoints.csv", "--out", "ann"],
                 ["classify", "--keypoints", "ann", "--out", "labels.csv", "--review", "review.html"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0
    page = (tmp_path / "review.html").read_text(encoding="utf-8")
    selects = re.findall(r'<select data-path="[^"]*" data-auto="(\w+)">(.*?)</select>', page)
    assert selects and any(auto != "undetermined" for auto, _ in selects)
    for auto, options in selects:
        assert ('value="undetermined"' in options) == (auto == "undetermined"), (auto, options)
