"""The unified record every adapter yields, and the head contract it feeds.

A record is one labeled text. `labels` carries a value for every head in HEADS, null
where the dataset says nothing, so records of any dataset share one arrow schema.
Value types by head type:
  binary      int 0/1 (1 = the bias/property is present)
  multiclass  str, a label name taken from the data
  multilabel  list[str]
  ordinal     int 1..5
  token       list[str] of marked words (the character offsets live in `spans`)
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

import datasets

UNITS = ("sentence", "paragraph", "headline", "article")

HEAD_CATALOG = "heads/cards.yaml"


def _catalog() -> dict[str, tuple[str, str]]:
    """head name -> (type, level), from the heads config that declares every head (the
    dataset heads and the card heads), so a head's identity is written in one place."""
    from importlib import resources

    import yaml

    text = resources.files("biascard.configs").joinpath(HEAD_CATALOG).read_text(encoding="utf-8")
    return {name: (spec["type"], spec["level"]) for name, spec in yaml.safe_load(text).items()}


HEADS: dict[str, tuple[str, str]] = _catalog()

_VALUE_FEATURE = {
    "binary": datasets.Value("int64"),
    "ordinal": datasets.Value("int64"),
    "multiclass": datasets.Value("string"),
    "multilabel": datasets.List(datasets.Value("string")),
    "token": datasets.List(datasets.Value("string")),
}

SPAN_FEATURE = {
    "start": datasets.Value("int64"),
    "end": datasets.Value("int64"),
    "label": datasets.Value("string"),
}

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "unit": datasets.Value("string"),
        "labels": {name: _VALUE_FEATURE[kind] for name, (kind, _) in HEADS.items()},
        "spans": datasets.List(SPAN_FEATURE),
        "dataset": datasets.Value("string"),
        "group": datasets.Value("string"),
        "outlet": datasets.Value("string"),
        "doc_id": datasets.Value("string"),
    }
)


def make_record(
    *,
    id: str,
    text: str,
    unit: str,
    labels: dict,
    dataset: str,
    group: str,
    spans: list[dict] | None = None,
    outlet: str | None = None,
    doc_id: str | None = None,
) -> dict:
    """Build a record; unknown heads or units are programming errors, so they raise."""
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of {UNITS}")
    unknown = set(labels) - set(HEADS)
    if unknown:
        raise ValueError(f"labels name unknown heads {sorted(unknown)}")
    full = {name: labels.get(name) for name in HEADS}
    return {
        "id": id,
        "text": text,
        "unit": unit,
        "labels": full,
        "spans": spans or [],
        "dataset": dataset,
        "group": group,
        "outlet": outlet,
        "doc_id": doc_id,
    }


_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The key used to decide that two texts are the same (leak checks, dedup)."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


def text_key(text: str) -> str:
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()
