"""Batches across datasets: temperature mixing, length grouping, sharding, exact resume.

An epoch is a pure function of (seed, epoch), so the sampler state is just
(epoch, position): a resumed run rebuilds the epoch and skips `position` batches. That
avoids carrying generator states and the DataLoader re-iteration traps (accelerate #2016).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def mixture_probs(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """p_i ∝ n_i^(1/T); empty datasets get 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = np.asarray(sizes, dtype=np.float64)
    if (n < 0).any() or n.sum() == 0:
        raise ValueError(f"dataset sizes must be >= 0 and not all 0, got {list(sizes)}")
    w = np.where(n > 0, n ** (1.0 / temperature), 0.0)
    return w / w.sum()


def mixture_counts(sizes: Sequence[int], temperature: float, total: int) -> list[int]:
    """Records drawn from each dataset per epoch: largest-remainder rounding of total * p."""
    p = mixture_probs(sizes, temperature)
    raw = p * total
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    for i in order[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


class MixtureBatchSampler:
    """Yields lists of global record indices (datasets concatenated in the given order).

    Per epoch: draw `mixture_counts` records from each dataset (a fresh permutation, cycled
    when a dataset is oversampled), shuffle them together, cut into mega-batches of
    `batch_size * megabatch_factor`, sort each by length (less padding), cut into batches and
    shuffle the batch order. Batch j goes to rank j % num_replicas; the epoch is truncated
    to a multiple of num_replicas so every rank takes the same number of steps.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        lengths: Sequence[int],
        batch_size: int,
        *,
        temperature: float = 1.0,
        epoch_size: int | None = None,
        seed: int = 0,
        megabatch_factor: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if len(lengths) != sum(sizes):
            raise ValueError(f"{len(lengths)} lengths for datasets of sizes {list(sizes)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sizes = [int(s) for s in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.temperature = float(temperature)
        self.epoch_size = int(epoch_size or sum(self.sizes))
        self.counts = mixture_counts(self.sizes, self.temperature, self.epoch_size)
        self.seed = int(seed)
        self.megabatch = max(1, int(megabatch_factor)) * batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        n_batches = -(-self.epoch_size // batch_size)
        self.batches_per_rank = n_batches // num_replicas
        if self.batches_per_rank == 0:
            raise ValueError(f"epoch of {self.epoch_size} records gives no batch to each of {num_replicas} processes")
        # position = batches this rank has consumed in the current epoch
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return self.batches_per_rank

    def _generator(self, epoch: int, salt: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch * 1_009 + salt)
        return g

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of one epoch, for all ranks, in order."""
        picked = []
        for d, (size, count) in enumerate(zip(self.sizes, self.counts)):
            if count == 0:
                continue
            g = self._generator(epoch, d + 1)
            reps = -(-count // size)
            idx = torch.cat([torch.randperm(size, generator=g) for _ in range(reps)])[:count]
            picked.append(idx.numpy() + self.offsets[d])
        order = np.concatenate(picked)
        g = self._generator(epoch, 0)
        order = order[torch.randperm(len(order), generator=g).numpy()]
        batches: list[list[int]] = []
        for start in range(0, len(order), self.megabatch):
            mega = order[start : start + self.megabatch]
            # stable sort: ties keep the shuffled order, so runs stay reproducible
            mega = mega[np.argsort(-self.lengths[mega], kind="stable")]
            batches.extend(mega[i : i + self.batch_size].tolist() for i in range(0, len(mega), self.batch_size))
        perm = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in perm]
        return batches[: self.batches_per_rank * self.num_replicas]

    def rank_batches(self, epoch: int) -> list[list[int]]:
        return self.epoch_batches(epoch)[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        """Endless: continues from (epoch, position) and advances them as batches are taken."""
        while True:
            batches = self.rank_batches(self.epoch)
            while self.position < len(batches):
                batch = batches[self.position]
                self.position += 1
                yield batch
            self.epoch += 1
            self.position = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "counts": self.counts}

    def load_state_dict(self, state: dict) -> None:
        if state.get("counts") is not None and list(state["counts"]) != self.counts:
            raise ValueError(
                f"sampler counts {state['counts']} in the checkpoint differ from {self.counts}: "
                "resume with the same data, caps, temperature and epoch_size"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
