"""The card as one self-contained HTML page (inline CSS, no scripts, no external assets)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from .contract import CONCEPT_LABELS, SDG_NAMES, normalize, validate

TEMPLATES = Path(__file__).resolve().parent / "templates"


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


def _view(card: dict) -> dict:
    extra = card.get("extra") if isinstance(card.get("extra"), dict) else {}
    sdg_expl = extra.get("sdg_explanations")
    if not (isinstance(sdg_expl, list) and len(sdg_expl) == len(card["sdgs"])):
        sdg_expl = [None] * len(card["sdgs"])
    concepts = []
    for c in card["cognitive_concepts"]:
        concepts.append(
            {
                **c,
                "label": c.get("label") or CONCEPT_LABELS[c["concept"]],
                "evidence": [
                    {**e, "pieces": highlight(e["text"], e.get("words"))} for e in c["evidence"]
                ],
            }
        )
    sdgs = [
        {**s, "official": SDG_NAMES.get(s["goal"]), "explanation": x if isinstance(x, str) else None}
        for s, x in zip(card["sdgs"], sdg_expl)
    ]
    tags = extra.get("tags") if isinstance(extra.get("tags"), dict) else {}
    questions = extra.get("key_questions")
    if not (isinstance(questions, list) and all(isinstance(q, dict) for q in questions)):
        questions = []
    return {
        "card": card,
        "concepts": concepts,
        "sdgs": sdgs,
        "summary": extra.get("summary") if isinstance(extra.get("summary"), str) else None,
        "tags": {k: v for k, v in tags.items() if isinstance(v, list)},
        "questions": questions,
    }


def render_html(card: dict) -> str:
    """A valid card -> an HTML page; all card text is escaped. Raises CardError if invalid."""
    validate(card)
    return _env().get_template("card.html.j2").render(**_view(normalize(card)))
