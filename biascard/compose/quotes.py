"""Which sentences of an article are quotations or attributed speech, not the outlet's own voice.

A documented rule set, not a model: deterministic and cheap. A sentence is quoted when

1. most of its letters and digits lie inside quotation marks (`quote_spans`):
   - double quotes: straight `"` (toggles open/closed), curly “ ” and low „ (open) and
     guillemets « »; single quotes: curly ‘ ’ only, since a straight ' is mostly an apostrophe.
     A ‘ opens only at the start of a word and a ’ closes only when a ‘ is open and it is not
     inside a word (“don’t”, “Ferreira’s” stay apostrophes);
   - a quote may run over several sentences. Over a paragraph break (blank line) it continues
     only when the next paragraph opens with a quote mark (the news convention for a quote of
     several paragraphs: no closing mark until its last paragraph);
   - a quote that never closes is a stray or lost mark: it covers its paragraph when it opened
     the paragraph, else only the rest of the sentence it opened in, so one dangling mark never
     turns the rest of an article into quotation;
2. or it is attributed speech (`attributed`): a reporting verb (said, says, told, stated,
   added, argued, claimed, warned, ...) with a subject of at most 8 words, either from the
   sentence start ("District officials said the increase ...") or after a comma, colon, dash or
   closing quote (`"...," Ferreira said.`, `..., he added.`, `The plan, he said, ...`), or the
   verb right after such a mark followed by its subject (`..., said Dr. Chen.`); or "according
   to" (not "according to plan/schedule/...").
   Not attributed: a capitalised verb form (a name: "the United States"), a verb after a
   determiner, "to", "not", a modal or a form of "be" ("the said property", "was told", "the
   stated goal", "will tell"), a subject holding a subordinating, relative or wh-word ("After
   the mayor said ...", "That is not what the report says"), and for forms that double as
   adjectives or nouns (said, stated, added, states, ...) a verb followed by a plain lowercase
   word or (except said) a number ("Value added tax rose", "Gulf states agreed", "Ford
   recalled 10,000 cars").
A sentence that only mentions a 'scare-quoted' word is not quoted: its quoted letters are few.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .sentences import Sentence

DOUBLE_OPEN = "“„«"
DOUBLE_CLOSE = "”»"
STRAIGHT = '"'
SINGLE_OPEN, SINGLE_CLOSE = "‘", "’"
_OPENERS = DOUBLE_OPEN + STRAIGHT + SINGLE_OPEN
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")

REPORTING_VERBS = frozenset(
    """
    say says said tell tells told states stated adds added argue argues argued claims claimed
    warn warns warned insist insists insisted notes noted explain explains explained
    assert asserts asserted declared announces announced writes wrote tweeted recalls recalled
    acknowledges acknowledged admits admitted alleges alleged contends contended stresses stressed
    emphasizes emphasized emphasises emphasised countered replies replied testifies testified
    complains complained reported concludes concluded predicts predicted
    """.split()
)
# forms that also serve as adjectives or nouns ("the said property", "value added tax",
# "Gulf states"): a verb only before a clause, an object pronoun, a name or punctuation
AMBIGUOUS = frozenset("said stated added claimed alleged noted reported states notes claims adds stressed recalled".split())
NOT_BEFORE_VERB = frozenset(
    """
    the a an this that these those its his her their our my your aforementioned
    to of in on at for by with from as be been being is are was were am not
    will would can could shall should may might must
    """.split()
)
NOT_IN_SUBJECT = frozenset(
    """
    after before when whenever while because since although though if unless until once
    whereas whether what why how which where who whom whose that is are was were be been being
    """.split()
)
# what may follow an AMBIGUOUS form used as a verb: a clause, an object or an adverbial
VERB_FOLLOWERS = frozenset(
    """
    that the a an this these those it its he she they we i you there his her their our my
    on in at during after before last yesterday today tonight earlier later no not
    """.split()
)
ACCORDING = re.compile(r"\baccording to\b(?!\s+(?:the\s+)?(?:plan|schedule|script|tradition|custom|expectations?)\b)",
                       re.IGNORECASE)
MAX_SUBJECT_WORDS = 8
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*\.?|[,;:—–]|[“”\"«»„]")
_BREAK = frozenset(",;:—–“”\"«»„")


def paragraphs(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in _PARAGRAPH.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    return out


def _first_mark(text: str, lo: int, hi: int) -> int | None:
    """Where a paragraph's first non-space character is, if it is an opening quote mark."""
    i = lo
    while i < hi and text[i].isspace():
        i += 1
    return i if i < hi and text[i] in _OPENERS else None


def _sentence_end(pos: int, sentences: Sequence[Sentence], default: int) -> int:
    for s in sentences:
        if s.start <= pos < s.end:
            return s.end
    return default


def _single_opens(text: str, i: int) -> bool:
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return (before.isspace() or before in "([{“\"—–") and not after.isspace()


def _single_closes(text: str, i: int) -> bool:
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return not before.isspace() and not after.isalnum()


def _scan_paragraph(text: str, lo: int, hi: int, state: dict, skip: set[int], spans: list) -> None:
    """Open and close quotes inside one paragraph; `state` maps kind → (open position,
    opened at the paragraph start)."""
    first = _first_mark(text, lo, hi)
    for i in range(lo, hi):
        ch = text[i]
        if i in skip:
            continue
        if ch in DOUBLE_OPEN or (ch == STRAIGHT and "double" not in state):
            state.setdefault("double", (i, i == first))
        elif ch in DOUBLE_CLOSE or ch == STRAIGHT:
            if "double" in state:
                start = state.pop("double")[0]
                spans.append((start, i + 1))
                single = state.get("single")
                if single is not None and single[0] > start:  # a single quote left open inside
                    spans.append((state.pop("single")[0], i + 1))
        elif ch == SINGLE_OPEN and _single_opens(text, i):
            state.setdefault("single", (i, i == first))
        elif ch == SINGLE_CLOSE and "single" in state and _single_closes(text, i):
            spans.append((state.pop("single")[0], i + 1))


def quote_spans(text: str, sentences: Sequence[Sentence] = ()) -> list[tuple[int, int]]:
    """[start, end) character spans of `text` inside quotation marks (rules: module docstring).
    `sentences` bound a quote that never closes; without them it covers its paragraph."""
    spans: list[tuple[int, int]] = []
    state: dict[str, tuple[int, bool]] = {}
    skip: set[int] = set()
    paras = paragraphs(text)
    for k, (lo, hi) in enumerate(paras):
        _scan_paragraph(text, lo, hi, state, skip, spans)
        nxt = _first_mark(text, *paras[k + 1]) if k + 1 < len(paras) else None
        for kind in list(state):
            start, at_para_start = state.pop(kind)
            marks = (DOUBLE_OPEN + STRAIGHT) if kind == "double" else SINGLE_OPEN
            if nxt is not None and text[nxt] in marks:  # the quote goes on in the next paragraph
                spans.append((start, hi))
                state[kind] = (nxt, True)
                skip.add(nxt)
            else:
                end = hi if at_para_start or not sentences else _sentence_end(start, sentences, hi)
                spans.append((start, end))
    return spans


def _words(sentence: str) -> list[str]:
    return _TOKEN.findall(sentence)


def _subject_ok(tokens: list[str]) -> bool:
    words = [t for t in tokens if t[0].isalnum()]
    return 1 <= len(words) <= MAX_SUBJECT_WORDS and not any(w.lower() in NOT_IN_SUBJECT for w in words)


def _looks_like_subject(tokens: list[str]) -> bool:
    """After an inverted verb ("said Dr. Chen"): a name, a pronoun or a determiner phrase."""
    words = [t for t in tokens[:MAX_SUBJECT_WORDS] if t[0].isalnum()]
    if not words:
        return False
    w = words[0]
    return w[0].isupper() or w.lower() in {"he", "she", "they", "we", "i", "it", "the", "a", "an", "one"}


def _verb_ok(tokens: list[str], k: int) -> bool:
    verb = tokens[k].lower().rstrip(".")
    if k > 0 and tokens[k - 1].lower() in NOT_BEFORE_VERB:
        return False
    if verb in AMBIGUOUS and k + 1 < len(tokens):
        nxt = tokens[k + 1]
        # "said 40 people attended" is speech, "added 500 jobs" / "recalled 10,000 cars" are not
        if (nxt[0].isdigit() and verb not in ("said", "says")) or (
                nxt[0].islower() and nxt.lower().rstrip(".") not in VERB_FOLLOWERS):
            return False
    return True


def attributed(sentence: str) -> bool:
    """Whether `sentence` is speech attributed to a speaker (rules: module docstring)."""
    if ACCORDING.search(sentence):
        return True
    tokens = _words(sentence)
    for k, tok in enumerate(tokens):
        # a capitalised form is a name or a sentence start ("The United States imposed ...")
        if not tok[0].islower() or tok.rstrip(".") not in REPORTING_VERBS or not _verb_ok(tokens, k):
            continue
        # the subject runs back to the sentence start or the last comma, colon, dash or quote
        b = max((j for j in range(k) if tokens[j] in _BREAK), default=-1)
        if _subject_ok(tokens[b + 1 : k]):
            return True
        if b == k - 1 and b >= 0 and _looks_like_subject(tokens[k + 1 :]):
            return True
    return False


def _alnum_prefix(text: str) -> list[int]:
    out = [0] * (len(text) + 1)
    for i, ch in enumerate(text):
        out[i + 1] = out[i] + ch.isalnum()
    return out


def quoted_flags(text: str, sentences: Sequence[Sentence]) -> list[bool]:
    """Per sentence: True when most of its letters and digits are inside quotation marks, or
    when it is attributed speech."""
    inside = bytearray(len(text) + 1)
    for s, e in quote_spans(text, sentences):
        inside[s:e] = b"\x01" * (e - s)
    total = _alnum_prefix(text)
    out = []
    for s in sentences:
        n = total[s.end] - total[s.start]
        q = sum(1 for i in range(s.start, s.end) if inside[i] and text[i].isalnum())
        out.append((n > 0 and 2 * q > n) or attributed(s.text))
    return out


def quoted_in_sentences(sentences: Sequence[str]) -> list[bool]:
    """`quoted_flags` for an article given as its sentences (calibration data): joined by
    spaces, so a quote may still span sentences."""
    items, pos = [], 0
    for t in sentences:
        items.append(Sentence(pos, pos + len(t), t))
        pos += len(t) + 1
    return quoted_flags(" ".join(sentences), items)
