"""The lines of the card's text layout: what each kind of line looks like, and how one value
is written on a line and read back. `text.py` puts the lines together into the layout.

A line holds its value as is; `(none)` stands for null; a value the layout could misread (a
line break, edge spaces, text that looks like a layout line, `(none)` itself) is written as a
JSON literal instead. Each encoder checks its plain form by reading it back and falls back to
JSON when that would not give the same value, so the readers may be lenient (they read the
seed, which news sites print) without the round trip depending on a heuristic.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from .contract import CONCEPT_LABELS, SDG_NAMES, CardError, sdg_goal

WARNINGS_SECTION = "Warnings"
CONCEPTS_SECTION = "Cognitive Concepts"
SDGS_SECTION = "Sustainable Development Goals"
LEANING_SECTION = "Political Leaning"
META_SECTION = "Card Metadata"
OTHER_SECTION = "Other Fields"
EXTRA_SECTION = "Extra Fields"  # always last: everything after it is JSON
SECTIONS = (
    WARNINGS_SECTION, CONCEPTS_SECTION, SDGS_SECTION, LEANING_SECTION, META_SECTION, OTHER_SECTION, EXTRA_SECTION,
)

NONE = "(none)"
EMPTY = "[]"
SEP = " · "

NUM = r"[0-9][0-9.eE+]*"
SCORE_LIKE = re.compile(r"^(\S+)\s*/\s*5$")
CONCEPT_LINE = re.compile(r"^Concept\s+(\S+?)\s*:\s*(.*)$")
EXT = re.compile(
    r"^(Expected score|Distribution|Biased words|Probability|Leaning|Method|Id|Model|Model version|Model heads"
    r"|Schema version):\s*(.*)$"
)
EVIDENCE = re.compile(
    rf"^(?P<q>Quoted e|E)vidence\s+(?P<a>{NUM})\s*-\s*(?P<b>{NUM})(?:\s+\((?P<s>[^()]*)\))?:\s*(?P<t>.*)$"
)
EVIDENCE_LIKE = re.compile(r"^(Quoted e|E)vidence\s+\d")
SDG_PREFIX = re.compile(rf"^SDG\s+(?P<g>{NUM})\s*:\s*(?P<rest>.*)$", re.I)
POLARITY = re.compile(r"^(?P<name>.*\S)\s+(?P<p>positive|negative)$", re.I)
RELEVANCE = re.compile(r"^(direct|indirect)\s+relevance$", re.I)
LABELS_LOWER = {v.lower(): k for k, v in CONCEPT_LABELS.items()}
_TOPIC_P = re.compile(r"^(?P<label>.*) \(p=(?P<p>[^()]*)\)$")
_ENTITY_NOTE = re.compile(r"^(?P<name>.*\S) \((?P<note>[^()]*)\)$")
_MENTIONS = re.compile(rf"^(?:(?P<n>{NUM}) mentions?)?(?:(?:^| )at (?P<spans>.+))?$")
_SPAN = re.compile(rf"^({NUM})-({NUM})$")
# Characters some tool may treat as a line end; a value holding one is written as JSON.
_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def json_text(value: Any, indent: int | None = None) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)
    except (TypeError, ValueError) as e:
        raise CardError(f"card holds a value JSON cannot carry: {e}") from None
    # ensure_ascii=False leaves these raw, and some readers split lines on them.
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def same(a: Any, b: Any) -> bool:
    """Equal including int vs float, which `==` ignores."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def number(text: str) -> int | float | None:
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def inline_ok(s: str) -> bool:
    # a leading BOM would be taken for the file's own and dropped by the parser
    return s != "" and s == s.strip() and not _BREAKS.search(s) and not s.startswith("\ufeff")


def sdg_header(s: str) -> tuple[Any, str | None, str | None] | None:
    """(goal, name, polarity) if `s` is a goal line, in the seed's or the rendered form."""
    m = SDG_PREFIX.match(s)
    rest = m.group("rest") if m else s
    polarity = None
    pm = POLARITY.match(rest)
    if pm:
        rest, polarity = pm.group("name"), pm.group("p").lower()
    if m:
        goal = number(m.group("g"))
        return (goal, decode(rest), polarity) if goal is not None else None
    if rest.startswith('"'):
        return None  # a value written as JSON, never the seed's goal line (names match without punctuation)
    goal = sdg_goal(rest)
    if goal is None:
        return None
    return goal, SDG_NAMES[goal], polarity


def structural(s: str) -> bool:
    """Could the parser take this line for part of the layout rather than a value?"""
    return bool(
        s in SECTIONS
        or SCORE_LIKE.match(s)
        or s.lower() in LABELS_LOWER
        or CONCEPT_LINE.match(s)
        or EXT.match(s)
        or EVIDENCE_LIKE.match(s)
        or RELEVANCE.match(s)
        or sdg_header(s)
    )


def line_ok(s: str) -> bool:
    return inline_ok(s) and not structural(s)


def decode(s: str) -> str | None:
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


def enc(value: str | None, *, line: bool = True) -> str:
    """A string (or null) as a line of its own (`line`) or after a `Key: ` prefix."""
    if value is None:
        return NONE
    ok = line_ok(value) if line else inline_ok(value)
    return value if ok and decode(value) == value else json_text(value)


def split_camel(s: str) -> list[str]:
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


def json_list(s: str, kind: type) -> list | None:
    """`s` as a JSON list of `kind` items, else None."""
    if not s.startswith("["):
        return None
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, kind) for x in v) else None


def parse_list(s: str, *, camel: bool) -> list | None:
    if s == NONE:
        return None
    v = json_list(s, str)
    if v is not None:
        return v
    if SEP in s:
        return s.split(SEP)
    return split_camel(s) if camel else [s]


def enc_list(items: list[str] | None, *, camel: bool, line: bool = True) -> str:
    if items is None:
        return NONE
    plain = SEP.join(items)
    ok = line_ok(plain) if line else inline_ok(plain)
    return plain if ok and parse_list(plain, camel=camel) == items else json_text(items)


def is_one(p: Any) -> bool:
    return isinstance(p, float) and p == 1.0


# ---------------------------------------------------------------- topics and entities


def parse_topics(s: str) -> list[dict]:
    if s == NONE:
        return []
    v = json_list(s, dict)
    if v is not None:
        return v
    out = []
    for it in parse_list(s, camel=True):
        m = _TOPIC_P.match(it)
        p = number(m.group("p")) if m else None
        # A tag printed by a site is an editor's assertion, hence probability 1.0.
        out.append({"label": m.group("label"), "probability": p} if p is not None else {"label": it, "probability": 1.0})
    return out


def enc_topics(topics: list[dict]) -> str:
    core = [{"label": t["label"], "probability": t["probability"]} for t in topics]
    items = [t["label"] if is_one(t["probability"]) else f"{t['label']} (p={json_text(t['probability'])})" for t in core]
    plain = SEP.join(items) if items else NONE
    if (plain == NONE or line_ok(plain)) and same(parse_topics(plain), core):
        return plain
    return json_text(core)


def _entity_item(item: str) -> dict:
    """`Xu (2 mentions at 10-12, 40-42)` -> an entity; anything else is a bare name."""
    m = _ENTITY_NOTE.match(item)
    mm = _MENTIONS.match(m.group("note")) if m else None
    if not mm or not (mm.group("n") or mm.group("spans")):
        return {"name": item}
    out: dict[str, Any] = {"name": m.group("name")}
    if mm.group("n"):
        out["mentions"] = number(mm.group("n"))
        if out["mentions"] is None:
            return {"name": item}
    if mm.group("spans"):
        out["spans"] = []
        for part in mm.group("spans").split(", "):
            sm = _SPAN.match(part)
            a, b = (number(sm.group(1)), number(sm.group(2))) if sm else (None, None)
            if a is None or b is None:
                return {"name": item}
            out["spans"].append({"start": a, "end": b})
    return out


def parse_entities(s: str) -> list[dict]:
    """An entity line (locations, organisations or people): `(none)` and `[]` are empty."""
    if s == NONE:
        return []
    names = json_list(s, str)
    if names is not None:
        return [{"name": n} for n in names]
    objs = json_list(s, dict)
    if objs is not None:
        return objs
    return [_entity_item(it) for it in parse_list(s, camel=True)]


def core_entity(e: dict) -> dict:
    """The fields of an entity the line carries (others go to the layout's Other Fields)."""
    out = {"name": e["name"]}
    if "mentions" in e:
        out["mentions"] = e["mentions"]
    if "spans" in e:
        out["spans"] = [{"start": s["start"], "end": s["end"]} for s in e["spans"]]
    return out


def _entity_plain(e: dict) -> str:
    note = []
    if "mentions" in e:
        note.append(f"{json_text(e['mentions'])} mention{'' if e['mentions'] == 1 else 's'}")
    if e.get("spans"):
        note.append("at " + ", ".join(f"{json_text(s['start'])}-{json_text(s['end'])}" for s in e["spans"]))
    return f"{e['name']} ({' '.join(note)})" if note else e["name"]


def enc_entities(entities: list[dict], *, all_empty: bool) -> str:
    """One entity line; `all_empty` (every list empty) writes `[]` so that it differs from a
    card whose entities are null (all three lines `(none)`)."""
    core = [core_entity(e) for e in entities]
    if not core:
        return EMPTY if all_empty else NONE
    plain = SEP.join(_entity_plain(e) for e in core)
    if line_ok(plain) and same(parse_entities(plain), core):
        return plain
    if all(set(e) == {"name"} for e in core):
        return json_text([e["name"] for e in core])
    return json_text(core)


# ---------------------------------------------------------------- evidence


def parse_evidence(s: str) -> dict | str:
    """An `Evidence <start>-<end> (<score>): <text>` line (score optional, `Quoted ` before it
    on a quotation) -> {text, start, end[, score], quoted}, or the reason it is not one."""
    m = EVIDENCE.match(s)
    start, end = (number(m.group("a")), number(m.group("b"))) if m else (None, None)
    score = number(m.group("s")) if m and m.group("s") is not None else None
    if None in (start, end) or (m.group("s") is not None and score is None):
        return f"expected 'Evidence <start>-<end> (<score>): <text>', got {s!r}"
    text = decode(m.group("t"))
    if text is None:
        return "evidence without text"
    out: dict[str, Any] = {"text": text, "start": start, "end": end}
    if score is not None:
        out["score"] = score
    out["quoted"] = m.group("q") == "Quoted e"
    return out


def enc_evidence(ev: dict, *, quoted: bool = False) -> str:
    """An evidence line; a span's score is optional, concept evidence always has one."""
    score = f" ({json_text(ev['score'])})" if "score" in ev else ""
    head = "Quoted evidence" if quoted else "Evidence"
    return f"{head} {json_text(ev['start'])}-{json_text(ev['end'])}{score}: {enc(ev['text'], line=False)}"
