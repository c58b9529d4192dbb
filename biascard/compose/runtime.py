"""How the composer's forward passes run: precision, length-sorted batches, inference mode.

`composer.runtime` (configs/serve.yaml) sets these; bench/optimisations.py measures each flag.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16", "bf16_autocast", "int8", "auto")
RUNTIME_KEYS = ("length_sorted", "batch_tokens", "inference_mode", "precision", "onednn_cache")


def native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 matmuls are emulated and slower than fp32."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, where: str = "composer.runtime.precision",
                      allowed: tuple[str, ...] = PRECISIONS) -> str:
    """A precision setting checked against `allowed`, with `auto` decided for this CPU."""
    if precision not in allowed:
        raise ValueError(f"{where} {precision!r} is not one of {allowed}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def resolve_runtime(cfg: Mapping | None) -> dict:
    """composer.runtime with `precision: auto` decided for this CPU."""
    rt = {"length_sorted": True, "batch_tokens": 4096, "inference_mode": True, "precision": "fp32",
          "onednn_cache": None, **(cfg or {})}
    unknown = set(rt) - set(RUNTIME_KEYS)
    if unknown:
        raise ValueError(f"composer.runtime: unknown keys {sorted(unknown)}; known: {list(RUNTIME_KEYS)}")
    rt["precision"] = resolve_precision(rt["precision"])
    rt["batch_tokens"] = int(rt["batch_tokens"])
    if rt["onednn_cache"] is not None:
        limit_onednn_cache(int(rt["onednn_cache"]))
    if rt["batch_tokens"] < 1:
        raise ValueError("composer.runtime.batch_tokens must be >= 1")
    return rt


def limit_onednn_cache(capacity: int) -> None:
    """Cap oneDNN's primitive cache (default 1024 entries), unless the environment already
    sets it. A server sees a new tensor shape with nearly every batch, and each shape's cached
    primitives kept server memory growing (2.0 GB after a 10-minute soak; docs/reliability.md).
    oneDNN reads the variable once, at its first primitive: before any forward pass."""
    import os

    if capacity < 0:
        raise ValueError("composer.runtime.onednn_cache must be >= 0 or null")
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def prepare_model(model, precision: str):
    """The model to run at `precision`; a copy when it changes, so the caller's stays fp32."""
    import torch
    from torch import nn

    if precision == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16)
    if precision == "int8":
        import warnings

        m = copy.deepcopy(model)
        with warnings.catch_warnings():  # torch.ao's deprecation notices: still the CPU int8 path in 2.13
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            # the encoder only: the heads are tiny, and quantizing them adds error for no speed
            torch.ao.quantization.quantize_dynamic(m.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return m
    return model


def length_groups(tokenizer, texts: list[str], max_length: int, stride: int, batch_tokens: int) -> list[list[int]]:
    """Indices of `texts` by ascending token count, cut so that chunks x padded width of a
    group stay within `batch_tokens` (a text's chunks always share its group)."""
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)["input_ids"]
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


def batches(tokenizer, texts: list[str], runtime: Mapping, max_length: int, stride: int,
            batch_size: int | None) -> list[list[int]]:
    """Index groups of `texts`, one forward pass each."""
    if runtime["length_sorted"]:
        return length_groups(tokenizer, texts, max_length, stride, runtime["batch_tokens"])
    n = len(texts)
    step = max(1, int(batch_size or n))
    return [list(range(lo, min(lo + step, n))) for lo in range(0, n, step)]


def _in_order(parts: list[tuple[list[int], np.ndarray]], n: int) -> np.ndarray:
    out = np.empty((n, *parts[0][1].shape[1:]), dtype=parts[0][1].dtype)
    for group, values in parts:
        out[group] = values
    return out


def _collect(out, batch, group, specs, token_head, offset_mapping, acc) -> None:
    from biascard.model.modeling import corn_rank, head_probabilities

    doc_index = batch["doc_index"].numpy()
    for name, spec in specs.items():
        logits = out.logits[name].float()
        if spec.is_token:
            if offset_mapping is not None and name == token_head:
                p = head_probabilities(logits, spec).numpy()
                mask = batch["attention_mask"].numpy().astype(bool)
                om = offset_mapping.numpy()
                for c in range(p.shape[0]):
                    acc["tokens"].append((group[int(doc_index[c])], p[c][mask[c]], om[c][mask[c]]))
            continue
        acc["probs"].setdefault(name, []).append((group, head_probabilities(logits, spec).numpy()))
        if spec.type == "ordinal":
            acc["ranks"].setdefault(name, []).append((group, corn_rank(logits).numpy()))


def forward_heads(model, tokenizer, texts: list[str], runtime: Mapping, *, token_head: str | None = None,
                  max_chunks: int | None = None, batch_size: int | None = None,
                  embeddings: bool = False) -> dict[str, Any]:
    """Per-head probabilities of `texts` in their order: {"probs": {head: [n, ...]}, "ranks":
    {ordinal head: [n]}, "tokens": [(text index, P(token), offsets)] of `token_head` per chunk},
    and with `embeddings` the pooled text vectors the heads read, "embeddings": [n, H] (fp32)."""
    import torch

    from biascard.model.features import encode

    specs = model.config.head_specs()
    max_length, stride = int(model.config.max_length), int(model.config.stride)
    acc: dict[str, Any] = {"probs": {}, "ranks": {}, "tokens": [], "embeddings": []}
    grad = torch.inference_mode() if runtime["inference_mode"] else torch.no_grad()
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if runtime["precision"] == "bf16_autocast"
            else contextlib.nullcontext())
    with grad, cast:
        for group in batches(tokenizer, texts, runtime, max_length, stride, batch_size):
            batch = encode([{"text": texts[i]} for i in group], tokenizer, specs, max_length, stride,
                           with_labels=False, return_offsets=token_head is not None, max_chunks=max_chunks)
            offset_mapping = batch.pop("offset_mapping", None)
            out = model(**batch, return_embeddings=embeddings)
            _collect(out, batch, group, specs, token_head, offset_mapping, acc)
            if embeddings:
                acc["embeddings"].append((group, out.embeddings.float().numpy()))
    n = len(texts)
    return {"probs": {k: _in_order(v, n) for k, v in acc["probs"].items()},
            "ranks": {k: _in_order(v, n) for k, v in acc["ranks"].items()},
            "tokens": acc["tokens"],
            "embeddings": _in_order(acc["embeddings"], n) if acc["embeddings"] else None}
