"""What mixing TF-IDF+LR into the model could give, from saved predictions: no model is run.

For every task both runs score, the model's and TF-IDF+LR's probabilities are mixed, either
averaged (`prob`) or log-linearly (`logit`: softmax/sigmoid of the weighted log-odds), at a
weight w in 0, 0.1, ..., 1; binary tasks also pick a decision threshold (the model alone too). The mode, w and
threshold are chosen on validation by each task's metric (macro-F1; mAP for multilabel topics,
top-1 macro-F1 for SDG, accuracy for GVFC), then test is read once at that choice, with paired
bootstrap intervals (300 resamples) of mixed minus TF-IDF+LR and mixed minus model. The upper
bound of `biascard train fuse`, which mixes logits only, with a smaller vocabulary
(docs/results.md#the-fitted-lexical-model).

    python bench/late_fusion.py VAL_MODEL VAL_TFIDF TEST   # predictions.jsonl of three eval runs
    # VAL_MODEL: the model on split=validation; VAL_TFIDF: systems=[tfidf_lr] split=validation;
    # TEST: the default eval (model and tfidf_lr on test)
"""
from __future__ import annotations

import json
import sys

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from biascard.eval.metrics import load_metric

WEIGHTS = np.round(np.linspace(0, 1, 11), 2)
BINARY_THRESHOLDS = np.round(np.linspace(0.1, 0.9, 17), 2)
MULTILABEL = load_metric("multilabel")


def load(path: str, system: str) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["system"] == system:
                out.setdefault(r["task"], {})[r["id"]] = r
    return out


def arrays(model: dict, tfidf: dict, ids: list[str]):
    return (np.asarray([model[i]["gold"] for i in ids]), np.asarray([model[i]["prob"] for i in ids], float),
            np.asarray([tfidf[i]["prob"] for i in ids], float))


def mix(pm: np.ndarray, pt: np.ndarray, w: float, mode: str) -> np.ndarray:
    if mode == "prob":
        return (1 - w) * pm + w * pt
    lm, lt = np.log(np.clip(pm, 1e-6, 1)), np.log(np.clip(pt, 1e-6, 1))
    if pm.ndim == 1:  # binary: log-odds
        lm, lt = lm - np.log(np.clip(1 - pm, 1e-6, 1)), lt - np.log(np.clip(1 - pt, 1e-6, 1))
        return 1 / (1 + np.exp(-((1 - w) * lm + w * lt)))
    z = (1 - w) * lm + w * lt
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def metric(task: str, gold: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    if p.ndim == 1:
        return f1_score(gold, (p >= threshold).astype(int), average="macro")
    if gold.ndim == 2:  # the eval's own multilabel module: TRAIL22's top-1 protocol for SDG, mAP for topics
        m = MULTILABEL._compute(predictions=p, references=gold, backend="sklearn")
        return m["top1_macro_f1"] if task.startswith("sdg") else m["mAP"]
    if task.startswith("gvfc"):
        return accuracy_score(gold, p.argmax(1))
    return f1_score(gold, p.argmax(1), labels=list(range(p.shape[1])), average="macro", zero_division=0)


def choose(task: str, gold, pm, pt):
    """(validation score, mode, w, threshold) with the best validation score."""
    thresholds = BINARY_THRESHOLDS if pm.ndim == 1 else [0.5]
    best = None
    for mode in ("prob", "logit"):
        for w in WEIGHTS:
            for t in thresholds:
                s = metric(task, gold, mix(pm, pt, w, mode), t)
                if best is None or s > best[0] + 1e-12:
                    best = (s, mode, float(w), float(t))
    return best


def interval(deltas: list[float]) -> str:
    return f"[{np.percentile(deltas, 2.5):+.3f}, {np.percentile(deltas, 97.5):+.3f}]"


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    val_model, val_tfidf = load(argv[0], "model"), load(argv[1], "tfidf_lr")
    test_model, test_tfidf = load(argv[2], "model"), load(argv[2], "tfidf_lr")
    rng = np.random.default_rng(0)
    print("| task | validation: model -> mixed (mode, w, threshold) | test: mixed | model | TF-IDF+LR "
          "| mixed - TF-IDF+LR [95% CI] | mixed - model [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for task in sorted(set(test_model) & set(test_tfidf) & set(val_model) & set(val_tfidf)):
        vids = sorted(set(val_model[task]) & set(val_tfidf[task]))
        vg, vpm, vpt = arrays(val_model[task], val_tfidf[task], vids)
        tg, tpm, tpt = arrays(test_model[task], test_tfidf[task], sorted(test_model[task]))
        score, mode, w, t = choose(task, vg, vpm, vpt)
        alone, own_t = max((metric(task, vg, vpm, x), x) for x in (BINARY_THRESHOLDS if vpm.ndim == 1 else [0.5]))
        mixed = mix(tpm, tpt, w, mode)
        a, m, b = metric(task, tg, mixed, t), metric(task, tg, tpm, own_t), metric(task, tg, tpt, 0.5)
        d_tfidf, d_model = [], []
        for _ in range(300):
            i = rng.integers(0, len(tg), len(tg))
            s = metric(task, tg[i], mixed[i], t)
            d_tfidf.append(s - metric(task, tg[i], tpt[i], 0.5))
            d_model.append(s - metric(task, tg[i], tpm[i], own_t))
        print(f"| {task} | {alone:.3f} -> {score:.3f} ({mode}, {w}, {t}) | {a:.3f} | {m:.3f} | {b:.3f} | "
              f"{a - b:+.3f} {interval(d_tfidf)} | {a - m:+.3f} {interval(d_model)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
