"""ROC-AUC of binary scores."""
import datasets
import evaluate
import numpy as np
from sklearn.metrics import roc_auc_score

_DESCRIPTION = "Area under the ROC curve for a binary task (scikit-learn roc_auc_score)."
_KWARGS = """
Args:
    predictions: score (e.g. probability) of the positive class.
    references: gold labels, 0 or 1.
Returns:
    roc_auc; NaN when the references hold a single class (the AUC is undefined).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class RocAuc(evaluate.Metric):
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
        if len(np.unique(y_true)) < 2:
            return {"roc_auc": float("nan")}
        return {"roc_auc": float(roc_auc_score(y_true, np.asarray(predictions, dtype=float)))}
