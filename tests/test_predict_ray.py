"""`biascard predict --engine ray`: a real local Ray (2 CPUs, started by the command) with 1
and 2 actors gives the `--engine local` cards, reports the bad line the same way and exits
with the same code; --resume keeps its meaning."""
from __future__ import annotations

import json
import re

import pytest
from test_serve_support import run_cli as _run, tiny_model  # noqa: F401

pytest.importorskip("ray")  # a guard only: the test extra installs ray

TEXTS = ["The council approved the budget on Monday. Critics called it reckless.",
         "Short one. Two sentences here.", "The mayor resigned on Friday.",
         "Schools get more money. Critics disagree.", "Voters go to the polls in May.",
         "Prices rose again. The bank blamed energy costs."]
# line 4 is bad (empty text); lines 1, 3 and 6 have no id (→ line:N)
ROWS = [{"text": TEXTS[0]}, {"id": "a", "text": TEXTS[1]}, {"text": TEXTS[2], "title": "T"},
        {"id": "bad", "text": ""}, {"id": 7, "text": TEXTS[3]}, {"text": TEXTS[4]}, {"id": "z", "text": TEXTS[5]}]
IDS = ["line:1", "a", "line:3", "7", "line:6", "z"]




def _predict(model, src, out, *extra):
    # batches of 2: three of them, so both actors get work (with one batch per block, below)
    return ["predict", "--model", str(model), "--input", str(src), "--output", str(out), "--batch-size", "2",
            "--no-progress", *extra]


def _cards(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _reports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r"in\.jsonl:\d+: ", line)]


@pytest.fixture(scope="module")
def local(tiny_model, tmp_path_factory):
    """The input and the single-process run: (input, cards, bad-line reports, exit code)."""
    import contextlib
    import io

    from biascard.cli import main

    d = tmp_path_factory.mktemp("local")
    src = d / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(_predict(tiny_model, src, d / "out.jsonl", "--engine", "local"))
    cards = _cards(d / "out.jsonl")
    assert [c["id"] for c in cards] == IDS
    return src, cards, _reports(err.getvalue()), code


@pytest.mark.parametrize("actors, kept", [(1, 0), (2, 2)])
def test_ray_gives_the_local_cards_in_input_order(tiny_model, local, tmp_path, monkeypatch, capsys, actors, kept):
    """With kept > 0 the run is a --resume after a kill: `kept` cards there, half of the next."""
    from biascard.serve import predict_ray

    src, expected, reports, code = local
    monkeypatch.setattr(predict_ray, "BATCHES_PER_BLOCK", 1)  # a block per batch: the actors share them
    out = tmp_path / "out.jsonl"
    resume = []
    if kept:
        half = json.dumps(expected[kept])
        out.write_text("".join(json.dumps(c) + "\n" for c in expected[:kept]) + half[: len(half) // 2])
        resume = ["--resume"]
    r = _run(_predict(tiny_model, src, out, "--engine", "ray", "--cpus", "2", "--actors", str(actors), *resume),
             tmp_path, monkeypatch, capsys)
    assert r.returncode == code == 1, r.stderr  # line 4 is bad
    assert _reports(r.stderr) == reports == [f"{src}:4: text is empty (field text)"]
    assert re.search(rf"wrote {6 - kept} cards to \S+out\.jsonl in [\d.]+s \([\d.]+ cards/s\)"
                     rf"(; kept {kept} cards already there)?; skipped 1 bad line", r.stderr), r.stderr
    assert (f"out.jsonl:{kept + 1}: dropped a partial last line" in r.stderr) == bool(kept)
    cards = _cards(out)
    assert [c["id"] for c in cards] == IDS
    # the batches are the local run's (blocks of whole batches; the kept cards are its first
    # batch), so the cards are the same to the last digit
    assert cards == expected


@pytest.mark.parametrize("flags, message", [(["--actors", "2"], "--actors needs --engine ray"),
                                            (["--engine", "ray", "--actors", "0"], "--actors must be >= 1"),
                                            (["--engine", "ray", "--cpus", "0"], "--cpus must be >= 1")])
def test_ray_flags_are_checked_before_anything_starts(tiny_model, local, tmp_path, monkeypatch, capsys, flags, message):
    out = tmp_path / "out.jsonl"
    r = _run(_predict(tiny_model, local[0], out, *flags), tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()


# ---------------------------------------------------------------- the actor and the ordering, without Ray


def _batch(seqs):
    import pyarrow as pa

    from biascard.serve.predict_ray import FIELDS

    return pa.table({"seq": pa.array(seqs, pa.int64()), "where": [f"in.jsonl:{s + 1}" for s in seqs],
                     **{f: [f"text {s}. More." if f == "text" else None for s in seqs] for f in FIELDS}})


def test_the_actor_sends_composition_failures_and_a_model_that_failed_to_load():
    from biascard.serve.predict_command import card_line
    from biascard.serve.predict_ray import Scorer, in_order

    class Service:
        def __enter__(self):
            return self

        def compose(self, articles):
            return [RuntimeError("boom") if a.text.startswith("text 1.") else {"id": a.id, "text": a.text}
                    for a in articles]

    scorer = Scorer(lambda args: Service(), None, card_line)
    got = list(in_order([scorer(_batch([2, 3])), scorer(_batch([0, 1]))], 4))  # out of order: put back in order
    assert [w for w, _, _ in got] == ["in.jsonl:1", "in.jsonl:2", "in.jsonl:3", "in.jsonl:4"]
    assert got[1] == ("in.jsonl:2", None, "card composition failed: boom")
    assert json.loads(got[0][1]) == {"id": None, "text": "text 0. More."}
    with pytest.raises(RuntimeError, match="returned 3 of 4 rows"):
        list(in_order([scorer(_batch([0, 1])), scorer(_batch([3]))], 4))

    def no_model(args):
        raise ValueError("nope: no such model directory or archive")

    with pytest.raises(ValueError, match="nope: no such model"):  # the actor's own exception, as locally
        list(in_order([Scorer(no_model, None, card_line)(_batch([0, 1]))], 2))

    class ModelDirError(ValueError):
        pass

    def bad_dir(args):
        raise ModelDirError("x: missing config.json")

    # sent as JSON (never a pickle): the nearest builtin class, so the CLI still exits 2
    with pytest.raises(ValueError, match="x: missing config.json"):
        list(in_order([Scorer(bad_dir, None, card_line)(_batch([0]))], 1))
