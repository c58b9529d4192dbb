"""Deterministic, group-aware splits and the leak check every prepared dataset passes."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from .errors import DataError
from .records import text_key

SPLITS = ("train", "validation", "test")


def group_split(
    records: list[dict],
    *,
    seed: int,
    test: float = 0.15,
    validation: float = 0.15,
    stratify: str | None = None,
) -> dict[str, list[dict]]:
    """Split so no group (and no identical text) lands in two splits.

    Records sharing a text are merged into one group first, so duplicates cannot leak.
    With `stratify`, the label (a head name) is balanced with StratifiedGroupKFold.
    """
    groups = connected_groups(records)
    idx = np.arange(len(records))
    if stratify:
        y = [str(r["labels"][stratify]) for r in records]
        test_idx = _stratified_fold(idx, y, groups, test, seed)
        rest = np.setdiff1d(idx, test_idx)
        val_share = validation / (1.0 - test)
        val_local = _stratified_fold(
            np.arange(len(rest)), [y[i] for i in rest], [groups[i] for i in rest], val_share, seed + 1
        )
        val_idx = rest[val_local]
    else:
        gss = GroupShuffleSplit(n_splits=1, test_size=test, random_state=seed)
        rest, test_idx = next(gss.split(idx, groups=groups))
        gss = GroupShuffleSplit(n_splits=1, test_size=validation / (1.0 - test), random_state=seed + 1)
        tr_local, val_local = next(gss.split(rest, groups=[groups[i] for i in rest]))
        val_idx = rest[val_local]
    assign = np.zeros(len(records), dtype=int)
    assign[val_idx] = 1
    assign[test_idx] = 2
    out = {name: [] for name in SPLITS}
    for i, r in enumerate(records):
        out[SPLITS[assign[i]]].append(r)
    return out


def _stratified_fold(idx, y, groups, share: float, seed: int) -> np.ndarray:
    n_splits = max(2, round(1.0 / share))
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(skf.split(idx, y, groups))
    return np.asarray(idx)[held]


def connected_groups(records: list[dict]) -> list[str]:
    """A component id per record: records sharing a group or a text are connected (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in records:
        a, b = find("g:" + r["group"]), find("t:" + text_key(r["text"]))
        if a != b:
            parent[a] = b
    return [find("g:" + r["group"]) for r in records]


def check_no_leak(splits: dict[str, list[dict]] | object, name: str = "") -> None:
    """Raise if any normalized text or group appears in more than one split."""
    seen_text: dict[str, str] = {}
    seen_group: dict[str, str] = {}
    problems: list[str] = []
    for split in splits:
        rows = splits[split]
        texts = rows["text"] if not isinstance(rows, list) else [r["text"] for r in rows]
        grps = rows["group"] if not isinstance(rows, list) else [r["group"] for r in rows]
        for text, group in zip(texts, grps):
            key = text_key(text)
            other = seen_text.setdefault(key, split)
            if other != split:
                problems.append(f"text in {other} and {split}: {text[:60]!r}")
            other = seen_group.setdefault(group, split)
            if other != split:
                problems.append(f"group {group!r} in {other} and {split}")
    if problems:
        head = "\n  ".join(problems[:10])
        raise DataError(f"{name}: {len(problems)} leak(s) across splits:\n  {head}")


def drop_leaks_into(
    protected: dict[str, list[dict]], target: str, report, file: str, why: str
) -> None:
    """Remove from split `target` the records whose text also sits in another split.

    Used where an official split overlaps itself; each removal is recorded in the report.
    """
    other_keys = defaultdict(set)
    for split, rows in protected.items():
        if split != target:
            for r in rows:
                other_keys[text_key(r["text"])].add(split)
    kept = []
    for r in protected[target]:
        where = other_keys.get(text_key(r["text"]))
        if where:
            report.remove(file, r.get("_line"), f"{why}: text also in {sorted(where)} (id {r['id']})")
        else:
            kept.append(r)
    protected[target] = kept


def fold_assignment(name: str, records: list[dict], k: int, seed: int | None) -> tuple[list[int | None], str]:
    """Fold index per record (None: not in any fold), and a sentence saying how it was made."""
    import importlib

    try:
        mod = importlib.import_module(f"biascard.data.adapters.{name}")
    except ImportError:
        mod = None
    kw = {} if seed is None else {"seed": int(seed)}
    if name == "babe" and hasattr(mod, "babe_folds"):
        return list(mod.babe_folds(records, k=k, **kw)), (
            "folds from biascard.data.adapters.babe.babe_folds: stratified by language_bias, "
            "grouped by article link and identical text")
    if hasattr(mod, "cv_folds"):
        return list(mod.cv_folds(records, k=k, **kw)), f"folds from biascard.data.adapters.{name}.cv_folds"
    groups = connected_groups(records)
    heads = getattr(getattr(importlib.import_module("biascard.data.adapters"), "ADAPTERS").get(name), "heads", ())
    y = [str(r["labels"].get(heads[0])) if heads else "0" for r in records]
    folds = np.zeros(len(records), dtype=int)
    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=0 if seed is None else int(seed))
    for i, (_, held) in enumerate(skf.split(np.arange(len(records)), y, groups)):
        folds[held] = i
    return folds.tolist(), f"folds from StratifiedGroupKFold (stratified by {heads[0] if heads else '-'}, grouped by record group)"


def refold(dsd, name: str, k: int, fold: int, seed: int | None = None):
    """`dsd` with train+validation pooled and re-cut by `fold_assignment`: fold `fold` of k is the
    validation split, the other folds the train split, test untouched. k models, one per fold,
    make a cross-validation ensemble whose test split none of them saw."""
    from datasets import DatasetDict, concatenate_datasets

    if not (k >= 2 and 0 <= fold < k):
        raise DataError(f"{name}: refold needs k >= 2 and 0 <= fold < k (got k={k}, fold={fold})")
    pool = concatenate_datasets([dsd["train"], dsd["validation"]])
    records = pool.to_list()
    folds, _ = fold_assignment(name, records, k, seed)
    # records in no fold (GVFC: not relevant) train, unless they share a group or text with the fold
    comp = connected_groups(records)
    held = {c for c, f in zip(comp, folds) if f == fold}
    is_val = [f == fold or (f is None and c in held) for c, f in zip(comp, folds)]
    val = [i for i, v in enumerate(is_val) if v]
    train = [i for i, v in enumerate(is_val) if not v]
    out = DatasetDict({**dsd, "train": pool.select(train), "validation": pool.select(val)})
    check_no_leak(out, name)
    return out
