"""Records -> tensors for `BiasCardModel`: chunking, dynamic padding, per-head labels.

Label tensors, missing = ignored (the model contract in DEVELOPERS.md):
binary float [N] (-100); multiclass long [N] (-100); multilabel float [N, C] (row of -100);
ordinal long [N] class index (-100); regression float [N] (nan);
token long [chunks, L] 0/1 (-100 for special/pad tokens and unlabeled records).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .heads import HeadSpec, load_heads
from .lexical import has_lexical, lexical_inputs

IGNORE = -100


def _record_id(record: Mapping, i: int) -> str:
    rid = record.get("id")
    return f"record {i}" + (f" (id {rid!r})" if rid is not None else "")


def _label_maps(heads: Mapping[str, HeadSpec], label2id: Mapping | None) -> dict[str, dict[str, int]]:
    maps = {}
    for name, spec in heads.items():
        if label2id is not None and name in label2id:
            maps[name] = {str(k): int(v) for k, v in label2id[name].items()}
        elif spec.type != "regression":
            maps[name] = spec.label2id  # raises when labels are unresolved
    return maps


def sequence_labels(
    records: Sequence[Mapping], spec: HeadSpec, l2i: dict[str, int] | None
) -> torch.Tensor:
    n, name = len(records), spec.name
    values = [(r.get("labels") or {}).get(name) for r in records]

    def index(value: Any, i: int) -> int:
        key = str(value)
        if key not in l2i:
            raise ValueError(
                f"{_record_id(records[i], i)}: head {name!r} has value {value!r}, "
                f"not among its labels {list(l2i)}"
            )
        return l2i[key]

    if spec.type == "binary":
        out = torch.full((n,), float(IGNORE))
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, bool) or v in (0, 1):
                out[i] = float(int(v))  # data says 0/1; the labels only name the classes
            else:
                out[i] = float(index(v, i))
        return out
    if spec.type in ("multiclass", "ordinal"):
        out = torch.full((n,), IGNORE, dtype=torch.long)
        for i, v in enumerate(values):
            if v is None:
                continue
            if spec.type == "ordinal" and isinstance(v, float) and v.is_integer():
                v = int(v)
            out[i] = index(v, i)
        return out
    if spec.type == "multilabel":
        out = torch.full((n, len(l2i)), float(IGNORE))
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, (str, bytes)):
                raise ValueError(f"{_record_id(records[i], i)}: head {name!r} expects a list, got {v!r}")
            out[i] = 0.0
            for item in v:
                out[i, index(item, i)] = 1.0
        return out
    if spec.type == "regression":
        out = torch.full((n,), math.nan)
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{_record_id(records[i], i)}: head {name!r} expects a number, got {v!r}") from None
        return out
    raise ValueError(f"head {name!r}: no sequence labels for type {spec.type!r}")


def _token_labels(
    records: Sequence[Mapping],
    spec: HeadSpec,
    doc_index: torch.Tensor,
    offsets: torch.Tensor,
    ignore: torch.Tensor,
) -> torch.Tensor:
    """1 where a token overlaps a matching span, 0 elsewhere, -100 on special/pad tokens
    and on every chunk of a record whose token value is null (or lists words of which no
    span was located)."""
    n_chunks, length = offsets.shape[:2]
    out = torch.full((n_chunks, length), IGNORE, dtype=torch.long)
    spans_of: dict[int, torch.Tensor | None] = {}
    for i, r in enumerate(records):
        value = (r.get("labels") or {}).get(spec.name)
        if value is None:
            spans_of[i] = None
            continue
        text = r.get("text") or ""
        spans = []
        for s in r.get("spans") or []:
            if spec.span_label is not None and s.get("label") != spec.span_label:
                continue
            start, end = s.get("start"), s.get("end")
            if not (isinstance(start, numbers.Integral) and isinstance(end, numbers.Integral) and 0 <= start < end <= len(text)):
                raise ValueError(f"{_record_id(r, i)}: span {dict(s)} is outside its text of {len(text)} chars")
            spans.append((start, end))
        if value and not spans:
            # words listed but none located (the adapter reports these): all-0 tags would be
            # wrong, so the record's tokens stay ignored
            spans_of[i] = None
            continue
        spans_of[i] = torch.tensor(spans, dtype=torch.long).reshape(-1, 2)
    for c in range(n_chunks):  # one vectorised comparison per chunk, not per token
        spans = spans_of[int(doc_index[c])]
        if spans is None:
            continue
        tok = offsets[c]
        if len(spans):
            hit = (tok[:, None, 0] < spans[None, :, 1]) & (tok[:, None, 1] > spans[None, :, 0])
            row = hit.any(dim=1).long()
        else:
            row = torch.zeros(length, dtype=torch.long)
        out[c] = torch.where(ignore[c], torch.full_like(row, IGNORE), row)
    return out


def _texts(records: list[Mapping]) -> list[str]:
    if not records:
        raise ValueError("encode: no records")
    texts = []
    for i, r in enumerate(records):
        text = r.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{_record_id(r, i)}: `text` must be a string, got {type(text).__name__}")
        texts.append(text)
    return texts


def _parts(records: list[Mapping], texts: list[str]) -> tuple[list[str], list[int], list[int]] | None:
    """(segment texts, record of each, start of each in its record's text), or None when no
    record has `segments` ([start, end) spans into its text; `document_reading: sentences`)."""
    if not any(r.get("segments") for r in records):
        return None
    parts, owner, starts = [], [], []
    for i, (r, text) in enumerate(zip(records, texts)):
        if not r.get("segments"):
            parts.append(text)
            owner.append(i)
            starts.append(0)
            continue
        for span in r["segments"]:
            try:
                a, b = (int(x) for x in span)
            except (TypeError, ValueError):
                raise ValueError(f"{_record_id(r, i)}: segments must be [start, end] pairs, got {span!r}") from None
            if not 0 <= a < b <= len(text):
                raise ValueError(f"{_record_id(r, i)}: segment {[a, b]} is outside its {len(text)}-character text")
            parts.append(text[a:b])
            owner.append(i)
            starts.append(a)
    return parts, owner, starts


def _segmented(enc: dict, split) -> torch.Tensor:
    """Chunks of segments -> doc_index; adds enc["segment_index"] and shifts offsets into the
    record's text."""
    _, owner, starts = split
    seg = enc["overflow_to_sample_mapping"].long()
    enc["segment_index"] = seg
    if "offset_mapping" in enc:
        om = enc["offset_mapping"]
        shift = torch.tensor(starts, dtype=om.dtype)[seg].view(-1, 1, 1)
        enc["offset_mapping"] = torch.where((om[..., 1:] > om[..., :1]), om + shift, om)
    return torch.tensor(owner, dtype=torch.long)[seg]


def _check_window(tokenizer, max_length: int, stride: int) -> None:
    special = tokenizer.num_special_tokens_to_add(pair=False)
    if max_length <= special or not 0 <= stride < max_length - special:
        raise ValueError(
            f"max_length {max_length} / stride {stride}: the stride must be smaller than the "
            f"{max_length - special} text tokens of a chunk"
        )


def _first_chunks(enc: dict, doc_index: torch.Tensor, max_chunks: int | None, tokenizer):
    """Keep the first `max_chunks` chunks of each record (None keeps all)."""
    if max_chunks is None:
        return enc, doc_index
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
    # chunks of a record are contiguous and in order: rank = position - first position
    first = torch.searchsorted(doc_index, doc_index)
    keep = (torch.arange(len(doc_index)) - first) < max_chunks
    if keep.all():
        return enc, doc_index
    enc = {k: v[keep] for k, v in enc.items()}
    if getattr(tokenizer, "padding_side", "right") == "right":  # re-trim the padding
        width = int(enc["attention_mask"].sum(1).max())
        enc = {k: (v[:, :width] if v.dim() >= 2 else v) for k, v in enc.items()}
    return enc, doc_index[keep]


def encode(
    records: Sequence[Mapping],
    tokenizer,
    heads: Mapping[str, HeadSpec] | Any,
    max_length: int,
    stride: int,
    label2id: Mapping[str, Mapping[str, int]] | None = None,
    with_labels: bool | None = None,
    return_offsets: bool = False,
    max_chunks: int | None = None,
) -> dict[str, Any]:
    """Tokenize records into chunks of `max_length` overlapping by `stride` tokens.

    Returns input_ids [C, L], attention_mask [C, L], token_type_ids [C, L] (if the
    tokenizer makes them), doc_index [C] (record of chunk c) and, when `with_labels`
    (default: any record has a `labels` key), `labels`: {head: tensor}. `label2id`
    overrides the heads' own maps. `return_offsets` adds offset_mapping [C, L, 2]
    (character offsets into the record's text; (0, 0) on special tokens), which the
    model's forward does not accept: pop it before calling the model. When a head has a
    lexical branch: lexical_ids [T] and lexical_offsets [N] (`biascard.model.lexical`).
    `max_chunks` keeps only the first chunks of each record (a training-time cap on
    long articles; None keeps all). A record with `segments` ([start, end) spans of its text,
    e.g. its sentences) is tokenized segment by segment, and the batch gets segment_index [C]
    (the segment of chunk c), which `document_reading: sentences` models pool by.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("encode needs a fast tokenizer (offsets and overflowing chunks)")
    heads = load_heads(heads)
    records = list(records)
    texts = _texts(records)
    _check_window(tokenizer, max_length, stride)
    if with_labels is None:
        with_labels = any("labels" in r for r in records)
    token_heads = [s for s in heads.values() if s.is_token] if with_labels else []
    need_offsets = return_offsets or bool(token_heads)
    split = _parts(records, texts)

    enc = tokenizer(
        texts if split is None else split[0],
        max_length=max_length,
        stride=stride,
        truncation=True,
        padding="longest",
        return_overflowing_tokens=True,
        return_offsets_mapping=need_offsets,
        return_special_tokens_mask=bool(token_heads),
        return_tensors="np",  # torch.tensor on nested lists is slower than from_numpy
    )
    enc = {k: torch.from_numpy(v.astype("int64", copy=False)) for k, v in enc.items()}
    doc_index = enc["overflow_to_sample_mapping"].long() if split is None else _segmented(enc, split)
    enc, doc_index = _first_chunks(enc, doc_index, max_chunks, tokenizer)
    batch: dict[str, Any] = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
    }
    if "token_type_ids" in enc:
        batch["token_type_ids"] = enc["token_type_ids"]
    batch["doc_index"] = doc_index
    if split is not None:
        batch["segment_index"] = enc["segment_index"]
    if has_lexical(heads):  # the whole texts, past max_length and max_chunks: one bag per record
        batch.update(lexical_inputs(texts))
    if return_offsets:
        batch["offset_mapping"] = enc["offset_mapping"]
    if not with_labels:
        return batch

    maps = _label_maps(heads, label2id)
    labels: dict[str, torch.Tensor] = {}
    if token_heads:
        ignore = enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
    for name, spec in heads.items():
        if spec.is_token:
            labels[name] = _token_labels(records, spec, doc_index, enc["offset_mapping"], ignore)
        else:
            labels[name] = sequence_labels(records, spec, maps.get(name))
    batch["labels"] = labels
    return batch


class Collator:
    """A DataLoader collate_fn over lists of records (a class, so workers can copy it)."""

    def __init__(
        self, tokenizer, heads, max_length: int, stride: int, label2id=None, with_labels=None, max_chunks=None
    ):
        self.tokenizer = tokenizer
        self.max_chunks = max_chunks
        self.heads = load_heads(heads)
        self.max_length = max_length
        self.stride = stride
        self.label2id = label2id
        self.with_labels = with_labels

    def __call__(self, records: Sequence[Mapping]) -> dict[str, Any]:
        return encode(
            records, self.tokenizer, self.heads, self.max_length, self.stride,
            label2id=self.label2id, with_labels=self.with_labels, max_chunks=self.max_chunks,
        )


def collate(
    tokenizer, heads, max_length: int, stride: int, label2id=None, with_labels=None, max_chunks=None
) -> Collator:
    return Collator(
        tokenizer, heads, max_length, stride, label2id=label2id, with_labels=with_labels, max_chunks=max_chunks
    )
