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
Returns:
    pr_auc; NaN when there is no positive reference (undefined).
"""


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

    def _compute(self, predictions, references):
        y_true = np.asarray(references)
        if not (y_true == 1).any():
            return {"pr_auc": float("nan")}
        return {"pr_auc": float(average_precision_score(y_true, np.asarray(predictions, dtype=float)))}
