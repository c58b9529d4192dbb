"""How a `document_reading: sentences` model reads a document: as its sentences.

Training, eval and the card split a document with the same `split_sentences`, so the
document-level heads see in training what they see on an article. A record is a document
when every head it is labeled for is document-level (AllSides, TRAIL22; an unlabeled article
too); a sentence dataset's records (BABE, with its topic labels) stay whole. The card then
needs one encoder pass: `document_outputs` pools the sentence pass's vectors.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .sentences import split_sentences


def reads_sentences(model) -> bool:
    return getattr(model.config, "document_reading", "windows") == "sentences"


def is_document(record: Mapping, specs: Mapping) -> bool:
    labeled = [h for h, v in (record.get("labels") or {}).items() if v is not None and h in specs]
    return all(specs[h].level == "document" for h in labeled)


def sentence_spans(text: str) -> list[list[int]] | None:
    """[start, end) of each sentence (None for a text with none: it is read whole)."""
    return [[s.start, s.end] for s in split_sentences(text)] or None


def with_segments(records: Sequence[Mapping], specs: Mapping) -> list[Mapping]:
    """`records` with `segments` (their sentence spans) on the documents among them."""
    return [{**r, "segments": sentence_spans(r["text"])} if is_document(r, specs) else r for r in records]


def document_outputs(model, embeddings: np.ndarray, owner: Sequence[int], texts: Sequence[str]) -> dict[str, Any]:
    """The document heads' {"probs", "ranks"} of `texts` (the documents: the lexical branches
    read them) from their sentences' vectors `embeddings` [S, H], `owner[s]` the document of row s."""
    import torch

    from biascard.model.lexical import has_lexical, lexical_inputs
    from biascard.model.modeling import corn_rank, head_probabilities

    specs = model.config.head_specs()
    dtype = next(model.parameters()).dtype
    lexical = lexical_inputs(list(texts)) if has_lexical(specs) else {}
    with torch.inference_mode():
        logits = model.document_logits(torch.from_numpy(np.ascontiguousarray(embeddings)).to(dtype),
                                       torch.tensor(list(owner), dtype=torch.long), len(texts), **lexical)
    return {"probs": {n: head_probabilities(v.float(), specs[n]).numpy() for n, v in logits.items()},
            "ranks": {n: corn_rank(v.float()).numpy() for n, v in logits.items() if specs[n].type == "ordinal"}}
