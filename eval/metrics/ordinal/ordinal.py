"""Error and agreement measures for ordinal scores (e.g. 1-5 card scores)."""
import datasets
import evaluate
import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score, mean_absolute_error

_DESCRIPTION = "MAE, quadratic weighted kappa, Spearman's rho and accuracy within +-1 for ordinal labels."
_KWARGS = """
Args:
    predictions: predicted ordinal values (ints, e.g. 1..5).
    references: gold ordinal values.
    labels: the full ordered label set for kappa (default: the values seen).
    backend: "sklearn" (default; scipy for Spearman) or "numpy" (same numbers, fast).
Returns:
    mae, qwk (Cohen's kappa with quadratic weights; NaN when undefined, e.g. one value
    on both sides), spearman (NaN when either side is constant), within1 (share with
    |prediction - gold| <= 1).
"""


def _qwk(y_true, y_pred, labels):
    lab = np.asarray(sorted(labels))
    k = len(lab)
    cm = np.bincount(np.searchsorted(lab, y_true) * k + np.searchsorted(lab, y_pred), minlength=k * k).reshape(k, k)
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / cm.sum()
    i = np.arange(k)
    w = (i[:, None] - i[None, :]) ** 2
    denom = (w * expected).sum()
    return float(1 - (w * cm).sum() / denom) if denom else float("nan")


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

    def _compute(self, predictions, references, labels=None, backend="sklearn"):
        y_pred = np.asarray(predictions)
        y_true = np.asarray(references)
        constant = len(np.unique(y_true)) < 2 or len(np.unique(y_pred)) < 2
        if labels is None:
            labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        if backend == "numpy":
            mae = float(np.mean(np.abs(y_true - y_pred)))
            qwk = _qwk(y_true, y_pred, labels)
            rho = float("nan") if constant else float(np.corrcoef(rankdata(y_true), rankdata(y_pred))[0, 1])
        elif backend == "sklearn":
            mae = float(mean_absolute_error(y_true, y_pred))
            with np.errstate(invalid="ignore", divide="ignore"):
                qwk = float(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))
            rho = float("nan") if constant else float(spearmanr(y_true, y_pred).statistic)
        else:
            raise ValueError(f"backend {backend!r} is not 'sklearn' or 'numpy'")
        return {"mae": mae, "qwk": qwk, "spearman": rho, "within1": float(np.mean(np.abs(y_true - y_pred) <= 1))}
