"""Adapters gvfc, logic, allsides and sdg_trail22 on the real files in ../shared/datasets."""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from biascard.data import paths
from biascard.data.adapters import ADAPTERS
from biascard.data.adapters.gvfc import FRAMES, cv_folds
from biascard.data.errors import DataError, Report
from biascard.data.prepare import head_stats, prepare
from biascard.data.records import text_key
from biascard.data.splits import SPLITS, check_no_leak

NAMES = ("gvfc", "logic", "allsides", "sdg_trail22")


@pytest.fixture(scope="module")
def built(shared_dir, cache_dir):
    """Each dataset built once from the files (not the cache), with its report."""
    out = {}

    def get(name):
        if name not in out:
            report = Report()
            out[name] = (prepare(name, cache_dir=cache_dir, use_cache=False, report=report), report)
        return out[name]

    return get


def rows(dsd, split):
    return dsd[split].to_list()


@pytest.mark.parametrize("name", NAMES)
def test_no_leak_and_every_head_fed(built, name):
    dsd, _ = built(name)
    assert list(dsd) == list(SPLITS)
    check_no_leak(dsd, name)
    groups = {s: set(dsd[s]["group"]) for s in SPLITS}
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    stats = head_stats(dsd)
    for head in ADAPTERS[name].heads:
        for split in SPLITS:
            assert stats.get(head, {}).get(split), f"{name}: head {head} has no labels in {split}"
    assert set(stats) == set(ADAPTERS[name].heads), "a head the adapter does not declare is fed"
    assert set(dsd["train"]["dataset"]) == {name}


# --- GVFC -------------------------------------------------------------------------------------

def test_gvfc_counts_match_source(built):
    dsd, report = built("gvfc")
    assert not report.bad and not report.removed
    all_rows = [r for s in SPLITS for r in rows(dsd, s)]
    assert len(all_rows) == 2990
    frames = Counter(r["labels"]["gvfc_frame"] for r in all_rows)
    expected = {1: 38, 2: 215, 3: 380, 4: 65, 5: 130, 6: 114, 7: 237, 8: 41, 9: 81}
    assert {FRAMES[c]: n for c, n in expected.items()} == {k: v for k, v in frames.items() if k}
    assert frames[None] == 2990 - 1301
    assert {r["unit"] for r in all_rows} == {"headline"}
    # 11 exact duplicate titles + 3 that differ only in case: each pair stays in one split
    by_key = {}
    for s in SPLITS:
        for r in rows(dsd, s):
            by_key.setdefault(text_key(r["text"]), set()).add(s)
    assert len(by_key) == 2990 - 14
    assert all(len(v) == 1 for v in by_key.values())
    sizes = {s: len(dsd[s]) for s in SPLITS}
    assert 0.12 < sizes["test"] / 2990 < 0.18 and 0.12 < sizes["validation"] / 2990 < 0.18


def test_gvfc_split_is_deterministic_and_stratified(built):
    dsd, _ = built("gvfc")
    adapter = ADAPTERS["gvfc"]
    root = paths.dataset_dir(adapter.folder)
    records = adapter.read(root, Report())["all"]
    # a second, independent split of freshly read records gives the same ids
    again = {s: [r["id"] for r in v] for s, v in adapter.split(records, Report()).items()}
    assert again == {s: dsd[s]["id"] for s in SPLITS}
    # every frame lands in every split, roughly in proportion
    for s in ("validation", "test"):
        counts = Counter(x["gvfc_frame"] for x in dsd[s]["labels"] if x["gvfc_frame"])
        assert set(counts) == set(FRAMES.values())
        assert 0.10 < sum(counts.values()) / 1301 < 0.20


def test_gvfc_cv_folds(built):
    dsd, _ = built("gvfc")
    records = [r for s in SPLITS for r in rows(dsd, s)]
    folds = cv_folds(records)
    assert folds == cv_folds(list(records))
    labeled = [(r, f) for r, f in zip(records, folds) if r["labels"]["gvfc_frame"] is not None]
    assert len(labeled) == 1301 and all(f is not None for _, f in labeled)
    assert all(f is None for r, f in zip(records, folds) if r["labels"]["gvfc_frame"] is None)
    sizes = Counter(f for _, f in labeled)
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) < 30
    fold_of_text = {}
    for r, f in labeled:
        assert fold_of_text.setdefault(text_key(r["text"]), f) == f, "a duplicate title crosses folds"
    # stratified: the most frequent frame is in every fold
    assert all(sum(1 for r, f in labeled if f == k and r["labels"]["gvfc_frame"] == "politics") > 60 for k in range(5))


# --- LOGIC / LOGICCLIMATE ---------------------------------------------------------------------

def test_logic_official_split_and_counts(built):
    dsd, report = built("logic")
    per = {s: Counter(r["outlet"] for r in rows(dsd, s)) for s in SPLITS}
    # test is kept whole: 300 edu rows, 180 climate rows minus one empty row
    assert per["test"] == {"edu": 300, "climate": 179}
    assert per["validation"] == {"edu": 300 - 6, "climate": 218}
    assert per["train"] == {"edu": 1849 - 25, "climate": 679 - 2}
    fd = {s: Counter(r["outlet"] for r in rows(dsd, s) if r["labels"]["false_dilemma"] == 1) for s in SPLITS}
    assert fd["test"] == {"edu": 12, "climate": 6}
    assert fd["validation"] == {"edu": 19, "climate": 10}
    # one of the 110 train false-dilemma sentences is also in validation/test and leaves train
    assert fd["train"] == {"edu": 109, "climate": 32}
    for s in SPLITS:
        for r in rows(dsd, s):
            if r["outlet"] == "climate":
                assert r["labels"]["fallacy"] is None and r["doc_id"].startswith("http")
                assert r["group"] == "url:" + r["doc_id"]
            else:
                assert r["labels"]["false_dilemma"] == int(r["labels"]["fallacy"] == "false dilemma")
    assert len({x["fallacy"] for x in dsd["train"]["labels"]} - {None}) == 13


def test_logic_overlaps_are_reported_not_silent(built):
    _, report = built("logic")
    assert sorted(str(b) for b in report.bad) == sorted(
        str(Path(paths.dataset_dir("logic_fallacy_jin2022")) / f) + f":{n}: empty source_article"
        for f, n in (("climate_train_mh.csv", 53), ("climate_dev_mh.csv", 52), ("climate_test_mh.csv", 12))
    )
    removed = Counter(Path(b.file).name for b in report.removed)
    assert removed == {"edu_train.csv": 25, "edu_dev.csv": 6, "climate_train_mh.csv": 2}
    assert all(b.line and "text also in" in b.reason for b in report.removed)
    assert not any("test.csv" in b.file or "test_mh" in b.file for b in report.removed)


# --- AllSides -------------------------------------------------------------------------------

def test_allsides_media_split(built):
    dsd, report = built("allsides")
    assert not report.bad and not report.removed
    assert {s: len(dsd[s]) for s in SPLITS} == {"train": 8000, "validation": 2356, "test": 1300}
    lean = {s: Counter(r["political_leaning"] for r in dsd[s]["labels"]) for s in SPLITS}
    assert lean["train"] == {"left": 2666, "center": 2253, "right": 3081}
    assert lean["validation"] == {"left": 1640, "center": 618, "right": 98}
    assert lean["test"] == {"left": 402, "center": 299, "right": 599}
    assert all(len(x["topic"]) == 1 for x in dsd["test"]["labels"])
    assert len({x["topic"][0] for s in SPLITS for x in dsd[s]["labels"]}) > 90
    # group = web domain, the unit of the media split; outlet names do cross splits
    assert all(g.startswith("domain:") for s in SPLITS for g in dsd[s]["group"])
    assert len(set(dsd["test"]["group"])) == 13
    outlets = {s: set(dsd[s]["outlet"]) for s in SPLITS}
    assert "CNN (Web News)" in outlets["train"] & outlets["test"]
    first = dsd["test"][0]
    assert first["unit"] == "article" and "\n\n" in first["text"] and first["doc_id"] in first["id"]


# --- TRAIL22 SDG ----------------------------------------------------------------------------

def _csv_texts(path: Path, delimiter=",") -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(text_key(r["text"]), r["SDG"]) for r in csv.DictReader(fh, delimiter=delimiter)]


def test_sdg_dedup_protocol(built, shared_dir):
    dsd, report = built("sdg_trail22")
    src = shared_dir / "datasets" / "sdg_trail22"
    train = _csv_texts(src / "Train_data.csv")
    test = _csv_texts(src / "Test_data.csv")
    extra = _csv_texts(src / "Final_Additional_Data.csv", "\t")
    assert (len(train), len(test), len(extra)) == (1664, 555, 5148)
    extra_keys, test_keys = {k for k, _ in extra}, {k for k, _ in test}
    assert sum(k in extra_keys for k, _ in train) == 1629
    assert sum(k in test_keys for k, _ in train) == 5
    assert not report.bad
    # test: official, only its 2 internal repeats merged (one has conflicting goals 12 / 15)
    assert len(dsd["test"]) == 553 and set(map(text_key, dsd["test"]["text"])) == test_keys
    merged = [x["sdg"] for x in dsd["test"]["labels"] if len(x["sdg"]) > 1]
    assert merged == [["12", "15"]]
    # train + validation: every train/additional text exactly once, none from test
    pool = [text_key(t) for s in ("train", "validation") for t in dsd[s]["text"]]
    assert len(pool) == len(set(pool)) == len(({k for k, _ in train} | extra_keys) - test_keys) == 5165
    assert 0.09 < len(dsd["validation"]) / 5165 < 0.11
    # every row of the three files is kept or reported
    assert len(pool) + len(dsd["test"]) + len(report.removed) == 1664 + 555 + 5148
    into_test = [b for b in report.removed if "text also in test" in b.reason]
    assert Counter(Path(b.file).name for b in into_test) == {"Train_data.csv": 5, "Final_Additional_Data.csv": 6}
    conflicts = [str(b) for b in report.removed if "conflicting SDG labels" in b.reason]
    assert any("Test_data.csv:505" in c and "12 there, 15 here" in c for c in conflicts)
    assert all(b.line for b in report.removed)
    for s in SPLITS:
        assert {r["unit"] for r in rows(dsd, s)} == {"paragraph"}
        assert all(x["sdg"] and all(1 <= int(g) <= 17 for g in x["sdg"]) for x in dsd[s]["labels"])
    assert {str(g) for g in range(1, 18)} <= set(head_stats(dsd)["sdg"]["validation"])


def test_sdg_validation_is_deterministic(built):
    dsd, _ = built("sdg_trail22")
    adapter = ADAPTERS["sdg_trail22"]
    again = adapter.read(paths.dataset_dir(adapter.folder), Report())
    assert {s: [r["id"] for r in again[s]] for s in SPLITS} == {s: dsd[s]["id"] for s in SPLITS}


def test_sdg_bundled_copy_is_used_without_data_dir(built, tmp_path, monkeypatch, shared_dir):
    bundled = paths.BUNDLED_DIR / "sdg_trail22"
    for name in ("Train_data.csv", "Test_data.csv", "Final_Additional_Data.csv", "LICENSE.md"):
        original = shared_dir / "datasets" / "sdg_trail22" / name
        assert hashlib.sha256((bundled / name).read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()
    attribution = (bundled / "ATTRIBUTION.md").read_text()
    for needed in ("21321389ba20865fa11ab0832a3a5f547912828c", "CC BY 4.0", "unchanged", "Delinte"):
        assert needed in attribution
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("BIASCARD_DATA_DIR", str(empty))
    assert paths.dataset_dir("sdg_trail22") == bundled
    dsd = prepare("sdg_trail22", cache_dir=tmp_path / "cache")
    reference, _ = built("sdg_trail22")
    assert {s: dsd[s]["id"] for s in SPLITS} == {s: reference[s]["id"] for s in SPLITS}
    with pytest.raises(DataError, match="missing"):
        prepare("gvfc", cache_dir=tmp_path / "cache")


# --- bad input --------------------------------------------------------------------------------

def _copy(name: str, tmp_path: Path) -> Path:
    src = paths.dataset_dir(ADAPTERS[name].folder)
    dst = tmp_path / "data" / ADAPTERS[name].folder
    dst.mkdir(parents=True)
    for rel in ADAPTERS[name].files:
        shutil.copy(src / rel, dst / rel)
    return dst


def _replace_line(path: Path, n: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[n - 1], lines[n - 1]
    lines[n - 1] = lines[n - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def _build_bad(name: str, tmp_path: Path):
    report = Report()
    dsd = prepare(name, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", report=report)
    with pytest.raises(DataError) as err:
        prepare(name, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", strict=True)
    return dsd, report, str(err.value)


def test_gvfc_bad_row_named(tmp_path):
    root = _copy("gvfc", tmp_path)
    path = root / "gvfc_headlines_annotations.csv"
    # line 3: "Parkland students brand firearm ban during Pence speech as NRA hypocrisy,1,2,7,3"
    _replace_line(path, 3, ",1,2,7,3", ",1,2,x7,3")
    _replace_line(path, 5, "Parkland survivors keep memory of shooting alive", "")
    dsd, report, strict = _build_bad("gvfc", tmp_path)
    assert [str(b) for b in report.bad] == [
        f"{path}:3: Q3 Theme1 'x7' is not 1-9 or 99",
        f"{path}:5: empty news_title",
    ]
    assert sum(len(dsd[s]) for s in SPLITS) == 2988
    assert strict == f"{path}:3: Q3 Theme1 'x7' is not 1-9 or 99"


def test_gvfc_stray_quote_and_field_counts_named(tmp_path):
    """The issue's probe: a quote opened on line 40 swallowed line 41 (which vanished) and
    line 40 was reported for a Q1 value that was really a piece of line 41."""
    root = _copy("gvfc", tmp_path)
    path = root / "gvfc_headlines_annotations.csv"
    _replace_line(path, 40, "Corporate partners cut cord", '"Corporate partners cut cord')
    _replace_line(path, 50, ",1,2,2,99", ",1,2,2,99,7")  # an extra field
    _replace_line(path, 61, ",1,2,3,99", ",1,2,3")  # a missing field
    dsd, report, strict = _build_bad("gvfc", tmp_path)
    assert [str(b) for b in report.bad] == [
        (f"{path}:40: quoted field opened on line 40 runs on to line 41, but rows are one line each "
         "in this file (stray quote?); line 41 read again separately"),
        f"{path}:50: 6 fields, expected 5: extra value(s) ['7']",
        f"{path}:61: 4 fields, expected 5: missing Q3 Theme2",
    ]
    assert sum(len(dsd[s]) for s in SPLITS) == 2990 - 3  # line 41 is kept
    assert strict.startswith(f"{path}:40: quoted field")


def test_logic_bad_row_named(tmp_path):
    root = _copy("logic", tmp_path)
    path = root / "edu_train.csv"
    _replace_line(path, 2, ",appeal to emotion,", ",appeal to emoton,")
    mh = root / "climate_dev_mh.csv"
    _replace_line(mh, 2, "['fallacy of credibility']", "['fallacy of credibility'")
    dsd, report, strict = _build_bad("logic", tmp_path)
    message = f"{path}:2: updated_label 'appeal to emoton' is not one of the 13 fallacy classes"
    bad = [str(b) for b in report.bad]
    assert bad[0] == message and len(bad) == 3 + 2  # + the 3 empty rows of the real files
    assert any(b.startswith(f"{mh}:2: logical_fallacies") for b in bad)
    assert (len(dsd["train"]), len(dsd["validation"]), len(dsd["test"])) == (2501 - 1, 512 - 1, 479)
    assert strict == message


def test_allsides_bad_rows_named(tmp_path):
    src = paths.dataset_dir(ADAPTERS["allsides"].folder)
    root = tmp_path / "data" / ADAPTERS["allsides"].folder
    root.mkdir(parents=True)
    shutil.copy(src / "metadata_all.csv.gz", root / "metadata_all.csv.gz")
    # a small file: 5 articles per split, then a broken line and a label contradiction
    picked, need = [], Counter({"train": 5, "valid": 5, "test": 5})
    with gzip.open(src / "text_subset_media_split.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            if need[obj["split_media"]] > 0:
                need[obj["split_media"]] -= 1
                picked.append(obj)
            if not +need:
                break
    lines = [json.dumps(o) for o in picked]
    lines.insert(3, lines[3][:40])
    mismatch = dict(picked[6], bias_text="left" if picked[6]["bias"] != 0 else "right")
    lines[7] = json.dumps(mismatch)
    path = root / "text_subset_media_split.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    dsd, report, strict = _build_bad("allsides", tmp_path)
    bad = [str(b) for b in report.bad]
    assert len(bad) == 2
    assert bad[0].startswith(f"{path}:4: invalid JSON")
    assert bad[1].startswith(f"{path}:8: bias {mismatch['bias']}") and "contradicts bias_text" in bad[1]
    assert sum(len(dsd[s]) for s in SPLITS) == 14
    assert strict.startswith(f"{path}:4: invalid JSON")


def test_sdg_bad_row_named(tmp_path):
    root = _copy("sdg_trail22", tmp_path)
    path = root / "Test_data.csv"
    # line 2 is the first data row: '545,UN,,"To this end, ... providers.",11'
    _replace_line(path, 2, "providers.\",11", "providers.\",18")
    dsd, report, strict = _build_bad("sdg_trail22", tmp_path)
    assert [str(b) for b in report.bad] == [f"{path}:2: SDG '18' is not a goal 1-17"]
    assert len(dsd["test"]) == 552
    assert strict == f"{path}:2: SDG '18' is not a goal 1-17"
