"""Labeled bias cards: JSONL lines `{"text": article, "card": card JSON}` -> article records.

Each line may also carry "id", "title" and "source". The file is
`<data dir>/cards/cards.jsonl`, or any JSONL named by BIASCARD_CARDS_FILE (absolute or
relative to the working directory). Every card is checked against the card schema; a bad
line is reported with file:line and skipped (or fails the run with `--strict`).

Heads fed: the four card scores (ordinal 1-5), `sdg` (goal numbers as strings),
`sdg_polarity`/`sdg_relevance` (of the card's first goal), `topic` (labels with
probability >= 0.5; a human card's tags have 1.0) and `political_leaning` when the card
names one. An empty `sdgs` or `topics` list is a label ("none of them"), not a gap.
The title is not added to the text: the model sees what `text` holds, as at serving time.
"""
from __future__ import annotations

import os
from pathlib import Path

from biascard.card import CardError, validate
from biascard.card.contract import CONCEPT_HEADS

from ..errors import DataError, Report
from ..records import make_record, text_key
from ..splits import group_split
from .base import Adapter, iter_jsonl, register

ENV_FILE = "BIASCARD_CARDS_FILE"
DEFAULT_FILE = "cards.jsonl"
SEED = 1603  # no official split: a fixed group split
TOPIC_THRESHOLD = 0.5


def cards_file(root: Path) -> Path:
    """The JSONL the adapter reads: BIASCARD_CARDS_FILE if set, else root/cards.jsonl."""
    env = os.environ.get(ENV_FILE)
    return Path(env).expanduser().resolve() if env else root / DEFAULT_FILE


def card_labels(card: dict) -> dict:
    """The head labels one valid card gives; raises CardError if a concept appears twice."""
    labels: dict = {}
    for c in card["cognitive_concepts"]:
        head = CONCEPT_HEADS[c["concept"]]
        if head in labels:
            raise CardError(f"cognitive_concepts: {c['concept']} appears twice", path="cognitive_concepts")
        labels[head] = int(c["score"]) if c["score"] is not None else None
    sdgs = card["sdgs"]
    labels["sdg"] = sorted({str(int(s["goal"])) for s in sdgs}, key=int)
    labels["sdg_polarity"] = sdgs[0].get("polarity") if sdgs else None
    labels["sdg_relevance"] = sdgs[0].get("relevance") if sdgs else None
    topics = [t["label"] for t in card["topics"] if t["probability"] >= TOPIC_THRESHOLD]
    labels["topic"] = list(dict.fromkeys(topics))
    leaning = card.get("political_leaning")
    labels["political_leaning"] = leaning.get("label") if isinstance(leaning, dict) else None
    return labels


@register
class Cards(Adapter):
    name = "cards"
    folder = "cards"
    heads = (*CONCEPT_HEADS.values(), "sdg", "sdg_polarity", "sdg_relevance", "topic", "political_leaning")
    license = "the user's own cards"
    redistributable = False
    citation = ""
    version = "2"  # 2: undecodable lines reported by file:line

    @property
    def files(self) -> tuple[str, ...]:
        # An absolute path survives `root / f` in the base class and in prepare's cache key.
        env = os.environ.get(ENV_FILE)
        return (str(Path(env).expanduser().resolve()),) if env else (DEFAULT_FILE,)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        path = cards_file(root)
        records: list[dict] = []
        ids: dict[str, int] = {}
        for n, obj in iter_jsonl(path, report):
            text, card = obj.get("text"), obj.get("card")
            if not isinstance(text, str) or not text.strip():
                report.skip(path, n, "'text' must be a non-empty string (the article)")
                continue
            if not isinstance(card, dict):
                report.skip(path, n, "'card' must be a JSON object (a bias card)")
                continue
            try:
                validate(card)
                labels = card_labels(card)
            except CardError as e:
                report.skip(path, n, f"invalid card: {e}")
                continue
            given = obj.get("id", card.get("id"))
            if given is not None and not isinstance(given, (str, int)):
                report.skip(path, n, f"'id' must be a string, got {type(given).__name__}")
                continue
            rid = str(given) if given is not None else None
            if rid is not None and rid in ids:
                report.skip(path, n, f"id {rid!r} already used on line {ids[rid]}")
                continue
            if rid is not None:
                ids[rid] = n
            source = obj.get("source") or card.get("source")
            records.append(
                make_record(
                    id=rid or f"{self.name}-{n}",
                    text=text,
                    unit="article",
                    labels=labels,
                    dataset=self.name,
                    group=f"id:{rid}" if rid is not None else text_key(text),
                    outlet=source if isinstance(source, str) else None,
                    doc_id=rid,
                )
                | {"_line": n}
            )
        return {"all": records}

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        try:
            return group_split(records, seed=SEED)
        except ValueError as e:
            # sklearn refuses when there are too few groups for three splits.
            raise DataError(
                f"{self.name}: cannot split {len(records)} card(s) into train/validation/test "
                f"(need at least 3 distinct articles): {e}"
            ) from None
