# long: the parser and the renderer of one layout share every rule of how the lines go together
# and change together (parse_text(render_text(c)) == normalize(c)), so they stay in one file.
"""The card's text layout: read the layout news sites print (the seed), write it back.

The layout is the seed's, top to bottom:

    title / headline / source (domain) / headline / summary   (one line each, blank between)
    language, locations, topics, organisations, people       (one line each, no blanks)
    key question, answer, key question, answer, ...
    Cognitive Concepts   then per concept: "2/5", the label, the explanation
    Sustainable Development Goals   then per goal: "<name> Positive", "Direct Relevance",
                                    the explanation

`render_text` writes the same layout and extends it only where the seed has no place for a
schema field:

- under the summary line and under each answer: `Method: extractive|generated` and the cited
  sentences as `Evidence <start>-<end>: <text>` (`(<score>)` after the offsets when scored);
  the seed has no method line and was written by an LLM, so a missing one reads "generated";
- entity lines list `Name (2 mentions at 10-12, 40-42)`, joined by ` · `; all three lines
  `(none)` mean the card's entities are null, `[]` that they are known to be empty;
- a `Warnings` section (one warning a line) before `Cognitive Concepts`;
- inside a concept block: `Expected score:`, `Distribution:`, `Evidence <start>-<end>
  (<score>): <text>` (`Quoted evidence ...` for a quotation), `Biased words:`;
- `SDG <n>: ` before the goal name, `Probability:` under it, evidence lines after the
  explanation;
- the trailing sections `Political Leaning`, `Card Metadata` (id, model, and `Schema version:`
  for a card that is not of the version this package writes), `Other Fields` (JSON, by path)
  and `Extra Fields` (the card's `extra`, JSON).

A 1.0 card has no summary, entity or key-question fields: its text keeps them in `extra` as
before 1.1 (the `Schema version: 1.0` line says so), so 1.0 cards round-trip unchanged. Text
without that line is read as a card of SCHEMA_VERSION, which is how the seed and text written
before 1.1 come in with their summary, entities, questions and goal explanations as fields.

How one value sits on a line is `textlines.py`'s part. `parse_text(render_text(c)) ==
normalize(c)` for every valid card.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .contract import (
    CONCEPT_LABELS,
    CONCEPTS,
    ENTITY_KINDS,
    FIELDS_1_1,
    HUMAN_MODEL,
    METHODS,
    SCHEMA_VERSION,
    CardError,
    has_1_1_fields,
    normalize,
    validate,
)
from .textlines import (
    CONCEPT_LINE,
    CONCEPTS_SECTION,
    EVIDENCE_LIKE,
    EXT,
    EXTRA_SECTION,
    LABELS_LOWER,
    LEANING_SECTION,
    META_SECTION,
    NONE,
    OTHER_SECTION,
    RELEVANCE,
    SCORE_LIKE,
    SDGS_SECTION,
    SECTIONS,
    WARNINGS_SECTION,
    decode,
    enc,
    enc_entities,
    enc_evidence,
    enc_list,
    enc_topics,
    inline_ok,
    is_one,
    json_text,
    number,
    parse_entities,
    parse_evidence,
    parse_list,
    parse_topics,
    same,
    sdg_header,
)

TAG_KEYS = ("locations", "organisations", "people")  # the details block's lines 2, 4 and 5
HEADER_ROLES = ("title", "headline", "source", "headline", "summary")

_BASE_TOP = (
    "schema_version", "id", "title", "source", "language", "model",
    "cognitive_concepts", "sdgs", "topics", "political_leaning",
)
_TOP_ORDER = _BASE_TOP + FIELDS_1_1 + ("extra",)
_SPAN_KEYS = ("text", "start", "end", "score")
_KNOWN = {
    "model": {"name", "version", "heads"},
    "concept": {"concept", "label", "score", "expected_score", "distribution", "evidence", "explanation"},
    "evidence": {"text", "start", "end", "score", "words"},
    "sdg": {"goal", "name", "probability", "polarity", "relevance"},
    "topic": {"label", "probability"},
    "leaning": {"label", "distribution"},
}
# what 1.1 adds to the objects above
_KNOWN_1_1 = {"evidence": {"quoted"}, "sdg": {"explanation", "evidence"}}
_NEEDS_1_1 = "needs schema 1.1 (this card says 'Schema version: 1.0')"


# ---------------------------------------------------------------- parse


class _Parser:
    def __init__(self, text: str, name: str):
        self.name = name
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.lines = [(i + 1, line.strip()) for i, line in enumerate(text.split("\n"))]

    def err(self, ln: int, msg: str) -> CardError:
        return CardError(f"{self.name}:{ln}: {msg}")

    def _split(self):
        header: list[tuple[int, str]] = []
        sections: dict[str, tuple[int, list[tuple[int, str]]]] = {}
        cur = header
        for i, (ln, s) in enumerate(self.lines):
            if s in SECTIONS:
                if s in sections:
                    raise self.err(ln, f"section {s!r} appears twice (first on line {sections[s][0]})")
                body: list[tuple[int, str]] = []
                sections[s] = (ln, body)
                if s == EXTRA_SECTION:
                    body.extend(self.lines[i + 1:])
                    break
                cur = body
                continue
            cur.append((ln, s))
        if CONCEPTS_SECTION not in sections:
            raise self.err(len(self.lines), f"no {CONCEPTS_SECTION!r} section")
        return header, sections

    def parse(self) -> dict:
        header, sections = self._split()
        meta = self._meta(_tokens(sections[META_SECTION][1])) if META_SECTION in sections else {}
        card: dict[str, Any] = {"schema_version": decode(meta["Schema version"][1]) if "Schema version" in meta
                                else SCHEMA_VERSION}
        v11 = has_1_1_fields(card)
        extra: dict[str, Any] = {}
        self._fill_header(self._header(header), card, extra, v11)
        card["model"] = dict(HUMAN_MODEL)
        card["cognitive_concepts"] = self._concepts(_tokens(sections[CONCEPTS_SECTION][1]), v11)
        card["sdgs"] = []
        if SDGS_SECTION in sections:
            card["sdgs"] = self._sdgs(_tokens(sections[SDGS_SECTION][1]), v11, extra)
        card["political_leaning"] = None
        if LEANING_SECTION in sections:
            card["political_leaning"] = self._leaning(_tokens(sections[LEANING_SECTION][1]))
        if WARNINGS_SECTION in sections:
            ln, body = sections[WARNINGS_SECTION]
            if not v11:
                raise self.err(ln, f"a {WARNINGS_SECTION!r} section {_NEEDS_1_1}")
            card["warnings"] = [decode(s) for _, s in _tokens(body)]
        elif v11:
            card["warnings"] = []
        if META_SECTION in sections:
            self._apply_meta(meta, sections[META_SECTION][0], card)
        has_extra = bool(extra)
        if EXTRA_SECTION in sections:
            ln, body = sections[EXTRA_SECTION]
            more = self._json_block(ln, body)
            if not isinstance(more, dict):
                raise self.err(ln, f"{EXTRA_SECTION} must hold a JSON object")
            for k, v in more.items():
                if k in extra:
                    raise self.err(ln, f"extra.{k} is already given above")
                extra[k] = v
            has_extra = True
        if has_extra:
            card["extra"] = extra
        card = {k: card[k] for k in _TOP_ORDER if k in card}
        if OTHER_SECTION in sections:
            self._others(*sections[OTHER_SECTION], card)
        try:
            validate(card)
        except CardError as e:
            raise CardError(f"{self.name}: {e}", path=e.path) from None
        return card

    # ------------------------------------------------------------ header

    def _header(self, header) -> dict:
        """The header's lines by role, unread: how they read depends on the schema version."""
        paras: list[list[tuple[int, str]]] = []
        block: list[tuple[int, str]] = []
        for ln, s in header:
            if s:
                block.append((ln, s))
            elif block:
                paras.append(block)
                block = []
        if block:
            paras.append(block)
        # A missing blank line shows up as a two-line block; name it before counting blocks.
        for role, p in zip(HEADER_ROLES, paras[:-1]):
            rest = p[1:] if role != "summary" else [t for t in p[1:] if not _is_cited(t[1])]
            if rest:
                raise self.err(rest[0][0], f"expected a blank line after the {role} line")
        if len(paras) != 6:
            ln = paras[6][0][0] if len(paras) > 6 else (paras[-1][-1][0] if paras else 1)
            raise self.err(
                ln,
                "expected the card header as 6 blocks separated by blank lines (title, headline, "
                "source, headline, summary, then language/locations/topics/organisations/people "
                f"and the key questions with answers); found {len(paras)}",
            )
        (title,), (h1,), (source,), (h2,), summary, details = paras
        if len(details) < 5:
            raise self.err(
                details[-1][0], "the details block needs 5 lines: language, locations, topics, organisations, people"
            )
        return {
            "title": title, "headlines": (h1, h2), "source": source, "summary": summary[0], "cited": summary[1:],
            "details": details[:5], "questions": self._questions(details[5:]),
        }

    def _questions(self, qa) -> list[dict]:
        out, i = [], 0
        while i < len(qa):
            ln, s = qa[i]
            if _is_cited(s):
                raise self.err(ln, f"a {s.split(None, 1)[0]!r} line belongs under the summary or an answer")
            if i + 1 >= len(qa) or _is_cited(qa[i + 1][1]):
                raise self.err(ln, f"key question without an answer: {s!r}")
            q = {"question": qa[i], "answer": qa[i + 1], "cited": []}
            i += 2
            while i < len(qa) and _is_cited(qa[i][1]):
                q["cited"].append(qa[i])
                i += 1
            out.append(q)
        return out

    def _fill_header(self, head: dict, card: dict, extra: dict, v11: bool) -> None:
        title, source, details = head["title"], head["source"], head["details"]
        card["id"] = None
        card["title"] = decode(title[1])
        card["source"] = decode(source[1])
        h1, h2 = head["headlines"]
        if (h1[1], h2[1]) != (title[1], title[1]):
            extra["headlines"] = [decode(h1[1]), decode(h2[1])]
        card["language"] = decode(details[0][1])
        # The seed's line after the language names a place ("China"); whether the site means
        # the article's places or the outlet's country is not said: it is read as locations.
        card["topics"] = parse_topics(details[2][1])
        lines = dict(zip(TAG_KEYS, (details[1], details[3], details[4])))
        if v11:
            self._fill_1_1(head, lines, card)
        else:
            self._fill_1_0(head, lines, extra)

    def _fill_1_1(self, head: dict, lines: dict, card: dict) -> None:
        s = head["summary"][1]
        method, evidence = self._cited(head["cited"])
        card["summary"] = None
        if s != NONE:
            card["summary"] = {"text": decode(s), "method": method or "generated", "evidence": evidence}
        elif head["cited"]:
            raise self.err(head["cited"][0][0], "a summary of (none) cites nothing")
        if all(s == NONE for _, s in lines.values()):
            card["entities"] = None
        else:
            card["entities"] = {k: parse_entities(lines[k][1]) for k in ENTITY_KINDS}
        card["key_questions"] = []
        for q in head["questions"]:
            method, evidence = self._cited(q["cited"])
            card["key_questions"].append({
                "question": decode(q["question"][1]), "answer": decode(q["answer"][1]),
                "method": method or "generated", "evidence": evidence,
            })

    def _fill_1_0(self, head: dict, lines: dict, extra: dict) -> None:
        cited = head["cited"] + [t for q in head["questions"] for t in q["cited"]]
        if cited:
            raise self.err(cited[0][0], f"a method or evidence line under the summary or an answer {_NEEDS_1_1}")
        if head["summary"][1] != NONE:
            extra["summary"] = decode(head["summary"][1])
        tags = {}
        for key, (_, s) in lines.items():
            items = parse_list(s, camel=True)
            if items is not None:
                tags[key] = items
        if tags:
            extra["tags"] = tags
        if head["questions"]:
            extra["key_questions"] = [
                {"question": decode(q["question"][1]), "answer": decode(q["answer"][1])} for q in head["questions"]
            ]

    def _cited(self, lines) -> tuple[str | None, list[dict]]:
        """The `Method:` and `Evidence` lines under a summary or an answer."""
        method, evidence = None, []
        for ln, s in lines:
            m = EXT.match(s)
            if m:
                if method is not None:
                    raise self.err(ln, "a second 'Method:' line")
                if m.group(2) not in METHODS:
                    raise self.err(ln, f"expected 'Method: {' or '.join(METHODS)}', got {s!r}")
                method = m.group(2)
            else:
                evidence.append(self._span(ln, s))
        return method, evidence

    def _span(self, ln: int, s: str) -> dict:
        ev = parse_evidence(s)
        if isinstance(ev, str):
            raise self.err(ln, ev)
        if ev.pop("quoted"):
            raise self.err(ln, "only a concept's evidence is marked 'Quoted'")
        return ev

    # ------------------------------------------------------------ concepts and goals

    def _concepts(self, toks, v11: bool) -> list[dict]:
        out = []
        i = 0
        while i < len(toks):
            c = self._score_and_label(toks, i)
            i += 2
            expl = []
            while i < len(toks) and not _ends_explanation(toks[i][1]):
                expl.append(toks[i])
                i += 1
            if len(expl) == 1:
                c["explanation"] = decode(expl[0][1])
            elif expl:  # several paragraphs in a hand-written card
                c["explanation"] = "\n\n".join(s for _, s in expl)
            while i < len(toks) and (EVIDENCE_LIKE.match(toks[i][1]) or EXT.match(toks[i][1])):
                self._concept_extension(toks[i], c, v11)
                i += 1
            c["evidence"] = [{k: e[k] for k in ("text", "start", "end", "score", "words", "quoted") if k in e}
                             for e in c["evidence"]]
            out.append(c)
        return out

    def _score_and_label(self, toks, i) -> dict:
        ln, s = toks[i]
        m = SCORE_LIKE.match(s)
        score = number(m.group(1)) if m else None
        if not m or (score is None and m.group(1) != "-"):
            raise self.err(ln, f"expected a score like '2/5' (or '-/5' for none), got {s!r}")
        if score is not None and ((isinstance(score, float) and not score.is_integer()) or not 1 <= score <= 5):
            raise self.err(ln, f"score {m.group(1)} is not a whole number from 1 to 5")
        if i + 1 >= len(toks):
            raise self.err(ln, "expected a concept label after the score")
        ln, s = toks[i + 1]
        cm = CONCEPT_LINE.match(s)
        if cm:
            concept, label = cm.group(1), decode(cm.group(2))
            if concept not in CONCEPTS or label is None:
                raise self.err(ln, f"expected 'Concept <{'|'.join(CONCEPTS)}>: <label>', got {s!r}")
        elif s.lower() in LABELS_LOWER:
            concept, label = LABELS_LOWER[s.lower()], s
        else:
            raise self.err(ln, f"expected a concept label ({', '.join(CONCEPT_LABELS.values())}), got {s!r}")
        return {
            "concept": concept, "label": label, "score": score, "expected_score": None,
            "distribution": None, "evidence": [], "explanation": None,
        }

    def _concept_extension(self, tok, c, v11: bool) -> None:
        ln, s = tok
        if EVIDENCE_LIKE.match(s):
            ev = parse_evidence(s)
            if isinstance(ev, str) or "score" not in ev:
                raise self.err(ln, f"expected 'Evidence <start>-<end> (<score>): <text>', got {s!r}")
            if not v11 and ev.pop("quoted"):
                raise self.err(ln, f"'Quoted evidence' {_NEEDS_1_1}")
            c["evidence"].append(ev)
            return
        m = EXT.match(s)
        key = m.group(1) if m else None
        if key == "Biased words":
            if not c["evidence"] or "words" in c["evidence"][-1]:
                raise self.err(ln, "'Biased words:' must follow an Evidence line")
            words = parse_list(m.group(2), camel=False)
            c["evidence"][-1]["words"] = words if words is not None else []
        elif key in ("Expected score", "Distribution"):
            field = "expected_score" if key == "Expected score" else "distribution"
            try:
                c[field] = json.loads(m.group(2))
            except ValueError:
                raise self.err(ln, f"{key}: expected JSON, got {m.group(2)!r}") from None
        else:
            raise self.err(ln, f"'{key}:' does not belong in a concept block")

    def _sdgs(self, toks, v11: bool, extra: dict) -> list[dict]:
        sdgs, explanations, evidence = [], [], []
        for ln, s in toks:
            head = sdg_header(s)
            if head is not None:
                goal, name, polarity = head  # a seed-form name becomes the official short name
                if name is None:
                    raise self.err(ln, "SDG without a name")
                sdgs.append({"goal": goal, "name": name, "probability": 1.0, "polarity": polarity, "relevance": None})
                explanations.append(None)
                evidence.append([])
                continue
            if not sdgs:
                raise self.err(ln, f"expected an SDG like 'Peace, Justice and Strong Institutions Positive', got {s!r}")
            m = EXT.match(s)
            if RELEVANCE.match(s):
                sdgs[-1]["relevance"] = s.split()[0].lower()
            elif m and m.group(1) == "Probability":
                p = number(m.group(2))
                if p is None:
                    raise self.err(ln, f"expected a number after 'Probability:', got {m.group(2)!r}")
                sdgs[-1]["probability"] = p
            elif EVIDENCE_LIKE.match(s):
                if not v11:
                    raise self.err(ln, f"evidence under a goal {_NEEDS_1_1}")
                evidence[-1].append(self._span(ln, s))
            elif explanations[-1] is None:
                explanations[-1] = decode(s) if s != NONE else None
            else:
                explanations[-1] += "\n\n" + s
        if v11:
            for sdg, x, ev in zip(sdgs, explanations, evidence):
                sdg.update(explanation=x, evidence=ev)
        elif any(x is not None for x in explanations):
            extra["sdg_explanations"] = explanations
        return sdgs

    # ------------------------------------------------------------ trailing sections

    def _leaning(self, toks) -> dict:
        out: dict[str, Any] = {}
        for ln, s in toks:
            m = EXT.match(s)
            if m and m.group(1) == "Leaning":
                out["label"] = m.group(2).lower()
            elif m and m.group(1) == "Distribution":
                try:
                    out["distribution"] = json.loads(m.group(2))
                except ValueError:
                    raise self.err(ln, f"Distribution: expected a JSON object, got {m.group(2)!r}") from None
            else:
                raise self.err(ln, f"expected 'Leaning: left|center|right' or 'Distribution: {{...}}', got {s!r}")
        return out

    def _meta(self, toks) -> dict[str, tuple[int, str]]:
        keys = ("Id", "Model", "Model version", "Model heads", "Schema version")
        seen: dict[str, tuple[int, str]] = {}
        for ln, s in toks:
            m = EXT.match(s)
            if not m or m.group(1) not in keys:
                raise self.err(ln, f"expected {', '.join(repr(k + ':') for k in keys)}, got {s!r}")
            seen[m.group(1)] = (ln, m.group(2))
        return seen

    def _apply_meta(self, seen: dict, section_ln: int, card: dict) -> None:
        if "Id" in seen:
            card["id"] = decode(seen["Id"][1])
        if ("Model" in seen) != ("Model version" in seen):
            raise self.err(section_ln, "'Model:' and 'Model version:' go together")
        if "Model" in seen:
            model = {"name": decode(seen["Model"][1]), "version": decode(seen["Model version"][1])}
            if "Model heads" in seen:
                model["heads"] = parse_list(seen["Model heads"][1], camel=False) or []
            card["model"] = model

    def _json_block(self, ln, body):
        try:
            return json.loads("\n".join(s for _, s in body))
        except ValueError as e:
            raise self.err(ln, f"the section after this line must be JSON: {e}") from None

    def _others(self, ln, body, card) -> None:
        more = self._json_block(ln, body)
        if not isinstance(more, dict):
            raise self.err(ln, f"{OTHER_SECTION} must hold a JSON object of {{path: {{field: value}}}}")
        for path, fields in more.items():
            target = _resolve(card, path)
            if not isinstance(target, dict) or not isinstance(fields, dict):
                raise self.err(ln, f"{OTHER_SECTION}: no object at {path or 'the card'!r}")
            for k, v in fields.items():
                if k in target:
                    raise self.err(ln, f"{OTHER_SECTION}: {path}.{k} is already given above")
                target[k] = v


def _tokens(body):
    return [(ln, s) for ln, s in body if s]


def _is_cited(s: str) -> bool:
    """A line under the summary or an answer: `Method:` or an evidence line."""
    m = EXT.match(s)
    return bool((m and m.group(1) == "Method") or EVIDENCE_LIKE.match(s))


def _ends_explanation(s: str) -> bool:
    return bool(
        SCORE_LIKE.match(s) or s.lower() in LABELS_LOWER or CONCEPT_LINE.match(s)
        or EVIDENCE_LIKE.match(s) or EXT.match(s)
    )


_PATH_PART = re.compile(r"([A-Za-z_]+)|\[(\d+)\]")


def _resolve(card, path: str):
    obj = card
    for name, index in _PATH_PART.findall(path):
        try:
            obj = obj[name] if name else obj[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def parse_text(text: str, source_name: str = "<card>") -> dict:
    """A card in the text layout -> a validated card dict (canonical form, see `normalize`).

    Raises CardError naming `source_name:line` for layout errors, and the field for schema errors.
    """
    return _Parser(text, source_name).parse()


# ---------------------------------------------------------------- render


def _others_of(card: dict, v11: bool) -> dict[str, dict]:
    """Fields the layout has no place for, by path; written as JSON so nothing is lost."""
    out: dict[str, dict] = {}

    def take(path, obj, known):
        rest = {k: v for k, v in obj.items() if k not in known}
        if rest:
            out[path] = rest

    def known(kind):
        return _KNOWN[kind] | (_KNOWN_1_1.get(kind, set()) if v11 else set())

    top_known = set(_BASE_TOP) | (set(FIELDS_1_1) if v11 else set()) | (
        {"extra"} if isinstance(card.get("extra"), dict) else set())
    take("", card, top_known)
    take("model", card["model"], _KNOWN["model"])
    for i, c in enumerate(card["cognitive_concepts"]):
        take(f"cognitive_concepts[{i}]", c, _KNOWN["concept"])
        for j, e in enumerate(c["evidence"]):
            take(f"cognitive_concepts[{i}].evidence[{j}]", e, known("evidence"))
    for i, s in enumerate(card["sdgs"]):
        take(f"sdgs[{i}]", s, known("sdg"))
        for j, e in enumerate(s["evidence"] if v11 else []):
            take(f"sdgs[{i}].evidence[{j}]", e, _SPAN_KEYS)
    for i, t in enumerate(card["topics"]):
        take(f"topics[{i}]", t, _KNOWN["topic"])
    if isinstance(card["political_leaning"], dict):
        take("political_leaning", card["political_leaning"], _KNOWN["leaning"])
    if v11:
        _others_1_1(card, take)
    return out


def _others_1_1(card: dict, take) -> None:
    if isinstance(card["summary"], dict):
        take("summary", card["summary"], {"text", "method", "evidence"})
        for j, e in enumerate(card["summary"]["evidence"]):
            take(f"summary.evidence[{j}]", e, _SPAN_KEYS)
    if isinstance(card["entities"], dict):
        take("entities", card["entities"], ENTITY_KINDS)
        for kind in ENTITY_KINDS:
            for j, e in enumerate(card["entities"][kind]):
                take(f"entities.{kind}[{j}]", e, {"name", "mentions", "spans"})
                for k, sp in enumerate(e.get("spans", [])):
                    take(f"entities.{kind}[{j}].spans[{k}]", sp, {"start", "end"})
    for i, q in enumerate(card["key_questions"]):
        take(f"key_questions[{i}]", q, {"question", "answer", "method", "evidence"})
        for j, e in enumerate(q["evidence"]):
            take(f"key_questions[{i}].evidence[{j}]", e, _SPAN_KEYS)


def _str_list(v, n: int | None = None) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v) and (n is None or len(v) == n)


def _extra_slots(card: dict, extra: dict, v11: bool) -> dict[str, Any]:
    """Extra fields that go to their place in the layout (popped from `extra`): only those
    that reading back gives exactly; anything else stays in the JSON of "Extra Fields". A 1.1
    card has fields of its own for all but the headlines."""
    slots: dict[str, Any] = {}
    title_line = enc(card["title"])
    h = extra.get("headlines")
    if _str_list(h, 2) and [enc(x) for x in h] != [title_line, title_line]:
        slots["headlines"] = extra.pop("headlines")
    if v11:
        return slots
    if isinstance(extra.get("summary"), str):
        slots["summary"] = extra.pop("summary")
    t = extra.get("tags")
    if isinstance(t, dict) and t and set(t) <= set(TAG_KEYS) and all(_str_list(v) for v in t.values()):
        slots["tags"] = extra.pop("tags")
    q = extra.get("key_questions")
    if isinstance(q, list) and q and all(
        isinstance(x, dict) and set(x) == {"question", "answer"}
        and isinstance(x["question"], str) and isinstance(x["answer"], str) for x in q
    ):
        slots["key_questions"] = extra.pop("key_questions")
    e = extra.get("sdg_explanations")
    if (
        isinstance(e, list) and card["sdgs"] and len(e) == len(card["sdgs"])
        and all(x is None or isinstance(x, str) for x in e) and any(x is not None for x in e)
    ):
        slots["sdg_explanations"] = extra.pop("sdg_explanations")
    return slots


def _view(card: dict, slots: dict, v11: bool) -> dict:
    """What the header, Warnings and goal blocks show, from the 1.1 fields or (1.0) the slots."""
    n = len(card["sdgs"])
    if not v11:
        tags = slots.get("tags", {})
        return {
            "summary": {"text": slots["summary"]} if "summary" in slots else None,
            "entities": {k: enc_list(tags.get(k), camel=True) for k in TAG_KEYS},
            "questions": slots.get("key_questions", []),
            "sdg_explanations": slots.get("sdg_explanations", [None] * n),
            "sdg_evidence": [[] for _ in range(n)],
            "warnings": [],
        }
    ents = card["entities"]
    if ents is None:
        lines = {k: NONE for k in TAG_KEYS}
    else:
        all_empty = not any(ents[k] for k in ENTITY_KINDS)
        lines = {k: enc_entities(ents[k], all_empty=all_empty) for k in TAG_KEYS}
    return {
        "summary": card["summary"],
        "entities": lines,
        "questions": card["key_questions"],
        "sdg_explanations": [s["explanation"] for s in card["sdgs"]],
        "sdg_evidence": [s["evidence"] for s in card["sdgs"]],
        "warnings": card["warnings"],
    }


def _cited_lines(obj: dict) -> list[str]:
    """The method and evidence lines under a summary or an answer (none for a 1.0 card's)."""
    lines = [f"Method: {obj['method']}"] if "method" in obj else []
    return lines + [enc_evidence({k: e[k] for k in _SPAN_KEYS if k in e}) for e in obj.get("evidence", [])]


def _header_paras(card: dict, slots: dict, view: dict) -> list[list[str]]:
    title = enc(card["title"])
    heads = [enc(x) for x in slots.get("headlines", (card["title"], card["title"]))]
    summary = view["summary"]
    summary_block = [enc(summary["text"]), *_cited_lines(summary)] if summary is not None else [NONE]
    paras = [[title], [heads[0]], [enc(card["source"])], [heads[1]], summary_block]
    lines = view["entities"]
    details = [enc(card["language"]), lines["locations"], enc_topics(card["topics"]), lines["organisations"],
               lines["people"]]
    for qa in view["questions"]:
        details += [enc(qa["question"]), enc(qa["answer"]), *_cited_lines(qa)]
    paras.append(details)
    if view["warnings"]:
        paras += [[WARNINGS_SECTION], [enc(w) for w in view["warnings"]]]
    return paras


def _concept_paras(c: dict, v11: bool) -> list[list[str]]:
    paras = [[f"{json_text(c['score']) if c['score'] is not None else '-'}/5"]]
    label = c["label"]
    if label == CONCEPT_LABELS[c["concept"]]:
        paras.append([label])
    else:
        paras.append([f"Concept {c['concept']}: {enc(label, line=False)}"])
    paras.append([enc(c["explanation"])])
    ext = []
    if c["expected_score"] is not None:
        ext.append(f"Expected score: {json_text(c['expected_score'])}")
    if c["distribution"] is not None:
        ext.append(f"Distribution: {json_text(c['distribution'])}")
    for ev in c["evidence"]:
        ext.append(enc_evidence({k: ev[k] for k in _SPAN_KEYS}, quoted=v11 and ev["quoted"]))
        if "words" in ev:
            ext.append(f"Biased words: {enc_list(ev['words'], camel=False, line=False)}")
    return paras + ([ext] if ext else [])


def _sdg_paras(card: dict, view: dict) -> list[list[str]]:
    paras = [[SDGS_SECTION]]
    for s, expl, evidence in zip(card["sdgs"], view["sdg_explanations"], view["sdg_evidence"]):
        block = [_render_sdg_header(s)]
        if s["relevance"]:
            block.append(f"{s['relevance'].capitalize()} Relevance")
        if not is_one(s["probability"]):
            block.append(f"Probability: {json_text(s['probability'])}")
        paras.append(block)
        if expl is not None:
            paras.append([enc(expl)])
        if evidence:
            paras.append([enc_evidence({k: e[k] for k in _SPAN_KEYS if k in e}) for e in evidence])
    return paras


def _tail_paras(card: dict, v11: bool) -> list[list[str]]:
    """Political Leaning, Card Metadata and Other Fields, where the card has them."""
    paras: list[list[str]] = []
    leaning = card["political_leaning"]
    if leaning is not None:
        paras.append([LEANING_SECTION])
        lines = []
        if "label" in leaning:
            lines.append(f"Leaning: {leaning['label']}")
        if "distribution" in leaning:
            lines.append(f"Distribution: {json_text(leaning['distribution'])}")
        if lines:
            paras.append(lines)
    model = card["model"]
    version = card["schema_version"]
    human = same({k: model[k] for k in _KNOWN["model"] if k in model}, HUMAN_MODEL)
    if card["id"] is not None or not human or version != SCHEMA_VERSION:
        lines = [] if version == SCHEMA_VERSION else [f"Schema version: {enc(version, line=False)}"]
        if card["id"] is not None:
            lines.append(f"Id: {enc(card['id'], line=False)}")
        lines += [f"Model: {enc(model['name'], line=False)}", f"Model version: {enc(model['version'], line=False)}"]
        if "heads" in model:
            lines.append(f"Model heads: {enc_list(model['heads'], camel=False, line=False)}")
        paras += [[META_SECTION], lines]
    others = _others_of(card, v11)
    if others:
        paras += [[OTHER_SECTION], [json_text(others, indent=2)]]
    return paras


def render_text(card: dict) -> str:
    """A valid card -> the text layout (see the module docstring). Raises CardError if invalid."""
    validate(card)
    card = normalize(card)
    v11 = has_1_1_fields(card)
    extra = dict(card["extra"]) if isinstance(card.get("extra"), dict) else None
    slots = _extra_slots(card, extra, v11) if extra is not None else {}
    view = _view(card, slots, v11)
    paras = _header_paras(card, slots, view) + [[CONCEPTS_SECTION]]
    for c in card["cognitive_concepts"]:
        paras += _concept_paras(c, v11)
    paras += _sdg_paras(card, view) + _tail_paras(card, v11)
    if extra is not None and (extra or not slots):
        paras += [[EXTRA_SECTION], [json_text(extra, indent=2)]]
    return "\n\n".join("\n".join(p) for p in paras) + "\n"


def _render_sdg_header(s: dict) -> str:
    pol = f" {s['polarity'].capitalize()}" if s["polarity"] else ""
    want = (s["goal"], s["name"], s["polarity"])
    plain = f"SDG {json_text(s['goal'])}: {s['name']}{pol}"
    if inline_ok(s["name"]) and sdg_header(plain) == want and same(sdg_header(plain)[0], s["goal"]):
        return plain
    return f"SDG {json_text(s['goal'])}: {json_text(s['name'])}{pol}"

