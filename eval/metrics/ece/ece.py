"""Expected calibration error of the top-label confidence."""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Expected calibration error (equal-width bins over the top-label confidence)."
_KWARGS = """
Args:
    predictions: per-example list of class probabilities (for a binary task [1-p, p]).
    references: gold class indices.
    n_bins: number of equal-width confidence bins on [0, 1] (default 15); bin b holds
        confidences in (b/n, (b+1)/n], the first bin also holds 0.
    return_bins: also return per-bin count, mean confidence and accuracy (for a
        reliability diagram).
Returns:
    ece = sum_b |B_b|/n * |accuracy(B_b) - confidence(B_b)|, and mce (the largest gap).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Ece(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Naeini, Cooper, Hauskrecht (2015). Obtaining Well Calibrated Probabilities Using Bayesian Binning. AAAI.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, n_bins=15, return_bins=False):
        probs = np.asarray(predictions, dtype=float)
        y_true = np.asarray(references)
        conf = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == y_true).astype(float)
        # ceil maps (b/n, (b+1)/n] to bin b; 0 joins the first bin
        idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
        count = np.bincount(idx, minlength=n_bins)
        conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
        acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
        nonempty = count > 0
        gap = np.zeros(n_bins)
        gap[nonempty] = np.abs(acc_sum[nonempty] - conf_sum[nonempty]) / count[nonempty]
        out = {
            "ece": float(np.sum(gap * count) / max(len(conf), 1)),
            "mce": float(gap.max()) if nonempty.any() else 0.0,
        }
        if return_bins:
            with np.errstate(invalid="ignore", divide="ignore"):
                out["bins"] = {
                    "count": count.tolist(),
                    "confidence": np.where(nonempty, conf_sum / np.maximum(count, 1), np.nan).tolist(),
                    "accuracy": np.where(nonempty, acc_sum / np.maximum(count, 1), np.nan).tolist(),
                    "edges": np.linspace(0, 1, n_bins + 1).tolist(),
                }
        return out
