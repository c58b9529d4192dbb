"""MBIC (Spinde et al. 2021): BABE SG1's 1,700 sentences with crowd (MTurk) bias labels.

Almost every MBIC sentence is also in BABE, so MBIC's split follows BABE's: a sentence
(or an article) that BABE puts in test is in MBIC's test too. Training on one and testing
on the other then never sees the same text or article on both sides.
"""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

from ..errors import Report
from ..records import make_record, text_key
from ..splits import SPLITS, connected_groups
from . import babe
from .base import Adapter, iter_csv, register

FILE = "final_labels_MBIC.csv.gz"
BABE_FILE = f"../{babe.BABE.folder}/{babe.FILE}"
SEED = 2021
SHARES = (0.70, 0.15, 0.15)


def babe_assignment(babe_root: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """BABE's split per text key and per group, and BABE's group per text key.

    Rebuilt with the BABE adapter's own (deterministic) rule, so it equals prepare("babe").
    """
    # BABE's bad rows are reported when BABE itself is prepared; here they only cost a constraint.
    quiet = Report(stream=io.StringIO())
    adapter = babe.BABE()
    parts = adapter.split(adapter.read(babe_root, quiet)["all"], quiet)
    by_text, by_group, group_of = {}, {}, {}
    for split, rows in parts.items():
        for r in rows:
            by_text[text_key(r["text"])] = split
            by_group[r["group"]] = split
            group_of[text_key(r["text"])] = r["group"]
    return by_text, by_group, group_of


def looks_like_row(row: dict) -> bool:
    """A line swallowed by a multi-line value that is really a row (a stray quote upstream).
    Article paragraphs with 10 commas parse as 11 fields (111 do), so the fields must fit too."""
    return row.get("label_bias", "").strip() in babe.LABELS and row.get("news_link", "").startswith("http")


def _free_split(key: str) -> str:
    """A fixed split for an article BABE does not have, from a hash (deterministic, any size)."""
    u = int(hashlib.sha1(f"{SEED}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < SHARES[0] else "validation" if u < SHARES[0] + SHARES[1] else "test"


@register
class MBIC(Adapter):
    name = "mbic"
    folder = "mbic"
    # BABE's file is read too: MBIC's split is derived from BABE's.
    files = (FILE, BABE_FILE)
    heads = ("language_bias_crowd", "topic")
    license = "AGPL-3.0 (repo); sentences and articles are third-party news"
    redistributable = False
    citation = (
        "Spinde, T., Rudnitckaia, L., Sinha, K., Hamborg, F., Gipp, B., Donnay, K. (2021). MBIC - "
        "A Media Bias Annotation Dataset Including Annotator Characteristics. iConference 2021."
    )
    # Tied to BABE's version: a change in BABE's split changes MBIC's.
    version = f"2+babe{babe.BABE.version}"

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        path = root / FILE
        records = []
        # `article` holds whole articles over many lines, 4 texts end in a line break
        for line, row in iter_csv(path, report, multiline=("text", "article"), guard=looks_like_row):
            text = (row.get("text") or "").strip()
            raw_label = (row.get("label_bias") or "").strip()
            topic = (row.get("topic") or "").strip()
            if not text:
                report.skip(path, line, "empty text")
                continue
            if raw_label not in babe.LABELS:
                report.skip(path, line, f"label_bias {raw_label!r} is not one of {sorted(babe.LABELS)}")
                continue
            link = babe.link_group(row.get("news_link"))
            r = make_record(
                id=f"mbic-{line}",
                text=text,
                unit="sentence",
                labels={
                    "language_bias_crowd": babe.LABELS[raw_label],
                    "topic": [babe.canonical_topic(topic)] if topic else None,
                },
                dataset="mbic",
                # Same group naming as BABE, so an article is one group in both datasets.
                # (group_id is the annotation batch, not the article.)
                group=f"url:{link}" if link else f"text:{text_key(text)}",
                outlet=(row.get("outlet") or "").strip() or None,
                doc_id=(row.get("news_link") or "").strip() or None,
            )
            r["_line"] = line
            records.append(r)
        return self._follow_babe(records, root / BABE_FILE, report, path)

    def _follow_babe(self, records: list[dict], babe_file: Path, report: Report, path: Path):
        by_text, by_group, group_of = babe_assignment(babe_file.parent)
        for r in records:
            # A few MBIC links are wrong (another outlet, a translator page); BABE's are curated
            # later, so a shared sentence takes BABE's article.
            r["group"] = group_of.get(text_key(r["text"]), r["group"])
        # Rows sharing an article or a text form one component; it goes where BABE put any of it.
        components = connected_groups(records)
        text_votes: dict[str, Counter] = {}
        group_votes: dict[str, Counter] = {}
        for r, c in zip(records, components):
            if text_key(r["text"]) in by_text:
                text_votes.setdefault(c, Counter())[by_text[text_key(r["text"])]] += 1
            if r["group"] in by_group:
                group_votes.setdefault(c, Counter())[by_group[r["group"]]] += 1
        out = {s: [] for s in SPLITS}
        for r, c in zip(records, components):
            votes = text_votes.get(c) or group_votes.get(c)
            # Identical text decides first (a hard leak); the article second.
            split = min(votes, key=lambda s: (-votes[s], SPLITS.index(s))) if votes else _free_split(c)
            own = by_text.get(text_key(r["text"]))
            if own is not None and own != split:
                report.skip(
                    path, r["_line"],
                    f"text is in BABE {own} but its MBIC article goes to {split}; left out to avoid a leak",
                )
                continue
            out[split].append(r)
        return out
