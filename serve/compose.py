"""Compose bias cards from a multi-head model's outputs, for a batch of articles at once.

Per batch of articles the model runs twice, whatever the number of articles:
  1. one forward over every sentence of every article (all sentence heads + the token head);
  2. one forward over the chunks of every whole article (the document heads).
(`sentence_batch_size` only splits pass 1 when the sentences would not fit in memory.)
`composer.runtime` (configs/serve.yaml) sets how the passes run: length-sorted batches with
dynamic padding, inference_mode, and the precision (fp32, bf16, int8); bench/optimisations.py
measures each flag.

The four 1-5 scores, per concept:
  - the document-level ordinal head (`card_<concept>`, CORN) when the model has one: score
    = CORN rank, expected_score and distribution from its class probabilities;
  - otherwise derived from sentence heads (configs/serve.yaml → composer.concepts): a
    sentence's concept probability is the max over the concept's heads, an article
    statistic (share of sentences above a threshold, mean of the top k, or the mean)
    is mapped to 1-5 by 4 cut points: score = 1 + the number of cut points it exceeds.
    Cut points come from composer.json (`biascard.serve.calibrate`: quantiles of the
    statistic over validation articles, a heuristic calibration, not a learned mapping)
    or, uncalibrated, from `default_cut_points`. expected_score/distribution stay null.
  - neither: score null, evidence [] (the model cannot estimate it).
Evidence = the concept's strongest sentences (offsets into the input text), with the words
the token head marks. A head the model lacks leaves its card field null or empty.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import Article
from .sentences import Sentence, split_sentences

CONCEPTS = ("framing_bias", "language_bias", "bias_by_omission", "false_dichotomy")
STATISTICS = ("share_above", "top_k_mean", "mean")
LEANINGS = ("left", "center", "right")
CALIBRATION_FILE = "composer.json"
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


# ---------------------------------------------------------------- settings


def default_settings() -> dict:
    """The `composer` section of the packaged configs/serve.yaml (the single source)."""
    return copy.deepcopy(_serve_yaml()["composer"])


def _serve_yaml() -> dict:
    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parent.parent / "configs" / "serve.yaml"
    if not path.is_file():  # installed wheel: configs is the biascard.configs package
        from importlib import resources

        path = Path(str(resources.files("biascard.configs") / "serve.yaml"))
    cfg = OmegaConf.load(path)
    cfg.pop("defaults", None)
    cfg.pop("hydra", None)
    return OmegaConf.to_container(cfg, resolve=True)


def serve_defaults() -> dict:
    """Every key of configs/serve.yaml (without Hydra's own)."""
    return copy.deepcopy(_serve_yaml())


def merge(base: dict, override: Mapping | None) -> dict:
    """Recursive dict merge; lists and scalars in `override` replace."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


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
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), dict):
        raise ValueError(f"{path}: expected an object with a `concepts` mapping")
    for name, entry in data["concepts"].items():
        if name not in CONCEPTS:
            raise ValueError(f"{path}: concepts.{name} is not one of {CONCEPTS}")
        check_cut_points(entry.get("cut_points"), f"{path}: concepts.{name}")
        if entry.get("statistic") not in STATISTICS:
            raise ValueError(f"{path}: concepts.{name}.statistic must be one of {STATISTICS}")
    data["_path"] = str(path)
    return data


# ---------------------------------------------------------------- runtime

PRECISIONS = ("fp32", "bf16", "bf16_autocast", "int8", "auto")
RUNTIME_KEYS = ("length_sorted", "batch_tokens", "inference_mode", "precision")


def native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 matmuls are emulated and slower than fp32."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_runtime(cfg: Mapping | None) -> dict:
    """composer.runtime with `precision: auto` decided for this CPU."""
    rt = {"length_sorted": True, "batch_tokens": 4096, "inference_mode": True, "precision": "fp32", **(cfg or {})}
    unknown = set(rt) - set(RUNTIME_KEYS)
    if unknown:
        raise ValueError(f"composer.runtime: unknown keys {sorted(unknown)}; known: {list(RUNTIME_KEYS)}")
    if rt["precision"] not in PRECISIONS:
        raise ValueError(f"composer.runtime.precision {rt['precision']!r} is not one of {PRECISIONS}")
    if rt["precision"] == "auto":
        rt["precision"] = "bf16" if native_bf16() else "fp32"
    rt["batch_tokens"] = int(rt["batch_tokens"])
    if rt["batch_tokens"] < 1:
        raise ValueError("composer.runtime.batch_tokens must be >= 1")
    return rt


def prepare_model(model, precision: str):
    """The model to run at `precision`; a copy when it changes, so the caller's stays fp32."""
    import torch
    from torch import nn

    if precision == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16)
    if precision == "int8":
        import warnings

        m = copy.deepcopy(model)
        with warnings.catch_warnings():  # torch.ao's deprecation notices: still the CPU int8 path in 2.13
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            # the encoder only: the heads are tiny, and quantizing them adds error for no speed
            torch.ao.quantization.quantize_dynamic(m.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return m
    return model


def length_groups(tokenizer, texts: list[str], max_length: int, stride: int, batch_tokens: int) -> list[list[int]]:
    """Indices of `texts` by ascending token count, cut so that chunks x padded width of a
    group stay within `batch_tokens` (a text's chunks always share its group)."""
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)["input_ids"]
    special = tokenizer.num_special_tokens_to_add(pair=False)
    cap = max_length - special
    groups: list[list[int]] = []
    cur: list[int] = []
    chunks = width = 0
    for i in sorted(range(len(texts)), key=lambda j: len(ids[j])):
        t = len(ids[i])
        c = 1 if t <= cap else 1 + math.ceil((t - cap) / (cap - stride))
        w = min(t, cap) + special
        if cur and (chunks + c) * max(width, w) > batch_tokens:
            groups.append(cur)
            cur, chunks, width = [], 0, 0
        cur.append(i)
        chunks += c
        width = max(width, w)
    if cur:
        groups.append(cur)
    return groups


# ---------------------------------------------------------------- the plan per model


def _label_int(label: str) -> int | None:
    m = re.search(r"\d+", str(label))
    return int(m.group()) if m else None


class Composer:
    """Holds a model, its tokenizer and the mapping; `compose(articles)` → cards (dicts)."""

    def __init__(
        self,
        model,
        tokenizer,
        settings: Mapping | None = None,
        *,
        calibration: dict | None = None,
        name: str = "biascard",
        version: str = "unknown",
    ):
        self.tokenizer = tokenizer
        self.settings = merge(default_settings(), settings)
        self.runtime = resolve_runtime(self.settings.get("runtime"))
        self.model = prepare_model(model, self.runtime["precision"])
        self.calibration = calibration
        self.name, self.version = name, version
        self.specs = model.config.head_specs()
        self.max_length = int(model.config.max_length)
        self.stride = int(model.config.stride)
        self.plan = {c: self._plan_concept(c) for c in CONCEPTS}
        token_head = self.settings.get("token_head")
        self.token_head = token_head if token_head in self.specs and self.specs[token_head].is_token else None
        # sentence heads feed derived scores and the evidence of document-head scores alike
        used = {h["head"] for p in self.plan.values() for h in p["heads"]}
        self.sentence_heads = sorted(used)
        self.need_sentences = bool(self.sentence_heads)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        settings: Mapping | None = None,
        *,
        name: str = "biascard",
        version: str | None = None,
    ) -> "Composer":
        from transformers.utils import logging as hf_logging

        from biascard.train.modeling import load_model_dir

        hf_logging.disable_progress_bar()  # a server log wants no "Loading weights" bars
        model, tokenizer = load_model_dir(model_dir)
        settings = merge(default_settings(), settings)
        cal_path = settings.get("calibration") or Path(model_dir) / CALIBRATION_FILE
        calibration = load_calibration(cal_path)
        if settings.get("calibration") and calibration is None:
            raise FileNotFoundError(f"calibration file {cal_path} not found")
        return cls(model, tokenizer, settings, calibration=calibration, name=name,
                   version=version or weights_version(model_dir))

    # which heads feed which concept, decided once per model
    def _plan_concept(self, concept: str) -> dict:
        cfg = self.settings["concepts"][concept]
        doc_head = cfg.get("document_head")
        if doc_head and doc_head in self.specs and self.specs[doc_head].type == "ordinal":
            mode = "document"
        else:
            doc_head, mode = None, None
        usable = []
        for entry in cfg.get("heads") or []:
            head = entry["head"]
            spec = self.specs.get(head)
            if spec is None or spec.level != "sentence":
                continue
            if spec.type == "binary":
                usable.append({"head": head, "type": "binary", "index": None, "fallback": bool(entry.get("fallback"))})
            elif spec.type == "multiclass":
                wanted = [str(x) for x in entry.get("positive_labels") or []]
                index = [i for i, lab in enumerate(spec.labels) if lab in wanted]
                if index:  # without a label meaning "present" a multiclass head says nothing here
                    usable.append({"head": head, "type": "multiclass", "index": index,
                                   "labels": [spec.labels[i] for i in index], "fallback": bool(entry.get("fallback"))})
        primary = [u for u in usable if not u["fallback"]]
        heads = primary or usable
        if mode is None and heads:
            mode = "derived"
        statistic, threshold, top_k = cfg.get("statistic", "share_above"), float(cfg.get("threshold", 0.5)), int(cfg.get("top_k", 3))
        cuts, source = cfg.get("cut_points"), "configured"
        cal = (self.calibration or {}).get("concepts", {}).get(concept)
        if cuts is not None:
            cuts = check_cut_points(cuts, f"composer.concepts.{concept}")
        elif cal is not None:
            cuts, source = cal["cut_points"], "calibrated"
            if len(set(cuts)) < 4:
                source = "degenerate"
            statistic = cal["statistic"]
            threshold = float(cal.get("threshold", threshold))
            top_k = int(cal.get("top_k", top_k))
        else:
            cuts = check_cut_points(self.settings["default_cut_points"][statistic], f"default_cut_points.{statistic}")
            source = "default"
        if statistic not in STATISTICS:
            raise ValueError(f"composer.concepts.{concept}.statistic {statistic!r} is not one of {STATISTICS}")
        return {"mode": mode, "document_head": doc_head, "heads": heads, "statistic": statistic,
                "threshold": threshold, "top_k": top_k, "cut_points": cuts, "cut_source": source,
                "wanted": [doc_head or cfg.get("document_head")] + [e["head"] for e in cfg.get("heads") or []]}

    # ------------------------------------------------------------ forward passes

    def _forward(self, texts: list[str], *, offsets: bool) -> dict[str, Any]:
        """Per-head probabilities of `texts`, in their order. One forward unless
        runtime.length_sorted (batches of similar length) or sentence_batch_size splits it."""
        import torch

        from biascard.train.features import encode
        from biascard.train.modeling import corn_rank, head_probabilities

        rt, n = self.runtime, len(texts)
        if rt["length_sorted"]:
            groups = length_groups(self.tokenizer, texts, self.max_length, self.stride, rt["batch_tokens"])
        else:
            step = max(1, int(self.settings.get("sentence_batch_size") or n))
            groups = [list(range(lo, min(lo + step, n))) for lo in range(0, n, step)]
        seq: dict[str, list] = {}  # head -> [(text indices, probabilities)]
        ranks: dict[str, list] = {}
        tokens: list[tuple[int, np.ndarray, np.ndarray]] = []  # (record, P(token), offsets) per chunk
        grad = torch.inference_mode() if rt["inference_mode"] else torch.no_grad()
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if rt["precision"] == "bf16_autocast" else contextlib.nullcontext()
        with grad, cast:
            for group in groups:
                batch = encode([{"text": texts[i]} for i in group], self.tokenizer, self.specs, self.max_length,
                               self.stride, with_labels=False, return_offsets=offsets)
                offset_mapping = batch.pop("offset_mapping", None)
                out = self.model(**batch)
                doc_index = batch["doc_index"].numpy()
                for name, spec in self.specs.items():
                    logits = out.logits[name].float()
                    if spec.is_token:
                        if offsets and name == self.token_head:
                            p = head_probabilities(logits, spec).numpy()
                            mask = batch["attention_mask"].numpy().astype(bool)
                            om = offset_mapping.numpy()
                            for c in range(p.shape[0]):
                                tokens.append((group[int(doc_index[c])], p[c][mask[c]], om[c][mask[c]]))
                        continue
                    seq.setdefault(name, []).append((group, head_probabilities(logits, spec).numpy()))
                    if spec.type == "ordinal":
                        ranks.setdefault(name, []).append((group, corn_rank(logits).numpy()))

        def in_order(parts):
            out = np.empty((n, *parts[0][1].shape[1:]), dtype=parts[0][1].dtype)
            for group, values in parts:
                out[group] = values
            return out

        return {
            "probs": {k: in_order(v) for k, v in seq.items()},
            "ranks": {k: in_order(v) for k, v in ranks.items()},
            "tokens": tokens,
        }

    def _document_text(self, a: Article) -> str:
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
        flat = [(i, s) for i, ss in enumerate(sentences) for s in ss]
        sent_out = None
        if flat and (self.need_sentences or self.token_head):
            sent_out = self._forward([s.text for _, s in flat], offsets=self.token_head is not None)
        doc_out = self._forward([self._document_text(a) for a in articles], offsets=False)

        # per-sentence token probabilities (a long sentence may span several chunks)
        words_of: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        if sent_out is not None:
            for rec, p, om in sent_out["tokens"]:
                words_of.setdefault(rec, []).append((p, om))

        from biascard.data.card import validate

        cards, pos = [], 0
        for i, a in enumerate(articles):
            idx = list(range(pos, pos + len(sentences[i])))
            pos += len(sentences[i])
            card = self._card(a, i, sentences[i], idx, sent_out, doc_out, words_of)
            validate(card)  # a card off the schema is a bug here: fail loudly, never serve it
            cards.append(card)
        return cards

    def _concept_probs(self, plan: dict, sent_out, idx: list[int]) -> np.ndarray:
        cols = []
        for h in plan["heads"]:
            p = sent_out["probs"][h["head"]][idx]
            cols.append(p if h["type"] == "binary" else p[:, h["index"]].sum(axis=1))
        return np.max(np.stack(cols), axis=0) if cols else np.zeros(0)

    def _words(self, text: str, parts: list[tuple[np.ndarray, np.ndarray]]) -> list[str]:
        thr = float(self.settings.get("token_threshold", 0.5))
        spans = []
        for p, om in parts:
            for prob, (s, e) in zip(p, om):
                if e > s and prob >= thr:
                    spans.append((int(s), int(e)))
        words, seen = [], set()
        for m in _WORD.finditer(text):  # whole words, not WordPiece fragments
            if any(s < m.end() and e > m.start() for s, e in spans) and m.group() not in seen:
                seen.add(m.group())
                words.append(m.group())
        return words

    def _evidence(self, probs: np.ndarray, sents: list[Sentence], idx: list[int], words_of) -> list[dict]:
        k = int(self.settings.get("evidence_k", 3))
        floor = float(self.settings.get("evidence_min_probability", 0.5))
        order = sorted(range(len(probs)), key=lambda j: (-probs[j], j))
        out = []
        for j in order[:k]:
            if probs[j] < floor:
                break
            s = sents[j]
            item = {"text": s.text, "start": s.start, "end": s.end, "score": round(float(probs[j]), 4)}
            if self.token_head:
                item["words"] = self._words(s.text, words_of.get(idx[j], []))
            out.append(item)
        return out

    def _concept(self, concept: str, sents, idx, sent_out, doc_out, i: int, words_of) -> dict:
        from biascard.data.card import CONCEPT_LABELS

        plan = self.plan[concept]
        entry = {"concept": concept, "label": CONCEPT_LABELS[concept], "score": None,
                 "expected_score": None, "distribution": None, "evidence": [], "explanation": None}
        probs = self._concept_probs(plan, sent_out, idx) if (plan["heads"] and sent_out is not None) else np.zeros(0)
        if plan["heads"] and probs.size:
            entry["evidence"] = self._evidence(probs, sents, idx, words_of)
        head_names = ", ".join(h["head"] for h in plan["heads"])
        if plan["mode"] == "document":
            head = plan["document_head"]
            dist = doc_out["probs"][head][i]
            labels = self.specs[head].labels
            rank = int(doc_out["ranks"][head][i])
            values = [_label_int(lab) for lab in labels]
            if len(labels) == 5 and values == [1, 2, 3, 4, 5]:
                entry["score"] = rank + 1
                entry["distribution"] = [round(float(x), 4) for x in dist]
                entry["expected_score"] = round(float(np.dot(dist, np.arange(1, 6))), 4)
            elif values[rank] is not None and 1 <= values[rank] <= 5:
                entry["score"] = values[rank]
            entry["explanation"] = (
                f"Document head {head} (ordinal, CORN) over the whole article"
                + (f"; evidence from sentence heads {head_names}." if entry["evidence"] else ".")
            )
        elif plan["mode"] == "derived":
            stat = article_statistic(probs, plan["statistic"], plan["threshold"], plan["top_k"])
            if stat is None:
                entry["explanation"] = f"No sentence found in the text; sentence heads {head_names} had nothing to score."
            else:
                entry["score"] = score_from_statistic(stat, plan["cut_points"])
                flagged = int((probs >= plan["threshold"]).sum())
                what = {
                    "share_above": f"share of sentences with probability >= {plan['threshold']:.2f}",
                    "top_k_mean": f"mean of the top {plan['top_k']} sentence probabilities",
                    "mean": "mean sentence probability",
                }[plan["statistic"]]
                source = {
                    "calibrated": "cut points calibrated on validation quantiles (composer.json)",
                    "degenerate": "cut points calibrated on validation quantiles (composer.json), tied because "
                                  "the statistic barely varied there, so some scores cannot occur",
                    "configured": "configured cut points",
                    "default": "default cut points, not calibrated",
                }[plan["cut_source"]]
                entry["explanation"] = (
                    f"Derived from sentence heads {head_names}: {flagged} of {probs.size} sentences at "
                    f"probability >= {plan['threshold']:.2f}; {what} = {stat:.3f}; "
                    f"{source} {[round(c, 4) for c in plan['cut_points']]}."
                )
        else:
            wanted = [w for w in dict.fromkeys(plan["wanted"]) if w]
            missing = [w for w in wanted if w not in self.specs]
            present = [w for w in wanted if w in self.specs]
            entry["explanation"] = "Not estimated: the model has no " + " or ".join(missing) + " head"
            if present:  # e.g. gvfc_frame names a frame but no label says "framed" vs "not"
                entry["explanation"] += (f"; {', '.join(present)} cannot score it as configured "
                                         "(composer.concepts: type, level or positive_labels)")
            entry["explanation"] += "."
        return entry

    def _card(self, a: Article, i: int, sents, idx, sent_out, doc_out, words_of) -> dict:
        from biascard.data.card import SDG_NAMES

        s = self.settings
        probs = doc_out["probs"]
        card: dict[str, Any] = {
            "schema_version": "1.0",
            "id": a.id,
            "title": a.title,
            "source": a.source,
            "language": None,  # no language-id head: not estimated
            "model": {"name": self.name, "version": self.version, "heads": sorted(self.specs)},
            "cognitive_concepts": [self._concept(c, sents, idx, sent_out, doc_out, i, words_of) for c in CONCEPTS],
            "sdgs": [],
            "topics": [],
            "political_leaning": None,
        }
        spec = self.specs.get("sdg")
        if spec is not None and spec.level == "document" and spec.type in ("multilabel", "multiclass"):
            p = probs["sdg"][i]
            polarity = self._document_label("sdg_polarity", i, probs, ("positive", "negative"))
            relevance = self._document_label("sdg_relevance", i, probs, ("direct", "indirect"))
            goals = []
            cut = self._label_thresholds(spec, s["sdg_threshold"])
            for j, lab in enumerate(spec.labels):
                g = _label_int(lab)
                if g is not None and 1 <= g <= 17 and p[j] >= cut[j]:
                    goals.append({"goal": g, "name": SDG_NAMES[g], "probability": round(float(p[j]), 4),
                                  "polarity": polarity, "relevance": relevance})
            goals.sort(key=lambda x: (-x["probability"], x["goal"]))
            card["sdgs"] = goals[: int(s["sdg_max"])]
        spec = self.specs.get("topic")
        if spec is not None and spec.level == "document" and spec.type in ("multilabel", "multiclass"):
            p = probs["topic"][i]
            order = sorted(range(len(p)), key=lambda j: (-p[j], j))[: int(s["topic_k"])]
            cut = self._label_thresholds(spec, s["topic_threshold"])
            card["topics"] = [{"label": spec.labels[j], "probability": round(float(p[j]), 4)}
                              for j in order if p[j] >= cut[j]]
        spec = self.specs.get("political_leaning")
        if spec is not None and spec.level == "document" and spec.type == "multiclass":
            p = probs["political_leaning"][i]
            dist = {lab: round(float(x), 4) for lab, x in zip(spec.labels, p)}
            known = [j for j, lab in enumerate(spec.labels) if lab in LEANINGS]
            if known:  # a label outside left/center/right cannot be put on the card
                best = max(known, key=lambda j: p[j])
                card["political_leaning"] = {"label": spec.labels[best], "distribution": dist}
        return card

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
        out: dict[str, list[float]] = {}
        if not flat or not self.sentence_heads:
            return out
        sent_out = self._forward(flat, offsets=False)
        pos = 0
        spans = []
        for sents in texts:
            spans.append(list(range(pos, pos + len(sents))))
            pos += len(sents)
        for concept, plan in self.plan.items():
            if not plan["heads"]:
                continue
            cfg = self.settings["concepts"][concept]
            vals = []
            for idx in spans:
                stat = article_statistic(self._concept_probs(plan, sent_out, idx), cfg.get("statistic", "share_above"),
                                         float(cfg.get("threshold", 0.5)), int(cfg.get("top_k", 3)))
                if stat is not None:
                    vals.append(stat)
            out[concept] = vals
        return out


def weights_version(model_dir: str | Path) -> str:
    """A model dir's identity: the first 12 hex digits of its weights' sha256."""
    from .archive import sha256_file

    return "sha256:" + sha256_file(Path(model_dir) / "model.safetensors")[:12]
