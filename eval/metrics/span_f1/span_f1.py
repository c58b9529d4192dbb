"""Exact-match span F1 over character spans."""
import datasets
import evaluate

_DESCRIPTION = "Micro precision, recall and F1 of predicted character spans that exactly match a gold span."
_KWARGS = """
Args:
    predictions: per-example list of [start, end] character spans.
    references: per-example list of gold [start, end] spans.
Returns:
    precision, recall, f1 pooled over all examples (a span counts once per example);
    0 when the denominator is 0, except f1 = 1 when both sides hold no span at all.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class SpanF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                }
            ),
        )

    def _compute(self, predictions, references):
        tp = n_pred = n_gold = 0
        for pred, gold in zip(predictions, references):
            p = {(int(s), int(e)) for s, e in pred}
            g = {(int(s), int(e)) for s, e in gold}
            tp += len(p & g)
            n_pred += len(p)
            n_gold += len(g)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        if n_pred == 0 and n_gold == 0:
            f1 = 1.0
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "n_pred": n_pred, "n_gold": n_gold}
