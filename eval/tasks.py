"""One system's outputs on one (dataset, head) task, and the metrics each head type gets.

The gold and the probabilities are kept in encoded form (class indices, indicator rows,
character spans) with the label names beside them, so the model and every baseline are
scored by the same code, and a saved run can be re-scored (paired bootstrap in compare).
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable

import numpy as np

from .bootstrap import bootstrap, outside
from .metrics import load_metric

TYPES = ("binary", "multiclass", "multilabel", "ordinal", "token")
# The one number per task that tables and comparisons lead with.
PRIMARY = {"binary": "macro_f1", "multiclass": "macro_f1", "multilabel": "macro_f1", "ordinal": "qwk", "token": "span_f1"}
LOWER_IS_BETTER = {"mae", "ece", "mce"}


@dataclasses.dataclass
class Outputs:
    """Per-example gold and predictions of one system on one task.

    gold: binary int[N] 0/1; multiclass/ordinal int[N] index into `labels`; multilabel
    int[N, C]; token list of [start, end] spans per example.
    prob: binary float[N] = P(1); multiclass/ordinal/multilabel float[N, C]; token None.
    spans: token heads only, the predicted spans per example.
    """

    task: str
    head: str
    type: str
    labels: list[str]
    ids: list[str]
    dataset: list[str]
    outlet: list[str | None]
    gold: object
    prob: object = None
    spans: list | None = None
    # how the system was fitted (e.g. the chosen C), shown in the report
    info: dict = dataclasses.field(default_factory=dict)
    # binary [1] / multilabel [C]: decide P >= threshold (None = 0.5); the model's are fit on validation
    thresholds: object = None

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"{self.task}: head type {self.type!r} is not scored (scored: {TYPES})")
        n = len(self.ids)
        if not (len(self.dataset) == len(self.outlet) == len(self.gold) == n):
            raise ValueError(f"{self.task}: ids, dataset, outlet and gold differ in length")
        if self.type == "token":
            if self.spans is None or len(self.spans) != n:
                raise ValueError(f"{self.task}: a token task needs predicted spans for each of the {n} examples")
        else:
            self.gold = np.asarray(self.gold, dtype=int)
            self.prob = np.asarray(self.prob, dtype=float)
            if len(self.prob) != n:
                raise ValueError(f"{self.task}: {len(self.prob)} probability rows for {n} examples")
        if self.thresholds is not None:
            self.thresholds = np.asarray(self.thresholds, dtype=float)
            want = 1 if self.type == "binary" else len(self.labels)
            if self.type not in ("binary", "multilabel") or self.thresholds.shape != (want,):
                raise ValueError(f"{self.task}: thresholds {self.thresholds.tolist()} do not fit a "
                                 f"{self.type} head with {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def pred(self) -> np.ndarray | list:
        """Hard predictions: P >= threshold (0.5 unless fit), argmax, or the median rank of an ordinal distribution."""
        if self.type == "binary":
            return (self.prob >= self.threshold[0]).astype(int)
        if self.type == "multiclass":
            return self.prob.argmax(axis=1)
        if self.type == "ordinal":
            # the rank where the cumulative probability first reaches 0.5 (CORN's decision rule)
            return (np.cumsum(self.prob, axis=1) < 0.5).sum(axis=1).clip(0, self.prob.shape[1] - 1)
        if self.type == "multilabel":
            return (self.prob >= self.threshold[None, :]).astype(int)
        return self.spans

    @property
    def threshold(self) -> np.ndarray:
        if self.thresholds is not None:
            return self.thresholds
        return np.full(1 if self.type == "binary" else len(self.labels), 0.5)

    def subset(self, idx: Iterable[int]) -> "Outputs":
        idx = list(idx)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return dataclasses.replace(
            self,
            ids=pick(self.ids),
            dataset=pick(self.dataset),
            outlet=pick(self.outlet),
            gold=self.gold[idx] if isinstance(self.gold, np.ndarray) else pick(self.gold),
            prob=self.prob[idx] if isinstance(self.prob, np.ndarray) and self.prob.ndim else self.prob,
            spans=pick(self.spans) if self.spans is not None else None,
        )

    # --------------------------------------------------------------- predictions.jsonl

    def rows(self, system: str) -> Iterable[dict]:
        pred = self.pred
        for i in range(len(self)):
            row = {"system": system, "task": self.task, "id": self.ids[i], "dataset": self.dataset[i], "outlet": self.outlet[i]}
            if self.type == "token":
                row["gold"] = [list(map(int, s)) for s in self.gold[i]]
                row["pred"] = [list(map(int, s)) for s in self.spans[i]]
            else:
                row["gold"] = self.gold[i].tolist()
                row["pred"] = pred[i].tolist()
                row["prob"] = np.round(self.prob[i], 6).tolist()
            yield row

    def meta(self) -> dict:
        out = {"head": self.head, "type": self.type, "labels": list(self.labels)}
        if self.thresholds is not None:
            out["thresholds"] = self.thresholds.tolist()
        return out

    @classmethod
    def from_rows(cls, task: str, meta: dict, rows: list[dict]) -> "Outputs":
        kind = meta["type"]
        return cls(
            task=task,
            head=meta["head"],
            type=kind,
            labels=list(meta["labels"]),
            ids=[r["id"] for r in rows],
            dataset=[r["dataset"] for r in rows],
            outlet=[r.get("outlet") for r in rows],
            gold=[r["gold"] for r in rows],
            prob=None if kind == "token" else [r["prob"] for r in rows],
            spans=[r["pred"] for r in rows] if kind == "token" else None,
            thresholds=meta.get("thresholds"),
        )


# ------------------------------------------------------------------------- scoring


def _named(prefix: str, values: list, labels: list[str]) -> dict[str, float]:
    return {f"{prefix}/{label}": float(v) for label, v in zip(labels, values)}


def score(out: Outputs, idx: np.ndarray | None = None, *, ece_bins: int = 15, fast: bool = False) -> dict[str, float]:
    """Every metric of the task's head type on the examples at `idx` (all by default).

    Default: through `EvaluationModule.compute` with the scikit-learn backend (the
    reported point estimate). `fast`: the same modules' `_compute` with their numpy backend,
    for bootstrap resamples; `score_with_ci` checks that both agree on the full sample.
    """
    o = out if idx is None else out.subset(idx)

    def run(name: str, **kw):
        m = load_metric(name)
        if name not in ("span_f1", "ece"):  # these two are plain numpy/python already
            kw["backend"] = "numpy" if fast else "sklearn"
        return m._compute(**kw) if fast else m.compute(**kw)

    k = len(o.labels)
    res: dict[str, float] = {}
    if o.type in ("binary", "multiclass", "ordinal"):
        pred = o.pred
        c = run("classification", predictions=pred, references=o.gold, labels=list(range(k if o.type != "binary" else 2)))
        names = o.labels if o.type != "binary" else (o.labels if len(o.labels) == 2 else ["0", "1"])
        if o.type == "ordinal":
            values = np.asarray([int(x) for x in o.labels])
            od = run("ordinal", predictions=values[pred], references=values[o.gold], labels=values.tolist())
            res.update({k2: float(v) for k2, v in od.items()})
            res["accuracy"] = float(c["accuracy"])
        else:
            res["accuracy"] = float(c["accuracy"])
            res["macro_f1"] = float(c["macro_f1"])
            for part in ("precision", "recall", "f1"):
                res.update(_named(part, c[part], names))
        if o.type == "binary":
            res.update(run("roc_auc", predictions=o.prob, references=o.gold))
            res.update(run("pr_auc", predictions=o.prob, references=o.gold))
        probs = np.stack([1 - o.prob, o.prob], axis=1) if o.type == "binary" else o.prob
        res["ece"] = float(run("ece", predictions=probs, references=o.gold, n_bins=ece_bins)["ece"])
    elif o.type == "multilabel":
        m = run("multilabel", predictions=o.prob, references=o.gold, threshold=o.threshold.tolist())
        res.update({k2: m[k2] for k2 in ("micro_f1", "macro_f1", "mAP", "top1_accuracy")})
        if np.isfinite(m["top1_macro_f1"]):  # single-label data only (TRAIL22's protocol); absent elsewhere
            res["top1_macro_f1"] = m["top1_macro_f1"]
        res.update(_named("f1", m["f1"], o.labels))
    elif o.type == "token":
        m = run("span_f1", predictions=o.spans, references=o.gold)
        res.update({"span_precision": m["precision"], "span_recall": m["recall"], "span_f1": m["f1"]})
    return {k2: float(v) for k2, v in res.items()}


def score_with_ci(out: Outputs, *, n_boot: int, seed: int, ci: float = 0.95, ece_bins: int = 15) -> dict[str, dict]:
    """{metric: {value, lo, hi, n_boot}}: the point estimate via `evaluate` + scikit-learn,
    the percentile interval from resamples scored by the numpy backend."""
    point = score(out, ece_bins=ece_bins)
    res = bootstrap(lambda idx: score(out, idx, ece_bins=ece_bins, fast=True), len(out), n_boot=n_boot, seed=seed, ci=ci)
    for k, v in point.items():
        other = res[k]["value"]
        # two implementations of one metric must agree; a mismatch is a bug in a module
        if not (np.isnan(v) and np.isnan(other)) and not abs(v - other) <= 1e-9:
            raise RuntimeError(f"{out.task}: {k} is {v} with scikit-learn but {other} with the numpy backend")
        res[k]["value"] = v
        res[k]["point_outside"] = outside(v, res[k]["lo"], res[k]["hi"])
    return res


def reliability(out: Outputs, n_bins: int = 15) -> dict | None:
    """Per-bin confidence/accuracy for a reliability diagram (None for untyped heads)."""
    if out.type not in ("binary", "multiclass", "ordinal"):
        return None
    probs = np.stack([1 - out.prob, out.prob], axis=1) if out.type == "binary" else out.prob
    return load_metric("ece")._compute(predictions=probs, references=out.gold, n_bins=n_bins, return_bins=True)


def confusion(out: Outputs) -> np.ndarray | None:
    if out.type not in ("binary", "multiclass", "ordinal"):
        return None
    k = 2 if out.type == "binary" else len(out.labels)
    m = np.zeros((k, k), dtype=int)
    np.add.at(m, (out.gold, out.pred), 1)
    return m


# ------------------------------------------------------------------- span helpers

_GAP = re.compile(r"\s*")


def merge_spans(spans: Iterable, text: str) -> list[list[int]]:
    """Sorted spans with overlapping ones, or ones separated only by whitespace, joined.

    Applied to gold and predicted spans alike: the model marks a run of tokens, while the
    data lists "radical left" as two words, so both sides are compared as runs.
    """
    out: list[list[int]] = []
    for s, e in sorted((int(a), int(b)) for a, b in spans):
        if out and (s <= out[-1][1] or _GAP.fullmatch(text[out[-1][1] : s])):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def token_runs(probs: Iterable[float], offsets: Iterable, threshold: float = 0.5) -> list[list[int]]:
    """Character spans of contiguous runs of tokens with P(marked) >= threshold.

    `offsets` are (start, end) character offsets per token; (0, 0) marks special tokens,
    which end a run.
    """
    spans, cur = [], None
    for p, (s, e) in zip(probs, offsets):
        if e <= s or p < threshold:
            if cur:
                spans.append(cur)
            cur = None
            continue
        if cur is None:
            cur = [int(s), int(e)]
        else:
            cur[1] = int(e)
    if cur:
        spans.append(cur)
    return spans


def gold_spans(record: dict, span_label: str | None = None) -> list[list[int]]:
    return merge_spans(
        [(sp["start"], sp["end"]) for sp in record.get("spans") or [] if span_label is None or sp.get("label") == span_label],
        record["text"],
    )


def dumps(obj) -> str:
    """JSON with NaN written as null (strict JSON readers reject NaN)."""

    def clean(x):
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, np.generic):
            return clean(x.item())
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        return x

    return json.dumps(clean(obj), indent=1, ensure_ascii=False)
