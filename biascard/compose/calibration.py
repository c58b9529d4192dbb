"""The composer's 1-5 scale: article statistics of sentence probabilities, cut points, and
fitting the cut points at quantiles of the statistic over validation articles.

No public dataset gives 1-5 scores for these concepts, so nothing here learns a mapping to
human scores: a calibrated score reads as a rank against the validation articles.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biascard.card.contract import CONCEPTS
from biascard.model import model_dir

from .sentences import split_sentences

STATISTICS = ("share_above", "top_k_mean", "mean")


def check_cut_points(cuts: Any, where: str) -> list[float]:
    if not isinstance(cuts, (list, tuple)) or len(cuts) != 4:
        raise ValueError(f"{where}: cut_points must be a list of 4 numbers, got {cuts!r}")
    try:
        cuts = [float(c) for c in cuts]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: cut_points must be numbers, got {cuts!r}") from None
    if any(b < a for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"{where}: cut_points must be ascending, got {cuts}")
    return cuts


def score_from_statistic(stat: float, cuts: Sequence[float]) -> int:
    # strictly above: ties at a degenerate cut (many articles at 0) stay low
    return 1 + sum(1 for c in cuts if stat > c)


def article_statistic(probs: np.ndarray, statistic: str, threshold: float, top_k: int) -> float | None:
    """The article-level statistic of its sentences' concept probabilities (None: no sentence)."""
    if probs.size == 0:
        return None
    if statistic == "share_above":
        return float((probs >= threshold).mean())
    if statistic == "top_k_mean":
        k = max(1, min(int(top_k), probs.size))
        return float(np.sort(probs)[-k:].mean())
    if statistic == "mean":
        return float(probs.mean())
    raise ValueError(f"unknown statistic {statistic!r}; one of {STATISTICS}")


def load_calibration(path: str | Path | None) -> dict | None:
    """A composer.json (file or model dir), checked; None when there is none."""
    data = model_dir.read_calibration(path)
    if data is None:
        return None
    if not isinstance(data.get("concepts"), dict):
        raise ValueError(f"{path}: expected an object with a `concepts` mapping")
    for name, entry in data["concepts"].items():
        if name not in CONCEPTS:
            raise ValueError(f"{path}: concepts.{name} is not one of {CONCEPTS}")
        check_cut_points(entry.get("cut_points"), f"{path}: concepts.{name}")
        if entry.get("statistic") not in STATISTICS:
            raise ValueError(f"{path}: concepts.{name}.statistic must be one of {STATISTICS}")
    data["_path"] = str(path)
    return data




def articles_from_split(records, pseudo_size: int, cap: int, seed: int, min_sentences: int = 5) -> list[list[str]]:
    """Sentence lists: article records split into sentences, sentence records grouped by
    doc_id (groups under `min_sentences` join the pseudo-articles: a 1-2 sentence "article"
    only has shares of 0, 0.5 or 1)."""
    articles: list[list[str]] = []
    by_doc: dict[str, list[str]] = defaultdict(list)
    loose: list[str] = []
    for r in records:
        text = r.get("text") or ""
        if r.get("unit") == "article":
            sents = [s.text for s in split_sentences(text)]
            if sents:
                articles.append(sents)
        elif r.get("doc_id"):
            by_doc[r["doc_id"]].append(text)
        elif text.strip():
            loose.append(text)
    for _, sents in sorted(by_doc.items()):
        if len(sents) >= min_sentences:
            articles.append(sents)
        else:
            loose += sents
    rng = random.Random(seed)
    rng.shuffle(loose)  # data files are often sorted by label; pseudo-articles should mix
    size = max(1, int(pseudo_size))
    articles += [loose[i : i + size] for i in range(0, len(loose), size)]
    if cap and len(articles) > cap:
        articles = rng.sample(articles, cap)
    return articles


def fit(composer, articles: list[list[str]], quantiles: list[float], batch_articles: int = 16) -> dict:
    """Per concept with sentence heads: cut points at `quantiles` of the article statistic."""
    if len(quantiles) != 4 or any(not 0 < q < 1 for q in quantiles) or sorted(quantiles) != list(quantiles):
        raise ValueError(f"calibrate.quantiles must be 4 ascending numbers in (0, 1), got {quantiles}")
    values: dict[str, list[float]] = defaultdict(list)
    for lo in range(0, len(articles), batch_articles):
        for concept, vals in composer.sentence_statistics(articles[lo : lo + batch_articles]).items():
            values[concept] += vals
    out = {}
    for concept in CONCEPTS:
        plan = composer.plan[concept]
        vals = np.asarray(values.get(concept, []), dtype=float)
        if not plan["heads"] or vals.size == 0:
            continue
        cfg = composer.settings["concepts"][concept]
        cuts = [float(x) for x in np.quantile(vals, quantiles)]
        out[concept] = {
            "statistic": cfg.get("statistic", "share_above"),
            "threshold": float(cfg.get("threshold", 0.5)),
            "top_k": int(cfg.get("top_k", 3)),
            "heads": [h["head"] for h in plan["heads"]],
            "cut_points": [round(c, 6) for c in cuts],
            "n_articles": int(vals.size),
            "summary": {"min": float(vals.min()), "median": float(np.median(vals)), "max": float(vals.max())},
        }
        if len(set(cuts)) < 4:
            # e.g. every validation sentence above the threshold: ties leave some scores unreachable
            out[concept]["degenerate"] = True
        if plan["mode"] == "document":
            out[concept]["note"] = f"the model has {plan['document_head']}; these cut points apply only if it is dropped"
    return out
