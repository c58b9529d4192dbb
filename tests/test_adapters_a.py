"""BABE, MBIC, BASIL and the Ukraine dataset, on the real files in ../shared/datasets.

Expected counts are the ones SOURCE.md computed independently with pandas.
"""
import gzip
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from biascard.data.adapters import babe, basil, mbic, ukraine  # noqa: F401  (registers them)
from biascard.data.adapters.base import iter_csv
from biascard.data.errors import DataError, Report
from biascard.data.prepare import prepare
from biascard.data.records import HEADS, text_key
from biascard.data.splits import SPLITS, check_no_leak

NAMES = ("babe", "mbic", "basil", "ukraine")
FOLDERS = {"babe": "babe", "mbic": "mbic", "basil": "basil", "ukraine": "ukraine_multidim_news_bias"}


@pytest.fixture(scope="module")
def built(shared_dir, cache_dir):
    out = {}
    for name in NAMES:
        report = Report(stream=io.StringIO())
        dsd = prepare(name, data_dir=shared_dir / "datasets", cache_dir=cache_dir, use_cache=False, report=report)
        out[name] = (dsd, report)
    return out


_ROWS: dict = {}


def split_rows(dsd, split):
    """Rows as python dicts, converted once: row-by-row arrow access is slow."""
    key = (id(dsd), split)
    if key not in _ROWS:
        _ROWS[key] = dsd[split].to_list()
    return _ROWS[key]


def rows(dsd):
    return [r for s in SPLITS for r in split_rows(dsd, s)]


def label_counts(dsd, head):
    return Counter(r["labels"][head] for r in rows(dsd))


# --- counts -------------------------------------------------------------------------------


def test_babe_counts(built):
    dsd, report = built["babe"]
    assert report.bad == []
    assert sum(len(dsd[s]) for s in SPLITS) == 3674
    assert label_counts(dsd, "language_bias") == {1: 1810, 0: 1863, None: 1}
    words = [r["labels"]["biased_words"] for r in rows(dsd)]
    assert all(w is not None for w in words)  # every BABE sentence is word-labeled ([] = none)
    assert sum(bool(w) for w in words) == 1849
    assert sum(len(w) for w in words) == 3902
    by_label = Counter(r["labels"]["language_bias"] for r in rows(dsd) if r["labels"]["biased_words"])
    assert by_label[1] == 1632 and by_label[0] == 217
    assert len({r["outlet"] for r in rows(dsd)}) == 11
    # 23 raw topic strings; spelling variants of the same topic are merged
    assert all(len(r["labels"]["topic"]) == 1 for r in rows(dsd))
    assert len({r["labels"]["topic"][0] for r in rows(dsd)}) == 20


def test_babe_spans_point_at_the_words(built):
    dsd, _ = built["babe"]
    n_located = 0
    for r in rows(dsd):
        marked = {w.lower().strip("\"'“”‘’") for w in r["labels"]["biased_words"]}
        for s in r["spans"]:
            assert 0 <= s["start"] < s["end"] <= len(r["text"]) and s["label"] == "biased_word"
            n_located += r["text"][s["start"] : s["end"]].lower().replace("’", "'") in marked
        if not r["labels"]["biased_words"]:
            assert r["spans"] == []
    # most spans are the exact word; the rest are typo / inflection matches
    assert n_located > 3800
    notes = built["babe"][1].stream.getvalue()
    assert notes.count("not found in the text") <= 5


def test_mbic_counts(built):
    dsd, report = built["mbic"]
    # no row had to be left out to keep MBIC's split in line with BABE's
    assert report.bad == []
    n = sum(len(dsd[s]) for s in SPLITS)
    assert n == 1700
    assert label_counts(dsd, "language_bias_crowd") == {1: 1018, 0: 533, None: 149}
    assert label_counts(dsd, "language_bias") == {None: n}  # the expert head stays BABE's
    assert len({r["labels"]["topic"][0] for r in rows(dsd)}) == 14


def test_basil_counts(built):
    dsd, report = built["basil"]
    # 8 rows of the file have no text (7 empty paragraphs, 1 empty title); all reported
    assert sum(len(dsd[s]) for s in SPLITS) + len(report.bad) == 8284
    assert len(report.bad) == 8 and all(b.reason == "empty text" for b in report.bad)
    assert label_counts(dsd, "informational_bias")[1] == 1219
    assert label_counts(dsd, "lexical_bias")[1] == 451
    spans = Counter(s["label"] for r in rows(dsd) for s in r["spans"])
    assert spans == {"inf": 1246, "lex": 480}
    for r in rows(dsd):
        inf = any(s["label"] == "inf" for s in r["spans"])
        assert r["labels"]["informational_bias"] == inf
        assert all(0 <= s["start"] < s["end"] <= len(r["text"]) for s in r["spans"])
    assert len({r["group"] for r in rows(dsd)}) == 100
    assert len({r["doc_id"] for r in rows(dsd)}) == 300
    assert Counter(r["unit"] for r in rows(dsd))["headline"] == 299
    assert {r["outlet"] for r in rows(dsd)} == {"fox", "nyt", "hpo"}


def test_ukraine_counts(built):
    dsd, report = built["ukraine"]
    assert report.bad == []  # every sentence found its article
    assert sum(len(dsd[s]) for s in SPLITS) == 2057
    assert label_counts(dsd, "framing") == {1: 165, 0: 1892}
    assert label_counts(dsd, "hidden_assumptions") == {1: 62, 0: 1995}
    assert label_counts(dsd, "subjectivity") == {1: 211, 0: 1846}
    assert len({r["doc_id"] for r in rows(dsd)}) == 90


# --- splits -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_split_has_no_leak_and_disjoint_groups(built, name):
    dsd, _ = built[name]
    check_no_leak(dsd, name)
    groups = {s: set(dsd[s]["group"]) for s in SPLITS}
    texts = {s: {text_key(t) for t in dsd[s]["text"]} for s in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not groups[a] & groups[b]
                assert not texts[a] & texts[b]
    ids = [i for s in SPLITS for i in dsd[s]["id"]]
    assert len(ids) == len(set(ids))
    n = len(ids)
    for s, (lo, hi) in {"train": (0.6, 0.8), "validation": (0.1, 0.2), "test": (0.1, 0.2)}.items():
        assert lo <= len(dsd[s]) / n <= hi, (s, len(dsd[s]), n)


@pytest.mark.parametrize("name", NAMES)
def test_every_head_is_fed(built, name):
    dsd, _ = built[name]
    adapter = {"babe": babe.BABE, "mbic": mbic.MBIC, "basil": basil.BASIL, "ukraine": ukraine.Ukraine}[name]
    for head in adapter.heads:
        train = [v for v in (r["labels"][head] for r in split_rows(dsd, "train")) if v is not None]
        assert train, head
        if HEADS[head][0] == "binary":
            for split in SPLITS:  # both classes everywhere, or the split cannot score the head
                assert set(r["labels"][head] for r in split_rows(dsd, split)) >= {0, 1}, (head, split)
    fed = {h for r in rows(dsd) for h, v in r["labels"].items() if v is not None}
    assert fed == set(adapter.heads)


def test_babe_and_mbic_do_not_leak_into_each_other(built):
    b, _ = built["babe"]
    m, _ = built["mbic"]
    for sb in SPLITS:
        tb = {text_key(t) for t in b[sb]["text"]}
        gb = set(b[sb]["group"])
        for sm in SPLITS:
            if sb != sm:
                assert not tb & {text_key(t) for t in m[sm]["text"]}, (sb, sm)
                assert not gb & set(m[sm]["group"]), (sb, sm)
    # and the overlap is real: nearly all MBIC texts are BABE texts
    all_b = {text_key(t) for s in SPLITS for t in b[s]["text"]}
    assert sum(text_key(r["text"]) in all_b for r in rows(m)) >= 1690


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic(shared_dir, built, name):
    adapter = {"babe": babe.BABE, "mbic": mbic.MBIC, "basil": basil.BASIL, "ukraine": ukraine.Ukraine}[name]()
    again = adapter.build(shared_dir / "datasets" / FOLDERS[name], Report(stream=io.StringIO()))
    first, _ = built[name]
    for s in SPLITS:
        assert again[s]["id"] == first[s]["id"]


def test_babe_folds(built):
    dsd, _ = built["babe"]
    records = rows(dsd)
    folds = babe.babe_folds(records, k=5)
    assert folds == babe.babe_folds(records, k=5)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    sizes = Counter(folds)
    assert all(0.17 <= sizes[f] / len(records) <= 0.23 for f in sizes)
    biased = Counter(f for f, r in zip(folds, records) if r["labels"]["language_bias"] == 1)
    assert all(abs(biased[f] / sizes[f] - 1810 / 3674) < 0.03 for f in sizes)
    where_group, where_text = {}, {}
    for f, r in zip(folds, records):
        assert where_group.setdefault(r["group"], f) == f
        assert where_text.setdefault(text_key(r["text"]), f) == f


# --- biased word location -----------------------------------------------------------------


def test_locate_words():
    text = "A fasicst used the rant to bang the drum for “war” again, said the man."
    spans, missing = babe.locate_words(["bang", "the", "drum", '"war"', "fascist", "nowhere"], text)
    got = [text[s["start"] : s["end"]] for s in spans]
    # the repeated "the" is taken where it sits next to other marked words only
    assert got == ["fasicst", "bang", "the", "drum", "war"]
    assert missing == ["nowhere"]
    spans, _ = babe.locate_words(["idea"], "No Better Ideas")
    assert [s["start"] for s in spans] == [10] and spans[0]["end"] == 15


# --- bad input is reported ----------------------------------------------------------------


def _single_line_rows(path: Path, delimiter=",", multiline=("text",), **rules):
    """(line, row) of rows that occupy exactly one physical line, so a line edit hits one row."""
    items = list(iter_csv(path, delimiter=delimiter, multiline=multiline, **rules))
    return [(n, row) for (n, row), (m, _) in zip(items, items[1:]) if m == n + 1]


def _edit_line(path: Path, line: int, old: str, new: str) -> None:
    gz = path.suffix == ".gz"
    data = (gzip.open(path, "rb") if gz else open(path, "rb")).read().decode("utf-8")
    lines = data.splitlines(keepends=True)
    assert old in lines[line - 1], (line, lines[line - 1][:200])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    out = "".join(lines).encode("utf-8")
    path.chmod(0o644)
    with gzip.open(path, "wb") if gz else open(path, "wb") as fh:
        fh.write(out)


def _copy(shared_dir, tmp_path, *folders):
    for f in folders:
        shutil.copytree(shared_dir / "datasets" / f, tmp_path / "data" / f)
        for p in (tmp_path / "data" / f).iterdir():
            p.chmod(0o644)
    return tmp_path / "data"


def _assert_reported(name, data, tmp_path, where: str, reason: str):
    report = Report(stream=io.StringIO())
    prepare(name, data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    hits = [str(b) for b in report.bad if str(b).split(": ")[0].endswith(where)]
    assert hits and reason in hits[0], [str(b) for b in report.bad]
    with pytest.raises(DataError, match=where.replace(".", r"\.")):
        prepare(name, data_dir=data, cache_dir=tmp_path / "cache", strict=True)


def test_babe_bad_label_and_words_are_reported(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "babe")
    path = data / "babe" / babe.FILE
    single = _single_line_rows(path, ";")
    line = next(n for n, r in single if r["label_bias"] == "Biased")
    _edit_line(path, line, ";Biased;", ";Very biased;")
    _assert_reported("babe", data, tmp_path, f"{babe.FILE}:{line}", "label_bias 'Very biased'")
    line2 = next(n for n, r in single if r["biased_words"].startswith("['") and n != line)
    _edit_line(path, line2, ";['", ";[oops '")
    report = Report(stream=io.StringIO())
    dsd = prepare("babe", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    assert {b.line for b in report.bad} == {line, line2}
    assert any(b.line == line2 and "biased_words" in b.reason for b in report.bad)
    assert sum(len(dsd[s]) for s in SPLITS) == 3674 - 2


def test_babe_stray_quote_is_reported_not_merged(shared_dir, tmp_path):
    """The issue's probe: a quote at the start of line 30 used to merge lines 30-85 into one
    21,895-character "sentence" kept as Non-biased, and 55 rows vanished unreported."""
    data = _copy(shared_dir, tmp_path, "babe")
    path = data / "babe" / babe.FILE
    _edit_line(path, 30, "A Biden victory", '"A Biden victory')
    report = Report(stream=io.StringIO())
    dsd = prepare("babe", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    assert [b.line for b in report.bad] == [30]
    assert "runs on to line 85" in report.bad[0].reason and "stray quote" in report.bad[0].reason
    # only line 30 is lost; lines 31-85 are read again on their own and kept
    assert sum(len(dsd[s]) for s in SPLITS) == 3674 - 1
    assert max(len(r["text"]) for r in rows(dsd)) < 1000


def test_mbic_bad_label_is_reported(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "mbic", "babe")
    path = data / "mbic" / mbic.FILE
    line = next(n for n, r in _single_line_rows(path, multiline=("text", "article"), guard=mbic.looks_like_row) if r["label_bias"] == "Non-biased")
    _edit_line(path, line, ",Non-biased,", ",Unbiased,")
    _assert_reported("mbic", data, tmp_path, f"{mbic.FILE}:{line}", "label_bias 'Unbiased'")


def test_mbic_needs_babe(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "mbic")
    with pytest.raises(DataError, match="final_labels_SG2.csv"):
        prepare("mbic", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False)


def test_basil_bad_span_is_reported(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "basil")
    path = data / "basil" / basil.SPANS
    line, row = next((n, r) for n, r in _single_line_rows(path, multiline=()) if r["bias"] == "inf")
    _edit_line(path, line, f",{row['start']},{row['end']},", f",{row['start']},{len(row['sentence']) + 5},")
    _assert_reported("basil", data, tmp_path, f"{basil.SPANS}:{line}", "out of range")
    # the sentence that lost a span is reported too, not kept with a wrong label
    report = Report(stream=io.StringIO())
    prepare("basil", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    assert any("valid spans" in b.reason and basil.SENTENCES in b.file for b in report.bad)


def test_basil_span_text_mismatch_is_reported(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "basil")
    path = data / "basil" / basil.SPANS
    line, row = next((n, r) for n, r in _single_line_rows(path, multiline=()) if int(r["start"]) > 0)
    start, end = int(row["start"]), int(row["end"])
    _edit_line(path, line, f",{start},{end},", f",{start - 1},{end - 1},")
    _assert_reported("basil", data, tmp_path, f"{basil.SPANS}:{line}", "not txt")


def test_ukraine_bad_label_and_orphan_sentence_are_reported(shared_dir, tmp_path):
    data = _copy(shared_dir, tmp_path, "ukraine_multidim_news_bias")
    path = data / "ukraine_multidim_news_bias" / ukraine.LABELS
    single = [(n, r) for n, r in _single_line_rows(path) if '"' not in r["text"]]
    line, row = single[10]
    cols = ("bias", "framing", "hidden_assumptions", "subjectivity")
    old = "," + ",".join(row[c] for c in cols)
    _edit_line(path, line, old, "," + ",".join("2" if c == "framing" else row[c] for c in cols))
    _assert_reported("ukraine", data, tmp_path, f"{ukraine.LABELS}:{line}", "'framing': '2'")
    line2, row2 = single[20]
    _edit_line(path, line2, row2["text"][:20], "Zzz unmatched " + row2["text"][:20])
    report = Report(stream=io.StringIO())
    prepare("ukraine", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    assert any(str(b).startswith(f"{path}:{line2}: sentence not found") for b in report.bad)


def test_report_file_lists_skips(shared_dir, tmp_path):
    """The cache keeps the skipped rows beside the data, for later inspection."""
    data = _copy(shared_dir, tmp_path, "basil")
    report = Report(stream=io.StringIO())
    prepare("basil", data_dir=data, cache_dir=tmp_path / "cache", use_cache=False, report=report)
    (report_json,) = (tmp_path / "cache" / "basil").glob("*/report.json")
    assert report_json.read_text().count("empty text") == 8
