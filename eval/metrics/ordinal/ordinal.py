"""Error and agreement measures for ordinal scores (e.g. 1-5 card scores)."""
import datasets
import evaluate
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, mean_absolute_error

_DESCRIPTION = "MAE, quadratic weighted kappa, Spearman's rho and accuracy within +-1 for ordinal labels."
_KWARGS = """
Args:
    predictions: predicted ordinal values (ints, e.g. 1..5).
    references: gold ordinal values.
    labels: the full ordered label set for kappa (default: the values seen).
Returns:
    mae, qwk (Cohen's kappa with quadratic weights), spearman (NaN when either side
    is constant), within1 (share with |prediction - gold| <= 1).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Ordinal(evaluate.Metric):
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
        if len(np.unique(y_true)) < 2 or len(np.unique(y_pred)) < 2:
            rho = float("nan")
        else:
            rho = float(spearmanr(y_true, y_pred).statistic)
        if labels is None and len(np.unique(np.concatenate([y_true, y_pred]))) < 2:
            qwk = float("nan")  # one value on both sides: kappa is 0/0
        else:
            qwk = float(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))
        return {
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "qwk": qwk,
            "spearman": rho,
            "within1": float(np.mean(np.abs(y_true - y_pred) <= 1)),
        }
