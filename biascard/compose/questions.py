"""The card's three key questions (the seed card's pattern: underlying causes, immediate
implications, long-term effects), each answered by 1-2 of the article's own sentences.

Two steps around the composer's single sentence pass:
  1. before it, `question_texts` builds the questions from templates about the article's
     subject (its title, else its most mentioned name), and `ranking_texts` the texts whose
     embeddings rank the answers; the composer appends the latter to the pass;
  2. after it, `key_questions` scores each sentence per question by
       (1 - cue_weight) * embedding score + cue_weight * cue score
     where the embedding score is the min-max scaled cosine to the question's ranking text
     plus `contrast` x how much more it matches this question than the mean of the three (all
     three share the article's topic; the contrast is what tells causes from effects), and
     the cue score counts cue phrases ("because", "will", "could", ...): a classifier's
     fine-tuned embeddings may be weak at this, the words are not. Questions then take their
     sentences greedily, best (question, sentence) pair first, so each gets different
     sentences where the article has enough.
Settings: `composer.key_questions` (configs/serve.yaml).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from .summary import candidates, lexical_vectors, minmax, section, sentence_vectors, span, unit_rows

KINDS = ("causes", "implications", "long_term")
TEMPLATES = {
    "causes": "What are the underlying causes of {subject}?",
    "implications": "What are the immediate implications of {subject}, and who is affected?",
    "long_term": "What are the potential long-term effects of {subject}?",
}
# appended to a question for its ranking text: declarative words an answer would contain
RANKING_HINTS = {
    "causes": "This happened because of, due to, after and amid these reasons, which led to it.",
    "implications": "As a result it now means that people must, will and are required to act immediately.",
    "long_term": "In the future and over the coming years it could, may and is likely to have lasting effects.",
}
CUES = {
    "causes": """because|due to|owing to|after|amid|led to|leading to|caused|causes|cause of|result of|
        as a result of|reason|reasons|prompted|sparked|triggered|stem from|stems from|stemmed|blamed|
        driven by|in response to|following|concerns|struggled|failed to|since""",
    "implications": """will|now|must|means|meaning|immediately|immediate|effective|takes effect|
        required|requires|has to|have to|ordered|affects|affected|impact|consequences|sentenced|fined|
        banned|plans to|set to|next|this week|today|on monday|on tuesday|on wednesday|on thursday|
        on friday|would replace""",
    "long_term": """could|may|might|future|years|long-term|long term|decades|eventually|potentially|
        likely|expected to|over time|lasting|precedent|deter|trend|coming years|generations|ultimately|
        over the life|in the long run|for years""",
}
DEFAULTS = {
    "enabled": True,
    "answer_sentences": 2,
    "cue_weight": 0.5,
    "contrast": 1.0,
    # a second answer sentence only when it scores at least this share of the first
    "second_sentence_ratio": 0.8,
    "min_words": 6,
    "max_words": 60,
    "max_title_chars": 120,
    # hint: the cue hints alone, the same for every article, so the composer embeds them once
    # (no per-article texts in the pass); question | question_hint: per article, in the pass
    "ranking": "hint",
    "templates": TEMPLATES,
}
_CUE_RE = {k: re.compile(r"\b(?:" + "|".join(p.strip() for p in v.split("|")) + r")\b", re.IGNORECASE)
           for k, v in CUES.items()}
# a run of capitalised words, possibly joined by "of", "the", "for", "and" or "'s"
_INSTITUTION = frozenset(
    """Court Department Ministry Council Senate House Congress Parliament Party Commission Agency
    Union Board Bank Office Administration Service Police Army Government Committee Authority
    Organization Organisation Association Institute University States Nations Kingdom Republic
    Federation Assembly Cabinet Bureau Fund Foundation Group Company Corporation""".split()
)
_NAME = re.compile(r"[A-Z][\w'’.-]*(?:\s+(?:(?:of|the|for|and|de|la)\s+)*[A-Z][\w'’.-]*)*")


def _settings(settings: Mapping | None) -> dict:
    cfg = section(settings, "key_questions", DEFAULTS)
    cfg["templates"] = {**TEMPLATES, **(cfg.get("templates") or {})}
    return cfg


def _items(sents) -> list:
    return list(getattr(sents, "items", sents) or [])


def main_name(items: Sequence) -> str | None:
    """The most mentioned capitalised name of the article, with "the" when the article puts
    one before it (sentence-initial single words do not count: "The", "Officials"); ties go to
    the earliest."""
    counts: dict[str, list[int]] = {}
    for k, s in enumerate(items):
        for m in _NAME.finditer(s.text):
            name = m.group().strip(".’'")
            name = name.removeprefix("The ")
            n_words = len(name.split())
            # > 4 capitalised words in a row is a title-case headline, not a name
            if len(name) < 3 or n_words > 4 or (n_words == 1 and m.start() == 0):
                continue
            c = counts.setdefault(name, [0, k])
            c[0] += 1 + (" " in name)  # a full name beats a lone word
    if not counts:
        return None
    best = min(counts, key=lambda n: (-counts[n][0], counts[n][1]))
    # institutions take "the" ("the Supreme Court", "the Ministry of Health"); people do not
    first, last = best.split()[0], best.split()[-1]
    return f"the {best}" if last in _INSTITUTION or first in _INSTITUTION else best


def subject(title: str | None, sents, settings: Mapping | None = None) -> str:
    """The noun phrase the questions are about."""
    cfg = _settings(settings)
    title = " ".join((title or "").split())
    if title:
        cap = int(cfg.get("max_title_chars", 120))
        if len(title) > cap:  # cut at a word boundary
            title = title[:cap].rsplit(" ", 1)[0].rstrip(",;:") + "…"
        return f"the events reported in “{title}”"
    name = main_name(_items(sents))
    return f"the events involving {name}" if name else "the events this article reports"


def question_texts(title: str | None, sents, settings: Mapping | None = None) -> list[str]:
    """The 3 questions (causes, implications, long-term effects); [] when disabled.
    `sents`: an ArticleSentences or a list of Sentence (no embeddings needed)."""
    cfg = _settings(settings)
    if not cfg.get("enabled", True):
        return []
    subj = subject(title, sents, settings)
    return [cfg["templates"][k].format(subject=subj) for k in KINDS]


def fixed_ranking(settings: Mapping | None = None) -> bool:
    """Whether the ranking texts are the same for every article (`ranking: hint`)."""
    return _settings(settings).get("ranking", "hint") == "hint"


def ranking_texts(title: str | None, sents, settings: Mapping | None = None) -> list[str]:
    """The texts whose embeddings rank the answers, one per question, same order; [] when
    disabled. With `ranking: hint` they do not depend on the article (`fixed_ranking`)."""
    cfg = _settings(settings)
    if not cfg.get("enabled", True):
        return []
    mode = cfg.get("ranking", "hint")
    if mode == "hint":
        return [RANKING_HINTS[k] for k in KINDS]
    qs = question_texts(title, sents, settings)
    if mode == "question":
        return qs
    return [f"{q} {RANKING_HINTS[k]}" for q, k in zip(qs, KINDS)]


def cue_scores(texts: Sequence[str]) -> np.ndarray:
    """[n, 3] in [0, 1): 1 - 2^-(distinct cue phrases matched)."""
    out = np.zeros((len(texts), len(KINDS)))
    for i, t in enumerate(texts):
        for k, kind in enumerate(KINDS):
            hits = {m.group().lower() for m in _CUE_RE[kind].finditer(t)}
            out[i, k] = 1.0 - 0.5 ** len(hits)
    return out


def relevance(sents, query_embeddings: np.ndarray | None, ranking: Sequence[str], cfg: Mapping) -> np.ndarray:
    """[n_sentences, 3] scores in about [0, 1 + contrast]."""
    if query_embeddings is None or getattr(sents, "embeddings", None) is None:
        # lexical stand-in for both sides, as `summary.sentence_vectors` does for the sentences
        texts = [s.text for s in sents.items]
        vecs = unit_rows(lexical_vectors(texts + list(ranking)))
        unit, query = vecs[: len(texts)], vecs[len(texts):]
    else:
        unit, query = sentence_vectors(sents), unit_rows(query_embeddings)
    sim = unit @ query.T
    contrast = sim - sim.mean(axis=1, keepdims=True)
    emb = sim + float(cfg.get("contrast", 1.0)) * contrast
    emb = np.stack([minmax(emb[:, k]) for k in range(emb.shape[1])], axis=1)
    w = float(cfg.get("cue_weight", 0.5))
    return (1.0 - w) * emb + w * cue_scores([s.text for s in sents.items])


def assign(score: np.ndarray, pool: list[int], per_question: int, ratio: float) -> list[list[int]]:
    """Sentences per question: greedy over (question, sentence) pairs, best first, each sentence
    used once while the pool lasts; a second sentence needs `ratio` x the question's first."""
    nq = score.shape[1]
    got: list[list[int]] = [[] for _ in range(nq)]
    for rnd in range(per_question):
        free = [i for i in pool if not any(i in g for g in got)]
        todo = [q for q in range(nq) if len(got[q]) == rnd]
        while todo:
            pairs = [(q, i) for q in todo for i in free if i not in got[q]]
            if not pairs:  # fewer sentences than answers: reuse the best ones
                pairs = [(q, i) for q in todo for i in pool if i not in got[q]]
            if not pairs:
                break
            q, i = max(pairs, key=lambda p: (score[p[1], p[0]], -p[1]))
            todo.remove(q)
            if rnd and score[i, q] < ratio * score[got[q][0], q]:
                continue
            got[q].append(i)
            if i in free:
                free.remove(i)
    return [sorted(g) for g in got]


def key_questions(sents, question_texts: Sequence[str], query_embeddings: np.ndarray | None,
                  settings: Mapping | None = None, exclude: set[int] | Sequence[int] = (), *,
                  ranking: Sequence[str] | None = None) -> list[dict]:
    """Per question {"question", "answer", "method": "extractive", "evidence": [span]}.
    `query_embeddings`: [len(question_texts), H], the ranking texts' rows of the sentence pass
    (None: lexical ranking on `ranking`, default the questions). `exclude`: sentence indices to
    avoid where possible (e.g. the summary's). [] when disabled or there is no sentence."""
    cfg = _settings(settings)
    if not cfg.get("enabled", True) or not sents.items or not question_texts:
        return []
    if query_embeddings is not None and len(query_embeddings) != len(question_texts):
        raise ValueError(f"{len(query_embeddings)} query embeddings for {len(question_texts)} questions")
    score = relevance(sents, query_embeddings, ranking or question_texts, cfg)[:, : len(question_texts)]
    pool = candidates(sents, cfg, skip_quotes=False)
    kept = [i for i in pool if i not in set(exclude)]
    if len(kept) >= len(question_texts):
        pool = kept
    per = max(1, int(cfg.get("answer_sentences", 2)))
    chosen = assign(score, pool, per, float(cfg.get("second_sentence_ratio", 0.8)))
    return [{
        "question": q,
        "answer": " ".join(sents.items[i].text for i in idx),
        "method": "extractive",
        "evidence": [span(sents, i, score[i, k]) for i in idx],
    } for k, (q, idx) in enumerate(zip(question_texts, chosen))]

