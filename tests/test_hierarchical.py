"""Issue 18's one-pass hierarchical head (`document_reading: sentences`): documents read as
their sentences, document heads over an attention pool of the sentence vectors, and a card
from one encoder pass. Tiny random encoders only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from biascard.compose.reading import is_document, sentence_spans, with_segments
from biascard.model.features import encode
from biascard.model.heads import HeadSpec
from biascard.model.modeling import BiasCardConfig, BiasCardModel
from biascard.model.pooling import AttentionPool, segments_of

from test_lexical_branch import encoder, tokenizer  # noqa: F401 - fixtures (a tiny random encoder)
from test_serve_support import ARTICLE, HEADS

TITLE = "City Council Approves New Budget After Heated Debate"
BODY = ARTICLE.split("\n\n", 1)[1]


def card_specs(lexical: bool = True) -> dict[str, HeadSpec]:
    lex = {"political_leaning", "sdg"} if lexical else set()
    return {n: HeadSpec(n, t, lvl, labels, lexical={"buckets": 1024, "dim": 4} if n in lex else None)
            for n, (t, lvl, labels) in HEADS.items()}


def model_of(encoder, specs, seed: int = 0) -> BiasCardModel:
    torch.manual_seed(seed)
    model = BiasCardModel.from_encoder(encoder, specs, max_length=48, stride=8, document_reading="sentences")
    with torch.no_grad():  # a fresh pool is nearly the mean: make its weights matter
        model.document_pool.score.weight.normal_(0, 1.0)
        for branch in model.lexical.values():
            branch.weight.normal_(0, 5.0)
    return model.eval()


def test_attention_pool_is_a_softmax_per_record():
    torch.manual_seed(0)
    pool = AttentionPool(4)
    vecs, owner = torch.randn(5, 4), torch.tensor([0, 0, 0, 1, 1])
    out = pool(vecs, owner, 2)
    s = pool.score(vecs).squeeze(-1)
    for r, rows in ((0, [0, 1, 2]), (1, [3, 4])):
        w = torch.softmax(s[rows], 0)
        assert torch.allclose(out[r], (w.unsqueeze(-1) * vecs[rows]).sum(0), atol=1e-6)
    perm = torch.tensor([4, 2, 0, 3, 1])  # order inside a record does not matter
    assert torch.allclose(pool(vecs[perm], owner[perm], 2), out, atol=1e-6)
    with torch.no_grad():
        pool.score.weight.zero_()
    assert torch.allclose(pool(vecs, owner, 2)[0], vecs[:3].mean(0), atol=1e-6)  # zero score: the mean


def test_segments_are_renumbered_past_dropped_ones():
    chunks = torch.arange(10.0).view(5, 2)
    doc = torch.tensor([0, 0, 0, 1, 1])
    vecs, owner = segments_of(chunks, doc, torch.tensor([0, 0, 3, 7, 8]))  # 1, 2, 4-6 were capped away
    assert owner.tolist() == [0, 0, 1, 1]
    assert torch.equal(vecs, torch.tensor([[1.0, 2.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]))
    same, one_each = segments_of(chunks, doc, None)
    assert one_each.tolist() == [0, 1] and torch.allclose(same[0], chunks[:3].mean(0))


def test_documents_get_their_sentence_spans_and_sentence_records_stay_whole():
    specs = card_specs()
    doc = {"text": ARTICLE, "labels": {"political_leaning": "left", "language_bias": None}}
    sent = {"text": "Either we cut now. Or we pay.", "labels": {"language_bias": "1", "topic": ["budget"]}}
    assert is_document(doc, specs) and not is_document(sent, specs) and is_document({"text": "x"}, specs)
    got = with_segments([doc, sent], specs)
    spans = got[0]["segments"]
    assert ARTICLE[slice(*spans[0])] == TITLE and len(spans) == 7 and "segments" not in got[1]
    assert sentence_spans("") is None


def test_encode_reads_segments_with_offsets_into_the_whole_text(tokenizer):
    specs = {"political_leaning": HeadSpec("political_leaning", "multiclass", "document", ["left", "center", "right"]),
             "tok": HeadSpec("tok", "token")}
    recs = [{"text": ARTICLE, "segments": sentence_spans(ARTICLE)}, {"text": "Plain words here."}]
    batch = encode(recs, tokenizer, specs, 48, 8, with_labels=False, return_offsets=True)
    doc, seg, om = batch["doc_index"], batch["segment_index"], batch["offset_mapping"]
    assert doc.tolist() == sorted(doc.tolist()) and int(doc[-1]) == 1
    assert len(set(seg[doc == 0].tolist())) == 7 and len(set(seg[doc == 1].tolist())) == 1
    for c in range(len(doc)):  # every token's offsets index its record's own text
        text = recs[int(doc[c])]["text"]
        for a, b in om[c].tolist():
            if b > a:
                piece = tokenizer.convert_tokens_to_string(tokenizer.tokenize(text[a:b])).replace(" ", "")
                assert piece.lower() == text[a:b].lower().replace(" ", "")
    plain = encode(recs[1:], tokenizer, specs, 48, 8, with_labels=False)
    width = plain["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][doc == 1][:, :width], plain["input_ids"])
    with pytest.raises(ValueError, match=r"id 'art-3'\): segment \[5, 900\] is outside"):
        encode([{"id": "art-3", "text": ARTICLE[:100], "segments": [[5, 900]]}], tokenizer, specs, 48, 8)


def test_document_heads_read_the_pool_and_sentence_heads_the_mean(encoder, tokenizer):
    model = model_of(encoder, card_specs())
    recs = with_segments([{"text": ARTICLE}, {"text": BODY}], model.head_specs)
    batch = encode(recs, tokenizer, model.head_specs, 48, 8, with_labels=False)
    with torch.no_grad():
        out = model(**batch, return_embeddings=True)
        direct = model.document_logits(*_segment_vectors(model, batch), 2,
                                       **{k: batch[k] for k in ("lexical_ids", "lexical_offsets")})
        plain = model.heads["language_bias"](out.embeddings).squeeze(-1)
    for name in ("political_leaning", "sdg", "card_language_bias", "topic"):
        assert torch.allclose(out.logits[name], direct[name], atol=1e-5), name
    assert torch.allclose(out.logits["language_bias"], plain, atol=1e-6) and out.embeddings.shape[0] == 2
    assert "language_bias" not in direct
    windows = BiasCardModel(BiasCardConfig(**{**model.config.to_dict(), "document_reading": "windows"}))
    with pytest.raises(ValueError, match="document_reading: sentences"):
        windows.document_logits(torch.zeros(1, 32), torch.zeros(1, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="document_reading 'pages'"):
        BiasCardConfig(**{**model.config.to_dict(), "document_reading": "pages"})


def _segment_vectors(model, batch):
    from biascard.model.pooling import mean_pool_chunks

    enc = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    states = model.encoder(**enc).last_hidden_state
    return segments_of(mean_pool_chunks(states, batch["attention_mask"]), batch["doc_index"], batch["segment_index"])


def test_the_pool_saves_and_loads(encoder, tmp_path):
    model = model_of(encoder, card_specs())
    model.save_pretrained(tmp_path / "m")
    loaded = BiasCardModel.from_pretrained(tmp_path / "m").eval()
    assert json.loads((tmp_path / "m/config.json").read_text())["document_reading"] == "sentences"
    assert torch.equal(loaded.document_pool.score.weight, model.document_pool.score.weight)


def _count_encoder_passes(model) -> list[int]:
    calls: list[int] = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("title", [TITLE, None])
def test_one_pass_card_equals_eval_reading_the_document(encoder, tokenizer, title):
    """The card's document heads (one pass over sentences + title) give what eval's
    predict_records gives on the same document read as its sentences."""
    from biascard.card.contract import validate
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer
    from eval.predict import predict_records

    model = model_of(encoder, card_specs())
    composer = Composer(model, tokenizer)
    article = Article(text=BODY, title=title, id="a")
    composer.compose([article])  # the first also embeds the fixed key-question texts, once
    calls = _count_encoder_passes(composer.model)
    (card,) = composer.compose([article])
    validate(card)
    assert len(calls) == 1 and composer.one_pass, "one encoder pass per batch of articles"
    text = composer.document_text(article)
    ref = predict_records(model, tokenizer, [{"text": text, "labels": {}}], ["political_leaning", "sdg"])
    lean = ref["political_leaning"]["prob"][0]
    assert card["political_leaning"]["label"] == ["left", "center", "right"][int(np.argmax(lean))]
    dist = card["political_leaning"]["distribution"]
    np.testing.assert_allclose([dist[k] for k in ("left", "center", "right")], lean, atol=1e-3)
    assert max(lean) - min(lean) > 0.01  # a distribution the pool and the bag shaped, not uniform


def test_a_windows_model_still_takes_two_passes(encoder, tokenizer):
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer

    model = BiasCardModel.from_encoder(encoder, card_specs(), max_length=48, stride=8).eval()
    composer = Composer(model, tokenizer)
    composer.compose([Article(text=BODY, title=TITLE)])
    calls = _count_encoder_passes(composer.model)
    composer.compose([Article(text=BODY, title=TITLE)])
    assert len(calls) == 2 and not composer.one_pass


def test_training_and_eval_with_sentence_reading(smoke_inputs, tmp_path):
    """debug=smoke on BABE and TRAIL22 (a document dataset) with document_reading=sentences:
    it trains, saves the pool, and biascard eval scores its SDG head on documents."""
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "biascard.train", "debug=smoke", "logger=none", f"hydra.run.dir={run}",
           "model.document_reading=sentences", "data.datasets=[babe,sdg_trail22]",
           "+data.train_caps.sdg_trail22=48", "+data.eval_caps.sdg_trail22=16",
           "data.max_chunks=16", "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=null"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    config = json.loads((run / "model/config.json").read_text())
    assert config["document_reading"] == "sentences"
    model = BiasCardModel.from_pretrained(run / "model")
    assert model.document_pool is not None
    r = subprocess.run([sys.executable, "-m", "biascard.eval", f"model={run / 'model'}", "systems=[model]",
                        "datasets=[sdg_trail22]", "max_examples=24", "report.sample_cards=0",
                        f"hydra.run.dir={tmp_path / 'eval'}"], env=env, capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert any(k.startswith("sdg_trail22/sdg") for k in json.dumps(metrics).split('"'))


def test_sentence_batches_run_in_length_groups_with_the_same_states(encoder, tokenizer):
    """A segmented batch runs the encoder in length groups: the vectors at real tokens are the
    single padded pass's, and gradients flow through the groups."""
    model = model_of(encoder, card_specs())
    recs = with_segments([{"text": ARTICLE}, {"text": BODY * 3}], model.head_specs)
    batch = encode(recs, tokenizer, model.head_specs, 48, 8, with_labels=False)
    assert batch["input_ids"].shape[0] > 8
    enc = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        one = model.encoder(**enc).last_hidden_state
        grouped = model._grouped(enc, group=4)
    real = batch["attention_mask"].bool()
    assert torch.allclose(one[real], grouped[real], atol=1e-5)
    out = model(**batch)
    out.logits["political_leaning"].sum().backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
