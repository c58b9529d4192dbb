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
"""
from __future__ import annotations

import torch
from torch import nn

from .lexical import record_index


class FittedLexical(nn.Module):
    def __init__(self, features: int, out: int):
        super().__init__()
        self.register_buffer("vocab", torch.zeros(int(features), dtype=torch.long))
        self.register_buffer("idf", torch.ones(int(features)))
        self.register_buffer("coef", torch.zeros(int(out), int(features)))
        self.register_buffer("intercept", torch.zeros(int(out)))

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
        coef = self.coef.float()
        out = torch.zeros(offsets.shape[0], coef.shape[0], device=coef.device)
        out.index_add_(0, record, w.float()[:, None] * coef[:, col].T)
        return (out + self.intercept.float()).to(self.coef.dtype)

    @torch.no_grad()
    def set(self, vocab, idf, coef, intercept) -> None:
        """Load a fit (`biascard.train.fuse`); `vocab` must be sorted, as `searchsorted` reads it."""
        vocab = torch.as_tensor(vocab, dtype=torch.long)
        if vocab.shape != self.vocab.shape or torch.any(vocab[1:] <= vocab[:-1]):
            raise ValueError(f"vocab: {tuple(vocab.shape)} hashes, expected {tuple(self.vocab.shape)}, strictly increasing")
        self.vocab.copy_(vocab)
        self.idf.copy_(torch.as_tensor(idf))
        self.coef.copy_(torch.as_tensor(coef).reshape(self.coef.shape))
        self.intercept.copy_(torch.as_tensor(intercept).reshape(self.intercept.shape))


def build_fitted(specs, out_sizes: dict[str, int]) -> nn.ModuleDict:
    return nn.ModuleDict({name: FittedLexical(spec.fitted["features"], out_sizes[name])
                          for name, spec in specs.items() if getattr(spec, "fitted", None)})


def mix(weight: float, logits, fitted):
    """A head's logits with its fitted model's mixed in at `weight` (`HeadSpec.fitted`); torch or numpy."""
    return (1.0 - weight) * logits + weight * fitted.reshape(logits.shape)
