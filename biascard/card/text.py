"""The card's text layout: read the layout news sites print (the seed), write it back.

The layout is the seed's, top to bottom:

    title / headline / source (domain) / headline / summary   (one line each, blank between)
    language, locations, topics, organisations, people       (one line each, no blanks)
    key question, answer, key question, answer, ...
    Cognitive Concepts   then per concept: "2/5", the label, the explanation
    Sustainable Development Goals   then per goal: "<name> Positive", "Direct Relevance",
                                    the explanation

`render_text` writes the same layout and extends it only where the seed has no place for a
schema field: optional lines inside a concept block (`Expected score:`, `Distribution:`,
`Evidence <start>-<end> (<score>): <text>`, `Biased words:`), `SDG <n>: ` before the goal
name and `Probability:` under it, and the trailing sections `Political Leaning`,
`Card Metadata` (id, model), `Other Fields` and `Extra Fields` (JSON). The parser reads
both the seed and the rendered form, and `parse_text(render_text(c)) == normalize(c)` for
every valid card.

Values: a line holds its value as is; `(none)` stands for null (or, in an `extra` slot,
for "absent"); a value the layout could misread (a line break, edge spaces, text that looks
like a layout line, `(none)` itself) is written as a JSON literal instead. The renderer
checks each plain line by parsing it back and falls back to JSON when that would not give
the same value, so the round trip never depends on a heuristic.
"""
# long: the parser and the renderer of one layout share every value rule and change together
# (parse_text(render_text(c)) == normalize(c)), so they stay in one file.
from __future__ import annotations

import json
import math
import re
from typing import Any

from .contract import (
    CONCEPT_LABELS,
    CONCEPTS,
    HUMAN_MODEL,
    SCHEMA_VERSION,
    SDG_NAMES,
    CardError,
    normalize,
    sdg_goal,
    validate,
)

CONCEPTS_SECTION = "Cognitive Concepts"
SDGS_SECTION = "Sustainable Development Goals"
LEANING_SECTION = "Political Leaning"
META_SECTION = "Card Metadata"
OTHER_SECTION = "Other Fields"
EXTRA_SECTION = "Extra Fields"  # always last: everything after it is JSON
SECTIONS = (CONCEPTS_SECTION, SDGS_SECTION, LEANING_SECTION, META_SECTION, OTHER_SECTION, EXTRA_SECTION)

NONE = "(none)"
SEP = " · "
TAG_KEYS = ("locations", "organisations", "people")
HEADER_ROLES = ("title", "headline", "source", "headline", "summary")

_TOP_KEYS = (
    "schema_version", "id", "title", "source", "language", "model",
    "cognitive_concepts", "sdgs", "topics", "political_leaning", "extra",
)
_KNOWN = {
    "model": {"name", "version", "heads"},
    "concept": {"concept", "label", "score", "expected_score", "distribution", "evidence", "explanation"},
    "evidence": {"text", "start", "end", "score", "words"},
    "sdg": {"goal", "name", "probability", "polarity", "relevance"},
    "topic": {"label", "probability"},
    "leaning": {"label", "distribution"},
}

_NUM = r"[0-9][0-9.eE+]*"
_SCORE_LIKE = re.compile(r"^(\S+)\s*/\s*5$")
_CONCEPT_LINE = re.compile(r"^Concept\s+(\S+?)\s*:\s*(.*)$")
_EXT = re.compile(r"^(Expected score|Distribution|Biased words|Probability|Leaning|Id|Model|Model version|Model heads):\s*(.*)$")
_EVIDENCE = re.compile(rf"^Evidence\s+(?P<a>{_NUM})\s*-\s*(?P<b>{_NUM})\s+\((?P<s>[^()]*)\):\s*(?P<t>.*)$")
_EVIDENCE_LIKE = re.compile(r"^Evidence\s+\d")
_SDG_PREFIX = re.compile(rf"^SDG\s+(?P<g>{_NUM})\s*:\s*(?P<rest>.*)$", re.I)
_POLARITY = re.compile(r"^(?P<name>.*\S)\s+(?P<p>positive|negative)$", re.I)
_RELEVANCE = re.compile(r"^(direct|indirect)\s+relevance$", re.I)
_TOPIC_P = re.compile(r"^(?P<label>.*) \(p=(?P<p>[^()]*)\)$")
_LABELS_LOWER = {v.lower(): k for k, v in CONCEPT_LABELS.items()}
# Characters some tool may treat as a line end; a value holding one is written as JSON.
_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


# ---------------------------------------------------------------- values


def _json(value: Any, indent: int | None = None) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)
    except (TypeError, ValueError) as e:
        raise CardError(f"card holds a value JSON cannot carry: {e}") from None
    # ensure_ascii=False leaves these raw, and some readers split lines on them.
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _same(a: Any, b: Any) -> bool:
    """Equal including int vs float, which `==` ignores."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _num(text: str) -> int | float | None:
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def _inline_ok(s: str) -> bool:
    # a leading BOM would be taken for the file's own and dropped by the parser
    return s != "" and s == s.strip() and not _BREAKS.search(s) and not s.startswith("\ufeff")


def _sdg_header(s: str) -> tuple[Any, str | None, str | None] | None:
    """(goal, name, polarity) if `s` is a goal line, in the seed's or the rendered form."""
    m = _SDG_PREFIX.match(s)
    rest = m.group("rest") if m else s
    polarity = None
    pm = _POLARITY.match(rest)
    if pm:
        rest, polarity = pm.group("name"), pm.group("p").lower()
    if m:
        goal = _num(m.group("g"))
        return (goal, _decode(rest), polarity) if goal is not None else None
    goal = sdg_goal(rest)
    if goal is None:
        return None
    return goal, SDG_NAMES[goal], polarity


def _structural(s: str) -> bool:
    """Could the parser take this line for part of the layout rather than a value?"""
    return bool(
        s in SECTIONS
        or _SCORE_LIKE.match(s)
        or s.lower() in _LABELS_LOWER
        or _CONCEPT_LINE.match(s)
        or _EXT.match(s)
        or _EVIDENCE_LIKE.match(s)
        or _RELEVANCE.match(s)
        or _sdg_header(s)
    )


def _line_ok(s: str) -> bool:
    return _inline_ok(s) and not _structural(s)


def _decode(s: str) -> str | None:
    if s == NONE:
        return None
    if len(s) >= 2 and s[0] == s[-1] == '"':
        try:
            v = json.loads(s)
        except ValueError:
            return s  # a real quote in the seed's own text, not an escape
        if isinstance(v, str):
            return v
    return s


def _enc(value: str | None, *, line: bool = True) -> str:
    """A string (or null) as a line of its own (`line`) or after a `Key: ` prefix."""
    if value is None:
        return NONE
    ok = _line_ok(value) if line else _inline_ok(value)
    return value if ok and _decode(value) == value else _json(value)


def _split_camel(s: str) -> list[str]:
    # The seed's page drops the separators between tags ("XuLiWei Jingfeng"), so a tag
    # boundary is guessed where a lowercase letter meets an uppercase one. That is wrong
    # for tags like "iPhone" or "McDonald's" and misses "NATOSummit"; the renderer never
    # relies on it (it writes " · " or JSON).
    parts, start = [], 0
    for i in range(1, len(s)):
        if s[i - 1].islower() and s[i].isupper():
            parts.append(s[start:i])
            start = i
    parts.append(s[start:])
    return parts


def _json_list(s: str, kind: type) -> list | None:
    """`s` as a JSON list of `kind` items, else None."""
    if not s.startswith("["):
        return None
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, kind) for x in v) else None


def _parse_list(s: str, *, camel: bool) -> list | None:
    if s == NONE:
        return None
    v = _json_list(s, str)
    if v is not None:
        return v
    if SEP in s:
        return s.split(SEP)
    return _split_camel(s) if camel else [s]


def _enc_list(items: list[str] | None, *, camel: bool, line: bool = True) -> str:
    if items is None:
        return NONE
    plain = SEP.join(items)
    ok = _line_ok(plain) if line else _inline_ok(plain)
    return plain if ok and _parse_list(plain, camel=camel) == items else _json(items)


def _is_one(p: Any) -> bool:
    return isinstance(p, float) and p == 1.0


def _parse_topics(s: str) -> list[dict] | None:
    if s == NONE:
        return []
    v = _json_list(s, dict)
    if v is not None:
        return v
    items = _parse_list(s, camel=True)
    out = []
    for it in items:
        m = _TOPIC_P.match(it)
        p = _num(m.group("p")) if m else None
        # A tag printed by a site is an editor's assertion, hence probability 1.0.
        out.append({"label": m.group("label"), "probability": p} if p is not None else {"label": it, "probability": 1.0})
    return out


def _enc_topics(topics: list[dict]) -> str:
    core = [{"label": t["label"], "probability": t["probability"]} for t in topics]
    items = [t["label"] if _is_one(t["probability"]) else f"{t['label']} (p={_json(t['probability'])})" for t in core]
    plain = SEP.join(items) if items else NONE
    if (plain == NONE or _line_ok(plain)) and _same(_parse_topics(plain), core):
        return plain
    return _json(core)


# ---------------------------------------------------------------- parse


class _Parser:
    def __init__(self, text: str, name: str):
        self.name = name
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.lines = [(i + 1, line.strip()) for i, line in enumerate(text.split("\n"))]

    def err(self, ln: int, msg: str) -> CardError:
        return CardError(f"{self.name}:{ln}: {msg}")

    def parse(self) -> dict:
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

        card: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        extra: dict[str, Any] = {}
        self._header(header, card, extra)
        card["model"] = dict(HUMAN_MODEL)
        card["cognitive_concepts"] = self._concepts(_tokens(sections[CONCEPTS_SECTION][1]))
        card["sdgs"] = []
        if SDGS_SECTION in sections:
            card["sdgs"], explanations = self._sdgs(_tokens(sections[SDGS_SECTION][1]))
            if any(e is not None for e in explanations):
                extra["sdg_explanations"] = explanations
        card["topics"] = card.pop("topics")  # keep the schema's key order
        card["political_leaning"] = None
        if LEANING_SECTION in sections:
            card["political_leaning"] = self._leaning(_tokens(sections[LEANING_SECTION][1]))
        if META_SECTION in sections:
            self._meta(_tokens(sections[META_SECTION][1]), sections[META_SECTION][0], card)
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
        if OTHER_SECTION in sections:
            self._others(*sections[OTHER_SECTION], card)
        try:
            validate(card)
        except CardError as e:
            raise CardError(f"{self.name}: {e}", path=e.path) from None
        return card

    def _header(self, header, card, extra) -> None:
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
            if len(p) != 1:
                raise self.err(p[1][0], f"expected a blank line after the {role} line")
        if len(paras) != 6:
            ln = paras[6][0][0] if len(paras) > 6 else (paras[-1][-1][0] if paras else 1)
            raise self.err(
                ln,
                "expected the card header as 6 blocks separated by blank lines (title, headline, "
                "source, headline, summary, then language/locations/topics/organisations/people "
                f"and the key questions with answers); found {len(paras)}",
            )
        (title,), (h1,), (source,), (h2,), (summary,), details = paras
        card["id"] = None
        card["title"] = _decode(title[1])
        card["source"] = _decode(source[1])
        if (h1[1], h2[1]) != (title[1], title[1]):
            extra["headlines"] = [_decode(h1[1]), _decode(h2[1])]
        if summary[1] != NONE:
            extra["summary"] = _decode(summary[1])
        if len(details) < 5:
            raise self.err(
                details[-1][0], "the details block needs 5 lines: language, locations, topics, organisations, people"
            )
        card["language"] = _decode(details[0][1])
        # The seed's line after the language names a place ("China"); whether the site means
        # the article's places or the outlet's country is not said, so it is kept as tags.
        card["topics"] = _parse_topics(details[2][1])
        tags = {}
        for key, (ln, s) in zip(TAG_KEYS, (details[1], details[3], details[4])):
            items = _parse_list(s, camel=True)
            if items is not None:
                tags[key] = items
        if tags:
            extra["tags"] = tags
        qa = details[5:]
        if len(qa) % 2:
            raise self.err(qa[-1][0], f"key question without an answer: {qa[-1][1]!r}")
        if qa:
            extra["key_questions"] = [
                {"question": _decode(q[1]), "answer": _decode(a[1])} for q, a in zip(qa[::2], qa[1::2])
            ]

    def _concepts(self, toks) -> list[dict]:
        out = []
        i = 0
        while i < len(toks):
            out.append(self._score_and_label(toks, i))
            c = out[-1]
            i += 2
            expl = []
            while i < len(toks) and not _ends_explanation(toks[i][1]):
                expl.append(toks[i])
                i += 1
            if len(expl) == 1:
                c["explanation"] = _decode(expl[0][1])
            elif expl:  # several paragraphs in a hand-written card
                c["explanation"] = "\n\n".join(s for _, s in expl)
            while i < len(toks) and (_EVIDENCE_LIKE.match(toks[i][1]) or _EXT.match(toks[i][1])):
                self._concept_extension(toks[i], c)
                i += 1
            out[-1] = {k: c[k] for k in ("concept", "label", "score", "expected_score", "distribution", "evidence", "explanation")}
        return out

    def _score_and_label(self, toks, i) -> dict:
        ln, s = toks[i]
        m = _SCORE_LIKE.match(s)
        score = _num(m.group(1)) if m else None
        if not m or (score is None and m.group(1) != "-"):
            raise self.err(ln, f"expected a score like '2/5' (or '-/5' for none), got {s!r}")
        if score is not None and ((isinstance(score, float) and not score.is_integer()) or not 1 <= score <= 5):
            raise self.err(ln, f"score {m.group(1)} is not a whole number from 1 to 5")
        if i + 1 >= len(toks):
            raise self.err(ln, "expected a concept label after the score")
        ln, s = toks[i + 1]
        cm = _CONCEPT_LINE.match(s)
        if cm:
            concept, label = cm.group(1), _decode(cm.group(2))
            if concept not in CONCEPTS or label is None:
                raise self.err(ln, f"expected 'Concept <{'|'.join(CONCEPTS)}>: <label>', got {s!r}")
        elif s.lower() in _LABELS_LOWER:
            concept, label = _LABELS_LOWER[s.lower()], s
        else:
            raise self.err(ln, f"expected a concept label ({', '.join(CONCEPT_LABELS.values())}), got {s!r}")
        return {
            "concept": concept, "label": label, "score": score, "expected_score": None,
            "distribution": None, "evidence": [], "explanation": None,
        }

    def _concept_extension(self, tok, c) -> None:
        ln, s = tok
        if _EVIDENCE_LIKE.match(s):
            m = _EVIDENCE.match(s)
            start, end, score = (_num(m.group(g)) for g in "abs") if m else (None, None, None)
            if None in (start, end, score):
                raise self.err(ln, f"expected 'Evidence <start>-<end> (<score>): <text>', got {s!r}")
            text = _decode(m.group("t"))
            if text is None:
                raise self.err(ln, "evidence without text")
            c["evidence"].append({"text": text, "start": start, "end": end, "score": score})
            return
        m = _EXT.match(s)
        key = m.group(1) if m else None
        if key == "Biased words":
            if not c["evidence"] or "words" in c["evidence"][-1]:
                raise self.err(ln, "'Biased words:' must follow an Evidence line")
            words = _parse_list(m.group(2), camel=False)
            c["evidence"][-1]["words"] = words if words is not None else []
        elif key in ("Expected score", "Distribution"):
            field = "expected_score" if key == "Expected score" else "distribution"
            try:
                c[field] = json.loads(m.group(2))
            except ValueError:
                raise self.err(ln, f"{key}: expected JSON, got {m.group(2)!r}") from None
        else:
            raise self.err(ln, f"'{key}:' does not belong in a concept block")

    def _sdgs(self, toks) -> tuple[list[dict], list[str | None]]:
        sdgs, explanations = [], []
        for ln, s in toks:
            head = _sdg_header(s)
            if head is not None:
                goal, name, polarity = head  # a seed-form name becomes the official short name
                if name is None:
                    raise self.err(ln, "SDG without a name")
                sdgs.append({"goal": goal, "name": name, "probability": 1.0, "polarity": polarity, "relevance": None})
                explanations.append(None)
                continue
            if not sdgs:
                raise self.err(ln, f"expected an SDG like 'Peace, Justice and Strong Institutions Positive', got {s!r}")
            m = _EXT.match(s)
            if _RELEVANCE.match(s):
                sdgs[-1]["relevance"] = s.split()[0].lower()
            elif m and m.group(1) == "Probability":
                p = _num(m.group(2))
                if p is None:
                    raise self.err(ln, f"expected a number after 'Probability:', got {m.group(2)!r}")
                sdgs[-1]["probability"] = p
            elif explanations[-1] is None:
                explanations[-1] = _decode(s) if s != NONE else None
            else:
                explanations[-1] += "\n\n" + s
        return sdgs, explanations

    def _leaning(self, toks) -> dict:
        out: dict[str, Any] = {}
        for ln, s in toks:
            m = _EXT.match(s)
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

    def _meta(self, toks, section_ln, card) -> None:
        seen: dict[str, str] = {}
        for ln, s in toks:
            m = _EXT.match(s)
            if not m or m.group(1) not in ("Id", "Model", "Model version", "Model heads"):
                raise self.err(ln, f"expected 'Id:', 'Model:', 'Model version:' or 'Model heads:', got {s!r}")
            seen[m.group(1)] = m.group(2)
        if "Id" in seen:
            card["id"] = _decode(seen["Id"])
        if ("Model" in seen) != ("Model version" in seen):
            raise self.err(section_ln, "'Model:' and 'Model version:' go together")
        if "Model" in seen:
            model = {"name": _decode(seen["Model"]), "version": _decode(seen["Model version"])}
            if "Model heads" in seen:
                model["heads"] = _parse_list(seen["Model heads"], camel=False) or []
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


def _ends_explanation(s: str) -> bool:
    return bool(
        _SCORE_LIKE.match(s) or s.lower() in _LABELS_LOWER or _CONCEPT_LINE.match(s)
        or _EVIDENCE_LIKE.match(s) or _EXT.match(s)
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


def _others_of(card: dict) -> dict[str, dict]:
    """Fields the layout has no place for, by path; written as JSON so nothing is lost."""
    out: dict[str, dict] = {}

    def take(path, obj, known):
        rest = {k: v for k, v in obj.items() if k not in known}
        if rest:
            out[path] = rest

    top_known = set(_TOP_KEYS) - ({"extra"} if not isinstance(card.get("extra"), dict) else set())
    take("", card, top_known)
    take("model", card["model"], _KNOWN["model"])
    for i, c in enumerate(card["cognitive_concepts"]):
        take(f"cognitive_concepts[{i}]", c, _KNOWN["concept"])
        for j, e in enumerate(c["evidence"]):
            take(f"cognitive_concepts[{i}].evidence[{j}]", e, _KNOWN["evidence"])
    for i, s in enumerate(card["sdgs"]):
        take(f"sdgs[{i}]", s, _KNOWN["sdg"])
    for i, t in enumerate(card["topics"]):
        take(f"topics[{i}]", t, _KNOWN["topic"])
    if isinstance(card["political_leaning"], dict):
        take("political_leaning", card["political_leaning"], _KNOWN["leaning"])
    return out


def _str_list(v, n: int | None = None) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v) and (n is None or len(v) == n)


def _extra_slots(card: dict, extra: dict) -> dict[str, Any]:
    """Extra fields that go to their place in the layout (popped from `extra`): only those
    that reading back gives exactly; anything else stays in the JSON of "Extra Fields"."""
    slots: dict[str, Any] = {}
    title_line = _enc(card["title"])
    h = extra.get("headlines")
    if _str_list(h, 2) and [_enc(x) for x in h] != [title_line, title_line]:
        slots["headlines"] = extra.pop("headlines")
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


def _header_paras(card: dict, slots: dict) -> list[list[str]]:
    title = _enc(card["title"])
    heads = [_enc(x) for x in slots.get("headlines", (card["title"], card["title"]))]
    paras = [[title], [heads[0]], [_enc(card["source"])], [heads[1]], [_enc(slots.get("summary"))]]
    tags = slots.get("tags", {})
    details = [
        _enc(card["language"]),
        _enc_list(tags.get("locations"), camel=True),
        _enc_topics(card["topics"]),
        _enc_list(tags.get("organisations"), camel=True),
        _enc_list(tags.get("people"), camel=True),
    ]
    for qa in slots.get("key_questions", []):
        details += [_enc(qa["question"]), _enc(qa["answer"])]
    return paras + [details]


def _concept_paras(c: dict) -> list[list[str]]:
    paras = [[f"{_json(c['score']) if c['score'] is not None else '-'}/5"]]
    label = c["label"]
    if label == CONCEPT_LABELS[c["concept"]]:
        paras.append([label])
    else:
        paras.append([f"Concept {c['concept']}: {_enc(label, line=False)}"])
    paras.append([_enc(c["explanation"])])
    ext = []
    if c["expected_score"] is not None:
        ext.append(f"Expected score: {_json(c['expected_score'])}")
    if c["distribution"] is not None:
        ext.append(f"Distribution: {_json(c['distribution'])}")
    for ev in c["evidence"]:
        ext.append(
            f"Evidence {_json(ev['start'])}-{_json(ev['end'])} ({_json(ev['score'])}): {_enc(ev['text'], line=False)}"
        )
        if "words" in ev:
            ext.append(f"Biased words: {_enc_list(ev['words'], camel=False, line=False)}")
    return paras + ([ext] if ext else [])


def _sdg_paras(card: dict, slots: dict) -> list[list[str]]:
    paras = [[SDGS_SECTION]]
    explanations = slots.get("sdg_explanations", [None] * len(card["sdgs"]))
    for s, expl in zip(card["sdgs"], explanations):
        block = [_render_sdg_header(s)]
        if s["relevance"]:
            block.append(f"{s['relevance'].capitalize()} Relevance")
        if not _is_one(s["probability"]):
            block.append(f"Probability: {_json(s['probability'])}")
        paras.append(block)
        if expl is not None:
            paras.append([_enc(expl)])
    return paras


def _tail_paras(card: dict) -> list[list[str]]:
    """Political Leaning, Card Metadata and Other Fields, where the card has them."""
    paras: list[list[str]] = []
    leaning = card["political_leaning"]
    if leaning is not None:
        paras.append([LEANING_SECTION])
        lines = []
        if "label" in leaning:
            lines.append(f"Leaning: {leaning['label']}")
        if "distribution" in leaning:
            lines.append(f"Distribution: {_json(leaning['distribution'])}")
        if lines:
            paras.append(lines)
    model = card["model"]
    if card["id"] is not None or not _same({k: model[k] for k in _KNOWN["model"] if k in model}, HUMAN_MODEL):
        lines = [] if card["id"] is None else [f"Id: {_enc(card['id'], line=False)}"]
        lines += [f"Model: {_enc(model['name'], line=False)}", f"Model version: {_enc(model['version'], line=False)}"]
        if "heads" in model:
            lines.append(f"Model heads: {_enc_list(model['heads'], camel=False, line=False)}")
        paras += [[META_SECTION], lines]
    others = _others_of(card)
    if others:
        paras += [[OTHER_SECTION], [_json(others, indent=2)]]
    return paras


def render_text(card: dict) -> str:
    """A valid card -> the text layout (see the module docstring). Raises CardError if invalid."""
    validate(card)
    card = normalize(card)
    extra = dict(card["extra"]) if isinstance(card.get("extra"), dict) else None
    slots = _extra_slots(card, extra) if extra is not None else {}
    paras = _header_paras(card, slots) + [[CONCEPTS_SECTION]]
    for c in card["cognitive_concepts"]:
        paras += _concept_paras(c)
    paras += _sdg_paras(card, slots) + _tail_paras(card)
    if extra is not None and (extra or not slots):
        paras += [[EXTRA_SECTION], [_json(extra, indent=2)]]
    return "\n\n".join("\n".join(p) for p in paras) + "\n"


def _render_sdg_header(s: dict) -> str:
    pol = f" {s['polarity'].capitalize()}" if s["polarity"] else ""
    want = (s["goal"], s["name"], s["polarity"])
    plain = f"SDG {_json(s['goal'])}: {s['name']}{pol}"
    if _inline_ok(s["name"]) and _sdg_header(plain) == want and _same(_sdg_header(plain)[0], s["goal"]):
        return plain
    return f"SDG {_json(s['goal'])}: {_json(s['name'])}{pol}"
