"""Micro-F1, macro-F1 and mean average precision for multilabel classification."""
import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score, f1_score

_DESCRIPTION = "Micro-F1, macro-F1 (thresholded scores) and mAP (ranking) for multilabel tasks."
_KWARGS = """
Args:
    predictions: per-example list of C scores (probabilities), one per label.
    references: per-example list of C gold indicators (0/1).
    threshold: a score >= threshold counts as predicted: one number, or one per label (default 0.5).
    backend: "sklearn" (default) or "numpy" (same numbers, fast for bootstrap resamples).
Returns:
    micro_f1, macro_f1 (over all C labels, zero_division=0), f1 (per label),
    mAP: mean of per-label average precision over the labels with at least one
    positive reference (AP is undefined without positives), NaN if there is none.
    top1_accuracy: share of examples whose highest-scoring label is a gold label (for
    data with one gold label per example, the accuracy of an argmax decision).
    top1_macro_f1: for data with exactly one gold label per example (TRAIL22: one goal per
    passage), macro-F1 of the argmax label against the gold one over all C labels
    (zero_division=0, as macro_f1), i.e. the single-label protocol with no threshold
    involved; where every label occurs in the data (TRAIL22's test) this is scikit-learn's
    f1_score(gold, argmax, average="macro"). An example with several gold labels (at most 1%
    of the data, e.g. a merged duplicate) takes the argmax as its gold label when it is one of
    them, else its first; NaN when any example has none or more have several, where "the" gold
    label does not exist.
"""


def _ap(y, s):
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[ends]
    return float(np.sum(np.diff(np.r_[0.0, tps / tps[-1]]) * tps / (ends + 1)))


MAX_MULTI_GOLD = 0.01  # share of examples with several gold labels still read as single-label data


def _top1_macro_f1(y_true: np.ndarray, scores: np.ndarray, backend: str) -> float:
    per = y_true.sum(axis=1)
    # single-label data, give or take a stray merged duplicate (TRAIL22's deduplicated test
    # has 1 of 553 passages with two goals: the argmax counts as right if it is either)
    if not len(y_true) or np.any(per == 0) or np.mean(per > 1) > MAX_MULTI_GOLD:
        return float("nan")
    pred, c = scores.argmax(axis=1), y_true.shape[1]
    hit = y_true[np.arange(len(y_true)), pred] == 1
    gold = np.where(hit, pred, y_true.argmax(axis=1))
    # all C labels, not only those seen: a rare label dropping out of a bootstrap resample
    # then cannot shrink the average's denominator and bias the interval upwards
    if backend == "sklearn":
        return float(f1_score(gold, pred, labels=list(range(c)), average="macro", zero_division=0))
    tp = np.bincount(gold[gold == pred], minlength=c)
    denom = np.bincount(gold, minlength=c) + np.bincount(pred, minlength=c)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Multilabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, threshold=0.5, backend="sklearn"):
        scores = np.asarray(predictions, dtype=float)
        y_true = np.asarray(references, dtype=int)
        y_pred = (scores >= np.asarray(threshold, dtype=float)).astype(int)
        has_pos = y_true.sum(axis=0) > 0
        if backend == "numpy":
            tp = (y_true & y_pred).sum(axis=0)
            denom = y_true.sum(axis=0) + y_pred.sum(axis=0)
            f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
            micro = 2 * tp.sum() / denom.sum() if denom.sum() else 0.0
            macro = float(np.mean(f1))
            aps = [_ap(y_true[:, j], scores[:, j]) for j in np.nonzero(has_pos)[0]]
            m_ap = float(np.mean(aps)) if aps else float("nan")
        elif backend == "sklearn":
            f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
            micro = f1_score(y_true, y_pred, average="micro", zero_division=0)
            macro = f1_score(y_true, y_pred, average="macro", zero_division=0)
            if has_pos.any():
                m_ap = float(np.mean(average_precision_score(y_true[:, has_pos], scores[:, has_pos], average=None)))
            else:
                m_ap = float("nan")
        else:
            raise ValueError(f"backend {backend!r} is not 'sklearn' or 'numpy'")
        top1 = float(np.mean(y_true[np.arange(len(y_true)), scores.argmax(axis=1)] == 1)) if len(y_true) else float("nan")
        return {"micro_f1": float(micro), "macro_f1": float(macro), "f1": np.asarray(f1).tolist(), "mAP": m_ap,
                "top1_accuracy": top1, "top1_macro_f1": _top1_macro_f1(y_true, scores, backend)}
