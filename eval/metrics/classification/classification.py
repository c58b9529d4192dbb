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
Returns:
    accuracy, macro_f1 (unweighted mean over `labels`), and the per-class lists
    precision, recall, f1, support aligned with `labels`; classes without predictions
    or gold examples score 0 (zero_division=0).
"""


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

    def _compute(self, predictions, references, labels=None):
        y_pred = np.asarray(predictions)
        y_true = np.asarray(references)
        if labels is None:
            labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        labels = list(labels)
        p, r, f, s = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            "labels": labels,
            "precision": p.tolist(),
            "recall": r.tolist(),
            "f1": f.tolist(),
            "support": s.tolist(),
        }
