"""bench/corrupted_data.py's accounting on small synthetic files: rows in = kept + reported,
the reported lines are the corrupted ones, kept rows are unchanged; and a row lost silently
fails the check. No timings."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corrupted_data as cd  # noqa: E402

CSV_TARGET = cd.Target("x", "x", "f.csv", "csv", {"delimiter": ";", "multiline": ("text",)})
JSONL_TARGET = cd.Target("x", "x", "f.jsonl.gz", "jsonl")


def write_csv(path: Path, n: int = 30) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    w.writerow(["text", "label", "topic"])
    for i in range(n):
        # a few quoted values and one that spans two lines, as in the real files
        text = f"Sentence {i}; with a semicolon." if i % 7 == 3 else f"Sentence {i}."
        w.writerow([text + ("\nsecond line" if i == 10 else ""), str(i % 2), f"topic {i}"])
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_jsonl(path: Path, n: int = 30) -> None:
    lines = [json.dumps({"id": i, "text": f"Article {i}."}) + "\n" for i in range(n)]
    cd.write_text_lines(path, lines)


@pytest.mark.parametrize("target, writer", [(CSV_TARGET, write_csv), (JSONL_TARGET, write_jsonl)],
                         ids=["csv", "jsonl"])
def test_corrupted_copy_is_fully_accounted(tmp_path, target, writer):
    original, dest = tmp_path / target.file, tmp_path / ("bad-" + target.file)
    writer(original)
    clean = cd.check_clean(original, target)
    assert (clean["rows_in"], clean["kept"], clean["reported"], clean["accounted"]) == (30, 30, 0, True)

    got = cd.check_corrupted(original, target, dest)
    # three inserted lines are rows (extra field / byte copy / NUL, or non-object / invalid / NUL);
    # the blank line is not
    assert got["rows_in"] == 33 and got["reported"] == 5 and got["kept"] == 28
    assert got["accounted"] and got["corrupt_lines_reported"] and got["kept_unchanged"]
    ops = [x["op"] for x in got["injected"]]
    assert "blank line" in ops and "NUL line" in ops and len(ops) == 6
    assert {int(r["where"].rsplit(":", 1)[1]) for r in got["reports"]} == \
        {x["line"] for x in got["injected"] if x["op"] != "blank line"}


def test_a_row_lost_silently_fails_the_check(tmp_path, monkeypatch):
    original = tmp_path / "f.csv"
    write_csv(original)
    real = cd.read_rows

    def lossy(path, target):
        kept, bad = real(path, target)
        return kept[:-1], bad  # one row neither kept nor reported

    monkeypatch.setattr(cd, "read_rows", lossy)
    assert cd.check_clean(original, CSV_TARGET)["accounted"] is False


def test_too_small_a_file_is_refused(tmp_path):
    original = tmp_path / "f.csv"
    write_csv(original, n=3)
    with pytest.raises(ValueError, match="distinct rows"):
        cd.check_corrupted(original, CSV_TARGET, tmp_path / "bad.csv")
