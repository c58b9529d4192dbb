"""The composer's 1-5 scale: article statistics of sentence probabilities, cut points, and
fitting the cut points at quantiles of the statistic over validation articles.

No public dataset gives 1-5 scores for these concepts, so nothing here learns a mapping to
human scores: a calibrated score reads as a rank against the validation articles.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
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


# expected_score stays below score + 1, so that floor(expected_score) == score even for a
# statistic exactly on a cut point (which the score counts low)
MAX_FRACTION = 0.999


def expected_from_statistic(stat: float, cuts: Sequence[float]) -> float:
    """The continuous 1-5 score: `score + fraction`, where fraction is the statistic's linear
    position in its bin: from the lower cut point (0 for score 1: every statistic here lies in
    [0, 1]) to the upper one, capped at MAX_FRACTION. Score 5 has no upper cut point: 5.0.
    A bin whose cut points are tied (degenerate calibration) has fraction 0, no division.
    So floor(expected_score) == score and expected_score ranks articles within a score."""
    score = score_from_statistic(stat, cuts)
    if score == 5:
        return 5.0
    hi = float(cuts[score - 1])
    lo = min(0.0, hi) if score == 1 else float(cuts[score - 2])
    frac = (stat - lo) / (hi - lo) if hi > lo else 0.0
    return round(score + min(max(frac, 0.0), MAX_FRACTION), 4)


def sentence_weights(quoted: Sequence[bool], quote_weight: float) -> np.ndarray:
    """Each sentence's weight in an article statistic: 1 for the outlet's own voice,
    `quote_weight` for a quotation or attributed speech."""
    return np.where(np.asarray(quoted, dtype=bool), float(quote_weight), 1.0) if len(quoted) else np.zeros(0)


def weighted_top_k_mean(probs: np.ndarray, weights: np.ndarray, top_k: int) -> float:
    """Mean over the first k units of weight, strongest sentences first (a sentence of weight
    0.5 fills half a slot); k is at most the total weight."""
    k = min(float(max(1, int(top_k))), float(weights.sum()))
    total, filled = 0.0, 0.0
    for j in np.argsort(-probs, kind="stable"):
        take = min(float(weights[j]), k - filled)
        if take <= 0:
            continue
        total += take * float(probs[j])
        filled += take
        if filled >= k:
            break
    return total / k


def article_statistic(probs: np.ndarray, statistic: str, threshold: float, top_k: int,
                      weights: np.ndarray | Sequence[float] | None = None) -> float | None:
    """The article-level statistic of its sentences' concept probabilities, each sentence
    weighted (`sentence_weights`; None = all 1): share_above = weighted share at or above
    `threshold`, top_k_mean = `weighted_top_k_mean`, mean = weighted mean.
    None when there is no sentence or no weight."""
    probs = np.asarray(probs, dtype=float)
    w = np.ones(probs.size) if weights is None else np.asarray(weights, dtype=float)
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; one of {STATISTICS}")
    if probs.size == 0 or w.sum() <= 0:
        return None
    if statistic == "share_above":
        return float(np.dot(w, probs >= threshold) / w.sum())
    if statistic == "top_k_mean":
        return weighted_top_k_mean(probs, w, top_k)
    return float(np.dot(w, probs) / w.sum())


def shrink(stat: float, n: float, prior: float, prior_weight: float) -> float:
    """The statistic pulled toward `prior` as if `prior_weight` more sentences sat at it:
    (n * stat + a * prior) / (n + a), n = the article's (weighted) sentence count. For
    share_above and mean, n * stat is the sum over sentences; a long article barely moves, a
    short one cannot reach 4/5 on one borderline sentence."""
    if prior_weight <= 0 or n + prior_weight <= 0:
        return float(stat)
    return float((n * stat + prior_weight * prior) / (n + prior_weight))


def fit_scoring(settings: Mapping) -> dict:
    """The quote and short-text settings a fit uses (`composer.quotes`, `composer.short_text`)."""
    quotes, short = settings.get("quotes") or {}, settings.get("short_text") or {}
    return {"quote_weight": float(quotes.get("weight", 0.0)),
            "prior_weight": float(short.get("prior_weight", 2.0)),
            "min_sentences": float(short.get("min_sentences", 3))}


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
        for key, lo, hi in (("prior", 0.0, 1.0), ("quote_weight", 0.0, 1.0), ("prior_weight", 0.0, float("inf"))):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not lo <= value <= hi):
                raise ValueError(f"{path}: concepts.{name}.{key} must be a number in [{lo}, {hi}], got {value!r}")
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


def fit_values(values: list, scoring: Mapping) -> tuple[np.ndarray, dict] | None:
    """Cut-point material from one concept's article values: each a statistic (older
    composers) or (raw statistic, weighted sentence count). Articles under min_sentences are
    left out (their cards get no score); the rest are shrunk toward the median raw statistic,
    as cards are (`shrink`)."""
    pairs = [(float(v), None) if isinstance(v, (int, float)) else (float(v[0]), float(v[1])) for v in values]
    kept = [(s, n) for s, n in pairs if n is None or n >= scoring["min_sentences"]]
    if not kept:
        return None
    raw = np.asarray([s for s, _ in kept])
    prior = float(np.median(raw))
    shrunk = np.asarray([s if n is None else shrink(s, n, prior, scoring["prior_weight"]) for s, n in kept])
    info = {"n_articles": len(kept),
            "summary": {"min": float(raw.min()), "median": prior, "max": float(raw.max())}}
    if any(n is not None for _, n in kept):  # only then were quotes weighted and values shrunk
        info.update(prior=round(prior, 6), quote_weight=scoring["quote_weight"], prior_weight=scoring["prior_weight"])
    info["n_too_short"] = len(pairs) - len(kept)
    return shrunk, info


def fit(composer, articles: list[list[str]], quantiles: list[float], batch_articles: int = 16) -> dict:
    """Per concept with sentence heads: cut points at `quantiles` of the article statistic."""
    if len(quantiles) != 4 or any(not 0 < q < 1 for q in quantiles) or sorted(quantiles) != list(quantiles):
        raise ValueError(f"calibrate.quantiles must be 4 ascending numbers in (0, 1), got {quantiles}")
    values: dict[str, list] = defaultdict(list)
    for lo in range(0, len(articles), batch_articles):
        for concept, vals in composer.sentence_statistics(articles[lo : lo + batch_articles]).items():
            values[concept] += vals
    scoring = fit_scoring(composer.settings)
    out = {}
    for concept in CONCEPTS:
        plan = composer.plan[concept]
        fitted = fit_values(values.get(concept, []), scoring) if plan["heads"] else None
        if fitted is None:
            continue
        vals, info = fitted
        cfg = composer.settings["concepts"][concept]
        cuts = [float(x) for x in np.quantile(vals, quantiles)]
        out[concept] = {
            "statistic": cfg.get("statistic", "share_above"),
            "threshold": float(cfg.get("threshold", 0.5)),
            "top_k": int(cfg.get("top_k", 3)),
            "heads": [h["head"] for h in plan["heads"]],
            "cut_points": [round(c, 6) for c in cuts],
            **info,
        }
        if len(set(cuts)) < 4:
            # e.g. every validation sentence above the threshold: ties leave some scores unreachable
            out[concept]["degenerate"] = True
        if plan["mode"] == "document":
            out[concept]["note"] = f"the model has {plan['document_head']}; these cut points apply only if it is dropped"
    return out
