"""The card as one self-contained HTML page (inline CSS, no scripts, no external assets).

The page shows every field in the seed's order: warnings first, then title, source, summary,
language, locations, topics, organisations, people, the key questions, the four concepts and
the goals. A 1.0 card's summary, tags, questions and goal explanations are read from `extra`,
where the text layout kept them before schema 1.1.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from .contract import CONCEPT_LABELS, ENTITY_KINDS, SDG_NAMES, normalize, validate

TEMPLATES = Path(__file__).resolve().parent / "templates"
ENTITY_TITLES = {"locations": "Locations", "organisations": "Organisations", "people": "People"}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    # autoescape on for every template: card text comes from articles and models.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def highlight(text: str, words: list[str] | None) -> list[tuple[str, bool]]:
    """Split `text` into (piece, is_marked) so the template can escape each piece and mark
    the biased words, matched case-insensitively and as whole words where they start/end
    with a word character."""
    words = sorted({w for w in (words or []) if w.strip()}, key=len, reverse=True)
    if not words:
        return [(text, False)]
    alts = []
    for w in words:
        pat = re.escape(w)
        if re.match(r"\w", w):
            pat = r"(?<!\w)" + pat
        if re.search(r"\w$", w):
            pat += r"(?!\w)"
        alts.append(pat)
    out, pos = [], 0
    for m in re.finditer("|".join(alts), text, flags=re.IGNORECASE):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        out.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def _str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _summary(card: dict, extra: dict) -> dict | None:
    s = card.get("summary")
    if isinstance(s, dict):
        return {"text": s["text"], "method": s["method"], "evidence": s.get("evidence", [])}
    legacy = extra.get("summary")  # a 1.0 card: the method was never recorded
    return {"text": legacy, "method": None, "evidence": []} if isinstance(legacy, str) else None


def _entities(card: dict, extra: dict) -> dict[str, list[dict] | None]:
    """Per kind, the entities to list ({name, mentions}); None where not estimated."""
    ents = card.get("entities")
    if isinstance(ents, dict):
        return {k: [{"name": e["name"], "mentions": e.get("mentions")} for e in ents.get(k, [])] for k in ENTITY_KINDS}
    tags = extra.get("tags")
    if ents is None and isinstance(tags, dict):
        return {k: [{"name": n, "mentions": None} for n in tags[k]] if _str_list(tags.get(k)) else None
                for k in ENTITY_KINDS}
    return {k: None for k in ENTITY_KINDS}


def _questions(card: dict, extra: dict) -> list[dict]:
    qs = card.get("key_questions")
    if qs:
        return [{"question": q["question"], "answer": q["answer"], "method": q["method"],
                 "evidence": q.get("evidence", [])} for q in qs]
    legacy = extra.get("key_questions")
    if not isinstance(legacy, list):
        return []
    return [{"question": q["question"], "answer": q["answer"], "method": None, "evidence": []} for q in legacy
            if isinstance(q, dict) and isinstance(q.get("question"), str) and isinstance(q.get("answer"), str)]


def _view(card: dict) -> dict:
    extra = card.get("extra") if isinstance(card.get("extra"), dict) else {}
    legacy_expl = extra.get("sdg_explanations")
    if not (isinstance(legacy_expl, list) and len(legacy_expl) == len(card["sdgs"])):
        legacy_expl = [None] * len(card["sdgs"])
    concepts = []
    for c in card["cognitive_concepts"]:
        concepts.append(
            {
                **c,
                "label": c.get("label") or CONCEPT_LABELS[c["concept"]],
                "evidence": [
                    {**e, "quoted": e.get("quoted") is True, "pieces": highlight(e["text"], e.get("words"))}
                    for e in c["evidence"]
                ],
            }
        )
    sdgs = []
    for s, legacy in zip(card["sdgs"], legacy_expl):
        expl = s.get("explanation") if isinstance(s.get("explanation"), str) else legacy
        sdgs.append({**s, "official": SDG_NAMES.get(s["goal"]), "explanation": expl if isinstance(expl, str) else None,
                     "evidence": s.get("evidence", [])})
    return {
        "card": card,
        "warnings": card.get("warnings") or [],
        "summary": _summary(card, extra),
        "entities": _entities(card, extra),
        "entity_titles": ENTITY_TITLES,
        "questions": _questions(card, extra),
        "concepts": concepts,
        "sdgs": sdgs,
    }


def render_html(card: dict) -> str:
    """A valid card -> an HTML page; all card text is escaped. Raises CardError if invalid."""
    validate(card)
    return _env().get_template("card.html.j2").render(**_view(normalize(card)))
