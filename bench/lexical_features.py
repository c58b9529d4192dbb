"""What the lexical branch's weighting can reach: logistic regression on the branch's own bag weights.

The jointly trained branch (`biascard.model.lexical`) is a linear model over hashed word uni+bigrams.
This fits scikit-learn's logistic regression (class_weight=balanced, as the TF-IDF+LR baseline) on
the weights a branch's bag reads, `mean` (each n-gram 1/count of the record) or `tfidf`
(LexicalBranch._tfidf: sublinear tf x smooth idf, L2), for the heads with a branch in the
release. C is picked on validation from {1, 10}; test is read for that C. A probe of the
features, not of the trained branch (`make lexical-weighting-ablation` trains both).

    python bench/lexical_features.py        # -> bench/results/lexical_features.txt
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier

from biascard.data.prepare import prepare_report
from biascard.eval.baselines import encode_gold, label_set, labeled
from biascard.model.lexical import LexicalBranch, lexical_inputs, record_index

# (dataset, head, buckets): the release's branch sizes
HEADS = [("allsides", "political_leaning", 65536), ("sdg_trail22", "sdg", 32768),
         ("basil", "informational_bias", 32768), ("basil", "lexical_bias", 32768)]
OUT = Path(__file__).parent / "results" / "lexical_features.txt"


def bag_matrix(branch: LexicalBranch, texts: list[str]) -> sp.csr_matrix:
    """[N, buckets]: the per-n-gram weights the branch's bag sums (mean: counts / n-grams)."""
    inp = lexical_inputs(texts)
    ids, offsets = inp["lexical_ids"] % branch.buckets, inp["lexical_offsets"]
    if branch.weighting == "tfidf":
        ids, offsets, w = branch._tfidf(ids, offsets)
    rows = record_index(offsets, ids.shape[0])
    if branch.weighting == "mean":
        w = (1.0 / torch.bincount(rows, minlength=len(texts)).clamp_min(1).double())[rows]
    return sp.csr_matrix((w.double().numpy(), (rows.numpy(), ids.numpy())), shape=(len(texts), branch.buckets))


def split_records(dsd, head: str) -> dict[str, list[dict]]:
    return {split: labeled(list(dsd[split]), head) for split in ("train", "validation", "test")}


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if y.ndim == 1:
        return {"macro_f1": f1_score(y, p.argmax(1), average="macro")}
    keep = y.sum(1) > 0  # top-1 over examples with a goal; multilabel at 0.5
    return {"top1_macro_f1": f1_score(y[keep].argmax(1), p[keep].argmax(1), average="macro"),
            "multilabel_macro_f1": f1_score(y, (p > 0.5).astype(int), average="macro", zero_division=0)}


def fit(x: dict, y: dict, c: float) -> dict[str, dict[str, float]]:
    multilabel = y["train"].ndim == 2
    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", solver="liblinear" if multilabel else "lbfgs")
    model = (OneVsRestClassifier(lr) if multilabel else lr).fit(x["train"], y["train"])
    return {s: scores(y[s], model.predict_proba(x[s])) for s in ("validation", "test")}


def main() -> int:
    warnings.filterwarnings("ignore")
    lines = ["dataset/head  weighting  C(on validation)  validation  test"]
    for dataset, head, buckets in HEADS:
        sets = split_records(prepare_report(dataset)[0], head)
        kind = "multilabel" if isinstance(sets["train"][0]["labels"][head], list) else "multiclass"
        labels = label_set(kind, *sets.values(), head=head)
        y = {s: encode_gold(rs, head, kind, labels) for s, rs in sets.items()}
        texts = {s: [r["text"] for r in rs] for s, rs in sets.items()}
        for weighting in ("mean", "tfidf"):
            branch = LexicalBranch(buckets, 1, 1, weighting)
            if weighting == "tfidf":
                branch.fit_idf(texts["train"])
            x = {s: bag_matrix(branch, t) for s, t in texts.items()}
            runs = {c: fit(x, y, c) for c in (1.0, 10.0)}
            first = next(iter(runs[1.0]["validation"]))
            c = max(runs, key=lambda k: runs[k]["validation"][first])
            fmt = lambda d: " ".join(f"{k} {v:.3f}" for k, v in d.items())  # noqa: E731
            val, test = fmt(runs[c]["validation"]), fmt(runs[c]["test"])
            lines.append(f"{dataset}/{head}  {weighting}  C={c:g}  {val}  {test}")
            print(lines[-1], flush=True)
    OUT.write_text(f"# python bench/lexical_features.py ({time.strftime('%Y-%m-%d')})\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
