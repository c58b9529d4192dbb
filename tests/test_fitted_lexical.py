"""A head's fitted lexical model (`biascard.model.fitted_lexical`, `biascard train fuse`): the
TF-IDF+LR baseline's features over a fixed n-gram vocabulary, a logistic regression on them,
mixed into the head's logits at a weight chosen on validation. Tiny random encoders only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import TfidfTransformer
from test_lexical_branch import encoder, tokenizer  # noqa: F401 (fixtures)

from biascard.model import model_dir
from biascard.model.features import encode
from biascard.model.fitted_lexical import FittedLexical
from biascard.model.heads import HeadSpec
from biascard.model.lexical import lexical_inputs, text_hashes
from biascard.model.modeling import BiasCardModel
from biascard.train import fuse

TRAIN = ["The senator slammed the radical plan.", "The plan passed the senate on Tuesday.",
         "Radical radical radical voices, the crowd said.", "Budget talks resume in the senate."]
TEST = ["The radical senator and the radical plan.", "Nothing here matches", "", "the the the budget"]


def hashed(texts: list[str]) -> list[list[int]]:
    return [text_hashes(t) for t in texts]


def fitted_module(size: int, out: int, seed: int = 0) -> FittedLexical:
    vocab, idf = fuse.vocabulary(hashed(TRAIN), size)
    module = FittedLexical(len(vocab), out)
    g = torch.Generator().manual_seed(seed)
    module.set(vocab, idf, torch.randn(out, len(vocab), generator=g) * 3, torch.randn(out, generator=g))
    return module


def test_features_are_sklearns_tfidf_of_the_vocabulary_columns():
    module = fitted_module(12, 2)
    column = {int(h): j for j, h in enumerate(module.vocab)}

    def counts(texts):
        rows = np.zeros((len(texts), len(column)))
        for i, t in enumerate(texts):
            for h in text_hashes(t):
                if h in column:
                    rows[i, column[h]] += 1
        return sp.csr_matrix(rows)

    ref = TfidfTransformer(sublinear_tf=True).fit(counts(TRAIN))
    np.testing.assert_allclose(module.idf.numpy(), ref.idf_, rtol=1e-6)
    got = fuse.design(module, hashed(TEST)).toarray()
    np.testing.assert_allclose(got, ref.transform(counts(TEST)).toarray(), atol=1e-6)
    assert not got[1].any() and not got[2].any()  # no vocabulary n-gram: an empty row, no division by 0


def test_vocabulary_keeps_the_ngrams_in_most_texts():
    vocab, idf = fuse.vocabulary(hashed(["a b", "a c", "a d", "b"]), 2)
    assert sorted(vocab.tolist()) == vocab.tolist() == sorted([text_hashes("a")[0], text_hashes("b")[0]])
    assert idf.tolist() == pytest.approx([np.log(5 / (1 + {text_hashes("a")[0]: 3}.get(int(h), 2))) + 1 for h in vocab])


def test_logits_are_the_linear_model_and_an_empty_text_its_intercept():
    module = fitted_module(20, 3)
    out = fuse.fitted_logits(module, TEST)
    x = fuse.design(module, hashed(TEST)).toarray()
    np.testing.assert_allclose(out, x @ module.coef.numpy().T + module.intercept.numpy(), atol=1e-5)
    np.testing.assert_allclose(out[2], module.intercept.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="strictly increasing"):
        module.set(module.vocab.flip(0), module.idf, module.coef, module.intercept)


def test_option_is_checked_and_absent_from_older_configs():
    spec = HeadSpec("a", "multilabel", labels=["p", "q"], fitted={"features": 7, "weight": 0.4, "C": 1.0})
    assert HeadSpec.from_dict("a", spec.to_dict()) == spec and spec.fitted["weight"] == 0.4
    assert "fitted" not in HeadSpec("a", "binary").to_dict()
    for bad, match in (({"features": 7, "weight": 1.5}, r"fitted\.weight"), ({"weight": 0.5}, "fitted must be a mapping"),
                       ({"features": 0, "weight": 0.5}, r"fitted\.features")):
        with pytest.raises(ValueError, match=f"head 'a': {match}"):
            HeadSpec("a", "binary", fitted=bad)
    with pytest.raises(ValueError, match="head 't': fitted is for"):
        HeadSpec("t", "ordinal", fitted={"features": 7, "weight": 0.5})


def specs(weight: float | None) -> dict[str, HeadSpec]:
    fit = (lambda n: {"features": n, "weight": weight}) if weight is not None else (lambda n: None)
    return {"mc": HeadSpec("mc", "multiclass", labels=["x", "y", "z"], fitted=fit(20)),
            "ml": HeadSpec("ml", "multilabel", labels=["p", "q"], fitted=fit(20)),
            "b": HeadSpec("b", "binary", fitted=fit(20)),
            "plain": HeadSpec("plain", "binary")}


def fused_pair(encoder):  # noqa: F811
    torch.manual_seed(0)
    plain = BiasCardModel.from_encoder(encoder, specs(None), max_length=32, stride=8).eval()
    mixed = BiasCardModel.from_encoder(encoder, specs(0.3), max_length=32, stride=8).eval()
    missing, unexpected = mixed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("fitted.") for k in missing)
    for i, (name, out) in enumerate((("mc", 3), ("ml", 2), ("b", 1))):
        mixed.fitted[name].load_state_dict(fitted_module(20, out, seed=i).state_dict())
    return plain, mixed


def test_a_head_mixes_its_fitted_logits_and_the_others_are_unchanged(encoder, tokenizer):  # noqa: F811
    plain, mixed = fused_pair(encoder)
    batch = encode([{"text": t} for t in TEST], tokenizer, mixed.head_specs, 32, 8, with_labels=False)
    assert "lexical_ids" in batch  # a fitted head reads the n-gram bag like a branch does
    with torch.no_grad():
        a, b = plain(**batch).logits, mixed(**batch).logits
        for name in ("mc", "ml", "b"):
            fit = mixed.fitted[name](batch["lexical_ids"], batch["lexical_offsets"]).reshape(a[name].shape)
            assert torch.allclose(b[name], 0.7 * a[name] + 0.3 * fit, atol=1e-5), name
            assert not torch.allclose(b[name], a[name])
        assert torch.equal(a["plain"], b["plain"])
    without = {k: v for k, v in batch.items() if not k.startswith("lexical_")}
    with pytest.raises(ValueError, match="fitted lexical model: pass lexical_ids"):
        mixed(**without)


def test_save_and_fp16_export_keep_the_vocabulary_exact(encoder, tokenizer, tmp_path):  # noqa: F811
    _, mixed = fused_pair(encoder)
    batch = encode([{"text": t} for t in TEST], tokenizer, mixed.head_specs, 32, 8, with_labels=False)
    with torch.no_grad():
        before = mixed(**batch).logits
    model_dir.save(mixed, tokenizer, tmp_path / "m")
    model_dir.save_fp16(tmp_path / "m", tmp_path / "half")
    for name, tol in (("m", 1e-6), ("half", 0.05)):
        loaded, _ = model_dir.load(tmp_path / name)
        assert loaded.fitted["mc"].vocab.dtype == torch.long
        assert torch.equal(loaded.fitted["mc"].vocab, mixed.fitted["mc"].vocab)  # 63-bit hashes, not rounded
        with torch.no_grad():
            after = loaded(**batch).logits
        for head in before:
            assert torch.allclose(after[head], before[head], atol=tol * (1 + before[head].abs().max().item())), head


def test_kept_coefficients_are_each_outputs_largest_and_the_rest_count_zero(encoder, tokenizer, tmp_path):  # noqa: F811
    dense = fitted_module(20, 3)
    coef = dense.coef.clone()
    pruned = FittedLexical(20, 3, keep=4)
    pruned.set(dense.vocab, dense.idf, coef, dense.intercept)
    assert pruned.coef.shape == (3, 4) and pruned.coef_index.dtype == torch.int32
    top = coef.abs().argsort(dim=1, descending=True)[:, :4]
    assert torch.equal(pruned.coef_index.long(), top.sort(dim=1).values)
    expected = torch.zeros_like(coef).scatter_(1, top, coef.gather(1, top))
    assert torch.equal(pruned.dense_coef(), expected)
    x = fuse.design(dense, hashed(TEST)).toarray()
    np.testing.assert_allclose(fuse.fitted_logits(pruned, TEST), x @ expected.numpy().T + dense.intercept.numpy(),
                               atol=1e-5)
    # a model whose config keeps 4 saves and loads the pruned buffers, in fp16 too
    spec = {"m": HeadSpec("m", "multiclass", labels=["x", "y", "z"], fitted={"features": 20, "weight": 1.0, "keep": 4})}
    model = BiasCardModel.from_encoder(encoder, spec, max_length=32, stride=8).eval()
    model.fitted["m"].load_state_dict(pruned.state_dict())
    model_dir.save(model, tokenizer, tmp_path / "m")
    model_dir.save_fp16(tmp_path / "m", tmp_path / "half")
    for name in ("m", "half"):
        loaded = model_dir.load(tmp_path / name)[0].fitted["m"]
        assert torch.equal(loaded.coef_index, pruned.coef_index) and loaded.keep == 4
        assert torch.allclose(loaded.dense_coef(), expected, atol=0.01 * expected.abs().max().item())
    with pytest.raises(ValueError, match=r"head 'm': fitted\.keep"):
        HeadSpec("m", "binary", fitted={"features": 20, "weight": 0.5, "keep": 21})


def test_choose_weight_takes_the_fitted_model_only_where_validation_gains():
    spec = HeadSpec("mc", "multiclass", labels=["x", "y", "z"])
    gold = np.array([0, 1, 2, 0, 1, 2])
    weak = np.eye(3)[[0, 0, 0, 0, 0, 0]] * 0.1  # the model alone is right on 2 of 6
    right = np.eye(3)[gold] * 5.0
    weight, curve = fuse.choose_weight(spec, [(weak, right, gold)])
    assert 0 < weight <= 1 and curve[0] < max(curve) == pytest.approx(1.0)
    weight, curve = fuse.choose_weight(spec, [(right, -right, gold)])
    assert weight == 0.0 and curve[0] == max(curve)  # a fitted model that only hurts is left out


def test_parse_heads_and_write_refuse_bad_input(encoder, tokenizer, tmp_path):  # noqa: F811
    assert fuse.parse_heads(["topic", "sdg=800", "mc=900/40"], 5000) == {"topic": (5000, None), "sdg": (800, None),
                                                                         "mc": (900, 40)}
    for bad in ("sdg=many", "sdg=800/some", "sdg=800/0"):
        with pytest.raises(ValueError, match=f"'{bad}'"):
            fuse.parse_heads([bad], 5000)
    plain, mixed = fused_pair(encoder)
    model_dir.save(plain, tokenizer, tmp_path / "src")
    with pytest.raises(ValueError, match="is the source model dir"):
        fuse._write(plain, tmp_path / "src", tmp_path / "src",
                    {"mc": (mixed.fitted["mc"], {"features": 20, "weight": 0.3})})


def test_fuse_cli_on_a_smoke_model(smoke_inputs, tmp_path):
    """debug=smoke on BABE, then `biascard train fuse --heads topic=300/20 language_bias`: a new model dir whose topic
    head carries a fitted model at the weight validation chose (or none at 0), the rest unchanged,
    fuse.json with the curve, and thresholds refit."""
    run, out = tmp_path / "run", tmp_path / "fused"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "biascard.train", "debug=smoke", "logger=none", f"hydra.run.dir={run}",
           "data.datasets=[babe]", "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=null"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    cmd = [sys.executable, "-m", "biascard.train", "fuse", "--model", str(run / "model"), "--out", str(out),
           "--heads", "topic=300/20", "language_bias"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    record = json.loads((out / "fuse.json").read_text())
    config = json.loads((out / "config.json").read_text())
    for head in ("topic", "language_bias"):
        entry = record["heads"][head]
        assert len(entry["curve"]) == 11 and entry["datasets"] == ["babe"] and entry["train_texts"] > 100
        assert config["heads"][head].get("fitted", {}).get("weight", 0.0) == entry["weight"]
    assert record["heads"]["topic"]["features"] == 300 and record["heads"]["topic"]["keep"] == 20
    assert "keep" not in record["heads"]["language_bias"]
    if record["heads"]["topic"]["weight"] > 0:  # pruned as recorded: 20 coefficients per topic
        assert config["heads"]["topic"]["fitted"]["keep"] == 20
        assert model_dir.load(out)[0].fitted["topic"].coef_index.shape[1] == 20
    assert model_dir.verify(out) and model_dir.verify(run / "model")
    assert "fitted" not in json.loads((run / "model/config.json").read_text())["heads"]["topic"]
    for name in ("tokenizer.json", "tokenizer_config.json", "training.json"):  # copied as they were
        assert (out / name).read_bytes() == (run / "model" / name).read_bytes(), name
    assert json.loads((out / "thresholds.json").read_text())["heads"]["topic"]["n"] > 0
    r = subprocess.run(cmd[:-3] + ["--heads", "biased_words"], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "biased_words" in r.stderr and "not binary, multiclass or multilabel" in r.stderr
