"""Compose bias cards from a multi-head model's outputs, for a batch of articles at once.

Per batch of articles the model runs twice, whatever the number of articles:
  1. one forward over every sentence of every article (all sentence heads + the token head,
     and the pooled sentence embeddings), with the key questions' query texts in the same pass;
  2. one forward over the chunks of every whole article (the document heads), reading at most
     the model's `max_chunks` chunks per article, as eval does.
A `document_reading: sentences` model runs once: its document heads pool pass 1's sentence
vectors (and the title's, read in the same pass) with attention (`reading.py`).
`composer.runtime` (configs/serve.yaml) sets how the passes run (`runtime.py`).

What each part of the card comes from:
  - the four 1-5 scores (`concepts.py`): the document-level ordinal head `card_<concept>` when
    the model has one, else sentence heads turned into one article statistic and mapped to 1-5
    by 4 cut points (`calibration.py`), quotes and attributed speech (`quotes.py`) weighted by
    `composer.quotes.weight`, short texts shrunk toward a prior or left unscored with a warning;
    every score has a continuous expected_score and a prose explanation (`explain.py`);
  - SDGs, topics, leaning (`goals.py`): document heads over calibrated thresholds; each SDG's
    evidence is the sdg head read sentence by sentence;
  - summary and key questions (`summary.py`, `questions.py`): the article's own sentences,
    ranked with the sentence embeddings of pass 1; an optional causal LM (`generate.py`,
    off by default) rewrites them as prose, marked `generated`, the cited sentences kept;
  - people, organisations, places (`entities.py`, spaCy) and language (`language.py`, langid).
A head the model lacks leaves its card field null or empty.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biascard.card.contract import CONCEPTS, SCHEMA_VERSION, validate
from biascard.model import model_dir

from . import goals
from .article import Article
from .calibration import load_calibration
from .concepts import concept_entries, fit_value
from .entities import EntityExtractor
from .generate import Generator
from .language import detect_language, english_warning
from .questions import fixed_ranking, key_questions, question_texts, ranking_texts
from .quotes import quoted_flags, quoted_in_sentences
from .summary import extractive_summary
from .plan import plan_concept
from .reading import document_outputs, reads_sentences
from .runtime import forward_heads, prepare_model, resolve_runtime
from .sentences import ArticleSentences, split_sentences
from .settings import composer_settings


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
        # the sdg head read sentence by sentence gives each listed goal its evidence; the summary
        # and the key questions read the sentence embeddings of the same pass
        self.one_pass = reads_sentences(model)
        self.need_sentences = (self.one_pass or bool(self.sentence_heads) or self._enabled("summary")
                               or self._enabled("key_questions")
                               or goals.document_spec(self, "sdg", ("multilabel", "multiclass")) is not None)
        self.entities = EntityExtractor(self.settings.get("entities"))
        self.generator = Generator.from_settings(self.settings)  # off by default: None
        self._query_embeddings = None  # of the fixed ranking texts, on first use

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

    def _enabled(self, section: str) -> bool:
        return bool((self.settings.get(section) or {}).get("enabled", True))

    # ------------------------------------------------------------ forward passes

    def forward(self, texts: list[str], *, offsets: bool, max_chunks: int | None = None,
                embeddings: bool = False) -> dict[str, Any]:
        """Head outputs for `texts` (`runtime.forward_heads`); `offsets` adds the token head's,
        `embeddings` the pooled vectors."""
        return forward_heads(self.model, self.tokenizer, texts, self.runtime,
                             token_head=self.token_head if offsets else None, max_chunks=max_chunks,
                             batch_size=self.settings.get("sentence_batch_size"), embeddings=embeddings)

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
        asked = [question_texts(a.title, ss, self.settings) for a, ss in zip(articles, sentences)]
        # per-article ranking texts ride in the sentence pass; fixed ones are embedded once
        fixed = fixed_ranking(self.settings)
        queries = [ranking_texts(a.title, ss, self.settings) if q and not fixed else []
                   for a, ss, q in zip(articles, sentences, asked)]
        titles = [a.title if self.one_pass and a.title and self.settings.get("document_includes_title", True)
                  else None for a in articles]
        sent_out = self._sentence_pass(sentences, queries, [t for t in titles if t])
        documents = [self.document_text(a) for a in articles]
        if self.one_pass:
            doc_out = self._documents(sent_out, sentences, titles, documents)
        else:
            doc_out = self.forward(documents, offsets=False, max_chunks=self.max_chunks)
        # per-sentence token probabilities (a long sentence may span several chunks)
        words_of: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for rec, p, om in (sent_out or {}).get("tokens", []):
            words_of.setdefault(rec, []).append((p, om))
        texts = [a.text for a in articles]
        extras = {"entities": self.entities.extract(texts),
                  "language": detect_language(texts, self.settings.get("language")), "questions": asked}
        emb = (sent_out or {}).get("embeddings")
        cards, pos, qpos = [], 0, sum(len(ss) for ss in sentences)
        for i, a in enumerate(articles):
            idx = list(range(pos, pos + len(sentences[i])))
            pos += len(sentences[i])
            sents = ArticleSentences(a.text, sentences[i], idx, sent_out, words_of,
                                     embeddings=emb[idx] if emb is not None else None,
                                     quoted=quoted_flags(a.text, sentences[i]))
            extra = {k: v[i] for k, v in extras.items()}
            if queries[i] and emb is not None:
                extra["query_embeddings"] = emb[qpos:qpos + len(queries[i])]
            else:
                extra["query_embeddings"] = self._fixed_queries() if fixed and asked[i] and emb is not None else None
            qpos += len(queries[i])
            card = self._card(a, i, sents, doc_out, extra)
            validate(card)  # a card off the schema is a bug here: fail loudly, never serve it
            cards.append(card)
        return cards

    def _sentence_pass(self, sentences: list[list], queries: list[list[str]],
                       titles: list[str]) -> dict[str, Any] | None:
        """One forward over every sentence of every article, then the key questions' query
        texts and, for a one-pass model, the titles (rows after the sentences'; no head
        statistic reads them)."""
        flat = [s.text for ss in sentences for s in ss]
        if not (flat or titles) or not (self.need_sentences or self.token_head):
            return None
        want = self.one_pass or self._enabled("summary") or self._enabled("key_questions")
        return self.forward(flat + [q for qs in queries for q in qs] + titles, offsets=self.token_head is not None,
                            embeddings=want)

    def _documents(self, sent_out: dict | None, sentences: list[list], titles: list[str | None],
                   documents: list[str]) -> dict[str, Any]:
        """The document heads of a one-pass model: each article's sentence rows and title row
        (an article with neither, say "!!!", reads as the zero vector plus its lexical bag)."""
        hidden = self.model.encoder.config.hidden_size
        emb = sent_out["embeddings"] if sent_out else np.zeros((0, hidden), dtype=np.float32)
        titled = [i for i, t in enumerate(titles) if t]  # their rows are the pass's last ones
        sentence_owner = [i for i, ss in enumerate(sentences) for _ in ss]
        rows = list(range(len(sentence_owner))) + list(range(len(emb) - len(titled), len(emb)))
        return document_outputs(self.model, emb[rows], sentence_owner + titled, documents)

    def concept_probs(self, plan: dict, sent_out, idx: list[int]) -> np.ndarray:
        """A concept's probability per sentence `idx` of a sentence pass: the max over its heads."""
        cols = []
        for h in plan["heads"]:
            p = sent_out["probs"][h["head"]][idx]
            cols.append(p if h["type"] == "binary" else p[:, h["index"]].sum(axis=1))
        return np.max(np.stack(cols), axis=0) if cols else np.zeros(0)

    def _fixed_queries(self) -> np.ndarray:
        """The article-independent ranking texts' embeddings, computed once, alone in a pass."""
        if self._query_embeddings is None:
            texts = ranking_texts(None, [], self.settings)
            self._query_embeddings = self.forward(texts, offsets=False, embeddings=True)["embeddings"]
        return self._query_embeddings

    def _card(self, a: Article, i: int, sents: ArticleSentences, doc_out, extra: dict) -> dict:
        probs = doc_out["probs"]
        concepts, warnings = concept_entries(self, sents, doc_out, i)
        lang = extra["language"]
        summary, questions, generated = self._reading_aids(a, sents, extra)
        warnings = [w for w in (english_warning(lang), self.entities.warning) if w] + warnings + generated
        return {
            "schema_version": SCHEMA_VERSION,
            "id": a.id,
            "title": a.title,
            "source": a.source,
            "language": lang["code"] if lang and lang["reliable"] else None,
            "model": {"name": self.name, "version": self.version, "heads": sorted(self.specs)},
            "summary": summary,
            "entities": extra["entities"],
            "key_questions": questions,
            "cognitive_concepts": concepts,
            "sdgs": goals.sdgs(self, probs, i, sents),
            "topics": goals.topics(self, probs, i),
            "political_leaning": goals.leaning(self, probs, i),
            "warnings": list(dict.fromkeys(warnings)),
        }

    def _reading_aids(self, a: Article, sents: ArticleSentences, extra: dict) -> tuple[dict | None, list, list[str]]:
        """(summary, key questions, warnings): extractive from the article's sentences, then
        rewritten by the optional generator (`composer.generate`), which keeps the evidence."""
        summary = extractive_summary(sents, self.settings)
        questions = []
        if extra["questions"] and sents.items:
            chosen = {j for j, s in enumerate(sents.items) for e in (summary or {}).get("evidence", [])
                      if (s.start, s.end) == (e["start"], e["end"])}
            questions = key_questions(sents, extra["questions"], extra["query_embeddings"], self.settings,
                                      exclude=chosen)
        warnings: list[str] = []
        if self.generator is not None:
            questions, warnings = self.generator.rewrite_key_questions(a.title, questions)
            if (self.settings.get("generate") or {}).get("summary"):
                summary, more = self.generator.generate_summary(a.title, summary)
                warnings += more
        return summary, questions, warnings

    def sentence_statistics(self, texts: list[list[str]]) -> dict[str, list[tuple[float, float]]]:
        """Per concept, (article statistic, counted sentences) of each article given as its
        sentences, quotes weighted as the card weights them (`concepts.fit_value`; used by
        calibration; concepts without sentence heads are absent)."""
        flat = [t for sents in texts for t in sents]
        if not flat or not self.sentence_heads:
            return {}
        sent_out = self.forward(flat, offsets=False)
        bounds = np.cumsum([0] + [len(s) for s in texts])
        spans = [list(range(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        quoted = [quoted_in_sentences(s) for s in texts]
        out: dict[str, list] = {}
        for concept, plan in self.plan.items():
            if plan["heads"]:
                values = (fit_value(self, concept, self.concept_probs(plan, sent_out, idx), q)
                          for idx, q in zip(spans, quoted))
                out[concept] = [v for v in values if v is not None]
        return out
