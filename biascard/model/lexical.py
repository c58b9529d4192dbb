"""The lexical branch of a head (issue 18): a fastText-style bag of hashed word n-grams.

A head declared with `lexical: {buckets, dim}` (configs/heads; `lexical: true` takes
`heads.LEXICAL_DEFAULTS`) gets an `EmbeddingBag(buckets, dim, mode="mean")` and a linear map to
the head's outputs; its logits are added to the transformer head's logits of the same record. It
reads the lowercased word unigrams and bigrams of the whole record text, not only the chunks the
encoder sees (`max_chunks`, `max_length`), so a cue word deep in a long article still counts.

`features.encode` adds the flat EmbeddingBag input whenever a head has the branch:
`lexical_ids` [T] (63-bit hashes of every n-gram of every record, records in order) and
`lexical_offsets` [N] (where each record's n-grams start). The hash does not depend on the
bucket count; each head takes `id % buckets`, so heads can size their bags independently.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# a word: letters/digits, with inner apostrophes kept ("don't", "o'brien")
WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
HASH_MASK = (1 << 63) - 1  # non-negative in int64


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(text: str) -> list[str]:
    """The record's unigrams, then its bigrams ("a b": the space keeps them apart from unigrams)."""
    w = words(text)
    return w + [f"{a} {b}" for a, b in itertools.pairwise(w)]


@functools.lru_cache(maxsize=1 << 16)
def ngram_hash(gram: str) -> int:
    """A stable 63-bit hash (blake2b; Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little") & HASH_MASK


def text_hashes(text: str) -> list[int]:
    return [ngram_hash(g) for g in ngrams(text)]


def lexical_inputs(texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """`lexical_ids` and `lexical_offsets` of whole texts, one bag per text, in order."""
    ids: list[int] = []
    offsets: list[int] = []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(text_hashes(text))
    return {"lexical_ids": torch.tensor(ids, dtype=torch.long),
            "lexical_offsets": torch.tensor(offsets, dtype=torch.long)}


def has_lexical(specs) -> bool:
    return any(getattr(s, "lexical", None) for s in specs.values())


class LexicalBranch(nn.Module):
    """Mean of a record's n-gram vectors -> the head's logits (`weight` [out, dim], `bias`).

    fastText's init: n-gram vectors U(-1/dim, 1/dim), the output layer zero, so a fresh branch
    adds nothing and the head starts as the transformer alone. It is set here: transformers'
    `_init_weights` redraws Linear and Embedding weights, but leaves an EmbeddingBag and plain
    parameters as they are built."""

    def __init__(self, buckets: int, dim: int, out: int):
        super().__init__()
        self.buckets = int(buckets)
        self.bag = nn.EmbeddingBag(self.buckets, int(dim), mode="mean")
        nn.init.uniform_(self.bag.weight, -1.0 / int(dim), 1.0 / int(dim))
        self.weight = nn.Parameter(torch.zeros(out, int(dim)))
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        device = self.bag.weight.device
        bags = self.bag(ids.to(device) % self.buckets, offsets.to(device))  # an empty bag gives zeros
        return F.linear(bags, self.weight, self.bias)


def build_branches(specs, out_sizes: dict[str, int]) -> nn.ModuleDict:
    """One branch per head that asks for it: heads size and switch their bags on their own."""
    return nn.ModuleDict({
        name: LexicalBranch(spec.lexical["buckets"], spec.lexical["dim"], out_sizes[name])
        for name, spec in specs.items() if getattr(spec, "lexical", None)
    })


def lexical_logits(branches: nn.ModuleDict, ids, offsets, records) -> dict[str, torch.Tensor]:
    """{head: [N, out] logits} of every branch; `records` [N, H] are the pooled records they add to."""
    if not len(branches):
        return {}
    if ids is None or offsets is None:
        raise ValueError(f"heads {sorted(branches)} have a lexical branch: pass lexical_ids and "
                         "lexical_offsets (biascard.model.features.encode adds them)")
    if offsets.shape[0] != records.shape[0]:
        raise ValueError(f"lexical_offsets has {offsets.shape[0]} records, doc_index {records.shape[0]}")
    return {name: branch(ids, offsets) for name, branch in branches.items()}


def parameter_count(buckets: int, dim: int, out: int) -> int:
    return buckets * dim + dim * out + out
