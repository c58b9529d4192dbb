"""BABE (Spinde et al. 2021): 3,674 expert-labeled news sentences, biased words, topic."""
from __future__ import annotations

import ast
import contextlib
import difflib
import re
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from ..errors import Report
from ..records import make_record, text_key
from ..splits import connected_groups, group_split
from .base import Adapter, iter_csv, register

FILE = "final_labels_SG2.csv"
SEED = 2021
LABELS = {"Biased": 1, "Non-biased": 0, "No agreement": None}

# BABE merges two collection rounds that spell topics differently; AllSides names are used
# where the topic is clearly the same, so the topic head shares labels across datasets.
TOPIC_ALIASES = {
    "blm": "black_lives_matter",
    "vaccines": "vaccine",
    "gun_control": "gun_control_and_gun_rights",
    "elections_2020": "elections",
    "sport": "sports",
    "universal_health_care": "healthcare",
    "international_politics_and_world_news": "world",
}


def canonical_topic(raw: str) -> str:
    t = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    return TOPIC_ALIASES.get(t, t)


# Links that name a tool, not an article (a translator page holding the sentence itself).
NOT_ARTICLE_HOSTS = ("deepl.com",)


def link_group(link: str | None) -> str | None:
    """Article key from a URL: scheme, www, query and trailing slash vary for the same article."""
    if not link or not link.strip():
        return None
    u = link.strip().lower()
    if any(re.match(rf"^https?://(www\.)?{re.escape(h)}\b", u) for h in NOT_ARTICLE_HOSTS):
        return None
    u = re.sub(r"[?#].*$", "", u)
    u = re.sub(r"^https?://(www\.)?", "", u)
    return u.rstrip("/")


def parse_words(raw: str) -> list[str] | None:
    """The biased_words cell is a python list literal of strings; None if it is not."""
    try:
        value = ast.literal_eval((raw or "").strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        return None
    return [w.strip() for w in value if w.strip()]


# Curly quotes are folded to straight ones one char for one char, so offsets survive.
_FOLD = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_QUOTES = "\"'"
_TOKEN = re.compile(r"\w[\w'’\-]*")
_ADJACENT = re.compile(r"[\W_]{0,3}")


def _occurrences(word: str, text: str) -> list[tuple[int, int]]:
    w = word.translate(_FOLD).strip(_QUOTES)
    if not w:
        return []
    folded = text.translate(_FOLD)
    hits = [m.span() for m in re.finditer(r"(?<!\w)" + re.escape(w) + r"(?!\w)", folded, re.I)]
    if hits:
        return hits
    # Annotators sometimes marked a stem ("idea" for "Ideas"): widen to the whole word.
    for m in re.finditer(re.escape(w), folded, re.I):
        s, e = m.span()
        while s > 0 and (folded[s - 1].isalnum() or folded[s - 1] in "-'"):
            s -= 1
        while e < len(folded) and (folded[e].isalnum() or folded[e] in "-'"):
            e += 1
        if (s, e) not in hits:
            hits.append((s, e))
    if hits:
        return hits
    # Typos in the word list ("demoize", "fasicsm"): closest token or token pair.
    toks = [m.span() for m in _TOKEN.finditer(folded)]
    cands = toks + [(a[0], b[1]) for a, b in zip(toks, toks[1:])]
    best, score = None, 0.8
    for s, e in cands:
        r = difflib.SequenceMatcher(None, w.lower(), folded[s:e].lower()).ratio()
        if r > score:
            best, score = (s, e), r
    return [best] if best else []


def locate_words(words: list[str], text: str) -> tuple[list[dict], list[str]]:
    """Character spans of the biased words, and the words that could not be found.

    The data lists words without positions. A word that occurs once is placed there; a
    repeated word ("the" in "bang the drum") takes the occurrences next to another marked
    word, or all occurrences if none is adjacent.
    """
    found = {w: _occurrences(w, text) for w in dict.fromkeys(words)}
    fixed: set[tuple[int, int]] = {h[0] for h in found.values() if len(h) == 1}
    pending = [w for w, h in found.items() if len(h) > 1]

    def adjacent(span):
        return any(
            _ADJACENT.fullmatch(text[min(span[1], f[1]) : max(span[0], f[0])])
            for f in fixed
            if f[1] <= span[0] or span[1] <= f[0]
        )

    while pending:
        progress, rest = False, []
        for w in pending:
            near = [h for h in found[w] if adjacent(h)]
            if near:
                fixed.update(near)
                progress = True
            else:
                rest.append(w)
        pending = rest
        if not progress:
            for w in pending:
                fixed.update(found[w])
            break
    spans = [{"start": s, "end": e, "label": "biased_word"} for s, e in sorted(fixed)]
    return spans, [w for w, h in found.items() if not h]


def note(report: Report, path: Path, line: int, message: str) -> None:
    """A kept row with a flaw in one field: logged with file:line, not a skipped row."""
    print(f"note {path}:{line}: {message}", file=report.stream or sys.stderr)


def read_babe(path: Path, report: Report) -> list[dict]:
    records = []
    # 3 sentences end in a line break inside their quotes; other columns are one line.
    for line, row in iter_csv(path, report, delimiter=";", multiline=("text",)):
        text = (row.get("text") or "").strip()
        raw_label = (row.get("label_bias") or "").strip()
        topic = (row.get("topic") or "").strip()
        words = parse_words(row.get("biased_words"))
        if not text:
            report.skip(path, line, "empty text")
            continue
        if raw_label not in LABELS:
            report.skip(path, line, f"label_bias {raw_label!r} is not one of {sorted(LABELS)}")
            continue
        if words is None:
            report.skip(path, line, f"biased_words {row.get('biased_words')!r} is not a list of strings")
            continue
        spans, missing = locate_words(words, text)
        if missing:
            # The word stays in the label list; only its span is unknown.
            note(report, path, line, f"biased word(s) {missing} not found in the text; kept without a span")
        link = link_group(row.get("news_link"))
        records.append(
            make_record(
                id=f"babe-{line}",
                text=text,
                unit="sentence",
                labels={
                    "language_bias": LABELS[raw_label],
                    "biased_words": words,
                    "topic": [canonical_topic(topic)] if topic else None,
                },
                spans=spans,
                dataset="babe",
                # No link: the sentence is its own article.
                group=f"url:{link}" if link else f"text:{text_key(text)}",
                outlet=(row.get("outlet") or "").strip() or None,
                doc_id=(row.get("news_link") or "").strip() or None,
            )
        )
    return records


def babe_folds(records: list[dict], k: int = 5, seed: int = SEED) -> list[int]:
    """Fold index (0..k-1) per record: stratified by language_bias, grouped by article and text.

    For k-fold cross-validation over the whole of BABE, as in the paper.
    """
    groups = connected_groups(records)
    y = [str(r["labels"]["language_bias"]) for r in records]
    folds = np.zeros(len(records), dtype=int)
    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with _one_row_stratum_ok():
        for i, (_, held) in enumerate(skf.split(np.arange(len(records)), y, groups)):
            folds[held] = i
    return folds.tolist()


@contextlib.contextmanager
def _one_row_stratum_ok():
    """The lone "No agreement" row makes sklearn warn that a class is smaller than k."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        yield


@register
class BABE(Adapter):
    name = "babe"
    folder = "babe"
    files = (FILE,)
    heads = ("language_bias", "biased_words", "topic")
    license = "AGPL-3.0 (repo); sentences are third-party news excerpts"
    redistributable = False
    citation = (
        "Spinde, T., Plank, M., Krieger, J.-D., Ruas, T., Gipp, B., Aizawa, A. (2021). Neural Media "
        "Bias Detection Using Distant Supervision With BABE - Bias Annotations By Experts. "
        "Findings of EMNLP 2021, pp. 1166-1177. doi:10.18653/v1/2021.findings-emnlp.101"
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)
    seed = SEED

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        return {"all": read_babe(root / FILE, report)}

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        # No official split in the release; the single "No agreement" row is its own stratum.
        with _one_row_stratum_ok():
            return group_split(records, seed=self.seed, stratify="language_bias")
