"""Accuracy, macro-F1 and per-class precision/recall/F1 for single-label classification."""
import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

_DESCRIPTION = "Accuracy, macro-F1 and per-class precision, recall, F1 and support (scikit-learn)."
_KWARGS = """
Args:
    predictions: predicted class indices.
    references: gold class indices.
    labels: the class indices to report, in order (default: sorted union of both).
    backend: "sklearn" (default) or "numpy", the same numbers from a confusion matrix,
        ~50x faster for bootstrap resamples; every value must then be among `labels`.
Returns:
    accuracy, macro_f1 (unweighted mean over `labels`), and the per-class lists
    precision, recall, f1, support aligned with `labels`; classes without predictions
    or gold examples score 0 (zero_division=0).
"""


def _numpy(y_true, y_pred, labels):
    lab = np.asarray(labels)
    order = np.argsort(lab)
    pos_t = order[np.searchsorted(lab[order], y_true)]
    pos_p = order[np.searchsorted(lab[order], y_pred)]
    if not (np.array_equal(lab[pos_t], y_true) and np.array_equal(lab[pos_p], y_pred)):
        raise ValueError("backend='numpy' needs every prediction and reference among `labels`")
    k = len(lab)
    cm = np.bincount(pos_t * k + pos_p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    n_pred, n_true = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, 0.0)
        recall = np.where(n_true > 0, tp / n_true, 0.0)
        f1 = np.where(n_pred + n_true > 0, 2 * tp / (n_pred + n_true), 0.0)
    return float(np.mean(y_true == y_pred)), precision, recall, f1, n_true


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, labels=None, backend="sklearn"):
        y_pred = np.asarray(predictions)
        y_true = np.asarray(references)
        if labels is None:
            labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        labels = list(labels)
        if backend == "numpy":
            acc, p, r, f, s = _numpy(y_true, y_pred, labels)
            macro = float(np.mean(f))
        elif backend == "sklearn":
            p, r, f, s = precision_recall_fscore_support(
                y_true, y_pred, labels=labels, average=None, zero_division=0
            )
            acc = float(accuracy_score(y_true, y_pred))
            macro = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        else:
            raise ValueError(f"backend {backend!r} is not 'sklearn' or 'numpy'")
        return {
            "accuracy": acc,
            "macro_f1": macro,
            "labels": labels,
            "precision": p.tolist(),
            "recall": r.tolist(),
            "f1": f.tolist(),
            "support": s.tolist(),
        }
