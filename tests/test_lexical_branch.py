"""The lexical branch of a head (issue 18): hashed word uni+bigrams of the whole text in an
EmbeddingBag whose logits add to the head's. Tiny random encoders only; no real training."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from biascard.model.features import encode
from biascard.model.heads import LEXICAL_DEFAULTS, HeadSpec, load_heads
from biascard.model.lexical import lexical_inputs, ngrams, parameter_count, text_hashes
from biascard.model.modeling import BiasCardModel, load_tokenizer
from biascard.model.tiny import make_tiny_encoder

TEXT = "Don't PANIC, the Budget-cuts: 42 schools."
# blake2b-64 of each n-gram, top bit cleared: fixed forever, or saved bags read the wrong rows
HASHES = [5388320012060331340, 1970994227396284192, 3331141520948189790, 6978948472449792528,
          6272446323205200387, 8820412187630416983, 8041787508997676194, 7315180959391114055,
          4497351519689853055, 2968924627853667955, 1975304382647376909, 498485562947283436,
          5460754537400783541]
FILLER = "The council met on Tuesday and talked about the budget for the coming year. " * 4
LEX = {"buckets": 4096, "dim": 8}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.getbasetemp() / "lexical-enc", seed=0)


@pytest.fixture(scope="module")
def tokenizer(encoder):
    return load_tokenizer(encoder)


def every_type(lexical=LEX) -> dict[str, HeadSpec]:
    return {
        "b": HeadSpec("b", "binary", lexical=lexical),
        "mc": HeadSpec("mc", "multiclass", labels=["x", "y", "z"], lexical=lexical),
        "ml": HeadSpec("ml", "multilabel", labels=["p", "q"], lexical=lexical),
        "o": HeadSpec("o", "ordinal", lexical=lexical),
        "r": HeadSpec("r", "regression", lexical=lexical),
        "plain": HeadSpec("plain", "binary"),
        "tok": HeadSpec("tok", "token"),
    }


def randomized(model: BiasCardModel, seed: int = 0) -> BiasCardModel:
    """A fresh branch adds zero (fastText's init); give its output layer weights to see it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in model.lexical.values():
            branch.weight.copy_(torch.randn(branch.weight.shape, generator=g) * 20)
    return model.eval()


def test_ngrams_and_hashes_are_fixed_and_stable_across_processes():
    assert ngrams(TEXT) == ["don't", "panic", "the", "budget", "cuts", "42", "schools", "don't panic",
                            "panic the", "the budget", "budget cuts", "cuts 42", "42 schools"]
    assert text_hashes(TEXT) == HASHES
    code = f"from biascard.model.lexical import text_hashes; print(text_hashes({TEXT!r}))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own str hash changes with this
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == HASHES
    batch = lexical_inputs([TEXT, "", "42 schools"])
    assert batch["lexical_offsets"].tolist() == [0, 13, 13]
    assert batch["lexical_ids"].tolist() == HASHES + [HASHES[5], HASHES[6], HASHES[12]]


def test_head_option_defaults_checks_and_refuses_token_heads():
    assert HeadSpec("a", "binary", lexical=True).lexical == LEXICAL_DEFAULTS == {"buckets": 2**17, "dim": 16}
    assert HeadSpec("a", "binary", lexical={"dim": 8}).lexical == {"buckets": 2**17, "dim": 8}
    assert HeadSpec("a", "binary", lexical=False).lexical is None
    assert "lexical" not in HeadSpec("a", "binary").to_dict()  # older config.json files unchanged
    spec = HeadSpec("a", "multiclass", labels=["x", "y"], lexical=LEX)
    assert HeadSpec.from_dict("a", spec.to_dict()) == spec
    with pytest.raises(ValueError, match="head 'w'.*lexical is for sequence heads"):
        HeadSpec("w", "token", lexical=True)
    for bad in ({"buckets": 0}, {"buckets": 2.5}, {"size": 3}, "yes"):
        with pytest.raises(ValueError, match="lexical"):
            HeadSpec("a", "binary", lexical=bad)
    # 2**17 x 16 plus the output layer: 4.2 MB in fp16
    assert parameter_count(2**17, 16, 3) == 2_097_152 + 51


def test_hydra_override_switches_one_head_on():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+heads.political_leaning.lexical.buckets=131072",
                                                      "+heads.topic.lexical=true"])
        heads = load_heads(cfg.heads)
        assert heads["political_leaning"].lexical == {"buckets": 131072, "dim": 16}
        assert heads["topic"].lexical == LEXICAL_DEFAULTS
        assert all(h.lexical is None for n, h in heads.items() if n not in ("political_leaning", "topic"))
        bad = compose(config_name="train", overrides=["+heads.biased_words.lexical=true"])
    with pytest.raises(ValueError, match="biased_words.*sequence heads"):
        load_heads(bad.heads)


def test_encode_adds_whole_text_bags_only_for_lexical_models(tokenizer):
    records = [{"text": FILLER + "zorblax"}, {"text": "short"}]
    plain = encode(records, tokenizer, {"plain": HeadSpec("plain", "binary")}, 32, 8, with_labels=False)
    assert not any(k.startswith("lexical") for k in plain)
    batch = encode(records, tokenizer, every_type(), 32, 8, with_labels=False, max_chunks=1)
    assert batch["doc_index"].tolist() == [0, 1]  # the encoder reads one chunk of each...
    first = text_hashes(records[0]["text"])  # ...the bag every word of the record
    assert batch["lexical_ids"].tolist() == first + text_hashes("short")
    assert batch["lexical_offsets"].tolist() == [0, len(first)]


def test_logits_are_the_head_plus_the_lexical_branch(encoder, tokenizer):
    model = randomized(BiasCardModel.from_encoder(encoder, every_type(), max_length=32, stride=8))
    batch = encode([{"text": FILLER}, {"text": "A rigged, shameful vote."}, {"text": ""}], tokenizer,
                   model.head_specs, 32, 8, with_labels=False)
    with torch.no_grad():
        out = model(**batch, return_embeddings=True)
        for name, spec in model.head_specs.items():
            if spec.is_token:
                continue
            head = model.heads[name](out.embeddings)
            if name in model.lexical:
                head = head + model.lexical[name](batch["lexical_ids"], batch["lexical_offsets"])
            want = head.squeeze(-1) if spec.type in ("binary", "regression") else head
            torch.testing.assert_close(out.logits[name], want, rtol=0, atol=1e-6)
    assert set(model.lexical) == {"b", "mc", "ml", "o", "r"}


def test_branch_reads_words_past_the_encoders_chunks(encoder, tokenizer):
    model = randomized(BiasCardModel.from_encoder(encoder, every_type(), max_length=32, stride=8))
    records = [{"text": FILLER + "zorblax"}, {"text": FILLER + "quintar"}]
    batch = encode(records, tokenizer, model.head_specs, 32, 8, with_labels=False, max_chunks=1)
    assert torch.equal(batch["input_ids"][0], batch["input_ids"][1])  # the word is past the first chunk
    with torch.no_grad():
        logits = model(**batch).logits
    # the transformer cannot tell them apart (to the last bits: BLAS may take another kernel
    # for one row of a batch), the branches can, by far more
    assert torch.allclose(logits["plain"][0], logits["plain"][1], rtol=0, atol=1e-6)
    for name in model.lexical:
        assert not torch.allclose(logits[name][0], logits[name][1], rtol=0, atol=1e-3), name


def test_fresh_branch_adds_nothing_and_missing_inputs_are_named(encoder, tokenizer):
    heads = {"b": HeadSpec("b", "binary", lexical=LEX)}
    model = BiasCardModel.from_encoder(encoder, heads, max_length=32, stride=8).eval()
    assert model.lexical["b"].weight.abs().sum() == 0  # zero output layer: starts as the transformer
    batch = encode([{"text": "One text."}], tokenizer, heads, 32, 8, with_labels=False)
    with torch.no_grad():
        with_bag = model(**batch).logits["b"]
        ids, offsets = batch.pop("lexical_ids"), batch.pop("lexical_offsets")
        with pytest.raises(ValueError, match=r"\['b'\] have a lexical branch.*features.encode"):
            model(**batch)
        with pytest.raises(ValueError, match="lexical_offsets has 2 records"):
            model(**batch, lexical_ids=ids, lexical_offsets=torch.cat([offsets, offsets]))
        assert torch.equal(with_bag, model.heads["b"](model(**batch, return_embeddings=True, lexical_ids=ids,
                                                             lexical_offsets=offsets).embeddings).squeeze(-1))


def test_save_load_round_trip_gives_identical_logits(encoder, tokenizer, tmp_path):
    from safetensors import safe_open

    from biascard.model import model_dir

    model = randomized(BiasCardModel.from_encoder(encoder, every_type(), max_length=32, stride=8))
    records = [{"text": FILLER + "zorblax"}, {"text": "A rigged, shameful vote."}]
    batch = encode(records, tokenizer, model.head_specs, 32, 8, with_labels=False)
    with torch.no_grad():
        before = model(**batch).logits
    model_dir.save(model, tokenizer, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["heads"]["mc"]["lexical"] == LEX and "lexical" not in config["heads"]["plain"]
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert {"lexical.mc.bag.weight", "lexical.mc.weight", "lexical.mc.bias"} <= set(f.keys())
    loaded, tok = model_dir.load(tmp_path / "m")
    assert model_dir.verify(tmp_path / "m")
    batch2 = encode(records, tok, loaded.head_specs, 32, 8, with_labels=False)
    with torch.no_grad():
        after = loaded(**batch2).logits
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_param_groups_give_the_branch_its_lr_and_no_decay_on_the_bag(encoder):
    from biascard.train.optimization import param_groups

    plain = BiasCardModel.from_encoder(encoder, {"p": HeadSpec("p", "binary"), "b": HeadSpec("b", "binary")},
                                       max_length=32, stride=8)
    heads = {"p": HeadSpec("p", "binary"), "b": HeadSpec("b", "binary", lexical=LEX)}
    model = BiasCardModel.from_encoder(encoder, heads, max_length=32, stride=8)
    assert not [n for n, _ in plain.named_parameters() if n.startswith("lexical")]
    tr = OmegaConf.create({"lr": 1e-4, "head_lr": 1e-3, "weight_decay": 0.01, "lexical_lr_scale": 10})
    groups = param_groups(model, tr)
    # the groups of the same model without the branch come first, as they were (resumed optimizers)
    before = param_groups(plain, tr)
    assert [(len(g["params"]), g["lr"], g["weight_decay"]) for g in groups[:len(before)]] == [
        (len(g["params"]), g["lr"], g["weight_decay"]) for g in before]
    assert len(groups) == len(before) + 2
    by_id = {id(p): g for g in groups for p in g["params"]}
    branch = model.lexical["b"]
    assert by_id[id(branch.bag.weight)]["weight_decay"] == 0.0 and by_id[id(branch.bias)]["weight_decay"] == 0.0
    assert by_id[id(branch.weight)]["weight_decay"] == 0.01
    assert [by_id[id(p)]["lr"] for p in branch.parameters()] == pytest.approx([1e-2] * 3)
    assert param_groups(model, OmegaConf.create({**tr, "lexical_lr_scale": None}))[-1]["lr"] == 1e-3


def _train(model, tokenizer, records, steps: int) -> list[float]:
    from biascard.train.optimization import param_groups

    # a keyword is 1/30 of the bag's mean here: the branch wants a far larger lr than the encoder
    tr = OmegaConf.create({"lr": 1e-3, "head_lr": 1e-3, "weight_decay": 0.01, "lexical_lr_scale": 200})
    opt = torch.optim.AdamW(param_groups(model, tr), lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        batch = encode(records, tokenizer, model.head_specs, 32, 8, max_chunks=1)
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_a_few_steps_learn_a_keyword_the_encoder_never_sees(encoder, tokenizer):
    # the label is one word past the first chunk, the only chunk the encoder reads
    filler = "The council met on Tuesday and talked about the budget for the coming year. " * 2
    records = [{"text": filler + ("zorblax" if i % 2 else "quintar"), "labels": {"b": i % 2}} for i in range(8)]
    ids = encode(records, tokenizer, {"b": HeadSpec("b", "binary")}, 32, 8, with_labels=False,
                 max_chunks=1)["input_ids"]
    assert all(torch.equal(row, ids[0]) for row in ids)  # alone, the encoder stays at chance
    torch.manual_seed(0)
    model = BiasCardModel.from_encoder(encoder, {"b": HeadSpec("b", "binary", lexical=LEX)}, max_length=32,
                                       stride=8)
    losses = _train(model, tokenizer, records, 20)  # encoder, head and branch together
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_composer_cards_with_lexical_heads(encoder, tokenizer, precision):
    from test_serve_support import ARTICLE, HEADS

    from biascard.card.contract import validate
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer

    lex = {"language_bias", "political_leaning", "card_language_bias", "topic"}
    specs = {n: HeadSpec(n, t, lvl, labels, lexical=LEX if n in lex else None) for n, (t, lvl, labels) in HEADS.items()}
    model = randomized(BiasCardModel.from_encoder(encoder, specs, max_length=64, stride=16))
    composer = Composer(model, tokenizer, {"runtime": {"precision": precision}})
    (card,) = composer.compose([Article(text=ARTICLE + " " + FILLER * 3, id="a")])
    validate(card)
