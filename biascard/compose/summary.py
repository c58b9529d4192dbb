"""The card's extractive summary: one or two of the article's own sentences, chosen by
centrality over the sentence embeddings of the composer's single sentence pass.

Ranking (`composer.summary`, configs/serve.yaml):
  - centrality = degree centrality on the cosine graph: a sentence's mean cosine similarity
    to the article's other sentences (negative similarities clipped to 0). It is LexRank's
    continuous graph without the power iteration: on one article (tens of sentences) the
    stationary vector of the row-normalised graph ranks nearly the same, at a fraction of the
    cost, and degree stays meaningful when a fine-tuned encoder's vectors are all similar;
  - min-max scaled per article, plus a mild lead prior `lead_weight / (1 + position)`: in
    news the lead sentence is the classic strong summary (the Lead-3 baseline), and the prior
    guards against weak embeddings, while a clearly more central sentence still wins;
  - the second sentence pays `redundancy` x its cosine to the first (MMR), so two sentences
    that say the same thing are not both chosen.
Candidates skip very short or very long sentences, quotations (`sents.quoted`) and lines with
no terminal punctuation (headlines, datelines), each rule dropped in turn when it would leave
no candidate. Without embeddings, hashed bag-of-words vectors stand in (`lexical_vectors`).
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULTS = {
    "enabled": True,
    "max_sentences": 2,
    "min_words": 6,
    "max_words": 60,
    "max_chars": 450,  # a second sentence only if both fit
    "skip_quotes": True,
    "lead_weight": 0.15,
    "redundancy": 0.5,
}

_WORD = re.compile(r"\w+(?:[-'’]\w+)*")
_TERMINAL = re.compile(r"""[.!?…]["'”’)\]]*$""")
STOPWORDS = frozenset(
    """a an the and or but of to in on at by for with from as is are was were be been being it its
    this that these those he she they them his her their we our you your i not no so than then
    has have had do does did will would can could may might said says also""".split()
)


def section(settings: Mapping | None, name: str, defaults: Mapping) -> dict:
    """`settings[name]` (the composer settings' subsection) over `defaults`."""
    out = dict(defaults)
    out.update((settings or {}).get(name) or {})
    return out


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def lexical_vectors(texts: Sequence[str], dim: int = 1024) -> np.ndarray:
    """Hashed bag-of-content-words vectors [n, dim]: a stand-in when no embeddings came back.
    crc32, not hash(): the same text must give the same vector in every process."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in words(t.lower()):
            if w not in STOPWORDS and len(w) > 1:
                out[i, zlib.crc32(w.encode("utf-8")) % dim] += 1.0
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def sentence_vectors(sents) -> np.ndarray:
    """The article's sentence embeddings, unit rows; lexical vectors when there are none."""
    emb = getattr(sents, "embeddings", None)
    if emb is None or len(emb) != len(sents.items):
        emb = lexical_vectors([s.text for s in sents.items])
    return unit_rows(emb)


def candidates(sents, cfg: Mapping, *, skip_quotes: bool) -> list[int]:
    """Indices of sentences fit to quote; each rule is relaxed in turn rather than return none."""
    n = len(sents.items)
    if not n:
        return []
    lo, hi = int(cfg.get("min_words", 6)), int(cfg.get("max_words", 60))
    quoted = list(getattr(sents, "quoted", None) or [False] * n)
    fits = [lo <= len(words(s.text)) <= hi for s in sents.items]
    ends = [bool(_TERMINAL.search(s.text)) for s in sents.items]
    rules = [fits, ends, [not q for q in quoted]] if skip_quotes else [fits, ends]
    # drop the least important rule first: quotes, then punctuation, then length
    for k in range(len(rules), -1, -1):
        keep = [i for i in range(n) if all(r[i] for r in rules[:k])]
        if keep:
            return keep
    return list(range(n))


def minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 1e-12 else np.zeros_like(x)


def centrality(unit: np.ndarray) -> np.ndarray:
    """Mean clipped cosine of each sentence to the others (degree centrality)."""
    n = len(unit)
    if n < 2:
        return np.ones(n)
    sim = np.clip(unit @ unit.T, 0.0, None)
    np.fill_diagonal(sim, 0.0)
    return sim.sum(axis=1) / (n - 1)


def span(sents, i: int, score: float) -> dict:
    s = sents.items[i]
    return {"text": s.text, "start": int(s.start), "end": int(s.end), "score": round(float(score), 4)}


def summary_scores(sents, cfg: Mapping) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(candidate indices, their scores, unit vectors of all sentences)."""
    unit = sentence_vectors(sents)
    cand = candidates(sents, cfg, skip_quotes=bool(cfg.get("skip_quotes", True)))
    # centrality over the whole article: quotes and headlines still say what it is about
    cent = minmax(centrality(unit))[cand]
    lead = float(cfg.get("lead_weight", 0.15)) / (1.0 + np.asarray(cand, dtype=np.float64))
    return cand, cent + lead, unit


def extractive_summary(sents, settings: Mapping | None = None) -> dict | None:
    """{"text", "method": "extractive", "evidence": [span]} of `sents` (an ArticleSentences),
    or None when the article has no sentence or `composer.summary.enabled` is false.
    `settings` = the composer settings (the `summary` subsection is read)."""
    cfg = section(settings, "summary", DEFAULTS)
    if not cfg.get("enabled", True) or not sents.items:
        return None
    cand, score, unit = summary_scores(sents, cfg)
    order = np.argsort(-score, kind="stable")
    first = cand[int(order[0])]
    chosen = {first: float(score[order[0]])}
    budget = int(cfg.get("max_chars", 450)) - len(sents.items[first].text)
    if int(cfg.get("max_sentences", 2)) >= 2 and len(cand) > 1:
        red = float(cfg.get("redundancy", 0.5)) * np.clip(unit[cand] @ unit[first], 0.0, None)
        mmr = score - red
        for j in np.argsort(-mmr, kind="stable"):
            i = cand[int(j)]
            if i != first and len(sents.items[i].text) + 1 <= budget:
                chosen[i] = float(mmr[j])
                break
    picked = sorted(chosen)  # article order
    return {
        "text": " ".join(sents.items[i].text for i in picked),
        "method": "extractive",
        "evidence": [span(sents, i, chosen[i]) for i in picked],
    }
