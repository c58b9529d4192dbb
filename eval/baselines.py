"""Baselines trained on a dataset's train split and scored on the same test examples as the model.

majority:  the train label distribution for every example (its argmax is the majority class).
tfidf_lr:  TF-IDF of word 1-2 grams + class-balanced logistic regression (one-vs-rest for
           multilabel; ordinal heads as multiclass).
lexicon:   token heads only: words marked in at least half of their train occurrences.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter

import numpy as np

from .tasks import Outputs, gold_spans, merge_spans

SYSTEMS = ("majority", "tfidf_lr")
FIXED_LABELS = {"binary": ["0", "1"], "ordinal": ["1", "2", "3", "4", "5"], "token": ["O", "BIASED"]}


def labeled(records: list[dict], head: str) -> list[dict]:
    return [r for r in records if r["labels"].get(head) is not None]


def label_set(kind: str, *record_lists: list[dict], head: str) -> list[str]:
    """Fixed sets for binary/ordinal/token; else every value seen, sorted (numbers numerically)."""
    if kind in FIXED_LABELS:
        return list(FIXED_LABELS[kind])
    seen: set[str] = set()
    for records in record_lists:
        for r in records:
            v = r["labels"][head]
            seen.update(str(x) for x in v) if kind == "multilabel" else seen.add(str(v))
    return sorted(seen, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))


def encode_gold(records: list[dict], head: str, kind: str, labels: list[str], span_label: str | None = None):
    """Gold in the encoded form of `Outputs`; a value outside `labels` is an error naming the record."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for r in records:
        v = r["labels"][head]
        if kind == "token":
            out.append(gold_spans(r, span_label))
            continue
        try:
            if kind == "binary":
                if v not in (0, 1):
                    raise KeyError(v)
                out.append(int(v))
            elif kind == "multilabel":
                row = np.zeros(len(labels), dtype=int)
                row[[index[str(x)] for x in v]] = 1
                out.append(row)
            else:
                out.append(index[str(v)])
        except KeyError as e:
            raise ValueError(f"record {r['id']}: head {head!r} value {e.args[0]!r} is not among the labels {labels}") from None
    return np.asarray(out) if kind != "token" else out


def _frame(task: str, head: str, kind: str, labels: list[str], test: list[dict], gold, prob=None, spans=None) -> Outputs:
    return Outputs(
        task=task,
        head=head,
        type=kind,
        labels=labels,
        ids=[r["id"] for r in test],
        dataset=[r["dataset"] for r in test],
        outlet=[r.get("outlet") for r in test],
        gold=gold,
        prob=prob,
        spans=spans,
    )


def majority(task, head, kind, labels, train, test, span_label=None) -> Outputs:
    gold = encode_gold(test, head, kind, labels, span_label)
    if kind == "token":
        return _frame(task, head, kind, labels, test, gold, spans=[[] for _ in test])
    tr = encode_gold(train, head, kind, labels, span_label)
    if kind == "binary":
        prob = np.full(len(test), tr.mean())
    elif kind == "multilabel":
        prob = np.tile(tr.mean(axis=0), (len(test), 1))
    else:
        freq = np.bincount(tr, minlength=len(labels)) / len(tr)
        prob = np.tile(freq, (len(test), 1))
    return _frame(task, head, kind, labels, test, gold, prob=prob)


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")


def _lr(c: float, kind: str):
    from sklearn.linear_model import LogisticRegression

    if kind in ("multiclass", "ordinal"):
        return LogisticRegression(class_weight="balanced", max_iter=2000, C=c, solver="lbfgs")  # multinomial
    # binary problems (one-vs-rest included): liblinear's dual form, since n-gram features far
    # outnumber texts; the same optimum as lbfgs, 5-20x faster on long articles
    return LogisticRegression(class_weight="balanced", max_iter=2000, C=c, solver="liblinear", dual=True)


def _fit_predict(kind: str, labels: list[str], x_train, y, x_test, c: float) -> np.ndarray:
    from sklearn.multiclass import OneVsRestClassifier

    with warnings.catch_warnings():
        # a label absent from train gets a constant predictor; that is the honest answer
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        if kind == "multilabel":
            return OneVsRestClassifier(_lr(c, kind)).fit(x_train, y).predict_proba(x_test)
        clf = _lr(c, kind).fit(x_train, y)
    p = clf.predict_proba(x_test)
    prob = np.zeros((x_test.shape[0], 2 if kind == "binary" else len(labels)))
    prob[:, clf.classes_] = p
    return prob[:, 1] if kind == "binary" else prob


def tfidf_lr(
    task, head, kind, labels, train, test, span_label=None, *, validation=None, c_grid=(1.0,), multilabel_c=1.0,
    refit: bool = False,
) -> Outputs:
    """Fit on train; C is the grid value with the best validation primary metric (ties: the smaller C).

    `refit`: after picking C, fit again on train + validation (k-fold CV, where the
    published protocol trains on all k-1 folds).
    """
    if kind == "token":
        return lexicon(task, head, kind, labels, train, test, span_label)
    from .tasks import PRIMARY, score

    gold = encode_gold(test, head, kind, labels, span_label)
    y = encode_gold(train, head, kind, labels, span_label)
    if kind != "multilabel" and len(np.unique(y)) < 2:
        raise ValueError(f"{task}: the train split has a single class; tfidf_lr cannot be fitted")
    vec = _vectorizer()
    x_train = vec.fit_transform([r["text"] for r in train])
    grid = [float(multilabel_c)] if kind == "multilabel" else sorted(float(c) for c in c_grid)
    chosen, note = grid[0], "fixed C"
    validation = labeled(validation or [], head)
    if len(grid) > 1 and validation:
        x_val = vec.transform([r["text"] for r in validation])
        y_val = encode_gold(validation, head, kind, labels, span_label)
        best = None
        for c in grid:
            o = _frame(task, head, kind, labels, validation, y_val, prob=_fit_predict(kind, labels, x_train, y, x_val, c))
            v = score(o)[PRIMARY[kind]]
            if best is None or v > best:
                best, chosen = v, c
        note = f"C picked on validation from {grid}"
    elif len(grid) > 1:
        chosen, note = 1.0 if 1.0 in grid else grid[0], "no validation split: default C"
    if refit and validation:
        train = train + validation
        y = encode_gold(train, head, kind, labels, span_label)
        vec = _vectorizer()
        x_train = vec.fit_transform([r["text"] for r in train])
        note += "; refit on train + validation"
    prob = _fit_predict(kind, labels, x_train, y, vec.transform([r["text"] for r in test]), chosen)
    out = _frame(task, head, kind, labels, test, gold, prob=prob)
    out.info = {"C": chosen, "how": note, "n_fit": len(train)}
    return out


_WORD = re.compile(r"\w[\w'’\-]*")


def lexicon(task, head, kind, labels, train, test, span_label=None, min_count: int = 2, rate: float = 0.5) -> Outputs:
    """Mark the test words that were inside a gold span in >= `rate` of >= `min_count` train occurrences."""
    seen, marked = Counter(), Counter()
    for r in train:
        spans = gold_spans(r, span_label)
        for m in _WORD.finditer(r["text"]):
            w = m.group().lower()
            seen[w] += 1
            if any(s <= m.start() and m.end() <= e for s, e in spans):
                marked[w] += 1
    lex = {w for w, n in seen.items() if n >= min_count and marked[w] / n >= rate}
    spans = [
        merge_spans([m.span() for m in _WORD.finditer(r["text"]) if m.group().lower() in lex], r["text"]) for r in test
    ]
    out = _frame(task, head, kind, labels, test, encode_gold(test, head, kind, labels, span_label), spans=spans)
    out.info = {"lexicon_size": len(lex)}
    return out


BASELINES = {"majority": majority, "tfidf_lr": tfidf_lr}


def run_baselines(
    task: str,
    head: str,
    kind: str,
    train: list[dict],
    test: list[dict],
    *,
    validation: list[dict] | None = None,
    labels: list[str] | None = None,
    span_label: str | None = None,
    systems=SYSTEMS,
    c_grid=(0.3, 1.0, 3.0, 10.0),
    multilabel_c: float = 1.0,
    refit: bool = False,
) -> dict[str, Outputs]:
    """{system: Outputs} for the labeled records of `head` (records with a null label are left out).

    `validation` (the dataset's validation split) is only used to pick tfidf_lr's C.
    """
    train, test = labeled(train, head), labeled(test, head)
    if not train:
        raise ValueError(f"{task}: no train record labels head {head!r}")
    if not test:
        raise ValueError(f"{task}: no test record labels head {head!r}")
    labels = labels or label_set(kind, train, test, head=head)
    out = {}
    for name in systems:
        name = "lexicon" if (kind == "token" and name == "tfidf_lr") else name
        if name == "tfidf_lr":
            out[name] = tfidf_lr(task, head, kind, labels, train, test, span_label,
                                 validation=validation, c_grid=c_grid, multilabel_c=multilabel_c, refit=refit)
        elif name == "lexicon":
            out[name] = lexicon(task, head, kind, labels, train, test, span_label)
        else:
            out[name] = BASELINES[name](task, head, kind, labels, train, test, span_label)
    return out
