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

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, strip_accents="unicode")


def _lr():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0)


def tfidf_lr(task, head, kind, labels, train, test, span_label=None) -> Outputs:
    if kind == "token":
        return lexicon(task, head, kind, labels, train, test, span_label)
    from sklearn.multiclass import OneVsRestClassifier

    gold = encode_gold(test, head, kind, labels, span_label)
    y = encode_gold(train, head, kind, labels, span_label)
    vec = _vectorizer()
    x_train = vec.fit_transform([r["text"] for r in train])
    x_test = vec.transform([r["text"] for r in test])
    with warnings.catch_warnings():
        # labels absent from train get a constant predictor; that is the honest answer
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        if kind == "multilabel":
            clf = OneVsRestClassifier(_lr()).fit(x_train, y)
            prob = clf.predict_proba(x_test)
        else:
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(f"{task}: the train split has a single class; tfidf_lr cannot be fitted")
            clf = _lr().fit(x_train, y)
            p = clf.predict_proba(x_test)
            width = 2 if kind == "binary" else len(labels)
            prob = np.zeros((len(test), width))
            prob[:, clf.classes_] = p
            if kind == "binary":
                prob = prob[:, 1]
    return _frame(task, head, kind, labels, test, gold, prob=prob)


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
    return _frame(task, head, kind, labels, test, encode_gold(test, head, kind, labels, span_label), spans=spans)


BASELINES = {"majority": majority, "tfidf_lr": tfidf_lr}


def run_baselines(
    task: str,
    head: str,
    kind: str,
    train: list[dict],
    test: list[dict],
    *,
    labels: list[str] | None = None,
    span_label: str | None = None,
    systems=SYSTEMS,
) -> dict[str, Outputs]:
    """{system: Outputs} for the labeled records of `head` (records with a null label are left out)."""
    train, test = labeled(train, head), labeled(test, head)
    if not train:
        raise ValueError(f"{task}: no train record labels head {head!r}")
    if not test:
        raise ValueError(f"{task}: no test record labels head {head!r}")
    labels = labels or label_set(kind, train, test, head=head)
    out = {}
    for name in systems:
        name = "lexicon" if (kind == "token" and name == "tfidf_lr") else name
        fn = lexicon if name == "lexicon" else BASELINES[name]
        out[name] = fn(task, head, kind, labels, train, test, span_label)
    return out
