"""Head declarations (configs/heads/*.yaml) and their label sets.

A head is declared as `name: {type, level, labels, loss_weight[, span_label, class_weight,
focal_gamma, thresholds, threshold_fit, lexical, fitted]}`. `labels: null` means "take the label set from
the data" (`resolve_labels`). `lexical` (sequence heads; null = off) adds a bag of hashed word
n-grams of the whole text whose logits add to the head's (`biascard.model.lexical`); `fitted`, a
linear model over n-grams mixed into them (`biascard.model.fitted_lexical`). Both checked in `head_options`.
`class_weight: balanced` is also resolved from the train data (n / (K * n_c) per class) and
saved as the list it became. `thresholds` (binary: one number, multilabel: one per label) are
the decision thresholds on P(label); null = 0.5. They are fit on validation data after training
(`biascard.train.thresholds`) and saved with the model, so eval and serve decide alike. A
multilabel threshold above 1 means "never predicted" (none reached the fit's target precision);
`threshold_fit` records how they were fit, so the card can say what a threshold means.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .head_options import LEXICAL_DEFAULTS, fitted_options, lexical_options, to_container  # noqa: F401

HEAD_TYPES = ("binary", "multiclass", "multilabel", "ordinal", "regression", "token")
LEVELS = ("sentence", "document")

# Label sets that are fixed by the head type, whatever the data says.
DEFAULT_LABELS = {
    "binary": ["0", "1"],
    "ordinal": ["1", "2", "3", "4", "5"],
    "token": ["O", "BIASED"],
    "regression": [],
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a ModuleDict key: no dots


@dataclasses.dataclass
class HeadSpec:
    name: str
    type: str
    level: str = "sentence"
    labels: list[str] | None = None
    loss_weight: float = 1.0
    # token heads: only spans with this label mark tokens (None = every span)
    span_label: str | None = None
    # binary/multiclass: None, "balanced" (resolved from train counts) or one weight per label;
    # multilabel: the weight of each label's positives (BCE pos_weight), "balanced" = n_neg / n_pos
    class_weight: Any = None
    # binary/multiclass/multilabel: focal loss (1 - p_t)^gamma * CE; 0 = plain cross-entropy
    focal_gamma: float = 0.0
    # binary: [t], multilabel: one per label; predicted when P >= t (None = 0.5; multilabel t > 1: never)
    thresholds: list[float] | None = None
    # how `thresholds` were fit, e.g. {"mode": "target_precision", "target_precision": 0.8, ...}
    threshold_fit: dict | None = None
    # sequence heads: {buckets, dim} of a hashed word uni+bigram bag (true = defaults; null = off)
    lexical: Any = None
    # {features, weight[, C]} of a fitted lexical model (`biascard.model.fitted_lexical`; null = none)
    fitted: Any = None

    def __post_init__(self):
        where = f"head {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"{where}: name must be an identifier (no dots or spaces)")
        if self.type not in HEAD_TYPES:
            raise ValueError(f"{where}: type {self.type!r} is not one of {HEAD_TYPES}")
        if self.level not in LEVELS:
            raise ValueError(f"{where}: level {self.level!r} is not one of {LEVELS}")
        try:
            self.loss_weight = float(self.loss_weight)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: loss_weight {self.loss_weight!r} is not a number") from None
        if not self.loss_weight >= 0:
            raise ValueError(f"{where}: loss_weight must be >= 0, got {self.loss_weight}")
        try:
            self.focal_gamma = float(self.focal_gamma)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: focal_gamma {self.focal_gamma!r} is not a number") from None
        if self.focal_gamma < 0 or (self.focal_gamma and self.type not in ("binary", "multiclass", "multilabel")):
            raise ValueError(f"{where}: focal_gamma must be >= 0 and only on binary/multiclass/multilabel heads")
        if self.class_weight is not None:
            if self.type not in ("binary", "multiclass", "multilabel"):
                raise ValueError(f"{where}: class_weight is for binary, multiclass and multilabel heads, not {self.type}")
            if isinstance(self.class_weight, str):
                if self.class_weight != "balanced":
                    raise ValueError(f"{where}: class_weight {self.class_weight!r}: use 'balanced' or a list of weights")
            else:
                try:
                    self.class_weight = [float(w) for w in self.class_weight]
                except (TypeError, ValueError):
                    raise ValueError(f"{where}: class_weight must be 'balanced' or a list of numbers") from None
                if not all(w > 0 for w in self.class_weight):
                    raise ValueError(f"{where}: class weights must be > 0, got {self.class_weight}")
        if self.thresholds is not None:
            if self.type not in ("binary", "multilabel"):
                raise ValueError(f"{where}: thresholds are for binary and multilabel heads, not {self.type}")
            if isinstance(self.thresholds, (int, float)):
                self.thresholds = [self.thresholds]
            try:
                self.thresholds = [float(t) for t in self.thresholds]
            except (TypeError, ValueError):
                raise ValueError(f"{where}: thresholds must be a list of numbers, got {self.thresholds!r}") from None
            # multilabel: above 1 (finite, so config.json stays plain JSON) = the label is never predicted
            never = self.type == "multilabel"
            if not all(0.0 < t < 1.0 or (never and 1.0 < t < float("inf")) for t in self.thresholds):
                raise ValueError(f"{where}: thresholds must lie in (0, 1)" + (", or above 1 for never" if never else "")
                                 + f", got {self.thresholds}")
        if self.threshold_fit is not None:
            if not isinstance(self.threshold_fit, Mapping) or not isinstance(self.threshold_fit.get("mode"), str):
                raise ValueError(f"{where}: threshold_fit must be a mapping with a `mode`, got {self.threshold_fit!r}")
            self.threshold_fit = dict(self.threshold_fit)
        self.lexical = lexical_options(self.lexical, where, self.type)
        self.fitted = fitted_options(self.fitted, where, self.type)
        if self.labels is None and self.type in DEFAULT_LABELS:
            self.labels = list(DEFAULT_LABELS[self.type])  # fixed by the type, not the data
        if self.labels is not None:
            if isinstance(self.labels, (str, bytes)) or not isinstance(self.labels, Iterable):
                raise ValueError(f"{where}: labels must be a list or null, got {self.labels!r}")
            self.labels = [str(x) for x in self.labels]
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"{where}: labels repeat a value: {self.labels}")
            self._check_label_count()
            if isinstance(self.class_weight, list) and len(self.class_weight) != len(self.labels):
                raise ValueError(f"{where}: class_weight has {len(self.class_weight)} weights for "
                                 f"{len(self.labels)} labels {self.labels}")
            want = 1 if self.type == "binary" else len(self.labels)
            if self.thresholds is not None and len(self.thresholds) != want:
                raise ValueError(f"{where}: {len(self.thresholds)} thresholds for a {self.type} head "
                                 f"with {len(self.labels)} labels (expected {want})")

    def _check_label_count(self):
        n, where = len(self.labels), f"head {self.name!r}"
        if self.type in ("binary", "token") and n != 2:
            raise ValueError(f"{where}: a {self.type} head has 2 labels (negative, positive), got {n}")
        if self.type == "multiclass" and n < 2:
            raise ValueError(f"{where}: a multiclass head needs >= 2 labels, got {self.labels}")
        if self.type == "multilabel" and n < 1:
            raise ValueError(f"{where}: a multilabel head needs >= 1 label")
        if self.type == "ordinal" and n < 2:
            raise ValueError(f"{where}: an ordinal head needs >= 2 ranks, got {self.labels}")

    @property
    def resolved(self) -> bool:
        return self.labels is not None

    @property
    def num_labels(self) -> int:
        self._require_labels()
        return len(self.labels)

    @property
    def num_outputs(self) -> int:
        """Width of the head's linear layer."""
        if self.type in ("binary", "regression"):
            return 1
        if self.type == "token":
            return 2
        if self.type == "ordinal":
            return self.num_labels - 1  # CORN: one conditional logit per rank boundary
        return self.num_labels

    @property
    def is_token(self) -> bool:
        return self.type == "token"

    @property
    def id2label(self) -> dict[str, str]:
        self._require_labels()
        return {str(i): label for i, label in enumerate(self.labels)}

    @property
    def label2id(self) -> dict[str, int]:
        self._require_labels()
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def problem_type(self) -> str:
        return {
            "binary": "binary_classification",
            "multiclass": "single_label_classification",
            "multilabel": "multi_label_classification",
            "ordinal": "ordinal_corn",
            "regression": "regression",
            "token": "token_classification",
        }[self.type]

    def _require_labels(self):
        if self.labels is None:
            raise ValueError(f"head {self.name!r}: labels are null; call resolve_labels() first")

    def to_dict(self) -> dict:
        """The spec as stored in config.json (label maps included when resolved)."""
        out = {
            "type": self.type,
            "level": self.level,
            "labels": None if self.labels is None else list(self.labels),
            "loss_weight": self.loss_weight,
            "span_label": self.span_label,
            "class_weight": self.class_weight,
            "focal_gamma": self.focal_gamma,
            "thresholds": self.thresholds,
            "problem_type": self.problem_type,
        }
        if self.threshold_fit is not None:  # absent when unset: older config.json files stay as they were
            out["threshold_fit"] = self.threshold_fit
        if self.lexical is not None:  # likewise: a head without the branch saves what it did before
            out["lexical"] = dict(self.lexical)
        out.update({"fitted": dict(self.fitted)} if self.fitted is not None else {})  # likewise
        if self.labels is not None:
            out["id2label"] = self.id2label
            out["label2id"] = self.label2id
        return out

    @classmethod
    def from_dict(cls, name: str, spec: Mapping) -> "HeadSpec":
        if not isinstance(spec, Mapping):
            raise ValueError(f"head {name!r}: expected a mapping, got {spec!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        derived = {"id2label", "label2id", "problem_type"}  # written by to_dict, recomputed
        unknown = set(spec) - known - derived
        if unknown:
            raise ValueError(f"head {name!r}: unknown keys {sorted(unknown)} (allowed: {sorted(known)})")
        if "type" not in spec:
            raise ValueError(f"head {name!r}: missing `type`")
        kwargs = {k: v for k, v in spec.items() if k in known}
        if kwargs.get("labels") is not None:
            kwargs["labels"] = list(kwargs["labels"])
        return cls(name=name, **kwargs)


def load_heads(cfg_mapping: Any) -> dict[str, HeadSpec]:
    """Heads from the Hydra `heads` node, a plain dict of dicts, or a dict of HeadSpec."""
    cfg = to_container(cfg_mapping)
    if not isinstance(cfg, Mapping) or not cfg:
        raise ValueError(f"heads: expected a non-empty mapping name -> spec, got {cfg!r}")
    out: dict[str, HeadSpec] = {}
    for name, spec in cfg.items():
        if isinstance(spec, HeadSpec):
            if spec.name != name:
                raise ValueError(f"head {name!r}: HeadSpec is named {spec.name!r}")
            out[name] = dataclasses.replace(spec)
        else:
            out[str(name)] = HeadSpec.from_dict(str(name), to_container(spec))
    return out


# ---------------------------------------------------------------- labels from data


def _splits(source: Any) -> list[tuple[str, Any]]:
    """(split name, rows) pairs from a DatasetDict, a list of them, a Dataset or records."""
    if isinstance(source, Mapping):  # DatasetDict or {split: rows}
        return [(str(k), v) for k, v in source.items()]
    if isinstance(source, (list, tuple)):
        if source and isinstance(source[0], Mapping) and "text" in source[0]:
            return [("train", source)]  # plain records
        return [pair for s in source for pair in _splits(s)]
    return [("train", source)]  # a single Dataset


def _label_column(rows: Any) -> list[Mapping]:
    """The `labels` column as python dicts; read through arrow when it is a Dataset."""
    if hasattr(rows, "select_columns") and hasattr(rows, "with_format"):
        # arrow formatting honours select/shuffle/filter indices, unlike `Dataset.data`
        return rows.select_columns(["labels"]).with_format("arrow")[:]["labels"].to_pylist()
    return [r.get("labels") or {} for r in rows]


def _values(head: HeadSpec, value: Any, where: str) -> list[str]:
    """The label strings one record's value contributes, type-checked."""
    if head.type in ("multilabel", "token"):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"{where}: head {head.name!r} expects a list, got {value!r}")
        return [] if head.type == "token" else [str(v) for v in value]
    if head.type == "regression":
        try:
            float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: head {head.name!r} expects a number, got {value!r}") from None
        return []
    if head.type == "binary":
        if isinstance(value, bool) or value in (0, 1):
            return [str(int(value))]
        if isinstance(value, str):
            return [value]
        raise ValueError(f"{where}: head {head.name!r} expects 0/1, got {value!r}")
    if head.type == "ordinal" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return [str(value)]


def _balanced(head: HeadSpec, labels: list[str], counts: Counter, n_records: int) -> list[float]:
    """n / (K * n_c) per label from the train counts (binary data says 0/1: index = value);
    multilabel: n_neg / n_pos per label, the weight of its positives."""
    per = [counts.get(label, 0) + (counts.get(str(i), 0) if head.type == "binary" and label != str(i) else 0)
           for i, label in enumerate(labels)]
    n, k = sum(per), len(labels)
    if not n:
        raise ValueError(f"head {head.name!r}: class_weight balanced needs labeled train records")
    if head.type == "multilabel":
        return [round((n_records - c) / c, 6) if c else 1.0 for c in per]
    return [round(n / (k * c), 6) if c else 1.0 for c in per]


def _sort_key(label: str):
    # "2" before "10" when every label is a number
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def resolve_labels(
    heads: Mapping[str, HeadSpec] | Any,
    dataset_dicts: Any,
    train_splits: tuple[str, ...] = ("train",),
) -> dict[str, HeadSpec]:
    """Fill `labels: null` from the data and check every data value against the labels.

    `dataset_dicts`: a DatasetDict (or mapping split -> Dataset / list of records), a list
    of those, or a plain list of records (treated as train). Null label sets are taken
    from `train_splits`; values in every split must then be known, else ValueError naming
    the head, value and split. Binary, ordinal and token heads have fixed default sets.
    """
    heads = load_heads(heads)
    seen: dict[str, dict[str, set[str]]] = {name: {} for name in heads}  # head -> split -> values
    counts: dict[str, Counter] = {name: Counter() for name in heads}  # train values, for class_weight
    n_train: Counter = Counter()  # labeled train records per head
    for split, rows in _splits(dataset_dicts):
        for i, labels in enumerate(_label_column(rows)):
            labels = labels or {}
            for name, head in heads.items():
                value = labels.get(name)
                if value is None:
                    continue
                where = f"split {split!r} row {i}"
                values = _values(head, value, where)
                seen[name].setdefault(split, set()).update(values)
                if split in train_splits:
                    counts[name].update(values)
                    n_train[name] += 1

    out: dict[str, HeadSpec] = {}
    for name, head in heads.items():
        labels = head.labels
        if labels is None:
            if head.type in DEFAULT_LABELS:
                labels = list(DEFAULT_LABELS[head.type])
            else:
                train_values = set().union(*(v for s, v in seen[name].items() if s in train_splits))
                if not train_values:
                    raise ValueError(
                        f"head {name!r}: labels are null and no {'/'.join(train_splits)} record "
                        f"has a value for it; declare the labels or drop the head"
                    )
                labels = sorted(train_values, key=_sort_key)
        weight = head.class_weight
        if weight == "balanced":
            weight = _balanced(head, labels, counts[name], n_train[name])
        resolved = dataclasses.replace(head, labels=labels, class_weight=weight)
        known = set(resolved.labels)
        if head.type == "binary":
            known |= {"0", "1"}  # data says 0/1; labels only name the two classes
        if head.type not in ("token", "regression"):
            for split, values in sorted(seen[name].items()):
                unknown = sorted(values - known, key=_sort_key)
                if unknown:
                    source = "declared" if head.labels is not None else f"taken from {'/'.join(train_splits)}"
                    raise ValueError(
                        f"head {name!r}: value {unknown[0]!r} in split {split!r} is not among its "
                        f"labels {resolved.labels} ({source}); unknown values: {unknown}"
                    )
        out[name] = resolved
    return out
