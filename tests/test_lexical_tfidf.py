"""The lexical branch's tf-idf weighting (`lexical.weighting: tfidf`): the weights are the
TF-IDF+LR baseline's features (sklearn, sublinear tf, smooth idf, L2), the idf is fit on the
train texts by the train loop and saved with the weights. Tiny random encoders only."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import TfidfTransformer
from test_lexical_branch import encoder, randomized, tokenizer  # noqa: F401 (fixtures)

from biascard.model import model_dir
from biascard.model.features import encode
from biascard.model.heads import HeadSpec
from biascard.model.lexical import LexicalBranch, fit_idf, lexical_inputs, record_index, text_hashes
from biascard.model.modeling import BiasCardModel

BUCKETS = 512
TRAIN = ["The senator slammed the radical plan.", "The plan passed the senate on Tuesday.",
         "Radical radical radical voices, the crowd said.", "Budget talks resume in the senate."]
TEST = ["The radical senator and the radical plan.", "Nothing here matches", "", "the the the budget"]
TFIDF = {"buckets": BUCKETS, "dim": 4, "weighting": "tfidf"}


def counts(texts):
    rows = [np.bincount(np.array(text_hashes(t), dtype=np.int64) % BUCKETS, minlength=BUCKETS) for t in texts]
    return sp.csr_matrix(np.stack(rows).astype(float))


def dense_weights(branch, texts):
    """[N, buckets] of the weights the branch's bags read."""
    inputs = lexical_inputs(texts)
    bucket, starts, w = branch._tfidf(inputs["lexical_ids"] % branch.buckets, inputs["lexical_offsets"])
    out = torch.zeros(len(texts), branch.buckets, dtype=torch.float64)
    out[record_index(starts, bucket.shape[0]), bucket] = w.double()
    return out.numpy()


def test_weights_are_sklearns_tfidf_of_the_same_hashed_counts():
    branch = LexicalBranch(BUCKETS, 4, 3, "tfidf")
    branch.fit_idf(TRAIN)
    ref = TfidfTransformer(sublinear_tf=True).fit(counts(TRAIN))
    np.testing.assert_allclose(branch.idf.numpy(), ref.idf_, rtol=1e-6)
    np.testing.assert_allclose(dense_weights(branch, TEST), ref.transform(counts(TEST)).toarray(), atol=1e-6)


def test_an_empty_text_reads_only_the_bias_and_mean_stays_the_default():
    branch = LexicalBranch(BUCKETS, 4, 3, "tfidf")
    with torch.no_grad():
        branch.weight.normal_()
        branch.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    out = branch(**{k.removeprefix("lexical_"): v for k, v in lexical_inputs(TEST).items()})
    assert out.shape == (4, 3) and torch.equal(out[2], branch.bias.detach())
    plain = LexicalBranch(BUCKETS, 4, 3)
    assert plain.bag.mode == "mean" and "idf" not in dict(plain.named_buffers())


def test_option_is_checked_and_absent_from_older_configs():
    assert HeadSpec("a", "binary", lexical=TFIDF).lexical == TFIDF
    assert "weighting" not in HeadSpec("a", "binary", lexical=True).to_dict()["lexical"]
    with pytest.raises(ValueError, match=r"head 'a': lexical\.weighting"):
        HeadSpec("a", "binary", lexical={"weighting": "bm25"})


def test_fit_idf_names_a_head_no_train_record_labels():
    branches = torch.nn.ModuleDict({"leaning": LexicalBranch(BUCKETS, 4, 3, "tfidf"),
                                    "old": LexicalBranch(BUCKETS, 4, 2)})
    assert fit_idf(branches, {"leaning": TRAIN}) == {"leaning": len(TRAIN)}
    with pytest.raises(ValueError, match="'leaning'.*no train record labels it"):
        fit_idf(branches, {"old": TRAIN})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_save_load_keeps_the_idf_and_casts_run(encoder, tokenizer, tmp_path, dtype):  # noqa: F811
    specs = {"mc": HeadSpec("mc", "multiclass", labels=["x", "y", "z"], lexical=TFIDF), "b": HeadSpec("b", "binary")}
    model = randomized(BiasCardModel.from_encoder(encoder, specs, max_length=32, stride=8))
    fit_idf(model.lexical, {"mc": TRAIN})
    batch = encode([{"text": t} for t in TEST], tokenizer, model.head_specs, 32, 8, with_labels=False)
    with torch.no_grad():
        before = model(**batch).logits["mc"]
    model_dir.save(model, tokenizer, tmp_path / "m")
    assert json.loads((tmp_path / "m/config.json").read_text())["heads"]["mc"]["lexical"] == TFIDF
    loaded, _ = model_dir.load(tmp_path / "m")
    assert torch.equal(loaded.lexical["mc"].idf, model.lexical["mc"].idf) and loaded.lexical["mc"].idf.max() > 1
    with torch.no_grad():
        after = loaded.to(dtype)(**batch).logits["mc"]
    tol = 1e-6 if dtype == torch.float32 else 0.1 * before.abs().max().item()
    assert after.dtype == dtype and torch.allclose(after.float(), before, atol=tol)


def test_training_fits_the_idf_on_the_heads_train_texts(smoke_inputs, tmp_path):
    """debug=smoke on BABE with a tf-idf branch on language_bias: the loop fits the idf on the
    train records that label the head and the saved model carries it."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "biascard.train", "debug=smoke", "logger=none", f"hydra.run.dir={run}",
           "data.datasets=[babe]", "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=null",
           "+heads.language_bias.lexical={buckets:4096,dim:4,weighting:tfidf}"]
    r = subprocess.run(cmd, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    n = int(re.search(r"lexical idf fit on train texts: language_bias (\d+)", r.stdout + r.stderr).group(1))
    assert n > 0
    idf = BiasCardModel.from_pretrained(run / "model").lexical["language_bias"].idf
    # an unseen bucket's idf is ln(1 + n) + 1, a bucket in every text's 1
    assert idf.max().item() == pytest.approx(math.log(1 + n) + 1, rel=1e-5) and idf.min() >= 1.0
    assert (idf < idf.max()).sum() > 100
