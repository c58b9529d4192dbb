"""The composer's runtime flags, prototyped here until serve/compose.py is free to edit.

`composer.runtime` in configs/serve.yaml:
  length_sorted: sort the texts of a pass by token count and cut them into batches of at
    most `batch_tokens` padded tokens, each padded only to its own longest text;
  inference_mode: torch.inference_mode (else torch.no_grad);
  precision: fp32 | bf16 (weights cast) | bf16_autocast | int8 (dynamic, encoder Linear
    layers) | auto (bf16 when the CPU has native bf16, else fp32).
`Composer` in serve/compose.py takes these once ported; `make_composer` picks whichever exists.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16", "bf16_autocast", "int8", "auto")
RUNTIME_DEFAULTS = {"length_sorted": True, "batch_tokens": 8192, "inference_mode": True, "precision": "fp32"}


def native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 matmuls are emulated and slower than fp32."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_runtime(cfg: Mapping | None) -> dict:
    rt = {**RUNTIME_DEFAULTS, **(cfg or {})}
    unknown = set(rt) - set(RUNTIME_DEFAULTS)
    if unknown:
        raise ValueError(f"composer.runtime: unknown keys {sorted(unknown)}; known: {sorted(RUNTIME_DEFAULTS)}")
    if rt["precision"] not in PRECISIONS:
        raise ValueError(f"composer.runtime.precision {rt['precision']!r} is not one of {PRECISIONS}")
    if rt["precision"] == "auto":
        rt["precision"] = "bf16" if native_bf16() else "fp32"
    rt["batch_tokens"] = int(rt["batch_tokens"])
    if rt["batch_tokens"] < 1:
        raise ValueError("composer.runtime.batch_tokens must be >= 1")
    return rt


def prepare_model(model, precision: str):
    """The model to run at `precision`; a copy when it changes, so the caller's stays fp32."""
    import torch
    from torch import nn

    if precision == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16)
    if precision == "int8":
        m = copy.deepcopy(model)
        # the encoder only: the heads are tiny and quantizing them adds error for no speed
        torch.ao.quantization.quantize_dynamic(m.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return m
    return model


def length_groups(tokenizer, texts: list[str], max_length: int, stride: int, batch_tokens: int) -> list[list[int]]:
    """Indices of `texts` in ascending token count, cut so chunks x padded width <= batch_tokens."""
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"]
    special = tokenizer.num_special_tokens_to_add(pair=False)
    cap = max_length - special
    groups: list[list[int]] = []
    cur: list[int] = []
    chunks = width = 0
    for i in sorted(range(len(texts)), key=lambda j: len(ids[j])):
        t = len(ids[i])
        c = 1 if t <= cap else 1 + math.ceil((t - cap) / (cap - stride))
        w = min(t, cap) + special
        if cur and (chunks + c) * max(width, w) > batch_tokens:
            groups.append(cur)
            cur, chunks, width = [], 0, 0
        cur.append(i)
        chunks += c
        width = max(width, w)
    if cur:
        groups.append(cur)
    return groups


def forward(composer, texts: list[str], *, offsets: bool) -> dict[str, Any]:
    """`Composer._forward` with the runtime flags; same outputs in the order of `texts`."""
    import torch

    from biascard.train.features import encode
    from biascard.train.modeling import corn_rank, head_probabilities

    rt = composer.runtime
    n = len(texts)
    if rt["length_sorted"]:
        groups = length_groups(composer.tokenizer, texts, composer.max_length, composer.stride, rt["batch_tokens"])
    else:
        step = max(1, int(composer.settings.get("sentence_batch_size") or n))
        groups = [list(range(lo, min(lo + step, n))) for lo in range(0, n, step)]
    seq: dict[str, list] = {}
    ranks: dict[str, list] = {}
    tokens: list[tuple[int, np.ndarray, np.ndarray]] = []
    grad = torch.inference_mode() if rt["inference_mode"] else torch.no_grad()
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if rt["precision"] == "bf16_autocast"
            else contextlib.nullcontext())
    with grad, cast:
        for group in groups:
            batch = encode([{"text": texts[i]} for i in group], composer.tokenizer, composer.specs,
                           composer.max_length, composer.stride, with_labels=False, return_offsets=offsets)
            offset_mapping = batch.pop("offset_mapping", None)
            out = composer.model(**batch)
            doc_index = batch["doc_index"].numpy()
            for name, spec in composer.specs.items():
                logits = out.logits[name].float()
                if spec.is_token:
                    if offsets and name == composer.token_head:
                        p = head_probabilities(logits, spec).numpy()
                        mask = batch["attention_mask"].numpy().astype(bool)
                        om = offset_mapping.numpy()
                        for c in range(p.shape[0]):
                            tokens.append((group[int(doc_index[c])], p[c][mask[c]], om[c][mask[c]]))
                    continue
                seq.setdefault(name, []).append((group, head_probabilities(logits, spec).numpy()))
                if spec.type == "ordinal":
                    ranks.setdefault(name, []).append((group, corn_rank(logits).numpy()))

    def scatter(pieces):
        first = pieces[0][1]
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        for g, a in pieces:
            out[g] = a
        return out

    return {
        "probs": {k: scatter(v) for k, v in seq.items()},
        "ranks": {k: scatter(v) for k, v in ranks.items()},
        "tokens": tokens,
    }


def composer_has_runtime() -> bool:
    from biascard.serve.compose import default_settings

    return "runtime" in default_settings()


def make_composer(model, tokenizer, runtime: Mapping | None = None, settings: Mapping | None = None):
    """A composer with these runtime flags: serve's own once it has them, else this prototype."""
    from biascard.serve.compose import Composer, merge

    settings = merge(dict(settings or {}), {"runtime": dict(runtime or {})})
    if composer_has_runtime():
        return Composer(model, tokenizer, settings)

    class RuntimeComposer(Composer):
        def __init__(self, model, tokenizer, settings):
            rt = settings.pop("runtime", None)
            super().__init__(model, tokenizer, settings)
            self.runtime = resolve_runtime(rt)
            self.model = prepare_model(self.model, self.runtime["precision"])

        def _forward(self, texts, *, offsets):
            return forward(self, texts, offsets=offsets)

    return RuntimeComposer(model, tokenizer, settings)
