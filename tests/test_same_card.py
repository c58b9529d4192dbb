"""The server, the `biascard card` command and eval's report cards give the same card for the
same article and model, and all of them read the chunks the model's config names."""
from __future__ import annotations

import json

import httpx
import pytest

from test_golden_card import build_golden_model
from test_serve_support import LiveServer, close_cards, server_cfg


@pytest.fixture(scope="module")
def one_chunk_model(tmp_path_factory):
    """The golden test's model, saved with max_chunks=1: the document heads read one chunk."""
    return build_golden_model(tmp_path_factory.mktemp("same-card"), max_chunks=1)


@pytest.fixture(scope="module")
def eval_card(one_chunk_model, smoke_inputs):
    """The report's sample card for the longest BABE test text (eval picks it)."""
    from biascard.eval.writing import sample_cards

    out = sample_cards(one_chunk_model, {"datasets": ["babe"]}, {"split": "test"}, 1)
    assert out["note"] is None, out["note"]
    return out["cards"][0]


def test_the_article_spans_more_chunks_than_the_model_reads(one_chunk_model, eval_card):
    from biascard.model.model_dir import load

    model, tokenizer = load(one_chunk_model)
    n_tokens = len(tokenizer(eval_card["record"]["text"])["input_ids"])
    assert model.config.max_chunks == 1 and n_tokens > model.config.max_length


def test_server_cli_and_eval_give_the_same_card(one_chunk_model, eval_card, tmp_path, capsys):
    from biascard.cli import main
    from biascard.serve.service import ModelService

    record, card = eval_card["record"], eval_card["card"]
    article = tmp_path / "article.txt"
    article.write_text(record["text"], encoding="utf-8")
    args = ["card", "--model", str(one_chunk_model), "--format", "json", "--id", record["id"]]
    if record.get("outlet"):
        args += ["--source", record["outlet"]]
    assert main([*args, str(article)]) == 0
    cli_card = json.loads(capsys.readouterr().out)

    with ModelService(one_chunk_model) as service, LiveServer(service, server_cfg()) as live:
        body = {"text": record["text"], "id": record["id"], "source": record.get("outlet")}
        r = httpx.post(f"{live.url}/predictions/{service.name}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    close_cards(cli_card, card, where="cli vs eval")
    close_cards(r.json(), card, where="server vs eval")


def test_reading_every_chunk_would_give_another_card(one_chunk_model, eval_card):
    """So the equality above means all three read the model's one chunk."""
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer

    record = eval_card["record"]
    composer = Composer.from_model_dir(one_chunk_model)
    composer.max_chunks = None
    every = composer.compose([Article(text=record["text"], id=record["id"], source=record.get("outlet"))])[0]
    with pytest.raises(AssertionError):
        close_cards(every, eval_card["card"], tol=1e-6)
