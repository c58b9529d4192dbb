"""Compose bias cards from a multi-head model's outputs, for a batch of articles at once.

Per batch of articles the model runs twice, whatever the number of articles:
  1. one forward over every sentence of every article (all sentence heads + the token head);
  2. one forward over the chunks of every whole article (the document heads), reading at most
     the model's `max_chunks` chunks per article, as eval does.
`composer.runtime` (configs/serve.yaml) sets how the passes run (`runtime.py`).

The four 1-5 scores, per concept:
  - the document-level ordinal head (`card_<concept>`, CORN) when the model has one: score
    = CORN rank, expected_score and distribution from its class probabilities;
  - otherwise derived from sentence heads (configs/serve.yaml → composer.concepts): a
    sentence's concept probability is the max over the concept's heads, an article
    statistic (share of sentences above a threshold, mean of the top k, or the mean)
    is mapped to 1-5 by 4 cut points (`calibration.py`); expected_score/distribution stay null;
  - neither: score null, evidence [] (the model cannot estimate it).
Evidence = the concept's strongest sentences (offsets into the input text), with the words
the token head marks. A head the model lacks leaves its card field null or empty.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biascard.card.contract import CONCEPT_LABELS, CONCEPTS, SCHEMA_VERSION, SDG_NAMES, validate
from biascard.model import model_dir

from . import explain
from .article import Article
from .calibration import article_statistic, load_calibration, score_from_statistic
from .plan import plan_concept
from .runtime import forward_heads, prepare_model, resolve_runtime
from .sentences import Sentence, split_sentences
from .settings import composer_settings

LEANINGS = ("left", "center", "right")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def _label_int(label: str) -> int | None:
    m = re.search(r"\d+", str(label))
    return int(m.group()) if m else None


class Composer:
    """Holds a model, its tokenizer and the mapping; `compose(articles)` → cards (dicts).

    `settings`: layers merged over the composed `composer` config (`settings.composer_settings`),
    a mapping or a list of mappings, later ones winning."""

    def __init__(self, model, tokenizer, settings: Mapping | Sequence[Mapping] | None = None, *,
                 calibration: dict | None = None, name: str = "biascard", version: str = "unknown"):
        layers = [settings] if settings is None or isinstance(settings, Mapping) else list(settings)
        self.settings = composer_settings(*layers)
        self.tokenizer = tokenizer
        self.runtime = resolve_runtime(self.settings.get("runtime"))
        self.model = prepare_model(model, self.runtime["precision"])
        self.calibration = calibration
        self.name, self.version = name, version
        self.specs = model.config.head_specs()
        self.max_chunks = model.config.max_chunks
        self.plan = {c: plan_concept(c, self.settings["concepts"][c], self.specs, calibration,
                                     self.settings["default_cut_points"]) for c in CONCEPTS}
        token_head = self.settings.get("token_head")
        self.token_head = token_head if token_head in self.specs and self.specs[token_head].is_token else None
        # sentence heads feed derived scores and the evidence of document-head scores alike
        self.sentence_heads = sorted({h["head"] for p in self.plan.values() for h in p["heads"]})
        self.need_sentences = bool(self.sentence_heads)

    @classmethod
    def from_model_dir(cls, directory: str | Path, settings: Mapping | Sequence[Mapping] | None = None, *,
                       name: str = "biascard", version: str | None = None) -> "Composer":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a server log wants no "Loading weights" bars
        model, tokenizer = model_dir.load(directory)
        composer = cls(model, tokenizer, settings, name=name, version=version or model_dir.weights_version(directory))
        configured = composer.settings.get("calibration")
        calibration = load_calibration(configured or directory)
        if configured and calibration is None:
            raise FileNotFoundError(f"calibration file {configured} not found")
        if calibration is not None:
            composer.set_calibration(calibration)
        return composer

    def set_calibration(self, calibration: dict | None) -> None:
        self.calibration = calibration
        self.plan = {c: plan_concept(c, self.settings["concepts"][c], self.specs, calibration,
                                     self.settings["default_cut_points"]) for c in CONCEPTS}

    # ------------------------------------------------------------ forward passes

    def forward(self, texts: list[str], *, offsets: bool, max_chunks: int | None = None) -> dict[str, Any]:
        """Head outputs for `texts` (`runtime.forward_heads`); `offsets` adds the token head's."""
        return forward_heads(self.model, self.tokenizer, texts, self.runtime,
                             token_head=self.token_head if offsets else None, max_chunks=max_chunks,
                             batch_size=self.settings.get("sentence_batch_size"))

    def document_text(self, a: Article) -> str:
        # AllSides training records read "title\n\nbody"; the evidence offsets index `text` only
        if a.title and self.settings.get("document_includes_title", True):
            return f"{a.title}\n\n{a.text}"
        return a.text

    # ------------------------------------------------------------ composing

    def compose(self, articles: Sequence[Article]) -> list[dict]:
        articles = list(articles)
        if not articles:
            return []
        sentences = [split_sentences(a.text) for a in articles]
        flat = [s for ss in sentences for s in ss]
        sent_out = None
        if flat and (self.need_sentences or self.token_head):
            sent_out = self.forward([s.text for s in flat], offsets=self.token_head is not None)
        doc_out = self.forward([self.document_text(a) for a in articles], offsets=False, max_chunks=self.max_chunks)
        # per-sentence token probabilities (a long sentence may span several chunks)
        words_of: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for rec, p, om in (sent_out or {}).get("tokens", []):
            words_of.setdefault(rec, []).append((p, om))
        cards, pos = [], 0
        for i, a in enumerate(articles):
            idx = list(range(pos, pos + len(sentences[i])))
            pos += len(sentences[i])
            card = self._card(a, i, _Sentences(sentences[i], idx, sent_out, words_of), doc_out)
            validate(card)  # a card off the schema is a bug here: fail loudly, never serve it
            cards.append(card)
        return cards

    def concept_probs(self, plan: dict, sent_out, idx: list[int]) -> np.ndarray:
        """A concept's probability per sentence `idx` of a sentence pass: the max over its heads."""
        cols = []
        for h in plan["heads"]:
            p = sent_out["probs"][h["head"]][idx]
            cols.append(p if h["type"] == "binary" else p[:, h["index"]].sum(axis=1))
        return np.max(np.stack(cols), axis=0) if cols else np.zeros(0)

    def _words(self, text: str, parts: list[tuple[np.ndarray, np.ndarray]]) -> list[str]:
        thr = float(self.settings.get("token_threshold", 0.5))
        spans = [(int(s), int(e)) for p, om in parts for prob, (s, e) in zip(p, om) if e > s and prob >= thr]
        words, seen = [], set()
        for m in _WORD.finditer(text):  # whole words, not WordPiece fragments
            if any(s < m.end() and e > m.start() for s, e in spans) and m.group() not in seen:
                seen.add(m.group())
                words.append(m.group())
        return words

    def _evidence(self, probs: np.ndarray, sents: "_Sentences") -> list[dict]:
        k = int(self.settings.get("evidence_k", 3))
        floor = float(self.settings.get("evidence_min_probability", 0.5))
        out = []
        for j in sorted(range(len(probs)), key=lambda j: (-probs[j], j))[:k]:
            if probs[j] < floor:
                break
            s = sents.items[j]
            item = {"text": s.text, "start": s.start, "end": s.end, "score": round(float(probs[j]), 4)}
            if self.token_head:
                item["words"] = self._words(s.text, sents.words_of.get(sents.idx[j], []))
            out.append(item)
        return out

    def _concept(self, concept: str, sents: "_Sentences", doc_out, i: int) -> dict:
        plan = self.plan[concept]
        entry = {"concept": concept, "label": CONCEPT_LABELS[concept], "score": None,
                 "expected_score": None, "distribution": None, "evidence": [], "explanation": None}
        usable = plan["heads"] and sents.out is not None
        probs = self.concept_probs(plan, sents.out, sents.idx) if usable else np.zeros(0)
        if plan["heads"] and probs.size:
            entry["evidence"] = self._evidence(probs, sents)
        if plan["mode"] == "document":
            self._document_score(entry, plan, doc_out, i)
        elif plan["mode"] == "derived":
            self._derived_score(entry, plan, probs)
        else:
            entry["explanation"] = explain.not_estimated(plan, self.specs)
        return entry

    def _document_score(self, entry: dict, plan: dict, doc_out, i: int) -> None:
        head = plan["document_head"]
        dist = doc_out["probs"][head][i]
        rank = int(doc_out["ranks"][head][i])
        values = [_label_int(lab) for lab in self.specs[head].labels]
        if values == [1, 2, 3, 4, 5]:
            entry["score"] = rank + 1
            entry["distribution"] = [round(float(x), 4) for x in dist]
            entry["expected_score"] = round(float(np.dot(dist, np.arange(1, 6))), 4)
        elif values[rank] is not None and 1 <= values[rank] <= 5:
            entry["score"] = values[rank]
        entry["explanation"] = explain.document(plan, bool(entry["evidence"]))

    def _derived_score(self, entry: dict, plan: dict, probs: np.ndarray) -> None:
        stat = article_statistic(probs, plan["statistic"], plan["threshold"], plan["top_k"])
        if stat is not None:
            entry["score"] = score_from_statistic(stat, plan["cut_points"])
        entry["explanation"] = explain.derived(plan, probs, stat)

    def _card(self, a: Article, i: int, sents: "_Sentences", doc_out) -> dict:
        probs = doc_out["probs"]
        return {
            "schema_version": SCHEMA_VERSION,
            "id": a.id,
            "title": a.title,
            "source": a.source,
            "language": None,  # no language-id head: not estimated
            "model": {"name": self.name, "version": self.version, "heads": sorted(self.specs)},
            "cognitive_concepts": [self._concept(c, sents, doc_out, i) for c in CONCEPTS],
            "sdgs": self._sdgs(probs, i),
            "topics": self._topics(probs, i),
            "political_leaning": self._leaning(probs, i),
        }

    def _document_spec(self, head: str, types: tuple[str, ...]):
        spec = self.specs.get(head)
        return spec if spec is not None and spec.level == "document" and spec.type in types else None

    def _sdgs(self, probs, i: int) -> list[dict]:
        spec = self._document_spec("sdg", ("multilabel", "multiclass"))
        if spec is None:
            return []
        p = probs["sdg"][i]
        polarity = self._document_label("sdg_polarity", i, probs, ("positive", "negative"))
        relevance = self._document_label("sdg_relevance", i, probs, ("direct", "indirect"))
        cut = self._label_thresholds(spec, self.settings["sdg_threshold"])
        goals = []
        for j, lab in enumerate(spec.labels):
            g = _label_int(lab)
            if g is not None and 1 <= g <= 17 and p[j] >= cut[j]:
                goals.append({"goal": g, "name": SDG_NAMES[g], "probability": round(float(p[j]), 4),
                              "polarity": polarity, "relevance": relevance})
        goals.sort(key=lambda x: (-x["probability"], x["goal"]))
        return goals[: int(self.settings["sdg_max"])]

    def _topics(self, probs, i: int) -> list[dict]:
        spec = self._document_spec("topic", ("multilabel", "multiclass"))
        if spec is None:
            return []
        p = probs["topic"][i]
        order = sorted(range(len(p)), key=lambda j: (-p[j], j))[: int(self.settings["topic_k"])]
        cut = self._label_thresholds(spec, self.settings["topic_threshold"])
        return [{"label": spec.labels[j], "probability": round(float(p[j]), 4)} for j in order if p[j] >= cut[j]]

    def _leaning(self, probs, i: int) -> dict | None:
        spec = self._document_spec("political_leaning", ("multiclass",))
        if spec is None:
            return None
        p = probs["political_leaning"][i]
        known = [j for j, lab in enumerate(spec.labels) if lab in LEANINGS]
        if not known:  # a label outside left/center/right cannot be put on the card
            return None
        best = max(known, key=lambda j: p[j])
        return {"label": spec.labels[best], "distribution": {lab: round(float(x), 4) for lab, x in zip(spec.labels, p)}}

    def _label_thresholds(self, spec, default) -> list[float]:
        """Per label: the threshold fit on validation and saved with the model (multilabel heads,
        composer.use_model_thresholds), else the composer's one `default`."""
        if spec.type == "multilabel" and spec.thresholds is not None and self.settings.get("use_model_thresholds", True):
            return list(spec.thresholds)
        return [float(default)] * len(spec.labels)

    def _document_label(self, head: str, i: int, probs, allowed: tuple[str, ...]) -> str | None:
        spec = self.specs.get(head)
        if spec is None or spec.type != "multiclass" or head not in probs:
            return None
        label = spec.labels[int(np.argmax(probs[head][i]))]
        return label if label in allowed else None

    def sentence_statistics(self, texts: list[list[str]]) -> dict[str, list[float]]:
        """Per concept, the article statistic of each article given as its sentences
        (used by calibration; concepts without sentence heads are absent)."""
        flat = [t for sents in texts for t in sents]
        if not flat or not self.sentence_heads:
            return {}
        sent_out = self.forward(flat, offsets=False)
        bounds = np.cumsum([0] + [len(s) for s in texts])
        spans = [list(range(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        out: dict[str, list[float]] = {}
        for concept, plan in self.plan.items():
            if not plan["heads"]:
                continue
            cfg = self.settings["concepts"][concept]
            stats = (article_statistic(self.concept_probs(plan, sent_out, idx), cfg.get("statistic", "share_above"),
                                       float(cfg.get("threshold", 0.5)), int(cfg.get("top_k", 3))) for idx in spans)
            out[concept] = [s for s in stats if s is not None]
        return out


class _Sentences:
    """One article's sentences, their rows in the sentence pass, and its token probabilities."""

    def __init__(self, items: list[Sentence], idx: list[int], out: dict | None, words_of: dict):
        self.items, self.idx, self.out, self.words_of = items, idx, out, words_of
