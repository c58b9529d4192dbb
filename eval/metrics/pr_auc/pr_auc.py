"""PR-AUC (average precision) of binary scores."""
import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score

_DESCRIPTION = "Area under the precision-recall curve as average precision (scikit-learn)."
_KWARGS = """
Args:
    predictions: score (e.g. probability) of the positive class.
    references: gold labels, 0 or 1.
    backend: "sklearn" (default) or "numpy" (the same step-wise sum, fast for resamples).
Returns:
    pr_auc = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds;
    NaN when there is no positive reference (undefined).
"""


def average_precision(y_true, scores):
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], y_true[order]
    # the last position of each run of tied scores is one threshold
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[ends]
    precision = tps / (ends + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class PrAuc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, backend="sklearn"):
        y_true = np.asarray(references)
        scores = np.asarray(predictions, dtype=float)
        if not (y_true == 1).any():
            return {"pr_auc": float("nan")}
        if backend == "numpy":
            return {"pr_auc": average_precision((y_true == 1).astype(int), scores)}
        if backend != "sklearn":
            raise ValueError(f"backend {backend!r} is not 'sklearn' or 'numpy'")
        return {"pr_auc": float(average_precision_score(y_true, scores))}
