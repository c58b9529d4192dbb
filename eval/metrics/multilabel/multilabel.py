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
    threshold: a score >= threshold counts as predicted (default 0.5).
Returns:
    micro_f1, macro_f1 (over all C labels, zero_division=0), f1 (per label),
    mAP: mean of per-label average precision over the labels with at least one
    positive reference (AP is undefined without positives), NaN if there is none.
"""


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

    def _compute(self, predictions, references, threshold=0.5):
        scores = np.asarray(predictions, dtype=float)
        y_true = np.asarray(references, dtype=int)
        y_pred = (scores >= threshold).astype(int)
        has_pos = y_true.sum(axis=0) > 0
        if has_pos.any():
            ap = average_precision_score(y_true[:, has_pos], scores[:, has_pos], average=None)
            m_ap = float(np.mean(ap))
        else:
            m_ap = float("nan")
        return {
            "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "f1": f1_score(y_true, y_pred, average=None, zero_division=0).tolist(),
            "mAP": m_ap,
        }
