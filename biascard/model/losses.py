"""Each head type's training loss, over its labeled examples only (-100 / NaN mark the rest).

Ordinal heads use CORN (Shi, Cao & Raschka 2021); binary, multiclass and multilabel heads may
weight classes and use focal loss (`HeadSpec.class_weight`, `focal_gamma`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .heads import HeadSpec


def corn_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CORN loss. logits [N, K-1]; y [N] class index 0..K-1 (already masked).

    Task k (k = 0..K-2) is P(y > k | y > k-1): trained only on examples with y >= k,
    target y > k. The loss is the mean binary cross-entropy over all (example, task)
    pairs that are in a task's conditional training set.
    """
    k = torch.arange(logits.shape[1], device=logits.device)
    in_task = y.unsqueeze(1) >= k  # [N, K-1]: conditional training subsets
    target = (y.unsqueeze(1) > k).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    in_task = in_task.to(logits.dtype)
    return (bce * in_task).sum() / in_task.sum().clamp(min=1)


def _weighted_mean(per_example: torch.Tensor, y: torch.Tensor, spec: HeadSpec) -> torch.Tensor:
    if not isinstance(spec.class_weight, list):
        return per_example.mean()
    w = torch.tensor(spec.class_weight, dtype=per_example.dtype, device=per_example.device)[y.long()]
    return (w * per_example).sum() / w.sum()


def _focal(ce: torch.Tensor, p_true: torch.Tensor, gamma: float) -> torch.Tensor:
    return ce if not gamma else (1.0 - p_true).clamp(min=0.0).pow(gamma) * ce


def head_loss_fn(spec: HeadSpec, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """One head's loss over its labeled examples only; None when none is labeled.

    Binary/multiclass heads may weight classes (`class_weight`, a weighted mean) and use focal
    loss (`focal_gamma`); multilabel heads may weight each label's positives (`class_weight` as
    BCE pos_weight) and use focal loss per label."""
    kind = spec.type
    if kind == "regression":
        keep = ~torch.isnan(y)
        return F.mse_loss(logits[keep], y[keep].to(logits.dtype)) if keep.any() else None
    gamma = float(getattr(spec, "focal_gamma", 0.0) or 0.0)
    if kind == "multilabel":
        rows = (y != -100).all(dim=-1)  # a labeled record has every label set
        if not rows.any():
            return None
        logits, target = logits[rows], y[rows].to(logits.dtype)
        pw = None
        if isinstance(spec.class_weight, list):
            pw = torch.tensor(spec.class_weight, dtype=logits.dtype, device=logits.device)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pw)
        p = torch.sigmoid(logits)
        return _focal(ce, torch.where(target > 0.5, p, 1.0 - p), gamma).mean()
    keep = y != -100
    if not keep.any():
        return None
    logits, y = logits[keep], y[keep]
    if kind == "binary":
        target = y.to(logits.dtype)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        ce = _focal(ce, torch.where(target > 0.5, p, 1.0 - p), gamma)
        return _weighted_mean(ce, y, spec)
    if kind == "multiclass":
        ce = F.cross_entropy(logits, y.long(), reduction="none")
        if gamma:
            ce = _focal(ce, torch.exp(-ce), gamma)  # p_true = exp(-CE)
        return _weighted_mean(ce, y, spec)
    if kind == "ordinal":
        return corn_loss(logits, y.long())
    if kind == "token":
        return F.cross_entropy(logits, y.long())
    raise ValueError(f"head {spec.name!r}: unknown type {kind!r}")
