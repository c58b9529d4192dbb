"""From token states to the vectors the sequence heads read.

A chunk is the attention-masked mean of its token states; a record, the mean of its chunks.
A model with `document_reading: sentences` also has an attention pool: a record given as
segments (its sentences) has each segment mean-pooled from its chunks, and its document-level
heads read a softmax-weighted sum of those segment vectors, the weights a learned score.
"""
from __future__ import annotations

import torch
from torch import nn


def mean_pool_chunks(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[C, L, H] token states -> [C, H], averaging only attended tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def pool_records(chunk_vecs: torch.Tensor, doc_index: torch.Tensor, num_records: int | None = None) -> torch.Tensor:
    """[C, H] chunk vectors -> [N, H]: the mean of each record's chunks."""
    n = int(doc_index.max()) + 1 if num_records is None else num_records
    sums = chunk_vecs.new_zeros(n, chunk_vecs.shape[-1]).index_add_(0, doc_index, chunk_vecs)
    counts = torch.bincount(doc_index, minlength=n).clamp(min=1).to(chunk_vecs.dtype)
    return sums / counts.unsqueeze(-1)


def segments_of(chunk_vecs: torch.Tensor, doc_index: torch.Tensor,
                segment_index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """([S, H] segment vectors, [S] record of each segment). Without `segment_index` every
    record is one segment. Segment ids are contiguous per record but may have gaps (a
    `max_chunks` cap drops whole segments), so they are renumbered first."""
    if segment_index is None:
        segment_index = doc_index
    _, seg = torch.unique_consecutive(segment_index, return_inverse=True)
    vecs = pool_records(chunk_vecs, seg)
    owner = doc_index.new_zeros(vecs.shape[0]).scatter_(0, seg, doc_index)
    return vecs, owner


class AttentionPool(nn.Module):
    """[S, H] segment vectors -> [N, H]: per record, the softmax over its segments of a linear
    score. transformers' init draws the score near zero, so a fresh pool starts as the mean."""

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, vecs: torch.Tensor, owner: torch.Tensor, num_records: int) -> torch.Tensor:
        s = self.score(vecs).squeeze(-1).float()
        top = s.new_full((num_records,), float("-inf")).scatter_reduce(0, owner, s, "amax")
        e = torch.exp(s - top[owner])
        weights = e / e.new_zeros(num_records).index_add_(0, owner, e)[owner]
        out = vecs.new_zeros(num_records, vecs.shape[-1])
        return out.index_add_(0, owner, vecs * weights.to(vecs.dtype).unsqueeze(-1))
