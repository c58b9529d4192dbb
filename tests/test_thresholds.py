"""Decision thresholds fit on validation data (biascard.train.thresholds) and used by eval."""
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from biascard.eval.tasks import Outputs, score
from biascard.model.heads import HeadSpec
from biascard.train.thresholds import fit_binary, fit_heads, fit_multilabel


def test_multilabel_threshold_recovers_a_shifted_label():
    rng = np.random.default_rng(0)
    gold = (rng.random((400, 2)) < 0.2).astype(int)
    # label 0 is ranked perfectly but its probabilities sit at 0.1-0.3; label 1 is calibrated
    prob = np.where(gold == 1, 0.3, 0.1) + rng.uniform(-0.05, 0.05, gold.shape)
    prob[:, 1] = np.where(gold[:, 1] == 1, 0.8, 0.2)
    t, how = fit_multilabel(prob, gold, min_positives=5)
    assert how == ["label", "label"]
    assert 0.15 < t[0] <= 0.25  # between the two clusters of label 0
    assert f1_score(gold[:, 0], prob[:, 0] >= t[0]) == 1.0
    assert f1_score(gold[:, 0], prob[:, 0] >= 0.5, zero_division=0) == 0.0


def test_rare_labels_share_the_head_threshold():
    gold = np.zeros((100, 3), dtype=int)
    gold[:30, 0] = 1
    gold[:30, 1] = 1
    gold[50:52, 2] = 1  # 2 positives: below min_positives
    prob = np.where(gold == 1, 0.35, 0.05)
    t, how = fit_multilabel(prob, gold, min_positives=5)
    assert how == ["label", "label", "shared"]
    assert t[2] == pytest.approx(t[0]) or t[2] <= 0.35  # the shared one, fit over all labels


def test_binary_threshold_maximises_macro_f1():
    gold = np.array([0] * 80 + [1] * 20)
    prob = np.r_[np.linspace(0.0, 0.3, 80), np.linspace(0.35, 0.45, 20)]
    (t,) = fit_binary(prob, gold)
    assert 0.3 < t <= 0.35
    spec = HeadSpec(name="b", type="binary")
    fitted = fit_heads({"b": spec}, {"b": prob}, {"b": gold}, types=("binary",))
    assert fitted["b"]["macro_f1_fitted"] == 1.0 and fitted["b"]["macro_f1_at_0.5"] < 0.5
    with pytest.raises(ValueError, match="cannot be fit"):
        fit_heads({"b": spec}, {"b": prob}, {"b": gold}, types=("ordinal",))


def test_eval_decides_at_the_saved_thresholds():
    gold = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    prob = np.array([[0.3, 0.1], [0.1, 0.6], [0.2, 0.4], [0.35, 0.7]])
    base = dict(task="d/m", head="m", type="multilabel", labels=["a", "b"], ids=list("wxyz"),
                dataset=["d"] * 4, outlet=[None] * 4, gold=gold, prob=prob)
    at_half = score(Outputs(**base))
    fitted = Outputs(**base, thresholds=[0.25, 0.5])
    assert at_half["f1/a"] == 0.0 and score(fitted)["f1/a"] == 1.0
    # the numpy backend (bootstrap) decides the same way
    assert score(fitted, fast=True)["macro_f1"] == pytest.approx(score(fitted)["macro_f1"])
    # saved predictions carry the thresholds, so compare re-scores the same decision
    again = Outputs.from_rows("d/m", fitted.meta(), list(fitted.rows("model")))
    assert score(again)["macro_f1"] == score(fitted)["macro_f1"]
    with pytest.raises(ValueError, match="do not fit"):
        Outputs(**base, thresholds=[0.5])


def test_thresholds_are_written_to_the_model_dir(tmp_path):
    from biascard.model import model_dir
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    enc_dir = make_tiny_encoder(tmp_path / "enc")
    heads = {"m": HeadSpec(name="m", type="multilabel", labels=["a", "b", "c"]),
             "c": HeadSpec(name="c", type="multiclass", labels=["x", "y"])}
    model = BiasCardModel.from_encoder(enc_dir, heads)
    model_dir.save(model, load_tokenizer(enc_dir), tmp_path / "model")
    fitted = {"m": {"thresholds": [0.2, 0.3, 0.4]}}
    model_dir.write_thresholds(tmp_path / "model", fitted, {"split": "validation", "heads": fitted})
    loaded, _ = model_dir.load(tmp_path / "model")
    assert loaded.head_specs["m"].thresholds == [0.2, 0.3, 0.4]
    assert loaded.head_specs["c"].thresholds is None
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["heads"]["m"]["thresholds"] == [0.2, 0.3, 0.4]
    record = json.loads((tmp_path / "model" / "thresholds.json").read_text())
    assert record == {"split": "validation", "heads": fitted}
    assert model_dir.verify(tmp_path / "model")  # the checksums cover both files
