"""The bias card as Python types, its schema check, and the names it displays.

A card is a plain dict that matches `card.schema.json`; the TypedDicts below only
describe it for readers and type checkers, so converting between dict and type is free.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional, TypedDict

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match



SCHEMA_PATH = Path(__file__).resolve().parent / "card.schema.json"
# what this package writes; the schema accepts every version in SCHEMA_VERSIONS
SCHEMA_VERSION = "1.1"
SCHEMA_VERSIONS = ("1.0", "1.1")
# 1.1 adds these top-level fields (and quoted evidence, SDG explanation/evidence); a 1.0 card
# may still carry them, but they are not part of its canonical form (see `normalize`)
FIELDS_1_1 = ("summary", "entities", "key_questions", "warnings")
ENTITY_KINDS = ("people", "organisations", "locations")
METHODS = ("extractive", "generated")

Concept = Literal["framing_bias", "language_bias", "bias_by_omission", "false_dichotomy"]
CONCEPTS: tuple[str, ...] = ("framing_bias", "language_bias", "bias_by_omission", "false_dichotomy")
# The document-level ordinal head that scores each concept directly (trained on labeled cards).
CONCEPT_HEADS: dict[str, str] = {c: f"card_{c}" for c in CONCEPTS}
CONCEPT_LABELS: dict[str, str] = {
    "framing_bias": "Framing Bias",
    "language_bias": "Language Bias",
    "bias_by_omission": "Bias by Omission",
    "false_dichotomy": "False Dichotomy",
}

# The UN's official short names of the 17 Sustainable Development Goals.
SDG_NAMES: dict[int, str] = {
    1: "No Poverty",
    2: "Zero Hunger",
    3: "Good Health and Well-being",
    4: "Quality Education",
    5: "Gender Equality",
    6: "Clean Water and Sanitation",
    7: "Affordable and Clean Energy",
    8: "Decent Work and Economic Growth",
    9: "Industry, Innovation and Infrastructure",
    10: "Reduced Inequalities",
    11: "Sustainable Cities and Communities",
    12: "Responsible Consumption and Production",
    13: "Climate Action",
    14: "Life Below Water",
    15: "Life on Land",
    16: "Peace, Justice and Strong Institutions",
    17: "Partnerships for the Goals",
}
# Spellings seen in the wild (the seed writes "Peace, Justice, and Strong Institutions";
# punctuation and case are ignored when matching, so only wording variants go here).
_SDG_ALIASES: dict[str, int] = {
    "Reduced Inequality": 10,
    "Partnership for the Goals": 17,
    "Partnerships to achieve the Goal": 17,
}

# A card parsed from text that names no model was written by people: the seed layout
# carries no model, and the schema requires one.
HUMAN_MODEL: dict[str, str] = {"name": "human", "version": "seed"}


class Evidence(TypedDict, total=False):
    text: str
    start: int
    end: int
    score: float
    words: list[str]
    quoted: bool  # 1.1: a quotation or attributed speech, not the outlet's own voice


class Span(TypedDict, total=False):
    """An article sentence a summary, answer or goal rests on (score optional)."""
    text: str
    start: int
    end: int
    score: float


class EntitySpan(TypedDict):
    start: int
    end: int


class Entity(TypedDict, total=False):
    name: str
    mentions: int
    spans: list[EntitySpan]


class Entities(TypedDict, total=False):
    people: list[Entity]
    organisations: list[Entity]
    locations: list[Entity]


Method = Literal["extractive", "generated"]


class Summary(TypedDict, total=False):
    text: str
    method: Method
    evidence: list[Span]


class KeyQuestion(TypedDict, total=False):
    question: str
    answer: str
    method: Method
    evidence: list[Span]


class CognitiveConcept(TypedDict, total=False):
    concept: Concept
    label: str
    score: Optional[int]
    expected_score: Optional[float]
    distribution: Optional[list[float]]
    evidence: list[Evidence]
    explanation: Optional[str]


class SDG(TypedDict, total=False):
    goal: int
    name: str
    probability: float
    polarity: Optional[Literal["positive", "negative"]]
    relevance: Optional[Literal["direct", "indirect"]]
    explanation: Optional[str]  # 1.1
    evidence: list[Span]  # 1.1


class Topic(TypedDict):
    label: str
    probability: float


class ModelInfo(TypedDict, total=False):
    name: str
    version: str
    heads: list[str]


class PoliticalLeaning(TypedDict, total=False):
    label: Literal["left", "center", "right"]
    distribution: dict[str, float]


class Card(TypedDict, total=False):
    schema_version: str
    id: Optional[str]
    title: Optional[str]
    source: Optional[str]
    language: Optional[str]
    model: ModelInfo
    cognitive_concepts: list[CognitiveConcept]
    sdgs: list[SDG]
    topics: list[Topic]
    political_leaning: Optional[PoliticalLeaning]
    summary: Optional[Summary]  # 1.1 from here
    entities: Optional[Entities]
    key_questions: list[KeyQuestion]
    warnings: list[str]
    extra: dict[str, Any]


class CardError(ValueError):
    """A card that breaks the schema or a card text that cannot be read.

    `path` is the failing field (e.g. `cognitive_concepts[1].score`) when known.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


def _sdg_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower().replace("&", "and"))


_SDG_BY_KEY = {_sdg_key(n): g for g, n in SDG_NAMES.items()} | {_sdg_key(n): g for n, g in _SDG_ALIASES.items()}


def sdg_goal(name: str) -> int | None:
    """The goal number of an SDG name, ignoring case and punctuation; None if unknown."""
    key = _sdg_key(name)
    return _SDG_BY_KEY.get(key) if key else None


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def load_schema() -> dict:
    """A fresh copy of the card JSON Schema shipped with the package."""
    return json.loads(_schema_text())


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def field_path(parts) -> str:
    """`cognitive_concepts[1].score` from a jsonschema path deque."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "card"


def validate(card: Any) -> None:
    """Raise CardError naming the failing field if `card` does not match the schema."""
    errors = list(_validator().iter_errors(card))
    if not errors:
        return
    err = best_match(errors)
    path = field_path(err.absolute_path)
    msg = err.message
    shown = repr(err.instance)
    if len(shown) > 60 and shown in msg:  # keep the reason, not a dump of the whole value
        msg = msg.replace(shown, _short(err.instance), 1)
    if len(msg) > 300:
        msg = msg[:297] + "..."
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    raise CardError(f"{path}: {msg}{more}", path=path)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[...] ({len(value)} item(s))"
    if isinstance(value, dict):
        return "{...}"
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def is_valid(card: Any) -> bool:
    return _validator().is_valid(card)


def has_1_1_fields(card: dict) -> bool:
    """Is `card` of schema 1.1 or later, whose canonical form carries the 1.1 fields?"""
    return card.get("schema_version") != "1.0"


def normalize(card: dict) -> dict:
    """The canonical form of a valid card: every optional field of its schema version present
    (null when unknown, [] for lists), and each concept's label filled from CONCEPT_LABELS.
    A 1.1 card also gets `quoted: false` on concept evidence that does not say. A 1.0 card is
    left at 1.0: fields it carries beyond 1.0 stay as given and nothing of 1.1 is added.
    `parse_text` returns this form, so `parse_text(render_text(c)) == normalize(c)` for every
    valid card."""
    out = copy.deepcopy(card)
    v11 = has_1_1_fields(out)
    for key in ("id", "title", "source", "language", "political_leaning"):
        out.setdefault(key, None)
    for c in out["cognitive_concepts"]:
        c.setdefault("label", CONCEPT_LABELS[c["concept"]])
        for key in ("expected_score", "distribution", "explanation"):
            c.setdefault(key, None)
        if v11:
            for e in c["evidence"]:
                e.setdefault("quoted", False)
    for s in out["sdgs"]:
        s.setdefault("polarity", None)
        s.setdefault("relevance", None)
        if v11:
            s.setdefault("explanation", None)
            s.setdefault("evidence", [])
    if v11:
        _normalize_1_1(out)
    return out


def _normalize_1_1(out: dict) -> None:
    for key, empty in (("summary", None), ("entities", None), ("key_questions", []), ("warnings", [])):
        out.setdefault(key, empty)
    if isinstance(out["summary"], dict):
        out["summary"].setdefault("evidence", [])
    if isinstance(out["entities"], dict):
        for kind in ENTITY_KINDS:
            out["entities"].setdefault(kind, [])
    for q in out["key_questions"]:
        q.setdefault("evidence", [])
