"""Baselines on real data (LOGIC's official split, GVFC, BABE's k-fold protocol)."""
from collections import Counter

import numpy as np
import pytest

from biascard.eval.baselines import label_set, labeled, run_baselines
from biascard.eval.tasks import score, score_with_ci


@pytest.fixture(scope="module")
def logic(cache_dir, shared_dir):
    from biascard.data.prepare import prepare

    return prepare("logic")


def test_majority_baseline_scores_the_majority_share(logic):
    train, test = logic["train"].to_list(), logic["test"].to_list()
    outs = run_baselines("logic/fallacy", "fallacy", "multiclass", train, test, systems=("majority",))
    o = outs["majority"]
    train_counts = Counter(r["labels"]["fallacy"] for r in labeled(train, "fallacy"))
    top = train_counts.most_common(1)[0][0]
    gold = [r["labels"]["fallacy"] for r in labeled(test, "fallacy")]
    assert len(o) == len(gold) == 300  # the official LOGIC test set
    assert o.labels[o.pred[0]] == top and len(set(o.pred.tolist())) == 1
    res = score(o)
    assert res["accuracy"] == pytest.approx(gold.count(top) / len(gold))
    # macro-F1 of a constant prediction: only the majority class has a non-zero F1
    share = gold.count(top) / len(gold)
    assert res["macro_f1"] == pytest.approx(2 * share / (1 + share) / len(o.labels))


def test_binary_majority_probability_is_the_train_share(logic):
    train, test = logic["train"].to_list(), logic["test"].to_list()
    o = run_baselines("logic/false_dilemma", "false_dilemma", "binary", train, test, systems=("majority",))["majority"]
    y = [r["labels"]["false_dilemma"] for r in labeled(train, "false_dilemma")]
    assert np.allclose(o.prob, np.mean(y))
    assert score(o)["roc_auc"] == pytest.approx(0.5)


def test_tfidf_lr_beats_majority_on_logic(logic):
    train, val, test = (logic[s].to_list() for s in ("train", "validation", "test"))
    outs = run_baselines("logic/fallacy", "fallacy", "multiclass", train, test, validation=val, c_grid=(1.0, 10.0))
    maj = score_with_ci(outs["majority"], n_boot=200, seed=0)["macro_f1"]
    lr = score_with_ci(outs["tfidf_lr"], n_boot=200, seed=0)["macro_f1"]
    assert lr["lo"] > maj["hi"] + 0.2
    assert outs["tfidf_lr"].info["C"] in (1.0, 10.0) and "validation" in outs["tfidf_lr"].info["how"]
    # the same examples, in the same order, for every system
    assert outs["majority"].ids == outs["tfidf_lr"].ids == [r["id"] for r in labeled(test, "fallacy")]


def test_label_set_and_bad_values_are_named():
    recs = [{"id": "a", "labels": {"h": "x"}}, {"id": "b", "labels": {"h": "10"}}, {"id": "c", "labels": {"h": "2"}}]
    # numbers in numeric order, then names
    assert label_set("multiclass", recs, head="h") == ["2", "10", "x"]
    from biascard.eval.baselines import encode_gold

    with pytest.raises(ValueError, match="record b"):
        encode_gold(recs, "h", "multiclass", ["2", "x"])


def test_baselines_under_k_fold_cv(cache_dir, shared_dir, tmp_path):
    """The k-fold protocol runs for the baselines (GVFC: small, its adapter's own folds)."""
    from biascard.eval.cv import run_cv

    c = {
        "cv": {"folds": 3, "dataset": "gvfc", "heads": None, "seed": None, "train_model": False, "refit_baselines": True},
        "systems": ["majority", "tfidf_lr"],
        "baselines": {"c_grid": [1.0], "multilabel_c": 1.0},
        "bootstrap": {"n_boot": 50, "seed": 0, "ci": 0.95},
        "ece_bins": 10,
        "predict": {"batch_size": 8},
        "paths": {},
    }
    res = run_cv(c, tmp_path, [])
    r = res["results"]["gvfc/gvfc_frame"]
    from biascard.data.prepare import prepare

    dsd = prepare("gvfc")
    n_framed = sum(1 for s in dsd for lab in dsd[s]["labels"] if lab["gvfc_frame"] is not None)
    for system in ("majority", "tfidf_lr"):
        v = r["systems"][system]
        assert len(v["folds"]) == 3
        # every frame-labeled headline is tested exactly once
        assert sum(f["n"] for f in v["folds"]) == n_framed
        m = v["pooled"]["macro_f1"]
        assert m["lo"] <= m["value"] <= m["hi"]
    assert r["systems"]["tfidf_lr"]["fold_mean"]["accuracy"] > r["systems"]["majority"]["fold_mean"]["accuracy"] + 0.2
    assert "refit" in r["systems"]["tfidf_lr"]["folds"][0]["info"]["how"]
    assert res["chunking"] is None  # no model was trained per fold
