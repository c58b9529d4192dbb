"""The card's document-level fields: SDGs, topics and political leaning, from the document
pass (`probs`) of a composer `comp`, with sentence-level evidence for each SDG.

A goal or topic is listed only when its probability reaches its threshold: the per-label one
fit on validation and saved with the model (`HeadSpec.thresholds`, `threshold_fit` says how;
biascard.train.thresholds), else the configured `composer.sdg_threshold`/`topic_threshold`,
which the SDG explanation calls uncalibrated. A fitted threshold above 1 means "never listed".

Each SDG's `evidence` is its strongest sentences by the sdg head applied to each sentence
alone (the sentence pass): up to `evidence_k` that reach the goal's threshold on their own,
else the single strongest, so the sentence the explanation quotes is always among them.
Polarity and relevance come only from `sdg_polarity`/`sdg_relevance` heads (trained on
labeled cards); without them they stay null and the explanation says they are not estimated.
Relevance is not derived from the share of sentences carrying a goal: TRAIL22's passages are
a few sentences long, so nothing could validate such a rule on articles.
"""
from __future__ import annotations

import numpy as np

from biascard.card.contract import SDG_NAMES

from .concepts import label_int
from .sentences import ArticleSentences

LEANINGS = ("left", "center", "right")
# what a section with nothing listed says (`none_detected_note`); the JSON's [] says it already
NONE_DETECTED = {"sdg": "No Sustainable Development Goal was detected with confidence.",
                 "topic": "No topic was detected with confidence."}
NOT_ESTIMATED = {"sdg": "Sustainable Development Goals are not estimated: the model has no sdg head.",
                 "topic": "Topics are not estimated: the model has no topic head."}
HEADS = {"sdg": "sdg", "topic": "topic"}
POLARITY_NOT_ESTIMATED = "Polarity is not estimated: the model was not trained on labeled cards."
RELEVANCE_NOT_ESTIMATED = "Relevance (direct or indirect) is not estimated."
QUOTE_CHARS = 200  # a longer evidence sentence is shortened in the explanation (evidence keeps it whole)


def document_spec(comp, head: str, types: tuple[str, ...]):
    spec = comp.specs.get(head)
    return spec if spec is not None and spec.level == "document" and spec.type in types else None


def none_detected_note(kind: str, heads=None) -> str:
    """The line a text layout shows under an empty SDG (`kind` "sdg") or topic section: "not
    estimated" when `heads` (the card's model.heads) lacks the head, else "none detected"."""
    if kind not in NONE_DETECTED:
        raise ValueError(f"kind {kind!r} is not one of {sorted(NONE_DETECTED)}")
    if heads is not None and HEADS[kind] not in heads:
        return NOT_ESTIMATED[kind]
    return NONE_DETECTED[kind]


def sdgs(comp, probs, i: int, sents: ArticleSentences | None = None) -> list[dict]:
    spec = document_spec(comp, "sdg", ("multilabel", "multiclass"))
    if spec is None:
        return []
    p = probs["sdg"][i]
    polarity = document_label(comp, "sdg_polarity", i, probs, ("positive", "negative"))
    relevance = document_label(comp, "sdg_relevance", i, probs, ("direct", "indirect"))
    cut = label_thresholds(comp, spec, comp.settings["sdg_threshold"])
    sent_p = sentence_probs(sents, "sdg")
    listed = [j for j, lab in enumerate(spec.labels)
              if (g := label_int(lab)) is not None and 1 <= g <= 17 and p[j] >= cut[j]]
    listed = sorted(listed, key=lambda j: (-p[j], label_int(spec.labels[j])))[: int(comp.settings["sdg_max"])]
    goals = []
    for j in listed:
        g = label_int(spec.labels[j])
        ev = goal_evidence(comp, sents, None if sent_p is None else sent_p[:, j], cut[j])
        goal = {"goal": g, "name": SDG_NAMES[g], "probability": round(float(p[j]), 4),
                "polarity": polarity, "relevance": relevance}
        goal["explanation"] = sdg_explanation(goal, threshold_text(comp, spec, j, cut[j]), cut[j], ev,
                                              has_sentences=sent_p is not None)
        goal["evidence"] = ev
        goals.append(goal)
    return goals


def topics(comp, probs, i: int) -> list[dict]:
    spec = document_spec(comp, "topic", ("multilabel", "multiclass"))
    if spec is None:
        return []
    p = probs["topic"][i]
    cut = label_thresholds(comp, spec, comp.settings["topic_threshold"])
    # threshold first, then the topic_k strongest: per-label thresholds differ, so a weaker
    # topic above its own threshold may be listed where a stronger one below its own is not
    above = [j for j in range(len(p)) if p[j] >= cut[j]]
    order = sorted(above, key=lambda j: (-p[j], j))[: int(comp.settings["topic_k"])]
    return [{"label": spec.labels[j], "probability": round(float(p[j]), 4)} for j in order]


def leaning(comp, probs, i: int) -> dict | None:
    spec = document_spec(comp, "political_leaning", ("multiclass",))
    if spec is None:
        return None
    p = probs["political_leaning"][i]
    known = [j for j, lab in enumerate(spec.labels) if lab in LEANINGS]
    if not known:  # a label outside left/center/right cannot be put on the card
        return None
    best = max(known, key=lambda j: p[j])
    return {"label": spec.labels[best], "distribution": {lab: round(float(x), 4) for lab, x in zip(spec.labels, p)}}


def calibrated(comp, spec) -> bool:
    """Whether the head decides at thresholds fit on validation (else the configured default)."""
    return spec.type == "multilabel" and spec.thresholds is not None and comp.settings.get("use_model_thresholds", True)


def label_thresholds(comp, spec, default) -> list[float]:
    """Per label: the threshold fit on validation and saved with the model (multilabel heads,
    composer.use_model_thresholds), else the composer's one `default`."""
    if calibrated(comp, spec):
        return list(spec.thresholds)
    return [float(default)] * len(spec.labels)


def threshold_text(comp, spec, j: int, t: float) -> str:
    """What label j's threshold `t` means, completing "above the threshold ..."."""
    if not calibrated(comp, spec):
        why = ("composer.use_model_thresholds is off" if spec.thresholds is not None
               else "the model has no thresholds fit on validation data")
        return (f"the configured threshold of {t:.2f}, which is not calibrated ({why}), so how often such a "
                f"listing is right is not known")
    fit = spec.threshold_fit or {}

    def per_label(key):  # threshold_fit's per-label lists; a missing or short one says nothing
        vals = fit.get(key)
        return vals[j] if isinstance(vals, list) and j < len(vals) else None

    if fit.get("mode") == "target_precision":
        target = fit.get("target_precision")
        aim = f"{float(target):.0%} precision" if target is not None else "a target precision"
        text = f"the threshold of {t:.2f} fit for {aim} on validation data"
        prec, n = per_label("precision"), per_label("support")
        if prec is not None and n:
            text += f", where {prec:.0%} of the {n} texts listed with this goal had it"
        return text
    if fit.get("mode") == "f1":
        text = f"the threshold of {t:.2f} that gave the best F1 on validation data"
        if per_label("how") == "shared":
            text = (f"the head's shared threshold of {t:.2f} (too few validation examples of this goal for its "
                    f"own), which gave the best F1 on validation data")
        return text + "; it was not fit for a precision, so how often such a listing is right is not stated"
    return f"the threshold of {t:.2f} fit on validation data (how it was fit is not recorded)"


def sentence_probs(sents: ArticleSentences | None, head: str) -> np.ndarray | None:
    """[sentences, labels] probabilities of `head` applied to each sentence alone, or None."""
    if sents is None or sents.out is None or not sents.items or head not in (sents.out.get("probs") or {}):
        return None
    p = np.asarray(sents.out["probs"][head])[sents.idx]
    return p if p.ndim == 2 else None


def goal_evidence(comp, sents: ArticleSentences | None, p: np.ndarray | None, threshold: float) -> list[dict]:
    """Up to evidence_k sentences reaching `threshold` on their own, strongest first; else the
    strongest one alone (module docstring)."""
    if p is None or not len(p):
        return []
    k = max(int(comp.settings.get("evidence_k", 3)), 1)
    order = sorted(range(len(p)), key=lambda j: (-p[j], j))
    keep = [j for j in order[:k] if p[j] >= threshold] or order[:1]
    return [{"text": sents.items[j].text, "start": sents.items[j].start, "end": sents.items[j].end,
             "score": round(float(p[j]), 4)} for j in keep]


def prob_text(x: float) -> str:
    """Two decimals, but never "1.00" for a probability below 1: a reader takes that for certainty."""
    return "over 0.99" if x < 1 and round(x, 2) >= 1 else f"{x:.2f}"


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return f"“{text}”"
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"“{cut}…”"


def sdg_explanation(goal: dict, threshold: str, t: float, evidence: list[dict], *, has_sentences: bool) -> str:
    """2-4 sentences for a newsroom reader: the probability against what its threshold means,
    the strongest sentence, and what polarity and relevance rest on (or that they are not estimated)."""
    where = "above" if round(goal["probability"], 2) > round(t, 2) else "at"  # as the reader sees 2 decimals
    p = prob_text(goal["probability"])
    parts = [f"The model gives SDG {goal['goal']} a probability of {p}, {where} {threshold}."]
    if evidence:
        best = evidence[0]
        if best["score"] >= t:
            parts.append(f"The sentence most associated with this goal is {quote(best['text'])} "
                         f"({prob_text(best['score'])} on its own).")
        else:
            parts.append(f"No single sentence reaches the threshold on its own; the closest is "
                         f"{quote(best['text'])} ({prob_text(best['score'])}).")
    elif not has_sentences:
        parts.append("No sentence-level evidence is available.")
    parts.append(POLARITY_NOT_ESTIMATED if goal["polarity"] is None else
                 f"Polarity ({goal['polarity']}) comes from the model's sdg_polarity head, for the whole article.")
    parts.append(RELEVANCE_NOT_ESTIMATED if goal["relevance"] is None else
                 f"Relevance ({goal['relevance']}) comes from the model's sdg_relevance head, for the whole article.")
    return " ".join(parts)


def document_label(comp, head: str, i: int, probs, allowed: tuple[str, ...]) -> str | None:
    spec = comp.specs.get(head)
    if spec is None or spec.type != "multiclass" or head not in probs:
        return None
    label = spec.labels[int(np.argmax(probs[head][i]))]
    return label if label in allowed else None
