"""The local `evaluate` metric modules against scikit-learn / scipy / direct numpy on random data,
and the bootstrap that puts a CI on each of them."""
import evaluate
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    roc_auc_score,
)

from biascard.eval.bootstrap import bootstrap, paired_bootstrap
from biascard.eval.metrics import NAMES, load_metric, metric_path
from biascard.eval.tasks import Outputs, merge_spans, score, score_with_ci, token_runs

SEEDS = [0, 1, 2]
BACKENDS = ["sklearn", "numpy"]


def test_every_module_loads_by_path_and_is_a_metric():
    for name in NAMES:
        path = metric_path(name)
        assert path.name == f"{name}.py" and path.parent.name == name
        assert not (path.parent / "__init__.py").exists()
        module = evaluate.load(str(path))  # by path: never the hub
        assert isinstance(module, evaluate.Metric)
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("accuracy")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_classification_matches_sklearn(seed, backend):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(30, 400)), int(rng.integers(2, 7))
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.5, y, rng.integers(0, k, n))  # better than chance, some misses
    labels = list(range(k + 1))  # one class with no example: scored 0, as sklearn does
    res = load_metric("classification").compute(predictions=p, references=y, labels=labels, backend=backend)
    pr, rc, f, s = precision_recall_fscore_support(y, p, labels=labels, average=None, zero_division=0)
    assert res["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert res["macro_f1"] == pytest.approx(f1_score(y, p, labels=labels, average="macro", zero_division=0))
    np.testing.assert_allclose(res["precision"], pr)
    np.testing.assert_allclose(res["recall"], rc)
    np.testing.assert_allclose(res["f1"], f)
    np.testing.assert_array_equal(res["support"], s)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_roc_and_pr_auc_match_sklearn_with_ties(seed, backend):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 500))
    y = rng.integers(0, 2, n)
    s = np.round(np.clip(y * 0.3 + rng.random(n), 0, 1), 1)  # rounded: many tied scores
    roc = load_metric("roc_auc").compute(predictions=s, references=y, backend=backend)["roc_auc"]
    ap = load_metric("pr_auc").compute(predictions=s, references=y, backend=backend)["pr_auc"]
    assert roc == pytest.approx(roc_auc_score(y, s))
    assert ap == pytest.approx(average_precision_score(y, s))


def test_auc_undefined_on_one_class_is_nan_not_a_number():
    assert np.isnan(load_metric("roc_auc").compute(predictions=[0.1, 0.9], references=[1, 1])["roc_auc"])
    assert np.isnan(load_metric("pr_auc").compute(predictions=[0.1, 0.9], references=[0, 0])["pr_auc"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_multilabel_matches_sklearn(seed, backend):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(30, 300)), int(rng.integers(2, 8))
    y = rng.integers(0, 2, (n, c))
    y[:, 0] = 0  # a label without positives: left out of mAP, F1 0
    s = np.clip(y * 0.35 + rng.random((n, c)) * 0.8, 0, 1)
    res = load_metric("multilabel").compute(predictions=s, references=y, backend=backend)
    pred = (s >= 0.5).astype(int)
    assert res["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert res["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    np.testing.assert_allclose(res["f1"], f1_score(y, pred, average=None, zero_division=0))
    expected_map = np.mean([average_precision_score(y[:, j], s[:, j]) for j in range(1, c)])
    assert res["mAP"] == pytest.approx(expected_map)
    assert res["top1_accuracy"] == pytest.approx(np.mean([y[i, np.argmax(s[i])] for i in range(n)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_top1_macro_f1_is_the_single_label_protocol(backend):
    """TRAIL22: one goal per passage; the argmax goal against it, macro-F1 over the goals seen."""
    y = np.eye(3, dtype=int)[[0, 0, 1, 1, 2, 2]]
    # argmax: 0, 1, 1, 1, 2, 0; every score sits below 0.5, so the thresholded macro-F1 is 0
    s = np.array([[.4, .1, .1], [.1, .3, .2], [.1, .4, .1], [.2, .3, .1], [.1, .1, .2], [.3, .1, .2]])
    res = load_metric("multilabel").compute(predictions=s, references=y, backend=backend)
    # per goal: 0 tp1 fp1 fn1 -> 0.5; 1 tp2 fp1 fn0 -> 0.8; 2 tp1 fp0 fn1 -> 2/3
    assert res["top1_macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert res["top1_macro_f1"] == pytest.approx(f1_score(y.argmax(1), s.argmax(1), average="macro"))
    assert res["macro_f1"] == 0.0 and res["top1_accuracy"] == pytest.approx(4 / 6)
    # averaged over all C labels, as macro_f1: a goal absent from the data counts 0
    wide = load_metric("multilabel").compute(predictions=np.c_[s, np.zeros(6)], references=np.c_[y, np.zeros(6, int)],
                                             backend=backend)
    assert wide["top1_macro_f1"] == pytest.approx(res["top1_macro_f1"] * 3 / 4)
    # an example with two gold labels (or none) has no one gold label: undefined
    y2 = y.copy()
    y2[0, 1] = 1
    assert np.isnan(load_metric("multilabel").compute(predictions=s, references=y2, backend=backend)["top1_macro_f1"])


def test_top1_macro_f1_reads_a_stray_two_goal_passage():
    """TRAIL22's deduplicated test has 1 of 553 passages with two goals: under 1% such examples
    still give the single-label protocol, the argmax right when it is either gold label."""
    rng = np.random.default_rng(5)
    y = np.eye(3, dtype=int)[rng.integers(0, 3, 200)]
    s = rng.random((200, 3))
    y[0] = [1, 1, 0]
    s[0] = [0.1, 0.9, 0.0]  # predicts the second of its two goals
    res = load_metric("multilabel").compute(predictions=s, references=y, backend="numpy")
    gold = y.argmax(1)
    gold[0] = 1
    assert res["top1_macro_f1"] == pytest.approx(f1_score(gold, s.argmax(1), average="macro"))


def test_top1_macro_f1_is_scored_for_single_label_tasks_only():
    n = 60
    rng = np.random.default_rng(3)
    common = dict(task="d/sdg", head="sdg", type="multilabel", labels=list("abc"), ids=[str(i) for i in range(n)],
                  dataset=["d"] * n, outlet=[None] * n, prob=rng.random((n, 3)))
    single = Outputs(gold=np.eye(3, dtype=int)[rng.integers(0, 3, n)], **common)
    res = score_with_ci(single, n_boot=50, seed=0)
    assert res["top1_macro_f1"]["value"] == pytest.approx(
        f1_score(single.gold.argmax(1), single.prob.argmax(1), average="macro"))
    assert res["top1_macro_f1"]["n_boot"] == 50 and "macro_f1" in res
    multi = Outputs(gold=rng.integers(0, 2, (n, 3)), **common)
    assert "top1_macro_f1" not in score(multi) and "top1_macro_f1" not in score(multi, fast=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_ordinal_matches_sklearn_and_scipy(seed, backend):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.integers(1, 6, n)
    p = np.clip(y + rng.integers(-2, 3, n), 1, 5)
    res = load_metric("ordinal").compute(predictions=p, references=y, labels=[1, 2, 3, 4, 5], backend=backend)
    assert res["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert res["qwk"] == pytest.approx(cohen_kappa_score(y, p, labels=[1, 2, 3, 4, 5], weights="quadratic"))
    assert res["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    assert res["within1"] == pytest.approx(np.mean(np.abs(y - p) <= 1))


def test_span_f1_is_exact_match_over_pooled_spans():
    rng = np.random.default_rng(3)
    preds, golds = [], []
    for _ in range(60):
        gold = sorted({(int(s), int(s) + int(rng.integers(1, 6))) for s in rng.integers(0, 80, rng.integers(0, 4))})
        pred = [g for g in gold if rng.random() < 0.6]  # some hits
        pred += [(s, s + 1) for s in rng.integers(100, 200, rng.integers(0, 3))]  # some misses
        if gold and rng.random() < 0.3:
            pred.append((gold[0][0], gold[0][1] + 1))  # off by one character: a miss
        preds.append([list(x) for x in pred])
        golds.append([list(x) for x in gold])
    tp = sum(len({tuple(x) for x in p} & {tuple(x) for x in g}) for p, g in zip(preds, golds))
    n_pred = sum(len({tuple(x) for x in p}) for p in preds)
    n_gold = sum(len({tuple(x) for x in g}) for g in golds)
    res = load_metric("span_f1").compute(predictions=preds, references=golds)
    assert res["precision"] == pytest.approx(tp / n_pred)
    assert res["recall"] == pytest.approx(tp / n_gold)
    assert res["f1"] == pytest.approx(2 * tp / (n_pred + n_gold))
    assert 0 < res["f1"] < 1


def _ece_reference(probs, y, n_bins):
    """ECE written out bin by bin, independently of the module."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_matches_a_direct_implementation(seed, n_bins):
    rng = np.random.default_rng(seed)
    n, k = 400, 3
    probs = rng.dirichlet(np.ones(k) * 0.7, n)
    y = np.where(rng.random(n) < 0.6, probs.argmax(axis=1), rng.integers(0, k, n))
    res = load_metric("ece").compute(predictions=probs, references=y, n_bins=n_bins)
    assert res["ece"] == pytest.approx(_ece_reference(probs, y, n_bins))
    # a perfectly calibrated toy: confidence 1 and always right
    onehot = np.eye(k)[y]
    assert load_metric("ece").compute(predictions=onehot, references=y)["ece"] == pytest.approx(0.0)


def _binary_outputs(n, seed, quality):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    prob = np.clip(np.where(rng.random(n) < quality, y, 1 - y) * 0.6 + rng.random(n) * 0.4, 0, 1)
    return Outputs(task="t/h", head="h", type="binary", labels=["0", "1"], ids=[str(i) for i in range(n)],
                   dataset=["d"] * n, outlet=[None] * n, gold=y, prob=prob)


def test_bootstrap_ci_contains_the_point_and_narrows_with_n():
    widths = []
    for n in (60, 600, 3000):
        o = _binary_outputs(n, seed=n, quality=0.75)
        res = score_with_ci(o, n_boot=300, seed=0)
        for name, m in res.items():
            if np.isfinite(m["lo"]):
                assert m["lo"] - 1e-12 <= m["value"] <= m["hi"] + 1e-12, name
        assert res["macro_f1"]["value"] == pytest.approx(
            f1_score(o.gold, (o.prob >= 0.5).astype(int), average="macro"))
        widths.append(res["macro_f1"]["hi"] - res["macro_f1"]["lo"])
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_is_seeded_and_counts_only_defined_resamples():
    fn = lambda idx: {"mean": float(np.mean(np.arange(50)[idx])), "nan": float("nan")}  # noqa: E731
    a = bootstrap(fn, 50, n_boot=200, seed=7)
    b = bootstrap(fn, 50, n_boot=200, seed=7)
    c = bootstrap(fn, 50, n_boot=200, seed=8)
    assert a["mean"] == b["mean"] and a["mean"]["lo"] != c["mean"]["lo"]
    assert a["nan"]["n_boot"] == 0 and np.isnan(a["nan"]["lo"])


def test_paired_bootstrap_flags_a_clear_difference_only():
    good, bad = _binary_outputs(400, 1, 0.9), _binary_outputs(400, 1, 0.55)
    bad.gold = good.gold  # same examples, same gold
    fa = lambda idx: score(bad, idx, fast=True)  # noqa: E731
    fb = lambda idx: score(good, idx, fast=True)  # noqa: E731
    res = paired_bootstrap(fa, fb, 400, n_boot=300, seed=0)
    assert res["macro_f1"]["significant"] and res["macro_f1"]["delta"] > 0.2 and res["macro_f1"]["lo"] > 0
    same = paired_bootstrap(fb, fb, 400, n_boot=100, seed=0)
    assert not any(v["significant"] for v in same.values())


def test_fast_backend_agrees_with_evaluate_on_every_head_type():
    rng = np.random.default_rng(5)
    n = 150
    common = dict(ids=[str(i) for i in range(n)], dataset=["d"] * n, outlet=[None] * n)
    outs = [
        _binary_outputs(n, 5, 0.8),
        Outputs(task="t/m", head="m", type="multiclass", labels=list("abcd"), gold=rng.integers(0, 4, n),
                prob=rng.dirichlet(np.ones(4), n), **common),
        Outputs(task="t/o", head="o", type="ordinal", labels=["1", "2", "3", "4", "5"], gold=rng.integers(0, 5, n),
                prob=rng.dirichlet(np.ones(5), n), **common),
        Outputs(task="t/l", head="l", type="multilabel", labels=list("xyz"), gold=rng.integers(0, 2, (n, 3)),
                prob=rng.random((n, 3)), **common),
    ]
    for o in outs:
        slow, fast = score(o), score(o, fast=True)
        assert slow.keys() == fast.keys()
        for k in slow:
            assert slow[k] == pytest.approx(fast[k], nan_ok=True), (o.type, k)


def test_ordinal_prediction_is_the_median_rank():
    o = Outputs(task="t/o", head="o", type="ordinal", labels=["1", "2", "3"], ids=["a", "b"], dataset=["d"] * 2,
                outlet=[None] * 2, gold=[0, 2], prob=[[0.2, 0.2, 0.6], [0.5, 0.1, 0.4]])
    assert o.pred.tolist() == [2, 0]


def test_token_runs_and_span_merging():
    text = "the radical left, said he"
    offsets = [(0, 0), (0, 3), (4, 11), (12, 16), (16, 17), (18, 22), (23, 25), (0, 0)]
    probs = [0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.1, 0.9]  # special tokens never start a run
    assert token_runs(probs, offsets) == [[4, 16], [18, 22]]
    # gold words listed one by one join into one run when only whitespace separates them
    assert merge_spans([(12, 16), (4, 11), (18, 22)], text) == [[4, 16], [18, 22]]
