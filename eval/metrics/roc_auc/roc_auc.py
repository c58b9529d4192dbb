"""ROC-AUC of binary scores."""
import datasets
import evaluate
import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

_DESCRIPTION = "Area under the ROC curve for a binary task (scikit-learn roc_auc_score)."
_KWARGS = """
Args:
    predictions: score (e.g. probability) of the positive class.
    references: gold labels, 0 or 1.
    backend: "sklearn" (default) or "numpy": the Mann-Whitney U statistic over average
        ranks, equal to the trapezoidal AUC (ties included), fast for bootstrap resamples.
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

    def _compute(self, predictions, references, backend="sklearn"):
        y_true = np.asarray(references)
        scores = np.asarray(predictions, dtype=float)
        n_pos = int((y_true == 1).sum())
        n_neg = len(y_true) - n_pos
        if n_pos == 0 or n_neg == 0:
            return {"roc_auc": float("nan")}
        if backend == "numpy":
            ranks = rankdata(scores)
            auc = (ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
            return {"roc_auc": float(auc)}
        if backend != "sklearn":
            raise ValueError(f"backend {backend!r} is not 'sklearn' or 'numpy'")
        return {"roc_auc": float(roc_auc_score(y_true, scores))}
