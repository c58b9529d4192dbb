"""No silent row loss: every row of a CSV/TSV/JSONL file is read or reported with file:line.

Fixtures are small valid files written in tmp_path and then corrupted one line at a time.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from biascard.data.adapters import ADAPTERS, babe
from biascard.data.adapters.base import iter_csv, iter_jsonl
from biascard.data.errors import DataError, Report
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HEADER = ["text", "label", "topic"]
ROWS = [
    ["Plain sentence one.", "1", "economy"],
    ['A "quoted" word, and a comma.', "0", "health"],
    ["Sentence three.", "1", "sport"],
    ["Sentence four, with a comma.", "0", "world"],
    ["Sentence five.", "1", "economy"],
]


def write_csv(path: Path, rows, delimiter=",", header=HEADER) -> list[str]:
    """Write header + rows; returns the physical lines, so a test can corrupt one."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return buf.getvalue().splitlines(keepends=True)


def corrupt(path: Path, lines: list[str], line: int, new: str) -> None:
    lines = list(lines)
    lines[line - 1] = new
    path.write_text("".join(lines), encoding="utf-8")


def read(path: Path, **kw):
    report = Report(stream=io.StringIO())
    rows = list(iter_csv(path, report, **kw))
    return rows, [(b.line, b.reason) for b in report.bad], report


def kept_lines(rows) -> dict[int, list[str]]:
    return {n: list(r.values()) for n, r in rows}


@pytest.fixture(params=[",", "\t"], ids=["csv", "tsv"])
def delimiter(request):
    return request.param


def test_clean_file_reads_every_row(tmp_path, delimiter):
    path = tmp_path / "f.csv"
    write_csv(path, ROWS, delimiter)
    rows, bad, _ = read(path, delimiter=delimiter)
    assert bad == [] and kept_lines(rows) == {i + 2: r for i, r in enumerate(ROWS)}


def test_stray_quote_spanning_lines_is_reported_and_neighbours_kept(tmp_path, delimiter):
    # The quote opened on line 3 would swallow line 4 and close at line 5's first quote.
    rows = [ROWS[0], ROWS[2], ROWS[4], ROWS[1], ROWS[3]]
    path = tmp_path / "f.csv"
    lines = write_csv(path, rows, delimiter)
    corrupt(path, lines, 3, '"' + lines[2])
    got, bad, _ = read(path, delimiter=delimiter)
    assert [n for n, _ in bad] == [3]
    assert "runs on to line 5" in bad[0][1] and "stray quote" in bad[0][1]
    assert kept_lines(got) == {2: rows[0], 4: rows[2], 5: rows[3], 6: rows[4]}


def test_stray_quote_to_end_of_file(tmp_path, delimiter):
    path = tmp_path / "f.csv"
    lines = write_csv(path, [ROWS[0], ROWS[2], ROWS[3], ROWS[4]], delimiter)
    corrupt(path, lines, 2, '"' + lines[1])
    got, bad, _ = read(path, delimiter=delimiter)
    assert [n for n, _ in bad] == [2] and sorted(kept_lines(got)) == [3, 4, 5]


def test_extra_and_missing_fields_are_reported(tmp_path, delimiter):
    path = tmp_path / "f.csv"
    lines = write_csv(path, ROWS, delimiter)
    lines[2] = lines[2].rstrip("\n") + f"{delimiter}surplus\n"  # line 3: one field too many
    corrupt(path, lines, 5, lines[4].rsplit(delimiter, 1)[0] + "\n")  # line 5: one too few
    got, bad, _ = read(path, delimiter=delimiter)
    assert bad == [
        (3, "4 fields, expected 3: extra value(s) ['surplus']"),
        (5, "2 fields, expected 3: missing topic"),
    ]
    assert kept_lines(got) == {2: ROWS[0], 4: ROWS[2], 6: ROWS[4]}


def test_undecodable_line_is_reported(tmp_path, delimiter):
    path = tmp_path / "f.csv"
    write_csv(path, ROWS, delimiter)
    data = path.read_bytes().split(b"\n")
    data[3] = data[3].replace(b"three", b"thr\xffee")
    path.write_bytes(b"\n".join(data))
    got, bad, _ = read(path, delimiter=delimiter)
    assert bad == [(4, "not valid UTF-8 (byte 0xff)")] and sorted(kept_lines(got)) == [2, 3, 5, 6]


def test_without_a_report_a_bad_row_is_an_error(tmp_path):
    path = tmp_path / "f.csv"
    lines = write_csv(path, ROWS)
    corrupt(path, lines, 4, lines[3].rstrip("\n") + ",x\n")
    with pytest.raises(DataError, match=r"f\.csv:4: 4 fields, expected 3"):
        list(iter_csv(path))


def test_allowed_multiline_field_is_kept(tmp_path, delimiter):
    rows = [ROWS[0], ["Two lines\nin one sentence.", "0", "health"], ROWS[2]]
    path = tmp_path / "f.csv"
    write_csv(path, rows, delimiter)
    got, bad, _ = read(path, delimiter=delimiter, multiline=("text",))
    assert bad == [] and kept_lines(got) == {2: rows[0], 3: rows[1], 5: rows[2]}
    # where rows are one line each, the same file is a stray quote on line 3
    got, bad, _ = read(path, delimiter=delimiter)
    # (line 4, read again alone, is a complete row; line 3's reason names it)
    assert [n for n, _ in bad] == [3] and "line 4 read again separately" in bad[0][1]
    assert sorted(kept_lines(got)) == [2, 4, 5]


def test_line_break_in_a_column_that_may_not_span_is_reported(tmp_path, delimiter):
    path = tmp_path / "f.csv"
    rows = [ROWS[0], ["Fine.", "0", "two\nlines"], ROWS[2]]
    write_csv(path, rows, delimiter)
    got, bad, _ = read(path, delimiter=delimiter, multiline=("text",))
    assert bad[0][0] == 3 and "a line break in topic, only text may span lines" in bad[0][1]
    assert kept_lines(got)[2] == ROWS[0] and kept_lines(got)[5] == ROWS[2]


def test_guard_catches_rows_swallowed_by_a_multiline_column(tmp_path, delimiter):
    """BABE's case: its text column may span lines, yet a stray quote there swallowed 55 rows."""
    rows = [ROWS[0], ROWS[2], ROWS[3], ROWS[4], ROWS[1]]
    path = tmp_path / "f.csv"
    lines = write_csv(path, rows, delimiter)
    corrupt(path, lines, 2, '"' + lines[1])
    got, bad, _ = read(path, delimiter=delimiter, multiline=("text",))
    assert [n for n, _ in bad] == [2] and "swallowing line 3, a complete row" in bad[0][1]
    assert kept_lines(got) == {3: rows[1], 4: rows[2], 5: rows[3], 6: rows[4]}
    # free-text files pass a check of the swallowed row's fields: the same stray quote is caught
    same = read(path, delimiter=delimiter, multiline=("text",), guard=lambda r: r["label"] in ("0", "1"))
    assert same[:2] == (got, bad)


def test_guard_check_keeps_text_lines_that_merely_parse_as_rows(tmp_path, delimiter):
    text = f"Q: one\nx{delimiter}y{delimiter}z\nA: four."  # its middle line parses as 3 fields
    rows = [ROWS[0], [text, "1", "world"], ROWS[2]]
    path = tmp_path / "f.csv"
    write_csv(path, rows, delimiter)
    _, bad, _ = read(path, delimiter=delimiter, multiline=("text",))
    assert [n for n, _ in bad] == [3]  # the plain guard cannot tell it from a swallowed row
    got, bad, _ = read(path, delimiter=delimiter, multiline=("text",), guard=lambda r: r["label"] in ("0", "1"))
    assert bad == [] and kept_lines(got) == {2: rows[0], 3: rows[1], 6: rows[2]}


def test_babe_reader_reports_the_stray_quote(tmp_path):
    path = tmp_path / babe.FILE
    header = ["text", "news_link", "outlet", "topic", "type", "label_bias", "label_opinion", "biased_words"]
    rows = [[f"Sentence {i}.", f"https://x.com/{i}", "X", "vaccines", "left", "Biased", "op", "[]"] for i in range(6)]
    rows[4][7] = "['a \"b\"']"  # a quote further down, where the stray quote's field closes
    lines = write_csv(path, rows, ";", header)
    corrupt(path, lines, 3, '"' + lines[2])
    report = Report(stream=io.StringIO())
    records = babe.read_babe(path, report)
    assert [b.line for b in report.bad] == [3]
    assert [r["id"] for r in records] == ["babe-2", "babe-4", "babe-5", "babe-6", "babe-7"]


def test_gvfc_extra_field_is_reported_not_kept(tmp_path):
    root = tmp_path / "gvfc"
    root.mkdir()
    path = root / "gvfc_headlines_annotations.csv"
    header = ["news_title", "Q1 Relevant", "Q2 Focus", "Q3 Theme1", "Q3 Theme2"]
    lines = write_csv(path, [[f"Headline {i}", "1", "1", "2", "99"] for i in range(4)], ",", header)
    corrupt(path, lines, 3, lines[2].rstrip("\n") + ",7\n")
    report = Report(stream=io.StringIO())
    records = ADAPTERS["gvfc"].read(root, report)["all"]
    assert [str(b) for b in report.bad] == [f"{path}:3: 6 fields, expected 5: extra value(s) ['7']"]
    assert [r["_line"] for r in records] == [2, 4, 5]


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_bad_lines_are_reported_and_neighbours_kept(tmp_path):
    path = tmp_path / "f.jsonl"
    good = [json.dumps({"i": i, "text": f"t{i}"}).encode() for i in range(6)]
    lines = list(good)
    lines[1] = good[1][:-5]  # line 2: truncated
    lines[3] = b"[1, 2]"  # line 4: not an object
    lines[4] = good[4].replace(b"t4", b"t\xff4")  # line 5: undecodable
    path.write_bytes(b"\n".join(lines[:5] + [b"", lines[5]]) + b"\n")  # line 6 is blank
    report = Report(stream=io.StringIO())
    got = list(iter_jsonl(path, report))
    assert [(b.line, b.reason.split(":")[0]) for b in report.bad] == [
        (2, "invalid JSON"), (4, "expected a JSON object, got list"), (5, "not valid UTF-8 (byte 0xff)")
    ]
    assert [(n, o["i"]) for n, o in got] == [(1, 0), (3, 2), (7, 5)]


# --- property: rows read + rows reported == rows in the file ----------------------------------

FIELD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=6)
KINDS = ("ok", "ok", "ok", "stray_quote", "extra", "missing")


def _render(rows, kinds, delimiter) -> tuple[str, set[int]]:
    """The file text, and the lines (1-based) whose row was corrupted."""
    out, bad = [], set()
    for i, (row, kind) in enumerate(zip(rows, kinds)):
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerow(row if kind != "missing" else row[:-1])
        line = buf.getvalue()
        if kind == "stray_quote":
            line = '"' + line
        elif kind == "extra":
            line = line[:-1] + delimiter + "x\n"
        if kind != "ok":
            bad.add(i + 2)
        out.append(line)
    return delimiter.join(f"c{j}" for j in range(len(rows[0]))) + "\n" + "".join(out), bad


@st.composite
def csv_files(draw):
    n = draw(st.integers(2, 4))
    rows = draw(st.lists(st.lists(FIELD, min_size=n, max_size=n), min_size=1, max_size=12))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=len(rows), max_size=len(rows)))
    return rows, kinds, draw(st.sampled_from([",", "\t", ";"]))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files())
def test_property_every_csv_row_is_read_or_reported(tmp_path, case):
    rows, kinds, delimiter = case
    text, corrupted = _render(rows, kinds, delimiter)
    path = tmp_path / "p.csv"
    path.write_text(text, encoding="utf-8")
    got, bad, _ = read(path, delimiter=delimiter)
    assert len(got) + len(bad) == len(rows)
    lines_seen = [n for n, _ in got] + [n for n, _ in bad]
    assert sorted(lines_seen) == list(range(2, len(rows) + 2))
    # every intact row comes back exactly; an extra or missing field is always reported
    for i, (row, kind) in enumerate(zip(rows, kinds)):
        if kind == "ok":
            assert kept_lines(got)[i + 2] == row
        elif kind in ("extra", "missing"):
            assert i + 2 in {n for n, _ in bad}
    assert {n for n, _ in bad} <= corrupted


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.dictionaries(st.text(max_size=3), FIELD, max_size=3),
                  st.sampled_from(("ok", "ok", "truncated", "list", "bytes", "blank"))),
        min_size=1, max_size=12,
    )
)
def test_property_every_jsonl_line_is_read_or_reported(tmp_path, items):
    lines, n_rows, corrupted = [], 0, set()
    for obj, kind in items:
        raw = json.dumps(obj, ensure_ascii=False).encode()
        line = {"ok": raw, "truncated": raw[:-1], "list": b"[" + raw + b"]", "bytes": raw + b"\xfe", "blank": b"  "}[kind]
        lines.append(line)
        n_rows += kind != "blank"
        if kind not in ("ok", "blank"):
            corrupted.add(len(lines))
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = Report(stream=io.StringIO())
    got = list(iter_jsonl(path, report))
    assert len(got) + len(report.bad) == n_rows
    assert {b.line for b in report.bad} == corrupted
    assert all(o == items[n - 1][0] for n, o in got)
