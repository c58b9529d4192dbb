"""Run a saved model over records: per-head probabilities (and token-head spans) per record."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def predict_records(
    model,
    tokenizer,
    records: Sequence[dict],
    heads: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    max_chunks: int | None = None,
    token_threshold: float = 0.5,
) -> dict[str, dict]:
    """{head: {"prob": ..., "spans": ...}} aligned with `records`.

    Sequence heads: "prob" is `head_probabilities` per record (binary float[N],
    multiclass/ordinal/multilabel float[N, C]). Token heads: "spans" holds the character
    spans of contiguous runs of tokens with P >= `token_threshold`; where chunks overlap
    (stride), a token's probability is the mean over the chunks that hold it.
    Records are batched by length so padding stays small; the output order is the input's.
    """
    import torch

    from biascard.train.features import encode
    from biascard.train.modeling import head_probabilities

    specs = model.head_specs
    heads = list(specs) if heads is None else list(heads)
    unknown = [h for h in heads if h not in specs]
    if unknown:
        raise ValueError(f"the model has no head(s) {unknown}; it has {sorted(specs)}")
    if not records:
        return {h: {"prob": None, "spans": []} for h in heads}
    cfg = model.config
    order = np.argsort([-len(r["text"]) for r in records], kind="stable")
    seq_probs: dict[str, list] = {h: [None] * len(records) for h in heads if not specs[h].is_token}
    tok_spans: dict[str, list] = {h: [None] * len(records) for h in heads if specs[h].is_token}
    from .tasks import token_runs

    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch_records = [{"id": records[i].get("id"), "text": records[i]["text"]} for i in idx]
            batch = encode(
                batch_records, tokenizer, specs, int(cfg.max_length), int(cfg.stride),
                with_labels=False, return_offsets=True, max_chunks=max_chunks,
            )
            offsets = batch.pop("offset_mapping")
            doc_index = batch["doc_index"]
            out = model(**{k: v.to(device) for k, v in batch.items()})
            for h in heads:
                p = head_probabilities(out.logits[h].float(), specs[h]).cpu().numpy()
                if h in seq_probs:
                    for j, i in enumerate(idx):
                        seq_probs[h][i] = p[j]
                    continue
                for j, i in enumerate(idx):
                    chunks = (doc_index == j).nonzero().flatten().tolist()
                    acc: dict[tuple[int, int], list[float]] = {}
                    for c in chunks:
                        for (s, e), pr in zip(offsets[c].tolist(), p[c].tolist()):
                            if e > s:  # (0, 0): special or pad token
                                acc.setdefault((s, e), []).append(pr)
                    toks = sorted(acc)
                    tok_spans[h][i] = token_runs([float(np.mean(acc[t])) for t in toks], toks, token_threshold)
    result: dict[str, dict] = {}
    for h in heads:
        if h in seq_probs:
            result[h] = {"prob": np.stack(seq_probs[h]), "spans": None}
        else:
            result[h] = {"prob": None, "spans": tok_spans[h]}
    return result
