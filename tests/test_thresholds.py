"""Decision thresholds fit on validation data (biascard.train.thresholds) and used by eval."""
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from biascard.eval.tasks import Outputs, score
from biascard.model.heads import HeadSpec
from biascard.train.thresholds import (
    NEVER,
    fit_binary,
    fit_heads,
    fit_multilabel,
    fit_options,
    fit_target_precision,
)


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


# ------------------------------------------------------------------ target precision


def precision_data():
    """Label 0 ranks its positives on top (precision climbs with the threshold), label 1 is
    noise at a 20% base rate (never 80% precise), label 2 is perfect but has 4 positives."""
    rng = np.random.default_rng(1)
    n = 500
    gold = np.zeros((n, 3), dtype=int)
    gold[:100, 0] = 1
    gold[:, 1] = rng.random(n) < 0.2
    gold[:4, 2] = 1
    prob = np.empty((n, 3))
    prob[:, 0] = np.r_[np.linspace(0.3, 0.9, 100), np.linspace(0.05, 0.45, 400)]
    prob[:, 1] = rng.random(n)
    prob[:, 2] = np.where(gold[:, 2] == 1, 0.9, 0.1)
    return prob, gold


def test_target_precision_takes_the_lowest_threshold_that_reaches_it():
    prob, gold = precision_data()
    t, how, precision, support = fit_target_precision(prob, gold, target_precision=0.8, min_support=10)
    assert how == ["label", "never", "never"]  # 2: 4 listings are below min_support 10
    assert t[1] == t[2] == NEVER > 1 and precision[1:] == [None, None] and support[1:] == [0, 0]
    listed = prob[:, 0] >= t[0]
    assert gold[listed, 0].mean() >= 0.8 and listed.sum() == support[0] >= 10
    assert precision[0] == pytest.approx(gold[listed, 0].mean(), abs=1e-4)
    lower = prob[:, 0] >= round(t[0] - 0.01, 2)  # one grid step lower misses the target
    assert gold[lower, 0].mean() < 0.8
    # with a support the 4 perfect positives can meet, label 2 becomes listable
    t2, how2, _, _ = fit_target_precision(prob, gold, target_precision=0.8, min_support=4)
    assert how2[2] == "label" and 0.1 < t2[2] <= 0.9
    with pytest.raises(ValueError, match="target_precision"):
        fit_target_precision(prob, gold, target_precision=1.5)


def test_fit_heads_defaults_to_target_precision_and_records_the_fit():
    prob, gold = precision_data()
    spec = HeadSpec(name="sdg", type="multilabel", level="document", labels=["a", "b", "c"])
    e = fit_heads({"sdg": spec}, {"sdg": prob}, {"sdg": gold})["sdg"]
    fit = e["threshold_fit"]
    assert fit["mode"] == "target_precision" and fit["target_precision"] == 0.8 and fit["min_support"] == 10
    assert fit["how"] == ["label", "never", "never"] and fit["precision"][0] >= 0.8
    assert e["thresholds"][1] == NEVER and len(e["f1_thresholds"]) == 3
    # precision is bought with recall: the F1-optimal thresholds score at least as high on F1
    assert e["macro_f1_f1_optimal"] >= e["macro_f1_fitted"]
    # a never-listed label is never predicted by eval either (HeadSpec takes the > 1 threshold)
    stored = HeadSpec(name="sdg", type="multilabel", level="document", labels=["a", "b", "c"],
                      thresholds=e["thresholds"], threshold_fit=fit)
    out = Outputs(task="d/sdg", head="sdg", type="multilabel", labels=["a", "b", "c"], ids=[str(i) for i in range(500)],
                  dataset=["d"] * 500, outlet=[None] * 500, gold=gold, prob=prob, thresholds=stored.thresholds)
    assert out.pred[:, 1].sum() == 0 and score(out)["f1/b"] == 0.0
    # the F1-optimal mode stays available, as before
    f1 = fit_heads({"sdg": spec}, {"sdg": prob}, {"sdg": gold}, mode="f1")["sdg"]
    assert f1["threshold_fit"]["mode"] == "f1" and f1["thresholds"] == fit_multilabel(prob, gold)[0]
    assert "f1_thresholds" not in f1


def test_fit_options_and_bad_thresholds():
    assert fit_options(None) == {"types": ("multilabel",), "min_positives": 5, "mode": "target_precision",
                                 "target_precision": 0.8, "min_support": 10}
    assert fit_options({"mode": "f1", "target_precision": None, "types": []})["types"] == ()
    with pytest.raises(ValueError, match="thresholds.mode"):
        fit_options({"mode": "best"})
    for bad in ([1.0, 0.5], [0.0, 0.5], [float("inf"), 0.5]):
        with pytest.raises(ValueError, match="thresholds must lie"):
            HeadSpec(name="m", type="multilabel", labels=["a", "b"], thresholds=bad)
    with pytest.raises(ValueError, match="threshold_fit"):
        HeadSpec(name="m", type="multilabel", labels=["a", "b"], threshold_fit={"target_precision": 0.8})


def test_the_fit_is_written_to_the_model_dir(tmp_path):
    from biascard.model import model_dir
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    enc_dir = make_tiny_encoder(tmp_path / "enc")
    spec = HeadSpec(name="m", type="multilabel", labels=["a", "b", "c"])
    model_dir.save(BiasCardModel.from_encoder(enc_dir, {"m": spec}), load_tokenizer(enc_dir), tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())["heads"]["m"]
    assert "threshold_fit" not in saved  # unset: config.json as before
    prob, gold = precision_data()
    fitted = fit_heads({"m": spec}, {"m": prob}, {"m": gold})
    model_dir.write_thresholds(tmp_path / "model", fitted, {"heads": fitted})
    loaded, _ = model_dir.load(tmp_path / "model")
    assert loaded.head_specs["m"].thresholds == fitted["m"]["thresholds"]
    assert loaded.head_specs["m"].threshold_fit == fitted["m"]["threshold_fit"]
    assert model_dir.verify(tmp_path / "model")


def test_the_cli_takes_flags_over_the_runs_config_over_the_defaults(tmp_path, monkeypatch):
    import yaml

    from biascard.model import model_dir
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder
    from biascard.train import datasets, thresholds

    enc_dir = make_tiny_encoder(tmp_path / "enc")
    spec = HeadSpec(name="m", type="multilabel", labels=["a", "b"])
    model_dir.save(BiasCardModel.from_encoder(enc_dir, {"m": spec}), load_tokenizer(enc_dir), tmp_path / "model")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"thresholds": {"types": [], "mode": "f1", "min_positives": 3}}))
    model_dir.write_training_record(tmp_path / "model", {"datasets": ["d"], "run_dir": str(run)})
    seen = {}
    monkeypatch.setattr(datasets, "validation_records", lambda *a, **k: {})
    monkeypatch.setattr(thresholds, "fit_model_dir", lambda *a, **k: seen.update(k))
    assert thresholds.main(["--model", str(tmp_path / "model"), "--target-precision", "0.9"]) == 0
    assert {k: seen[k] for k in ("types", "mode", "target_precision", "min_support", "min_positives")} == {
        "types": ("multilabel",), "mode": "f1", "target_precision": 0.9, "min_support": 10, "min_positives": 3}


def test_never_is_a_multilabel_threshold_only():
    assert HeadSpec(name="m", type="multilabel", labels=["a"], thresholds=[NEVER]).thresholds == [NEVER]
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\), got"):
        HeadSpec(name="b", type="binary", thresholds=[NEVER])  # a binary head always decides


def test_eval_notes_say_how_the_thresholds_were_fit():
    # the release card lists a study's notes that the released reading lacks: an F1 fit must read differently
    from biascard.eval.runner import _fit_mode

    assert _fit_mode({"mode": "target_precision", "target_precision": 0.8}) == "; for precision 0.8"
    assert _fit_mode({"mode": "f1", "split": "validation"}) == "; for F1"
    assert _fit_mode(None) == ""
