"""The lexical branch of a head (issue 18): a fastText-style bag of hashed word n-grams.

A head declared with `lexical: {buckets, dim}` (configs/heads; `lexical: true` takes
`head_options.LEXICAL_DEFAULTS`; `weighting: tfidf` for tf-idf weights) gets an `EmbeddingBag(buckets, dim)`
and a linear map to the head's outputs; its logits are added to the transformer head's logits of
the same record. It
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
    return hashed_inputs([text_hashes(text) for text in texts])


def hashed_inputs(hashes: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """`lexical_inputs` of texts already hashed (`text_hashes`), for callers that read the hashes too."""
    ids: list[int] = []
    offsets: list[int] = []
    for h in hashes:
        offsets.append(len(ids))
        ids.extend(h)
    return {"lexical_ids": torch.tensor(ids, dtype=torch.long),
            "lexical_offsets": torch.tensor(offsets, dtype=torch.long)}


def record_index(offsets: torch.Tensor, total: int) -> torch.Tensor:
    """[total]: the record of each flat id, from a bag's `offsets` [N] (where each record starts)."""
    lengths = torch.diff(offsets, append=offsets.new_tensor([total]))
    return torch.repeat_interleave(torch.arange(offsets.shape[0], device=offsets.device), lengths)


def has_lexical(specs) -> bool:
    """Whether a head reads the n-gram bag: a branch, or a fitted model (`biascard.model.fitted_lexical`)."""
    return any(getattr(s, "lexical", None) or getattr(s, "fitted", None) for s in specs.values())


class LexicalBranch(nn.Module):
    """A record's bag of n-gram vectors -> the head's logits (`weight` [out, dim], `bias`).

    `weighting: mean` (the default) averages the n-gram vectors. `tfidf` weights each distinct
    bucket of a record by (1 + log count) x idf and L2-normalises the weights, the features of
    the TF-IDF+LR baseline (sublinear tf, smooth idf); `idf` [buckets] is a buffer set from the
    train texts by `fit_idf` and saved with the weights. Why: a linear model on the mean features
    of long articles falls far below one on tf-idf features (docs/results.md#the-lexical-branchs-weighting).

    fastText's init: n-gram vectors U(-1/dim, 1/dim), the output layer zero, so a fresh branch
    adds nothing and the head starts as the transformer alone. It is set here: transformers'
    `_init_weights` redraws Linear and Embedding weights, but leaves an EmbeddingBag and plain
    parameters as they are built."""

    def __init__(self, buckets: int, dim: int, out: int, weighting: str = "mean"):
        super().__init__()
        self.buckets, self.weighting = int(buckets), weighting
        self.bag = nn.EmbeddingBag(self.buckets, int(dim), mode="mean" if weighting == "mean" else "sum")
        nn.init.uniform_(self.bag.weight, -1.0 / int(dim), 1.0 / int(dim))
        self.weight = nn.Parameter(torch.zeros(out, int(dim)))
        self.bias = nn.Parameter(torch.zeros(out))
        if weighting == "tfidf":
            self.register_buffer("idf", torch.ones(self.buckets))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        device = self.bag.weight.device
        ids, offsets = ids.to(device) % self.buckets, offsets.to(device)
        if self.weighting == "mean":
            bags = self.bag(ids, offsets)  # an empty bag gives zeros
        else:
            bags = self.bag(*self._tfidf(ids, offsets))
        return F.linear(bags, self.weight, self.bias)

    def _tfidf(self, ids: torch.Tensor, offsets: torch.Tensor):
        """(distinct buckets, their bag offsets, their L2-normalised tf-idf weights), record by record."""
        n = offsets.shape[0]
        record = record_index(offsets, ids.shape[0])
        keys, counts = torch.unique(record * self.buckets + ids, return_counts=True)  # sorted: record-major
        record, bucket = keys // self.buckets, keys % self.buckets
        w = (1.0 + torch.log(counts.float())) * self.idf.float()[bucket]
        norm = torch.zeros(n, device=ids.device).index_add_(0, record, w * w).sqrt().clamp_min(1e-12)
        starts = torch.searchsorted(record, torch.arange(n, device=ids.device))
        return bucket, starts, (w / norm[record]).to(self.bag.weight.dtype)

    @torch.no_grad()
    def fit_idf(self, texts: Sequence[str]) -> None:
        """sklearn's smooth idf, ln((1 + n) / (1 + df)) + 1, of each bucket over `texts`."""
        df = torch.zeros(self.buckets, dtype=torch.float64)
        for text in texts:
            df[torch.unique(torch.tensor(text_hashes(text), dtype=torch.long) % self.buckets)] += 1
        self.idf.copy_((torch.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).to(self.idf.dtype))


def build_branches(specs, out_sizes: dict[str, int]) -> nn.ModuleDict:
    """One branch per head that asks for it: heads size and switch their bags on their own."""
    return nn.ModuleDict({
        name: LexicalBranch(spec.lexical["buckets"], spec.lexical["dim"], out_sizes[name],
                            spec.lexical.get("weighting", "mean"))
        for name, spec in specs.items() if getattr(spec, "lexical", None)
    })


def fit_idf(branches: nn.ModuleDict, texts_by_head: dict[str, Sequence[str]]) -> dict[str, int]:
    """Set the idf of every tf-idf branch from its head's train texts; {head: texts read}."""
    fitted = {}
    for name, branch in branches.items():
        if branch.weighting == "tfidf":
            texts = texts_by_head.get(name) or []
            if not texts:
                raise ValueError(f"head {name!r}: its lexical branch weights by tf-idf, but no train record labels it")
            branch.fit_idf(texts)
            fitted[name] = len(texts)
    return fitted


def lexical_logits(branches: nn.ModuleDict, ids, offsets, records) -> dict[str, torch.Tensor]:
    """{head: [N, out] logits} of every branch; `records` [N, H] are the pooled records they add to."""
    if not len(branches):
        return {}
    require_inputs(branches, "a lexical branch", ids, offsets)
    if offsets.shape[0] != records.shape[0]:
        raise ValueError(f"lexical_offsets has {offsets.shape[0]} records, doc_index {records.shape[0]}")
    return {name: branch(ids, offsets) for name, branch in branches.items()}


def require_inputs(heads, what: str, ids, offsets) -> None:
    """A clear error when heads that read the hashed n-grams get none."""
    if len(heads) and (ids is None or offsets is None):
        raise ValueError(f"heads {sorted(heads)} have {what}: pass lexical_ids and "
                         "lexical_offsets (biascard.model.features.encode adds them)")


def parameter_count(buckets: int, dim: int, out: int) -> int:
    return buckets * dim + dim * out + out
