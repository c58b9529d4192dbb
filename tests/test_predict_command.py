"""`biascard predict`: --resume after a kill, --overwrite, the refusal, the summary, the bar,
and lone surrogates in the input (for `predict` and `card`)."""
from __future__ import annotations

import json
import re

import pytest
from test_serve_support import ARTICLE, close_cards, run_cli as _run, tiny_model  # noqa: F401

TEXTS = [ARTICLE, "Short one. Two sentences here.", "The mayor resigned on Friday.",
         "Schools get more money. Critics disagree.", "Voters go to the polls in May."]




def _predict(model, src, out, *extra):
    return ["predict", "--model", str(model), "--input", str(src), "--output", str(out), *extra]


def _input_lines() -> list[str]:
    """Ids, id-less lines (→ line:N), a repeated id, a bad line, a blank line."""
    rows = [{"id": "a", "text": TEXTS[0]}, {"text": TEXTS[1]}, {"id": 7, "text": TEXTS[2]},
            {"id": "dup", "text": TEXTS[3]}, {"id": "b", "text": ""}, {"text": TEXTS[4]},
            {"id": "dup", "text": TEXTS[1]}, {"id": "c", "text": TEXTS[2], "title": "T"}]
    lines = [json.dumps(r) for r in rows]
    lines.insert(5, "")
    return lines  # line 5 is bad (empty text), line 6 blank


EXPECTED_IDS = ["a", "line:2", "7", "dup", "line:7", "dup", "c"]


def _cards(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def fresh(tiny_model, tmp_path_factory):
    """A full uninterrupted run: (input file, its cards)."""
    d = tmp_path_factory.mktemp("fresh")
    src = d / "in.jsonl"
    src.write_text("\n".join(_input_lines()) + "\n")
    from biascard.cli import main

    assert main(_predict(tiny_model, src, d / "out.jsonl", "--no-progress")) == 1  # line 5 is bad
    cards = _cards(d / "out.jsonl")
    assert [c["id"] for c in cards] == EXPECTED_IDS
    return src, cards


@pytest.mark.parametrize("first_lines", [3, 7])
def test_resume_after_a_kill_matches_a_fresh_run(tiny_model, fresh, tmp_path, monkeypatch, capsys, first_lines):
    src, full = fresh
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(_input_lines()[:first_lines]) + "\n")
    out = tmp_path / "out.jsonl"
    _run(_predict(tiny_model, part, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    done = len(_cards(out))
    # the kill: half of the next card written, no newline
    next_card = json.dumps(full[done], ensure_ascii=False)
    with open(out, "a", encoding="utf-8") as f:
        f.write(next_card[: len(next_card) // 2])
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr  # line 5 is still bad, and said again
    assert "in.jsonl:5: text is empty (field text)" in r.stderr
    assert f"out.jsonl:{done + 1}: dropped a partial last line" in r.stderr
    assert f"wrote {len(full) - done} cards" in r.stderr and f"kept {done} cards already there" in r.stderr
    cards = _cards(out)
    assert [c["id"] for c in cards] == EXPECTED_IDS
    close_cards(cards, full)
    # resuming a finished run does nothing more
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert "wrote 0 cards" in r.stderr and f"kept {len(full)} cards" in r.stderr
    assert [c["id"] for c in _cards(out)] == EXPECTED_IDS


def test_resume_cuts_a_last_line_that_is_not_json_and_refuses_a_bad_middle_line(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(full[0]) + "\n" + "{not json\n")
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert "out.jsonl:2: dropped a partial last line" in r.stderr
    assert [c["id"] for c in _cards(out)] == EXPECTED_IDS
    broken = "{not json\n" + json.dumps(full[0]) + "\n"
    out.write_text(broken)
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "out.jsonl:1: not a whole card line" in r.stderr
    assert out.read_text() == broken


def test_an_existing_output_is_refused_and_overwrite_redoes_all(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2
    assert "out.jsonl exists and is not empty" in r.stderr and "--resume" in r.stderr and "--overwrite" in r.stderr
    assert out.read_text() == "keep me\n"
    with pytest.raises(SystemExit) as e:  # argparse: not both
        _run(_predict(tiny_model, src, out, "--resume", "--overwrite"), tmp_path, monkeypatch, capsys)
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    # --overwrite over a run's own output redoes every card
    out.write_text("\n".join(json.dumps(c) for c in full[:3]) + "\n")
    r = _run(_predict(tiny_model, src, out, "--overwrite", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert f"wrote {len(full)} cards" in r.stderr and "kept" not in r.stderr
    close_cards(_cards(out), full)
    # an empty output file is not refused
    out.write_text("")
    assert _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys).returncode == 1


def test_summary_with_cards_per_second_and_the_bar(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    n_lines = len(_input_lines())
    r = _run(_predict(tiny_model, src, tmp_path / "a.jsonl"), tmp_path, monkeypatch, capsys)
    assert re.search(rf"wrote {len(full)} cards to \S+a\.jsonl in [\d.]+s \([\d.]+ cards/s\); skipped 1 bad line", r.stderr), r.stderr
    assert "cards:" not in r.stderr  # stderr is no terminal here: no bar by default
    r = _run(_predict(tiny_model, src, tmp_path / "b.jsonl", "--progress"), tmp_path, monkeypatch, capsys)
    assert f"{n_lines}/{n_lines}" in r.stderr and "100%" in r.stderr  # a total, so a percentage and an ETA
    assert "cards/s" in r.stderr


def test_lone_surrogates_are_bad_lines_naming_the_field(tiny_model, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    # json.dumps writes a lone surrogate as the escape "\ud800", as other tools do
    src.write_text("\n".join([json.dumps({"id": "ok", "text": TEXTS[1]}),
                              json.dumps({"id": "s", "text": "Bad \ud800 text. Second sentence."}),
                              json.dumps({"id": "t", "text": TEXTS[2], "title": "x\udfff"}),
                              json.dumps({"id": "ok2", "text": TEXTS[2]})]) + "\n")
    assert "\\ud800" in src.read_text()
    out = tmp_path / "out.jsonl"
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = {m[1]: line for line in r.stderr.splitlines() if (m := re.search(r"in\.jsonl:(\d+): ", line))}
    assert set(errors) == {"2", "3"}
    assert "surrogate" in errors["2"] and "(field text)" in errors["2"]
    assert "surrogate" in errors["3"] and "(field title)" in errors["3"]
    assert [c["id"] for c in _cards(out)] == ["ok", "ok2"]


def test_card_refuses_a_lone_surrogate(tiny_model, tmp_path, monkeypatch, capsys):
    article = tmp_path / "article.json"
    article.write_text(json.dumps({"text": "Bad \ud800 text. Second sentence.", "title": "T"}))
    r = _run(["card", "--model", str(tiny_model), str(article)], tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and r.stdout == ""
    assert "article.json:" in r.stderr and "surrogate" in r.stderr and "(field text)" in r.stderr
    # a title from argv (undecodable bytes arrive as surrogates) is checked as well
    article.write_text(json.dumps({"text": TEXTS[1]}))
    r = _run(["card", "--model", str(tiny_model), "--title", "x\udcff", str(article)], tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "surrogate" in r.stderr and "(field title)" in r.stderr


# ---------------------------------------------------------------- CSV, Parquet, shards, precision

# the lines of _input_lines() that hold a good article, in order: fresh's cards come from these
GOOD_LINES = [1, 2, 3, 4, 7, 8, 9]


def _write_csv(path, rows, raw_tail: bytes = b"") -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8") + raw_tail)


def _parquet_cards(path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    assert table.schema.names == ["id", "card"] and str(table.schema.field("card").type) == "string"
    cards = [json.loads(c) for c in table.column("card").to_pylist()]
    assert [c["id"] for c in cards] == table.column("id").to_pylist()
    return cards


def test_csv_input_reports_a_bad_row_by_file_and_line(tiny_model, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.csv"
    # line 1 header; line 2-3 one record (a quoted newline); 4 empty text; 5 no id; 6 not UTF-8; 7 a stray quote
    _write_csv(src, [["id", "text", "title", "extra"], ["a", "First line.\nSecond line here.", "T", "x"],
                     ["b", "", "", "y"], ["", TEXTS[2], "", "z"]],
               b'd,Bad \xff byte. Two.,,\ne,"quoted"x,,\n' + f"f,{TEXTS[4]},,\n".encode())
    out = tmp_path / "out.jsonl"
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr
    assert "in.csv:4: text is empty (field text)" in r.stderr
    assert "in.csv:6: text is not valid UTF-8 (byte 0xFF at character 4) (field text)" in r.stderr
    assert "in.csv:7: malformed CSV:" in r.stderr
    assert "skipped 3 bad line(s); csv in, jsonl out" in r.stderr
    cards = _cards(out)
    assert [c["id"] for c in cards] == ["a", "line:5", "f"]  # no id: the line the record starts on
    assert cards[0]["title"] == "T"
    # stdin wants --input-format; a row is named by stdin and its line
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(src.read_bytes())))
    r = _run(_predict(tiny_model, "-", tmp_path / "stdin.jsonl", "--input-format", "csv", "--no-progress"),
             tmp_path, monkeypatch, capsys)
    assert "stdin:4: text is empty" in r.stderr and [c["id"] for c in _cards(tmp_path / "stdin.jsonl")] == ["a", "line:5", "f"]
    # no `text` column: refused before any work
    _write_csv(src, [["id", "body"], ["a", TEXTS[1]]])
    r = _run(_predict(tiny_model, src, tmp_path / "none.jsonl", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "in.csv:1: the CSV header names no `text` column" in r.stderr


def test_parquet_input_reports_a_null_text_by_row(tiny_model, tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["x", "y", None, ""], "text": [TEXTS[1], None, TEXTS[2], TEXTS[3]],
                             "title": [None, None, "T", None], "other": [1, 2, 3, 4]}), src)
    out = tmp_path / "out.jsonl"
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr
    assert "in.parquet: row 2: text is null (field text)" in r.stderr
    assert "skipped 1 bad row(s); parquet in, jsonl out" in r.stderr
    cards = _cards(out)
    assert [c["id"] for c in cards] == ["x", "row:3", "row:4"] and cards[1]["title"] == "T"


def test_parquet_output_holds_the_jsonl_cards(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    out = tmp_path / "out.parquet"
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1 and "jsonl in, parquet out" in r.stderr
    assert _parquet_cards(out) == full  # the same batches as the JSONL run: the same cards
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]  # no sidecar, no temp file left
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "out.parquet exists and is not empty" in r.stderr


def _composed(monkeypatch) -> list[str]:
    """The ids of the articles the model is asked for, in order."""
    from biascard.serve.service import ModelService

    seen, compose = [], ModelService.compose
    monkeypatch.setattr(ModelService, "compose", lambda self, articles: seen.extend(a.id for a in articles)
                        or compose(self, articles))
    return seen


def test_a_killed_parquet_run_resumes_from_its_sidecar(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    out, side = tmp_path / "out.parquet", tmp_path / "out.parquet.partial.jsonl"
    partial = json.dumps(full[3], ensure_ascii=False)
    side.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in full[:3]) + partial[: len(partial) // 2])
    r = _run(_predict(tiny_model, src, out, "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "out.parquet.partial.jsonl exists and is not empty" in r.stderr
    seen = _composed(monkeypatch)
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr
    assert "out.parquet.partial.jsonl:4: dropped a partial last line" in r.stderr
    assert seen == EXPECTED_IDS[3:]  # the finished ids were not redone
    assert "wrote 4 cards" in r.stderr and "kept 3 cards already there" in r.stderr
    cards = _parquet_cards(out)
    assert [c["id"] for c in cards] == EXPECTED_IDS and not side.exists()
    close_cards(cards, full)
    # resuming the finished run: its ids come from the Parquet file; nothing is redone
    seen.clear()
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert seen == [] and "wrote 0 cards" in r.stderr and f"kept {len(full)} cards" in r.stderr
    assert _parquet_cards(out) == cards
    # --overwrite removes both files and starts over
    side.write_text(json.dumps(full[0]) + "\n")
    r = _run(_predict(tiny_model, src, out, "--overwrite", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert seen == EXPECTED_IDS and not side.exists() and len(_parquet_cards(out)) == len(full)


def test_a_sidecar_already_in_the_parquet_file_is_not_counted_twice(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    """A kill between the rename and the sidecar's removal leaves both files."""
    from biascard.serve.predict_io import finish_parquet

    src, full = fresh
    out, side = tmp_path / "out.parquet", tmp_path / "out.parquet.partial.jsonl"
    text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in full[:3])
    side.write_text(text)
    finish_parquet(out, side)
    side.write_text(text)  # the sidecar the kill left
    seen = _composed(monkeypatch)
    r = _run(_predict(tiny_model, src, out, "--resume", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert "is already in" in r.stderr and seen == EXPECTED_IDS[3:]
    assert [c["id"] for c in _parquet_cards(out)] == EXPECTED_IDS


def test_the_shards_together_give_the_unsharded_cards(tiny_model, fresh, tmp_path, monkeypatch, capsys):
    src, full = fresh
    n_lines = len(_input_lines())
    union = []
    for i in range(3):
        out = tmp_path / f"shard{i}.jsonl"
        r = _run(_predict(tiny_model, src, out, "--shard", f"{i}/3", "--no-progress"), tmp_path, monkeypatch, capsys)
        mine = [line for line in range(1, n_lines + 1) if (line - 1) % 3 == i]
        assert f"skipped {n_lines - len(mine)} rows of other shards (shard {i}/3)" in r.stderr
        assert ("in.jsonl:5: text is empty" in r.stderr) == (5 in mine)
        assert r.returncode == (1 if 5 in mine else 0), r.stderr
        cards = _cards(out)
        expected = [c for line, c in zip(GOOD_LINES, full) if line in mine]
        assert [c["id"] for c in cards] == [c["id"] for c in expected]
        close_cards(cards, expected, where=f"shard {i}/3")  # other batches: the last digits may move
        union += cards
    assert sorted(c["id"] for c in union) == sorted(EXPECTED_IDS)


@pytest.mark.parametrize("bad", ["3/2", "1", "a/3", "-1/2", "0/0"])
def test_a_bad_shard_is_refused_naming_the_flag(tiny_model, fresh, tmp_path, monkeypatch, capsys, bad):
    out = tmp_path / "out.jsonl"
    r = _run(_predict(tiny_model, fresh[0], out, f"--shard={bad}"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and f"--shard wants i/n with 0 <= i < n, got '{bad}'" in r.stderr
    assert not out.exists()


def test_precision_reaches_the_composer_settings(tiny_model, tmp_path, monkeypatch, capsys):
    from biascard.serve.service import ModelService

    services = []
    monkeypatch.setattr(ModelService, "__enter__", lambda self: services.append(self) or self)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": TEXTS[1]}) + "\n")
    r = _run(_predict(tiny_model, src, tmp_path / "a.jsonl", "--precision", "bf16", "--set", "runtime.precision=int8",
                      "--no-progress"), tmp_path, monkeypatch, capsys)
    assert r.returncode == 0, r.stderr
    composer = services[-1].composer
    assert composer.settings["runtime"]["precision"] == "bf16" and composer.runtime["precision"] == "bf16"
    assert _cards(tmp_path / "a.jsonl")[0]["id"] == "a"
    # the next run without the flag is back to the configured precision (no --set default was changed)
    r = _run(_predict(tiny_model, src, tmp_path / "b.jsonl", "--no-progress"), tmp_path, monkeypatch, capsys)
    assert services[-1].composer.settings["runtime"]["precision"] == "fp32"


def test_the_bar_total_is_the_rows_or_the_shards_share(tiny_model, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.csv"
    # 5 records on 7 lines after the header: the total counts records, not lines
    _write_csv(src, [["text"], ["One.\nTwo."], [TEXTS[1]], ["Three.\nFour."], [TEXTS[2]], [TEXTS[3]]])
    r = _run(_predict(tiny_model, src, tmp_path / "a.jsonl", "--progress"), tmp_path, monkeypatch, capsys)
    assert "5/5" in r.stderr and "100%" in r.stderr and "article" in r.stderr, r.stderr
    r = _run(_predict(tiny_model, src, tmp_path / "b.jsonl", "--progress", "--shard", "1/2"), tmp_path, monkeypatch, capsys)
    assert "2/2" in r.stderr and "100%" in r.stderr, r.stderr  # rows 2 and 4
    assert [c["id"] for c in _cards(tmp_path / "b.jsonl")] == ["line:4", "line:7"]  # where each starts
