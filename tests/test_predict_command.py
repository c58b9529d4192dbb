"""`biascard predict`: --resume after a kill, --overwrite, the refusal, the summary, the bar,
and lone surrogates in the input (for `predict` and `card`)."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from test_serve_support import ARTICLE, close_cards, tiny_model  # noqa: F401

TEXTS = [ARTICLE, "Short one. Two sentences here.", "The mayor resigned on Friday.",
         "Schools get more money. Critics disagree.", "Voters go to the polls in May."]


def _run(args, cwd, monkeypatch, capsys):
    """`biascard ARGS` in this process (a subprocess would pay torch's import again)."""
    from biascard.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("BIASCARD_MODEL", raising=False)
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


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
