"""Training's data: the configured datasets' splits, capped and re-cut as the run asks, as
record lists with their token lengths.

The loop, the thresholds CLI (which rebuilds a run's validation records) and
bench/train_cost.py draw their records here, so all three see the same rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf


def subset(ds, cap: int | None, seed: int):
    """`cap` rows of `ds` drawn with `seed`, kept in their order; `ds` itself when it has no more."""
    if cap is None or len(ds) <= cap:
        return ds
    idx = np.random.default_rng(seed).permutation(len(ds))[:cap]
    return ds.select(sorted(idx.tolist()))


def dataset_caps(node) -> dict[str, int]:
    """{dataset: cap} of a `data.train_caps`/`data.eval_caps` node; null caps are left out."""
    return {str(k): int(v) for k, v in (OmegaConf.to_container(node) if node is not None else {}).items() if v is not None}


def refold_splits(dsd, name: str, setting):
    """data.refold={k, fold}: train+validation re-cut into k folds (biascard.data.splits.refold)."""
    if not setting:
        return dsd
    from biascard.data.splits import refold as recut

    return recut(dsd, name, int(setting["k"]), int(setting["fold"]), seed=setting.get("seed"))


def records(ds) -> list[dict]:
    return ds.to_list()


def token_lengths(tokenizer, recs: list[dict], max_length: int, max_chunks: int | None) -> list[int]:
    """Token counts (capped where chunking would cut), the key of length grouping."""
    cap = max_length * max_chunks if max_chunks else None
    out = []
    for start in range(0, len(recs), 1000):
        texts = [r["text"] for r in recs[start : start + 1000]]
        if cap:
            # a WordPiece token spans < 8 characters nearly always: clip long articles first
            texts = [t[: cap * 8] for t in texts]
        ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        out.extend(min(len(x), cap) if cap else len(x) for x in ids)
    return out


def load_data(cfg: DictConfig, log, accelerator) -> dict[str, dict[str, Any]]:
    """{dataset: {"train", "validation", "full"}}: the capped train and validation splits (caps
    logged) and the uncapped DatasetDict they came from."""
    from biascard.data.prepare import prepare_report

    names = list(cfg.data.datasets)
    if not names:
        raise ValueError("data.datasets is empty")
    train_caps, eval_caps = dataset_caps(cfg.data.get("train_caps")), dataset_caps(cfg.data.get("eval_caps"))
    kwargs = {}
    if cfg.paths.get("data_dir"):
        kwargs["data_dir"] = Path(cfg.paths.data_dir)
    if cfg.paths.get("cache_dir"):
        kwargs["cache_dir"] = Path(cfg.paths.cache_dir)
    out = {}
    seed = int(cfg.trainer.seed)
    for name in names:
        # the main process fills the arrow cache first; the others then read it
        with accelerator.main_process_first():
            dsd, report = prepare_report(name, **kwargs)
        if report.bad or report.removed:
            log.message(f"{name}: {report.note(name)}", level="warning")
        for split in ("train", "validation"):
            if split not in dsd:
                raise ValueError(f"dataset {name!r} has no {split!r} split")
        dsd = refold_splits(dsd, name, cfg.data.get("refold"))
        if cfg.data.get("refold"):
            log.message(f"{name}: train+validation re-cut, fold {cfg.data.refold.fold} of {cfg.data.refold.k} validates")
        train = subset(dsd["train"], train_caps.get(name), seed)
        val = subset(dsd["validation"], eval_caps.get(name), seed + 1)
        out[name] = {"train": train, "validation": val, "full": dsd}
        log.message(
            f"data {name}: train {len(train)}/{len(dsd['train'])}, validation {len(val)}/{len(dsd['validation'])}",
            dataset=name, train_records=len(train), validation_records=len(val),
        )
    return out


def select_heads(cfg: DictConfig, data: dict, log):
    """Heads from cfg.heads that have training labels, with label sets resolved from the data."""
    from biascard.model.heads import load_heads, resolve_labels

    heads = load_heads(cfg.heads)
    labeled: set[str] = set()
    for parts in data.values():
        for row in parts["train"]["labels"]:  # the capped rows, not the table under select()
            labeled.update(k for k, v in row.items() if v is not None)
    missing = [h for h in heads if h not in labeled]
    if missing:
        if not cfg.data.get("drop_unlabeled_heads", True):
            raise ValueError(f"heads {missing} have no labels in the train splits of {list(cfg.data.datasets)}")
        log.message(f"heads without training labels in these datasets, not trained: {missing}",
                    level="warning", dropped_heads=missing)
        heads = {k: v for k, v in heads.items() if k not in missing}
    if not heads:
        raise ValueError(f"no head of cfg.heads has labels in {list(cfg.data.datasets)}")
    # label sets from the full train splits (not the capped ones), checked on validation
    sources = [{"train": p["full"]["train"], "validation": p["full"]["validation"]} for p in data.values()]
    return resolve_labels(heads, sources)


def validation_records(names, tokenizer, max_length: int, max_chunks: int | None, caps: dict | None = None,
                       seed: int = 43, refold: dict | None = None, **prepare_kwargs) -> dict:
    """{dataset: (records, token lengths)} of the validation splits, as `load_data` draws them
    (datasets without validation records left out)."""
    from biascard.data.prepare import prepare

    out = {}
    for name in names:
        dsd = prepare(name, **prepare_kwargs)
        if "validation" not in dsd:
            raise ValueError(f"dataset {name!r} has no validation split")
        dsd = refold_splits(dsd, name, refold)
        recs = records(subset(dsd["validation"], (caps or {}).get(name), seed))
        if recs:
            out[name] = (recs, token_lengths(tokenizer, recs, max_length, max_chunks))
    return out
