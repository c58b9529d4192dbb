"""The four cognitive-concept entries of a card: score, expected score, distribution,
evidence and explanation, from a composer's plan (`plan.py`) and its two forward passes.

Derived scores count the outlet's own voice: quoted sentences (`sents.quoted`, from
`quotes.quoted_flags`) weigh `composer.quotes.weight` in the article statistic. A text with
fewer than `composer.short_text.min_sentences` counted sentences gets no score and a warning;
a longer one has its statistic shrunk toward a prior (`calibration.shrink`), so a few
sentences cannot jump to 4/5. `concept_entries` returns the entries and the card's warnings.

`comp` is the `Composer`: its settings, plan, head specs and token head."""
from __future__ import annotations

import re

import numpy as np

from biascard.card.contract import CONCEPT_LABELS, CONCEPTS

from . import explain
from .calibration import (article_statistic, expected_from_statistic, fit_scoring, score_from_statistic,
                          sentence_weights, shrink)
from .sentences import ArticleSentences

_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def label_int(label: str) -> int | None:
    m = re.search(r"\d+", str(label))
    return int(m.group()) if m else None


def marked_words(comp, text: str, parts: list[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Whole words of `text` (not WordPiece fragments) that the token head marks."""
    thr = float(comp.settings.get("token_threshold", 0.5))
    spans = [(int(s), int(e)) for p, om in parts for prob, (s, e) in zip(p, om) if e > s and prob >= thr]
    words, seen = [], set()
    for m in _WORD.finditer(text):
        if any(s < m.end() and e > m.start() for s, e in spans) and m.group() not in seen:
            seen.add(m.group())
            words.append(m.group())
    return words


def evidence(comp, probs: np.ndarray, sents: ArticleSentences) -> list[dict]:
    k = int(comp.settings.get("evidence_k", 3))
    floor = float(comp.settings.get("evidence_min_probability", 0.5))
    out = []
    for j in sorted(range(len(probs)), key=lambda j: (-probs[j], j))[:k]:
        if probs[j] < floor:
            break
        s = sents.items[j]
        item = {"text": s.text, "start": s.start, "end": s.end, "score": round(float(probs[j]), 4)}
        if comp.token_head:
            item["words"] = marked_words(comp, s.text, sents.words_of.get(sents.idx[j], []))
        item["quoted"] = bool(sents.quoted[j])
        out.append(item)
    return out


def scoring(comp, plan: dict) -> dict:
    """Quote weight, short-text minimum and shrinkage for a plan: what its calibration was fit
    with (`plan.calibrated_scoring`), else `composer.quotes` / `composer.short_text`. The prior
    defaults to midway between the first two cut points, where a validation median falls
    with the default calibration quantiles (0.4 and 0.7)."""
    quotes_cfg = comp.settings.get("quotes") or {}
    short = comp.settings.get("short_text") or {}
    cal = plan.get("calibrated_scoring") or {}
    prior = cal.get("prior", short.get("prior"))
    if prior is None:
        prior = (plan["cut_points"][0] + plan["cut_points"][1]) / 2
    return {"quote_weight": float(cal.get("quote_weight", quotes_cfg.get("weight", 0.0))),
            "prior_weight": float(cal.get("prior_weight", short.get("prior_weight", 2.0))),
            "prior": float(prior), "min_sentences": float(short.get("min_sentences", 3))}


def concept_entries(comp, sents: ArticleSentences, doc_out, i: int) -> tuple[list[dict], list[str]]:
    """The card's four concept entries and the warnings the card should carry (each once)."""
    warnings: list[str] = []
    entries = [concept_entry(comp, c, sents, doc_out, i, warnings) for c in CONCEPTS]
    return entries, list(dict.fromkeys(warnings))


def concept_entry(comp, concept: str, sents: ArticleSentences, doc_out, i: int,
                  warnings: list[str] | None = None) -> dict:
    """One concept's entry; a warning (e.g. too short to score) is appended to `warnings`."""
    plan = comp.plan[concept]
    entry = {"concept": concept, "label": CONCEPT_LABELS[concept], "score": None,
             "expected_score": None, "distribution": None, "evidence": [], "explanation": None}
    usable = plan["heads"] and sents.out is not None
    probs = comp.concept_probs(plan, sents.out, sents.idx) if usable else np.zeros(0)
    if plan["heads"] and probs.size:
        entry["evidence"] = evidence(comp, probs, sents)
    warnings = [] if warnings is None else warnings
    if plan["mode"] == "document":
        document_score(comp, entry, plan, doc_out, i, sents, warnings)
    elif plan["mode"] == "derived":
        derived_score(comp, entry, plan, probs, sents, warnings)
    else:
        entry["explanation"] = explain.not_estimated(entry["label"], plan, comp.specs)
    return entry


def _counts(comp, plan: dict, sents: ArticleSentences) -> dict:
    sc = scoring(comp, plan)
    weights = sentence_weights(sents.quoted, sc["quote_weight"])
    return {**sc, "weights": weights, "n_sentences": len(sents.items), "n_quoted": int(sum(sents.quoted)),
            "n_counted": float(weights.sum()), "cut_source": plan["cut_source"]}


def _short_warning(facts: dict, own_voice: bool) -> str:
    need = f"{max(facts['min_sentences'], 1):g}"
    if not own_voice:
        n = facts["n_sentences"]
        return (f"Too short to score reliably: the text has {n} sentence{'' if n == 1 else 's'} and the bias "
                f"scores need at least {need}, so they are left empty.")
    own = facts["n_sentences"] - facts["n_quoted"]
    return (f"Too little of the text is in the outlet's own voice to score it from its sentences: {own} of "
            f"{facts['n_sentences']} sentences (quotations count {facts['quote_weight']:g}), at least {need} "
            "needed, so the scores derived from sentences are left empty.")


def document_score(comp, entry: dict, plan: dict, doc_out, i: int, sents: ArticleSentences,
                   warnings: list[str]) -> None:
    facts = {**_counts(comp, plan, sents), "evidence": entry["evidence"]}
    if facts["n_sentences"] < facts["min_sentences"]:  # the document head reads quotes too: all count
        warnings.append(_short_warning(facts, own_voice=False))
        entry["explanation"] = explain.too_short(entry["label"], facts, own_voice=False)
        return
    head = plan["document_head"]
    dist = doc_out["probs"][head][i]
    rank = int(doc_out["ranks"][head][i])
    values = [label_int(lab) for lab in comp.specs[head].labels]
    if values == [1, 2, 3, 4, 5]:
        entry["score"] = rank + 1
        entry["distribution"] = [round(float(x), 4) for x in dist]
        entry["expected_score"] = round(float(np.dot(dist, np.arange(1, 6))), 4)
    elif values[rank] is not None and 1 <= values[rank] <= 5:
        entry["score"] = values[rank]
    facts.update(score=entry["score"], expected=entry["expected_score"], probability=float(dist[rank]))
    entry["explanation"] = explain.document(entry["label"], entry["concept"], facts)


def derived_score(comp, entry: dict, plan: dict, probs: np.ndarray, sents: ArticleSentences,
                  warnings: list[str]) -> None:
    facts = {**_counts(comp, plan, sents), "evidence": entry["evidence"], "plan": plan}
    if facts["n_counted"] < facts["min_sentences"] or facts["n_counted"] <= 0 or not probs.size:
        # enough sentences but too few in the outlet's own voice: say that, not "too short"
        own_voice = 0 < facts["n_sentences"] and facts["n_sentences"] >= facts["min_sentences"]
        warnings.append(_short_warning(facts, own_voice))
        entry["explanation"] = explain.too_short(entry["label"], facts, own_voice)
        return
    w = facts["weights"]
    raw = article_statistic(probs, plan["statistic"], plan["threshold"], plan["top_k"], weights=w)
    stat = shrink(raw, facts["n_counted"], facts["prior"], facts["prior_weight"])
    entry["score"] = score_from_statistic(stat, plan["cut_points"])
    entry["expected_score"] = expected_from_statistic(stat, plan["cut_points"])
    flagged = probs >= plan["threshold"]
    quoted = np.asarray(sents.quoted, dtype=bool)
    facts.update(score=entry["score"], expected=entry["expected_score"], raw=raw, stat=stat,
                 flagged=int(flagged.sum()), flagged_quoted=int((flagged & quoted).sum()))
    entry["explanation"] = explain.derived(entry["label"], entry["concept"], facts)


def fit_value(comp, concept: str, probs: np.ndarray, quoted: list[bool]) -> tuple[float, float] | None:
    """One validation article's (raw statistic, weighted sentence count) for `calibration.fit`,
    with the configured statistic and quote weight (not an older calibration's)."""
    cfg = comp.settings["concepts"][concept]
    weights = sentence_weights(quoted, fit_scoring(comp.settings)["quote_weight"])
    stat = article_statistic(probs, cfg.get("statistic", "share_above"), float(cfg.get("threshold", 0.5)),
                             int(cfg.get("top_k", 3)), weights=weights)
    return None if stat is None else (stat, float(weights.sum()))
