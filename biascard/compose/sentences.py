"""Split an article into sentences with character offsets into the original text.

A regex splitter, not a trained one (no model download, deterministic, fast). Rules:
- a blank line (paragraph break) always ends a sentence; a single newline is plain
  whitespace, so hard-wrapped text is not cut mid-sentence;
- `.`, `!`, `?` (and `…`) followed by optional closing quotes/brackets, whitespace and a
  sentence start (capital letter, digit, opening quote or bracket) end a sentence;
- but not after a known abbreviation ("Mr.", "Dr.", "Sen.", "Jan.", "Inc.", "e.g."),
  a single-letter initial ("J. K. Rowling"), or a dotted initialism ("U.S.", "U.N.").
  The price of that rule: "... moved to the U.S. The next day" stays one sentence;
  a missed split only makes one evidence span longer, a false split cuts a claim in two.
Offsets are [start, end) into the text as given; spans exclude surrounding whitespace.
"""
from __future__ import annotations

import dataclasses
import re

ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr jr st mt ft rev hon gen sen rep gov lt col sgt capt cmdr adm maj
    pres supt insp det atty messrs mme mlle
    inc corp co ltd llc plc bros dept univ assn approx
    op cit al cf vs etc
    jan feb mar apr jun jul aug sep sept oct nov dec tue tues thu thur thurs
    ave blvd rd hwy
    """.split()
)
# Also ordinary words ("no.", "art."): abbreviations only when a number follows ("No. 5").
NUMBER_ABBREVIATIONS = frozenset("no nos vol vols fig figs p pp art sec ch ca".split())

# Candidate boundary: terminal punctuation, optional closers, then whitespace.
_BOUNDARY = re.compile(r"""([.!?…]+)(["'”’)\]]*)(\s+)""")
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_STARTER = re.compile(r"""["'“‘(\[]*[A-Z0-9À-ÖØ-Þ]""")
_WORD_BEFORE = re.compile(r"""([A-Za-z][A-Za-z.\-']*)$""")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.){2,}$|^[A-Za-z]\.?$")
_HAS_WORD = re.compile(r"\w")


@dataclasses.dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


def _is_abbreviation(text: str, punct_start: int, punct: str) -> bool:
    if punct != ".":
        return False
    m = _WORD_BEFORE.search(text, 0, punct_start)
    if not m:
        return False
    word = m.group(1) + "."
    core = word.strip(".").lower()
    if core in ABBREVIATIONS or core.replace(".", "") in {"eg", "ie", "am", "pm"}:
        return True
    if core in NUMBER_ABBREVIATIONS:
        return text[punct_start + 1 : punct_start + 3].strip()[:1].isdigit()
    return bool(_INITIALISM.match(word))


def _split_block(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    spans, start = [], lo
    for m in _BOUNDARY.finditer(text, lo, hi):
        nxt = m.end()
        if nxt >= hi:
            break
        if not _STARTER.match(text, nxt):
            continue
        if _is_abbreviation(text, m.start(1), m.group(1)):
            continue
        spans.append((start, m.start(3)))
        start = nxt
    spans.append((start, hi))
    return spans


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of `text` in order; pieces with no word character are dropped."""
    out: list[Sentence] = []
    blocks, pos = [], 0
    for m in _PARAGRAPH.finditer(text):
        blocks.append((pos, m.start()))
        pos = m.end()
    blocks.append((pos, len(text)))
    for lo, hi in blocks:
        for s, e in _split_block(text, lo, hi):
            # trim whitespace so offsets point at the sentence itself
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if s < e and _HAS_WORD.search(text, s, e):
                out.append(Sentence(s, e, text[s:e]))
    return out


class ArticleSentences:
    """One article's sentences with what the sentence pass gave them: their rows `idx` in the
    pass's outputs `out`, the token head's (probabilities, offsets) per row (`words_of`), the
    pooled sentence embeddings (`embeddings`, [n, H] or None) and whether each sentence is a
    quotation or attributed speech (`quoted`)."""

    def __init__(self, text: str, items: list[Sentence], idx: list[int], out: dict | None, words_of: dict,
                 embeddings=None, quoted: list[bool] | None = None):
        self.text, self.items, self.idx, self.out, self.words_of = text, items, idx, out, words_of
        self.embeddings = embeddings
        self.quoted = quoted if quoted is not None else [False] * len(items)
