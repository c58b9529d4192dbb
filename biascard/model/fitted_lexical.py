"""A head's fitted lexical model (issue 18): a linear model over the exact tf-idf of a fixed
vocabulary of word n-grams, fit after training and mixed into the head's logits.

Why beside the trained branch (`biascard.model.lexical`): probabilities of TF-IDF+LR and of the
fine-tuned model combine better than either (docs/results.md#the-fitted-lexical-model), while the
jointly trained bag hashes its n-grams into buckets and trains for under two passes. This one is
the baseline's model itself, on the n-grams of `lexical.ngrams` (the same words the branch reads),
fit by `biascard train fuse` on the head's train texts:

    logits = (1 - weight) * (transformer head + branch) + weight * fitted

`weight` is chosen per head on validation (`HeadSpec.fitted`). For a softmax head this is the
log-linear pool of the two distributions; for a sigmoid head, the same per label.

Buffers, saved in the model's safetensors: `vocab` [F] (the n-grams' 63-bit hashes, sorted),
`idf` [F], `coef` [out, F], `intercept` [out]. Features are sklearn's TfidfVectorizer's
(sublinear tf, smooth idf, L2 norm) over the vocabulary's n-grams only.

With `keep` (`HeadSpec.fitted["keep"]`) each output keeps only its `keep` largest coefficients
by magnitude, the rest zero: `coef` is then [out, keep] and `coef_index` [out, keep] (int32) their
columns. Why: a head with many outputs (topic: 118) pays 2 bytes per output per n-gram in fp16,
and its pruned regression on a larger vocabulary ranks better than a dense one on a smaller
vocabulary in the same bytes (docs/results.md#the-fitted-lexical-model).
"""
from __future__ import annotations

import torch
from torch import nn

from .lexical import record_index


class FittedLexical(nn.Module):
    def __init__(self, features: int, out: int, keep: int | None = None):
        super().__init__()
        self.keep = int(keep) if keep is not None else None
        self.register_buffer("vocab", torch.zeros(int(features), dtype=torch.long))
        self.register_buffer("idf", torch.ones(int(features)))
        self.register_buffer("coef", torch.zeros(int(out), self.keep or int(features)))
        if self.keep is not None:
            self.register_buffer("coef_index", torch.zeros(int(out), self.keep, dtype=torch.int32))
        self.register_buffer("intercept", torch.zeros(int(out)))

    def dense_coef(self) -> torch.Tensor:
        """The coefficients [out, F] in fp32, the pruned ones zero."""
        if self.keep is None:
            return self.coef.float()
        dense = torch.zeros(self.coef.shape[0], self.vocab.shape[0], device=self.coef.device)
        return dense.scatter_(1, self.coef_index.long(), self.coef.float())

    def features(self, ids: torch.Tensor, offsets: torch.Tensor):
        """(record, column, weight) of every non-zero tf-idf feature of the records' n-gram hashes."""
        ids = ids.to(self.vocab.device)
        n, size = offsets.shape[0], self.vocab.shape[0]
        record = record_index(offsets.to(ids.device), ids.shape[0])
        col = torch.searchsorted(self.vocab, ids).clamp_max(size - 1)
        hit = self.vocab[col] == ids  # n-grams outside the vocabulary count for nothing
        keys, counts = torch.unique(record[hit] * size + col[hit], return_counts=True)
        record, col = keys // size, keys % size
        w = (1.0 + torch.log(counts.double())) * self.idf.double()[col]
        norm = torch.zeros(n, dtype=torch.float64, device=ids.device).index_add_(0, record, w * w).sqrt()
        return record, col, w / norm.clamp_min(1e-12)[record]

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        record, col, w = self.features(ids, offsets)
        coef = self.dense_coef()
        out = torch.zeros(offsets.shape[0], coef.shape[0], device=coef.device)
        out.index_add_(0, record, w.float()[:, None] * coef[:, col].T)
        return (out + self.intercept.float()).to(self.coef.dtype)

    @torch.no_grad()
    def set(self, vocab, idf, coef, intercept) -> None:
        """Load a fit (`biascard.train.fuse`): `coef` dense [out, F], pruned here with `keep`;
        `vocab` must be sorted, as `searchsorted` reads it."""
        vocab = torch.as_tensor(vocab, dtype=torch.long)
        if vocab.shape != self.vocab.shape or torch.any(vocab[1:] <= vocab[:-1]):
            raise ValueError(f"vocab: {tuple(vocab.shape)} hashes, expected {tuple(self.vocab.shape)}, strictly increasing")
        self.vocab.copy_(vocab)
        self.idf.copy_(torch.as_tensor(idf))
        coef = torch.as_tensor(coef, dtype=torch.float64).reshape(self.intercept.shape[0], vocab.shape[0])
        if self.keep is not None:
            # stable: equal magnitudes keep the lower column, so a refit gives the same buffers
            index = torch.argsort(-coef.abs(), dim=1, stable=True)[:, : self.keep].sort(dim=1).values
            self.coef_index.copy_(index.to(torch.int32))
            coef = coef.gather(1, index)
        self.coef.copy_(coef)
        self.intercept.copy_(torch.as_tensor(intercept).reshape(self.intercept.shape))


def build_fitted(specs, out_sizes: dict[str, int]) -> nn.ModuleDict:
    return nn.ModuleDict({name: FittedLexical(spec.fitted["features"], out_sizes[name], spec.fitted.get("keep"))
                          for name, spec in specs.items() if getattr(spec, "fitted", None)})


def mix(weight: float, logits, fitted):
    """A head's logits with its fitted model's mixed in at `weight` (`HeadSpec.fitted`); torch or numpy."""
    return (1.0 - weight) * logits + weight * fitted.reshape(logits.shape)
